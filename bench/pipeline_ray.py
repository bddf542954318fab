"""The smoke pipeline scheduled by a 3-node Ray cluster against the same pipeline run stage by stage
in one process. Prints one JSON object.

Per repeat, interleaved, each a fresh `cifar pipeline` process on a fresh results directory (the
data set, made once, is shared):
- ours:     `cifar pipeline` with RAY_ADDRESS at a local 3-node cluster (`ray.cluster_utils.Cluster`:
            a head with no CPUs, two worker nodes of `--cpus-per-node` CPUs each); stages are Ray
            tasks, the GAN trains beside the search.
- baseline: `cifar pipeline --no-ray`: the stages one after another in that process (the search
            still runs its trials on a local Ray: that is Tune).
Measured:
- wall time of each, and the gain (baseline / ours);
- Ray's share of our pipeline's wall time (inside the command, after Python and its imports
  started; those cost the baseline the same): 1 - ideal / wall. The ideal is a lower bound on what
  any scheduler could do with the work each task measured inside itself: the longer of the critical
  path through the stages' dependencies (each stage as long as its slowest task; the search as its
  trials' work spread over the trials it may run at once, not its own wall time, which includes
  waiting for CPUs the GAN holds and Tune's own start and finish) and all the work spread over the
  cluster's CPUs. What is left is joining Ray, scheduling, Tune's controller, worker start-up (each
  new worker process imports torch: `import_s`, measured once here), argument and result transfer,
  and CPUs left idle by the order Ray happened to start things in;
- the time saved by running the GAN (and FID) beside the search: baseline wall - ours.

    python bench/pipeline_ray.py [--repeats 3] [--cpus-per-node 1] [--gan-steps 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cifar_core.layout import Results  # noqa: E402 (the checkout's, whichever directory runs the bench)
from cifar_core.summaries import PipelineSummary, SearchSummary  # noqa: E402


def overrides(work: Path, gan_steps: int) -> list[str]:
    """The smoke profile, shrunk so one repeat takes about a minute on a 2-core CPU."""
    space = work / "space.yaml"
    space.write_text(yaml.safe_dump({"models": [{"names": ["tinycnn"]}], "fixed": {"run.eval_batch_size": 500},
                                     "optimizers": {"sgd": {"lr": {"loguniform": [0.01, 0.1]}, "momentum": 0.9}}}))
    values = [f"tune.space={space}", "tune.num_samples=4", "tune.max_concurrent=2", "tune.max_epochs=2",
              "tune.batch_size=50", "retrain.top_k=2", "retrain.epochs=2", f"gan.steps={gan_steps}",
              "gan.batch_size=32", "gan.log_every=10", "gan.sample_every=30", "gan.checkpoint_every=30",
              "fid.if_no_weights=skip", "fid-b.if_no_weights=skip", f"fid-b.step={gan_steps}",
              "recipe-a.models=[cnn6]", "recipe-a.steps=4", "ablation.models=[cnn6]", "recipe-b.seeds=[0]",
              "recipe-b.steps=10", "recipe-b.eval_every=5"]
    return [arg for value in values for arg in ("--set", value)]


def run_pipeline(args: list[str], env: dict, data: Path, results: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "jobs.cli", "pipeline", "--profile", "smoke", "--device", "cpu",
               "--data-dir", str(data), "--results-dir", str(results), *args]
    start = time.monotonic()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"pipeline failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, PipelineSummary.read_in(Results(results).pipeline("smoke")).to_json()


def ideal_schedule(summary: dict, results: Path, cpus: int) -> dict:
    """A lower bound on the wall time any scheduler could reach with the measured work (see the docstring)."""
    from cifar_core.stages import all_stages

    records = {s["stage"]: s for s in summary["stages"]}
    search = SearchSummary.read_in(Results(results).tune_experiment("smoke")).to_json()

    def tasks(name: str) -> list[float]:
        return [place.get("work_s") or 0.0 for place in records[name].get("ran_on") or [] if "work_s" in place]

    at_once = min(summary["config"]["tune"]["max_concurrent"], cpus)
    longest = {"tune": search["trial_time_s"] / at_once}
    finish: dict[str, float] = {}
    for stage in all_stages():  # in an order that respects `needs`
        start = max((finish[n] for n in stage.needs if n in finish), default=0.0)
        finish[stage.name] = start + longest.get(stage.name, max(tasks(stage.name), default=0.0))
    report = max(place["work_s"] for place in summary["report_ran_on"])
    critical = max(finish.values()) + report
    total_work = sum(sum(tasks(s.name)) for s in all_stages() if s.name != "tune") + search["trial_time_s"] + report
    return {"pipeline_wall_s": summary["wall_time_s"], "ray_start_s": summary["ray_start_s"],
            "search_wall_s": search["wall_time_s"], "search_trial_work_s": search["trial_time_s"],
            "stage_finish_s": {k: round(v, 2) for k, v in finish.items()}, "report_s": report,
            "critical_path_s": round(critical, 2), "all_work_s": round(total_work, 2),
            "ideal_s": round(max(critical, total_work / cpus), 2)}


def import_seconds(repeats: int = 3) -> float:
    """What a fresh worker process pays before its first task: Python, torch and our stages."""
    walls = []
    for _ in range(repeats):
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", "import torch, cifar_core.pipeline, cifar_core.engine"], cwd=ROOT,
                       check=True)
        walls.append(time.monotonic() - start)
    return round(statistics.median(walls), 2)


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": [round(v, 3) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus-per-node", type=int, default=1, help="CPUs of each of the two worker nodes")
    parser.add_argument("--gan-steps", type=int, default=60)
    args = parser.parse_args()

    from ray.cluster_utils import Cluster

    from cifar_core.data import write_synthetic

    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    ray_tmp = f"/tmp/pb{os.getpid()}"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0"}
    os.environ.update({k: env[k] for k in ("RAY_AUTH_MODE", "RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED")})
    cluster = None
    try:
        write_synthetic(work / "data", n_train=2000, n_test=500, seed=0)
        extra = overrides(work, args.gan_steps)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0}, connect=False)
        for _ in range(2):
            cluster.add_node(num_cpus=args.cpus_per_node)
        cluster.wait_for_nodes()
        ours, baseline, shares, paths = [], [], [], []
        for repeat in range(args.repeats):
            wall, summary = run_pipeline(extra, {**env, "RAY_ADDRESS": cluster.address}, work / "data",
                                         work / f"ours-{repeat}")
            path = ideal_schedule(summary, work / f"ours-{repeat}", cpus=2 * args.cpus_per_node)
            ours.append(wall)
            paths.append(path)
            shares.append(1 - path["ideal_s"] / summary["wall_time_s"])
            wall, _ = run_pipeline([*extra, "--no-ray"], env, work / "data", work / f"baseline-{repeat}")
            baseline.append(wall)
        result = {
            "benchmark": "pipeline_ray",
            "machine": f"{platform.machine()} {os.cpu_count()} cores ({platform.processor() or platform.node()})",
            "cluster": {"head_cpus": 0, "workers": 2, "cpus_per_worker": args.cpus_per_node},
            "repeats": args.repeats,
            "ours_wall_s": spread(ours),
            "baseline_in_process_wall_s": spread(baseline),
            "speedup": round(statistics.median(baseline) / statistics.median(ours), 3),
            "saved_by_gan_beside_search_s": round(statistics.median(baseline) - statistics.median(ours), 2),
            "ray_share_of_wall": spread(shares),
            "ray_share_target": 0.15,
            "import_s": import_seconds(),
            "schedule_median_run": sorted(paths, key=lambda p: p["ideal_s"])[len(paths) // 2],
        }
        print(json.dumps(result, indent=2))
    finally:
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
