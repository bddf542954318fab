"""A search whose driver is killed (SIGKILL, like a pod eviction), then the same command again: every
trial ends exactly as in an uninterrupted search, a finished trial is not trained again, and an
unfinished one continues from its own last.pt. Judged by the product's own files (each trial's run
directory, RESULTS/tune/<experiment>/trials/<id>/, with last.pt its commit point), never by Tune's
saved state, which the test makes as stale as it can be: the trials' files alone must carry the resume."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from cifar_core.reaper import descendants
from cifar_core.runlock import RunLock

pytestmark = pytest.mark.slow  # real Ray Tune searches: about a minute on a 2-core CPU
HANG_S = 1200  # deadlines for hangs only: nothing here waits for a time, only for a state of the files
REPO = Path(__file__).resolve().parents[1]

SPACE = {
    "models": [{"names": ["tinycnn"]}],
    "optimizers": {"sgd": {"lr": {"loguniform": [1.0e-3, 0.3]}, "momentum": 0.9}},
    "fixed": {"run.eval_batch_size": 500},
}
# Two trials at a time and no early stopping (grace period = max epochs): the second pair starts as
# the first finishes. Tune reports synchronously, so once the driver is dead a trial trains at most the
# epoch it is in: one killed with last.pt at epoch MAX_EPOCHS - 2 or before stays unfinished.
TRIALS, CONCURRENT, MAX_EPOCHS = 4, 2, 4
TIMINGS = {"epoch_time_s"}


def tune_command(tmp: Path) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "tune", "--experiment", "killed", "--space", str(tmp / "space.yaml"),
            "--num-samples", str(TRIALS), "--max-epochs", str(MAX_EPOCHS), "--grace-period", str(MAX_EPOCHS),
            "--max-concurrent", str(CONCURRENT), "--cpus-per-trial", "0.5", "--batch-size", "50",
            "--device", "cpu", "--allow-synthetic", "--data-dir", str(tmp / "data"), "--results-dir", str(tmp / "results")]


def trial_dirs(exp_dir: Path) -> list[Path]:
    folder = exp_dir / "trials"
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def complete(trial: Path) -> bool:
    return (trial / "complete.json").is_file()


def last_pt(trial: Path) -> dict | None:
    """The trial's commit point; safe to read while it trains: last.pt is only ever replaced whole."""
    path = trial / "last.pt"
    return torch.load(path, weights_only=True) if path.exists() else None


def killable(exp_dir: Path) -> bool:
    """A finished trial, and an unfinished one with a committed epoch that will still be unfinished
    after the kill."""
    trials = trial_dirs(exp_dir)
    committed = {t: (last_pt(t) or {"epoch": 0})["epoch"] for t in trials if not complete(t)}
    return any(complete(t) for t in trials) and any(1 <= e <= MAX_EPOCHS - 2 for e in committed.values())


