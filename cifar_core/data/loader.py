"""One device-resident loader for the classifier and the GAN, made the airbench way.

An epoch's order and augmentation are drawn up front on the CPU (stream (seed, "data", epoch), so
every device sees the same draws), then applied to the on-device uint8 split in a few batched
kernels, chunk by chunk to bound memory. Batch `step` is a pure function of (seed, step): a resumed
run rebuilds exactly the chunk it stopped in.
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
    CIFAR100_MEAN,
    CIFAR100_STD,
    AugmentConfig,
    apply_augment,
    normalize,
    resolve_augment,
    sample_augment_params,
)
from cifar_core.data.identity import data_digest
from cifar_core.data.splits import train_val_indices
from cifar_core.device import resolve_device
from cifar_core.errors import ConfigError, DataError
from cifar_core.seeds import generator

Normalization = tuple[tuple[float, float, float], tuple[float, float, float]]
CLASSIFIER_NORMALIZATION: Normalization = (CIFAR100_MEAN, CIFAR100_STD)
GAN_NORMALIZATION: Normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # [0, 1] -> [-1, 1], as DCGAN's tanh
CHUNK_IMAGES = 10_000  # images augmented at once: ~120 MB of float32 plus the augmentations' temporaries


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of epoch `epoch`'s order and augmentation draws."""
    return generator(seed, "data", epoch)


class DeviceLoader:
    """(x [B, 3, 32, 32] normalised, in `dtype` and memory format, y int64 [B]) from tensors on a device."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        *,
        normalization: Normalization = CLASSIFIER_NORMALIZATION,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        chunk_images: int = CHUNK_IMAGES,
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
        self.normalization, self.dtype, self.channels_last = normalization, dtype, channels_last
        # Chunks hold whole batches, so a batch never straddles two of them.
        self.chunk_images = max(1, chunk_images // batch_size) * batch_size
        self.next_epoch = 0
        self._plan_key: tuple | None = None
        self._plan: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None
        self._chunk_key: tuple | None = None
        self._chunk: tuple[torch.Tensor, torch.Tensor] | None = None
        # An evaluation split: the same buffer every epoch, made on first use (a run that never
        # scores its test split never holds it in the training dtype).
        self._is_static = not shuffle and self.augment is None
        self._static: tuple[torch.Tensor, torch.Tensor] | None = None

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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch: the one `set_epoch` chose, else the one after the last (like a counting sampler)."""
        epoch, self.next_epoch = self.next_epoch, self.next_epoch + 1
        return self.epoch(epoch)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches `start`, `start + 1`, ... of epoch `epoch`."""
        for position in range(start, len(self)):
            yield self.batch_in_epoch(epoch, position)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number `step` of a run that reads this loader epoch after epoch."""
        return self.batch_in_epoch(*divmod(step, len(self)))

    def batch_in_epoch(self, epoch: int, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = position * self.batch_size
        if self._is_static:
            if self._static is None:
                self._static = (self._prepare(self.images), self.labels)
            x, y = self._static
            return x[first:first + self.batch_size], y[first:first + self.batch_size]
        chunk, offset = divmod(first, self.chunk_images)
        x, y = self._epoch_chunk(epoch, chunk)
        return x[offset:offset + self.batch_size], y[offset:offset + self.batch_size]

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(example order, augmentation draws in that order) for one epoch, on the device."""
        key = (self.seed, epoch)
        if self._plan_key != key:
            n = self.images.shape[0]
            draws = epoch_generator(self.seed, epoch)
            order = torch.randperm(n, generator=draws) if self.shuffle else torch.arange(n)
            params = sample_augment_params(self.augment, n, draws) if self.augment else {}
            self._plan = order.to(self.device), {k: v.to(self.device) for k, v in params.items()}
            self._plan_key = key
        return self._plan

    def _epoch_chunk(self, epoch: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (self.seed, epoch, chunk)
        if self._chunk_key != key:
            self._chunk = None  # free the previous chunk before making the next
            order, params = self.epoch_plan(epoch)
            used = len(self) * self.batch_size  # drop_last leaves the ragged tail out
            part = slice(chunk * self.chunk_images, min((chunk + 1) * self.chunk_images, used))
            index = order[part]
            self._chunk = (self._prepare(self.images[index], {k: v[part] for k, v in params.items()}), self.labels[index])
            self._chunk_key = key
        return self._chunk

    def _prepare(self, images: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """uint8 images -> augmented, normalised, in the training dtype and memory format."""
        out = []
        for start in range(0, images.shape[0], self.chunk_images):  # bounded temporaries
            x = images[start : start + self.chunk_images].float().div_(255)
            if self.augment and params:
                x = apply_augment(x, self.augment, {k: v[start : start + self.chunk_images] for k, v in params.items()})
            x = normalize(x, *self.normalization).to(self.dtype)
            out.append(x)
        x = torch.cat(out) if len(out) != 1 else out[0]
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()


@dataclass
class DataBundle:
    train: DeviceLoader
    val: DeviceLoader | None  # None when training on the full training set
    test: DeviceLoader
    meta: fmt.CifarMeta
    synthetic: bool
    root: Path | None = None
    digest: str | None = None  # data_digest(root): runs record it and refuse to resume on other data


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
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> DataBundle:
    """Load a dataset onto `device`: train (shuffled, augmented), validation and test loaders.

    With `full_train` the whole training set trains (for the final retraining) and `val` is None;
    otherwise `val_fraction` of it, chosen by `split_seed`, is held out. The test set stays apart.
    """
    folder = fmt.resolve_root(root)
    device = resolve_device(device)
    train_split, test_split = fmt.load_split(folder, "train"), fmt.load_split(folder, "test")
    if len(train_split) == 0:
        raise DataError(f"{folder / 'train'} holds no images")
    synthetic = (
        train_split.batch_label.startswith(fmt.SYNTHETIC_PREFIX) or (folder / fmt.MANIFEST_NAME).is_file()
    )
    if full_train or val_fraction == 0:
        train_index, val_index = None, None
    else:
        train_index, val_index = train_val_indices(len(train_split), val_fraction, split_seed)
        if len(train_index) == 0:
            raise ConfigError(
                f"run.val_fraction = {val_fraction} holds out all {len(train_split)} training images: none is left to train on"
            )
    layout = {"dtype": dtype, "channels_last": channels_last}
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
        **layout,
    )
    val = None
    if val_index is not None and len(val_index):
        val = DeviceLoader(*to_device_tensors(train_split, val_index, device), eval_batch_size, **layout)
    test = DeviceLoader(*to_device_tensors(test_split, None, device), eval_batch_size, **layout)
    return DataBundle(train, val, test, fmt.load_meta(folder), synthetic, folder, data_digest(folder))


def make_test_loader(
    root: str | os.PathLike,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    *,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> DeviceLoader:
    """Only the test split on `device`, in order: scoring a model needs nothing else."""
    folder = fmt.resolve_root(root)
    images, labels = to_device_tensors(fmt.load_split(folder, "test"), None, resolve_device(device))
    return DeviceLoader(images, labels, batch_size, dtype=dtype, channels_last=channels_last)
