"""The registry of the study's stages. A stage owns its settings (a section of the pipeline's config),
its result directory, the stages it needs, what each of its units reserves, how it runs and how it
reports progress; the scheduler (cifar_core.pipeline), `cifar pipeline --stage`, the single-stage
commands and the chart all read it. Adding a stage is one module that calls `register_stage`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifar_core.errors import CifarError, ConfigError
from cifar_core.execution.resources import Resources
from cifar_core.execution.runners import InProcess, OnRay, submit_stage
from cifar_core.layout import Results

Progress = tuple[int, int, str]  # (done, total, unit): "steps", "epochs", "trial epochs (at most)"


@dataclass
class Context:
    """One run of some stages: the profile's settings, where data and results live, the device
    asked for, and where units run."""

    profile: str
    config: Any  # a PipelineConfig (cifar_core.pipeline): one section per stage, and `resources`
    data_dir: Path
    results: Results
    device: str = "auto"
    work: InProcess | OnRay = field(default_factory=InProcess)
    running: tuple[str, ...] = ()  # the stages this run runs (the others' results are read as they are)

    def section(self, stage: str) -> Any:
        return getattr(self.config, attribute(stage))

    def resources(self, stage: str) -> Resources:
        return getattr(self.config.resources, attribute(stage))

    def submit(self, stage: str, fn: Callable[..., Any], needs: dict[str, Any], *, uses_device: bool = True,
               **kwargs: Any) -> Any:
        """One unit of `stage`'s work with the stage's resources (and device), once `needs` exist."""
        return submit_stage(self.work, fn, resources=self.resources(stage), device=self.device if uses_device else None,
                            needs=needs, name=stage, **kwargs)


@dataclass(frozen=True)
class Stage:
    name: str  # as users write it: recipe-a, fid-b
    settings: type  # its section of the pipeline's config (declared settings; defaults: the full profile)
    resources: Resources  # what each of its units reserves in the full profile
    summary: Callable[[Context], Path]  # the summary its result directory completes (cifar_core.summaries)
    run: Callable[[Context, dict[str, Any]], Any]  # submit its units once {need: handle} exist -> a handle
    help: str = ""  # one line, for `cifar pipeline --help` and the chart's values
    needs: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()  # other sections its work reads (the ablation: recipe-a's budget)
    check: Callable[[Context], Any] | None = None  # settings checks that need the context (before anything runs)
    progress: Callable[[Context], Progress | None] | None = None
    smoke: Mapping[str, Any] = field(default_factory=dict)  # the smoke profile's changes of its section
    uses_device: bool = True  # its units train or score on the device (GPU shares checked against it)
    in_driver: bool = False  # runs in the driver process (the search coordinates its trials from there)
    makes_data: bool = False  # its result is the data every other stage reads: it runs first, every time


class StageUnavailable(CifarError):
    """This stage cannot run on this machine (e.g. no Inception weights); the pipeline goes on."""


_REGISTRY: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    if stage.name in _REGISTRY:
        raise TypeError(f"stage {stage.name!r} is registered twice")
    unknown = [need for need in (*stage.needs, *stage.reads) if need not in _REGISTRY]
    if unknown:  # registration order is the study's order: what a stage needs comes before it
        raise TypeError(f"stage {stage.name!r} needs {unknown[0]!r}, which is not registered before it")
    _REGISTRY[stage.name] = stage
    return stage


def all_stages() -> tuple[Stage, ...]:
    """Every stage, in the order a study makes them."""
    return tuple(_REGISTRY.values())


def get_stage(name: str) -> Stage:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown stage {name!r} (known: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def attribute(stage: str) -> str:
    """The config attribute of a stage's section: recipe-a -> recipe_a."""
    return stage.replace("-", "_")
