"""Settings of a DCGAN run. Defaults are report B's (batch 128, Adam 2e-4, beta1 0.5, 46,000 steps)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cifar_core.errors import ConfigError
from cifar_core.seeds import check_seed


@dataclass
class CollapseConfig:
    """When a run counts as collapsed and what recovery does. Checked once per logging interval."""

    warmup_steps: int = 1000  # no judgement before this step: early losses swing and BN statistics settle
    window_steps: int = 1000  # a symptom must persist this many steps before it counts as collapse
    d_loss_floor: float = 0.05  # "discriminator wins": D loss (real + fake BCE) below this ...
    g_loss_ceiling: float = 5.0  # ... while G loss stays above this (D(G(z)) < e^-5, about 0.7%)
    diversity_fraction: float = 0.2  # "diversity collapse": samples' spread below this x its healthy level
    max_recoveries: int = 3  # rollbacks allowed per run; 0 detects and logs only
    lr_factor: float = 0.5  # each recovery multiplies both learning rates by this

    def validate(self) -> None:
        _require_finite(self, "collapse.")
        _require(self.warmup_steps >= 0, "collapse.warmup_steps", self.warmup_steps, "must be >= 0")
        _require(self.window_steps >= 0, "collapse.window_steps", self.window_steps, "must be >= 0")
        _require(self.d_loss_floor >= 0, "collapse.d_loss_floor", self.d_loss_floor, "must be >= 0")
        _require(self.g_loss_ceiling > 0, "collapse.g_loss_ceiling", self.g_loss_ceiling, "must be > 0")
        _require(
            0 <= self.diversity_fraction < 1,
            "collapse.diversity_fraction",
            self.diversity_fraction,
            "must be in [0, 1)",
        )
        _require(self.max_recoveries >= 0, "collapse.max_recoveries", self.max_recoveries, "must be >= 0")
        _require(0 < self.lr_factor <= 1, "collapse.lr_factor", self.lr_factor, "must be in (0, 1]")


@dataclass
class GanTrainConfig:
    steps: int = 46000  # optimisation steps (one D and one G update each); report B kept step 46,000
    batch_size: int = 128
    lr: float = 2e-4  # Adam, both networks
    beta1: float = 0.5  # DCGAN's momentum: the usual 0.9 makes GAN training oscillate
    beta2: float = 0.999
    nz: int = 100  # noise dimension
    ngf: int = 46  # generator width (channels of its last hidden layer)
    ndf: int = 46  # discriminator width (channels of its first layer)
    conditional: bool = False  # class-conditional G and D
    # Random horizontal flips of the real images. Off by default: neither report B nor the PyTorch
    # DCGAN tutorial it follows flips them, and the generator then learns the images as they are.
    hflip: bool = False
    seed: int = 0  # initial weights, noise, data order and flips (any integer in [0, 2^63 - 1])
    log_every: int = 100  # steps per metrics row (and per collapse check)
    sample_every: int = 1000  # steps per fixed-noise sample grid
    checkpoint_every: int = 2000  # steps per kept snapshot checkpoints/step_<N>.pt (and last.pt)
    collapse: CollapseConfig = field(default_factory=CollapseConfig)

    def validate(self) -> GanTrainConfig:
        for name in (
            "steps",
            "batch_size",
            "nz",
            "ngf",
            "ndf",
            "log_every",
            "sample_every",
            "checkpoint_every",
        ):
            _require(getattr(self, name) > 0, name, getattr(self, name), "must be > 0")
        _require_finite(self, "")
        _require(self.lr > 0, "lr", self.lr, "must be > 0")
        check_seed(self.seed, "gan config seed")
        _require(0 <= self.beta1 < 1, "beta1", self.beta1, "must be in [0, 1)")
        _require(0 <= self.beta2 < 1, "beta2", self.beta2, "must be in [0, 1)")
        self.collapse.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GanTrainConfig:
        values = dict(values)
        collapse = values.pop("collapse", {}) or {}
        _reject_unknown(cls, values, "")
        _reject_unknown(CollapseConfig, collapse, "collapse.")
        return cls(**values, collapse=CollapseConfig(**collapse)).validate()


# A run's identity: resuming with any of these changed would no longer continue the same run.
FIXED_AT_START = ("batch_size", "lr", "beta1", "beta2", "nz", "ngf", "ndf", "conditional", "hflip", "seed")


def resume_conflict(saved: dict[str, Any], wanted: GanTrainConfig) -> str | None:
    """The first setting that differs from the saved run's and may not change, as a message."""
    for name in FIXED_AT_START:
        if saved.get(name) != getattr(wanted, name):
            return f"{name} was {saved.get(name)!r}, now {getattr(wanted, name)!r}"
    return None


def _require_finite(config: Any, prefix: str) -> None:
    """Every float setting must be a finite number (`--lr inf` trained a run into NaN)."""
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"gan config {prefix}{f.name}={value!r}: must be a finite number")


def _require(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"gan config {key}={value!r}: {rule}")


def _reject_unknown(cls: type, values: dict[str, Any], prefix: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown gan config key {prefix}{unknown[0]!r}; known: {', '.join(sorted(known))}")
