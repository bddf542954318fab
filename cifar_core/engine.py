"""The training engine: one call, `fit`, for `cifar train`, Tune trials and retraining.

Batch `step` is a pure function of (seed, step), and the partial epoch's sums and the RNG state
travel in the checkpoint, so a run resumed at any step (mid-epoch too) reproduces an uninterrupted
one. last.pt is the commit point; best.pt and metrics.jsonl follow from it and are repaired from it
(runs.py). SIGTERM finishes the step, writes last.pt and raises Preempted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cifar_core.atomic import write_jsonl
from cifar_core.checkpoint import (
    CHECKPOINT_FORMAT,
    REQUIRED,
    capture_rng,
    check_optimizer_state,
    copy_checkpoint,
    load_error_summary,
    load_weights,
    require_keys,
    restore_rng,
    save_checkpoint,
)
from cifar_core.config import TrainConfig
from cifar_core.device import Precision
from cifar_core.errors import CheckpointError, ConfigError, Preempted, TrainingDiverged
from cifar_core.evaluate import evaluate
from cifar_core.models import count_parameters, create_model
from cifar_core.optim import build_loss, build_optimizer, build_scheduler
from cifar_core.preempt import preemption
from cifar_core.progress import log, progress
from cifar_core.seeds import derive_seed

EpochCallback = Callable[[dict[str, Any], dict[str, Any]], None]


def model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The architecture options a checkpoint needs to rebuild the model (None = model default)."""
    return {k: v for k, v in {"dropout": cfg.model.dropout, "activation": cfg.model.activation}.items() if v is not None}


def precision_of(cfg: TrainConfig) -> Precision:
    """The device and arithmetic of a run, decided once per unit of work and passed down."""
    return Precision.of(cfg.run.device, cfg.run.amp, cfg.run.channels_last)


def build_model(cfg: TrainConfig, precision: Precision) -> nn.Module:
    # The same initial weights for the same seed; dropout then draws from the same global stream.
    torch.manual_seed(derive_seed(cfg.run.seed, "init"))
    return precision.prepare_model(create_model(cfg.model.name, num_classes=100, **model_kwargs(cfg)))


def plan_steps(cfg: TrainConfig, steps_per_epoch: int, num_images: int) -> int:
    """Total optimisation steps; `steps` wins over `epochs`."""
    if steps_per_epoch < 1:
        raise ConfigError(
            f"the training split has {num_images} images, fewer than one batch of "
            f"run.batch_size = {cfg.run.batch_size}: lower run.batch_size"
        )
    return cfg.run.steps if cfg.run.steps is not None else cfg.run.epochs * steps_per_epoch


def make_train_step(cfg: TrainConfig, model: nn.Module, optimizer, scheduler, precision: Precision):
    """One optimisation step on a batch, returning (loss, logits) still on the device.

    Shared by `fit` and the throughput benchmark, so the benchmark times exactly this code.
    """
    loss_fn = build_loss(cfg.optim)
    train_model = torch.compile(model) if cfg.run.compile else model

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = precision.prepare_input(x)  # a no-op for the device loader's batches
        with precision.autocast():
            logits = train_model(x)
            loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return loss.detach(), logits.detach()

    return step


