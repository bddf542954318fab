"""The DCGAN training loop, with collapse detection, rollback and exact resumption.

A run lives in RESULTS/gan/<run>/:
    checkpoints/step_<N>.pt  kept snapshots (networks only), for choosing the best by FID later
    checkpoints/last.pt      everything needed to resume, including the last healthy snapshot
    samples/step_<N>.png     8x8 grid from the same fixed noise every `sample_every` steps
    metrics.jsonl            one row per logging interval; collapse events as {"event": "collapse", ...}
    summary.json, losses.png written when the run finishes
Running the same call again resumes from last.pt and continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cifar_core.atomic import append_jsonl, atomic_write_json, read_jsonl, write_jsonl
from cifar_core.data import is_synthetic, load_split
from cifar_core.engine import resolve_device
from cifar_core.errors import CheckpointError, ConfigError
from cifar_core.gan.batches import RealImages
from cifar_core.gan.checkpoint import read_gan_checkpoint, save_gan_checkpoint
from cifar_core.gan.collapse import Collapse, CollapseDetector, image_diversity
from cifar_core.gan.config import GanTrainConfig, resume_conflict
from cifar_core.gan.grid import save_grid, to_uint8
from cifar_core.gan.plots import save_loss_plot
from cifar_core.gan.state import GanTraining, recovery_seed
from cifar_core.models import count_parameters
from cifar_core.progress import log, progress

GRID_SIZE = 64  # fixed-noise samples: an 8x8 grid, and the batch whose spread measures diversity
LogCallback = Callable[[dict[str, Any], GanTraining], None]


class RunFiles:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.checkpoints = self.dir / "checkpoints"
        self.samples = self.dir / "samples"
        self.last = self.checkpoints / "last.pt"
        self.metrics = self.dir / "metrics.jsonl"
        self.summary = self.dir / "summary.json"
        self.losses_plot = self.dir / "losses.png"

    def clear(self) -> None:
        """Remove a previous run's outputs (only the files a run writes)."""
        for path in [*self.checkpoints.glob("*.pt"), *self.samples.glob("step_*.png")]:
            path.unlink()
        for path in (self.metrics, self.summary, self.losses_plot):
            path.unlink(missing_ok=True)


def train_gan(
    cfg: GanTrainConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    device: str = "auto",
    resume: bool = True,
    on_log: LogCallback | None = None,
) -> dict[str, Any]:
    """Train (or resume) a DCGAN run and return its summary. `on_log(row, training)` sees every
    metrics row and collapse event as it is written."""
    cfg.validate()
    torch_device = resolve_device(device)
    files = RunFiles(run_dir)
    checkpoint = _open_run(files, cfg, resume)
    split = load_split(data_dir, "train")
    real = RealImages(split.images, split.fine_labels, cfg.batch_size, torch_device)
    training = GanTraining(cfg, torch_device)

    fixed = torch.Generator().manual_seed(cfg.seed)
    fixed_noise = torch.randn(GRID_SIZE, cfg.nz, generator=fixed).to(torch_device)
    fixed_labels = (torch.arange(GRID_SIZE) % 100).to(torch_device) if cfg.conditional else None
    detector = CollapseDetector(cfg.collapse, image_diversity(real.fixed_sample(GRID_SIZE, cfg.seed)))

    if checkpoint is None:
        healthy, events, rows_written, wall_before = training.snapshot(detector), [], 0, 0.0
        write_jsonl(files.metrics, [])
    else:
        training.load_training_state(checkpoint)
        state = checkpoint["training"]
        detector.load_state_dict(state["detector"])
        healthy, events, rows_written, wall_before = (
            state["healthy"],
            state["events"],
            state["metrics_rows"],
            state["wall_time_s"],
        )
        write_jsonl(files.metrics, read_jsonl(files.metrics)[:rows_written])  # drop rows after the checkpoint
        log(f"resuming {files.dir} at step {training.step}")

    started = time.monotonic()

    def save(step_snapshot: bool) -> None:
        payload = {**training.models_payload(), "step": training.step, "config": cfg.to_dict()}
        if step_snapshot:
            save_gan_checkpoint(payload, files.checkpoints / f"step_{training.step}.pt")
        payload["training"] = {
            **training.training_state(),
            "detector": detector.state_dict(),
            "healthy": healthy,
            "events": events,
            "metrics_rows": rows_written,
            "wall_time_s": wall_before + time.monotonic() - started,
        }
        save_gan_checkpoint(payload, files.last)

    def write_row(row: dict[str, Any]) -> None:
        nonlocal rows_written
        append_jsonl(files.metrics, row)
        rows_written += 1
        if on_log is not None:
            on_log(row, training)

    for _ in progress(itertools.repeat(None), total=max(cfg.steps - training.step, 0), desc="gan"):
        if training.step >= cfg.steps:
            break
        training.train_step(*real.batch(training.step, training.data_seed, training.rng))
        step = training.step
        if step % cfg.log_every == 0 or step == cfg.steps:
            samples = training.sample(fixed_noise, fixed_labels)
            row = {"step": step, **training.take_interval_means(), "diversity": image_diversity(samples)}
            row.update(
                lr=training.lr, optimizer_steps=training.optimizer_steps, recoveries=training.recoveries
            )
            write_row(row)
            collapse = detector.observe(step, row["d_loss"], row["g_loss"], row["diversity"])
            if collapse is not None:
                event = _handle_collapse(collapse, training, detector, healthy, cfg)
                events.append(event)
                write_row(event)
                if "rolled_back_to" in event:
                    continue  # this step's weights were discarded: nothing of them to keep
            elif detector.is_healthy(step):
                healthy = training.snapshot(detector)
        if step % cfg.sample_every == 0 or step == cfg.steps:
            save_grid(
                to_uint8(training.sample(fixed_noise, fixed_labels)), files.samples / f"step_{step}.png"
            )
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save(step_snapshot=True)

    if checkpoint is not None and training.step == checkpoint["step"]:
        save(step_snapshot=False)  # nothing left to train: refresh last.pt's wall time only
    wall_time = wall_before + time.monotonic() - started
    rows = read_jsonl(files.metrics)
    if rows:
        save_loss_plot(rows, files.losses_plot)
    summary = _summary(cfg, training, events, rows, wall_time, files, data_dir)
    atomic_write_json(files.summary, summary)
    return summary


