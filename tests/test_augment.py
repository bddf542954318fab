"""Each batched augmentation does what it says; torchvision's functional ops are the reference."""

from __future__ import annotations

import pytest
import torch

from cifar_core.data import augment as aug
from cifar_core.data.augment import AUGMENT_PRESETS, AugmentConfig, resolve_augment
from cifar_core.errors import ConfigError


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_hflip_flips_exactly_the_chosen_images(images):
    flip = torch.tensor([True, False, True, False, False, True])
    out = aug.hflip(images, flip)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.equal(out[flip], images[flip].flip(-1))
    assert torch.equal(out[~flip], images[~flip])


def test_crop_shifts_by_the_padding(images):
    p = 4
    shift = torch.tensor([[p, p], [0, 0], [2 * p, 2 * p], [0, 2 * p], [p, 0], [1, 7]])
    out = aug.crop_with_padding(images, shift, p)
    assert out.shape == images.shape
    assert torch.equal(out[0], images[0])  # centred window: unchanged
    assert torch.equal(out[1][:, p:, p:], images[1][:, :-p, :-p])  # moved down-right by p
    assert torch.equal(out[2][:, :-p, :-p], images[2][:, p:, p:])  # moved up-left by p
    assert torch.equal(out[3][:, p:, :-p], images[3][:, :-p, p:])  # down and left
    # Reflect padding: the row above row 0 mirrors row 1.
    assert torch.equal(out[1][:, p - 1, p:], images[1][:, 1, :-p])
    assert torch.equal(out[5][:, 3:, :-3], images[5][:, :-3, 3:])  # shift (1, 7): down 3, left 3


def test_rotation_by_90_degrees_is_rot90(images):
    out = aug.rotate(images, torch.full((6,), 90.0))
    assert torch.allclose(
        out[..., 1:-1, 1:-1], torch.rot90(images, 1, dims=(-2, -1))[..., 1:-1, 1:-1], atol=1e-5
    )
    assert torch.allclose(
        aug.rotate(images, torch.full((6,), -90.0)), torch.rot90(images, -1, dims=(-2, -1)), atol=1e-5
    )
    assert torch.allclose(aug.rotate(images, torch.zeros(6)), images, atol=1e-5)


