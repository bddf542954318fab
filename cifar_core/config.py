"""One typed training config, grouped as model / optim / augment / run.

Each setting is declared once (`cifar_core.fields`), so `cifar train`'s options, a config file's keys
and the checks cannot drift apart. The resolved config is saved with every run: its `config.yaml`
alone reproduces it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cifar_core.data.augment_config import AUGMENT_PRESETS, AugmentConfig, resolve_augment
from cifar_core.errors import ConfigError
from cifar_core.fields import (
    above,
    at_least,
    between,
    check_fields,
    flat_keys,
    from_mapping,
    load_yaml_file,
    nest,
    require,
    setting,
    with_settings,
)
from cifar_core.seeds import check_seed

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
SCHEDULES = ("none", "cosine", "onecycle")
FRACTION = between(0, 1, high_open=True)
POSITIVE = at_least(1)


@dataclass
class ModelConfig:
    name: str = setting("resdw", "Registered model name (see `cifar models`).", flag="model")
    dropout: float | None = setting(None, "Dropout rate (cnn* and wide ResNets).", range=FRACTION,
                                    none_means="the model's own")
    activation: str | None = setting(None, "Activation of the cnn* models.", choices=("relu", "leaky_relu"),
                                     none_means="the model's own")


@dataclass
class OptimConfig:
    name: str = setting("adam", "Optimizer (report A's four).", choices=OPTIMIZERS, flag="optimizer")
    lr: float = setting(1e-3, "Learning rate per step, not scaled by batch size (the peak for onecycle).",
                        range=above(0))
    weight_decay: float = setting(0.0, "L2 weight decay, all parameters.", range=at_least(0))
    momentum: float = setting(0.0, "SGD / RMSprop momentum.", range=FRACTION)
    dampening: float = setting(0.0, "SGD dampening.", range=between(0, 1))
    nesterov: bool = setting(False, "SGD Nesterov momentum (needs momentum > 0 and dampening 0).")
    beta1: float = setting(0.9, "Adam beta1.", range=FRACTION)
    beta2: float = setting(0.999, "Adam beta2.", range=FRACTION)
    alpha: float = setting(0.99, "RMSprop smoothing constant of the squared-gradient average.",
                           range=between(0, 1, low_open=True))
    lr_decay: float = setting(0.0, "Adagrad learning-rate decay.", range=at_least(0))
    initial_accumulator_value: float = setting(0.0, "Adagrad initial accumulator value.", range=at_least(0))
    schedule: str = setting("none", "Learning-rate schedule, stepped every batch.", choices=SCHEDULES)
    label_smoothing: float = setting(0.0, "Cross-entropy label smoothing (0 = off).", range=FRACTION)


@dataclass
class RunConfig:
    # A run may be extended (without a schedule); it is never shortened.
    epochs: int | None = setting(10, "Passes over the training split (ignored when --steps is given).",
                                 unit="epochs", range=POSITIVE, none_means="none (use --steps)", resumable=True)
    steps: int | None = setting(None, "Optimisation steps in all (report B: 10000).", unit="steps", range=POSITIVE,
                                none_means="off (use --epochs)", resumable=True)
    batch_size: int = setting(128, "Training batch size.", unit="images", range=POSITIVE)
    eval_batch_size: int = setting(1000, "Images per forward pass when evaluating.", unit="images", range=POSITIVE,
                                   resumable=True)
    seed: int = setting(0, "Seed of init, shuffling, augmentation and dropout.", check=check_seed)
    split_seed: int = setting(0, "Seed of which training images form the validation split.", check=check_seed)
    val_fraction: float = setting(0.2, "Validation share of the training set (report A: 10,000 of 50,000).",
                                  range=between(0, 1, low_open=True, high_open=True))
    full_train: bool = setting(False, "Train on all training images (no validation split).")
    device: str = setting("auto", "auto (cuda if available), cpu, cuda, cuda:N.", resumable=True)
    amp: bool = setting(True, "bf16 autocast on CUDA (ignored on CPU).")
    channels_last: bool = setting(True, "NHWC tensors (faster on CUDA and, measured, on CPU too).")
    compile: bool = setting(False, "torch.compile the model.", resumable=True)
    eval_test_every: int | None = setting(None, "Score the test set every N steps, kept in the run (test_curve).",
                                          unit="steps", range=POSITIVE, none_means="off")


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
        cfg = from_mapping(cls, data)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(load_yaml_mapping(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_overrides(self, overrides: dict[str, Any], *, none_clears: bool = False) -> TrainConfig:
        """This config with dotted settings such as {"optim.lr": 0.01} on top, through the one
        override path (`fields.with_settings`). None values are ignored (an option left unset), or
        with `none_clears` set the key to None (a recipe clears run.steps)."""
        given = [(key, value) for key, value in overrides.items() if value is not None or none_clears]
        cfg = with_settings(TrainConfig, self.to_dict(), given, what="setting")
        cfg.validate()
        return cfg

    # -- checks -------------------------------------------------------------------------------
    def validate(self) -> None:
        """Every setting against its declaration, then the rules between settings."""
        from cifar_core.models import get_entry

        entry = get_entry(self.model.name)  # unknown model -> ConfigError listing the known ones
        require(entry.is_classifier, "model.name", self.model.name,
                "a classifier (a GAN network cannot be trained here: see `cifar models`)")
        check_fields(self)
        o, r = self.optim, self.run
        if o.nesterov:
            require(o.momentum > 0 and o.dampening == 0, "optim.nesterov", o.nesterov,
                    "used with momentum > 0 and dampening 0")
        require(r.steps is not None or r.epochs is not None, "run.epochs", r.epochs, "set (or run.steps)")


# Flat name -> dotted key, from the declarations: `cifar train` options and a flat YAML config
# file share these names (a file may also use the nested groups of a saved config.yaml).
FLAT_KEYS = flat_keys(TrainConfig)
GROUPS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def resolve_config(config_file: str | Path | None, preset: str | None, options: dict[str, Any]) -> TrainConfig:
    """Defaults, then the YAML file, then the augmentation preset, then `options` (flat names,
    None = not given). A name that is not a setting is a ConfigError, never silently dropped."""
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
    for name in flat:
        if name in FLAT_KEYS:
            group, _, key = FLAT_KEYS[name].partition(".")
            if key in nested.get(group, {}):
                raise ConfigError(f"{config_file} gives {FLAT_KEYS[name]} twice: as {group}.{key} and as {name}; "
                                  "give it once")
    cfg = TrainConfig.from_dict(nested) if nested else TrainConfig()
    file_preset = flat.pop("augment", None)
    preset = preset or file_preset  # the command line's preset wins over the file's
    if preset is not None:
        cfg = cfg.with_overrides({f"augment.{k}": v for k, v in resolve_augment(preset).to_dict().items()})
    cfg = cfg.with_overrides(_dotted(flat))
    return cfg.with_overrides(_dotted(options))


def _dotted(flat: dict[str, Any]) -> dict[str, Any]:
    """{flat name: value} -> {dotted key: value}, None (not given) left out."""
    return {f"{group}.{key}": value for group, values in nest(flat, TrainConfig).items() for key, value in values.items()}


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = load_yaml_file(path)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"config file {path} is not valid YAML: {detail}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data
