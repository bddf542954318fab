"""Validation of a search-space file: structure, names, ranges, and TrainConfig's own limits.

Every failure is a ConfigError that names the key path inside the file, e.g.
`search space mine.yaml: optimizers.adam.beta2: optim.beta2 = 1.0 is out of range: expected in [0, 1)`.
It works on the file's plain values and hands back checked sections; `space.py` builds its types
from them (so this module never imports it).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from cifar_core.errors import ConfigError

TOP_KEYS = ("description", "models", "optimizers", "shared", "fixed")
MODEL_GROUP_KEYS = ("names", "params")
MODEL_PARAMS = ("dropout", "activation")
# Each optimizer samples only the hyper-parameters torch.optim gives it, plus the general ones.
OPTIMIZER_PARAMS = {
    "sgd": ("lr", "momentum", "dampening", "nesterov"),
    "adam": ("lr", "beta1", "beta2"),
    "rmsprop": ("lr", "alpha", "momentum"),
    "adagrad": ("lr", "lr_decay", "initial_accumulator_value"),
}
GENERAL_OPTIM_PARAMS = ("weight_decay", "schedule", "label_smoothing")
# The tune command owns these: a space that set them would silently fight --max-epochs etc.
COMMAND_KEYS = ("model.name", "optim.name", "run.epochs", "run.steps", "run.full_train", "run.device", "run.seed")
DISTRIBUTIONS = ("uniform", "loguniform", "choice")

Models = list[tuple[tuple[str, ...], dict[str, Any]]]  # (architecture names, their option ranges) per group


class SpaceChecker:
    """Structural checks of one space file; every failure names the key path inside the file."""

    def __init__(self, source: str):
        self.source = source

    def sections(self, raw: Any) -> dict[str, Any]:
        """The checked models, optimizers, shared and fixed sections of a space file's contents."""
        self.only_keys(raw, TOP_KEYS, "")
        checked = {"models": self.models(raw.get("models")), "optimizers": self.optimizers(raw.get("optimizers")),
                   "shared": self.dotted_section(raw.get("shared"), "shared", ranges=True),
                   "fixed": self.dotted_section(raw.get("fixed"), "fixed", ranges=False)}
        self.no_key_set_twice(**checked)
        self.endpoints_accepted_by_train_config(**checked)
        return checked

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"search space {self.source}: {key}: {problem}")

    def only_keys(self, mapping: Any, allowed: tuple[str, ...], where: str) -> None:
        if not isinstance(mapping, dict):
            raise self.fail(where or "(top level)", "must be a mapping")
        for key in mapping:
            if key not in allowed:
                raise self.fail(f"{where}.{key}".lstrip("."), f"unknown key (allowed: {', '.join(allowed)})")

    def models(self, groups: Any) -> Models:
        from cifar_core.models import get_entry

        if not isinstance(groups, list) or not groups:
            raise self.fail("models", "must be a non-empty list of {names: [...], params: {...}} groups")
        parsed = []
        for i, group in enumerate(groups):
            where = f"models[{i}]"
            self.only_keys(group, MODEL_GROUP_KEYS, where)
            names = group.get("names")
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                raise self.fail(f"{where}.names", "must be a non-empty list of model names")
            params = group.get("params") or {}
            self.only_keys(params, MODEL_PARAMS, f"{where}.params")
            for name in names:
                try:
                    entry = get_entry(name)
                except ConfigError as exc:
                    raise self.fail(f"{where}.names", str(exc)) from None
                if not entry.is_classifier:
                    raise self.fail(f"{where}.names", f"model {name!r} is a {entry.family} network, not a classifier "
                                                      "(see `cifar models`)")
                for option in params:
                    if not _builder_accepts(entry.builder, option):
                        raise self.fail(f"{where}.params.{option}", f"model {name!r} does not take {option!r}")
            for option, spec in params.items():
                self.spec(spec, f"{where}.params.{option}")
            parsed.append((tuple(names), dict(params)))
        return parsed

    def optimizers(self, section: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(section, dict) or not section:
            raise self.fail("optimizers", "must map at least one optimizer name to its ranges")
        parsed = {}
        for opt, params in section.items():
            if opt not in OPTIMIZER_PARAMS:
                raise self.fail(f"optimizers.{opt}", f"unknown optimizer (known: {', '.join(OPTIMIZER_PARAMS)})")
            params = params or {}
            self.only_keys(params, OPTIMIZER_PARAMS[opt] + GENERAL_OPTIM_PARAMS, f"optimizers.{opt}")
            for key, spec in params.items():
                self.spec(spec, f"optimizers.{opt}.{key}")
            parsed[opt] = dict(params)
        return parsed

    def dotted_section(self, section: Any, where: str, ranges: bool) -> dict[str, Any]:
        from cifar_core.config import TrainConfig

        if section is None:
            return {}
        if not isinstance(section, dict):
            raise self.fail(where, "must be a mapping of dotted config keys (e.g. optim.weight_decay)")
        known = {f"{group}.{key}" for group, values in TrainConfig().to_dict().items() for key in values}
        for key, spec in section.items():
            if key in COMMAND_KEYS:
                raise self.fail(f"{where}.{key}", "is set by the tune command or the models/optimizers sections, not here")
            if key not in known:
                raise self.fail(f"{where}.{key}", "unknown setting (see `cifar train --help` or config.yaml of a run)")
            if ranges:
                self.spec(spec, f"{where}.{key}")
            elif isinstance(spec, (dict, list)):
                raise self.fail(f"{where}.{key}", "a fixed value must be a plain value, not a range")
        return dict(section)

    def spec(self, spec: Any, key: str) -> None:
        if isinstance(spec, list):
            raise self.fail(key, "a bare list is ambiguous: write {choice: [...]} or {uniform: [low, high]}")
        if not isinstance(spec, dict):
            return  # a constant; its value is checked against TrainConfig later
        if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise self.fail(key, f"a range has exactly one of {', '.join(DISTRIBUTIONS)}, got {sorted(spec)}")
        (kind, args), = spec.items()
        if kind == "choice":
            if not isinstance(args, list) or not args:
                raise self.fail(key, "choice needs a non-empty list of options")
            return
        if not (isinstance(args, list) and len(args) == 2 and all(_is_number(a) for a in args)):
            raise self.fail(key, f"{kind} needs [low, high] numbers, got {args!r}")
        if not all(math.isfinite(a) if isinstance(a, float) else abs(a) < 2**1023 for a in args):
            raise self.fail(key, f"{kind} range {args!r} needs finite bounds (no .inf or .nan)")
        low, high = args
        if not low < high:
            raise self.fail(key, f"{kind} range [{low}, {high}] is inverted or empty: low must be < high")
        if kind == "loguniform" and low <= 0:
            raise self.fail(key, f"loguniform range [{low}, {high}] must be positive (log of {low} is undefined)")

    def no_key_set_twice(self, models: Models, optimizers: dict, shared: dict, fixed: dict) -> None:
        branch_keys = {f"model.{k}" for _, params in models for k in params}
        branch_keys |= {f"optim.{k}" for params in optimizers.values() for k in params}
        for key in shared:
            if key in branch_keys or key in fixed:
                raise self.fail(f"shared.{key}", "is also set in models/optimizers or fixed: set it in one place")
        for key in fixed:
            if key in branch_keys:
                raise self.fail(f"fixed.{key}", "is also set in models/optimizers: set it in one place")

    def endpoints_accepted_by_train_config(self, models: Models, optimizers: dict, shared: dict, fixed: dict) -> None:
        """Every extreme value must be one TrainConfig accepts (e.g. beta2 < 1, alpha in (0, 1])."""
        from cifar_core.config import TrainConfig

        try:
            base = TrainConfig().with_overrides({"model.name": models[0][0][0], **fixed})
        except ConfigError as exc:
            raise self.fail("fixed", str(exc)) from None
        branches = [(f"models[{i}].params", "model", {"model.name": names[0]}, params)
                    for i, (names, params) in enumerate(models)]
        branches += [(f"optimizers.{opt}", "optim", {"optim.name": opt}, p) for opt, p in optimizers.items()]
        branches.append(("shared", None, {}, shared))
        for where, group, identity, params in branches:
            dotted = {(f"{group}.{k}" if group else k): spec for k, spec in params.items()}
            lows = {k: _values_to_check(spec)[0] for k, spec in dotted.items()}
            for (key, spec), short in zip(dotted.items(), params, strict=True):
                for value in _values_to_check(spec):
                    try:
                        base.with_overrides({**identity, **lows, key: value})
                    except ConfigError as exc:
                        raise self.fail(f"{where}.{short}", str(exc)) from None


def _builder_accepts(builder, option: str) -> bool:
    parameters = inspect.signature(builder).parameters.values()
    return any(p.name == option or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _values_to_check(spec: Any) -> list[Any]:
    """The values a range can take at its extremes (every option of a choice)."""
    if not isinstance(spec, dict):
        return [spec]
    (kind, args), = spec.items()
    return list(args)
