"""The classic input pipeline, kept as the benchmark baseline: torchvision's CIFAR100 reader,
PIL transforms per image in DataLoader workers. Same augmentations as `augment.py`, made with
torchvision.transforms (reflect-padded crop, flip, bilinear rotation, ColorJitter).

torchvision is imported inside the functions: it takes seconds to import, and most commands
(the CLI, the device loader) never need it.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from cifar_core.data import format as fmt
from cifar_core.data.augment import CIFAR100_MEAN, CIFAR100_STD, AugmentConfig, resolve_augment
from cifar_core.errors import DataError


def torchvision_cifar100(root: str | os.PathLike, train: bool, transform=None):
    """torchvision's own CIFAR100 reader over our folder.

    torchvision checks each file against the official md5s. For a synthetic set we hand it the
    md5s from the set's manifest instead (a subclass that changes only those class attributes);
    the reading code is torchvision's, unchanged.
    """
    from torchvision import datasets

    folder = fmt.resolve_root(root)
    manifest = fmt.read_manifest(folder)
    reader = datasets.CIFAR100
    if manifest is not None:
        md5 = manifest["md5"]
        reader = type(
            "SyntheticCIFAR100",
            (datasets.CIFAR100,),
            {
                "train_list": [["train", md5["train"]]],
                "test_list": [["test", md5["test"]]],
                "meta": {"filename": "meta", "key": "fine_label_names", "md5": md5["meta"]},
            },
        )
    try:
        return reader(str(folder.parent), train=train, transform=transform, download=False)
    except RuntimeError as exc:
        raise DataError(f"torchvision cannot read {folder}: {exc}") from None


def torchvision_transform(cfg: AugmentConfig):
    from torchvision import transforms

    steps: list = []
    if cfg.crop_padding:
        steps.append(transforms.RandomCrop(32, padding=cfg.crop_padding, padding_mode="reflect"))
    if cfg.hflip:
        steps.append(transforms.RandomHorizontalFlip())
    if cfg.rotation:
        steps.append(
            transforms.RandomRotation(cfg.rotation, interpolation=transforms.InterpolationMode.BILINEAR)
        )
    if any(cfg.jitter):
        steps.append(transforms.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue))
    steps += [transforms.ToTensor(), transforms.Normalize(CIFAR100_MEAN, CIFAR100_STD)]
    return transforms.Compose(steps)


def make_torchvision_loader(
    root: str | os.PathLike,
    split: str = "train",
    *,
    indices: np.ndarray | None = None,
    batch_size: int = 128,
    augment: AugmentConfig | str | dict | None = None,
    shuffle: bool | None = None,
    num_workers: int = 2,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader yielding (x float32 normalised [B, 3, 32, 32], y int64 [B]) like DeviceLoader.

    `shuffle` defaults to True for the train split; `indices` picks a subset (e.g. the 40,000
    of `train_val_indices`). Worker seeds come from `seed`, so runs repeat.
    """
    if split not in fmt.SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(fmt.SPLITS)}")
    dataset = torchvision_cifar100(root, split == "train", torchvision_transform(resolve_augment(augment)))
    if indices is not None:
        dataset = Subset(dataset, [int(i) for i in indices])
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=(split == "train") if shuffle is None else shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