@dataclass
class EpochSums:
    """The epoch in progress: summed on the device (no per-step host sync), saved in checkpoints."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    time_s: float = 0.0

    @classmethod
    def zero(cls, device: torch.device, saved: dict[str, Any] | None = None) -> EpochSums:
        saved = saved or {"loss": 0.0, "correct": 0, "seen": 0, "time_s": 0.0}
        return cls(torch.tensor(float(saved["loss"]), dtype=torch.float64, device=device),
                   torch.tensor(int(saved["correct"]), dtype=torch.int64, device=device),
                   int(saved["seen"]), float(saved["time_s"]))

    def to_dict(self) -> dict[str, Any]:
        return {"loss": float(self.loss), "correct": int(self.correct), "seen": self.seen, "time_s": self.time_s}


@dataclass
class Progress:
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_acc: float | None = None
    best_step: int | None = None  # the step whose checkpoint best.pt holds
    test_curve: list[dict[str, Any]] = field(default_factory=list)  # run.eval_test_every's scores


def fit(
    cfg: TrainConfig,
    data,
    *,
    run_dir: str | Path | None = None,
    state: dict[str, Any] | None = None,
    on_epoch: EpochCallback | None = None,
    on_start: Callable[[], None] | None = None,
    precision: Precision | None = None,
) -> dict[str, Any]:
    """Train `cfg.model` on `data.train`; return a summary dict (see `_summary`). `on_start()` runs
    once `state` is found to fit the model and optimiser, before the first step. `precision`: the
    unit's device and arithmetic (decided from `cfg` when not given)."""
    training = _Training(cfg, data, precision or precision_of(cfg), Path(run_dir) if run_dir is not None else None)
    if state is not None:
        training.restore(state)
    if on_start is not None:
        on_start()
    wall_start = time.monotonic()
    with preemption() as stop:
        while training.run.step < training.total_steps:
            epoch = training.train_epoch(stop)
            training.after_epoch(epoch, stop, on_epoch)
    return _summary(cfg, training.model, training.run, data, training.precision, time.monotonic() - wall_start)


class _Training:
    """One call of `fit`: the model, its optimiser and schedule, where the run stands (`run`) and the
    epoch in progress (`sums`); `train_epoch` trains to the end of an epoch (or of the budget, or
    to a SIGTERM's step), `after_epoch` records and checkpoints it."""

    def __init__(self, cfg: TrainConfig, data, precision: Precision, run_dir: Path | None):
        self.cfg, self.data, self.precision, self.run_dir = cfg, data, precision, run_dir
        self.model = build_model(cfg, precision)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
        self.steps_per_epoch = len(data.train)
        self.total_steps = plan_steps(cfg, self.steps_per_epoch, data.train.num_examples())
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.total_steps)
        self.run, self.sums = Progress(), EpochSums.zero(precision.device)
        self.train_step = make_train_step(cfg, self.model, self.optimizer, self.scheduler, precision)
        self.num_epochs = math.ceil(self.total_steps / self.steps_per_epoch)

    def restore(self, state: dict[str, Any]) -> None:
        source = str(self.run_dir / "last.pt") if self.run_dir is not None else "resume state"
        self.run, self.sums = _restore(state, self.cfg, self.model, self.optimizer, self.scheduler,
                                       self.precision.device, self.steps_per_epoch, self.total_steps, source)
        if self.run_dir is not None:  # said once everything it holds was found to fit
            log(f"resuming {self.run_dir} at step {state['step']} (after {state['epoch']} epoch rows)")

    def train_epoch(self, stop) -> int:
        """Steps from where the run stands to its epoch's end; returns the epoch (0-based)."""
        run, sums, every = self.run, self.sums, self.cfg.run.eval_test_every
        epoch, position = divmod(run.step, self.steps_per_epoch)
        self.model.train()
        started = time.monotonic()
        batches = self.data.train.epoch(epoch, position)
        for x, y in progress(batches, total=self.steps_per_epoch - position, desc=f"epoch {epoch + 1}/{self.num_epochs}"):
            loss, logits = self.train_step(x, y)
            sums.loss += loss.double() * y.shape[0]  # stays on device: no per-step sync
            sums.correct += (logits.argmax(dim=1) == y).sum()
            sums.seen += y.shape[0]
            run.step += 1
            if every and (run.step % every == 0 or run.step == self.total_steps):
                scoring = time.monotonic()
                run.test_curve.append(_score_test(self.model, self.data, run.step, self.precision))
                started += time.monotonic() - scoring  # not training time
            if run.step == self.total_steps or stop.requested:
                break  # --steps can end mid-epoch; a preempted run stops after this step
        sums.time_s += time.monotonic() - started
        return epoch

    def after_epoch(self, epoch: int, stop, on_epoch: EpochCallback | None) -> None:
        """An epoch ended (or the budget cut it): its row, the best so far, last.pt, the callback. A
        SIGTERM ends the call once its step is checkpointed (Preempted)."""
        run, ended = self.run, self.run.step % self.steps_per_epoch == 0
        if not (ended or run.step == self.total_steps):
            if stop.requested:
                if self.run_dir is not None:
                    save_checkpoint(self.checkpoint(), self.run_dir / "last.pt")
                raise Preempted(_preempted_message(run.step, self.run_dir))
            return
        _end_epoch(self.cfg, self.model, self.optimizer, self.data, run, self.sums, self.precision, epoch)
        if ended:
            self.sums = EpochSums.zero(self.precision.device)  # else run.steps cut the epoch: its sums stay in `partial`
        checkpoint = self.checkpoint()
        if self.run_dir is not None:
            _write_run_files(self.run_dir, checkpoint, run)
        if on_epoch is not None:
            on_epoch(run.history[-1], checkpoint)
        if stop.requested and run.step < self.total_steps:
            raise Preempted(_preempted_message(run.step, self.run_dir))  # last.pt is of this step

    def checkpoint(self) -> dict[str, Any]:
        return _checkpoint(self.cfg, self.model, self.optimizer, self.scheduler, self.run, self.sums, self.data,
                           self.precision.device)


