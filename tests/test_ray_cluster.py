"""Node loss and Ray's failures on a real multi-node Ray cluster (Ray's own `ray.cluster_utils.Cluster`:
a head that runs nothing and worker nodes, each a separate raylet on this machine), with nodes
removed while work runs on them. Every command runs as a user would run it: `cifar ...` in a new
process with RAY_ADDRESS pointing at the cluster. GPUs are declared on nodes where a test needs them
(Ray then schedules GPU shares for real); the training itself stays on the CPU (--device cpu)."""

from __future__ import annotations

import csv
import json
import re
import signal
from pathlib import Path

import pytest
import yaml
from ray_cluster import TIMEOUT_S, cifar, finish, replace_node, uninterrupted, wait_until, worker_ids

pytestmark = pytest.mark.slow  # a Ray cluster of three raylets, and training with node loss


# --- (a) a search survives the loss of a node ---------------------------------------------------
def test_search_survives_a_lost_node_every_trial_finishes_its_epochs(tmp_path, cluster_env, cluster, cluster_data):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"models": [{"names": ["tinycnn"]}], "fixed": {"run.eval_batch_size": 500},
                                     "optimizers": {"sgd": {"lr": {"choice": [0.1, 0.03]}, "momentum": 0.9}}}))
    results, log = tmp_path / "results", tmp_path / "tune.log"
    # Tune's result rows reach the volume at every step (by default every 10 s): the test reads a running
    # trial's node from them.
    env = {**cluster_env, "TUNE_GLOBAL_CHECKPOINT_S": "0"}
    process = cifar(["tune", "--experiment", "loss", "--space", str(space), "--num-samples", "2", "--max-epochs", "3",
                     "--grace-period", "3", "--max-concurrent", "2", "--batch-size", "50", "--device", "cpu",
                     "--allow-synthetic", "--data-dir", str(cluster_data), "--results-dir", str(results)], env, cluster,
                    log)
    exp_dir = results / "tune" / "loss"
    # Mid-trial: a trial has checkpointed and reported its first epoch and is training its second.
    node_id = wait_until(lambda: running_trial_node(exp_dir), "a trial's first epoch", process, log)
    lost = next(node for node in cluster.worker_nodes if node.node_id == node_id)
    replace_node(cluster, lost)
    finish(process, log)

    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["status_counts"] == {"TERMINATED": 2}, summary["status_counts"]
    with open(exp_dir / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    assert [int(t["epochs"]) for t in trials] == [3, 3]
    nodes = [t["nodes"].split() for t in trials]
    assert any(lost.node_id in n for n in nodes), f"no trial ran on the node that was removed: {nodes}"
    moved = [n for n in nodes if lost.node_id in n and len(n) > 1]
    assert moved, f"no trial continued on another node after its node was lost: {nodes}"
    assert set(summary["nodes"]) <= worker_ids(cluster) | {lost.node_id}  # never on the head


def epochs_committed(exp_dir: Path) -> int:
    """Epochs the trials have trained, by their own run directories (one metrics row per epoch)."""
    return sum(len([line for line in p.read_text().splitlines() if line.strip()])
               for p in exp_dir.glob("trials/*/metrics.jsonl"))


def running_trial_node(exp_dir: Path) -> str | None:
    """The node of a trial that has checkpointed an epoch (its own last.pt) but not finished (None
    while there is none)."""
    for last in exp_dir.glob("trials/*/last.pt"):
        result = exp_dir / last.parent.name / "result.json"  # Tune's rows of that trial
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()] if result.exists() else []
        if rows and not rows[-1].get("done") and not (last.parent / "complete.json").exists():
            return rows[-1].get("node_id")
    return None


