"""A search whose driver is killed (SIGKILL, like a pod eviction), then the same command again:
it restores the experiment, finished trials are not run again, and the results are complete."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cifar_core.reaper import descendants, signal_each

pytestmark = pytest.mark.slow  # real Ray Tune searches: about a minute on a 2-core CPU
# Deadlines for hangs only. With two CPU-bound processes beside the suite the rerun took 1,075 s:
# Tune tries to restore the trial whose checkpoint is gone 1 + TRIAL_RESTARTS times, minutes each
# (a new Ray worker imports torch), before the search restarts it from scratch.
RERUN_TIMEOUT_S = 2400

SPACE = {
    "models": [{"names": ["tinycnn"]}],
    "optimizers": {"sgd": {"lr": {"loguniform": [1.0e-3, 0.3]}, "momentum": 0.9}},
    "fixed": {"run.eval_batch_size": 500},
}
# Two trials at a time and no early stopping (grace period = max epochs): the second pair starts as
# the first finishes, and stays unfinished with checkpoints for three whole epochs: the kill's window.
TRIALS, CONCURRENT, MAX_EPOCHS = 4, 2, 5


def trial_epochs(exp_dir: Path) -> dict[str, list[int]]:
    """Epochs each trial reported, in order, from its result.json (one line per tune.report)."""
    epochs = {}
    for result in exp_dir.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        epochs[result.parent.name] = [r["epoch"] for r in lines]
    return epochs


def finished_trials(exp_dir: Path) -> set[str]:
    """Trials Tune's saved experiment state calls TERMINATED: what a resumed search must not run again.
    (A trial whose last result says done, killed before the state was saved, is resumed by Tune.)"""
    states = sorted(exp_dir.glob("experiment_state-*.json")) if exp_dir.is_dir() else []
    if not states:
        return set()
    try:
        trials = [json.loads(entry[0]) for entry in json.loads(states[-1].read_text())["trial_data"]]
    except (ValueError, KeyError, IndexError):
        return set()  # being written: look again
    return {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """One search, SIGKILLed (driver, local Ray and trial workers together) once a trial has finished
    and an unfinished one has a checkpoint (the state both tests need, waited for, never hoped for);
    each test resumes its own copy of what the kill left. Yields (work folder, command)."""
    from cifar_core.data import write_synthetic

    tmp = tmp_path_factory.mktemp("killed")
    write_synthetic(tmp / "data", n_train=1500, n_test=100, seed=0)
    (tmp / "space.yaml").write_text(yaml.safe_dump(SPACE))
    with pytest.MonkeyPatch.context() as mp:
        ray_tmp = f"/tmp/rk{os.getpid()}"
        for key, value in {"RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0",
                           "HOME": str(tmp), "TUNE_GLOBAL_CHECKPOINT_S": "0"}.items():  # state saved at every step
            mp.setenv(key, value)
        kill_when(tune_command(tmp / "results", tmp), tmp / "results" / "tune" / "killed", tmp / "first.log",
                  finished_and_checkpointed)
        time.sleep(1)  # let the killed processes' files settle
        yield tmp
    shutil.rmtree(ray_tmp, ignore_errors=True)


def tune_command(results: Path, tmp: Path) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "tune", "--experiment", "killed", "--space", str(tmp / "space.yaml"),
            "--num-samples", str(TRIALS), "--max-epochs", str(MAX_EPOCHS), "--grace-period", str(MAX_EPOCHS),
            "--max-concurrent", str(CONCURRENT),
            "--cpus-per-trial", "0.5", "--batch-size", "50", "--allow-synthetic", "--data-dir", str(tmp / "data"),
            "--results-dir", str(results)]


def copy_of_killed(killed: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """(experiment dir, command) of a copy of the killed search's results, as a moved volume."""
    shutil.copytree(killed / "results", tmp_path / "results")
    return tmp_path / "results" / "tune" / "killed", tune_command(tmp_path / "results", killed)


def checkpointed_unfinished(exp_dir: Path) -> list[str]:
    """Trials with a checkpoint and at least one epoch still to run. Judged by the checkpoint's own
    number, not by Tune's saved state alone: that state lags, and a trial that has just finished
    would count as unfinished at the kill (two trials at a time run in step)."""
    done = finished_trials(exp_dir)

    def last_checkpoint(trial: Path) -> int:  # checkpoint_00000k: after epoch k + 1
        return max((int(c.name.rpartition("_")[2]) for c in trial.glob("checkpoint_*")), default=-1)

    return sorted(d.name for d in exp_dir.iterdir()
                  if d.is_dir() and d.name not in done and 0 <= last_checkpoint(d) < MAX_EPOCHS - 1)


