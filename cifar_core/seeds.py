"""Every random stream of a run comes from one seed, through one derivation: `derive_seed`.

A stream is named by keys after the seed, e.g. (seed, "data", epoch) for an epoch's order and
augmentation or (seed, "init") for initial weights. numpy's SeedSequence mixes them, so streams of
neighbouring seeds or epochs are unrelated, and any seed in [0, 2^63 - 1] works (no arithmetic on
seeds that could overflow a 64-bit generator).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from cifar_core.errors import ConfigError

if TYPE_CHECKING:
    import torch

MAX_SEED = 2**63 - 1  # fits int64 everywhere a seed is stored (checkpoints, YAML, Ray configs)


def check_seed(value, key: str) -> int:
    """`value` if it is an integer seed in [0, MAX_SEED]; else a ConfigError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{key} = {value!r} is out of range: expected an integer in [0, 2^63 - 1]")
    return value


def derive_seed(seed: int, *stream: int | str) -> int:
    """A 63-bit seed for the stream `stream` of `seed` (keys: non-negative ints or strings)."""
    import numpy as np  # here, not above: the CLI checks seeds (check_seed) before it needs numpy or torch

    entropy = [check_seed(seed, "seed"), *(_key(k) for k in stream)]
    low, high = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return (int(high) << 32 | int(low)) & MAX_SEED


def generator(seed: int, *stream: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator on `device` for the stream `stream` of `seed`."""
    import torch

    return torch.Generator(device=device).manual_seed(derive_seed(seed, *stream))


def _key(key: int | str) -> int:
    if isinstance(key, str):
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    if isinstance(key, bool) or not isinstance(key, int) or key < 0:
        raise ValueError(f"stream keys are non-negative ints or strings, got {key!r}")
    return key
