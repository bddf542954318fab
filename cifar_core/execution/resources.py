"""`Resources`: what one unit of a stage's work reserves on a cluster, a declared setting like any other."""

from __future__ import annotations

from dataclasses import dataclass

from cifar_core.device import pick_device
from cifar_core.errors import ConfigError
from cifar_core.fields import above, at_least, check_fields, setting


def _whole_above_one(value: float, key: str) -> None:
    if value > 1 and value != int(value):
        raise ConfigError(f"{key} = {value:g}: a share above 1 GPU must be a whole number")


@dataclass(frozen=True)
class Resources:
    """What one task of a stage reserves: CPU cores and a GPU share (fractions share a GPU)."""

    cpus: float = setting(1.0, "CPU cores each task reserves (and the torch threads it uses).", range=above(0))
    gpus: float = setting(0.0, "GPU share of each task (fractions share a GPU).", range=at_least(0),
                          check=_whole_above_one)

    def checked(self, what: str = "resources") -> Resources:
        check_fields(self, f"{what}.")
        return self

    def ray_options(self) -> dict[str, float]:
        return {"num_cpus": self.cpus, "num_gpus": self.gpus}

    def device(self, requested: str) -> str:
        """The device a task with these resources trains on (cifar_core.device.pick_device)."""
        return pick_device(requested, self.gpus)

    def describe(self) -> str:
        return f"{self.cpus:g} CPUs and {self.gpus:g} GPUs"
