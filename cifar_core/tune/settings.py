"""What one search is: `TuneSettings`, with report A's protocol as the defaults.

Kept apart from search.py (which imports Ray) so that the CLI can show these defaults in --help
without importing Ray.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from cifar_core.errors import ConfigError
from cifar_core.names import check_name


@dataclass(frozen=True)
class TuneSettings:
    experiment: str
    space: str = "report-a"  # a shipped space name or a YAML file
    num_samples: int = 60  # trials sampled (report A: 60)
    max_concurrent: int = 16  # trials running at once, at most (report A: 16)
    max_epochs: int = 30  # ASHA's max_t: epochs a surviving trial trains (report A: 30)
    grace_period: int = 1  # epochs before ASHA may stop a trial
    reduction_factor: int = 2  # keep the top 1/reduction_factor at each rung (report A: top half)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: share the cluster's GPUs among max_concurrent trials
    batch_size: int | None = None  # None: the space's value, else TrainConfig's default (128)
    seed: int = 0  # sampling of configs and every trial's training seed
    device: str = "auto"  # auto: cuda when the trial has a GPU share, else cpu
    top_k: int = 3  # configs listed in top_k.json (and offered to `cifar retrain`)

    def validate(self) -> None:
        check_name(self.experiment, "experiment name")
        for key in ("num_samples", "max_concurrent", "max_epochs", "grace_period", "top_k"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} = {getattr(self, key)} must be >= 1")
        if self.grace_period > self.max_epochs:
            raise ConfigError(f"grace_period = {self.grace_period} must be <= max_epochs = {self.max_epochs}")
        if self.reduction_factor < 2:
            raise ConfigError(f"reduction_factor = {self.reduction_factor} must be >= 2")
        if not (math.isfinite(self.cpus_per_trial) and self.cpus_per_trial > 0):
            raise ConfigError(f"cpus_per_trial = {self.cpus_per_trial} must be a finite number > 0")
        if self.gpus_per_trial is not None and not (math.isfinite(self.gpus_per_trial) and self.gpus_per_trial >= 0):
            raise ConfigError(f"gpus_per_trial = {self.gpus_per_trial} must be a finite number >= 0")


# What --smoke shrinks the search to: minutes on a laptop CPU, every stage still exercised.
SMOKE_LIMITS = {"num_samples": 4, "max_epochs": 2, "max_concurrent": 4}


def smoke_settings(settings: TuneSettings) -> TuneSettings:
    return dataclasses.replace(settings, **{k: min(getattr(settings, k), v) for k, v in SMOKE_LIMITS.items()})
