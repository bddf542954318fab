"""`cifar report` on result trees: nothing at all, only the search, only the GAN, everything (the
committed tree tests/fixtures/results, made by the real stages: tests/fixtures/make_results.py);
the numbers on the page and in the Markdown are exactly the summaries'; every number of both
reports is there, with ours or the reason there is none; a corrupt summary is a one-line error
naming the file. Nothing here trains or imports torch: the report needs neither.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cifar_core.errors import CifarError
from cifar_core.protocols import ANCHORS, ANCHORS_BY_KEY, PROTOCOLS, REPORT_B_FID
from cifar_core.report import build_report
from cifar_core.summaries import CollapseEvent, FidSummary, TrainSummary
from jobs.cli import main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "results"
STAGE_FOLDERS = ("tune", "retrain", "recipe", "train", "gan", "fid")


@pytest.fixture
def full(tmp_path) -> Path:
    """A copy of the committed results tree (a report writes into it; tests change it)."""
    return copy_stages(FIXTURE, tmp_path / "results", *STAGE_FOLDERS, "pipeline")


TRIALS = 4  # in the fixture's search (tests/fixtures/make_results.py)
GAIN = ANCHORS_BY_KEY["a.augment.gain"].what


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


def page_facts(html: str, key: str) -> dict[str, str]:
    """{label: text} of the facts list (<dl>) with that key."""
    block = re.search(f'<dl id="s-{re.escape(key.replace("/", "-"))}">(.*?)</dl>', html, re.S).group(1)
    return {unescape(label): unescape(value) for label, value in
            re.findall(r"<dt>(.*?)</dt><dd[^>]*>(.*?)</dd>", block, re.S)}


def departures_of(page: PageTables, result: str) -> list[str]:
    """A result's departures, each with its values, as the table beside the numbers lists them."""
    cell = table_rows(page, "anchors/departures")[result]["Departures: this result's value (whose value the protocol "
                                                          "has: that value)"][0]
    return cell.split(";\n")


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
    target.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        shutil.copytree(full / stage, target / stage)
    return target


# --- tests --------------------------------------------------------------------------------------
def test_nothing_at_all_is_a_page_that_says_so_and_still_lists_both_reports(tmp_path):
    (tmp_path / "results").mkdir()
    written = build_report(tmp_path / "results")
    assert written["html"] == tmp_path / "results" / "report" / "index.html"
    page = read_page(written["html"])
    assert "No stages have run yet" in page.banner
    assert json.loads(written["json"].read_text())["stages"] == {s: [] for s in STAGE_FOLDERS}
    anchors = page.tables["s-anchors"][1:]
    measurable = [a for a in ANCHORS if not a.not_measured]
    assert [row[2] for row in anchors] == [(a.text, None if isinstance(a.value, str) else a.value) for a in measurable]
    reasons = {row[0][0]: row[4][0] for row in anchors}
    assert reasons["CNN6 test accuracy"].startswith("stage recipe-a has not run here (`cifar retrain --recipe report-a`")
    assert reasons["DCGAN FID against the test set"] == ("stage fid-b has not run here (`cifar fid --snapshot "
                                                         "RESULTS/gan/dcgan`, or `cifar pipeline`); stage fid has not "
                                                         "run here (`cifar fid --select-best RESULTS/gan/dcgan`, or "
                                                         "`cifar pipeline`)")
    assert "cited by the report" in reasons["published: EXACT: How to Train Your Accuracy"]
    assert reasons["CNN6 parameters"] == "our cnn6 (`cifar models`)"  # known without running anything
    assert "No stages have run" in written["md"].read_text()


