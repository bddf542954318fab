"""Settings declared once (cifar_core.fields): every setting of TrainConfig and GanTrainConfig is an
option of its command that reaches the config, --help shows default, unit and range, and one
mechanism checks types, finiteness and ranges for every config class."""

from __future__ import annotations

import dataclasses

import click
import pytest

from cifar_core.config import TrainConfig, resolve_config
from cifar_core.errors import ConfigError
from cifar_core.fields import (
    Range,
    above,
    at_least,
    between,
    flat_keys,
    from_mapping,
    leaves,
    nest,
    setting,
    to_mapping,
)
from cifar_core.gan.config import GanTrainConfig
from jobs.cli import cli

# The other (non-setting) parameters of the two commands.
TRAIN_EXTRA = {"config_file", "augment", "run_name", "resume", "evaluate_test", "data_dir", "results_dir", "as_json"}
GAN_EXTRA = {"run_name", "resume", "device", "data_dir", "results_dir", "cpus", "gpus", "ray_flag", "pending_timeout"}
STRINGS = {"model.name": "tinycnn", "run.device": "cpu"}
# Settings a rule ties to others (nesterov needs dampening 0): checked on their own below.
TIED = {"optim.nesterov": ["--nesterov", "--momentum", "0.9"]}


def other_value(leaf, default):
    """A valid value of the setting that differs from its default."""
    if bool in leaf.types:
        return not default
    if leaf.meta["choices"]:
        return next(c for c in leaf.meta["choices"] if c != default)
    if str in leaf.types:
        return STRINGS[leaf.key]
    allowed = leaf.meta["range"] or Range()
    if allowed.low is not None and allowed.high is not None:
        value = next(v for v in (allowed.low + (allowed.high - allowed.low) * f for f in (0.5, 0.25)) if v != default)
        return value if float in leaf.types else int(value) if int(value) != default else int(value) + 1
    value = (default or 1) * 2 + 1
    return float(value) if float in leaf.types else int(value)


def value_at(config, key):
    for part in key.split("."):
        config = getattr(config, part)
    return config


def parse(command_path: list[str], argv: list[str]) -> dict:
    if command_path == ["gan", "train"]:
        argv = ["--run-name", "r", *argv]
    ctx = click.Context(cli, info_name="cifar")
    command = cli
    for name in command_path:
        command = command.get_command(ctx, name)
        ctx = click.Context(command, info_name=name, parent=ctx)
    return command.make_context(name, argv, parent=ctx.parent).params