def test_rotation_matches_torchvision_per_image(images):
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    angles = torch.tensor([30.0, -15.0, 5.0, 0.0, 170.0, -45.0])
    ours = aug.rotate(images, angles)
    theirs = torch.stack(
        [TF.rotate(x, float(a), InterpolationMode.BILINEAR) for x, a in zip(images, angles, strict=True)]
    )
    assert torch.allclose(ours[..., 8:-8, 8:-8], theirs[..., 8:-8, 8:-8], atol=1e-4)


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "hue"])
def test_colour_ops_match_torchvision_functional(images, name):
    import torchvision.transforms.functional as TF

    factors = (
        torch.tensor([0.0, 0.5, 0.9, 1.0, 1.4, 2.0])
        if name != "hue"
        else torch.tensor([-0.5, -0.2, 0.0, 0.1, 0.3, 0.5])
    )
    ours = getattr(aug, f"adjust_{name}")(images, factors)
    theirs = torch.stack(
        [getattr(TF, f"adjust_{name}")(x, float(f)) for x, f in zip(images, factors, strict=True)]
    )
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_colour_ops_move_statistics_the_right_way(images):
    ones = torch.ones(6)
    assert (aug.adjust_brightness(images, 0.5 * ones).mean((1, 2, 3)) < images.mean((1, 2, 3))).all()
    assert (aug.adjust_contrast(images, 0.5 * ones).std((1, 2, 3)) < images.std((1, 2, 3))).all()
    gray = aug.adjust_saturation(images, 0 * ones)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    green = aug.adjust_hue(red, torch.tensor([1 / 3]))  # a third of a turn: red becomes green
    assert torch.allclose(green[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)


def test_color_jitter_follows_each_images_own_order(images):
    factors = torch.tensor([[1.3, 0.6, 1.5, 0.1]]).repeat(6, 1)
    order = torch.stack([torch.randperm(4, generator=torch.Generator().manual_seed(i)) for i in range(6)])
    out = aug.color_jitter(images, factors, order)
    fns = [aug.adjust_brightness, aug.adjust_contrast, aug.adjust_saturation, aug.adjust_hue]
    for i in range(6):
        x = images[i : i + 1]
        for op in order[i].tolist():
            x = fns[op](x, factors[i : i + 1, op])
        assert torch.allclose(out[i : i + 1], x, atol=1e-6)
    identity = torch.tensor([[1.0, 1.0, 1.0, 0.0]]).repeat(6, 1)
    assert torch.allclose(aug.color_jitter(images, identity, order), images, atol=1e-5)


def test_draws_respect_ranges_and_repeat_with_the_generator():
    cfg = AUGMENT_PRESETS["report-a"]
    a = aug.sample_augment_params(cfg, 4000, torch.Generator().manual_seed(1))
    b = aug.sample_augment_params(cfg, 4000, torch.Generator().manual_seed(1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["shift"].min() == 0 and a["shift"].max() == 8
    assert 0.4 < a["flip"].float().mean() < 0.6
    assert a["angle"].abs().max() <= 15.0
    low, high = a["jitter"].min(0).values, a["jitter"].max(0).values
    assert (low[:3] >= 0.8).all() and (high[:3] <= 1.2).all() and low[3] >= -0.05 and high[3] <= 0.05
    assert (a["jitter_order"].sort(1).values == torch.arange(4)).all()  # each row a permutation
    assert aug.sample_augment_params(AugmentConfig(), 10, torch.Generator()) == {}


def test_disabled_augmentation_is_identity(images):
    assert torch.equal(aug.apply_augment(images, AugmentConfig(), {}), images)
    cfg = AugmentConfig(hflip=True)  # flips only: the other images come back untouched
    params = aug.sample_augment_params(cfg, 6, torch.Generator().manual_seed(0))
    assert set(params) == {"flip"} and 0 < int(params["flip"].sum()) < 6
    expected = torch.where(params["flip"][:, None, None, None], images.flip(-1), images)
    assert torch.equal(aug.apply_augment(images, cfg, params), expected)


def test_full_pipeline_keeps_shape_dtype_and_range(images):
    cfg = AUGMENT_PRESETS["report-a"]
    out = aug.apply_augment(images, cfg, aug.sample_augment_params(cfg, 6, torch.Generator().manual_seed(2)))
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


def test_normalize_uses_cifar100_statistics():
    x = torch.tensor(aug.CIFAR100_MEAN)[None, :, None, None].expand(2, 3, 4, 4)
    assert torch.allclose(aug.normalize(x), torch.zeros(2, 3, 4, 4), atol=1e-6)


def test_config_rejects_unknown_keys_wrong_types_and_bad_ranges():
    assert AugmentConfig.from_dict({"hflip": True, "crop_padding": 4, "hue": 0.1}) == AugmentConfig(
        True, 4, hue=0.1
    )
    with pytest.raises(ConfigError, match="unknown setting 'augment.cutout'"):
        AugmentConfig.from_dict({"cutout": 8})
    with pytest.raises(ConfigError, match="augment.crop_padding = 4.5 has the wrong type: expected int"):
        AugmentConfig.from_dict({"crop_padding": 4.5})
    with pytest.raises(ConfigError, match="augment.hflip = 1 has the wrong type: expected bool"):
        AugmentConfig.from_dict({"hflip": 1})
    with pytest.raises(ConfigError, match=r"augment.hue = 0.7 is out of range: expected in \[0, 0.5\]"):
        AugmentConfig(hue=0.7)
    with pytest.raises(ConfigError, match=r"augment.crop_padding = 17 is out of range: expected in \[0, 16\]"):
        AugmentConfig(crop_padding=17)
    with pytest.raises(ConfigError, match="unknown augmentation preset"):
        resolve_augment("autoaugment")
    assert resolve_augment(None) == AugmentConfig() and resolve_augment("flip-crop").crop_padding == 4
    assert set(AUGMENT_PRESETS) == {"none", "flip-crop", "report-a"}
