"""Every command line the chart renders parses with the project's own Click CLI, so the chart can
never call a command or flag that does not exist (or give a flag a value of the wrong type)."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from pathlib import Path

import click
import helm_python as helm
import pytest
import yaml

from jobs.cli import cli

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cifar100"
ALL_ON = {name: {"enabled": True} for name in ("data", "tune", "retrain", "gan", "fid", "pipeline")}
SCENARIOS = {
    "full": {"profile": "full", "stages": ALL_ON},
    "smoke": {"profile": "smoke", "stages": ALL_ON},
    "kind": {**yaml.safe_load((REPO / "k8s" / "kind" / "values.yaml").read_text()), "stages": ALL_ON},
    "shared-cluster": {"ray": {"sharedCluster": {"enabled": True}}},
    "options": {  # the optional flags switched on
        "stages": ALL_ON,
        "profiles": {"full": {"tune": {"gracePeriod": 3, "smoke": True},
                              "gan": {"sampleEvery": 500, "checkpointEvery": 2000},
                              "data": {"source": "synth"}}},
    },
    "last-checkpoint-fid": {"stages": {**ALL_ON, "fid": {"enabled": True, "selectBest": False}}},
}

# Commands the chart calls whose owners have not registered them yet. Each case still runs (and
# fails) until then; remove the name here once `cifar <name>` exists.
NOT_YET_REGISTERED: set[str] = set()


def _command_lines(values: dict):
    """(where, argv from `cifar` on) of every container and of the RayJob entrypoint."""
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name="cifar100")
    for source, text in sorted(manifests.items()):
        for obj in (d for d in yaml.safe_load_all(text) if d) if source.endswith(".yaml") else ():
            name = obj["metadata"]["name"]
            if obj["kind"] == "RayJob":
                yield f"{name} entrypoint", shlex.split(obj["spec"]["entrypoint"])
            for pod in _pods(obj):
                for container in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
                    argv = [*container.get("command", []), *container.get("args", [])]
                    if "cifar" in argv:
                        yield f"{name} {container['name']}", argv[argv.index("cifar"):]


def _pods(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "Job":
        yield spec["template"]
    cluster = spec.get("rayClusterSpec") or (spec if obj["kind"] == "RayCluster" else None)
    if cluster:
        yield cluster["headGroupSpec"]["template"]
        for group in cluster["workerGroupSpecs"]:
            yield group["template"]


def _command_name(argv: list[str]) -> str:
    """`fid`, `data fetch`, `gan train`: the command path, without options."""
    words = []
    for word in argv[1:]:
        if word.startswith("-") or len(words) == 2:
            break
        words.append(word)
    return " ".join(words[:1] if words[0] not in ("data", "gan") else words)


CASES = []
for _scenario, _values in SCENARIOS.items():
    for _where, _argv in _command_lines(_values):
        _name = _command_name(_argv)
        _marks = [pytest.mark.xfail(strict=False, reason="command not yet registered")] if _name.split()[0] in NOT_YET_REGISTERED else []
        CASES.append(pytest.param(_argv, id=f"{_name.replace(' ', '-')}:{_scenario}:{_where.replace(' ', ':')}", marks=_marks))


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


def test_every_stage_command_is_covered():
    names = {_command_name(p.values[0]) for p in CASES}
    assert names == {"data fetch", "data synth", "data verify", "tune", "retrain", "gan train", "fid", "pipeline"}


@pytest.mark.parametrize("argv", CASES)
def test_chart_command_parses_with_the_cli(argv):
    ctx = parse(argv)
    assert not ctx.args, f"unexpected extra arguments {ctx.args}"


def test_parse_rejects_what_the_cli_rejects():
    with pytest.raises(click.NoSuchOption):
        parse(["cifar", "data", "fetch", "--out", "/data", "--no-such-flag"])
    with pytest.raises(LookupError):
        parse(["cifar", "no-such-command"])
    with pytest.raises(click.BadParameter):
        parse(["cifar", "data", "synth", "--out", "/data", "--train", "many"])
    with pytest.raises(click.MissingParameter):
        parse(["cifar", "gan", "train", "--steps", "10"])


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rayjob_entrypoint_is_one_plain_shell_word_list(scenario):
    """KubeRay pastes the entrypoint into a bash command line: every word must be shell-inert."""
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(SCENARIOS[scenario], name="cifar100")
    rayjob = yaml.safe_load(manifests["cifar100/templates/rayjob-tune.yaml"])
    words = shlex.split(rayjob["spec"]["entrypoint"])
    assert shlex.join(words) == rayjob["spec"]["entrypoint"]
    assert all(re.fullmatch(r"[A-Za-z0-9_./=:+-]+", word) for word in words), words


def test_commands_follow_the_profile():
    lines = dict(_command_lines({"profile": "full"}))
    assert lines["cifar100-data-prep data"] == ["cifar", "data", "fetch", "--out", "/data"]
    assert lines["cifar100-tune entrypoint"] == [
        "cifar", "tune", "--experiment", "report-a", "--space", "report-a", "--num-samples", "60",
        "--max-concurrent", "16", "--max-epochs", "30", "--cpus-per-trial", "2", "--gpus-per-trial", "0.25",
        "--top-k", "3",
    ]
    assert lines["cifar100-retrain retrain"] == ["cifar", "retrain", "--from-tune", "report-a", "--top-k", "3", "--epochs", "100"]
    assert lines["cifar100-gan gan"] == ["cifar", "gan", "train", "--run-name", "dcgan", "--steps", "46000", "--batch-size", "128"]
    assert lines["cifar100-fid fid"] == ["cifar", "fid", "--select-best", "/results/gan/dcgan", "--split", "test", "--n", "10000", "--name", "dcgan"]
    last = dict(_command_lines(SCENARIOS["last-checkpoint-fid"]))
    assert last["cifar100-fid fid"][2:4] == ["--checkpoint", "/results/gan/dcgan/checkpoints/last.pt"]
    smoke = dict(_command_lines({"profile": "smoke", "experiment": "e1", "stages": {"pipeline": {"enabled": True}}}))
    assert smoke["cifar100-data-prep data"] == ["cifar", "data", "synth", "--out", "/data", "--train", "1000", "--test", "200", "--seed", "0"]
    assert smoke["cifar100-tune entrypoint"][-1] == "--smoke"
    assert smoke["cifar100-pipeline pipeline"] == ["cifar", "pipeline", "--profile", "smoke"]
    big = dict(_command_lines({"profiles": {"full": {"gan": {"steps": 1000000}}}}))
    assert "1000000" in big["cifar100-gan gan"]  # not 1e+06
    assert json.dumps(big)  # plain strings only
