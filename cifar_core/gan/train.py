"""The DCGAN training loop, with collapse detection, recovery and exact resumption.

In RESULTS/gan/<run>/: checkpoints/last.pt, written first (the commit point: networks, optimisers,
RNG, detector, healthy snapshot, metrics rows), checkpoints/step_<N>.pt (networks, for FID
selection), samples/, metrics.jsonl (rewritten from last.pt on open, so a kill after an append
leaves no trace) and summary.json. The same call again resumes exactly; SIGTERM checkpoints the step.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cifar_core import protocols
from cifar_core.atomic import append_jsonl, atomic_write_json, write_jsonl
from cifar_core.data import data_digest, is_synthetic, load_split
from cifar_core.data.augment import AugmentConfig, normalize
from cifar_core.data.loader import GAN_NORMALIZATION, DeviceLoader, to_device_tensors
from cifar_core.device import Precision
from cifar_core.errors import ConfigError, Preempted, TrainingDiverged
from cifar_core.gan.checkpoint import read_gan_checkpoint, save_gan_checkpoint
from cifar_core.gan.collapse import Collapse, CollapseDetector, image_diversity
from cifar_core.gan.config import GanTrainConfig
from cifar_core.gan.grid import save_grid, to_uint8
from cifar_core.gan.plots import save_loss_plot
from cifar_core.gan.state import GanTraining, recovery_seed
from cifar_core.models import count_parameters
from cifar_core.preempt import preemption
from cifar_core.progress import log, progress
from cifar_core.resultdir import ResultDir, refuse_fewer_steps, settings_request
from cifar_core.seeds import generator
from cifar_core.snapshots import step_file, step_files
from cifar_core.summaries import GanSummary

GRID_SIZE = 64  # fixed-noise samples: an 8x8 grid, and the batch whose spread measures diversity
LogCallback = Callable[[dict[str, Any], GanTraining], None]


class RunFiles:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.checkpoints = self.dir / "checkpoints"
        self.samples = self.dir / "samples"
        self.last = self.checkpoints / "last.pt"
        self.metrics = self.dir / "metrics.jsonl"
        self.summary = GanSummary.file_in(self.dir)
        self.losses_plot = self.dir / "losses.png"

    def outputs(self) -> list[Path]:
        """The files a run writes (and only those)."""
        written = [*self.checkpoints.glob("*.pt"), *(p for _, p in step_files(self.samples, ".png"))]
        return written + [p for p in (self.metrics, self.summary, self.losses_plot) if p.exists()]

    def result_dir(self, wait_s: float = 0.0) -> ResultDir:
        """RESULTS/gan/<run> under the result-directory protocol; checkpoints/last.pt is its commit point."""
        return ResultDir(self.dir, "GAN run", root=self.dir.parent.parent, wait_s=wait_s, commit_point=self.last,
                         outputs=lambda: [p for p in self.outputs() if p != self.last],
                         folders=(self.checkpoints, self.samples))


class Diverged(Exception):
    """A loss or the generator's images became NaN or infinite at `step`."""

    def __init__(self, step: int, reason: str):
        super().__init__(reason)
        self.step, self.reason = step, reason


def train_gan(
    cfg: GanTrainConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    device: str = "auto",
    resume: bool = True,
    on_log: LogCallback | None = None,
    wait_s: float = 0.0,
) -> dict[str, Any]:
    """Train (or resume) a DCGAN run and return its summary. `on_log(row, training)` sees every
    metrics row and collapse event as it is written. `wait_s`: how long to wait for another
    process's lock on the run (0: fail at once naming the holder)."""
    cfg.validate()
    precision = Precision.of(device, cfg.amp)  # the unit's device and arithmetic: an unusable one is refused first
    files = RunFiles(run_dir)
    digest = data_digest(data_dir)
    with files.result_dir(wait_s) as run:
        if not resume:
            run.clear()  # asked for explicitly: start over
        run.open(settings_request("GAN run", cfg, data=digest),
                 remedy="pass --no-resume to start over (which deletes them), or choose another run name")
        checkpoint = read_gan_checkpoint(files.last) if files.last.exists() else None
        if checkpoint is not None:
            refuse_fewer_steps(run.path, checkpoint["step"], cfg.steps)
        return _train(cfg, data_dir, run, files, checkpoint, digest, precision, on_log)


