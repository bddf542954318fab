"""The training engine: one call, `fit`, used by `cifar train`, Ray Tune trials and retraining.

Per epoch it trains, evaluates on the validation split (when there is one), appends the epoch's
metrics, and builds one checkpoint dict; with a `run_dir` it writes `last.pt`, `best.pt` and
`metrics.jsonl` atomically, and `on_epoch(metrics, checkpoint)` lets a caller (the CLI table,
Tune's report) see both. Resuming from a checkpoint continues exactly: each epoch's shuffling,
augmentation and dropout are pure functions of (seed, epoch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cifar_core.atomic import write_jsonl
from cifar_core.checkpoint import (
    CHECKPOINT_FORMAT,
    capture_rng,
    copy_checkpoint,
    restore_rng,
    save_checkpoint,
)
from cifar_core.config import TrainConfig
from cifar_core.device import resolve_device
from cifar_core.errors import CheckpointError, ConfigError, TrainingDiverged
from cifar_core.evaluate import evaluate
from cifar_core.models import count_parameters, create_model
from cifar_core.optim import build_loss, build_optimizer, build_scheduler
from cifar_core.progress import progress

EpochCallback = Callable[[dict[str, Any], dict[str, Any]], None]


def model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The architecture options a checkpoint needs to rebuild the model (None = model default)."""
    return {k: v for k, v in {"dropout": cfg.model.dropout, "activation": cfg.model.activation}.items() if v is not None}


