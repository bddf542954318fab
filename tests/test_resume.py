"""Classifier runs resume by step and stay consistent: mid-epoch resume, --steps extension, SIGTERM,
one writer per run, derived files repaired from last.pt, data identity, and issue 13's cases.

All in-process on a tiny synthetic set (240 training images, 7 batches of 32 per epoch).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import yaml

from cifar_core.checkpoint import load_checkpoint
from cifar_core.config import TrainConfig
from cifar_core.data import write_synthetic
from cifar_core.data.loader import DeviceLoader
from cifar_core.errors import CheckpointError, CifarError, ConfigError, DataError, Preempted
from cifar_core.runlock import RunLocked
from cifar_core.runs import evaluate_checkpoint, train_run

REPO = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 7  # 300 images, 60 held out, batches of 32 (the ragged one dropped)
TINY = {
    "model": {"name": "tinycnn"},
    "optim": {"name": "adam", "lr": 0.003},
    "augment": {"hflip": True, "crop_padding": 2, "brightness": 0.2, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, "rotation": 0.0},
    "run": {"epochs": 3, "batch_size": 32, "eval_batch_size": 100, "device": "cpu", "seed": 3},
}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    write_synthetic(root, n_train=300, n_test=100, seed=0)
    return root


def cfg(**run) -> TrainConfig:
    data = json.loads(json.dumps(TINY))
    data["run"].update(run)
    return TrainConfig.from_dict(data)


def rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the timings (which differ run to run)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "epoch_time_s"} for line in lines]


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a)["model_state"], load_checkpoint(b)["model_state"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def assert_same_run(run_dir: Path, reference: Path) -> None:
    assert rows(run_dir) == rows(reference)
    assert load_checkpoint(run_dir / "last.pt")["step"] == load_checkpoint(reference / "last.pt")["step"]
    assert same_weights(run_dir / "last.pt", reference / "last.pt")
    assert same_weights(run_dir / "best.pt", reference / "best.pt")


@pytest.fixture(scope="module")
def uninterrupted(tiny_root, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("whole")
    train_run(cfg(), tiny_root, results, run_name="whole")
    return results / "train" / "whole"


def test_steps_extended_on_resume_end_on_the_same_batches(tiny_root, tmp_path, uninterrupted):
    """Issue 13 case 3: --steps 10, then --steps 20 --resume, ended at step 17 on other batches."""
    first = train_run(cfg(steps=10), tiny_root, tmp_path, run_name="s")  # ends 3 batches into epoch 2
    assert rows(tmp_path / "train" / "s")[-1]["step"] == 10
    again = train_run(cfg(steps=10), tiny_root, tmp_path, run_name="s", resume=True)  # nothing to add
    assert (again["steps"], again["epochs"], again["final_train_loss"]) == (10, 2, first["final_train_loss"])
    assert rows(tmp_path / "train" / "s")[-1]["step"] == 10
    summary = train_run(cfg(steps=21), tiny_root, tmp_path, run_name="s", resume=True)
    assert summary["steps"] == 21 == 3 * STEPS_PER_EPOCH
    # The provisional row of the cut epoch is replaced by the finished epoch's row.
    assert rows(tmp_path / "train" / "s") == rows(uninterrupted)
    assert same_weights(tmp_path / "train" / "s" / "last.pt", uninterrupted / "last.pt")


def test_scheduled_run_still_cannot_be_extended(tiny_root, tmp_path):
    scheduled = cfg(steps=4).with_overrides({"optim.schedule": "cosine"})
    train_run(scheduled, tiny_root, tmp_path, run_name="cos")
    with pytest.raises(ConfigError, match="run.steps"):
        train_run(scheduled.with_overrides({"run.steps": 8}), tiny_root, tmp_path, run_name="cos", resume=True)


def _sigterm_at_batch(monkeypatch, k: int) -> None:
    """Deliver a real SIGTERM to this process while the k-th training batch is being read."""
    original, calls = DeviceLoader.batch_in_epoch, []

    def batch_in_epoch(self, epoch, position):
        if self.shuffle:
            calls.append(1)
            if len(calls) == k:
                os.kill(os.getpid(), signal.SIGTERM)
        return original(self, epoch, position)

    monkeypatch.setattr(DeviceLoader, "batch_in_epoch", batch_in_epoch)


def test_sigterm_mid_epoch_checkpoints_that_step_and_resumes_exactly(tiny_root, tmp_path, uninterrupted, monkeypatch):
    before = signal.getsignal(signal.SIGTERM)
    _sigterm_at_batch(monkeypatch, 10)  # in epoch 2, batch 3
    with pytest.raises(Preempted, match="after step 10"):
        train_run(cfg(), tiny_root, tmp_path, run_name="p")
    assert signal.getsignal(signal.SIGTERM) is before  # the handler lived only while training
    run_dir = tmp_path / "train" / "p"
    state = load_checkpoint(run_dir / "last.pt")
    assert state["step"] == 10 and state["epoch"] == 1 and state["partial"]["seen"] == 3 * 32
    assert len(rows(run_dir)) == 1  # no row for the unfinished epoch
    monkeypatch.undo()
    train_run(cfg(), tiny_root, tmp_path, run_name="p", resume=True)
    assert_same_run(run_dir, uninterrupted)


def test_sigterm_at_an_epoch_end_stops_after_that_epochs_files(tiny_root, tmp_path, monkeypatch):
    _sigterm_at_batch(monkeypatch, STEPS_PER_EPOCH)
    with pytest.raises(Preempted, match="after step 7"):
        train_run(cfg(), tiny_root, tmp_path, run_name="e")
    assert load_checkpoint(tmp_path / "train" / "e" / "last.pt")["step"] == STEPS_PER_EPOCH
    assert [r["step"] for r in rows(tmp_path / "train" / "e")] == [STEPS_PER_EPOCH]


def test_training_outside_the_main_thread_installs_no_handler(tiny_root, tmp_path):
    errors = []
    thread = threading.Thread(target=lambda: _catch(errors, train_run, cfg(steps=2), tiny_root, tmp_path, "t"))
    thread.start()
    thread.join()
    assert errors == []  # signal.signal outside the main thread would have raised ValueError


def _catch(errors, fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        errors.append(exc)


HOLD = "import sys, time; from cifar_core.runlock import RunLock; RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)"


def test_second_run_with_the_same_name_is_refused_and_changes_nothing(tiny_root, tmp_path):
    """Issue 13 case 1: both exited 0 and left config.yaml (lr 0.001) beside weights trained with 0.01."""
    train_run(cfg(steps=2), tiny_root, tmp_path, run_name="same")
    run_dir = tmp_path / "train" / "same"
    config_before = (run_dir / "config.yaml").read_text()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        other = cfg(steps=4).with_overrides({"optim.lr": 0.001})
        with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
            train_run(other, tiny_root, tmp_path, run_name="same", resume=True)
    finally:
        holder.kill()
        holder.wait()
    assert (run_dir / "config.yaml").read_text() == config_before


def test_a_refused_resume_leaves_config_yaml_alone(tiny_root, tmp_path):
    train_run(cfg(steps=2), tiny_root, tmp_path, run_name="r")
    config_path = tmp_path / "train" / "r" / "config.yaml"
    before = config_path.read_text()
    with pytest.raises(CifarError, match="--resume"):
        train_run(cfg(steps=4), tiny_root, tmp_path, run_name="r")
    with pytest.raises(ConfigError, match="run.batch_size"):
        train_run(cfg(steps=4, batch_size=16), tiny_root, tmp_path, run_name="r", resume=True)
    assert config_path.read_text() == before


def test_derived_files_are_repaired_from_last_pt(tiny_root, tmp_path):
    """Issue 13 case 2: a kill between last.pt and best.pt left best.pt old for good, metrics a row short."""
    full = cfg(epochs=2, full_train=True)  # no validation split: every epoch is the best so far
    train_run(full, tiny_root, tmp_path, run_name="k")
    run_dir = tmp_path / "train" / "k"
    intact = rows(run_dir)
    last = load_checkpoint(run_dir / "last.pt")
    assert last["best_step"] == last["step"] == 2 * 9  # 300 images: 9 batches of 32, the ragged 12 dropped
    # What a kill right after last.pt of epoch 2 leaves: best.pt of epoch 1, metrics without epoch 2.
    train_run(cfg(epochs=1, full_train=True), tiny_root, tmp_path / "old", run_name="k")
    shutil.copy(tmp_path / "old" / "train" / "k" / "best.pt", run_dir / "best.pt")
    (run_dir / "metrics.jsonl").write_text("".join((run_dir / "metrics.jsonl").read_text().splitlines(True)[:-1]))
    (run_dir / ".best.pt.a1b2c3d4.tmp").write_bytes(b"torn")  # a killed copy's leftover
    train_run(full, tiny_root, tmp_path, run_name="k", resume=True)  # nothing left to train
    assert (run_dir / "best.pt").read_bytes() == (run_dir / "last.pt").read_bytes()
    assert rows(run_dir) == intact
    assert not list(run_dir.glob(".*.tmp"))


def test_resuming_on_other_data_is_refused_naming_both(tiny_root, tmp_path):
    """Issue 13 case 4: --resume --data-dir other trained on other images."""
    from cifar_core.data import data_digest

    train_run(cfg(steps=2), tiny_root, tmp_path, run_name="d")
    other = write_synthetic(tmp_path / "other", n_train=300, n_test=100, seed=1)
    with pytest.raises(DataError) as caught:
        train_run(cfg(steps=4), other, tmp_path, run_name="d", resume=True)
    assert data_digest(tiny_root) in str(caught.value) and data_digest(other) in str(caught.value)
    assert load_checkpoint(tmp_path / "train" / "d" / "last.pt")["data_digest"] == data_digest(tiny_root)


def test_evaluate_records_only_the_runs_own_checkpoint_on_its_own_data(tiny_root, tmp_path):
    """Issue 13 case 7: evaluate overwrote the run's recorded test score with any checkpoint's on any data."""
    summary = train_run(cfg(epochs=2), tiny_root, tmp_path, run_name="ev", evaluate_test=True)
    run_dir = tmp_path / "train" / "ev"
    other = write_synthetic(tmp_path / "other", n_train=300, n_test=100, seed=1)
    foreign = evaluate_checkpoint(run_dir / "best.pt", other, "cpu")
    assert foreign["recorded_in"] is None and "this data is" in foreign["not_recorded"]
    shutil.copy(run_dir / "last.pt", tmp_path / "copy.pt")
    elsewhere = evaluate_checkpoint(tmp_path / "copy.pt", tiny_root, "cpu")
    assert elsewhere["recorded_in"] is None
    own = evaluate_checkpoint(run_dir / "last.pt", tiny_root, "cpu")
    recorded = json.loads((run_dir / "summary.json").read_text())
    assert own["recorded_in"] == str(run_dir / "summary.json")
    assert recorded["test"] == summary["test"]  # the run's own score is never replaced
    entry = recorded["evaluations"][f"test@step{2 * STEPS_PER_EPOCH}"]
    assert entry["top1"] == own["top1"] == summary["test"]["top1"] and entry["checkpoint"].endswith("last.pt")


def test_issue_13_one_line_errors(tiny_root, tmp_path):
    with pytest.raises(ConfigError, match="run name ''"):
        train_run(cfg(steps=1), tiny_root, tmp_path, run_name="")
    train_run(cfg(steps=1), tiny_root, tmp_path, run_name="ok")
    state = load_checkpoint(tmp_path / "train" / "ok" / "last.pt")

    def broken(name, change):
        damaged = {**state, **change}
        for key in [k for k, v in change.items() if v is None]:
            del damaged[key]
        path = tmp_path / f"{name}.pt"
        torch.save(damaged, path)
        return path

    with pytest.raises(CheckpointError, match="has no 'epoch'") as caught:
        evaluate_checkpoint(broken("noepoch", {"epoch": None}), tiny_root, "cpu")
    assert "noepoch.pt" in str(caught.value)
    with pytest.raises(CheckpointError, match="model_kwargs .* do not fit model tinycnn"):
        evaluate_checkpoint(broken("kwargs", {"model_kwargs": {"bogus": 3}}), tiny_root, "cpu")
    with pytest.raises(CheckpointError, match="'model_kwargs' should be a dict"):
        evaluate_checkpoint(broken("kwlist", {"model_kwargs": [1]}), tiny_root, "cpu")
    bad_state = {k: (v[:1] if v.ndim else v) for k, v in state["model_state"].items()}
    with pytest.raises(CheckpointError, match="size mismatch for") as caught:
        evaluate_checkpoint(broken("shapes", {"model_state": bad_state}), tiny_root, "cpu")
    assert "\n" not in str(caught.value)


def test_huge_seed_trains_and_repeats(tiny_root, tmp_path):
    big = cfg(steps=3, seed=200_000_000_000_000)
    a = train_run(big, tiny_root, tmp_path, run_name="big1")
    b = train_run(big, tiny_root, tmp_path, run_name="big2")
    assert a["final_train_loss"] == b["final_train_loss"]


def test_written_run_files_are_readable_by_the_group(tiny_root, tmp_path):
    """Issue 13 case 11: mkstemp left every file 0600 whatever the umask."""
    old = os.umask(0o002)
    try:
        train_run(cfg(steps=2), tiny_root, tmp_path, run_name="m")
    finally:
        os.umask(old)
    run_dir = tmp_path / "train" / "m"
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "summary.json"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o664, name
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["run"]["steps"] == 2
