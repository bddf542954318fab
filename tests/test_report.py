"""`cifar report` on results made by the real stages on a tiny synthetic set: nothing at all, only
the search, only the GAN, everything; the numbers on the page and in the Markdown are exactly the
summaries'; a corrupt summary is a one-line error naming the file.

The search is the one stage not run through Ray here (minutes on 2 cores): its trials are trained
by the real engine and its files written by the tune package's own result writers.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
import yaml

from cifar_core.errors import CifarError, TrainingDiverged
from cifar_core.report import build_report
from jobs.cli import main

SPACE = {"description": "report test: tinycnn with sgd", "models": [{"names": ["tinycnn"]}],
         "optimizers": {"sgd": {"lr": {"choice": [0.05, 0.01]}, "momentum": 0.9}}}
# (trial id, learning rate, epochs trained): the 1-epoch trial is one ASHA stopped at its first rung.
TRIALS = [("t1", 0.05, 2), ("t2", 0.01, 2), ("t3", 0.002, 1), ("t4", 1.0e30, 1)]
MAX_EPOCHS = 2


# --- inputs: the real stages on tiny data, built once per test session --------------------------
def full_results(tmp_path_factory) -> Path:
    """RESULTS with tune, retrain, train, gan and fid outputs (shared by both report test files)."""
    base = tmp_path_factory.getbasetemp() / "report-inputs"
    if not (base / "DONE").exists():
        shutil.rmtree(base, ignore_errors=True)
        build_results(base)
        (base / "DONE").touch()
    return base / "results"


def build_results(base: Path) -> None:
    from cifar_core.data import write_synthetic
    from cifar_core.retrain import retrain_from_tune
    from cifar_core.runs import train_run

    data, results = base / "data", base / "results"
    write_synthetic(data, n_train=500, n_test=100, seed=0)
    cfg = tiny_train_config()
    train_run(cfg, data, results, run_name="tiny-evaluated", evaluate_test=True)
    train_run(cfg.with_overrides({"optim.lr": 0.01}), data, results, run_name="tiny-validation-only")
    write_search(base, data, results / "tune" / "exp")
    retrain_from_tune("exp", data, results, top_k=2, epochs=1, device="cpu")
    train_gan_with_collapse(data, results / "gan" / "dcgan")
    score_snapshots(base, results)


def tiny_train_config():
    from cifar_core.config import TrainConfig

    return TrainConfig().with_overrides({"model.name": "tinycnn", "optim.name": "sgd", "optim.lr": 0.05,
                                         "optim.momentum": 0.9, "run.epochs": 1, "run.batch_size": 100,
                                         "run.eval_batch_size": 500, "run.device": "cpu"})


def write_search(base: Path, data: Path, exp_dir: Path) -> None:
    """Four trials trained by the engine; trials.csv, top_k.json, curves.png, summary.json and
    experiment.json written by the tune package's own functions, as `cifar tune` writes them."""
    from cifar_core.atomic import atomic_write_json
    from cifar_core.data import make_data
    from cifar_core.engine import fit
    from cifar_core.tune import results as tr
    from cifar_core.tune.search import TuneSettings, experiment_record
    from cifar_core.tune.space import load_space

    (base / "space.yaml").write_text(yaml.safe_dump(SPACE))
    settings = TuneSettings(experiment="exp", space=str(base / "space.yaml"), num_samples=len(TRIALS),
                            max_concurrent=2, max_epochs=MAX_EPOCHS, batch_size=100, device="cpu")
    record = experiment_record(settings, load_space(settings.space), data)
    cfg = tiny_train_config()
    bundle = make_data(data, batch_size=100, eval_batch_size=500, augment=cfg.augment, device="cpu")
    records = []
    for trial_id, lr, epochs in TRIALS:
        params = {"model.name": "tinycnn", "optim.name": "sgd", "optim.lr": lr, "optim.momentum": 0.9}
        trial = tr.TrialRecord(trial_id, "TERMINATED", params)
        try:
            fit(cfg.with_overrides({"optim.lr": lr, "run.epochs": epochs}), bundle,
                on_epoch=lambda m, _c, t=trial: t.history.append({**m, "time_total_s": m["epoch_time_s"]}))
        except TrainingDiverged as exc:
            trial.status, trial.error = "ERROR", str(exc)
        records.append(trial)
    ranked = tr.rank_trials(records)
    usable = [r for r in ranked if r.status != "ERROR"]
    tr.write_trials_csv(exp_dir / "trials.csv", ranked, MAX_EPOCHS)
    tr.write_top_k(exp_dir / "top_k.json", usable, 3, record)
    tr.plot_curves(exp_dir / "curves.png", usable[:3], "exp")
    atomic_write_json(exp_dir / "experiment.json", record)
    atomic_write_json(exp_dir / "summary.json", tr.build_summary(ranked, record, wall_time_s=12.5))