def _train(cfg, data_dir, run: ResultDir, files: RunFiles, checkpoint, digest: str, precision: Precision,
           on_log) -> dict[str, Any]:
    split = load_split(data_dir, "train")
    if len(split) < cfg.batch_size:
        raise ConfigError(f"batch size {cfg.batch_size} is larger than the {len(split)} training images")
    gan = _GanRun(cfg, split, files, checkpoint, digest, precision, on_log)
    failure = None
    try:
        gan.train()
    except Diverged as exc:
        failure = {"event": "failed", "step": exc.step, "reason": exc.reason}
        gan.write_row(failure)
    if failure is None and checkpoint is not None and gan.training.step == checkpoint["step"]:
        gan.save(step_snapshot=False)  # nothing left to train: refresh last.pt's wall time only
    if gan.rows:
        save_loss_plot(gan.rows, files.losses_plot)
    summary = _summary(cfg, gan.training, gan.events, gan.rows, gan.wall_time(), files, data_dir, digest,
                       failure).to_json()
    if failure is not None:  # on the record, but not complete: the same command tries again
        atomic_write_json(files.summary, summary)
        raise TrainingDiverged(
            f"GAN training failed at step {failure['step']}: {failure['reason']} (learning rate too high?); "
            f"recorded in {files.summary}"
        )
    return run.complete(summary)


