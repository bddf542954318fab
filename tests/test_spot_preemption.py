"""A spot GPU node preempted mid-stage, on a real multi-node Ray cluster (ray.cluster_utils.Cluster):
report B's recipe, two seeds sharing the only GPU node as the full profile places them (half a GPU
each), loses that node after a run's first checkpoint; Ray runs the lost units again on the node that
replaces it, they resume from their last checkpoints, and the stage ends as an uninterrupted run of
the same command does. The GPUs are declared; training stays on the CPU (--device cpu)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ray_cluster import TIMEOUT_S, cifar, finish, replace_node, uninterrupted, wait_until

pytestmark = pytest.mark.slow  # a Ray cluster of four raylets, training through a node loss

STEPS = 25  # 10 steps an epoch on 1,300 images: checkpoints at steps 10 and 20, then the end


def interrupted_run(results: Path) -> str | None:
    """A training run of the stage that has checkpointed an epoch and not reached its last step."""
    for metrics in (results / "train").glob("*/metrics.jsonl"):
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        if rows and rows[-1]["step"] < STEPS and (metrics.parent / "last.pt").exists():
            return metrics.parent.name
    return None


def outcome(results: Path) -> dict:
    """Everything the stage measured, without the timings and places any two runs differ in."""
    summary = json.loads((results / "recipe" / f"report-b-s{STEPS}" / "summary.json").read_text())
    runs = {}
    for row in summary["models"]:
        metrics = (results / "train" / row["run"] / "metrics.jsonl").read_text().splitlines()
        runs[row["run"]] = {"curve": row["test_curve"], "test_top1": row["test_top1"], "loss": row["final_train_loss"],
                            "rows": [{k: v for k, v in json.loads(line).items() if not k.endswith("time_s")} for line in metrics]}
    return {"by_model": summary["by_model"], "runs": runs}


def test_a_gpu_stage_whose_spot_node_is_preempted_finishes_as_if_it_never_was(tmp_path, cluster_env, cluster):
    from cifar_core.data import write_synthetic

    data = tmp_path / "data"
    write_synthetic(data, n_train=1300, n_test=100, seed=0)
    spot = cluster.add_node(num_cpus=2, num_gpus=1)  # the only GPU node: both seeds' units go there
    cluster.wait_for_nodes()
    args = ["retrain", "--recipe", "report-b", "--steps", str(STEPS), "--seeds", "0,1", "--eval-every", "10",
            "--cpus", "1", "--gpus", "0.5", "--device", "cpu", "--allow-synthetic", "--data-dir", str(data)]
    results, log = tmp_path / "results", tmp_path / "stage.log"
    process = cifar([*args, "--results-dir", str(results)], cluster_env, cluster, log)
    reference = tmp_path / "reference"
    in_one_process = uninterrupted(args, cluster_env, reference)  # the same command, meanwhile
    run = wait_until(lambda: interrupted_run(results), "a run's first checkpoint", process, log)
    replace_node(cluster, spot, num_gpus=1)  # preempted; the cloud starts another spot node
    output = finish(process, log)
    assert "will be retried" in output or "dead" in output, output[-2000:]

    summary = json.loads((results / "recipe" / f"report-b-s{STEPS}" / "summary.json").read_text())
    places = {row["run"]: [p["node_id"] for p in row["ran_on"]] for row in summary["models"]}
    assert spot.node_id not in places[run], places  # it ended on the replacement, from its checkpoint
    assert in_one_process.wait(timeout=TIMEOUT_S) == 0, in_one_process.stderr.read()[-2000:]
    measured = outcome(results)
    assert len(measured["runs"]) == 2 and measured == outcome(reference)
