"""The training engine on real synthetic data: learning, exact resume, crash safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import cifar

from cifar_core.checkpoint import load_checkpoint
from cifar_core.config import TrainConfig
from cifar_core.runs import train_run

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "model": {"name": "tinycnn"},
    "optim": {"name": "adam", "lr": 0.003},
    "augment": {"hflip": True, "crop_padding": 2, "brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, "rotation": 0.0},
    "run": {"epochs": 3, "batch_size": 64, "eval_batch_size": 500, "device": "cpu"},
}


def _cfg(**run) -> TrainConfig:
    data = json.loads(json.dumps(TINY))
    data["run"].update(run)
    return TrainConfig.from_dict(data)


def _without_times(history):
    return [{k: v for k, v in m.items() if k != "epoch_time_s"} for m in history]


def test_few_epochs_clearly_beat_chance(synth_root, tmp_path):
    summary = train_run(_cfg(epochs=6), synth_root, tmp_path, run_name="learn", evaluate_test=True)
    # 100 classes: chance is 1%.
    assert summary["best_val_acc"] > 0.15, summary["best_val_acc"]
    assert summary["test"]["top1"] > 0.15 and summary["test"]["top5"] >= summary["test"]["top1"]
    run_dir = tmp_path / "train" / "learn"
    for name in ("config.yaml", "metrics.jsonl", "last.pt", "best.pt", "summary.json"):
        assert (run_dir / name).is_file(), name
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5, 6]


def test_resume_in_process_matches_uninterrupted(synth_root, tmp_path):
    straight = train_run(_cfg(epochs=2), synth_root, tmp_path, run_name="straight")
    train_run(_cfg(epochs=1), synth_root, tmp_path, run_name="split")
    resumed = train_run(_cfg(epochs=2), synth_root, tmp_path, run_name="split", resume=True)
    a = load_checkpoint(tmp_path / "train" / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "train" / "split" / "last.pt")
    assert _without_times(a["history"]) == _without_times(b["history"])
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key
    assert straight["final_val_acc"] == resumed["final_val_acc"]


def test_existing_run_needs_resume_and_matching_config(synth_root, tmp_path):
    from cifar_core.errors import CifarError, ConfigError

    train_run(_cfg(epochs=1), synth_root, tmp_path, run_name="r")
    with pytest.raises(CifarError, match="--resume"):
        train_run(_cfg(epochs=2), synth_root, tmp_path, run_name="r")
    with pytest.raises(ConfigError, match="run.batch_size"):
        train_run(_cfg(epochs=2, batch_size=32), synth_root, tmp_path, run_name="r", resume=True)


def _cifar(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", *args]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _train_args(synth_root: Path, results: Path, epochs: int, run: str = "r") -> list[str]:
    return _cifar(
        "train", "--model", "tinycnn", "--optimizer", "adam", "--lr", "0.003", "--augment", "flip-crop",
        "--epochs", str(epochs), "--batch-size", "64", "--device", "cpu", "--run-name", run,
        "--data-dir", str(synth_root), "--results-dir", str(results), "--resume",
    )


@pytest.mark.slow  # three CLI processes: interrupted, resumed, uninterrupted
def test_sigterm_mid_epoch_exits_143_and_resume_matches_uninterrupted(synth_root, tmp_path):
    """Kubernetes' eviction through the real entry point: SIGTERM lands inside an epoch, the run
    checkpoints that step and exits 143; --resume ends equal to an uninterrupted run. (SIGKILL at
    every write boundary is test_fault_injection's.)"""
    epochs = 3
    # Only the stopped run needs a process of its own (to be signalled); the others run in this one.
    straight = cifar(*_train_args(synth_root, tmp_path / "a", epochs)[3:])
    assert straight.status == 0, straight.err

    metrics = tmp_path / "b" / "train" / "r" / "metrics.jsonl"
    # SIGTERM once step 30 is done: inside epoch 2 (1,600 images in batches of 64: 25 steps an epoch).
    stop = [sys.executable, str(REPO / "tests" / "sigterm_at.py"), "30", *_train_args(synth_root, tmp_path / "b", epochs)[3:]]
    done = subprocess.run(stop, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=1200)
    assert done.returncode == 143, done.stderr
    assert "preempted: stopped by SIGTERM after step 31" in done.stderr and "Traceback" not in done.stderr
    stopped = load_checkpoint(tmp_path / "b" / "train" / "r" / "last.pt")
    assert stopped["step"] == 31 and len(metrics.read_text().splitlines()) == 1  # mid-epoch 2

    again = cifar(*_train_args(synth_root, tmp_path / "b", epochs)[3:])
    assert again.status == 0, again.err
    assert f"resuming {tmp_path / 'b' / 'train' / 'r'} at step {stopped['step']}" in again.err
    a = [json.loads(x) for x in (tmp_path / "a" / "train" / "r" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert _without_times(a) == _without_times(b)
    a_last, b_last = load_checkpoint(tmp_path / "a" / "train" / "r" / "last.pt"), load_checkpoint(tmp_path / "b" / "train" / "r" / "last.pt")
    assert all(torch.equal(a_last["model_state"][k], b_last["model_state"][k]) for k in a_last["model_state"])


def test_failed_checkpoint_write_keeps_previous_checkpoint(synth_root, tmp_path):
    first = cifar(*_train_args(synth_root, tmp_path, 1)[3:])  # in this process; the failing one gets a limit of its own
    assert first.status == 0, first.err
    last = tmp_path / "train" / "r" / "last.pt"
    before = last.read_bytes()
    # A file-size limit below one checkpoint makes the next checkpoint write fail for real (EFBIG).
    limit = len(before) // 2
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
        "from jobs.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = _train_args(synth_root, tmp_path, 2)[3:]
    failed = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=_env(), capture_output=True, text=True)
    assert failed.returncode != 0
    error_lines = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "last.pt" in error_lines[0], failed.stderr
    assert last.read_bytes() == before
    assert load_checkpoint(last)["epoch"] == 1
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".tmp")]