def build_model(cfg: TrainConfig, device: torch.device) -> nn.Module:
    torch.manual_seed(cfg.run.seed)  # the same initial weights for the same seed
    model = create_model(cfg.model.name, num_classes=100, **model_kwargs(cfg)).to(device)
    if cfg.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def plan_steps(cfg: TrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(total optimisation steps, epochs needed to run them); `steps` wins over `epochs`."""
    if steps_per_epoch < 1:
        raise ConfigError("the training split is smaller than one batch: lower run.batch_size")
    total = cfg.run.steps if cfg.run.steps is not None else cfg.run.epochs * steps_per_epoch
    return total, math.ceil(total / steps_per_epoch)


def seed_epoch(seed: int, epoch: int) -> None:
    """Dropout and any other global-RNG use in epoch `epoch` depend only on (seed, epoch)."""
    torch.manual_seed(seed * 100_003 + epoch + 1)


def make_train_step(cfg: TrainConfig, model: nn.Module, optimizer, scheduler, device: torch.device):
    """One optimisation step on a batch, returning (loss, logits) still on the device.

    Shared by `fit` and the throughput benchmark, so the benchmark times exactly this code.
    """
    loss_fn = build_loss(cfg.optim)
    train_model = torch.compile(model) if cfg.run.compile else model
    amp = cfg.run.amp and device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else nullcontext

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if cfg.run.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            logits = train_model(x)
            loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return loss.detach(), logits.detach()

    return step


def fit(
    cfg: TrainConfig,
    data,
    *,
    run_dir: str | Path | None = None,
    state: dict[str, Any] | None = None,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train `cfg.model` on `data.train`; return a summary dict (see `_summary`)."""
    device = resolve_device(cfg.run.device)
    run_dir = Path(run_dir) if run_dir is not None else None
    model = build_model(cfg, device)
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    steps_per_epoch = len(data.train)
    total_steps, num_epochs = plan_steps(cfg, steps_per_epoch)
    scheduler = build_scheduler(optimizer, cfg.optim, total_steps)
    epoch, step, best_val_acc, history = 0, 0, None, []
    if state is not None:
        epoch, step, best_val_acc, history = _restore(state, cfg, model, optimizer, scheduler)
    train_step = make_train_step(cfg, model, optimizer, scheduler, device)
    amp = cfg.run.amp and device.type == "cuda"
    wall_start = time.monotonic()

    while epoch < num_epochs and step < total_steps:
        seed_epoch(cfg.run.seed, epoch)
        data.train.set_epoch(epoch)
        model.train()
        epoch_start = time.monotonic()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        batches = progress(data.train, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{num_epochs}")
        for x, y in batches:
            if step >= total_steps:
                break  # --steps can end mid-epoch
            loss, logits = train_step(x, y)
            loss_sum += loss.double() * y.shape[0]  # stays on device: no per-step sync
            correct += (logits.argmax(dim=1) == y).sum()
            seen += y.shape[0]
            step += 1
        epoch += 1
        metrics = {
            "epoch": epoch,
            "step": step,
            "train_loss": float(loss_sum) / max(seen, 1),
            "train_acc": int(correct) / max(seen, 1),
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_time_s": time.monotonic() - epoch_start,
        }
        if not math.isfinite(metrics["train_loss"]):
            raise TrainingDiverged(f"training loss became {metrics['train_loss']} in epoch {epoch} (learning rate too high?)")
        if data.val is not None:
            val = evaluate(model, data.val, device, amp=amp)
            metrics.update(val_loss=val["loss"], val_acc=val["top1"], val_top5=val["top5"])
        else:
            metrics.update(val_loss=None, val_acc=None, val_top5=None)
        history.append(metrics)
        # Without a validation split (the 50,000-image retrain) the latest epoch counts as the best.
        val_acc = metrics["val_acc"]
        improved = val_acc is None or best_val_acc is None or val_acc > best_val_acc
        if val_acc is not None and improved:
            best_val_acc = val_acc
        checkpoint = _checkpoint(cfg, model, optimizer, scheduler, epoch, step, best_val_acc, history)
        if run_dir is not None:
            _write_run_files(run_dir, checkpoint, history, improved)
        if on_epoch is not None:
            on_epoch(metrics, checkpoint)

    return _summary(cfg, model, history, device, time.monotonic() - wall_start)


def _restore(state, cfg, model, optimizer, scheduler):
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError("resume state is not a cifar100-k8s classifier checkpoint")
    if state["model_name"] != cfg.model.name or state["model_kwargs"] != model_kwargs(cfg):
        raise CheckpointError(
            f"checkpoint holds model {state['model_name']} {state['model_kwargs']}, "
            f"but the config asks for {cfg.model.name} {model_kwargs(cfg)}"
        )
    try:
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        if scheduler is not None and state.get("scheduler_state") is not None:
            scheduler.load_state_dict(state["scheduler_state"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint does not fit this model/optimizer: {str(exc).splitlines()[0]}") from None
    restore_rng(state["rng"])
    return state["epoch"], state["step"], state["best_val_acc"], list(state["history"])


def _checkpoint(cfg, model, optimizer, scheduler, epoch, step, best_val_acc, history) -> dict[str, Any]:
    # Saved from the plain module (not a torch.compile wrapper), so it loads anywhere.
    return {
        "format": CHECKPOINT_FORMAT,
        "model_name": cfg.model.name,
        "model_kwargs": model_kwargs(cfg),
        "model_state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch,
        "step": step,
        "best_val_acc": best_val_acc,
        "history": list(history),
        "config": cfg.to_dict(),
        "rng": capture_rng(),
    }


def _write_run_files(run_dir: Path, checkpoint: dict, history: list[dict], improved: bool) -> None:
    # Order matters for crash safety: the checkpoint first, then the metrics it accounts for.
    last = save_checkpoint(checkpoint, run_dir / "last.pt")
    if improved:
        copy_checkpoint(last, run_dir / "best.pt")  # the same bytes: no second serialisation
    write_jsonl(run_dir / "metrics.jsonl", history)


def _summary(cfg, model, history, device, wall_time_s) -> dict[str, Any]:
    val_accs = [m["val_acc"] for m in history if m.get("val_acc") is not None]
    return {
        "model": cfg.model.name,
        "optimizer": cfg.optim.name,
        "parameters": count_parameters(model),
        "epochs": history[-1]["epoch"] if history else 0,
        "steps": history[-1]["step"] if history else 0,
        "best_val_acc": max(val_accs) if val_accs else None,
        "final_val_acc": val_accs[-1] if val_accs else None,
        "final_train_loss": history[-1]["train_loss"] if history else None,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "train_time_s": sum(m["epoch_time_s"] for m in history),  # across resumes
        "wall_time_s": wall_time_s,  # this call only
        "history": history,
    }