def _end_epoch(cfg, model, optimizer, data, run: Progress, sums: EpochSums, precision: Precision, epoch: int) -> None:
    """Record the metrics of the epoch just finished (or cut short by run.steps) and the best so far."""
    seen = max(sums.seen, 1)
    metrics = {
        "epoch": epoch + 1,
        "step": run.step,
        "train_loss": float(sums.loss) / seen,
        "train_acc": int(sums.correct) / seen,
        "lr": optimizer.param_groups[0]["lr"],
        "epoch_time_s": sums.time_s,
    }
    if not math.isfinite(metrics["train_loss"]):
        raise TrainingDiverged(f"training loss became {metrics['train_loss']} in epoch {epoch + 1} (learning rate too high?)")
    if data.val is not None:
        val = evaluate(model, data.val, precision)
        metrics.update(val_loss=val["loss"], val_acc=val["top1"], val_top5=val["top5"])
        if val["loss"] is None or not math.isfinite(val["loss"]):
            raise TrainingDiverged(f"validation loss became {val['loss']} after epoch {epoch + 1} (learning rate too high?)")
    else:
        metrics.update(val_loss=None, val_acc=None, val_top5=None)
    run.history.append(metrics)
    # Without a validation split (the 50,000-image retrain) the latest epoch counts as the best. The
    # row of an epoch cut short by run.steps is provisional (a longer run replaces it with the
    # finished epoch's): it is the best only where no finished epoch is, so that best.pt never
    # holds a step whose row an extension removes while an earlier best is lost.
    val_acc = metrics["val_acc"]
    provisional = run.step % len(data.train) != 0
    if val_acc is None or run.best_val_acc is None or (val_acc > run.best_val_acc and not provisional):
        run.best_val_acc = val_acc if val_acc is not None else run.best_val_acc
        run.best_step = run.step


def _score_test(model, data, step: int, precision: Precision) -> dict[str, Any]:
    scores = evaluate(model, data.test, precision)  # eval mode, no gradients, no RNG drawn
    return {"step": step, "loss": scores["loss"], "top1": scores["top1"], "top5": scores["top5"]}


def _preempted_message(step: int, run_dir: Path | None) -> str:
    where = f"checkpoint {run_dir / 'last.pt'}" if run_dir is not None else "no run directory to checkpoint into"
    return f"stopped by SIGTERM after step {step}; {where}"