# --- (c) a training run survives the loss of its node ------------------------------------------
def test_gan_whose_node_dies_finishes_elsewhere_with_the_same_metrics(tmp_path, cluster_env, cluster, cluster_data):
    """`cifar gan train` with RAY_ADDRESS is one Ray task; its node dies mid-run, Ray runs it again
    on another node, it resumes from last.pt, and the run ends as an uninterrupted one does."""
    # Only one node has a GPU: the run (one GPU share) must go there, and after that node is lost,
    # to the fresh GPU node that replaces it. The GPUs are declared; training stays on the CPU.
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    args = ["gan", "train", "--run-name", "g", "--steps", "60", "--batch-size", "32", "--ngf", "8", "--ndf", "8",
            "--log-every", "5", "--checkpoint-every", "10", "--sample-every", "30", "--device", "cpu",
            "--data-dir", str(cluster_data), "--cpus", "1", "--gpus", "1"]
    results, log = tmp_path / "results", tmp_path / "gan.log"
    process = cifar([*args, "--results-dir", str(results)], cluster_env, cluster, log)
    # The same command run uninterrupted, in one process (meanwhile), gives the same run.
    reference = tmp_path / "reference"
    in_one_process = uninterrupted(args, cluster_env, reference)
    run_dir = results / "gan" / "g"
    wait_until(lambda: (run_dir / "checkpoints" / "step_10.pt").exists(), "the run's first snapshot", process, log)
    replace_node(cluster, gpu_node, num_gpus=1)
    output = finish(process, log)
    assert "will be retried" in output or "dead" in output, output[-2000:]
    (place,) = json.loads((run_dir / "summary.json").read_text())["ran_on"]
    assert place["node_id"] in worker_ids(cluster) and place["node_id"] != gpu_node.node_id and place["work_s"] > 0

    assert in_one_process.wait(timeout=TIMEOUT_S) == 0, in_one_process.stderr.read()[-2000:]
    assert gan_rows(run_dir) == gan_rows(reference / "gan" / "g")
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step_*.pt")) == \
           sorted(p.name for p in (reference / "gan" / "g" / "checkpoints").glob("step_*.pt"))


def gan_rows(run_dir: Path) -> list[dict]:
    """The run's metrics rows without the timings, which differ between any two runs."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.endswith("time_s")} for row in rows]


def test_work_no_node_can_run_is_refused_before_it_starts(tmp_path, cluster_env, cluster, cluster_data, monkeypatch):
    """More CPUs or GPUs than any node has (or any node the deployment says an autoscaler may add)
    would wait forever in Ray's queue: refused at once, with one line saying what the largest node has."""
    import ray

    from cifar_core.errors import ConfigError
    from cifar_core.execution.capacity import AUTOSCALED_WORKERS_ENV, check_feasible
    from cifar_core.execution.resources import Resources

    log = tmp_path / "tune.log"
    process = cifar(["tune", "--experiment", "big", "--cpus-per-trial", "100", "--allow-synthetic", "--data-dir", str(cluster_data),
                     "--results-dir", str(tmp_path / "results")], cluster_env, cluster, log)
    process.wait(timeout=TIMEOUT_S)
    assert process.returncode == 2
    # (The GPU share depends on the GPU nodes earlier tests added: the cluster's GPUs over 16 trials.)
    assert re.search(r"error: each trial asks for 100 CPUs and [0-9.]+ GPUs per task, but no node of this Ray "
                     r"cluster has that much \(the largest has 1 CPUs", log.read_text())

    ray.init(address=cluster.address)
    try:
        with pytest.raises(ConfigError, match="stage retrain asks for 1 CPUs and 2 GPUs"):
            check_feasible({"stage retrain": Resources(cpus=1, gpus=2)})
        # A GPU worker group that an autoscaler grows from zero has no node yet, but counts.
        monkeypatch.setenv(AUTOSCALED_WORKERS_ENV, '[{"cpu": "8", "gpus": 2, "max": 3}]')
        check_feasible({"stage retrain": Resources(cpus=1, gpus=2)})
        monkeypatch.setenv(AUTOSCALED_WORKERS_ENV, "8 cpus")
        with pytest.raises(ConfigError, match="expected a JSON list"):
            check_feasible({"stage retrain": Resources(cpus=1, gpus=2)})
    finally:
        ray.shutdown()


