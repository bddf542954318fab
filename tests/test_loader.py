"""Splits, the device-resident loader and the torchvision baseline, on the real synthetic files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cifar_core.data import (
    AUGMENT_PRESETS,
    DeviceLoader,
    make_data,
    make_torchvision_loader,
    train_val_indices,
)
from cifar_core.data.augment import CIFAR100_MEAN
from cifar_core.errors import ConfigError


def test_split_is_deterministic_disjoint_and_complete():
    train, val = train_val_indices(50_000, 0.2, seed=0)
    assert len(train) == 40_000 and len(val) == 10_000
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert not np.intersect1d(train, val).size
    assert np.array_equal(np.union1d(train, val), np.arange(50_000))
    again_train, again_val = train_val_indices(50_000, 0.2, seed=0)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert not np.array_equal(val, train_val_indices(50_000, 0.2, seed=1)[1])
    with pytest.raises(ConfigError):
        train_val_indices(100, 1.0)


def _loader(n=300, batch_size=64, augment="report-a", seed=5, **kwargs) -> DeviceLoader:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 100
    return DeviceLoader(
        images, labels, batch_size, shuffle=True, augment=AUGMENT_PRESETS[augment], seed=seed, **kwargs
    )


def _epoch(loader: DeviceLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def test_same_seed_and_epoch_give_the_same_batches():
    a, b = _loader(), _loader()
    _epoch(b, 0), _epoch(b, 1)  # b ran epochs 0 and 1 first; a resumed `a` jumps straight to 2
    for (xa, ya), (xb, yb) in zip(_epoch(a, 2), _epoch(b, 2), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_epochs_and_seeds_differ():
    first, second = _epoch(_loader(), 0), _epoch(_loader(), 1)
    assert not torch.equal(first[0][1], second[0][1])
    other_seed = _epoch(_loader(seed=6), 0)
    assert not torch.equal(first[0][1], other_seed[0][1])


def test_iterating_without_set_epoch_moves_to_the_next_epoch():
    loader = _loader()
    first, second = list(loader), list(loader)
    assert not torch.equal(first[0][1], second[0][1])
    assert torch.equal(second[0][0], _epoch(_loader(), 1)[0][0])


def test_batches_cover_the_data_once_with_the_right_types():
    loader = _loader(n=300, batch_size=64, augment="none")
    batches = _epoch(loader, 0)
    assert len(loader) == len(batches) == 5
    assert [len(y) for _, y in batches] == [64, 64, 64, 64, 44]
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (64, 3, 32, 32) and y.dtype == torch.int64
    labels = torch.cat([y for _, y in batches])
    assert torch.equal(labels.sort().values, (torch.arange(300) % 100).sort().values)
    assert len(_loader(n=300, batch_size=64, drop_last=True)) == 4


def test_unshuffled_unaugmented_batches_are_the_normalised_images():
    images = torch.full((10, 3, 32, 32), 128, dtype=torch.uint8)
    x, y = next(iter(DeviceLoader(images, torch.arange(10), 4)))
    expected = (128 / 255 - CIFAR100_MEAN[0]) / 0.2673
    assert torch.allclose(x[:, 0], torch.full((4, 32, 32), expected), atol=1e-5)
    assert y.tolist() == [0, 1, 2, 3]


def test_make_data_splits_the_synthetic_set(synth_root):
    data = make_data(synth_root, batch_size=64, eval_batch_size=250, augment="flip-crop", device="cpu")
    assert data.synthetic and data.meta.fine_label_names[0] == "apple"
    assert data.train.num_examples() == 1600 and data.val.num_examples() == 400
    assert data.test.num_examples() == 500 and len(data.test) == 2
    assert data.train.augment == AUGMENT_PRESETS["flip-crop"] and data.val.augment is None
    full = make_data(synth_root, full_train=True, batch_size=64)
    assert full.val is None and full.train.num_examples() == 2000
    x, y = next(iter(full.train))
    assert x.shape == (64, 3, 32, 32) and y.dtype == torch.int64


def test_torchvision_baseline_yields_the_same_kind_of_batches(synth_root):
    loader = make_torchvision_loader(
        synth_root, "train", indices=np.arange(100), batch_size=32, augment="report-a", num_workers=0, seed=1
    )
    batches = list(loader)
    assert len(batches) == 4
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (32, 3, 32, 32) and y.dtype == torch.int64
    assert -3 < x.mean() < 3


@pytest.mark.slow
def test_a_small_cnn_learns_the_synthetic_classes(synth_root):
    torch.manual_seed(0)
    data = make_data(synth_root, full_train=True, batch_size=64, seed=0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.BatchNorm2d(32),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1),
        torch.nn.BatchNorm2d(64),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 100),
    )
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    for epoch in range(3):
        data.train.set_epoch(epoch)
        for x, y in data.train:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        correct = sum((net(x).argmax(1) == y).sum().item() for x, y in data.test)
    assert correct / 500 > 0.08  # chance is 0.01


def test_batch_of_a_step_is_the_same_as_reading_epoch_after_epoch():
    """Batch `step` is a pure function of (seed, step): what a run resumed mid-epoch reads."""
    loader = _loader(n=300, batch_size=64, augment="report-a", drop_last=True)
    continuous = _epoch(loader, 0) + _epoch(loader, 1)
    fresh = _loader(n=300, batch_size=64, augment="report-a", drop_last=True)
    for step in (6, 5, 0, 3, 7):  # any order: nothing depends on what was read before
        x, y = fresh.batch(step)
        assert torch.equal(x, continuous[step][0]) and torch.equal(y, continuous[step][1]), step
    resumed = list(_loader(n=300, batch_size=64, augment="report-a", drop_last=True).epoch(1, start=2))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(resumed, continuous[4 + 2:], strict=True))


def test_an_epoch_built_in_chunks_equals_one_built_at_once():
    whole = _epoch(_loader(n=300, batch_size=32, augment="report-a"), 3)
    chunked_loader = _loader(n=300, batch_size=32, augment="report-a", chunk_images=70)
    assert chunked_loader.chunk_images == 64  # whole batches only
    chunked = _epoch(chunked_loader, 3)
    for (xa, ya), (xb, yb) in zip(whole, chunked, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_batches_come_in_the_training_dtype_and_memory_format():
    x, _ = _loader(dtype=torch.bfloat16, channels_last=True).batch(0)
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)
    reference, _ = _loader().batch(0)
    assert torch.allclose(x.float(), reference, atol=0.05)  # the same images, rounded to bf16


def test_gan_normalisation_maps_pixels_to_minus_one_one():
    from cifar_core.data.loader import GAN_NORMALIZATION

    images = torch.tensor([0, 255], dtype=torch.uint8).repeat_interleave(3 * 32 * 32).reshape(2, 3, 32, 32)
    x, _ = DeviceLoader(images, torch.arange(2), 2, normalization=GAN_NORMALIZATION).batch(0)
    assert torch.equal(x[0], torch.full((3, 32, 32), -1.0)) and torch.equal(x[1], torch.ones(3, 32, 32))


def test_evaluation_split_is_normalised_once():
    loader = DeviceLoader(torch.zeros(10, 3, 32, 32, dtype=torch.uint8), torch.arange(10), 4)
    first, second = list(loader), list(loader)
    assert [x.data_ptr() for x, _ in first] == [x.data_ptr() for x, _ in second]


def test_a_validation_fraction_that_leaves_nothing_to_train_on_says_so(tmp_path):
    from cifar_core.data import write_synthetic

    root = write_synthetic(tmp_path, n_train=2, n_test=2, seed=0)
    with pytest.raises(ConfigError, match="holds out all 2 training images"):
        make_data(root, val_fraction=0.8, batch_size=1)