def train_gan_with_collapse(data: Path, run_dir: Path) -> None:
    """A tiny DCGAN whose generator is pinned to a constant image from step 20: the real detector
    sees the collapse and the trainer rolls back (the GAN tests' own sabotage)."""
    from cifar_core.gan.config import CollapseConfig, GanTrainConfig
    from cifar_core.gan.train import train_gan

    cfg = GanTrainConfig(steps=40, batch_size=16, ngf=8, ndf=8, nz=16, log_every=5, sample_every=20,
                         checkpoint_every=20, collapse=CollapseConfig(warmup_steps=10, window_steps=10))
    hooks = []

    def sabotage(row, training):
        if row.get("step") == 20 and not hooks and "event" not in row:
            hooks.append(training.generator.register_forward_hook(lambda m, i, out: torch.zeros_like(out)))
        if row.get("event") == "collapse" and hooks:
            hooks.pop().remove()

    train_gan(cfg, data, run_dir, device="cpu", on_log=sabotage)


def score_snapshots(base: Path, results: Path) -> None:
    """`cifar fid --select-best` over the GAN's snapshots, with test-made Inception weights and an
    8-image reference set, so Inception runs on 16 images in all."""
    from cifar_core.data import write_synthetic
    from cifar_core.fid import WEIGHTS_FILENAME, write_random_weights
    from cifar_core.fid.scoring import run_fid

    write_synthetic(base / "fid-data", n_train=2, n_test=8, seed=1)
    weights = write_random_weights(base / WEIGHTS_FILENAME)
    run_fid(results / "fid" / "dcgan-select", run_dir=results / "gan" / "dcgan", data_dir=base / "fid-data",
            weights=weights, device="cpu", n=4, cache_dir=base / "fid-cache")


@pytest.fixture(scope="session")
def full(tmp_path_factory) -> Path:
    return full_results(tmp_path_factory)


# --- reading the page back ----------------------------------------------------------------------
class PageTables(HTMLParser):
    """Every table (by id) as rows of (text, data-value) cells; every src/href; the banner text."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, object]]]] = {}
        self.links: list[str] = []
        self.banner, self._table, self._cell, self._in_banner = "", None, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "table":
            self._table = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            value = json.loads(attrs["data-value"]) if "data-value" in attrs else None
            self._cell = ["", value]
        self._in_banner = self._in_banner or attrs.get("id") == "data-banner"

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(tuple(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "p":
            self._in_banner = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data
        if self._in_banner:
            self.banner += data


def read_page(path: Path) -> PageTables:
    parser = PageTables()
    parser.feed(path.read_text())
    return parser


def table_rows(page: PageTables, key: str) -> dict[str, dict[str, tuple[str, object]]]:
    """{first cell's text: {column: (text, value)}} of the table with that key."""
    header, *rows = page.tables["s-" + key.replace("/", "-")]
    columns = [text for text, _ in header]
    return {row[0][0]: dict(zip(columns, row, strict=True)) for row in rows}


def markdown_tables(path: Path) -> list[dict[str, dict[str, str]]]:
    """Each Markdown table as {first cell: {column: text}}."""
    tables, lines = [], path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            columns = _md_cells(line)
            body = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                body.append(_md_cells(row))
            tables.append({cells[0]: dict(zip(columns, cells, strict=True)) for cells in body})
    return tables


def _md_cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in line.strip().strip("|").split(" | ")]


def pct(fraction: float) -> str:
    return f"{fraction * 100:.2f}"


def summary(path: Path) -> dict:
    return json.loads(path.read_text())


