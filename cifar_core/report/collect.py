"""Read every stage's results under a results directory into one dict, each summary through its
class (cifar_core.summaries).

Absent stages are simply absent: a report of a half-finished study is still a report. A file that
is there but cannot be read (torn or hand-edited JSON, a value of another type, a CSV without its
header) is an error that names the file, because a report quietly leaving out a stage would misstate
the study.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.metadata
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cifar_core.atomic import read_jsonl
from cifar_core.config import load_yaml_mapping
from cifar_core.errors import CifarError
from cifar_core.layout import FOLDERS, Results
from cifar_core.records import Record
from cifar_core.resultdir import check_inside, regular_file
from cifar_core.snapshots import step_files
from cifar_core.summaries import (
    DataSummary,
    FidSummary,
    GanSummary,
    PipelineSummary,
    RecipeSummary,
    RetrainSummary,
    SearchRecord,
    SearchSummary,
    TopTrials,
    TrainSummary,
)

STAGES = FOLDERS  # the folders under RESULTS whose results the report reads
VERSIONED_PACKAGES = ("cifar100-k8s", "torch", "torchvision", "ray", "numpy", "matplotlib", "pytorch-fid")


def collect_results(results_dir: str | os.PathLike) -> dict[str, Any]:
    """{"results_dir", "stages": {stage: [entry, ...]}, "pipelines", "incomplete", "data", "environment"}."""
    root = Path(results_dir)
    if not root.is_dir():
        raise CifarError(f"no results directory at {root}")
    incomplete: list[dict[str, str]] = []
    stages = {stage: _read_stage(root, stage, *READERS[stage], incomplete) for stage in STAGES}
    pipelines = read_pipelines(root)
    return {
        "results_dir": str(root.resolve()),
        "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "stages": stages,
        "pipelines": pipelines,
        "incomplete": incomplete,
        "data": data_provenance(stages, pipelines),
        "environment": environment(),
    }


@contextmanager
def summaries_of(entries: list[dict[str, Any]]) -> Iterator[None]:
    """Turn a summary with the wrong shape (a missing key, a string where a number belongs) met
    while rendering `entries` into a one-line CifarError naming their files, not a traceback."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        where = ", ".join(str(type(e["summary"]).file_in(e["dir"])) for e in entries)
        detail = (str(exc).splitlines() or [""])[0]
        raise CifarError(f"unexpected contents in {where}: {type(exc).__name__} {detail}") from None


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CifarError(f"cannot read {path}: {type(exc).__name__}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise CifarError(f"corrupt {path}: no {missing[0]!r} column")
    return rows


def _read_stage(root: Path, stage: str, summary: type[Record], reader, incomplete: list[dict[str, str]]
                ) -> list[dict[str, Any]]:
    """One entry per run directory holding a summary, read as `summary`; the others are listed as incomplete."""
    folder = root / stage
    entries = []
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        if not _inside(root, run_dir):
            incomplete.append({"stage": stage, "name": run_dir.name, "dir": str(run_dir),
                               "reason": "a symbolic link on the way into the results tree: not read"})
            continue
        if not regular_file(summary.file_in(run_dir)):
            incomplete.append({"stage": stage, "name": run_dir.name, "dir": str(run_dir)})
            continue
        entries.append(reader(run_dir, {"name": run_dir.name, "dir": str(run_dir), "summary": summary.read_in(run_dir)}))
    return entries


def read_train(run_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """A training run, with the budget it was set (its config.yaml: epochs, or optimisation steps)."""
    entry["budget"] = run_budget(run_dir / "config.yaml")
    return entry


def run_budget(config: Path) -> dict[str, int] | None:
    if not regular_file(config):
        return None
    run = load_yaml_mapping(config).get("run") or {}  # bounded, as every YAML read: one line past a limit
    if not isinstance(run, dict):
        raise CifarError(f"cannot read {config}: its run is not a mapping of settings")
    return {"steps": run["steps"]} if run.get("steps") else {"epochs": run.get("epochs")} if run.get("epochs") else None


def read_tune(run_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    trials = run_dir / "trials.csv"
    entry["trials"] = read_csv_rows(trials, ("rank", "trial_id", "status")) if regular_file(trials) else []
    entry["top_k"] = TopTrials.read_in(run_dir) if regular_file(TopTrials.file_in(run_dir)) else None
    entry["experiment"] = SearchRecord.read_in(run_dir) if regular_file(SearchRecord.file_in(run_dir)) else None
    entry["synthetic_data"] = entry["summary"].synthetic_data
    entry["figures"] = {"curves": _existing(run_dir / "curves.png")}
    return entry


def read_retrain(run_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """A retraining from a search (retrain/) or a recipe (recipe/): its figures beside its summary."""
    entry["figures"] = {"loss": _existing(run_dir / "loss.png"),
                        "test_accuracy": _existing(run_dir / "test_accuracy.png")}
    return entry


def read_gan(run_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    # Its collapse events are the summary's `collapse_events`; the metrics file also logs them.
    metrics = run_dir / "metrics.jsonl"
    entry["metrics"] = [r for r in read_jsonl(metrics) if "event" not in r] if regular_file(metrics) else []
    step, grid = latest_sample_grid(run_dir / "samples")
    entry["figures"] = {"losses": _existing(run_dir / "losses.png"), "samples": grid}
    entry["samples_step"] = step
    return entry


def read_fid(run_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    return entry


READERS = {"tune": (SearchSummary, read_tune), "retrain": (RetrainSummary, read_retrain),
           "recipe": (RecipeSummary, read_retrain), "train": (TrainSummary, read_train), "gan": (GanSummary, read_gan),
           "fid": (FidSummary, read_fid)}


def latest_sample_grid(folder: Path) -> tuple[int | None, str | None]:
    """The fixed-noise grid of the highest step, samples/step_<N>.png."""
    found = [(step, path) for step, path in step_files(folder, ".png") if _inside(folder.parent, path)
             and regular_file(path)]
    return (found[-1][0], str(found[-1][1])) if found else (None, None)


def read_pipelines(root: Path) -> list[dict[str, Any]]:
    """Each profile's pipeline summary, with the data check it made (its data/ result)."""
    folder = Results(root).pipeline("x").parent
    pipelines = []
    for profile_dir in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        summary, data = PipelineSummary.file_in(profile_dir), DataSummary.file_in(profile_dir / "data")
        summary_ok = _inside(root, profile_dir) and regular_file(summary)
        data_ok = _inside(root, data.parent) and regular_file(data)
        if summary_ok or data_ok:
            pipelines.append({
                "name": profile_dir.name,
                "summary": PipelineSummary.read(summary) if summary_ok else None,
                "data": DataSummary.read(data) if data_ok else None,
            })
    return pipelines


def data_provenance(stages: dict[str, list], pipelines: list[dict]) -> dict[str, Any]:
    """Which dataset each result came from, and one verdict: real, synthetic, mixed or unknown."""
    sources = []
    for stage in ("train", "gan", "tune"):
        for entry in stages[stage]:
            sources.append({"where": f"{stage}/{entry['name']}", "synthetic": entry["summary"].synthetic_data})
    for stage in ("retrain", "recipe"):
        for entry in stages[stage]:
            for model in entry["summary"].models:
                run = model.run or Path(model.run_dir).name
                sources.append({"where": f"{stage}/{entry['name']}/{run}", "synthetic": model.synthetic_data})
    for entry in stages["fid"]:
        dataset = entry["summary"].real.dataset if entry["summary"].real else None
        sources.append({"where": f"fid/{entry['name']}", "synthetic": None if dataset is None else dataset == "synthetic"})
    for pipeline in pipelines:
        if pipeline["data"] is not None:
            sources.append({"where": f"pipeline/{pipeline['name']}/data", "synthetic": pipeline["data"].synthetic})
    known = {s["synthetic"] for s in sources if s["synthetic"] is not None}
    verdict = "unknown" if not known else "mixed" if len(known) == 2 else "synthetic" if True in known else "real"
    return {"verdict": verdict, "sources": sources}


def environment() -> dict[str, Any]:
    """Versions and machine of the environment building the report (the stages' image, in practice)."""
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"versions": versions, "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count()}


def _existing(path: Path) -> str | None:
    """A figure the page may embed: a regular file itself (a link's target could be anything)."""
    return str(path) if regular_file(path) else None


def _inside(root: Path, path: Path) -> bool:
    """`path` lies in the results tree with no symbolic link on the way: nothing is read from outside
    the tree into a page meant for sharing."""
    try:
        check_inside(root, path)
    except CifarError:
        return False
    return True
