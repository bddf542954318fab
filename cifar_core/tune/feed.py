"""`TrialFeed`: a Tune callback that keeps each trial's epoch, validation accuracy and time left as
rows of the live view (the shape of the pipeline's stage rows), in place of Tune's own tables.

It holds only plain values: Tune pickles its callbacks with the experiment's state.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from cifar_core import live
from cifar_core.tune.space import flat_params

SHOWN_FINISHED = 3  # the best finished trials shown beside the running ones; the rest are counted


class TrialFeed(tune.Callback):
    def __init__(self, experiment: str, max_epochs: int, num_samples: int):
        self.experiment = experiment
        self.max_epochs = max_epochs
        self.num_samples = num_samples
        self._best: dict[str, float] = {}  # each trial's best val_acc so far
        self._rows: list[dict[str, Any]] = []  # replaced whole, never changed: the view reads it from its thread

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        rows = [self.row(trial) for trial in trials]
        changed = [_state(r) for r in rows] != [_state(r) for r in self._rows]
        self._rows = rows
        view = live.active()
        if changed and view is not None and view.terminal:
            view.redraw()  # a trial started, reported an epoch or ended: shown now, not at the next tick

    def on_experiment_end(self, trials: list, **info) -> None:
        self._rows = [self.row(trial) for trial in trials]

    def row(self, trial) -> dict[str, Any]:
        result = trial.last_result or {}
        epoch = result.get("epoch") or 0
        if result.get("val_acc") is not None:
            self._best[trial.trial_id] = max(result["val_acc"], self._best.get(trial.trial_id, 0.0))
        best = self._best.get(trial.trial_id)
        status = {"PENDING": "pending", "RUNNING": "running", "PAUSED": "paused", "ERROR": "error"}.get(trial.status)
        if result.get("diverged"):
            status = "diverged"
        elif status is None:  # TERMINATED: ASHA stopped it, or it ran every epoch
            status = "finished" if epoch >= self.max_epochs else "stopped"
        eta = (self.max_epochs - epoch) * result["time_this_iter_s"] if status == "running" and epoch and \
            result.get("time_this_iter_s") else None
        return {"stage": f"{trial.trial_id} {_model(trial.config)}", "status": status, "done": epoch,
                "total": self.max_epochs, "unit": "epochs", "eta_s": eta, "work_s": None,
                "val_acc": best, "note": None if best is None else f"best val_acc {best:.3f}",
                "hosts": [result["hostname"]] if result.get("hostname") else None}

    def rows(self) -> list[dict[str, Any]]:
        """The running trials, the best finished ones, and a row counting the others."""
        rows = self._rows
        running = [r for r in rows if r["status"] == "running"]
        finished = sorted((r for r in rows if r["status"] != "running" and r["val_acc"] is not None),
                          key=lambda r: -r["val_acc"])[:SHOWN_FINISHED]
        shown = running + finished
        rest = [r for r in rows if r not in shown]
        if rest:
            shown.append({"stage": f"{len(rest)} more trial{'s' if len(rest) > 1 else ''}", "status": "",
                          "note": _counts(rest), "counts": _by_status(rest)})
        return shown

    def title(self) -> str:
        rows = self._rows
        best = max((r for r in rows if r["val_acc"] is not None), key=lambda r: r["val_acc"], default=None)
        text = f"search {self.experiment} · {len(rows)} of {self.num_samples} trials started"
        text += f": {_counts(rows)}" if rows else ""
        return text + (f" · best val_acc {best['val_acc']:.3f} ({best['stage']})" if best else "")


def _model(config: dict[str, Any]) -> str:
    try:
        params = flat_params(config)
    except (KeyError, TypeError, AttributeError):
        return ""
    return f"{params.get('model.name', '?')}/{params.get('optim.name', '?')}"


def _by_status(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _counts(rows: list[dict[str, Any]]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(_by_status(rows).items(), key=lambda item: -item[1]))


def _state(row: dict[str, Any]) -> tuple:
    return row["stage"], row["status"], row["done"]
