"""Retraining the best configs of a search on all training images, then scoring the test set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cifar_core.config import TrainConfig
from cifar_core.errors import ConfigError
from cifar_core.retrain import retrain_from_tune
from cifar_core.tune.results import TrialRecord, write_top_k


def fake_search(results: Path, experiment: str) -> None:
    """A tune directory as `cifar tune` leaves it (top_k.json), from two hand-made trial records."""
    base = TrainConfig().with_overrides({"model.name": "tinycnn", "run.epochs": 3, "run.batch_size": 100,
                                         "run.eval_batch_size": 500, "run.device": "cpu"})
    trials = [
        TrialRecord("t1", "TERMINATED", {"model.name": "tinycnn", "model.dropout": 0.1, "optim.name": "sgd",
                                         "optim.lr": 0.05, "optim.momentum": 0.9},
                    history=[{"epoch": 1, "val_acc": 0.04}]),
        TrialRecord("t2", "TERMINATED", {"model.name": "tinycnn", "model.dropout": 0.2, "optim.name": "adam",
                                         "optim.lr": 0.003}, history=[{"epoch": 1, "val_acc": 0.03}]),
    ]
    record = {"experiment": experiment, "metric": "val_acc", "base_config": base.to_dict()}
    write_top_k(results / "tune" / experiment / "top_k.json", trials, 2, record)
    (results / "tune" / experiment / "summary.json").write_text(json.dumps({"complete": True}))


def test_retrain_scores_each_config_on_the_test_set_and_resumes(tmp_path, synth_root):
    results = tmp_path / "results"
    fake_search(results, "exp")
    summary = retrain_from_tune("exp", synth_root, results, top_k=2, epochs=1, device="cpu", select="trials")

    assert summary["complete"] and [m["rank"] for m in summary["models"]] == [1, 2]
    for model in summary["models"]:
        assert model["model"] == "tinycnn" and model["epochs"] == 1
        assert 0.0 <= model["test_top1"] <= model["test_top5"] <= 1.0
        assert model["parameters"] > 0 and model["train_time_s"] > 0
        run = json.loads((Path(model["run_dir"]) / "summary.json").read_text())
        assert run["full_train"] is True and run["test"]["n"] == 500  # all 2,000 training images, whole test set
    assert [m["optimizer"] for m in summary["models"]] == ["sgd", "adam"]

    out = results / "retrain" / "exp"
    assert json.loads((out / "summary.json").read_text())["models"] == summary["models"]
    table = (out / "table.md").read_text()
    for expected in ("tinycnn (rank 1)", "| CNN6 | report A", "60.1", "61.1", "58.7", "82.68", "74.24", "74.01", "73.50",
                     "synthetic stand-in"):
        assert expected in table
    assert (out / "loss.png").stat().st_size > 10_000

    again = retrain_from_tune("exp", synth_root, results, top_k=2, epochs=1, device="cpu", select="trials")
    assert [m["test_top1"] for m in again["models"]] == [m["test_top1"] for m in summary["models"]]
    assert all(m["epochs"] == 1 for m in again["models"])  # resumed finished runs: nothing retrained


def test_asking_for_more_configs_than_the_search_kept_is_an_error(tmp_path, synth_root):
    fake_search(tmp_path, "exp")
    with pytest.raises(ConfigError, match="lists 2 configs, fewer than --top-k 3"):
        retrain_from_tune("exp", synth_root, tmp_path, top_k=3, epochs=1, select="trials")
    with pytest.raises(ConfigError, match=r"lists 1 architectures, fewer than --top-k 2.*--select trials"):
        retrain_from_tune("exp", synth_root, tmp_path, top_k=2, epochs=1)
    with pytest.raises(ConfigError, match="retrain.experiment '../exp'"):
        retrain_from_tune("../exp", synth_root, tmp_path, top_k=1, epochs=1)
    with pytest.raises(ConfigError, match="run `cifar tune --experiment other` first"):
        retrain_from_tune("other", synth_root, tmp_path, top_k=1, epochs=1)


def test_an_unfinished_search_is_not_retrained(tmp_path, synth_root):
    """Ctrl-C on `cifar tune` leaves top_k.json of the trials run so far: retraining those would
    retrain a search that never ran to its end."""
    fake_search(tmp_path, "exp")
    (tmp_path / "tune" / "exp" / "summary.json").write_text(json.dumps(
        {"complete": False, "status_counts": {"PENDING": 1, "TERMINATED": 1}}))
    with pytest.raises(ConfigError, match=r"the search exp has not finished \(1 PENDING, 1 TERMINATED\)"):
        retrain_from_tune("exp", synth_root, tmp_path, top_k=1, epochs=1, select="trials")


def test_by_default_the_best_trial_of_each_of_the_best_architectures_is_retrained(tmp_path):
    """Report A retrained three different models; three trials of one architecture are not that."""
    from cifar_core.retrain import selected_configs

    base = TrainConfig().with_overrides({"model.name": "tinycnn"})
    accs = {"a": ("cnn6", 0.61), "b": ("cnn6", 0.60), "c": ("cnn7", 0.59), "d": ("cnn6", 0.58), "e": ("cnn2", 0.57)}
    trials = [TrialRecord(t, "TERMINATED", {"model.name": m, "optim.name": "sgd", "optim.lr": 0.01},
                          history=[{"epoch": 1, "val_acc": acc}]) for t, (m, acc) in accs.items()]
    write_top_k(tmp_path / "tune" / "exp" / "top_k.json", trials, 3, {"experiment": "exp", "metric": "val_acc",
                                                                      "base_config": base.to_dict()})
    (tmp_path / "tune" / "exp" / "summary.json").write_text(json.dumps({"complete": True}))
    by_architecture = selected_configs(tmp_path, "exp", 3)
    assert [(e.trial_id, e.params["model.name"]) for e in by_architecture] == [
        ("a", "cnn6"), ("c", "cnn7"), ("e", "cnn2")]
    assert [e.trial_id for e in selected_configs(tmp_path, "exp", 3, select="trials")] == ["a", "b", "c"]


def test_retrain_command(tmp_path, synth_root):
    from jobs.cli import cli

    fake_search(tmp_path, "exp")
    result = CliRunner().invoke(cli, ["retrain", "--from-tune", "exp", "--top-k", "1", "--epochs", "1", "--allow-synthetic",
                                      "--data-dir", str(synth_root), "--results-dir", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "rank 1: tinycnn" in result.output and "SYNTHETIC" in result.output
    assert f"results: {tmp_path / 'retrain' / 'exp'}" in result.output