def argv_for(changed: dict) -> list[str]:
    argv = []
    for leaf, value in changed.items():
        flag = leaf.name.replace("_", "-")
        argv += [f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else [f"--{flag}", str(value)]
    return argv


@pytest.mark.parametrize("config, path, extra", [(TrainConfig(), ["train"], TRAIN_EXTRA),
                                                 (GanTrainConfig(), ["gan", "train"], GAN_EXTRA)],
                         ids=["train", "gan train"])
def test_every_setting_is_an_option_that_reaches_the_config(config, path, extra):
    def build(argv):
        settings = {k: v for k, v in parse(path, argv).items() if k not in extra}
        assert set(settings) == set(flat_keys(type(config)))  # one option per setting, no other
        if isinstance(config, TrainConfig):
            return resolve_config(None, None, settings)
        return GanTrainConfig.from_dict(nest(settings, GanTrainConfig))

    changed = {leaf: other_value(leaf, value_at(config, leaf.key)) for leaf in leaves(type(config))
               if leaf.key not in TIED}
    built = build(argv_for(changed))
    for leaf, value in changed.items():
        assert value_at(built, leaf.key) == value != value_at(config, leaf.key), leaf.key
    for key, argv in TIED.items():
        if key in flat_keys(type(config)).values():
            assert value_at(build(argv), key) != value_at(config, key), key
    # Options not given stay None, so a config file's values (or the defaults) stand.
    assert {v for k, v in parse(path, []).items() if k not in extra} == {None}


def test_help_shows_the_default_with_its_unit_and_the_range():
    from click.testing import CliRunner

    train = CliRunner().invoke(cli, ["train", "--help"], terminal_width=200).output
    rotation = next(line for line in train.splitlines() if line.lstrip().startswith("--rotation"))
    assert "[default: 15.0 degrees; 0<=x<=180]" in rotation  # report A's preset is TrainConfig's default
    assert "[default: off (use --epochs); x>=1]" in train
    gan = CliRunner().invoke(cli, ["gan", "train", "--help"], terminal_width=200).output
    assert "--hflip / --no-hflip" in gan and "[default: 50000 steps; x>=1]" in gan
    assert "--recovery-lr-factor FLOAT RANGE" in gan and "[default: 0.5; 0<x<=1]" in gan


def test_gan_hflip_and_beta2_reach_the_config_from_the_command_line():
    params = {k: v for k, v in parse(["gan", "train"], ["--hflip", "--beta2", "0.99"]).items()
              if k not in GAN_EXTRA}
    cfg = GanTrainConfig.from_dict(nest(params, GanTrainConfig))
    assert cfg.hflip is True and cfg.beta2 == 0.99 and cfg.steps == GanTrainConfig().steps


def test_ranges_say_what_they_accept():
    assert str(between(0, 1, high_open=True)) == "in [0, 1)" and 0 in between(0, 1, high_open=True)
    assert 1 not in between(0, 1, high_open=True) and 0 not in above(0) and 0 in at_least(0)
    assert str(above(0)) == "> 0" and str(at_least(2)) == ">= 2" and -1 not in at_least(0)


@dataclasses.dataclass
class _Inner:
    rate: float = setting(0.5, "A rate.", range=between(0, 1))


@dataclasses.dataclass
class _Outer:
    count: int = setting(1, "A count.", range=at_least(1))
    inner: _Inner = dataclasses.field(default_factory=_Inner)


@pytest.mark.parametrize("data, message", [
    ({"cout": 2}, "unknown setting 'x.cout' (known: count, inner)"),
    ({"count": True}, "x.count = True has the wrong type: expected int"),
    ({"count": 2.0}, "x.count = 2.0 has the wrong type: expected int"),
    ({"inner": {"rate": float("nan")}}, "x.inner.rate = nan is not a finite number"),
    ({"inner": {"speed": 1}}, "unknown setting 'x.inner.speed'"),
    ({"inner": 3}, "x.inner is a group of settings, not a value"),
    ({"count": 2**63}, "x.count = 9223372036854775808 does not fit a 64-bit integer"),
    ({"inner": {"rate": 1e39}}, "x.inner.rate = 1e+39 does not fit a float32"),
    ({"count": 1, "count ": 2}, "unknown setting 'x.count '"),
])
def test_mappings_are_checked_key_by_key(data, message):
    with pytest.raises(ConfigError) as error:
        from_mapping(_Outer, data, "x.")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_ints_become_floats_and_nested_mappings_build_nested_configs():
    built = from_mapping(_Outer, {"count": 3, "inner": {"rate": 1}})
    assert built == _Outer(3, _Inner(1.0)) and isinstance(built.inner.rate, float)


def test_two_settings_may_not_share_a_flat_name():
    @dataclasses.dataclass
    class Clash:
        a: int = setting(1, "", flag="b")
        b: int = setting(2, "")

    with pytest.raises(TypeError, match="share the flat name 'b'"):
        flat_keys(Clash)


@pytest.mark.parametrize("make, key", [
    (lambda: GanTrainConfig(collapse=dataclasses.replace(GanTrainConfig().collapse, window_steps=-1)).validate(),
     "gan.collapse.window_steps = -1 is out of range: expected >= 0"),
    (lambda: TrainConfig.from_dict({"run": {"eval_test_every": 0}}), "run.eval_test_every = 0 is out of range"),
    (lambda: TrainConfig.from_dict({"optim": {"alpha": 0}}), "optim.alpha = 0.0 is out of range: expected in (0, 1]"),
])
def test_every_config_class_says_a_bad_value_the_same_way(make, key):
    with pytest.raises(ConfigError, match=key.replace("(", r"\(").replace("[", r"\[")):
        make()


def test_a_config_held_inline_reads_as_its_holders_own_settings():
    """Composition, not inheritance: a stage's section is its name plus the config it runs, whose
    settings are written at the section's level (gan.steps), and nothing is copied out."""
    from cifar_core.pipeline import resolve_profile

    config = resolve_profile("full", ["gan.steps=300", "gan.run=g2", "fid-b.n=50", "fid-b.step=200"])
    assert (config.gan.run, config.gan.training.steps) == ("g2", 300)
    assert (config.fid_b.score.n, config.fid_b.step, config.fid_b.score.gan_run) == (50, 200, "dcgan")
    mapping = to_mapping(config)
    assert mapping["gan"]["steps"] == 300 and "training" not in mapping["gan"] and mapping["fid-b"]["n"] == 50
    with pytest.raises(ConfigError, match="unknown setting 'gan.training'"):
        resolve_profile("full", ["gan.training.steps=5"])  # the holder's attribute is not a key
    with pytest.raises(ConfigError, match=r"gan.steps = 0 is out of range"):
        resolve_profile("full", ["gan.steps=0"])