def cifar(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def copy_stages(full: Path, target: Path, *stages: str) -> Path:
    for stage in stages:
        shutil.copytree(full / stage, target / stage)
    return target


# --- tests --------------------------------------------------------------------------------------
def test_nothing_at_all_is_a_page_that_says_so(tmp_path):
    (tmp_path / "results").mkdir()
    written = build_report(tmp_path / "results")
    assert written["html"] == tmp_path / "results" / "report" / "index.html"
    page = read_page(written["html"])
    assert "No stages have run yet" in page.banner and list(page.tables) == []
    assert "No stages have run" in written["md"].read_text()
    assert json.loads(written["json"].read_text())["stages"] == {s: [] for s in ("tune", "retrain", "train", "gan", "fid")}


def test_only_the_search(full, tmp_path):
    results = copy_stages(full, tmp_path / "results", "tune")
    written = build_report(results, tmp_path / "out")
    page = read_page(written["html"])
    assert "SYNTHETIC DATA" in page.banner  # known from the data dir named in experiment.json
    assert {"s-overview", "s-tune-exp-trials", "s-tune-exp-rungs"} <= set(page.tables)
    assert not any(key.startswith(("s-gan", "s-fid", "s-train", "s-retrain")) for key in page.tables)
    rows = table_rows(page, "tune/exp/trials")
    with open(results / "tune" / "exp" / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    assert len(rows) == len(TRIALS) == len(trials)
    for trial in trials:
        row = next(r for r in rows.values() if r["Trial"][0] == trial["trial_id"])
        assert row["Status"][0].startswith(trial["status"])
        assert row["Epochs"] == (trial["epochs"], int(trial["epochs"]))
        if trial["best_val_acc"]:
            assert row["Best val acc (%)"] == (pct(float(trial["best_val_acc"])), float(trial["best_val_acc"]))
    rungs = summary(results / "tune" / "exp" / "summary.json")["rungs"]
    assert [(r["Trials reaching it"][1], r["Stopped there"][1]) for r in table_rows(page, "tune/exp/rungs").values()] \
        == [(r["trials_reached"], r["stopped_here"]) for r in rungs]
    assert (tmp_path / "out" / "figures" / "tune_exp_rungs.png").stat().st_size > 5_000


def test_only_the_gan(full, tmp_path):
    results = copy_stages(full, tmp_path / "results", "gan")
    page = read_page(build_report(results, tmp_path / "out", formats=("html",))["html"])
    assert not (tmp_path / "out" / "report.md").exists()
    gan = summary(results / "gan" / "dcgan" / "summary.json")
    [event] = gan["collapse_events"]
    [row] = table_rows(page, "gan/dcgan/collapses").values()
    assert row["Step"][1] == event["step"] and row["Rolled back to"][1] == event["rolled_back_to"]
    assert row["New lr"][1] == event["new_lr"] and row["Action"][0] == "rollback"
    assert "SYNTHETIC DATA" in page.banner and "s-train-runs" not in page.tables


def test_full_run_numbers_are_the_summaries(full, tmp_path):
    written = build_report(full, tmp_path / "out")
    page = read_page(written["html"])
    assert "SYNTHETIC DATA" in page.banner
    assert all(link.startswith(("data:image/png;base64,", "#")) for link in page.links)  # nothing external
    md_tables = markdown_tables(written["md"])

    train = table_rows(page, "train/runs")
    md_train = next(t for t in md_tables if "tiny-evaluated" in t)
    for name in ("tiny-evaluated", "tiny-validation-only", "exp-rank1-tinycnn", "exp-rank2-tinycnn"):
        s = summary(full / "train" / name / "summary.json")
        assert train[name]["Parameters"] == (f"{s['parameters']:,}", s["parameters"])
        assert md_train[name]["Parameters"] == f"{s['parameters']:,}"
        if "test" in s:
            assert train[name]["Test top-1 (%)"] == (pct(s["test"]["top1"]), s["test"]["top1"])
            assert md_train[name]["Test top-5 (%)"] == pct(s["test"]["top5"])
        else:
            assert train[name]["Test top-1 (%)"] == ("—", None) and md_train[name]["Test top-1 (%)"] == "—"
        if s["best_val_acc"] is not None:
            assert train[name]["Best val acc (%)"][1] == s["best_val_acc"]

    retrain = summary(full / "retrain" / "exp" / "summary.json")
    models = table_rows(page, "retrain/exp/models")
    md_models = next(t for t in md_tables if "CNN6" in t)
    for m in retrain["models"]:
        label = f"{m['model']} (rank {m['rank']})"
        assert models[label]["Test top-1 (%)"] == (pct(m["test_top1"]), m["test_top1"])
        assert md_models[label]["Test top-1 (%)"] == pct(m["test_top1"])
    for name, accuracy, parameters in (("CNN6", 60.1, 2_494_022), ("CNN7", 61.1, 3_004_917), ("CNN2", 58.7, 10_393_946)):
        assert models[name]["Test top-1 (%)"] == (str(accuracy), accuracy)
        assert md_models[name]["Parameters"] == f"{parameters:,}"
    published = [r["Test top-1 (%)"][1] for r in models.values() if r["Source"][0].startswith("published")]
    assert published == [82.68, 74.24, 74.01, 73.5]

    fid = summary(full / "fid" / "dcgan-select" / "summary.json")
    assert table_rows(page, "fid/scores")["dcgan-select"]["FID"] == (f"{fid['fid']:.2f}", fid["fid"])
    ranking = table_rows(page, "fid/dcgan-select/ranking")
    assert [r["FID"][1] for r in ranking.values()] == [r["fid"] for r in sorted(fid["ranking"], key=lambda r: r["step"])]
    assert {"s-tune-exp-trials", "s-gan-dcgan-collapses", "s-environment-stages"} <= set(page.tables)
    for figure in ("accuracy_vs_parameters", "fid_over_snapshots", "tune_exp_rungs"):
        assert (tmp_path / "out" / "figures" / f"{figure}.png").stat().st_size > 10_000
    html = written["html"].read_text()
    for figure in ("s-gan-dcgan-samples", "s-gan-dcgan-losses", "s-tune-exp-curves", "s-retrain-exp-loss"):
        assert f'<figure id="{figure}"><img' in html
    samples = os.path.relpath((full / "gan/dcgan/samples/step_40.png").resolve(), (tmp_path / "out").resolve())
    assert f"]({samples})" in written["md"].read_text()  # the stage's figures are linked, not copied


def test_corrupt_summary_is_one_line_naming_the_file(full, tmp_path, capsys):
    results = copy_stages(full, tmp_path / "results", "gan", "fid")
    broken = results / "fid" / "dcgan-select" / "summary.json"
    broken.write_text(broken.read_text()[:-40])  # torn, as a crash mid-write without atomic writes leaves it
    with pytest.raises(CifarError, match="corrupt .*summary.json"):
        build_report(results)
    status, out, err = cifar(capsys, "report", "--results-dir", results)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: corrupt ") and str(broken) in err
    assert not (results / "report" / "index.html").exists()
    broken.write_text(json.dumps({"fid": "not a number", "ranking": 3}))  # valid JSON, wrong shape
    with pytest.raises(CifarError, match=f"unexpected contents in {broken}"):
        build_report(results)


def test_cli_writes_what_format_asks_and_prints_where(full, tmp_path, capsys):
    results = copy_stages(full, tmp_path / "results", "train")
    status, out, err = cifar(capsys, "report", "--results-dir", results, "--format", "md")
    assert status == 0, err
    assert out.splitlines() == [f"md: {results / 'report' / 'report.md'}", f"json: {results / 'report' / 'report.json'}"]
    assert not (results / "report" / "index.html").exists()
    status, out, _ = cifar(capsys, "report", "--results-dir", results, "--out", tmp_path / "elsewhere")
    assert status == 0 and (tmp_path / "elsewhere" / "index.html").is_file() and "html: " in out
    status, _, err = cifar(capsys, "report", "--results-dir", tmp_path / "missing")
    assert status == 2 and err.strip() == f"error: no results directory at {tmp_path / 'missing'}"


def test_data_verdict_names_what_is_synthetic():
    from cifar_core.report.collect import data_provenance
    from cifar_core.report.content import data_banner

    def stages(**flags):
        empty = {s: [] for s in ("tune", "retrain", "train", "gan", "fid")}
        empty["train"] = [{"name": n, "summary": {"synthetic_data": f}} for n, f in flags.items()]
        return empty

    assert data_banner(data_provenance(stages(a=False), [])).kind == "ok"
    mixed = data_banner(data_provenance(stages(a=False, b=True), []))
    assert mixed.kind == "warning" and "MIXED" in mixed.text and "train/b" in mixed.text and "train/a" not in mixed.text
    assert data_banner(data_provenance(stages(a=None), [])).kind == "note"
