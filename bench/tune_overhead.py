"""How much of a Tune search is Ray, and how many epochs ASHA saves. Prints one JSON object.

1. overhead: N one-epoch trials run one at a time (every core to the trial). Ray's share of the
   wall time = 1 - (sum of the trials' own time, Tune's time_total_s) / wall. Also given against
   the training loops alone (epoch_time_s), which counts data loading and evaluation as overhead too.
2. asha: N trials with max_t epochs, grace period 1, reduction factor 2: epochs run vs the
   N * max_t a search without early stopping would run.

Data is a synthetic set in the official format (written to a temporary folder); the model is the
small `tinycnn` unless --model says otherwise. Ray runs locally.

    python bench/tune_overhead.py [--trials 8] [--n-train 10000] [--asha-trials 24] [--max-epochs 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import yaml


def space_file(folder: Path, model: str) -> Path:
    """A one-architecture space whose learning rates spread val accuracy (so ASHA can rank trials)."""
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump({
        "description": "bench: one model, sgd over a wide lr range",
        "models": [{"names": [model]}],
        "optimizers": {"sgd": {"lr": {"loguniform": [1e-4, 0.3]}, "momentum": 0.9}},
        "fixed": {"run.eval_batch_size": 1000},
    }))
    return path


def run_search(name: str, settings_kw: dict, data: Path, results: Path) -> tuple[dict, float]:
    from cifar_core.tune.search import TuneSettings, run_tune

    start = time.monotonic()
    summary = run_tune(TuneSettings(experiment=name, **settings_kw), data, results, allow_synthetic=True)
    return summary, time.monotonic() - start


def overhead(summary: dict, wall_s: float) -> dict:
    fit_wall = summary["wall_time_s"]  # Ray start, the search, Ray shutdown (no result files)
    return {
        "trials": summary["trials"],
        "wall_s": round(wall_s, 2),
        "search_wall_s": fit_wall,
        "sum_trial_time_s": summary["trial_time_s"],
        "sum_train_loop_s": summary["train_time_s"],
        "ray_overhead_share": round(1 - summary["trial_time_s"] / wall_s, 4),
        "non_training_share": round(1 - summary["train_time_s"] / wall_s, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="one-epoch trials for the overhead run")
    parser.add_argument("--n-train", type=int, default=10_000, help="synthetic training images (1/5 validate)")
    parser.add_argument("--asha-trials", type=int, default=24)
    parser.add_argument("--max-epochs", type=int, default=16, help="ASHA max_t for the second run")
    parser.add_argument("--asha-n-train", type=int, default=2_000)
    parser.add_argument("--model", default="tinycnn")
    args = parser.parse_args()

    from cifar_core.data import write_synthetic

    work = Path(tempfile.mkdtemp(prefix="tune-bench-"))
    os.environ.setdefault("RAY_TMPDIR", str(work / "ray"))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        cores = os.cpu_count() or 1
        space = space_file(work, args.model)
        write_synthetic(work / "data", n_train=args.n_train, n_test=1000, seed=0)
        write_synthetic(work / "asha-data", n_train=args.asha_n_train, n_test=500, seed=0)
        common = {"space": str(space), "grace_period": 1, "reduction_factor": 2, "batch_size": 128, "device": "cpu"}
        # One trial at a time with every core: the sum of trial times is what the search would take
        # without Ray, so the remainder of the wall time is Ray's (start, scheduling, result files).
        one_epoch, wall = run_search("overhead", {**common, "num_samples": args.trials, "max_epochs": 1,
                                                  "max_concurrent": 1, "cpus_per_trial": float(cores)},
                                     work / "data", work / "results")
        asha, asha_wall = run_search("asha", {**common, "num_samples": args.asha_trials, "max_epochs": args.max_epochs,
                                              "max_concurrent": cores, "cpus_per_trial": 1.0},
                                     work / "asha-data", work / "results")
        print(json.dumps({
            "machine": {"cpus": cores, "processor": platform.processor() or platform.machine(), "model": args.model},
            "overhead_one_epoch_trials": {**overhead(one_epoch, wall), "n_train": int(args.n_train * 0.8)},
            "asha": {
                "trials": asha["trials"], "max_epochs": args.max_epochs, "n_train": int(args.asha_n_train * 0.8),
                "epochs_run": asha["epochs_run"], "epochs_without_early_stopping": asha["epochs_without_early_stopping"],
                "share_of_full_epochs": round(asha["epochs_run"] / asha["epochs_without_early_stopping"], 4),
                "epochs_histogram": asha["epochs_histogram"], "rungs": asha["rungs"], "wall_s": round(asha_wall, 2),
            },
        }, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