# --- (d) Ray failures inside the one-line contract ---------------------------------------------------
def test_work_whose_gpu_group_never_arrives_fails_after_the_pending_timeout(tmp_path, cluster_env, cluster, cluster_data):
    """The deployment advertises 2-GPU workers an autoscaler may add (so the work is not refused as
    impossible), but none ever comes: the command fails once the work has waited --pending-timeout,
    naming what waits and what the cluster has, instead of waiting for days."""
    group = {**cluster_env, "CIFAR_AUTOSCALED_WORKERS": '[{"cpu": "2", "gpus": 2, "max": 1}]'}
    log = tmp_path / "gan.log"
    process = cifar(["gan", "train", "--run-name", "w", "--steps", "2", "--cpus", "1", "--gpus", "2",
                     "--pending-timeout", "4", "--device", "cpu", "--data-dir", str(cluster_data),
                     "--results-dir", str(tmp_path / "results")], group, cluster, log)
    process.wait(timeout=TIMEOUT_S)
    errors = [line for line in log.read_text().splitlines() if line.startswith("error: ")]
    assert process.returncode == 2 and len(errors) == 1, log.read_text()[-3000:]
    assert re.search(r"error: gan asking for 1 CPUs and 2 GPUs has waited [0-9]+ s for a node that can run it "
                     r"\(--pending-timeout 4 s\); the cluster's nodes have .*0 GPUs", errors[0]), errors[0]
    assert not (tmp_path / "results" / "gan" / "w").exists()  # it never started


def test_single_stages_refuse_work_no_node_can_run(tmp_path, cluster_env, cluster, cluster_data):
    """The feasibility check of the pipeline and the search, for single stages too: no hang."""
    for args in (["gan", "train", "--run-name", "g", "--cpus", "16"],  # one task (fid takes the same path)
                 ["retrain", "--recipe", "report-b", "--allow-synthetic", "--cpus", "16"]):  # a plan's tasks
        log = tmp_path / "stage.log"
        process = cifar([*args, "--data-dir", str(cluster_data), "--results-dir", str(tmp_path / "results")], cluster_env, cluster, log)
        process.wait(timeout=TIMEOUT_S)
        assert process.returncode == 2, log.read_text()[-2000:]
        assert "but no node of this Ray cluster has that much" in log.read_text().splitlines()[-1]


def test_a_search_stopped_by_sigterm_exits_143_and_resumes(tmp_path, cluster_env, cluster):
    """SIGTERM (what Kubernetes sends before an eviction) stops the search Tune's own way, its state
    saved: 143 and one line, no Ray stack dump; the same command then finishes it. (SIGINT takes the
    same path to 130: test_execution.py.)"""
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"models": [{"names": ["tinycnn"]}], "fixed": {"run.eval_batch_size": 500},
                                     "optimizers": {"sgd": {"lr": {"choice": [0.1, 0.03]}, "momentum": 0.9}}}))
    results, data = tmp_path / "results", tmp_path / "data"
    from cifar_core.data import write_synthetic

    write_synthetic(data, n_train=500, n_test=100, seed=0)  # 400 training images: 4 steps an epoch
    args = ["tune", "--experiment", "stop", "--space", str(space), "--num-samples", "2", "--max-epochs", "2",
            "--grace-period", "2", "--max-concurrent", "2", "--batch-size", "100", "--device", "cpu", "--allow-synthetic",
            "--data-dir", str(data), "--results-dir", str(results)]
    log = tmp_path / "term.log"
    process = cifar(args, cluster_env, cluster, log)
    wait_until(lambda: epochs_committed(results / "tune" / "stop") > 0, "a first epoch", process, log)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=TIMEOUT_S)
    output = log.read_text()
    assert process.returncode == 143, output[-3000:]
    assert output.splitlines()[-1].startswith("preempted: ") and "SIGTERM received" not in output, output[-2000:]
    assert json.loads((results / "tune" / "stop" / "summary.json").read_text())["complete"] is False
    finish(cifar(args, cluster_env, cluster, tmp_path / "last.log"), tmp_path / "last.log")
    summary = json.loads((results / "tune" / "stop" / "summary.json").read_text())
    assert summary["complete"] and summary["status_counts"] == {"TERMINATED": 2} and summary["epochs_run"] == 4
