"""The model registry: a name maps to a builder function plus metadata.

Builders register with `@register_model(family=..., description=...)`; the function name is the
key and a duplicate name is an error. `create_model` drops overrides whose value is None so that
CLI options left unset never override a model's defaults.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cifar_core.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # "cnn" (report A), "efficient" (report B), "reference" (modern), "gan"
    description: str
    builder: Callable[..., nn.Module]
    module: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(family: str, description: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice ({_REGISTRY[name].module} and {fn.__module__})")
        _REGISTRY[name] = ModelEntry(name, family, description, fn, fn.__module__)
        return fn

    return decorate


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Registered names matching a wildcard `pattern` and `family`, in natural order (cnn2 < cnn10)."""
    names = [
        e.name
        for e in _REGISTRY.values()
        if (pattern is None or fnmatch.fnmatch(e.name, pattern)) and (family is None or e.family == family)
    ]
    return sorted(names, key=_natural_key)


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_models())
        raise ConfigError(f"unknown model {name!r}; known models: {known}") from None


def create_model(name: str, num_classes: int = 100, **overrides) -> nn.Module:
    """Build a registered model. Overrides set to None are dropped (the model's default wins)."""
    entry = get_entry(name)
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    if entry.family != "gan":
        kwargs["num_classes"] = num_classes
    try:
        return entry.builder(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r} does not take these options: {exc}") from None


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
