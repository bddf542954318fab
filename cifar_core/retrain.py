"""`retrain_from_tune`: report A's section V. The best configs of a search, retrained on every
training image, then scored on the test set.

By default the best trial of each of the k best architectures is retrained, as report A retrained
three different models; `select="trials"` takes the k best trials whatever their architecture.
Each config from RESULTS/tune/<experiment>/top_k.json becomes a normal training run
(RESULTS/train/<experiment>-<model>-<trial>/, resumable like any `cifar train` run) with
`run.full_train` on; with Ray the k runs are k tasks at once, one GPU each where there are GPUs.
RESULTS/retrain/<experiment>/ then holds summary.json, loss.png (training loss per model, report A's
figure 3) and table.md (test accuracy against report A and the published results it cites).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_core.atomic import atomic_write_json, atomic_write_text, read_json, read_jsonl
from cifar_core.config import TrainConfig
from cifar_core.errors import ConfigError
from cifar_core.execution import InProcess, OnRay, Resources, ran_on
from cifar_core.figures import pyplot, save_figure
from cifar_core.names import check_name
from cifar_core.progress import log
from cifar_core.runs import train_run

# Report A, sections V-VII: test top-1 (%) and parameter counts of its three retrained models.
REPORT_A = [("CNN6", 60.1, 2_494_022), ("CNN7", 61.1, 3_004_917), ("CNN2", 58.7, 10_393_946)]
# The published CIFAR-100 results (trained on CIFAR-100 only) that report A compares against.
PUBLISHED = [
    ("EXACT: How to Train Your Accuracy", 82.68),
    ("Differentiable Spike: Rethinking Gradient-Descent for Training Spiking Neural Networks", 74.24),
    ("Beta-Rank: A Robust Convolutional Filter Pruning Method For Imbalanced Medical Image Analysis", 74.01),
    ("Deep Residual Networks with Exponential Linear Unit", 73.5),
]


def retrain_dir(results_dir: str | Path, experiment: str) -> Path:
    return Path(results_dir) / "retrain" / check_name(experiment, "experiment name")


# Which of a search's best trials are retrained. Report A retrained three different architectures,
# the best trial of each; "trials" takes the best trials whatever their architecture.
SELECTIONS = ("architectures", "trials")


def selected_configs(results_dir: str | Path, experiment: str, top_k: int,
                     select: str = "architectures") -> list[dict[str, Any]]:
    """The `top_k` entries of the search's top_k.json to retrain, best first."""
    if top_k < 1:
        raise ConfigError(f"top_k = {top_k} must be >= 1")
    if select not in SELECTIONS:
        raise ConfigError(f"unknown selection {select!r} (known: {', '.join(SELECTIONS)})")
    path = Path(results_dir) / "tune" / check_name(experiment, "experiment name") / "top_k.json"
    if not path.is_file():
        raise ConfigError(f"no tune results at {path}: run `cifar tune --experiment {experiment}` first")
    listed = read_json(path)
    top = listed.get("top_architectures") if select == "architectures" else listed.get("top")
    if not isinstance(top, list):
        raise ConfigError(f"{path} has no {'top_architectures' if select == 'architectures' else 'top'} list: "
                          f"rerun `cifar tune --experiment {experiment}` to re-summarise the search")
    if top_k > len(top):
        what = "architectures" if select == "architectures" else "configs"
        raise ConfigError(
            f"{path} lists {len(top)} {what}, fewer than --top-k {top_k}: rerun "
            f"`cifar tune --experiment {experiment} --top-k {top_k}` (a finished search is only re-ranked)"
            + (", or retrain the best trials whatever their architecture (--select trials)" if select == "architectures" else "")
        )
    return top[:top_k]


def retrain_config(entry: dict[str, Any], epochs: int, device: str) -> TrainConfig:
    """The searched config, on all training images, for `epochs` epochs."""
    return TrainConfig.from_dict(entry["train_config"]).with_overrides(
        {"run.full_train": True, "run.epochs": epochs, "run.device": device}
    )


def run_name(experiment: str, entry: dict[str, Any]) -> str:
    """Named after the trial it retrains, so the same config is one run whichever way it was selected."""
    return f"{experiment}-{entry['params']['model.name']}-{entry['trial_id']}"


@dataclass(frozen=True)
class RetrainPlan:
    """One retraining: which search, how many of its best configs, chosen how, for how long."""

    experiment: str
    top_k: int = 3
    epochs: int = 100
    select: str = "architectures"

    def settings(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "top_k": self.top_k, "epochs": self.epochs, "select": self.select}


def retrain_from_tune(experiment: str, data_dir: str | Path, results_dir: str | Path, top_k: int = 3,
                      epochs: int = 100, device: str = "auto", select: str = "architectures",
                      work: InProcess | OnRay | None = None, resources: Resources | None = None) -> dict[str, Any]:
    """Retrain (or resume) the top configs and write summary.json, loss.png and table.md.

    Each config is one unit of work for `work` (default: this process, one after another; on Ray,
    one task per config, all at once, each with `resources`).
    """
    plan = RetrainPlan(experiment, top_k, epochs, select)
    work = work or InProcess()
    resources = resources or Resources()
    selected_configs(results_dir, experiment, top_k, select)  # a missing or short search fails here, before any task
    device = resources.device(device)
    runs = [work.submit(retrain_rank, resources, plan, rank, Path(data_dir), Path(results_dir), device, work.lock_wait_s)
            for rank in range(1, top_k + 1)]
    return collect_retrain(plan, Path(results_dir), *[work.get(run) for run in runs])


