"""Search spaces as data: a YAML file -> a validated `SearchSpace` -> a Ray Tune param space.

Conditional parameters are nested choices (one architecture dict, one optimizer dict, then the
ranges inside), so a trial's config holds only the values it uses. Everything is checked before Ray
starts (unknown keys, inverted ranges, log ranges touching zero, endpoints TrainConfig would reject),
each error naming the key of the space file. The format: spaces/report-a.yaml.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cifar_core.errors import ConfigError
from cifar_core.tune.space_check import SpaceChecker


@dataclass(frozen=True)
class ModelGroup:
    names: tuple[str, ...]
    params: dict[str, Any]  # option -> range spec or constant


@dataclass(frozen=True)
class SearchSpace:
    name: str  # "report-a", "modern" or the file's path
    description: str
    models: tuple[ModelGroup, ...]
    optimizers: dict[str, dict[str, Any]]
    shared: dict[str, Any]  # dotted key -> range spec or constant
    fixed: dict[str, Any]  # dotted key -> value
    raw: dict[str, Any]  # the file as loaded, recorded with the experiment

    @property
    def digest(self) -> str:
        """Identifies the space's content, so a resumed experiment can check it searches the same space."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def architectures(self) -> list[str]:
        return [name for group in self.models for name in group.names]

    def param_space(self) -> dict[str, Any]:
        """The Tune param space: one nested choice per conditional group, plus the shared ranges."""
        from ray import tune

        architectures = [
            {"name": name, **{k: _domain(v) for k, v in group.params.items()}} for group in self.models for name in group.names
        ]
        optimizers = [{"name": opt, **{k: _domain(v) for k, v in params.items()}} for opt, params in self.optimizers.items()]
        return {
            "architecture": tune.choice(architectures),
            "optimizer": tune.choice(optimizers),
            "shared": {k: _domain(v) for k, v in self.shared.items()},
        }


def flat_params(trial_config: dict[str, Any]) -> dict[str, Any]:
    """A sampled trial config -> the dotted TrainConfig overrides it stands for (the values used)."""
    flat = {f"model.{k}": v for k, v in trial_config["architecture"].items()}
    flat.update({f"optim.{k}": v for k, v in trial_config["optimizer"].items()})
    flat.update(trial_config.get("shared", {}))
    return flat


def space_names() -> list[str]:
    """The spaces shipped in the package (spaces/*.yaml)."""
    return sorted(p.name.removesuffix(".yaml") for p in _packaged_dir().iterdir() if p.name.endswith(".yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A shipped space by name (`report-a`, `modern`) or any YAML file; validated."""
    from cifar_core.config import load_yaml_mapping

    text = str(name_or_path)
    if text in space_names():
        path, name = _packaged_dir() / f"{text}.yaml", text
    elif Path(text).is_file():
        path, name = Path(text), text
    else:
        raise ConfigError(f"unknown search space {text!r}: use {', '.join(space_names())} or the path of a YAML file")
    return parse_space(load_yaml_mapping(path), name)


def parse_space(raw: dict[str, Any], name: str) -> SearchSpace:
    sections = SpaceChecker(name).sections(raw)
    return SearchSpace(
        name=name,
        description=str(raw.get("description", "")),
        models=tuple(ModelGroup(names, params) for names, params in sections["models"]),
        optimizers=sections["optimizers"],
        shared=sections["shared"],
        fixed=sections["fixed"],
        raw=raw,
    )


def _packaged_dir():
    return resources.files("cifar_core.tune") / "spaces"


def _domain(spec: Any):
    from ray import tune

    if not isinstance(spec, dict):
        return spec  # a constant
    (kind, args), = spec.items()
    if kind == "choice":
        return tune.choice(list(args))
    return {"uniform": tune.uniform, "loguniform": tune.loguniform}[kind](*args)


def space_summary(space: SearchSpace) -> dict[str, Any]:
    """What a search records about its space (cifar_core.summaries.SpaceSummary)."""
    return {"name": space.name, "digest": space.digest, "description": space.description,
            "architectures": space.architectures, "optimizers": list(space.optimizers)}


__all__ = ["SearchSpace", "flat_params", "load_space", "parse_space", "space_names", "space_summary"]
