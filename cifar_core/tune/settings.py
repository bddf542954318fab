"""What one search is: `TuneSettings`, with report A's protocol as the defaults.

Kept apart from search.py (which imports Ray) so that the CLI can show these defaults in --help
without importing Ray. Each setting is declared once with its help and range (`cifar_core.fields`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cifar_core.fields import above, at_least, check_fields, require, setting
from cifar_core.names import check_name
from cifar_core.seeds import check_seed

AT_LEAST_ONE = at_least(1)


def _check_experiment(name: str, key: str) -> None:
    check_name(name, key)


@dataclass(frozen=True)
class TuneSettings:
    experiment: str = setting(help="Experiment name: results go to RESULTS/tune/NAME/.", check=_check_experiment)
    space: str = setting("report-a", "Search space: report-a, modern, or a YAML file in the same format.")
    num_samples: int = setting(60, "Trials sampled from the space (report A: 60).", range=AT_LEAST_ONE)
    # Resources and top_k may change when a search is resumed (they are its budget, not what it searches).
    max_concurrent: int = setting(16, "Trials running at once, at most (report A: 16).", range=AT_LEAST_ONE,
                                  resumable=True)
    max_epochs: int = setting(30, "ASHA's max_t: epochs a surviving trial trains (report A: 30).", unit="epochs",
                              range=AT_LEAST_ONE)
    grace_period: int = setting(1, "Epochs before ASHA may stop a trial.", unit="epochs", range=AT_LEAST_ONE)
    reduction_factor: int = setting(2, "ASHA keeps the top 1/N at each rung (report A: 2, the better half).",
                                    range=at_least(2))
    cpus_per_trial: float = setting(1.0, "CPU cores reserved per trial.", range=above(0), resumable=True)
    gpus_per_trial: float | None = setting(None, "GPU share per trial.", range=at_least(0), resumable=True,
                                           none_means="the cluster's GPUs shared among max_concurrent trials")
    batch_size: int | None = setting(None, "Training batch size.", range=AT_LEAST_ONE,
                                     none_means="the space's, else TrainConfig's 128")
    seed: int = setting(0, "Seed of the sampled configs and of every trial's training.", check=check_seed)
    device: str = setting("auto", "auto: cuda when the trial has a GPU share, else cpu.", resumable=True)
    top_k: int = setting(3, "Configs listed in top_k.json (and offered to `cifar retrain`).", range=AT_LEAST_ONE,
                         resumable=True)

    def validate(self) -> None:
        check_fields(self, "tune.")
        require(self.grace_period <= self.max_epochs, "tune.grace_period", self.grace_period,
                f"<= tune.max_epochs ({self.max_epochs})")


# What --smoke shrinks the search to: minutes on a laptop CPU, every stage still exercised.
SMOKE_LIMITS = {"num_samples": 4, "max_epochs": 2, "max_concurrent": 4}


def smoke_settings(settings: TuneSettings) -> TuneSettings:
    return dataclasses.replace(settings, **{k: min(getattr(settings, k), v) for k, v in SMOKE_LIMITS.items()})
