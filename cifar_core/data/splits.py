"""The train/validation split: a fixed function of (n, val_fraction, seed)."""

from __future__ import annotations

import numpy as np

from cifar_core.errors import ConfigError


def train_val_indices(n: int, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint, sorted int64 index arrays covering range(n); 50,000 at 0.2 gives 40,000 / 10,000.

    The permutation comes from its own generator seeded by `seed` alone, so the split never
    depends on the training seed or on anything drawn before it.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if n < 1:
        raise ConfigError(f"cannot split {n} examples")
    n_val = int(round(n * val_fraction))
    order = np.random.default_rng(seed).permutation(n)
    # Sorted, so a split reads the data in file order (cache friendly, easy to compare).
    return np.sort(order[n_val:]).astype(np.int64), np.sort(order[:n_val]).astype(np.int64)
