"""What each row of the report says against the summary it comes from: every number of both reports
with ours as its label says (a scored snapshot's step, never a run's training steps; the optimizers
of the models the retrain took), in the published number's unit; SYNTHETIC where a number from the
stand-in stands; no arithmetic against a published number ours cannot be compared with; a run's
budget as it was set; the search's device as it ran; the values each result used beside the protocol."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from test_report import FIXTURE, read_page, summary, table_rows

from cifar_core.protocols import ANCHORS, OUR_PARAMETERS, REPORT_B_FID, UNIT_SUFFIX, budget_text
from cifar_core.report import build_report
from cifar_core.report.collect import collect_results
from cifar_core.report.content import build_document
from cifar_core.report.document import MISSING, Facts, Figure, Table, Text
from cifar_core.report.plots import make_figures

HOW = "How this study's number was measured"
WHAT = {a.what: a for a in ANCHORS}
# Tables whose numbers are not the stand-in's, or that mark it in their cells or columns.
UNMARKED = ("anchors", "overview", "fid/stages", "provenance/", "environment/")


@pytest.fixture
def full(tmp_path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "results"))


def write(path: Path, change) -> None:
    data = summary(path)
    change(data)
    path.write_text(json.dumps(data))


# --- what each anchor row's label says, from the summaries ------------------------------------------
def fid_named(how: str, results: Path) -> tuple[str, dict]:
    name = re.match(r"fid/([^:]+):", how).group(1)
    return name, summary(results / "fid" / name / "summary.json")


def snapshot_scored(fid: dict) -> int:
    """The step of the snapshot a FID scored: the chosen one, or the checkpoint's step_<N>.pt."""
    if fid["protocol"] == "select-best":
        return fid["best"]["step"]
    return int(Path(fid["fake"]["path"]).stem.removeprefix("step_"))


def fid_label_matches(label: str, name: str, fid: dict, results: Path) -> None:
    """"(our protocol: ...)" is a select-best score; "(report B's protocol, step N...)" one snapshot N,
    and "the snapshot its choice was judged against" one stage fid-b scored beside another."""
    qualifier = re.search(r"\((our protocol|report B's protocol)[^)]*\)$", label)
    assert qualifier, label
    if qualifier.group(1) == "our protocol":
        assert fid["protocol"] == "select-best", label
        return
    assert fid["protocol"] == "report-b" and f"step {snapshot_scored(fid):,}" in label, label
    judged = {Path(c["summary"]).parent.name for p in (results / "fid").glob("*/summary.json")
              for c in (summary(p).get("compared") or [])[1:]}
    assert ("judged against" in label) == (name in judged), label


def expected_value(label: str, how: str, results: Path):
    """The number the row's label names, read from the summary its last column names."""
    what = label.split(" (")[0] if label.split(" (")[0] in WHAT else label
    tune = summary(results / "tune" / "exp" / "summary.json")
    recipe_a = summary(results / "recipe" / "report-a-e1" / "summary.json")
    without = summary(results / "recipe" / "report-a-augment-none-e1" / "summary.json")
    [resdw] = summary(results / "recipe" / "report-b-s2" / "summary.json")["by_model"]
    train_images = summary(results / "pipeline" / "fixture" / "data" / "summary.json")["train"]["count"]
    gan = summary(results / "gan" / "dcgan" / "summary.json")
    by_model = {m["label"]: m for m in recipe_a["by_model"]}
    scored = {"DCGAN FID against the test set": "fid", "generated images scored": "n_fake",
              "steps of the scored snapshot": "step"}
    if what in scored:
        name, fid = fid_named(how, results)
        fid_label_matches(label, name, fid, results)
        return snapshot_scored(fid) if scored[what] == "step" else fid[scored[what]]
    if what.startswith("snapshot its choice was judged against"):
        return fid_named(how, results)[1]["compared"][1]["step"]
    gains = [by_model[m["label"]]["test_top1_mean"] - m["test_top1_mean"] for m in without["by_model"]]
    values = {
        "training part of the split": train_images - round(train_images * 0.2),
        "validation part of the split (1/5)": round(train_images * 0.2),
        "architectures searched": len(tune["space"]["architectures"]), "trials": tune["trials"],
        "trials at once": tune["concurrency"]["max"], "epochs of a trial, at most": tune["settings"]["max_epochs"],
        "ASHA keeps the top": 100 * sum(r["trials_reached"] - r["stopped_here"] for r in tune["rungs"][:-1])
        / sum(r["trials_reached"] for r in tune["rungs"][:-1]),
        "epochs of the final models": recipe_a["budget"]["epochs"], "training images of the final models": train_images,
        "test accuracy of all three models without augmentation":
            100 * sum(m["test_top1_mean"] for m in without["by_model"]) / len(without["by_model"]),
        "resdw optimisation steps": summary(results / "recipe" / "report-b-s2" / "summary.json")["budget"]["steps"],
        "resdw test accuracy": 100 * resdw["test_top1_mean"], "resdw training accuracy": 100 * resdw["train_acc_mean"],
        "resdw final training loss": resdw["final_train_loss_mean"], "resdw parameters": OUR_PARAMETERS["resdw"],
        "parameters of that state of the art over resdw's": 520_000 / OUR_PARAMETERS["resdw"],
        "generator parameters": gan["parameters"]["generator"],
        "discriminator parameters": gan["parameters"]["discriminator"], "DCGAN parameters in all": gan["parameters"]["total"],
        **{f"{m} test accuracy": 100 * by_model[m]["test_top1_mean"] for m in by_model},
        **{f"{m.upper()} parameters": OUR_PARAMETERS[m] for m in ("cnn6", "cnn7", "cnn2")},
    }
    if what.startswith("gain from augmentation"):
        return 100 * sum(gains) / len(gains)
    if what.startswith("resdw training time"):
        models = summary(results / "recipe" / "report-b-s2" / "summary.json")["models"]
        return sum(m["train_time_s"] for m in models) / len(models) / 60
    return values[what]


