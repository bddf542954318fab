"""The summaries' classes (cifar_core.summaries over cifar_core.records): every summary of the committed
fixture tree (real stage outputs) reads through its class and writes back byte for byte; a value of
another type is one error naming the file and the key; a key a file lacks stays absent; keys no class
declares are kept; what a writer hands over (numpy numbers, tuples, paths) is taken as JSON writes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import FIXTURE, KINDS

from cifar_core.errors import CifarError
from cifar_core.records import Mismatch
from cifar_core.report.collect import READERS
from cifar_core.summaries import (
    DataSummary,
    GanSummary,
    PipelineSummary,
    Place,
    PlanSummary,
    RecipeSummary,
    Score,
    SearchRecord,
    StageRow,
    TopTrials,
    TrainSummary,
)

EVALUATED = FIXTURE / "train" / "tiny-evaluated" / "summary.json"


def fixture_files() -> list[tuple[Path, type]]:
    """Every summary of the fixture tree, with the class the report reads it through (by its folder)."""
    found = [(cls.file_in(run), cls) for stage, (cls, _) in READERS.items() for run in sorted((FIXTURE / stage).iterdir())]
    found += [(cls.file_in(FIXTURE / "tune" / "exp"), cls) for cls in (TopTrials, SearchRecord)]
    return found + [(PipelineSummary.file_in(FIXTURE / "pipeline" / "fixture"), PipelineSummary),
                    (DataSummary.file_in(FIXTURE / "pipeline" / "fixture" / "data"), DataSummary)]


@pytest.mark.parametrize(("path", "cls"), fixture_files(), ids=lambda v: str(v).split("results/")[-1])
def test_every_summary_reads_through_its_class_and_writes_back_unchanged(path: Path, cls):
    summary = cls.read(path)
    assert summary.to_json() == json.loads(path.read_text())
    assert summary.extra == {}  # every key the stage wrote is declared


def test_every_summary_of_the_fixture_tree_is_read_through_a_class():
    named = {path for path, _ in fixture_files()}
    assert {p for name in ("summary.json", "top_k.json", "experiment.json") for p in FIXTURE.rglob(name)} == named
    assert {FIXTURE / fixture / cls.FILE for fixture, _, cls in KINDS} <= named  # the stages' contract: some of them


@pytest.mark.parametrize(("change", "named"), [
    ({"steps": "40"}, 'steps is a string ("40"), expected a whole number'),
    ({"steps": 40.5}, "steps is a number (40.5), expected a whole number"),
    ({"best_val_acc": True}, "best_val_acc is true or false (true), expected a number"),
    ({"test": {"loss": 1.0, "top1": 0.5, "top5": 0.9, "n": 64}}, "test.step is missing"),
    ({"test_curve": [{"step": 1, "loss": 1.0, "top1": "high", "top5": 0.9}]},
     'test_curve[0].top1 is a string ("high"), expected a number'),
    ({"ran_on": {"hostname": "vm"}}, "ran_on is an object ({\"hostname\": \"vm\"}), expected a list"),
    ({"model": None}, "model is null (null), expected a string"),
])
def test_a_value_of_another_type_is_one_error_naming_the_file_and_the_key(tmp_path, change, named):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({**json.loads(EVALUATED.read_text()), **change}))
    with pytest.raises(CifarError) as error:
        TrainSummary.read(path)
    assert str(error.value) == f"unexpected contents in {path}: {named}"


def test_a_required_key_missing_is_named(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(EVALUATED.read_text()).items() if k != "model"}))
    with pytest.raises(CifarError, match=f"unexpected contents in {path}: model is missing$"):
        TrainSummary.read(path)


def test_a_key_a_file_lacks_is_none_and_stays_absent_and_one_set_later_is_written(tmp_path):
    written = json.loads(EVALUATED.read_text())
    summary = TrainSummary.parse({k: v for k, v in written.items() if k not in ("test", "final_val_acc")})
    assert summary.test is None and summary.evaluations is None
    assert "test" not in summary.to_json() and "evaluations" not in summary.to_json()
    summary.evaluations = {"test@step1": {"top1": 0.5}}
    assert summary.to_json()["evaluations"] == {"test@step1": {"top1": 0.5}}
    explicit = TrainSummary.parse({**written, "final_val_acc": None})
    assert explicit.to_json()["final_val_acc"] is None  # a null the writer wrote is kept


def test_keys_no_class_declares_are_kept(tmp_path):
    """An older reader (amending `evaluations`, say) never drops what a newer writer added."""
    written = json.loads(EVALUATED.read_text())
    newer = {**written, "images_per_s": 5000.0, "test": {**written["test"], "per_class_worst": 3}}
    summary = TrainSummary.parse(newer)
    assert summary.extra == {"images_per_s": 5000.0} and summary.test.extra == {"per_class_worst": 3}
    assert summary.to_json() == newer


def test_a_writer_hands_over_what_json_would_write():
    """numpy numbers, tuples and paths, as the engine and the stages hold them; never NaN."""
    score = Score.parse({"step": np.int64(3), "loss": np.float32(1.5), "top1": 0.25, "top5": np.float64(0.5), "n": 8})
    assert score.to_json() == {"step": 3, "loss": 1.5, "top1": 0.25, "top5": 0.5, "n": 8}
    assert type(score.step) is int and type(score.loss) is float
    row = StageRow.parse({"stage": "gan", "status": "ran", "summary": Path("/r/gan/summary.json"),
                          "ran_on": ({"hostname": "vm"},)})
    assert row.summary == "/r/gan/summary.json" and row.ran_on == [Place(hostname="vm")]
    with pytest.raises(Mismatch, match="loss is nan, expected a finite number"):
        Score.parse({"step": 1, "loss": float("nan"), "top1": 0.0, "top5": 0.0, "n": 1})


def test_a_retrain_and_a_recipe_are_told_apart_by_their_folder():
    """One table class each: a recipe's own keys (its augmentation: null is the recipe's own) are
    written, a retrain's never get them."""
    recipe = RecipeSummary.read_in(FIXTURE / "recipe" / "report-a-e1")
    assert isinstance(recipe, PlanSummary) and recipe.augment is None and "augment" in recipe.to_json()
    with pytest.raises(CifarError, match="is missing"):
        RecipeSummary.read_in(FIXTURE / "retrain" / "exp")


def test_a_gan_runs_failure_is_recorded_and_read_back():
    written = json.loads((FIXTURE / "gan" / "dcgan" / "summary.json").read_text())
    failed = GanSummary.parse({**written, "status": "failed",
                               "failure": {"event": "failed", "step": 12, "reason": "a loss became NaN or infinite"}})
    assert failed.failure.step == 12 and failed.to_json()["failure"]["reason"].startswith("a loss")