def retrain_rank(plan: RetrainPlan, rank: int, data_dir: Path, results_dir: Path, device: str,
                 lock_wait_s: float = 0.0) -> dict[str, Any]:
    """Retrain the rank-th selected config (1-based) as a normal training run; its row of the summary."""
    start = time.monotonic()
    entry = selected_configs(results_dir, plan.experiment, plan.top_k, plan.select)[rank - 1]
    name = run_name(plan.experiment, entry)
    log(f"retraining rank {rank}: {entry['params']['model.name']} for {plan.epochs} epochs on all training images ({name})")
    run = train_run(retrain_config(entry, plan.epochs, device), data_dir, results_dir, run_name=name,
                    resume=True, evaluate_test=True, wait_s=lock_wait_s)
    return {**model_row(entry, run), "ran_on": ran_on(device, since=start)}


def collect_retrain(plan: RetrainPlan, results_dir: Path, *rows: dict[str, Any]) -> dict[str, Any]:
    """summary.json, loss.png and table.md from the retrained runs' rows."""
    out = retrain_dir(results_dir, plan.experiment)
    models = list(rows)
    plot_training_loss(out / "loss.png", models, plan.experiment)
    atomic_write_text(out / "table.md", comparison_table(models, plan.experiment))
    summary = build_summary(plan.settings(), models, complete=True)
    summary["ran_on"] = [m["ran_on"] for m in models]  # one task per model
    atomic_write_json(out / "summary.json", summary)
    return summary


def model_row(entry: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    return {
        "rank": entry["rank"],
        "model": run["model"],
        "optimizer": run["optimizer"],
        "params": entry["params"],
        "tune_val_acc": entry["best_val_acc"],
        "test_top1": run["test"]["top1"],
        "test_top5": run["test"]["top5"],
        "test_loss": run["test"]["loss"],
        "parameters": run["parameters"],
        "epochs": run["epochs"],
        "train_time_s": run["train_time_s"],  # all epochs, across resumes
        "wall_time_s": run["wall_time_s"],  # this invocation
        "synthetic_data": run["synthetic_data"],
        "run_dir": run["run_dir"],
    }


def build_summary(settings: dict[str, Any], models: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
    return {
        **settings,
        "complete": complete,
        "models": models,
        "best": max(models, key=lambda m: m["test_top1"])["model"] if models else None,
        "report_a": [{"model": m, "test_top1_pct": acc, "parameters": n} for m, acc, n in REPORT_A],
        "published": [{"title": t, "test_top1_pct": acc} for t, acc in PUBLISHED],
        "files": {"loss": "loss.png", "table": "table.md"} if complete else {},
    }


def plot_training_loss(path: Path, models: list[dict[str, Any]], experiment: str) -> None:
    """Training loss per epoch of each retrained model (no validation: all images train)."""
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for m in models:
        history = read_jsonl(Path(m["run_dir"]) / "metrics.jsonl")
        label = f"rank {m['rank']}: {m['model']} ({m['test_top1'] * 100:.1f}% test)"
        ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], marker="o", ms=3, label=label)
    ax.set(xlabel="epoch", ylabel="training cross-entropy loss", title=f"{experiment}: full-data retraining")
    if models:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def comparison_table(models: list[dict[str, Any]], experiment: str) -> str:
    lines = [
        f"# Test accuracy after full-data retraining: {experiment}",
        "",
        "| Model | Source | Optimizer | Parameters | Epochs | Test top-1 (%) | Test top-5 (%) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for m in models:
        lines.append(f"| {m['model']} (rank {m['rank']}) | this run | {_optimizer_text(m['params'])} | "
                     f"{m['parameters']:,} | {m['epochs']} | {m['test_top1'] * 100:.2f} | {m['test_top5'] * 100:.2f} |")
    for name, acc, params in REPORT_A:
        lines.append(f"| {name} | report A | SGD | {params:,} | 100 | {acc:.1f} | |")
    for title, acc in PUBLISHED:
        lines.append(f"| {title} | published (cited by report A) | | | | {acc:.2f} | |")
    if any(m["synthetic_data"] for m in models):
        lines += ["", "**These runs used the synthetic stand-in dataset: their accuracies are not CIFAR-100 results.**"]
    return "\n".join(lines) + "\n"


def _optimizer_text(params: dict[str, Any]) -> str:
    shown = ", ".join(f"{k.removeprefix('optim.')}={v:.3g}" for k, v in sorted(params.items())
                      if k.startswith("optim.") and k != "optim.name" and isinstance(v, float))
    return f"{params['optim.name']} ({shown})" if shown else params["optim.name"]
