"""Batches straight from device memory: the whole uint8 split lives on the training device.

Each epoch's shuffle order and augmentation draws are made up front from a torch.Generator
seeded by (seed, epoch), on the CPU, so a resumed run (or a run on another device) sees exactly
the same batches. Per batch the work is one gather, the batched augmentations and normalisation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cifar_core.data import format as fmt
from cifar_core.data.augment import (
    AugmentConfig,
    apply_augment,
    normalize,
    resolve_augment,
    sample_augment_params,
)
from cifar_core.data.splits import train_val_indices
from cifar_core.device import resolve_device
from cifar_core.errors import ConfigError


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator whose stream depends only on (seed, epoch), well mixed by SeedSequence."""
    if seed < 0 or epoch < 0:
        raise ConfigError(f"seed and epoch must be >= 0 (got seed={seed}, epoch={epoch})")
    state = np.random.SeedSequence((seed, epoch)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class DeviceLoader:
    """Iterate (x float32 normalised [B, 3, 32, 32], y int64 [B]) over tensors already on a device.

    `set_epoch(e)` fixes the next pass to epoch e; a pass without it takes the epoch after the
    last one, so forgetting to call it still reshuffles (like a sampler that counts for itself).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(
                f"DeviceLoader wants uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != images.shape[:1]:
            raise ConfigError(f"{labels.shape[0]} labels for {images.shape[0]} images")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.images, self.labels = images, labels.to(images.device, torch.int64)
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.augment = augment if augment is not None and augment.enabled else None
        self.next_epoch = 0

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def num_examples(self) -> int:
        return self.images.shape[0]

    def set_epoch(self, epoch: int) -> None:
        self.next_epoch = epoch

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(example order, augmentation draws in that order) for one epoch, on the device."""
        n = self.images.shape[0]
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        params = sample_augment_params(self.augment, n, generator) if self.augment else {}
        return order.to(self.device), {k: v.to(self.device) for k, v in params.items()}

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, self.next_epoch = self.next_epoch, self.next_epoch + 1
        order, params = self.epoch_plan(epoch)
        for batch in range(len(self)):
            part = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            index = order[part]
            x = self.images[index].float().div_(255)
            if self.augment:
                x = apply_augment(x, self.augment, {k: v[part] for k, v in params.items()})
            yield normalize(x), self.labels[index]


@dataclass
class DataBundle:
    train: DeviceLoader
    val: DeviceLoader | None  # None when training on the full training set
    test: DeviceLoader
    meta: fmt.CifarMeta
    synthetic: bool
    root: Path | None = None


def to_device_tensors(split: fmt.CifarSplit, index: np.ndarray | None, device: torch.device):
    """(uint8 [N, 3, 32, 32], int64 [N]) on `device`, optionally a subset by `index`."""
    images, labels = split.images, split.fine_labels
    if index is not None:
        images, labels = images[index], labels[index]
    chw = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    return chw.to(device), torch.from_numpy(np.ascontiguousarray(labels)).to(device)


def make_data(
    root: str | os.PathLike,
    *,
    full_train: bool = False,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    batch_size: int = 128,
    eval_batch_size: int = 512,
    augment: AugmentConfig | str | dict | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> DataBundle:
    """Load a dataset onto `device`: train (shuffled, augmented), validation and test loaders.

    With `full_train` the whole training set trains (for the final retraining) and `val` is None;
    otherwise `val_fraction` of it, chosen by `split_seed`, is held out. The test set stays apart.
    """
    folder = fmt.resolve_root(root)
    device = resolve_device(device)
    train_split, test_split = fmt.load_split(folder, "train"), fmt.load_split(folder, "test")
    synthetic = (
        train_split.batch_label.startswith(fmt.SYNTHETIC_PREFIX) or (folder / fmt.MANIFEST_NAME).is_file()
    )
    if full_train or val_fraction == 0:
        train_index, val_index = None, None
    else:
        train_index, val_index = train_val_indices(len(train_split), val_fraction, split_seed)
    train_x, train_y = to_device_tensors(train_split, train_index, device)
    # Drop a ragged last batch (BatchNorm dislikes tiny ones) unless that would leave none.
    train = DeviceLoader(
        train_x,
        train_y,
        batch_size,
        shuffle=True,
        drop_last=len(train_y) >= batch_size,
        augment=resolve_augment(augment),
        seed=seed,
    )
    val = None
    if val_index is not None and len(val_index):
        val = DeviceLoader(*to_device_tensors(train_split, val_index, device), eval_batch_size)
    test = DeviceLoader(*to_device_tensors(test_split, None, device), eval_batch_size)
    return DataBundle(train, val, test, fmt.load_meta(folder), synthetic, folder)


def make_test_loader(root: str | os.PathLike, batch_size: int = 512, device: str | torch.device = "cpu") -> DeviceLoader:
    """Only the test split on `device`, in order: scoring a model needs nothing else."""
    folder = fmt.resolve_root(root)
    return DeviceLoader(*to_device_tensors(fmt.load_split(folder, "test"), None, resolve_device(device)), batch_size)
