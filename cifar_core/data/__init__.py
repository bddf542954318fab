"""CIFAR-100 data: the official file format, a synthetic stand-in, splits, batched augmentation
and device-resident loaders. See docs/CONTRACTS.md for the interface the other parts rely on.

Names are imported from their module on first use (PEP 562): `cifar data verify` (the chart's
probe, in a small pod) reads the files without loading torch, which augmentation and the loaders
need (measured: 41 MiB peak RSS instead of 703 MiB).
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "AUGMENT_PRESETS": "augment_config",
    "CIFAR100_MEAN": "augment",
    "CIFAR100_STD": "augment",
    "AugmentConfig": "augment_config",
    "apply_augment": "augment",
    "normalize": "augment",
    "resolve_augment": "augment_config",
    "sample_augment_params": "augment",
    "CifarMeta": "format",
    "CifarSplit": "format",
    "is_synthetic": "format",
    "load_meta": "format",
    "load_split": "format",
    "official_meta": "format",
    "resolve_root": "format",
    "check_same_data": "identity",
    "data_digest": "identity",
    "data_digest_or_none": "identity",
    "DataBundle": "loader",
    "DeviceLoader": "loader",
    "make_data": "loader",
    "make_test_loader": "loader",
    "train_val_indices": "splits",
    "write_synthetic": "synth",
    "make_torchvision_loader": "tv_loader",
    "torchvision_cifar100": "tv_loader",
    "fetch_cifar100": "verify",
    "verify_dataset": "verify",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # once imported, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

