"""An experiment's results as files: trials.csv, top_k.json, curves.png and the summary.

Everything is read back from the experiment directory (Ray's saved state and each trial's
result.json), so the same code summarises a search that just finished, one that was resumed, and
one that finished long ago. No Ray session is needed.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cifar_core.atomic import atomic_write_json, atomic_write_text
from cifar_core.config import TrainConfig
from cifar_core.figures import pyplot, save_figure
from cifar_core.summaries import SearchSummary, TopTrials
from cifar_core.tune.space import flat_params

FINISHED = ("TERMINATED", "DIVERGED", "ERROR")
# Per epoch: our metrics, and Tune's clock (`timestamp`: when the epoch was reported, in whole seconds;
# `time_this_iter_s`: how long since the previous report), which tells when and where each trial ran,
# except in an epoch `replayed`: reported again by a trial started again, not trained then.
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s", "timestamp",
                "time_this_iter_s", "diverged", "diverged_reason", "node_id", "hostname", "replayed")
CURVES_TOP = 3  # report A's figure 1 shows its best three
TIMESTAMP_RESOLUTION_S = 1.0  # Tune's `timestamp` is whole seconds


@dataclass
class TrialRecord:
    trial_id: str
    # TERMINATED (finished or stopped by ASHA), DIVERGED (its loss became non-finite: a result, not a
    # fault), ERROR (failed even after Tune's restarts), or PENDING/RUNNING if interrupted.
    status: str
    params: dict[str, Any]  # the flat TrainConfig overrides this trial used
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per epoch, in order
    error: str | None = None  # last line of the trial's traceback

    @property
    def epochs(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    @property
    def usable(self) -> bool:
        """A finished or running trial with a validation score: it can be ranked and retrained."""
        return self.status not in ("ERROR", "DIVERGED") and self.best_val_acc is not None

    @property
    def trained(self) -> list[dict[str, Any]]:
        """The epochs whose rows say when and where they were trained (all but those reported again)."""
        return [h for h in self.history if not h.get("replayed")]

    @property
    def nodes(self) -> list[str]:
        """The Ray nodes its epochs ran on, in order of first use (several after a node was lost)."""
        return list(dict.fromkeys(h["node_id"] for h in self.trained if h.get("node_id")))

    @property
    def running(self) -> list[tuple[float, float]]:
        """(start, end) of each epoch the trial ran, from Tune's clock; empty without it."""
        return [(h["timestamp"] - h["time_this_iter_s"], h["timestamp"]) for h in self.trained
                if _finite(h.get("timestamp")) and _finite(h.get("time_this_iter_s"))]

    @property
    def time_s(self) -> float:
        """Seconds of Tune's clock its epochs took (loading and evaluation too), across restarts."""
        return sum(h["time_this_iter_s"] for h in self.trained if _finite(h.get("time_this_iter_s")))

    @property
    def best(self) -> dict[str, Any] | None:
        scored = [h for h in self.history if _finite(h.get("val_acc")) and not h.get("diverged")]
        return max(scored, key=lambda h: h["val_acc"]) if scored else None

    @property
    def best_val_acc(self) -> float | None:
        return self.best["val_acc"] if self.best else None


def load_trial_records(exp_dir: Path) -> list[TrialRecord]:
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(exp_dir))
    frames = analysis.trial_dataframes
    records = []
    for trial in analysis.trials:
        error = trial.get_error() if trial.status == "ERROR" else None
        history = _epoch_history(frames.get(trial.trial_id))
        diverged = trial.status == "TERMINATED" and bool(history) and history[-1].get("diverged") is True
        records.append(TrialRecord(
            trial_id=trial.trial_id,
            status="DIVERGED" if diverged else str(trial.status),
            params=flat_params(trial.config),
            history=history,
            error=history[-1].get("diverged_reason") if diverged else _last_line(error) if error else None,
        ))
    return records