def _open_run(files: RunFiles, cfg: GanTrainConfig, resume: bool) -> dict[str, Any] | None:
    """last.pt to resume from, or None for a fresh start (a previous run's files then removed)."""
    if resume and files.last.exists():
        checkpoint = read_gan_checkpoint(files.last)
        if "training" not in checkpoint:
            raise CheckpointError(f"{files.last} holds no training state to resume from")
        conflict = resume_conflict(checkpoint["config"], cfg)
        if conflict:
            raise ConfigError(
                f"cannot resume {files.dir}: {conflict}; pass --no-resume to start over, or another --run-name"
            )
        return checkpoint
    files.clear()
    return None


def _handle_collapse(
    collapse: Collapse, training: GanTraining, detector: CollapseDetector, healthy: dict, cfg: GanTrainConfig
) -> dict[str, Any]:
    """Roll back to the last healthy snapshot with a new seed and a lower lr, unless out of recoveries."""
    event = {"event": "collapse", "step": collapse.step, "reason": collapse.reason, "detail": collapse.detail}
    event["optimizer_steps"] = training.optimizer_steps
    if training.recoveries >= cfg.collapse.max_recoveries:
        detector.reset()  # report a persisting collapse once per window, not at every check
        event["action"] = f"none: {cfg.collapse.max_recoveries} recoveries allowed, all used"
        log(f"collapse at step {collapse.step} ({collapse.detail}); {event['action']}")
        return event
    training.recoveries += 1
    new_seed = recovery_seed(cfg.seed, training.recoveries)
    new_lr = training.lr * cfg.collapse.lr_factor
    training.restore(healthy, detector)
    training.reseed(new_seed)
    training.set_lr(new_lr)
    event.update(action="rollback", rolled_back_to=healthy["step"], new_seed=new_seed, new_lr=new_lr)
    event["recovery"] = training.recoveries
    log(
        f"collapse at step {collapse.step} ({collapse.detail}): rolled back to step {healthy['step']}, "
        f"seed {new_seed}, lr {new_lr:g} (recovery {training.recoveries}/{cfg.collapse.max_recoveries})"
    )
    return event


def _summary(
    cfg, training: GanTraining, events, rows, wall_time, files: RunFiles, data_dir
) -> dict[str, Any]:
    metrics = [r for r in rows if "event" not in r]
    g_params = count_parameters(training.generator)
    d_params = count_parameters(training.discriminator)
    device = training.device
    return {
        "run_dir": str(files.dir),
        "status": "completed",
        "steps": training.step,
        "optimizer_steps": training.optimizer_steps,
        "parameters": {"generator": g_params, "discriminator": d_params, "total": g_params + d_params},
        "wall_time_s": round(wall_time, 3),
        "steps_per_s": round(training.optimizer_steps / wall_time, 3) if wall_time > 0 else None,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "synthetic_data": is_synthetic(data_dir),
        "collapse_events": events,
        "recoveries": training.recoveries,
        "final_lr": training.lr,
        "final": metrics[-1] if metrics else None,
        "checkpoints": sorted(
            (p.name for p in files.checkpoints.glob("step_*.pt")), key=lambda n: int(n[5:-3])
        ),
        "config": cfg.to_dict(),
    }