def test_each_anchor_row_holds_what_its_label_says(full, tmp_path):
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    checked = 0
    for (label, _), _, _, (_, value), (how, _) in page.tables["s-anchors"][1:]:
        if value is None:
            continue
        assert value == pytest.approx(expected_value(label, how, full)), label
        checked += 1
    assert checked >= 35
    optimizers = table_rows(page, "anchors")["optimizer of the selected models ('it only picked models with SGD')"]
    retrain = summary(full / "retrain" / "exp" / "summary.json")
    assert retrain["select"] == "trials" and retrain["top_k"] == 2  # as the smoke retrain: not 3 architectures
    assert optimizers["This study"][0].split(" (")[0] == ", ".join(m["optimizer"] for m in retrain["models"])


def test_a_snapshot_step_is_never_a_runs_training_steps(full, tmp_path):
    shutil.rmtree(full / "fid")
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    row = table_rows(page, "anchors")["steps of the scored snapshot"]
    assert row["This study"] == (MISSING, None)
    steps = summary(full / "gan" / "dcgan" / "summary.json")["steps"]
    assert row[HOW][0].startswith(f"no snapshot scored on the test split (gan/dcgan trained {steps} steps: training "
                                  "steps, not a scored snapshot's)")


def test_ours_in_the_published_numbers_unit(full, tmp_path):
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    for (label, _), _, (published, _), (ours, value), _ in page.tables["s-anchors"][1:]:
        if value is None:
            continue
        anchor = WHAT[label if label in WHAT else label.split(" (")[0]]
        suffix = UNIT_SUFFIX.get(anchor.unit, "")
        number = ours.split(" (")[0]
        singular = number.split(" ")[0] == "1" and suffix.startswith(" ")  # "1 epoch", "4 steps"
        assert number.endswith(suffix.removesuffix("s") if singular else suffix), (label, ours)
        assert published.endswith(suffix), (label, published)
    resdw = table_rows(page, "anchors")["resdw test accuracy"]["This study"][0]
    assert re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d% \(SYNTHETIC data\)", resdw)  # as report B's "56.9 ± 4.6%"


def test_synthetic_is_marked_where_each_number_stands(full, tmp_path):
    collected = collect_results(full)
    document = build_document(collected, make_figures(collected, tmp_path / "figures"))
    sections = {s.key: s for s in document.sections}
    for section in document.sections:
        for i, block in enumerate(section.blocks):
            if isinstance(block, Figure):
                assert block.caption.startswith("SYNTHETIC data, not CIFAR-100: "), block.key
            elif isinstance(block, Table) and not block.key.startswith(UNMARKED):
                assert block.caption.startswith("SYNTHETIC data, not CIFAR-100: "), block.key
            elif isinstance(block, Facts) and not block.key.startswith(UNMARKED):
                warned = [b for b in section.blocks[:i] if isinstance(b, Text) and b.kind == "warning"]
                assert warned and "synthetic" in warned[-1].text.lower(), block.key
    assert [row[2].text for row in next(b for b in sections["overview"].blocks if isinstance(b, Table)).rows] \
        == ["SYNTHETIC"] * 6
    assert any(isinstance(b, Text) and b.kind == "warning" for b in sections["accuracy"].blocks)
    anchors = next(b for b in sections["anchors"].blocks if isinstance(b, Table) and b.key == "anchors")
    for label, _, _, ours, how in anchors.rows:
        counted = how.text.startswith(("our ", "GAN run gan/", "520,000 over"))  # parameter counts: no data
        assert ours.text == MISSING or counted or "(SYNTHETIC data" in ours.text, label.text