def wait_for(ready, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + HANG_S
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the search ended (rc {process.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {HANG_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def started(pid: int) -> str | None:
    """When the process `pid` started; None once it has ended (a zombie has ended too)."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def kill_driver(driver: subprocess.Popen, exp_dir: Path) -> None:
    """SIGKILL the driver alone, then wait until nothing of the search runs or writes: every process
    it had started is gone (its reaper ends the local Ray it leaves behind), and so every lock is free."""
    below = descendants(driver.pid)
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + HANG_S
    while any(started(pid) == start for pid, start in below.items()):
        assert time.monotonic() < deadline, "the killed search's processes outlived it"
        time.sleep(0.2)
    for folder in [exp_dir, *trial_dirs(exp_dir)]:
        RunLock(folder, wait_s=HANG_S).acquire().release()


def files_of(trial: Path) -> dict:
    """What the kill left of a trial: whether it finished, its commit point's history, and the identity
    of each file (inode and modification time: a file written again is another one)."""
    stats = {name: (s.st_ino, s.st_mtime_ns) for name in ("last.pt", "best.pt", "metrics.jsonl")
             if (trial / name).exists() for s in [(trial / name).stat()]}
    return {"complete": complete(trial), "history": (last_pt(trial) or {"history": []})["history"], "files": stats}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """One search, its driver SIGKILLed once a trial has finished and another is part-way, then the same
    command again. Yields (experiment dir, what the kill left per trial, the rerun, work folder)."""
    from cifar_core.data import write_synthetic

    tmp = tmp_path_factory.mktemp("killed")
    write_synthetic(tmp / "data", n_train=1000, n_test=100, seed=0)
    (tmp / "space.yaml").write_text(yaml.safe_dump(SPACE))
    exp_dir = tmp / "results" / "tune" / "killed"
    ray_tmp = f"/tmp/rk{os.getpid()}"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0",
                           "HOME": str(tmp), "TUNE_GLOBAL_CHECKPOINT_S": "100000"}.items():  # Tune's state: stale
            mp.setenv(key, value)
        log = tmp / "first.log"
        with open(log, "wb") as out:
            driver = subprocess.Popen(tune_command(tmp), stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            wait_for(lambda: killable(exp_dir), "a finished trial beside an unfinished one", driver, log)
        finally:
            kill_driver(driver, exp_dir)
        left = {trial.name: files_of(trial) for trial in trial_dirs(exp_dir)}
        rerun = subprocess.run(tune_command(tmp), capture_output=True, text=True, timeout=HANG_S, cwd=REPO)
        yield exp_dir, left, rerun, tmp
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_the_kill_left_a_finished_trial_and_an_unfinished_one(resumed):
    _, left, *_ = resumed
    assert any(t["complete"] for t in left.values()), left
    assert any(not t["complete"] and t["history"] for t in left.values()), left


def test_the_same_command_completes_the_search_without_training_anything_twice(resumed):
    exp_dir, left, rerun, _ = resumed
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "resuming experiment killed" in rerun.stderr
    for name, before in left.items():
        now = files_of(exp_dir / "trials" / name)
        if before["complete"]:  # finished before the kill: not a file written again
            assert now == before, name
        else:  # continued from its last.pt: the epochs it had are the same rows, timings included
            assert now["history"][: len(before["history"])] == before["history"], name
    with open(exp_dir / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["status"], r["epochs"]) for r in rows] == [("TERMINATED", str(MAX_EPOCHS))] * TRIALS, rows
    assert {r["trial_id"] for r in rows} == {t.name for t in trial_dirs(exp_dir)}
    assert all(complete(t) for t in trial_dirs(exp_dir)) and (exp_dir / "complete.json").is_file()
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["complete"] and summary["trials"] == TRIALS and summary["errored"] == 0
    assert f"{TRIALS} trials ({TRIALS} TERMINATED)" in rerun.stdout


def test_each_trial_counted_its_epochs_from_1_for_tune_however_often_it_started(resumed):
    """What ASHA sees: in every result a trial gave Tune, Tune's iteration is the trial's epoch, also
    after a start from nothing (a trial started again first reports its trained epochs again)."""
    exp_dir, *_ = resumed
    for trial in trial_dirs(exp_dir):
        results = [json.loads(line) for line in (exp_dir / trial.name / "result.json").read_text().splitlines()]
        assert results and all(r["training_iteration"] == r["epoch"] for r in results), trial.name


def test_every_trial_ends_as_in_an_uninterrupted_search(resumed):
    """Same seed, same config: the same weights and metrics as the trial trained without a break (by
    the same trial code, in this process, one thread as the trials had)."""
    from cifar_core.config import TrainConfig
    from cifar_core.data import data_digest
    from cifar_core.tune.trainable import run_trial, trial_directory

    exp_dir, _, _, tmp = resumed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for trial in trial_dirs(exp_dir):
            reference = trial_directory(tmp / "reference", "ref", trial.name)
            run_trial(TrainConfig.from_yaml(trial / "config.yaml"), tmp / "data", reference, data_digest(tmp / "data"),
                      lambda metrics: None)
            ours, theirs = last_pt(trial), last_pt(reference.path)
            assert ours["model_state"].keys() == theirs["model_state"].keys()
            assert all(torch.equal(ours["model_state"][k], theirs["model_state"][k]) for k in ours["model_state"]), trial
            assert without_timings(ours["history"]) == without_timings(theirs["history"]), trial
    finally:
        torch.set_num_threads(threads)


def without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]