def rank_trials(records: list[TrialRecord]) -> list[TrialRecord]:
    """Best validation accuracy first; diverged and errored trials and trials without a score last."""
    def key(r: TrialRecord):
        return (not r.usable, -(r.best_val_acc or 0.0) if r.usable else 0.0, r.trial_id)

    return sorted(records, key=key)


def summarise_experiment(exp_dir: Path, record: dict[str, Any], wall_time_s: float | None) -> SearchSummary:
    """Write trials.csv, top_k.json and curves.png from the experiment directory; return the summary
    (the caller writes it: it is the search's result-directory summary)."""
    exp_dir = Path(exp_dir)
    settings = record["settings"]
    ranked = rank_trials(load_trial_records(exp_dir))
    usable = [r for r in ranked if r.usable]
    write_trials_csv(exp_dir / "trials.csv", ranked, settings["max_epochs"])
    write_top_k(TopTrials.file_in(exp_dir), usable, settings["top_k"], record)
    plot_curves(exp_dir / "curves.png", usable[:CURVES_TOP], record["experiment"])
    if wall_time_s is None and SearchSummary.file_in(exp_dir).exists():  # re-summarised: keep the search's time
        wall_time_s = SearchSummary.read_in(exp_dir).wall_time_s
    return build_summary(ranked, record, wall_time_s)