class _GanRun:
    """One call's training of a GAN run: its networks, real batches, detector and record, the commit
    point last.pt written first and at every snapshot, the metrics rows as last.pt accounts for them."""

    def __init__(self, cfg, split, files: RunFiles, checkpoint, digest: str, precision: Precision, on_log):
        self.cfg, self.files, self.digest, self.on_log = cfg, files, digest, on_log
        device = precision.device
        images, labels = to_device_tensors(split, None, device)
        self.training = training = GanTraining(cfg, precision)
        # Real images in the dtype the discriminator takes them in (its weights refuse another).
        self.real = DeviceLoader(images, labels, cfg.batch_size, shuffle=True, drop_last=True,
                                 augment=AugmentConfig(hflip=cfg.hflip), seed=training.data_seed,
                                 normalization=GAN_NORMALIZATION, **precision.layout())
        self.fixed_noise = torch.randn(GRID_SIZE, cfg.nz, generator=generator(cfg.seed, "gan-fixed-noise")).to(device)
        self.fixed_labels = (torch.arange(GRID_SIZE) % 100).to(device) if cfg.conditional else None
        self.detector = CollapseDetector(cfg.collapse, image_diversity(_reference_sample(self.real, cfg.seed)))
        if checkpoint is None:
            self.healthy, self.events, self.rows, self.wall_before = training.snapshot(self.detector), [], [], 0.0
        else:
            training.load_training_state(checkpoint)
            state = checkpoint["training"]
            self.detector.load_state_dict(state["detector"])
            self.healthy, self.events = state["healthy"], state["events"]
            self.rows, self.wall_before = list(state["rows"]), state["wall_time_s"]
            log(f"resuming {files.dir} at step {training.step}")
        self.started = time.monotonic()
        if checkpoint is None:
            self.save(step_snapshot=False)  # the commit point exists before any other file of the run
        write_jsonl(files.metrics, self.rows)  # what last.pt accounts for: rows appended after it are gone

    def wall_time(self) -> float:
        return self.wall_before + time.monotonic() - self.started

    def train(self) -> None:
        cfg, training = self.cfg, self.training
        with preemption() as stop:
            for _ in progress(itertools.repeat(None), total=max(cfg.steps - training.step, 0), desc="gan"):
                if training.step >= cfg.steps:
                    break
                self.real.seed = training.data_seed  # a recovery switches the data stream too
                training.train_step(*self.real.batch(training.step))
                step = training.step
                log_now, grid_now, snapshot_now = (step % every == 0 or step == cfg.steps
                                                   for every in (cfg.log_every, cfg.sample_every, cfg.checkpoint_every))
                if log_now or grid_now or snapshot_now or stop.requested:
                    _ensure_finite(training, step)  # nothing of a diverged network is ever written
                if log_now and self.log_interval(step):
                    continue  # this step's weights were discarded (a recovery): nothing of them to keep
                if grid_now:
                    grid = _finite_images(training.sample(self.fixed_noise, self.fixed_labels), step)
                    save_grid(to_uint8(grid), self.files.samples / step_file(step, ".png"))
                if snapshot_now or stop.requested:
                    self.save(step_snapshot=snapshot_now)
                if stop.requested and step < cfg.steps:
                    raise Preempted(f"stopped by SIGTERM after step {step}; checkpoint {self.files.last}")

    def log_interval(self, step: int) -> bool:
        """The interval's metrics row, then the collapse detector's verdict on it; True when a recovery
        discarded this step's weights."""
        training = self.training
        samples = training.sample(self.fixed_noise, self.fixed_labels)
        row = {"step": step, **training.take_interval_means(), "diversity": image_diversity(_finite_images(samples, step))}
        row.update(lr=training.lr, optimizer_steps=training.optimizer_steps, recoveries=training.recoveries)
        self.write_row(row)
        collapse = self.detector.observe(step, row["d_loss"], row["g_loss"], row["diversity"])
        if collapse is None:
            if self.detector.is_healthy(step):
                self.healthy = training.snapshot(self.detector)
            return False
        event = _handle_collapse(collapse, training, self.detector, self.healthy, self.cfg)
        self.events.append(event)
        self.write_row(event)
        if "rolled_back_to" not in event:
            return False
        if event["action"] == "restart":
            self.healthy = training.snapshot(self.detector)
        return True

    def save(self, step_snapshot: bool) -> None:
        training = self.training
        if not training.weights_are_finite():
            raise Diverged(training.step, "the networks' weights became NaN or infinite")
        payload = {**training.models_payload(), "step": training.step, "config": self.cfg.to_dict(),
                   "data_digest": self.digest}
        if step_snapshot:
            save_gan_checkpoint(payload, self.files.checkpoints / step_file(training.step, ".pt"))
        payload["training"] = {**training.training_state(), "detector": self.detector.state_dict(),
                               "healthy": self.healthy, "events": self.events, "rows": list(self.rows),
                               "wall_time_s": self.wall_time()}
        save_gan_checkpoint(payload, self.files.last)

    def write_row(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        append_jsonl(self.files.metrics, row)
        if self.on_log is not None:
            self.on_log(row, self.training)


def _ensure_finite(training: GanTraining, step: int) -> None:
    if not training.interval_is_finite():
        raise Diverged(step, "a discriminator or generator loss became NaN or infinite")


def _finite_images(samples: torch.Tensor, step: int) -> torch.Tensor:
    if not bool(torch.isfinite(samples).all()):
        raise Diverged(step, "the generator's images became NaN or infinite")
    return samples


def _reference_sample(real: DeviceLoader, seed: int) -> torch.Tensor:
    """GRID_SIZE real images in [-1, 1], chosen by `seed`, unflipped: real images' own spread."""
    index = torch.randperm(real.num_examples(), generator=generator(seed, "gan-reference"))[:GRID_SIZE]
    return normalize(real.images[index.to(real.device)].float().div_(255), *real.normalization)


def _handle_collapse(
    collapse: Collapse, training: GanTraining, detector: CollapseDetector, healthy: dict, cfg: GanTrainConfig
) -> dict[str, Any]:
    """What `collapse.mode` says: roll back to the last healthy snapshot with a new seed and a lower
    learning rate (ours), start over from step 0 with a new seed (report B's way), or only log it;
    and only log it once the allowed recoveries are used."""
    c = cfg.collapse
    event = {"event": "collapse", "step": collapse.step, "reason": collapse.reason, "detail": collapse.detail,
             "optimizer_steps": training.optimizer_steps}
    if c.mode == "off" or training.recoveries >= c.max_recoveries:
        detector.reset()  # report a persisting collapse once per window, not at every check
        why = "collapse.mode is off" if c.mode == "off" else f"{c.max_recoveries} recoveries allowed, all used"
        event.update(action="none", why=why, lr_after=training.lr)
        log(f"collapse at step {collapse.step} ({collapse.detail}); not recovered: {why}")
        return event
    training.recoveries += 1
    new_seed = recovery_seed(cfg.seed, training.recoveries)
    if c.mode == "restart":
        training.start_over(new_seed)
        detector.start_over()
        event.update(action="restart", rolled_back_to=0)
    else:
        training.restore(healthy, detector)
        training.reseed(new_seed)
        training.set_lr(training.lr * c.lr_factor)
        event.update(action="rollback", rolled_back_to=healthy["step"])
    event.update(new_seed=new_seed, lr_after=training.lr, recovery=training.recoveries)
    log(f"collapse at step {collapse.step} ({collapse.detail}): {event['action']} to step {event['rolled_back_to']}, "
        f"seed {new_seed}, lr {training.lr:g} (recovery {training.recoveries}/{c.max_recoveries})")
    return event


def protocol_record(cfg: GanTrainConfig, events: list[dict[str, Any]], precision: Precision, digest: str) -> dict[str, Any]:
    """The run beside report B's DCGAN protocol (`cifar_core.protocols.DCGAN`): its settings as compared,
    and a line for each departure (a setting that differs from report B's, the tutorial's or ours;
    bf16 only where autocast applied), then each recovery report B's restart would not have made."""
    actual = {**protocols.settings_of(cfg.to_dict()), "amp": precision.bf16,
              "data": protocols.data_text(digest)}
    record = protocols.protocol_record(actual, protocols.DCGAN)
    record["protocol_departures"] += recovery_departures(events)
    return record


def recovery_departures(events: list[dict[str, Any]]) -> list[str]:
    """Each rollback and each collapse left unrecovered, one line each: report B started a collapsed run
    over (a restart is no departure)."""
    lines = []
    for e in events:
        if e.get("action") == "rollback":
            lines.append(f"collapse at step {e['step']:,}: rolled back to step {e['rolled_back_to']:,} with a new seed, "
                         f"learning rate {e['lr_after']:g} (report B started a collapsed run over)")
        elif e.get("action") == "none":
            lines.append(f"collapse at step {e['step']:,}: not recovered ({e['why']}), the run went on collapsed "
                         "(report B started a collapsed run over)")
    return lines


def _summary(cfg, training: GanTraining, events, rows, wall_time, files: RunFiles, data_dir, digest, failure) -> GanSummary:
    metrics = [r for r in rows if "event" not in r]
    g_params = count_parameters(training.generator)
    d_params = count_parameters(training.discriminator)
    return GanSummary.parse({
        "run_dir": str(files.dir),
        "status": "completed" if failure is None else "failed",
        "failure": failure,  # {"step", "reason"} of a run that diverged, else None
        "steps": training.step,
        "optimizer_steps": training.optimizer_steps,
        "parameters": {"generator": g_params, "discriminator": d_params, "total": g_params + d_params},
        "wall_time_s": round(wall_time, 3),
        "steps_per_s": round(training.optimizer_steps / wall_time, 3) if wall_time > 0 else None,
        **training.precision.record(),
        "synthetic_data": is_synthetic(data_dir),
        "data_digest": digest,
        "collapse_mode": cfg.collapse.mode,
        "collapse_events": events,
        **protocol_record(cfg, events, training.precision, digest),
        "recoveries": training.recoveries,
        "final_lr": training.lr,
        "final": metrics[-1] if metrics else None,
        "checkpoints": [p.name for _, p in step_files(files.checkpoints, ".pt")],
        "config": cfg.to_dict(),
    })