def finished_and_checkpointed(exp_dir: Path) -> bool:
    """A finished trial, and two unfinished ones with a checkpoint: one to lose, one to resume."""
    return exp_dir.is_dir() and bool(finished_trials(exp_dir)) and len(checkpointed_unfinished(exp_dir)) >= 2


def freeze(root: int) -> list[int]:
    """SIGSTOP `root` and every process below it, looked up until no new one appears: nothing writes
    while the test reads. (Ray's processes are the driver's children but not all in its process group.)"""
    stopped: list[int] = []
    todo = [root]
    while todo:
        signal_each(todo, signal.SIGSTOP)
        stopped += todo
        todo = [pid for pid in descendants(root) if pid not in stopped]
    return stopped


def kill_when(command: list[str], exp_dir: Path, log: Path, ready, timeout_s: float = 1200) -> None:
    """Start the driver in its own process group; SIGKILL it and every process below it once
    `ready(exp_dir)` holds with all of them frozen. (Read while they ran, the files changed before the
    kill landed: a worker persisted its last checkpoint 0.4 s after the state the check had read.)"""
    with open(log, "wb") as out:
        driver = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                  cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + timeout_s
    stopped: list[int] = []
    try:
        while True:
            if ready(exp_dir):
                stopped = freeze(driver.pid)
                if ready(exp_dir):  # with nothing running: exactly what the kill leaves
                    break
                signal_each(stopped, signal.SIGCONT)
                stopped = []
            if driver.poll() is not None:
                pytest.fail(f"the search ended (rc {driver.returncode}) before it could be killed:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"not ready to kill after {timeout_s} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
    finally:
        # The driver, Ray's local cluster and the trial workers all die together, as in a lost pod.
        signal_each(stopped, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):  # already gone: the failure above says why
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()


@pytest.mark.timeout(RERUN_TIMEOUT_S + 1200)  # and the killed search of the fixture
def test_a_killed_search_resumes_each_trial_where_it_can_and_completes(tmp_path, killed):
    """The same command after the kill: finished trials run not an epoch more, a trial with its
    checkpoint continues from its epoch, and a trial whose checkpoint is gone starts over. (Tune
    deletes a trial's previous checkpoint before it snapshots the experiment state; a kill in between
    leaves a state naming a checkpoint that is gone: simulated by deleting it.)"""
    exp_dir, tune_command = copy_of_killed(killed, tmp_path)
    done_before, epochs_before = finished_trials(exp_dir), trial_epochs(exp_dir)
    lost, kept = checkpointed_unfinished(exp_dir)[:2]
    assert not (exp_dir / "summary.json").exists() and len(done_before) < TRIALS
    for checkpoint in (exp_dir / lost).glob("checkpoint_*"):
        shutil.rmtree(checkpoint)

    rerun = subprocess.run(tune_command, capture_output=True, text=True, timeout=RERUN_TIMEOUT_S,
                           cwd=Path(__file__).resolve().parents[1])
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "resuming experiment killed" in rerun.stderr
    # Where Tune's saved state still named the deleted checkpoint, Tune's own restarts fail to restore
    # it and the search restarts that trial from scratch; otherwise Tune started it afresh itself.
    failed_restore = "ImplicitFunc.restore()" in rerun.stderr
    assert not failed_restore or "restarting from scratch trials whose checkpoint was lost" in rerun.stderr

    epochs_after = trial_epochs(exp_dir)
    for trial in done_before:  # finished before the kill: not a single epoch more
        assert epochs_after[trial] == epochs_before[trial], trial
    assert epochs_after[kept][: len(epochs_before[kept])] == epochs_before[kept]  # continued, not redone
    for trial, epochs in epochs_after.items():  # every trial counts its epochs once, from 1
        assert epochs == list(range(1, len(epochs) + 1)), f"{trial} reported epochs {epochs}"
    with open(exp_dir / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == TRIALS and {r["status"] for r in rows} == {"TERMINATED"}, [(r["trial_id"], r["status"]) for r in rows]
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["complete"] and summary["trials"] == TRIALS and summary["errored"] == 0
    assert f"{TRIALS} trials ({TRIALS} TERMINATED)" in rerun.stdout
