"""What several test files need: the real `cifar` entry point run in this process, the check
that a user error is one `error:` line with exit status 2, and the contract between the stages'
real outputs and the report's committed fixture tree, and the chart's objects as Helm's own engine
renders them. (Import as `from helpers import ...`:
pytest puts tests/ on sys.path.)"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import subprocess
from pathlib import Path
from typing import NamedTuple

from cifar_core import summaries
from cifar_core.records import Record


class Result(NamedTuple):
    status: int
    out: str
    err: str

    @classmethod
    def of(cls, done: subprocess.CompletedProcess) -> Result:
        """A command run in another process (a SIGTERM, a mount namespace, a fresh interpreter)."""
        return cls(done.returncode, done.stdout, done.stderr)


def cifar(*args) -> Result:
    """`cifar ARGS` through jobs.cli.main, in this process: a new Python (and torch) per call would
    add seconds and test nothing more. Works inside module-scoped fixtures (no capsys needed)."""
    from jobs.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return Result(status, out.getvalue(), err.getvalue())


def assert_one_line_error(result: Result, *fragments: str) -> None:
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.status == 2 and len(lines) == 1 and lines[0].startswith("error: "), result
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "results"


# Each kind of result in the committed fixture tree and in a smoke pipeline's outputs (tests/
# test_ray_pipeline.py), with the class the stage writes it through and the report reads it through.
KINDS = [("pipeline/fixture", "pipeline/smoke", summaries.PipelineSummary),
         ("pipeline/fixture/data", "pipeline/smoke/data", summaries.DataSummary),
         *(("tune/exp", "tune/smoke", kind) for kind in (summaries.SearchSummary, summaries.TopTrials,
                                                         summaries.SearchRecord)),
         ("retrain/exp", "retrain/smoke", summaries.RetrainSummary),
         ("recipe/report-a-e1", "recipe/report-a-e1", summaries.RecipeSummary),
         ("recipe/report-a-augment-none-e1", "recipe/report-a-augment-none-e1", summaries.RecipeSummary),
         ("recipe/report-b-s2", "recipe/report-b-s1", summaries.RecipeSummary),
         ("train/tiny-evaluated", "train/report-a-cnn6-e1-seed0", summaries.TrainSummary),
         ("gan/dcgan", "gan/smoke", summaries.GanSummary),
         ("fid/dcgan-select-n4", "fid/smoke-select-n2", summaries.FidSummary),
         # stage fid-b: report B's snapshot (with `compared`), and the later one scored beside it
         ("fid/dcgan-step_20-n4", "fid/smoke-step_2-n2", summaries.FidSummary),
         ("fid/dcgan-step_40-n4", "fid/smoke-step_4-n2", summaries.FidSummary)]


def assert_fixture_has_the_shape_of(results: Path) -> None:
    """The contract between the stages and the report's tests: every summary of the committed fixture
    tree and of real stage outputs parses with its class, declares every key it writes, and real
    outputs have every key the fixture has (so the report's tests read what the stages write). A stage
    that renames, drops or retypes what the report reads fails here; then rerun tests/fixtures/make_results.py."""
    for fixture, fresh, cls in KINDS:
        kept, made = cls.read_in(FIXTURE / fixture), cls.read_in(results / fresh)
        found = undeclared(kept, fixture) + undeclared(made, fresh)
        assert not found, f"keys {cls.__name__} does not declare: {', '.join(found)}"
        assert_within(kept.to_json(), made.to_json(), f"{fixture}/{cls.FILE}")
    for fixture, fresh in (("gan/dcgan/metrics.jsonl", "gan/smoke/metrics.jsonl"),
                           ("train/tiny-evaluated/metrics.jsonl", "train/report-a-cnn6-e1-seed0/metrics.jsonl")):
        first_row = [json.loads(line) for line in (FIXTURE / fixture).read_text().splitlines()][:1]
        assert_within(first_row, [json.loads(line) for line in (results / fresh).read_text().splitlines()], fixture)
    header = (FIXTURE / "tune/exp/trials.csv").read_text().splitlines()[0].split(",")
    assert set(header) <= set((results / "tune/smoke/trials.csv").read_text().splitlines()[0].split(","))


def undeclared(record, where: str) -> list[str]:
    """The keys of a record (and of the records in it) that its class does not declare."""
    if isinstance(record, list):
        return [key for i, item in enumerate(record) for key in undeclared(item, f"{where}[{i}]")]
    if not isinstance(record, Record):
        return []
    found = [f"{where}.{key}" for key in record.extra]
    for field in dataclasses.fields(record):
        if field.name != "extra":
            found += undeclared(getattr(record, field.name), f"{where}.{field.name}")
    return found


DATA_KEYED = {"epochs_histogram", "status_counts", "params", "evaluations", "space_file", "protocol_settings"}


def assert_within(fixture, fresh, where: str) -> None:
    """`fixture`'s keys are all in `fresh`, recursively, with values of the same kind (null matches any)."""
    if fixture is None or fresh is None:
        return
    if isinstance(fixture, dict):
        assert isinstance(fresh, dict), where
        if where.rsplit(".", 1)[-1] in DATA_KEYED:
            return  # its keys are data (statuses, epochs, searched keys), not the shape
        for key, value in fixture.items():
            assert key in fresh, f"{where}: real outputs have no {key!r}"
            assert_within(value, fresh[key], f"{where}.{key}")
    elif isinstance(fixture, list):
        assert isinstance(fresh, list), where
        if fixture and fresh:
            assert_within(fixture[0], fresh[0], f"{where}[0]")
    else:
        number = (int, float)
        same = (isinstance(fixture, number) and isinstance(fresh, number) and not isinstance(fixture, bool)) \
            or type(fixture) is type(fresh)
        assert same, f"{where}: {type(fixture).__name__} in the fixture, {type(fresh).__name__} in real outputs"


# --- the image's build context --------------------------------------------------------------------
def dockerignore_rules(repo: Path) -> list[tuple[re.Pattern, bool]]:
    """.dockerignore as BuildKit and buildah read it: [(pattern, excludes)], later rules win; `*` stays
    within one path segment, `**` spans segments, a rule that matches a directory covers what is in it."""
    rules = []
    for line in (repo / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!")).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((re.compile(regex + r"\Z"), excludes))
    return rules


def in_build_context(relpath: str, rules) -> bool:
    """Whether `relpath` (relative to the repository) reaches the build context under `rules`."""
    parts = relpath.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for regex, excludes in rules:
        if any(regex.match(p) for p in prefixes):
            excluded = excludes
    return not excluded


def manifest_objects(manifests: dict[str, str]) -> list[dict]:
    """The objects of Helm's rendered manifests ({source: text}), parsed with libyaml (10x faster than
    PyYAML's Python loader: the chart tests render hundreds of times); NOTES.txt and empty documents
    left out."""
    import yaml

    return [doc for source, text in manifests.items() if source.endswith(".yaml")
            for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def helm_objects(chart: Path, values: dict, release: str = "cifar100", namespace: str = "ml") -> list[dict]:
    """The chart rendered directly by Helm's engine (`helm template`): the reference the project's own
    render, dry run and submit are compared with."""
    import helm_python as helm

    with helm.Chart.load(str(chart)) as loaded:
        return manifest_objects(loaded.render(values, name=release, namespace=namespace))
