"""The model registry: a name maps to a builder function plus metadata.

Builders register with `@register_model(family=..., description=...)`; the function name is the
key and a duplicate name is an error. `create_model` drops overrides whose value is None so that
CLI options left unset never override a model's defaults, and checks the rest against the
builder's signature so a misspelt option is a `ConfigError` naming what the model does take.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cifar_core.errors import ConfigError

NOT_CLASSIFIER_FAMILIES = ("gan",)  # networks that are not image classifiers: never trained or searched as one


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # "cnn" (report A), "efficient" (report B), "reference" (modern), "gan", "smoke"
    description: str
    builder: Callable[..., nn.Module]
    module: str

    @property
    def is_classifier(self) -> bool:
        """An image classifier (what `cifar train` and a search may train); the DCGAN pair is not."""
        return self.family not in NOT_CLASSIFIER_FAMILIES

    def options(self) -> list[str]:
        """Keyword options the builder accepts (its defaults are the model's own)."""
        return [
            p.name for p in inspect.signature(self.builder).parameters.values() if p.kind is not p.VAR_KEYWORD
        ]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    family: str, description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(
                f"model {name!r} registered twice ({_REGISTRY[name].module} and {fn.__module__})"
            )
        _REGISTRY[name] = ModelEntry(name, family, description, fn, fn.__module__)
        return fn

    return decorate


def _natural_key(name: str) -> list:
    """Digits compare as numbers, so cnn2 < cnn10 and wrn16_4 < wrn28_10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def list_models(
    pattern: str | None = None, family: str | None = None, exclude: str | None = None
) -> list[str]:
    """Registered names matching wildcard `pattern` (e.g. "cnn*") and `family`, minus wildcard
    `exclude`, in natural order."""
    names = [
        e.name
        for e in _REGISTRY.values()
        if (pattern is None or fnmatch.fnmatchcase(e.name, pattern))
        and (family is None or e.family == family)
        and (exclude is None or not fnmatch.fnmatchcase(e.name, exclude))
    ]
    return sorted(names, key=_natural_key)


def list_families() -> list[str]:
    return sorted({e.family for e in _REGISTRY.values()})


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
    if entry.is_classifier:  # the GAN pair's num_classes means conditioning, not a head
        kwargs["num_classes"] = num_classes
    try:
        inspect.signature(entry.builder).bind(**kwargs)
    except TypeError:
        unknown = sorted(set(kwargs) - set(entry.options()))
        raise ConfigError(
            f"model {name!r} does not take option(s) {', '.join(unknown) or kwargs}; it takes: {', '.join(entry.options())}"
        ) from None
    return entry.builder(**kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_count(name: str, num_classes: int = 100, **overrides) -> int:
    """Trainable parameters of a registered model, built on the meta device: no memory, no init cost."""
    with torch.device("meta"):
        return count_parameters(create_model(name, num_classes, **overrides))
