"""Every command line the chart renders parses with the project's own Click CLI, so the chart can
never call a command or flag that does not exist (or give a flag a value of the wrong type); the
pipeline's `--set` keys are checked by the pipeline's own profile resolver."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path

import click
import helm_python as helm
import pytest
import yaml

from jobs.chart import STAGES  # every stage the chart runs: the pipeline's, and the pipeline itself
from jobs.cli import cli

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cifar100"
RWX = {"storage": {"data": {"storageClass": "nfs-client"}, "results": {"storageClass": "nfs-client"}}}
KIND = yaml.safe_load((REPO / "k8s" / "kind" / "values.yaml").read_text())
CPU = {"device": "cpu", "ray": {"workers": {"gpu": {"maxReplicas": 0}}}}
SCENARIOS = {
    "full": RWX,
    "smoke": {**RWX, **CPU, "pipeline": {"profile": "smoke"}},
    "kind": KIND,
    "options": {  # generic flags and settings of every shape
        **RWX,
        "pipeline": {"set": {"tune": {"num_samples": 20, "max_epochs": 3, "space": "modern"},
                             "resources": {"gan": {"gpus": 0.5}}, "gan": {"steps": 1000000, "conditional": False},
                             "data": {"if_missing": "synthesize", "n_train": 500}, "fid": {"n": 5000}},
                     "allowSynthetic": True},
        "check": {"args": {"model": "cnn6", "gpus": 0.5}},
    },
}

def entrypoint(values: dict) -> list[str]:
    """The RayJob's entrypoint, split as the shell KubeRay hands it to would."""
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name="cifar100")
    rayjob = yaml.safe_load(manifests["cifar100/templates/rayjob.yaml"])
    return shlex.split(rayjob["spec"]["entrypoint"])


def _command_name(argv: list[str]) -> str:
    """`fid`, `data fetch`, `gan train`: the command path, without options."""
    return " ".join(argv[1:3] if argv[1] in ("data", "gan") else argv[1:2])


CASES = []
for _scenario, _values in SCENARIOS.items():
    for _stage in STAGES:
        _argv = entrypoint({**_values, "stage": _stage})
        _name = _command_name(_argv)
        CASES.append(pytest.param(_argv, id=f"{_scenario}:{_stage}"))


def parse(argv: list[str]) -> click.Context:
    """Resolve `cifar <group> <command> ...` through the real CLI and parse the options, as Click would
    before calling the command. Raises if a command, option or value is not accepted. Paths the
    chart names (results of earlier stages, on the cluster's volumes) need not exist here."""
    assert argv[0] == "cifar"
    command, rest, parent, name = cli, list(argv[1:]), None, "cifar"
    while isinstance(command, click.Group):
        parent = click.Context(command, info_name=name, parent=parent)
        if not rest or rest[0].startswith("-"):
            raise click.UsageError(f"`{name}` needs a subcommand", parent)
        sub = command.get_command(parent, rest[0])
        if sub is None:
            raise LookupError(f"`{' '.join(argv[: argv.index(rest[0]) + 1])}` is not a registered command")
        name, command = rest.pop(0), sub
    with _paths_need_not_exist(command):
        return command.make_context(name, rest, parent=parent)


PENDING_FLAG = "--pending-timeout"


def takes_option(command: click.Command, flag: str) -> bool:
    return any(flag in getattr(p, "opts", ()) for p in command.params)


@contextlib.contextmanager
def _paths_need_not_exist(command: click.Command):
    changed = [p.type for p in command.params if isinstance(p.type, click.Path) and p.type.exists]
    for path_type in changed:
        path_type.exists = False
    try:
        yield
    finally:
        for path_type in changed:
            path_type.exists = True


def test_every_stage_runs_through_the_pipeline_command():
    """The chart knows no stage's command: every stage is `cifar pipeline --stage NAME`; `check` is the probe."""
    names = {_command_name(p.values[0]) for p in CASES}
    assert names == {"pipeline", "check"}


@pytest.mark.parametrize("argv", CASES)
def test_chart_command_parses_with_the_cli(argv):
    ctx = parse(argv)
    assert not ctx.args, f"unexpected extra arguments {ctx.args}"
    if argv[1] == "pipeline":  # the --set keys and types, as the pipeline itself checks them
        from cifar_core.pipeline import resolve_profile

        resolve_profile(ctx.params["profile"], ctx.params["overrides"])