def test_no_arithmetic_against_a_published_number_ours_cannot_be_compared_with(full, tmp_path):
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    minus = "Minus report B's 46.85"
    assert {r[minus] for r in table_rows(page, "fid/scores").values()} == {
        ("not comparable (SYNTHETIC data; not pytorch-fid's Inception weights)", None)}
    anchors = table_rows(page, "anchors")
    for gap in ("the published results' lead over its models", "accuracy of that state of the art above resdw's"):
        row = next(r for label, r in anchors.items() if label.startswith(gap))
        assert row["This study"] == (MISSING, None) and row[HOW][0].startswith("not computed: ours (SYNTHETIC data)")

    def as_real(data: dict) -> None:  # as if on CIFAR-100 with pytorch-fid's own weights
        data["real"]["dataset"], data["weights_standard"] = "cifar100", True
    for path in (full / "fid").glob("*/summary.json"):
        write(path, as_real)
    page = read_page(build_report(full, tmp_path / "real", formats=("html",))["html"])
    fid = summary(full / "fid" / "dcgan-select-n4" / "summary.json")["fid"]
    assert table_rows(page, "fid/scores")["dcgan-select-n4"][minus] == (f"{fid - REPORT_B_FID:.2f}", fid - REPORT_B_FID)


def test_a_runs_budget_as_it_was_set_and_the_steps_it_trained(full, tmp_path):
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    for name, row in table_rows(page, "train/runs").items():
        run = full / "train" / name
        config = (run / "config.yaml").read_text()
        steps = re.search(r"^  steps: (\S+)$", config, re.M).group(1)
        epochs = re.search(r"^  epochs: (\S+)$", config, re.M).group(1)
        budget = {"steps": int(steps)} if steps != "null" else {"epochs": int(epochs)}
        assert row["Budget"][0] == budget_text(budget), name
        assert row["Steps trained"][1] == summary(run / "summary.json")["steps"], name
    assert "Epochs" not in page.tables["s-train-runs"][0][0]


def test_the_search_device_is_where_its_trials_ran_not_what_was_asked(full, tmp_path):
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    [tune] = [r for r in page.tables["s-environment-stages"][1:] if r[0][0] == "tune"]
    assert tune[2][0] == "cpu"  # the fixture's search was told cpu: its trials ran there
    retrain = summary(full / "retrain" / "exp" / "summary.json")["models"]
    assert [r[2][0] for r in page.tables["s-environment-stages"][1:] if r[0][0] == "retrain"] == \
        [", ".join(sorted({m["device"] for m in retrain}))]  # its runs' devices
    write(full / "tune" / "exp" / "summary.json", lambda s: s["settings"].update(device="auto"))
    page = read_page(build_report(full, tmp_path / "auto", formats=("html",))["html"])
    [tune] = [r for r in page.tables["s-environment-stages"][1:] if r[0][0] == "tune"]
    assert tune[2][0].startswith("not recorded by the search (asked: auto")
    write(full / "tune" / "exp" / "summary.json", lambda s: s.update(ran_on=[{"device": "cuda", "node_id": "n"}]))
    page = read_page(build_report(full, tmp_path / "gpu", formats=("html",))["html"])
    [tune] = [r for r in page.tables["s-environment-stages"][1:] if r[0][0] == "tune"]
    assert tune[2][0] == "cuda"


def test_the_provenance_shows_the_values_these_results_used(full, tmp_path):
    page = read_page(build_report(full, tmp_path / "out", formats=("html",))["html"])
    gan = summary(full / "gan" / "dcgan" / "summary.json")
    dcgan = table_rows(page, "provenance/report-b-dcgan")
    assert dcgan["batch size"]["Protocol value"][0] == "128"
    assert dcgan["batch size"]["Value in these results"][0] == f"{gan['config']['batch_size']} in gan/dcgan (departs)"
    assert dcgan["Adam beta1"]["Value in these results"][0] == "0.5 in gan/dcgan"
    fid = table_rows(page, "provenance/report-b-fid")
    assert fid["snapshot step of report B's protocol"]["Value in these results"][0] == \
        "20 in fid/dcgan-step_20-n4 (departs); 40 in fid/dcgan-step_40-n4 (departs)"
    assert fid["noise seed"]["Value in these results"][0] == \
        "0 in fid/dcgan-select-n4, fid/dcgan-step_20-n4, fid/dcgan-step_40-n4"  # one value, once
    epochs = table_rows(page, "provenance/report-a")["epochs"]["Value in these results"][0]
    assert epochs == "1 in retrain/exp, recipe/report-a-augment-none-e1, recipe/report-a-e1 (departs)"
    assert table_rows(page, "provenance/report-a-search")["trials"]["Value in these results"][0] == "4 in tune/exp (departs)"
    stem = table_rows(page, "provenance/report-b")["stem (before the first block)"]["Why (ours) / note"][0]
    assert stem.endswith("DEPARTS from report B §1: none: 'the input layer followed by ten convolutional layers', "
                         "each a residual block")
