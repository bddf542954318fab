"""One typed training config, grouped as model / optim / augment / run.

Defaults are plain values with their unit in a comment. A config comes from a YAML file (nested
keys mirroring these groups, or the CLI's flat option names) plus overrides; unknown keys and
wrong types are rejected with a `ConfigError` naming the key. The resolved config is saved with
every run, so `config.yaml` alone reproduces it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cifar_core.data.augment import AUGMENT_PRESETS, AugmentConfig, resolve_augment
from cifar_core.errors import ConfigError
from cifar_core.seeds import check_seed

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
SCHEDULES = ("none", "cosine", "onecycle")


@dataclass
class ModelConfig:
    name: str = "resdw"  # a registered model: `cifar models`
    dropout: float | None = None  # None keeps the model's own default
    activation: str | None = None  # relu | leaky_relu (cnn* only); None keeps the default


@dataclass
class OptimConfig:
    name: str = "adam"  # sgd | adam | rmsprop | adagrad (report A's four)
    lr: float = 1e-3  # learning rate per step (not scaled by batch size)
    weight_decay: float = 0.0  # L2, all parameters
    momentum: float = 0.0  # sgd, rmsprop
    dampening: float = 0.0  # sgd
    nesterov: bool = False  # sgd (needs momentum > 0 and dampening 0)
    beta1: float = 0.9  # adam
    beta2: float = 0.999  # adam
    alpha: float = 0.99  # rmsprop: smoothing constant of the squared-gradient average
    lr_decay: float = 0.0  # adagrad
    initial_accumulator_value: float = 0.0  # adagrad
    schedule: str = "none"  # none | cosine | onecycle, stepped every batch
    label_smoothing: float = 0.0  # cross-entropy label smoothing, 0 = off


@dataclass
class RunConfig:
    epochs: int | None = 10  # passes over the training split (ignored when steps is set)
    steps: int | None = None  # optimisation steps in all (report B trains 10,000 steps)
    batch_size: int = 128  # training images per step
    eval_batch_size: int = 1000  # images per forward pass when evaluating
    seed: int = 0  # model init, shuffling, augmentation, dropout
    split_seed: int = 0  # which 10,000 training images form the validation split
    val_fraction: float = 0.2  # report A: 1/5 of 50,000 = 10,000 validation images
    full_train: bool = False  # retrain on all training images, no validation split
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # NHWC tensors (faster on CUDA and, measured, on CPU too)
    compile: bool = False  # torch.compile the model
    eval_test_every: int | None = None  # steps between test-set scores kept in the run (test_curve); None = off


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=lambda: dataclasses.replace(AUGMENT_PRESETS["report-a"]))
    run: RunConfig = field(default_factory=RunConfig)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a nested dict (as saved in config.yaml); unknown keys and wrong types raise."""
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a mapping, got {type(data).__name__}")
        groups = {}
        for f in dataclasses.fields(cls):
            value = data.get(f.name, {})
            if not isinstance(value, dict):
                raise ConfigError(f"config key {f.name!r} must be a mapping")
            groups[f.name] = _build_group(f.name, _GROUP_TYPES[f.name], value)
        unknown = set(data) - set(groups)
        if unknown:
            raise ConfigError(f"unknown config key {sorted(unknown)[0]!r} (known: {', '.join(groups)})")
        cfg = cls(**groups)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(load_yaml_mapping(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_overrides(self, overrides: dict[str, Any]) -> TrainConfig:
        """Apply dotted overrides such as {"optim.lr": 0.01}; None values are ignored."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            if value is None:
                continue
            group, _, key = dotted.partition(".")
            if group not in data or key not in data[group]:
                raise ConfigError(f"unknown config key {dotted!r}")
            data[group][key] = value
        return TrainConfig.from_dict(data)

    # -- checks -------------------------------------------------------------------------------
    def validate(self) -> None:
        from cifar_core.models import get_entry

        entry = get_entry(self.model.name)  # unknown model -> ConfigError listing the known ones
        _check(entry.is_classifier, "model.name", self.model.name,
               "a classifier (a GAN network cannot be trained here: see `cifar models`)")
        m, o, r = self.model, self.optim, self.run
        check_seed(r.seed, "run.seed")
        check_seed(r.split_seed, "run.split_seed")
        _check(m.dropout is None or 0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "in [0, 1)")
        _check(m.activation in (None, "relu", "leaky_relu"), "model.activation", m.activation, "relu or leaky_relu")
        _check(o.name in OPTIMIZERS, "optim.name", o.name, "one of " + ", ".join(OPTIMIZERS))
        _check(o.schedule in SCHEDULES, "optim.schedule", o.schedule, "one of " + ", ".join(SCHEDULES))
        _check(math.isfinite(o.lr) and o.lr > 0, "optim.lr", o.lr, "> 0")
        _check(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, ">= 0")
        _check(0 <= o.momentum < 1, "optim.momentum", o.momentum, "in [0, 1)")
        _check(0 <= o.dampening <= 1, "optim.dampening", o.dampening, "in [0, 1]")
        _check(0 <= o.beta1 < 1, "optim.beta1", o.beta1, "in [0, 1)")
        _check(0 <= o.beta2 < 1, "optim.beta2", o.beta2, "in [0, 1)")
        _check(0 < o.alpha <= 1, "optim.alpha", o.alpha, "in (0, 1]")
        _check(o.lr_decay >= 0, "optim.lr_decay", o.lr_decay, ">= 0")
        _check(o.initial_accumulator_value >= 0, "optim.initial_accumulator_value", o.initial_accumulator_value, ">= 0")
        _check(0 <= o.label_smoothing < 1, "optim.label_smoothing", o.label_smoothing, "in [0, 1)")
        if o.nesterov:
            _check(o.momentum > 0 and o.dampening == 0, "optim.nesterov", o.nesterov, "used with momentum > 0 and dampening 0")
        _check(r.steps is not None or r.epochs is not None, "run.epochs", r.epochs, "set (or run.steps)")
        _check(r.epochs is None or r.epochs >= 1, "run.epochs", r.epochs, ">= 1")
        _check(r.steps is None or r.steps >= 1, "run.steps", r.steps, ">= 1")
        _check(r.batch_size >= 1, "run.batch_size", r.batch_size, ">= 1")
        _check(r.eval_batch_size >= 1, "run.eval_batch_size", r.eval_batch_size, ">= 1")
        _check(r.eval_test_every is None or r.eval_test_every >= 1, "run.eval_test_every", r.eval_test_every, ">= 1")
        _check(0 < r.val_fraction < 1, "run.val_fraction", r.val_fraction, "in (0, 1)")


# Flat name -> dotted key. `cifar train` options and a YAML config file share these names (a
# file may also use the nested groups of a saved config.yaml).
FLAT_KEYS = {
    "model": "model.name", "dropout": "model.dropout", "activation": "model.activation",
    "optimizer": "optim.name", "lr": "optim.lr", "weight_decay": "optim.weight_decay",
    "momentum": "optim.momentum", "dampening": "optim.dampening", "nesterov": "optim.nesterov",
    "beta1": "optim.beta1", "beta2": "optim.beta2", "alpha": "optim.alpha", "lr_decay": "optim.lr_decay",
    "initial_accumulator_value": "optim.initial_accumulator_value", "schedule": "optim.schedule",
    "label_smoothing": "optim.label_smoothing",
    "hflip": "augment.hflip", "crop_padding": "augment.crop_padding", "brightness": "augment.brightness",
    "contrast": "augment.contrast", "saturation": "augment.saturation", "hue": "augment.hue",
    "rotation": "augment.rotation",
    "epochs": "run.epochs", "steps": "run.steps", "batch_size": "run.batch_size",
    "eval_batch_size": "run.eval_batch_size", "seed": "run.seed", "split_seed": "run.split_seed",
    "val_fraction": "run.val_fraction", "full_train": "run.full_train", "device": "run.device",
    "amp": "run.amp", "compile": "run.compile", "eval_test_every": "run.eval_test_every",
}
GROUPS = ("model", "optim", "augment", "run")


def resolve_config(config_file: str | Path | None, preset: str | None, options: dict[str, Any]) -> TrainConfig:
    """Defaults, then the YAML file, then the augmentation preset, then `options` (flat names,
    None = not given); keys that are not flat names are ignored, so a CLI can pass all its options."""
    nested: dict = {}
    flat: dict = {}
    if config_file is not None:
        for key, value in load_yaml_mapping(config_file).items():
            name = key.replace("-", "_")
            if name in GROUPS and isinstance(value, dict):
                nested[name] = value
            elif name in FLAT_KEYS or name == "augment":
                flat[name] = value
            else:
                raise ConfigError(f"unknown key {key!r} in {config_file}")
    cfg = TrainConfig.from_dict(nested) if nested else TrainConfig()
    file_preset = flat.pop("augment", None)
    preset = preset or file_preset  # the command line's preset wins over the file's
    if preset is not None:
        cfg = cfg.with_overrides({f"augment.{k}": v for k, v in resolve_augment(preset).to_dict().items()})
    cfg = cfg.with_overrides({FLAT_KEYS[k]: v for k, v in flat.items()})
    return cfg.with_overrides({FLAT_KEYS[k]: v for k, v in options.items() if k in FLAT_KEYS})


_GROUP_TYPES = {"model": ModelConfig, "optim": OptimConfig, "augment": AugmentConfig, "run": RunConfig}


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is out of range: expected {expected}")


def _build_group(group: str, cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"unknown config key '{group}.{key}' (known: {', '.join(sorted(known))})")
    return cls(**{key: _coerce(f"{group}.{key}", hints[key], value) for key, value in values.items()})


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Type-check one value against its annotation; ints are accepted where floats are expected."""
    allowed = typing.get_args(hint) or (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{key} must not be empty")
    for t in allowed:
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key} = {value!r} is not a finite number")
            return float(value)
        if t is str and isinstance(value, str):
            return value
    names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed if t is not type(None))
    raise ConfigError(f"{key} = {value!r} has the wrong type: expected {names}")


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data