def test_the_cli_takes_the_pending_timeout_the_chart_passes():
    """Every command that submits Ray work takes the chart's --pending-timeout (gan train included)."""
    for stage in STAGES:
        argv = entrypoint({**RWX, "stage": stage})
        assert PENDING_FLAG in argv
        command = cli.get_command(click.Context(cli), argv[1])
        assert takes_option(command, PENDING_FLAG), " ".join(argv[:3])
        assert parse(argv).params["pending_timeout"] == 1800


def test_parse_rejects_what_the_cli_rejects():
    with pytest.raises(click.NoSuchOption):
        parse(["cifar", "data", "fetch", "--out", "/data", "--no-such-flag"])
    with pytest.raises(LookupError):
        parse(["cifar", "no-such-command"])
    with pytest.raises(click.BadParameter):
        parse(["cifar", "data", "synth", "--out", "/data", "--train", "many"])
    with pytest.raises(click.MissingParameter):
        parse(["cifar", "gan", "train", "--steps", "10"])
    with pytest.raises(click.BadParameter):
        parse(["cifar", "pipeline", "--stage", "no-such-stage"])


def test_an_unknown_pipeline_setting_is_refused_by_python():
    from cifar_core.errors import CifarError
    from cifar_core.pipeline import resolve_profile

    argv = entrypoint({**RWX, "pipeline": {"set": {"tune": {"num_smaples": 20}}}})
    assert argv[-2:] == ["--set", "tune.num_smaples=20"]
    ctx = parse(argv)
    with pytest.raises(CifarError, match="num_smaples"):
        resolve_profile(ctx.params["profile"], ctx.params["overrides"])


def test_commands_follow_the_values():
    wait = ["--pending-timeout", "1800"]
    assert entrypoint(RWX) == ["cifar", "pipeline", "--profile", "full", "--device", "cuda", *wait]
    assert entrypoint(SCENARIOS["options"])[8:] == [
        "--allow-synthetic", "--set", "data.if_missing=synthesize", "--set", "data.n_train=500",
        "--set", "fid.n=5000", "--set", "gan.conditional=false",
        "--set", "gan.steps=1000000", "--set", "resources.gan.gpus=0.5",  # whole numbers stay whole
        "--set", "tune.max_epochs=3", "--set", "tune.num_samples=20", "--set", "tune.space=modern",
    ]
    assert entrypoint({**KIND, "stage": "pipeline"}) == ["cifar", "pipeline", "--profile", "smoke", "--device", "cpu",
                                                         "--pending-timeout", "300"]  # kind: nothing scales up
    # a single stage is the pipeline's stage: no command, flag or default of its own in the chart
    for stage in ("data", "tune", "retrain", "gan", "fid", "report"):
        assert entrypoint({**RWX, "stage": stage}) == ["cifar", "pipeline", "--profile", "full", "--device", "cuda",
                                                       *wait, "--stage", stage]
    assert entrypoint({**RWX, "stage": "check"}) == ["cifar", "check", "--device", "cuda", *wait]
    assert entrypoint({**SCENARIOS["options"], "stage": "check"})[-4:] == ["--gpus", "0.5", "--model", "cnn6"]
    assert entrypoint({**RWX, "stage": "gan", "pendingTimeoutSeconds": 0})[6:8] == ["--pending-timeout", "0"]


def test_entrypoint_words_survive_the_shell():
    """KubeRay pastes the entrypoint into a shell command line: odd words are quoted, not run."""
    values = {**RWX, "stage": "check", "check": {"args": {"model": "/results/it's $(here) & there"}}}
    with helm.Chart.load(str(CHART)) as chart:
        text = yaml.safe_load(chart.render(values, name="cifar100")["cifar100/templates/rayjob.yaml"])["spec"]["entrypoint"]
    assert shlex.split(text)[-2:] == ["--model", "/results/it's $(here) & there"]
    assert "'/results/it'\"'\"'s $(here) & there'" in text
    plain = entrypoint(RWX)
    assert shlex.join(plain) == " ".join(plain)