def test_only_the_search(full, tmp_path):
    results = copy_stages(full, tmp_path / "only", "tune")
    written = build_report(results, tmp_path / "out")
    page = read_page(written["html"])
    assert "SYNTHETIC DATA" in page.banner  # the search records it
    assert {"s-overview", "s-tune-exp-trials", "s-tune-exp-rungs"} <= set(page.tables)
    assert not any(key.startswith(("s-gan", "s-fid", "s-train", "s-retrain", "s-recipe")) for key in page.tables)
    rows = table_rows(page, "tune/exp/trials")
    with open(results / "tune" / "exp" / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    assert len(rows) == TRIALS == len(trials)
    assert {t["status"] for t in trials} == {"TERMINATED", "ERROR"}  # the fixture has a diverged trial
    for trial in trials:
        row = next(r for r in rows.values() if r["Trial"][0] == trial["trial_id"])
        assert row["Status"][0].startswith(trial["status"])
        assert row["Epochs"] == (trial["epochs"], int(trial["epochs"]))
        if trial["best_val_acc"]:
            assert row["Best val acc (%)"] == (pct(float(trial["best_val_acc"])), float(trial["best_val_acc"]))
    rungs = summary(results / "tune" / "exp" / "summary.json")["rungs"]
    assert [(r["Trials reaching it"][1], r["Stopped there"][1]) for r in table_rows(page, "tune/exp/rungs").values()] \
        == [(r["trials_reached"], r["stopped_here"]) for r in rungs]
    anchors = table_rows(page, "anchors")
    assert anchors["trials"]["This study"][1] == TRIALS  # the search's own count, beside report A's 60
    assert (tmp_path / "out" / "figures" / "tune_exp_rungs.png").stat().st_size > 5_000


def test_only_the_gan(full, tmp_path):
    results = copy_stages(full, tmp_path / "only", "gan")
    page = read_page(build_report(results, tmp_path / "out", formats=("html",))["html"])
    assert not (tmp_path / "out" / "report.md").exists()
    gan = summary(results / "gan" / "dcgan" / "summary.json")
    [event] = gan["collapse_events"]
    [row] = table_rows(page, "gan/dcgan/collapses").values()
    assert row["Step"][1] == event["step"] and row["Back to step"][1] == event["rolled_back_to"]
    assert row["Learning rate after"][1] == event["lr_after"] and row["Action"][0] == "rollback"
    html = (tmp_path / "out" / "index.html").read_text()
    facts = page_facts(html, "gan/dcgan/facts")
    assert facts["Collapse handling"] == gan["collapse_mode"] == "rollback"
    departed = facts["Departures from report B's DCGAN (its settings, the tutorial's, ours)"]
    assert departed == "; ".join(gan["protocol_departures"])
    assert "batch size: 16 (PyTorch DCGAN tutorial: 128)" in departed and "data: the SYNTHETIC stand-in" in departed
    assert 'id="s-fid"' not in html  # no FID, and no pipeline that tried one
    assert "SYNTHETIC DATA" in page.banner and "s-train-runs" not in page.tables


def test_full_run_numbers_are_the_summaries(full, tmp_path):
    written = build_report(full, tmp_path / "out")
    page = read_page(written["html"])
    assert "SYNTHETIC DATA" in page.banner
    assert all(link.startswith(("data:image/png;base64,", "#")) for link in page.links)  # nothing external
    md_tables = markdown_tables(written["md"])

    train = table_rows(page, "train/runs")
    md_train = next(t for t in md_tables if "tiny-evaluated" in t)
    for name in ("tiny-evaluated", "tiny-validation-only", "exp-tinycnn-t1", "report-b-resdw-s2-seed1"):
        s = summary(full / "train" / name / "summary.json")
        assert train[name]["Parameters"] == (f"{s['parameters']:,}", s["parameters"])
        assert md_train[name]["Parameters"] == f"{s['parameters']:,}"
        if "test" in s:
            assert train[name]["Test top-1 (%)"] == (pct(s["test"]["top1"]), s["test"]["top1"])
            assert md_train[name]["Test top-5 (%)"] == pct(s["test"]["top5"])
        else:
            assert train[name]["Test top-1 (%)"] == ("—", None) and md_train[name]["Test top-1 (%)"] == "—"

    retrain = summary(full / "retrain" / "exp" / "summary.json")
    models = table_rows(page, "retrain/exp/models")
    md_models = next(t for t in md_tables if "tinycnn (rank 1)" in t)
    for m in retrain["models"]:
        label = f"{m['model']} (rank {m['rank']})"
        assert models[label]["Test top-1 (%)"] == (pct(m["test_top1"]), m["test_top1"])
        assert md_models[label]["Test top-1 (%)"] == pct(m["test_top1"])
    for name, accuracy, parameters in (("CNN6", 60.1, 2_494_022), ("CNN7", 61.1, 3_004_917), ("CNN2", 58.7, 10_393_946)):
        assert models[name]["Test top-1 (%)"] == (str(accuracy), accuracy)
        assert md_models[name]["Parameters"] == f"{parameters:,}"
    published = [r["Test top-1 (%)"][1] for r in models.values() if r["Source"][0].startswith("published")]
    assert published == [82.68, 74.24, 74.01, 73.5]
    assert "the best trials whatever their architecture" in written["md"].read_text()  # which selection

    for name in ("report-a-e1", "report-b-s2"):
        by_model = summary(full / "recipe" / name / "summary.json")["by_model"]
        rows = table_rows(page, f"recipe/{name}/models")
        for m in by_model:
            row = rows[f"{m['label']} ({m['model']})"]
            assert row["Test top-1 (%)"] == (pct(m["test_top1_mean"]), m["test_top1_mean"])
            assert row["Seeds"][0] == ", ".join(map(str, m["seeds"]))
    resdw = table_rows(page, "recipe/report-b-s2/models")["resdw"]
    assert [resdw[c][1] for c in ("Test top-1 (%)", "Test SD (points)", "Train acc (%)", "Train SD (points)")] == [56.9, 4.6, 68.1, 4.3]

    fid = summary(full / "fid" / "dcgan-select-n4" / "summary.json")
    scores = table_rows(page, "fid/scores")
    caveats = "SYNTHETIC data; not pytorch-fid's Inception weights"
    assert scores["dcgan-select-n4"]["FID"] == (f"{fid['fid']:.2f} ({caveats})", fid["fid"])
    assert scores["dcgan-select-n4"]["Minus report B's 46.85"] == (f"not comparable ({caveats})", None)
    assert scores["dcgan-select-n4"]["Protocol"][0].startswith("snapshot chosen by its train FID (step ")
    assert scores["dcgan-step_40-n4"]["Protocol"][0] == "report B's: one snapshot (step 40), 4 samples, the test split"
    ranking = table_rows(page, "fid/dcgan-select-n4/ranking")
    assert [r["FID"][1] for r in ranking.values()] == [r["fid"] for r in sorted(fid["ranking"], key=lambda r: r["step"])]
    assert {"s-tune-exp-trials", "s-gan-dcgan-collapses", "s-environment-stages", "s-environment-ran_on"} <= set(page.tables)
    for figure in ("accuracy_vs_parameters", "fid_over_snapshots", "tune_exp_rungs"):
        assert (tmp_path / "out" / "figures" / f"{figure}.png").stat().st_size > 10_000
    html = written["html"].read_text()
    for figure in ("s-gan-dcgan-samples", "s-gan-dcgan-losses", "s-tune-exp-curves", "s-retrain-exp-loss",
                   "s-recipe-report-b-s2-test_accuracy", "s-recipe-report-a-e1-loss"):
        assert f'<figure id="{figure}"><img' in html
    samples = os.path.relpath((full / "gan/dcgan/samples/step_40.png").resolve(), (tmp_path / "out").resolve())
    assert f"]({samples})" in written["md"].read_text()  # the stage's figures are linked, not copied


def test_every_number_of_both_reports_with_ours_or_why_not(full, tmp_path):
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    rows = page.tables["s-anchors"][1:]
    published = [row[2][1] for row in rows]
    assert all(a.value in published for a in ANCHORS if not (a.not_measured or isinstance(a.value, str)))
    anchors = {row[0][0]: row for row in rows}
    recipe_a = summary(full / "recipe" / "report-a-e1" / "summary.json")["by_model"]
    cnn7 = next(m for m in recipe_a if m["model"] == "cnn7")
    assert anchors["CNN7 test accuracy"][3] == (f"{100 * cnn7['test_top1_mean']:.2f}% (SYNTHETIC data)",
                                                100 * cnn7["test_top1_mean"])  # ours in the published number's unit
    assert "departed from report A's protocol in: epochs; data" in anchors["CNN7 test accuracy"][4][0]
    assert "epochs: 1 (report A §V: 100)" in departures_of(page, "recipe/report-a-e1")
    [resdw] = summary(full / "recipe" / "report-b-s2" / "summary.json")["by_model"]
    assert anchors["resdw test accuracy"][3] == (f"{100 * resdw['test_top1_mean']:.2f} ± {100 * resdw['test_top1_std']:.2f}% "
                                                 "(SYNTHETIC data)", 100 * resdw["test_top1_mean"])
    assert anchors["resdw parameters"][3][1] == 98_077
    without = {m["model"]: m["test_top1_mean"]
               for m in summary(full / "recipe" / "report-a-augment-none-e1" / "summary.json")["by_model"]}
    gains = [m["test_top1_mean"] - without[m["model"]] for m in recipe_a]
    assert anchors[GAIN][3][1] == pytest.approx(100 * sum(gains) / len(gains))
    fid = summary(full / "fid" / "dcgan-select-n4" / "summary.json")
    assert anchors["DCGAN FID against the test set (our protocol: chosen on the training split)"][3][1] == fid["fid"]
    judged = "DCGAN FID against the test set (report B's protocol, step 40, the snapshot its choice was judged against)"
    assert anchors[judged][2][1] == REPORT_B_FID
    ablation = table_rows(page, "ablation/report-a-augment-none-e1")
    assert ablation["mean of the models"]["Gain (points)"][1] == pytest.approx(sum(gains) / len(gains))
    assert ablation["report A (section II.B)"]["Gain (points)"][1] == 10


def test_an_ablation_without_its_recipe_says_what_is_missing(full, tmp_path):
    shutil.rmtree(full / "recipe" / "report-a-e1")
    html = build_report(full, tmp_path / "out", formats=("html",))["html"]
    page = read_page(html)
    anchors = table_rows(page, "anchors")
    gain = anchors[GAIN]
    assert gain["This study"] == ("—", None)
    assert gain["How this study's number was measured"][0].startswith("the ablation ran, but no recipe-a result")
    assert anchors["test accuracy of all three models without augmentation"]["This study"][1] is not None
    assert "No recipe/report-a result with the same budget" in html.read_text()


def test_without_inception_weights_the_fid_section_says_why_for_each_stage(full, tmp_path):
    """The fixture's pipeline ran both FID stages where no Inception weights were: no FID of ours,
    report B's 46.85 still there, and each stage's reason, in the anchors and in the FID section."""
    shutil.rmtree(full / "fid")
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    row = table_rows(page, "anchors")["DCGAN FID against the test set"]
    assert row["Published"] == ("46.85", REPORT_B_FID) and row["This study"] == ("—", None)
    reason = row["How this study's number was measured"][0]
    assert reason.startswith("pipeline fixture: stage fid-b unavailable: FID Inception weights not available")
    assert "; pipeline fixture: stage fid unavailable: FID Inception weights not available" in reason
    assert "s-fid-scores" not in page.tables
    records = {r["stage"]: r for r in summary(full / "pipeline" / "fixture" / "summary.json")["stages"]}
    rows = page.tables["s-fid-stages"][1:]
    assert [(r[1][0], r[2][0], r[3][0]) for r in rows] == [
        (stage, "unavailable", records[stage]["reason"]) for stage in ("fid", "fid-b")]


def test_where_each_stage_ran_and_where_each_value_comes_from(full, tmp_path):
    written = build_report(full, tmp_path / "out")
    page = read_page(written["html"])
    ran_on = page.tables["s-environment-ran_on"][1:]
    recipe_b = summary(full / "recipe" / "report-b-s2" / "summary.json")
    hosts = [row[4][0] for row in ran_on if row[0][0] == "recipe" and row[1][0] == "report-b-s2"]
    assert hosts == [place["hostname"] for place in recipe_b["ran_on"]]
    for protocol in PROTOCOLS:
        table = table_rows(page, f"provenance/{protocol.key}")
        assert list(table) == [s.name for s in protocol.settings]
        assert [r["Source"][0] for r in table.values()] == [s.source.label for s in protocol.settings]
    assert "docs/provenance.md" in written["md"].read_text()


def test_the_report_imports_no_torch(full, tmp_path):
    """`cifar report` renders in a pod without the training stack: torch cannot even be imported here."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from jobs.cli import main\n"
            f"sys.exit(main(['report', '--results-dir', {str(full)!r}, '--out', {str(tmp_path / 'out')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "index.html").stat().st_size > 100_000


def test_corrupt_summary_is_one_line_naming_the_file(full, tmp_path, capsys):
    results = copy_stages(full, tmp_path / "part", "gan", "fid")
    broken = results / "fid" / "dcgan-select-n4" / "summary.json"
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
    results = copy_stages(full, tmp_path / "part", "train")
    status, out, err = cifar(capsys, "report", "--results-dir", results, "--format", "md")
    assert status == 0, err
    assert out.splitlines() == [f"md: {results / 'report' / 'report.md'}", f"json: {results / 'report' / 'report.json'}"]
    assert not (results / "report" / "index.html").exists()
    status, out, _ = cifar(capsys, "report", "--results-dir", results, "--out", tmp_path / "elsewhere")
    assert status == 0 and (tmp_path / "elsewhere" / "index.html").is_file() and "html: " in out
    status, _, err = cifar(capsys, "report", "--results-dir", tmp_path / "missing")
    assert status == 2 and err.strip() == f"error: no results directory at {tmp_path / 'missing'}"


def test_fid_protocol_names_report_bs_and_our_selection():
    from cifar_core.report.points import fid_protocol

    def score(**fields) -> FidSummary:
        return FidSummary.parse({"fid": 50.0, "real": {"split": "test"}, **fields})

    fixed = {"fake": {"kind": "checkpoint", "path": "/r/gan/dcgan/checkpoints/step_46000.pt"}, "n_fake": 10_000,
             "protocol": "report-b"}
    assert fid_protocol(score(**fixed)) == ("report-b", "report B's: one snapshot (step 46,000), 10,000 samples, "
                                                        "the test split")
    # As `cifar fid` recorded it: report B's protocol at another step or with fewer images names its departures.
    assert fid_protocol(score(**{**fixed, "n_fake": 2000}))[0] == "report-b"
    assert fid_protocol(score(**{**fixed, "protocol": "checkpoint"}))[0] == "checkpoint"
    selected = score(fake={"kind": "run", "path": "/r/gan/dcgan"}, n_fake=2000, selection={"split": "train"},
                     best={"step": 40000, "fid": 50.0}, ranking=[{"step": 40000, "fid": 50.0}])
    assert fid_protocol(selected) == ("select-best", "snapshot chosen by its train FID (step 40000), then scored once "
                                                     "on the test split with other noise; 2,000 samples")


def test_data_verdict_names_what_is_synthetic():
    from cifar_core.report.collect import data_provenance
    from cifar_core.report.content import data_banner

    run = json.loads((FIXTURE / "train" / "tiny-evaluated" / "summary.json").read_text())

    def stages(**flags):
        empty = {s: [] for s in STAGE_FOLDERS}
        empty["train"] = [{"name": n, "summary": TrainSummary.parse({**run, "synthetic_data": f})} for n, f in flags.items()]
        return empty

    assert data_banner(data_provenance(stages(a=False), [])).kind == "ok"
    mixed = data_banner(data_provenance(stages(a=False, b=True), []))
    assert mixed.kind == "warning" and "MIXED" in mixed.text and "train/b" in mixed.text and "train/a" not in mixed.text
    assert data_banner(data_provenance(stages(a=None), [])).kind == "note"


# --- every number of both reports, every label true ------------------------------------------------
def test_every_published_number_and_claim_is_on_the_page_with_ours_or_why_not(full, tmp_path):
    written = build_report(full, tmp_path / "out")
    page = read_page(written["html"])
    shown = [(row[0][0], row[2][0]) for row in page.tables["s-anchors"][1:]]
    unmeasured = {row[0][0]: (row[2][0], row[3][0]) for row in page.tables["s-anchors-not_measured"][1:]}
    markdown = written["md"].read_text()
    for anchor in ANCHORS:
        if anchor.not_measured:
            assert unmeasured.pop(anchor.what) == (anchor.text, anchor.not_measured), anchor.key
        else:
            assert any(what.startswith(anchor.what) and text == anchor.text for what, text in shown), anchor.key
        assert f"| {anchor.what}" in markdown and f"| {anchor.text} |" in markdown, anchor.key
    assert not unmeasured
    anchors = table_rows(page, "anchors")
    resdw = summary(full / "recipe" / "report-b-s2" / "summary.json")["models"]
    assert anchors["parameters of that state of the art over resdw's"]["This study"][1] == 520_000 / 98_077
    runtime = anchors["resdw training time ('runtime of over 25 minutes on my machine')"]
    assert runtime["This study"][1] == pytest.approx(sum(m["train_time_s"] for m in resdw) / len(resdw) / 60)
    retrained = summary(full / "retrain" / "exp" / "summary.json")
    optimizers = anchors["optimizer of the selected models ('it only picked models with SGD')"]
    assert optimizers["This study"][0] == ", ".join(m["params"]["optim.name"] for m in retrained["models"]) \
        + " (SYNTHETIC data)" == "sgd, sgd (SYNTHETIC data)"  # the 2 the retrain took (--select trials), not 3
    assert "retrain/exp: the 2 it retrained, the best trials whatever" in optimizers["How this study's number was measured"][0]


def test_labels_say_what_was_measured_and_how(full, tmp_path):
    written = build_report(full, tmp_path / "out")
    page = read_page(written["html"])
    anchors = table_rows(page, "anchors")
    for what in ("gain from augmentation", "training images of the final models", "CNN6 test accuracy"):
        row = next(row for name, row in anchors.items() if name.startswith(what))
        how = row["How this study's number was measured"][0]
        assert "float32" in how and "departed from report A's protocol in: epochs; data" in how, what
        assert row["This study"][0].endswith(" (SYNTHETIC data)"), what
    for result in ("recipe/report-a-e1", "recipe/report-a-augment-none-e1"):
        departed = departures_of(page, result)
        assert departed == summary(full / result / "summary.json")["protocol_departures"]
        assert "epochs: 1 (report A §V: 100)" in departed
        assert "data: the SYNTHETIC stand-in (`cifar data synth`), not CIFAR-100 (report A §I, §II.A: the official " \
               "CIFAR-100)" in departed
    assert "random horizontal flip: no (report A §II.B: yes)" in departures_of(page, "recipe/report-a-augment-none-e1")

    tune = summary(full / "tune" / "exp" / "summary.json")
    at_once = anchors["trials at once"]
    assert at_once["This study"][1] == tune["concurrency"]["max"] != tune["settings"]["max_concurrent"]
    assert "from their start and end times" in at_once["How this study's number was measured"][0]
    rungs = tune["rungs"][:-1]  # the last row is the epoch limit, not a rung
    kept = sum(r["trials_reached"] - r["stopped_here"] for r in rungs) / sum(r["trials_reached"] for r in rungs)
    assert anchors["ASHA keeps the top"]["This study"][1] == pytest.approx(100 * kept)

    retrain = summary(full / "retrain" / "exp" / "summary.json")["models"]
    models = table_rows(page, "retrain/exp/models")
    for m in retrain:
        assert models[f"{m['model']} (rank {m['rank']})"]["Precision"][0] == f"{m['precision']} on {m['device']}"
    assert {models[label]["Precision"][0] for label in ("CNN6", "CNN7", "CNN2")} == {"not stated"}
    assert table_rows(page, "recipe/report-b-s2/models")["resdw"]["Precision"][0] == "not stated"

    html = written["html"].read_text()
    captions = dict(re.findall(r'<figure id="(s-recipe-[^"]+-loss)">.*?<figcaption>(.*?)</figcaption>', html, re.S))
    assert "as report A&#x27;s figure 3 shows its own" in captions["s-recipe-report-a-e1-loss"]
    assert "report A" not in captions["s-recipe-report-b-s2-loss"]


def test_recipe_a_in_steps_says_its_budget_not_that_it_did_not_run(full, tmp_path):
    from cifar_core.protocols import REPORT_A_FINAL, budget_settings, departures

    path = full / "recipe" / "report-a-e1" / "summary.json"
    departed = [d.text for d in departures(budget_settings({"steps": 4}), REPORT_A_FINAL)]  # as the recipe records it
    path.write_text(json.dumps({**summary(path), "budget": {"steps": 4}, "protocol_departures": departed}))
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    row = table_rows(page, "anchors")["epochs of the final models"]
    assert row["This study"] == ("4 steps (SYNTHETIC data)", None)
    assert "trained for steps, not epochs" in row["How this study's number was measured"][0]
    assert "departed from report A's protocol in: epochs" in row["How this study's number was measured"][0]
    assert departures_of(page, "recipe/report-a-e1") == ["epochs: 4 steps (report A §V: 100)"]


def as_report_bs_snapshot(fid_dir: Path, step: int) -> dict:
    """The fixture's fid-b score rewritten as the full profile's: the step's snapshot, 10,000 images."""
    from cifar_core.protocols import FID, departures

    scored = summary(fid_dir / "summary.json")
    scored["fake"]["path"] = scored["fake"]["path"].replace(f"step_{snapshot_of(scored)}.pt", f"step_{step}.pt")
    scored["n_fake"] = 10_000
    scored["protocol_settings"].update(step=step, n=10_000)  # and its departures, as `cifar fid` computes them
    scored["protocol_departures"] = [d.text for d in departures(scored["protocol_settings"], FID)]
    (fid_dir / "summary.json").write_text(json.dumps(scored))
    return scored


def snapshot_of(scored: dict) -> int:
    return int(Path(scored["fake"]["path"]).stem.removeprefix("step_"))


def test_report_bs_fid_beside_its_50000_step_snapshot_and_the_runs_departures(full, tmp_path):
    chosen, later = as_report_bs_snapshot(full / "fid" / "dcgan-step_20-n4", 46_000), \
        as_report_bs_snapshot(full / "fid" / "dcgan-step_40-n4", 50_000)
    chosen["compared"] = [{**chosen["compared"][0], "step": 46_000}, {**chosen["compared"][1], "step": 50_000}]
    (full / "fid" / "dcgan-step_20-n4" / "summary.json").write_text(json.dumps(chosen))
    gan = summary(full / "gan" / "dcgan" / "summary.json")
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    anchors = table_rows(page, "anchors")

    row = anchors["DCGAN FID against the test set (report B's protocol, step 46,000)"]
    how = row["How this study's number was measured"][0]
    assert row["This study"][1] == chosen["fid"]
    assert f"step 50,000 scored the same way: FID {later['fid']:.2f}" in how
    assert "recoveries: step 35: rollback to step 20, learning rate 0.0001" in how
    assert "departed from report B's DCGAN in: generator / discriminator width; noise dimension; batch size; steps; " \
           "snapshots kept every; data; collapse judged after a warm-up of, steps; a symptom is a collapse once it " \
           "persists for, steps; collapse at step 35" in how
    assert departures_of(page, "gan/dcgan") == gan["protocol_departures"]
    # The score's own departures: not the step or the images any more, but the weights, sampling and data.
    assert "departed from report B's FID protocol in: data; Inception weights; generator BatchNorm when sampling " \
           "(both protocols)" in how
    assert departures_of(page, "fid/dcgan-step_20-n4") == chosen["protocol_departures"]
    assert "generator BatchNorm when sampling (both protocols): running (PyTorch DCGAN tutorial: batch)" in \
        chosen["protocol_departures"]
    compared = anchors["snapshot its choice was judged against (46,000 'more stable and less noisy than the samples "
                       "taken at 50,000 steps')"]
    assert compared["This study"][1] == 50_000
    assert f"FID {later['fid']:.2f} against {chosen['fid']:.2f}" in compared["How this study's number was measured"][0]
    scores = table_rows(page, "fid/scores")
    assert scores["dcgan-step_20-n4"]["Protocol"][0] == "report B's: one snapshot (step 46,000), 10,000 samples, the test split"
    assert scores["dcgan-step_20-n4"]["Departures of this score"][0] == "departed from report B's FID protocol in: " \
        "data; Inception weights; generator BatchNorm when sampling (both protocols)"
    roles = [(r[0][1], r[1][1], r[2][0]) for r in page.tables["s-fid-dcgan-step_20-n4-compared"][1:]]
    assert roles == [(46_000, chosen["fid"], "report B's choice"),
                     (50_000, later["fid"], "the snapshot report B judged it against")]

    # Report B's own remedy, a restart, is no departure: the label is report B's protocol, plainly.
    (full / "gan" / "dcgan" / "summary.json").write_text(json.dumps(
        {**gan, "collapse_mode": "restart", "protocol_departures": [],
         "collapse_events": [{**e, "action": "restart", "rolled_back_to": 0} for e in gan["collapse_events"]]}))
    page = read_page(build_report(full, tmp_path / "again", formats=("html",))["html"])
    how = table_rows(page, "anchors")["DCGAN FID against the test set (report B's protocol, step 46,000)"]
    assert "collapse handling restart): recoveries: step 35: restart from step 0, learning rate 0.0001; no departure " \
           "from report B's DCGAN" in how["How this study's number was measured"][0]


def test_recovery_text_says_what_a_collapse_event_did():
    from cifar_core.report.points import departures_text, recovery_text

    event = CollapseEvent(step=1200, action="rollback", rolled_back_to=1000, lr_after=1e-4)
    assert recovery_text(event) == "step 1,200: rollback to step 1,000, learning rate 0.0001"
    assert recovery_text(CollapseEvent(step=3000, action="none", why="collapse.mode is off", lr_after=2e-4)) == \
        "step 3,000: none (collapse.mode is off), learning rate 0.0002"
    assert departures_text([]) == "no departure from report B's protocol"
    assert departures_text(None).startswith("departures from report B's protocol not recorded")


@pytest.mark.parametrize(("relative", "change", "named"), [
    ("gan/dcgan/summary.json", {"collapse_events": 5}, "collapse_events is a number (5), expected a list"),
    ("recipe/report-b-s2/summary.json", {"models": [{"test_top1": "high"}]},
     "models[0].test_top1 is a string (\"high\"), expected a number"),
    ("tune/exp/summary.json", {"best": 3}, "best is a number (3), expected an object"),
    ("pipeline/fixture/summary.json", {"stages": "all"}, "stages is a string"),
])
def test_a_summary_of_the_wrong_shape_is_one_line_naming_that_file_and_key(tmp_path, relative, change, named):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE, results)
    summary = json.loads((results / relative).read_text())
    for key, value in change.items():
        if isinstance(value, list) and isinstance(summary.get(key), list):
            summary[key][0].update(value[0])
        else:
            summary[key] = value
    (results / relative).write_text(json.dumps(summary))
    with pytest.raises(CifarError) as error:
        build_report(results)
    assert str(error.value).startswith(f"unexpected contents in {results / relative}: {named}")