def test_resume_may_extend_a_constant_lr_run_but_not_a_scheduled_one(synth_root, tmp_path):
    from cifar_core.errors import ConfigError

    train_run(_cfg(epochs=1), synth_root, tmp_path, run_name="flat")
    assert train_run(_cfg(epochs=2), synth_root, tmp_path, run_name="flat", resume=True)["epochs"] == 2
    scheduled = _cfg(epochs=1).with_overrides({"optim.schedule": "onecycle"})
    train_run(scheduled, synth_root, tmp_path, run_name="cycle")
    with pytest.raises(ConfigError, match="run.epochs"):
        train_run(scheduled.with_overrides({"run.epochs": 2}), synth_root, tmp_path, run_name="cycle", resume=True)


def test_extending_a_steps_run_keeps_its_summary_in_agreement_with_best_pt(synth_root, tmp_path):
    """A --steps run that ended mid-epoch evaluated there (a provisional row). Extended, the row goes
    (the finished epoch replaces it), but the best it found stays what best.pt holds, and the summary
    says the same best as best.pt, at the step best.pt is of."""
    cfg = _cfg(epochs=1).with_overrides({"run.epochs": None, "run.steps": 30})  # 25 steps an epoch: 30 is mid-epoch 2
    train_run(cfg, synth_root, tmp_path, run_name="ext")
    summary = train_run(cfg.with_overrides({"run.steps": 40}), synth_root, tmp_path, run_name="ext", resume=True)
    best = load_checkpoint(tmp_path / "train" / "ext" / "best.pt")
    assert summary["best_val_acc"] == best["best_val_acc"] and summary["best_step"] == best["step"]
    rows = [json.loads(line) for line in (tmp_path / "train" / "ext" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [25, 40]  # the provisional row of step 30 is gone


def test_full_train_keeps_the_latest_epoch_as_best_without_a_fake_accuracy(synth_root, tmp_path):
    train_run(_cfg(epochs=2, full_train=True), synth_root, tmp_path, run_name="full")
    run_dir = tmp_path / "train" / "full"
    last, best = load_checkpoint(run_dir / "last.pt"), load_checkpoint(run_dir / "best.pt")
    assert last["best_val_acc"] is None and best["epoch"] == last["epoch"] == 2
    assert (run_dir / "best.pt").read_bytes() == (run_dir / "last.pt").read_bytes()