def _restore(state, cfg, model, optimizer, scheduler, device, steps_per_epoch, total_steps, source: str):
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source} is not a cifar100-k8s classifier checkpoint")
    require_keys(state, {**REQUIRED, "optimizer_state": dict, "history": list, "rng": dict}, source)
    if state["model_name"] != cfg.model.name or state["model_kwargs"] != model_kwargs(cfg):
        raise CheckpointError(
            f"checkpoint holds model {state['model_name']} {state['model_kwargs']}, "
            f"but the config asks for {cfg.model.name} {model_kwargs(cfg)}"
        )
    load_weights(model, state["model_state"], f"{source}: model_state", f"model {cfg.model.name}")
    check_optimizer_state(state["optimizer_state"], optimizer, f"{source}: optimizer_state")
    try:
        optimizer.load_state_dict(state["optimizer_state"])
        if scheduler is not None and state.get("scheduler_state") is not None:
            scheduler.load_state_dict(state["scheduler_state"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{source} does not fit this optimizer: {load_error_summary(exc)}") from None
    restore_rng(state["rng"], device, source)
    run = Progress(state["step"], list(state["history"]), state.get("best_val_acc"), state.get("best_step"),
                   list(state.get("test_curve") or []))
    if run.step < total_steps and run.step % steps_per_epoch and run.history and run.history[-1]["step"] == run.step:
        # A run.steps run that ended mid-epoch and is now extended: its last row was provisional,
        # the epoch goes on (its sums are in `partial`), and the finished epoch's row replaces it,
        # as the best too when it was (then no finished epoch was before it: `_end_epoch`).
        # A test score made only because the run ended there goes too: the extended run's curve is
        # the uninterrupted run's.
        run.history.pop()
        if run.best_step == run.step:
            run.best_val_acc, run.best_step = None, None
        every = cfg.run.eval_test_every
        run.test_curve = [p for p in run.test_curve if not (p["step"] == run.step and every and run.step % every)]
    return run, EpochSums.zero(device, state.get("partial"))


def _checkpoint(cfg, model, optimizer, scheduler, run: Progress, sums: EpochSums, data, device) -> dict[str, Any]:
    # Saved from the plain module (not a torch.compile wrapper), so it loads anywhere.
    return {
        "format": CHECKPOINT_FORMAT,
        "model_name": cfg.model.name,
        "model_kwargs": model_kwargs(cfg),
        "model_state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "epoch": run.history[-1]["epoch"] if run.history else 0,
        "step": run.step,
        "best_val_acc": run.best_val_acc,
        "best_step": run.best_step,
        "history": list(run.history),
        "test_curve": list(run.test_curve),
        "partial": sums.to_dict(),
        "config": cfg.to_dict(),
        "data_digest": getattr(data, "digest", None),
        "rng": capture_rng(device),
    }


def _write_run_files(run_dir: Path, checkpoint: dict, run: Progress) -> None:
    # last.pt is the commit point; best.pt and metrics.jsonl follow from it (and are repaired from
    # it by runs.repair_run_files if a kill lands in between).
    last = save_checkpoint(checkpoint, run_dir / "last.pt")
    if run.best_step == run.step:
        copy_checkpoint(last, run_dir / "best.pt")  # the same bytes: no second serialisation
    write_jsonl(run_dir / "metrics.jsonl", run.history)


def _summary(cfg, model, run: Progress, data, precision: Precision, wall_time_s) -> dict[str, Any]:
    history = run.history
    val_accs = [m["val_acc"] for m in history if m.get("val_acc") is not None]
    return {
        "model": cfg.model.name,
        "optimizer": cfg.optim.name,
        "parameters": count_parameters(model),
        "epochs": history[-1]["epoch"] if history else 0,
        "steps": run.step,
        "best_val_acc": run.best_val_acc,
        "best_step": run.best_step,
        "final_val_acc": val_accs[-1] if val_accs else None,
        "final_train_loss": history[-1]["train_loss"] if history else None,
        "data_digest": getattr(data, "digest", None),
        **precision.record(),
        "train_time_s": sum(m["epoch_time_s"] for m in history),  # across resumes
        "wall_time_s": wall_time_s,  # this call only
        "test_curve": run.test_curve,
        "history": history,
    }
