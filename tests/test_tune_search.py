"""A real ASHA search on a tiny synthetic set: early stopping, ranking, a diverged trial, re-summary.

One search (6 trials, up to 3 epochs, local Ray) is shared by the tests of this file. Its trials run
one at a time: which trials ASHA stops depends on the order they reach each rung, and with trials at
once that order is whichever process the machine served first, so the test would flake.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # real Ray Tune searches: about a minute on a 2-core CPU

# Six learning rates from useless to diverging: val accuracy spreads out, so ASHA has something to
# cut at its epoch-1 and epoch-2 rungs, and lr 1e30 turns the loss NaN in its first epoch.
SPACE = {
    "description": "test: tinycnn, sgd at six learning rates",
    "models": [{"names": ["tinycnn"]}],
    "optimizers": {"sgd": {"lr": {"choice": [0.3, 0.1, 0.03, 0.001, 1.0e-5, 1.0e30]}, "momentum": 0.9}},
    "fixed": {"run.eval_batch_size": 500},
}
DIVERGING_LR = 1.0e30


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    from cifar_core.data import write_synthetic

    root = tmp_path_factory.mktemp("tiny")
    write_synthetic(root, n_train=500, n_test=100, seed=0)  # 400 train / 100 validation images
    return root


@pytest.fixture(scope="module")
def search(tmp_path_factory, tiny_root):
    """Run the search once; yields (summary, experiment dir, settings)."""
    from cifar_core.tune.search import TuneSettings, experiment_dir, run_tune

    tmp = tmp_path_factory.mktemp("search")
    space_file = tmp / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE))
    settings = TuneSettings(experiment="asha", space=str(space_file), num_samples=6, max_concurrent=1, max_epochs=3,
                            grace_period=1, reduction_factor=2, cpus_per_trial=1, batch_size=50, seed=0)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in ray_env_vars(tmp).items():
            mp.setenv(key, value)
        summary = run_tune(settings, tiny_root, tmp / "results", allow_synthetic=True)
        yield summary, experiment_dir(tmp / "results", "asha"), settings, tiny_root, tmp / "results"
    shutil.rmtree(ray_env_vars(tmp)["RAY_TMPDIR"], ignore_errors=True)


def ray_env_vars(tmp: Path) -> dict[str, str]:
    (tmp / "home").mkdir(exist_ok=True)
    return {"RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": f"/tmp/rs{os.getpid()}", "HOME": str(tmp / "home"),
            "RAY_USAGE_STATS_ENABLED": "0"}


def read_trials(exp_dir: Path) -> list[dict]:
    with open(exp_dir / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_trial_is_listed_with_the_values_it_used(search):
    summary, exp_dir, settings, *_ = search
    rows = read_trials(exp_dir)
    assert len(rows) == summary["trials"] == 6
    for row in rows:
        assert row["model.name"] == "tinycnn" and row["optim.name"] == "sgd"
        assert float(row["optim.lr"]) in SPACE["optimizers"]["sgd"]["lr"]["choice"]
        assert float(row["optim.momentum"]) == 0.9
        assert int(row["parameters"]) > 0
        assert row["status"] in ("TERMINATED", "DIVERGED")
    assert summary["complete"] is True
    assert sum(summary["status_counts"].values()) == 6


def test_asha_stops_trials_early(search):
    summary, exp_dir, settings, *_ = search
    finished = [r for r in read_trials(exp_dir) if r["status"] == "TERMINATED"]
    epochs = [int(r["epochs"]) for r in finished]
    assert max(epochs) == settings.max_epochs  # the best trial is never cut
    stopped = [r for r in finished if int(r["epochs"]) < settings.max_epochs]
    assert stopped, f"ASHA stopped no trial: epochs {epochs}"
    assert all(r["stopped_early"] == "True" for r in stopped)
    assert summary["stopped_early"] == len(stopped)
    assert summary["epochs_run"] < summary["epochs_without_early_stopping"] == 6 * settings.max_epochs
    assert sum(summary["epochs_histogram"].values()) == 6
    rung1, rung2, last = summary["rungs"]
    assert (rung1["epoch"], rung2["epoch"], last["epoch"]) == (1, 2, 3)
    assert rung1["trials_reached"] >= rung2["trials_reached"] >= last["trials_reached"]


def test_diverged_trial_is_a_recorded_result_not_a_fault_and_the_search_goes_on(search):
    """A non-finite loss ends the trial as DIVERGED (Tune saw it finish normally, so it was not
    retried); it is never ranked or retrained."""
    summary, exp_dir, *_ = search
    rows = read_trials(exp_dir)
    diverged = [r for r in rows if float(r["optim.lr"]) == DIVERGING_LR]
    assert diverged, "seed 0 should sample the diverging learning rate at least once"
    for row in diverged:
        assert row["status"] == "DIVERGED"
        assert "nan" in row["error"].lower() or "inf" in row["error"].lower()
        assert row["rank"] == "" and row["epochs"] == "1"
    assert summary["diverged"] == summary["status_counts"]["DIVERGED"] == len(diverged)
    assert summary["errored"] == 0 and "ERROR" not in summary["status_counts"]
    assert summary["status_counts"]["TERMINATED"] == 6 - len(diverged)
    top = json.loads((exp_dir / "top_k.json").read_text())
    assert DIVERGING_LR not in [t["params"]["optim.lr"] for t in top["top"] + top["top_architectures"]]


def test_top_k_is_ranked_by_validation_accuracy(search):
    summary, exp_dir, settings, *_ = search
    top = json.loads((exp_dir / "top_k.json").read_text())["top"]
    assert len(top) == settings.top_k
    accs = [t["best_val_acc"] for t in top]
    assert accs == sorted(accs, reverse=True)
    rows = [r for r in read_trials(exp_dir) if r["rank"]]
    best_csv = max(float(r["best_val_acc"]) for r in rows)
    assert accs[0] == pytest.approx(best_csv, abs=1e-5)
    assert summary["best"]["trial_id"] == top[0]["trial_id"]
    for entry in top:
        cfg = entry["train_config"]
        assert cfg["model"]["name"] == "tinycnn"
        assert cfg["optim"]["lr"] == entry["params"]["optim.lr"] != DIVERGING_LR
        assert cfg["run"]["epochs"] == settings.max_epochs
    assert (exp_dir / "curves.png").stat().st_size > 10_000


def test_each_trial_trained_in_its_own_run_directory(search):
    """RESULTS/tune/<experiment>/trials/<trial id>/ holds what a trial resumes from (last.pt) and one
    metrics row per epoch it reported; a trial that ran its epochs is complete, others are not."""
    summary, exp_dir, settings, *_ = search
    for row in read_trials(exp_dir):
        trial = exp_dir / "trials" / row["trial_id"]
        rows = (trial / "metrics.jsonl").read_text().splitlines() if (trial / "metrics.jsonl").exists() else []
        metrics = [json.loads(line) for line in rows]
        assert [m["epoch"] for m in metrics] == list(range(1, len(metrics) + 1))
        # A diverged trial's last epoch is reported, never committed.
        assert len(metrics) == int(row["epochs"]) - (row["status"] == "DIVERGED"), row
        assert (trial / "last.pt").exists() == bool(metrics)
        assert (trial / "complete.json").exists() == (len(metrics) == settings.max_epochs)
    assert (exp_dir / "complete.json").exists() and json.loads((exp_dir / "request.json").read_text())["kind"] == "search"


def test_running_a_finished_experiment_again_only_resummarises(search):
    import dataclasses

    import ray

    from cifar_core.tune.search import run_tune

    summary, exp_dir, settings, data_root, results = search
    before = {p.name: p.stat().st_mtime for p in exp_dir.iterdir() if p.is_dir()}
    experiment = (exp_dir / "experiment.json").read_text()
    # Resources may differ on a rerun, but a finished search never records settings it did not run with.
    again = run_tune(dataclasses.replace(settings, cpus_per_trial=1000), data_root, results, allow_synthetic=True)
    assert not ray.is_initialized()  # no Ray session was needed
    assert again["best"] == summary["best"] and again["wall_time_s"] == summary["wall_time_s"]
    assert again["settings"]["cpus_per_trial"] == settings.cpus_per_trial
    assert (exp_dir / "experiment.json").read_text() == experiment
    assert {p.name: p.stat().st_mtime for p in exp_dir.iterdir() if p.is_dir()} == before


def test_changing_the_search_budget_of_an_experiment_is_refused(search):
    import dataclasses

    from cifar_core.errors import ConfigError
    from cifar_core.tune.search import run_tune

    _, _, settings, data_root, results = search
    with pytest.raises(ConfigError, match="its search has other settings \\(max_epochs was 3, now 5\\)"):
        run_tune(dataclasses.replace(settings, max_epochs=5), data_root, results, allow_synthetic=True)


def test_a_torn_summary_blocks_neither_the_resume_nor_the_re_summary(search):
    """summary.json is only derived from Ray's state: a torn one is rebuilt, not a dead end."""
    from cifar_core.tune.search import run_tune

    summary, exp_dir, settings, data_root, results = search
    (exp_dir / "summary.json").write_text('{"experiment": "asha", "comp')
    again = run_tune(settings, data_root, results, allow_synthetic=True)
    assert again["complete"] is True and again["best"] == summary["best"]
    assert json.loads((exp_dir / "summary.json").read_text())["trials"] == summary["trials"]
