"""Issue 29, item 3: a signal ends `cifar pipeline --no-ray` at once, whichever stage it lands in: the
running stage checkpoints (training obeys after its step), no further stage starts, the command
exits 143 (SIGTERM) or 130 (SIGINT) with one line, and the pipeline's summary says which stages were
stopped and which never started. The same command then continues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # a shrunk smoke pipeline in this process, twice


def pipeline_args(tmp_path: Path) -> list[str]:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"models": [{"names": ["tinycnn"]}], "fixed": {"run.eval_batch_size": 500},
                                     "optimizers": {"sgd": {"lr": {"loguniform": [0.01, 0.1]}, "momentum": 0.9}}}))
    overrides = ["data.n_train=64", "data.n_test=16", f"tune.space={space}", "tune.num_samples=1", "tune.max_epochs=1", "retrain.top_k=1",
                 "tune.batch_size=32", "gan.steps=2", "gan.batch_size=16", "gan.log_every=2", "gan.sample_every=2",
                 "gan.checkpoint_every=2", "fid-b.step=2", "fid-b.compare_steps=[2]", "recipe-a.models=[cnn6]",
                 "recipe-a.steps=6", "ablation.models=[cnn6]", "recipe-b.seeds=[0]", "recipe-b.steps=2"]
    return ["pipeline", "--profile", "smoke", "--device", "cpu", "--no-ray", "--data-dir", str(tmp_path / "data"),
            "--results-dir", str(tmp_path / "results"), *(a for o in overrides for a in ("--set", o))]


@pytest.mark.parametrize(("signal_name", "status", "word"), [("SIGTERM", 143, "preempted"), ("SIGINT", 130, "interrupted")])
def test_a_signal_in_a_stage_ends_the_pipeline_at_once_and_the_same_command_continues(tmp_path, signal_name, status,
                                                                                       word):
    env = {**os.environ, "CIFAR_TEST_SIGNAL": signal_name, "CIFAR_FID_WEIGHTS": str(tmp_path / "absent.pth")}
    # The signal lands when the first classifier step is done: in stage recipe-a, after data, gan and the FIDs.
    done = subprocess.run([sys.executable, str(REPO / "tests" / "sigterm_at.py"), "1", *pipeline_args(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == status, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1].startswith(f"{word}: "), done.stderr[-2000:]
    summary = json.loads((tmp_path / "results" / "pipeline" / "smoke" / "summary.json").read_text())
    statuses = {s["stage"]: s["status"] for s in summary["stages"]}
    assert statuses["recipe-a"] == "stopped" and summary["stopped"]
    assert {statuses[s] for s in ("ablation", "recipe-b", "tune", "retrain")} == {"not started"}
    assert not (tmp_path / "results" / "recipe" / "report-a-augment-none-s6").exists()  # nothing after it started
    assert not (tmp_path / "results" / "tune").exists()
    again = subprocess.run([sys.executable, "-m", "jobs.cli", *pipeline_args(tmp_path)], cwd=REPO,
                           env={**env, "CIFAR_TEST_SIGNAL": ""}, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stderr[-3000:]
    final = {s["stage"]: s["status"] for s in json.loads(
        (tmp_path / "results" / "pipeline" / "smoke" / "summary.json").read_text())["stages"]}
    assert final["gan"] == "skipped" and final["recipe-a"] == "ran" and final["retrain"] == "ran"