def write_trials_csv(path: Path, ranked: list[TrialRecord], max_epochs: int) -> None:
    param_keys = sorted({k for r in ranked for k in r.params}, key=lambda k: (k not in ("model.name", "optim.name"), k))
    columns = ["rank", "trial_id", "status", *param_keys, "epochs", "stopped_early", "best_val_acc", "best_epoch",
               "final_val_acc", "final_train_loss", "parameters", "train_time_s", "trial_time_s", "started_at", "ended_at",
               "nodes", "error"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    rank = 0
    for r in ranked:
        rank += r.usable
        last = r.history[-1] if r.history else {}
        writer.writerow({
            "rank": rank if r.usable else "",
            "trial_id": r.trial_id,
            "status": r.status,
            **r.params,
            "epochs": r.epochs,
            "stopped_early": r.status == "TERMINATED" and r.epochs < max_epochs,
            "best_val_acc": _round(r.best_val_acc),
            "best_epoch": r.best["epoch"] if r.best else "",
            "final_val_acc": _round(last.get("val_acc")) if r.status != "DIVERGED" else "",
            "final_train_loss": _round(last.get("train_loss")),
            "parameters": parameter_count(r.params),
            "train_time_s": _round(sum(h.get("epoch_time_s") or 0 for h in r.history), 2),
            "trial_time_s": _round(r.time_s, 2),
            "started_at": _round(min(start for start, _ in r.running), 3) if r.running else "",
            "ended_at": _round(max(end for _, end in r.running), 3) if r.running else "",
            "nodes": " ".join(r.nodes),
            "error": r.error or "",
        })
    atomic_write_text(path, out.getvalue())


def write_top_k(path: Path, ranked: list[TrialRecord], top_k: int, record: dict[str, Any]) -> None:
    """The k best trials ("top"), and the best trial of each of the k best architectures
    ("top_architectures": what report A retrained). `ranked` holds usable trials, best first."""
    base = TrainConfig.from_dict(record["base_config"])
    best_of_each: dict[str, TrialRecord] = {}
    for r in ranked:
        best_of_each.setdefault(r.params["model.name"], r)

    def entries(trials: list[TrialRecord]) -> list[dict[str, Any]]:
        return [{
            "rank": i,
            "trial_id": r.trial_id,
            "best_val_acc": r.best_val_acc,
            "best_epoch": r.best["epoch"],
            "epochs": r.epochs,
            "parameters": parameter_count(r.params),
            "params": r.params,
            "train_config": base.with_overrides(r.params).to_dict(),
        } for i, r in enumerate(trials[:top_k], start=1)]

    top = TopTrials.parse({"experiment": record["experiment"], "metric": record["metric"], "top": entries(ranked),
                           "top_architectures": entries(list(best_of_each.values()))})
    atomic_write_json(path, top.to_json())


def plot_curves(path: Path, top: list[TrialRecord], title: str) -> None:
    """Training (solid) and validation (dashed) loss of the best trials, like report A's figure 1."""
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for r, color in zip(top, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"), strict=False):
        epochs = [h["epoch"] for h in r.history]
        label = f"{r.params.get('model.name')}/{r.params.get('optim.name')} (val acc {r.best_val_acc:.3f})"
        ax.plot(epochs, [h.get("train_loss") for h in r.history], color=color, marker="o", ms=3, label=f"{label} train")
        ax.plot(epochs, [h.get("val_loss") for h in r.history], color=color, marker="o", ms=3, linestyle="--",
                label=f"{label} val")
    ax.set(xlabel="epoch", ylabel="cross-entropy loss", title=f"{title}: best {len(top)} trials")
    if top:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def build_summary(ranked: list[TrialRecord], record: dict[str, Any], wall_time_s: float | None) -> SearchSummary:
    s = record["settings"]
    statuses = Counter(r.status for r in ranked)
    epochs_run = sum(r.epochs for r in ranked)
    usable = [r for r in ranked if r.usable]
    best = usable[0] if usable else None
    return SearchSummary.parse({
        "experiment": record["experiment"],
        "synthetic_data": record.get("synthetic_data"),
        "complete": bool(ranked) and all(r.status in FINISHED for r in ranked),
        "space": record["space"],
        "settings": s,
        "trials": len(ranked),
        "status_counts": dict(sorted(statuses.items())),
        "errored": statuses.get("ERROR", 0),
        "diverged": statuses.get("DIVERGED", 0),
        "nodes": sorted({node for r in ranked for node in r.nodes}),  # where the trials ran
        "stopped_early": sum(r.status == "TERMINATED" and r.epochs < s["max_epochs"] for r in ranked),
        "epochs_histogram": {str(e): n for e, n in sorted(Counter(r.epochs for r in ranked).items())},
        "rungs": rung_counts(ranked, s["grace_period"], s["reduction_factor"], s["max_epochs"]),
        "epochs_run": epochs_run,
        "epochs_without_early_stopping": len(ranked) * s["max_epochs"],
        "train_time_s": round(sum(h.get("epoch_time_s") or 0 for r in ranked for h in r.history), 2),
        "trial_time_s": round(sum(r.time_s for r in ranked), 2),
        "wall_time_s": round(wall_time_s, 2) if wall_time_s is not None else None,
        "concurrency": concurrency([r.running for r in ranked]),
        "ran_on": ran_on_nodes(ranked),
        "best": None if best is None else {
            "trial_id": best.trial_id, "val_acc": best.best_val_acc, "epoch": best.best["epoch"],
            "params": best.params, "parameters": parameter_count(best.params),
        },
        "files": {"trials": "trials.csv", "top_k": TopTrials.FILE, "curves": "curves.png"},
    })


def ran_on_nodes(ranked: list[TrialRecord]) -> list[dict[str, Any]]:
    """Where the search's work ran, as every stage says it: per node, its trials' first start, last
    end and seconds of epochs (from Tune's clock and the node each epoch reported)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    hosts: dict[str, str] = {}
    for r in ranked:
        for h in r.trained:
            if h.get("node_id") and _finite(h.get("timestamp")) and _finite(h.get("time_this_iter_s")):
                spans.setdefault(h["node_id"], []).append((h["timestamp"] - h["time_this_iter_s"], h["timestamp"]))
                if h.get("hostname"):  # searches from before trials recorded it have none
                    hosts[h["node_id"]] = h["hostname"]
    return [{"node_id": node, **({"hostname": hosts[node]} if node in hosts else {}), "work": "trials",
             "started_at": round(min(a for a, _ in runs), 3), "ended_at": round(max(b for _, b in runs), 3),
             "work_s": round(sum(b - a for a, b in runs), 3)}
            for node, runs in sorted(spans.items())]


def concurrency(trials: list[list[tuple[float, float]]]) -> dict[str, Any] | None:
    """How many trials ran at once, from each trial's (start, end) epochs: the most, and the mean while
    any ran. Only stretches at least the clock's resolution long count: a shorter overlap may be the
    rounding of Tune's whole-second timestamps. None without timings."""
    edges = sorted((t, step) for running in trials for start, end in _merged(running)
                   for t, step in ((start, 1), (end, -1)))
    if not edges:
        return None
    level, since, busy, counted, weighted, held = 0, edges[0][0], 0.0, 0.0, 0.0, 0
    for t, step in edges:  # at equal times an end (-1) comes before a start (+1)
        if level > 0:
            busy += t - since
            if t - since >= TIMESTAMP_RESOLUTION_S:
                counted, weighted, held = counted + t - since, weighted + level * (t - since), max(held, level)
        level, since = level + step, t
    # Trials all shorter than the clock's resolution: at least one ran; more cannot be told apart.
    return {"max": held or 1, "mean": round(weighted / counted, 2) if counted else None, "busy_s": round(busy, 1)}


def _merged(running: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """One trial's epochs as the spans it ran: epochs closer than the clock's resolution are one span
    (consecutive epochs may seem to overlap, or leave a gap, by a rounded second)."""
    spans: list[list[float]] = []
    for start, end in sorted(running):
        if spans and start <= spans[-1][1] + TIMESTAMP_RESOLUTION_S:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    return [(start, end) for start, end in spans]


def asha_rungs(grace_period: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The epochs at which ASHA compares trials: grace_period * reduction_factor**k below max_epochs."""
    count = int(math.log(max_epochs / grace_period) / math.log(reduction_factor) + 1)
    return [grace_period * reduction_factor**k for k in range(count) if grace_period * reduction_factor**k < max_epochs]


def rung_counts(ranked: list[TrialRecord], grace_period: int, reduction_factor: int, max_epochs: int) -> list[dict]:
    rows = []
    for milestone in [*asha_rungs(grace_period, reduction_factor, max_epochs), max_epochs]:
        rows.append({
            "epoch": milestone,
            "trials_reached": sum(r.epochs >= milestone for r in ranked),
            "stopped_here": sum(r.status == "TERMINATED" and r.epochs == milestone < max_epochs for r in ranked),
        })
    return rows


@lru_cache(maxsize=64)
def _count(name: str, kwargs: tuple) -> int:
    from cifar_core.models import parameter_count as count_on_meta_device

    return count_on_meta_device(name, num_classes=100, **dict(kwargs))


def parameter_count(params: dict[str, Any]) -> int:
    kwargs = tuple(sorted((k.removeprefix("model."), v) for k, v in params.items()
                          if k.startswith("model.") and k != "model.name" and v is not None))
    return _count(params["model.name"], kwargs)


def _epoch_history(frame) -> list[dict[str, Any]]:
    """Per-epoch metrics from a trial's result rows. A trial started again reports its trained epochs
    again (the same metrics, from its last.pt): an epoch's first row is kept, the one that says when
    and where it was trained unless Tune lost that one."""
    if frame is None or frame.empty or "epoch" not in frame:
        return []
    by_epoch = {}
    for row in frame.to_dict("records"):
        if _finite(row.get("epoch")):
            by_epoch.setdefault(int(row["epoch"]), {k: _plain(row.get(k)) for k in HISTORY_KEYS if k in row})
    return [by_epoch[e] | {"epoch": e} for e in sorted(by_epoch)]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _round(value: Any, digits: int = 5) -> Any:
    return round(value, digits) if _finite(value) else ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else ""
