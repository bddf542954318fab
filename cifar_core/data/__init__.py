"""CIFAR-100 data: the official file format, a synthetic stand-in, splits, batched augmentation
and device-resident loaders. See docs/CONTRACTS.md for the interface the other parts rely on."""

from cifar_core.data.augment import (
    AUGMENT_PRESETS,
    CIFAR100_MEAN,
    CIFAR100_STD,
    AugmentConfig,
    apply_augment,
    normalize,
    resolve_augment,
    sample_augment_params,
)
from cifar_core.data.format import (
    CifarMeta,
    CifarSplit,
    is_synthetic,
    load_meta,
    load_split,
    official_meta,
    resolve_root,
)
from cifar_core.data.identity import check_same_data, data_digest
from cifar_core.data.loader import DataBundle, DeviceLoader, make_data, make_test_loader
from cifar_core.data.splits import train_val_indices
from cifar_core.data.synth import write_synthetic
from cifar_core.data.tv_loader import make_torchvision_loader, torchvision_cifar100
from cifar_core.data.verify import fetch_cifar100, verify_dataset

__all__ = [
    "AUGMENT_PRESETS",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "AugmentConfig",
    "CifarMeta",
    "CifarSplit",
    "DataBundle",
    "DeviceLoader",
    "apply_augment",
    "check_same_data",
    "data_digest",
    "fetch_cifar100",
    "is_synthetic",
    "load_meta",
    "load_split",
    "make_data",
    "make_test_loader",
    "make_torchvision_loader",
    "normalize",
    "official_meta",
    "resolve_augment",
    "resolve_root",
    "sample_augment_params",
    "torchvision_cifar100",
    "train_val_indices",
    "verify_dataset",
    "write_synthetic",
]
