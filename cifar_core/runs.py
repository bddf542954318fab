"""A training run on disk: `RESULTS/train/<run>/` with config.yaml, metrics.jsonl, last.pt,
best.pt and summary.json. Used by `cifar train`, `cifar evaluate` and the retrain stage.

One process writes a run at a time (RunLock). last.pt is the commit point: best.pt, metrics.jsonl
and summary.json are derived from it, and `repair_run_files` brings them back in line when the run
is opened again, wherever a kill landed.
"""

from __future__ import annotations

import filecmp
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import yaml

from cifar_core.atomic import atomic_write_json, atomic_write_text, read_json, remove_stale_temps, write_jsonl
from cifar_core.checkpoint import copy_checkpoint, load_checkpoint, load_error_summary
from cifar_core.config import TrainConfig
from cifar_core.data import check_same_data, data_digest, load_meta, make_data, make_test_loader
from cifar_core.data.loader import batch_layout
from cifar_core.device import resolve_device
from cifar_core.engine import EpochCallback, fit
from cifar_core.errors import CheckpointError, CifarError, ConfigError
from cifar_core.evaluate import evaluate
from cifar_core.models import create_model
from cifar_core.names import check_name
from cifar_core.progress import log
from cifar_core.runlock import RunLock

# Settings that may differ between a run and its resumption (they don't change the result,
# or they extend it): everything else must match the saved config.yaml.
RESUMABLE_CHANGES = {"run.epochs", "run.steps", "run.device", "run.compile", "run.eval_batch_size"}


def default_run_name(cfg: TrainConfig) -> str:
    """Deterministic, so that re-running the same command finds the same run to resume."""
    suffix = "-full" if cfg.run.full_train else ""
    return f"{cfg.model.name}-{cfg.optim.name}-seed{cfg.run.seed}{suffix}"


def train_run(
    cfg: TrainConfig,
    data_dir: Path,
    results_dir: Path,
    run_name: str | None = None,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    evaluate_test: bool = False,
    *,
    wait_s: float = 0.0,
) -> dict[str, Any]:
    """Train (or resume) one run and write its summary.json; returns the summary.

    `wait_s`: how long to wait for another process's lock on the run (e.g. a retry after a node
    loss, whose lock NFS holds until its lease ends); 0 fails at once naming the holder.
    """
    name = default_run_name(cfg) if run_name is None else run_name
    run_dir = Path(results_dir) / "train" / check_name(name, "run name")
    with RunLock(run_dir, wait_s=wait_s):
        remove_stale_temps(run_dir)
        state = _resume_state(run_dir, cfg, resume)  # a refused run writes nothing
        data = data_for(cfg, data_dir)
        if state is not None:
            check_same_data(state.get("data_digest"), data.digest, str(run_dir))
            repair_run_files(run_dir, state)
            log(f"resuming {run_dir} at step {state['step']} (after {state['epoch']} epoch rows)")
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        result = fit(cfg, data, run_dir=run_dir, state=state, on_epoch=on_epoch)
        summary = {k: v for k, v in result.items() if k != "history"}
        summary.update(run_dir=str(run_dir), synthetic_data=data.synthetic, full_train=cfg.run.full_train)
        if evaluate_test:
            scores = _score(load_checkpoint(run_dir / "last.pt"), data.test, cfg)
            summary["test"] = {k: v for k, v in scores.items() if k != "per_class"}
        atomic_write_json(run_dir / "summary.json", summary)
    return summary


def repair_run_files(run_dir: Path, last: dict[str, Any]) -> None:
    """Make best.pt and metrics.jsonl agree with last.pt (the commit point), under the run's lock.

    A kill between writing last.pt and copying it to best.pt would otherwise leave best.pt at an
    older epoch for good; one before metrics.jsonl would leave it a row short.
    """
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if last.get("best_step") == last["step"] and not (best_path.is_file() and filecmp.cmp(last_path, best_path, shallow=False)):
        copy_checkpoint(last_path, best_path)
    write_jsonl(run_dir / "metrics.jsonl", last["history"])


def evaluate_checkpoint(checkpoint_path: Path, data_dir: Path, device: str = "auto", split: str = "test") -> dict[str, Any]:
    """Score a checkpoint on the test (or validation) split.

    The scores are recorded in the run's summary.json (under "evaluations", keyed by split and
    step, so no earlier score is replaced by another checkpoint's) only when the checkpoint is the
    run's own last.pt or best.pt and the data is the data the run trained on; `recorded_in` says
    where, `not_recorded` why not.
    """
    checkpoint_path = Path(checkpoint_path)
    checkpoint = load_checkpoint(checkpoint_path)
    cfg = TrainConfig.from_dict(checkpoint["config"]).with_overrides({"run.device": device})
    digest = data_digest(data_dir)
    run_dir = checkpoint_path.parent
    reason = _why_not_recorded(checkpoint_path, checkpoint, digest)
    lock = nullcontext()
    if reason is None:
        try:
            lock = RunLock(run_dir, what="run or evaluation").acquire()  # RunLocked: one error line
        except OSError as exc:  # e.g. a read-only results volume: score, but say why nothing is kept
            reason = f"cannot write to {run_dir} ({exc.strerror or exc})"
    with lock:
        torch_device = resolve_device(cfg.run.device)
        layout = batch_layout(torch_device, cfg.run.amp, cfg.run.channels_last)
        if split == "test":  # the training split stays on disk
            loader = make_test_loader(data_dir, cfg.run.eval_batch_size, torch_device, **layout)
        elif cfg.run.full_train:
            raise ConfigError("this run trained on the full training set: it has no validation split")
        else:
            loader = data_for(cfg, data_dir).val
        scores = _score(checkpoint, loader, cfg)
        scores["class_names"] = load_meta(data_dir).fine_label_names
        scores.update(checkpoint=str(checkpoint_path), split=split, epoch=checkpoint["epoch"], step=checkpoint["step"],
                      model=checkpoint["model_name"], data_digest=digest, recorded_in=None, not_recorded=reason)
        if reason is None:
            try:
                scores["recorded_in"] = str(_record(run_dir / "summary.json", scores))
            except OSError as exc:  # e.g. a full volume: the scores are still the answer, said with why
                scores["not_recorded"] = f"cannot write {exc.filename or run_dir / 'summary.json'} ({exc.strerror or exc})"
    return scores


def _why_not_recorded(path: Path, checkpoint: dict[str, Any], digest: str) -> str | None:
    summary_path = path.parent / "summary.json"
    if path.name not in ("last.pt", "best.pt") or not summary_path.is_file():
        return f"{path} is not the last.pt or best.pt of a finished run"
    recorded = read_json(summary_path).get("data_digest")
    if recorded is None or checkpoint.get("data_digest") != recorded:
        return f"{path} was not trained on the data its run records ({recorded})"
    if digest != recorded:
        return f"the run trained on {recorded}, this data is {digest}"
    return None


def _record(summary_path: Path, scores: dict[str, Any]) -> Path:
    summary = read_json(summary_path)
    key = f"{scores['split']}@step{scores['step']}"
    summary.setdefault("evaluations", {})[key] = {
        k: scores[k] for k in ("loss", "top1", "top5", "n", "epoch", "step", "checkpoint", "data_digest")
    }
    return atomic_write_json(summary_path, summary)


def _resume_state(run_dir: Path, cfg: TrainConfig, resume: bool) -> dict[str, Any] | None:
    last = run_dir / "last.pt"
    if not last.exists():
        return None
    if not resume:
        raise CifarError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --run-name")
    state = load_checkpoint(last)
    saved = _flatten(state["config"])
    wanted = _flatten(cfg.to_dict())
    changed = sorted(k for k in wanted if saved.get(k) != wanted[k] and k not in RESUMABLE_CHANGES)
    if cfg.optim.schedule != "none":
        # The schedule's length is fixed by the run's length: a longer run would need another schedule.
        changed += sorted(k for k in ("run.epochs", "run.steps") if saved.get(k) != wanted[k])
    if changed:
        key = changed[0]
        raise ConfigError(f"cannot resume {run_dir}: {key} was {saved.get(key)!r}, now {wanted[key]!r}")
    return state


def data_for(cfg: TrainConfig, data_dir: Path):
    """The DataBundle a config trains on (split, batch sizes, augmentation, device, batch layout)."""
    return make_data(data_dir, **data_settings(cfg))


def data_settings(cfg: TrainConfig) -> dict[str, Any]:
    """Everything of a config that shapes its DataBundle: equal settings, equal batches."""
    r = cfg.run
    device = resolve_device(r.device)
    return {
        "full_train": r.full_train,
        "val_fraction": r.val_fraction,
        "split_seed": r.split_seed,
        "batch_size": r.batch_size,
        "eval_batch_size": r.eval_batch_size,
        "augment": cfg.augment,
        "device": device,
        "seed": r.seed,
        **batch_layout(device, r.amp, r.channels_last),
    }


def _score(checkpoint: dict, loader, cfg: TrainConfig) -> dict[str, Any]:
    """Scores of a checkpoint's weights, with the run's own precision (bf16 autocast on CUDA if amp)."""
    device = resolve_device(cfg.run.device)
    name, kwargs = checkpoint["model_name"], checkpoint["model_kwargs"]
    try:
        model = create_model(name, num_classes=100, **kwargs)
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint model_kwargs {kwargs} do not fit model {name}: {exc}") from None
    try:
        model.load_state_dict(checkpoint["model_state"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint weights do not fit model {name}: {load_error_summary(exc)}") from None
    model = model.to(device)
    if cfg.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    scores = evaluate(model, loader, device, amp=cfg.run.amp)
    return {"loss": scores["loss"], "top1": scores["top1"], "top5": scores["top5"], "n": scores["n"], "per_class": scores["per_class"]}


def _flatten(nested: dict[str, Any]) -> dict[str, Any]:
    return {f"{group}.{key}": value for group, values in nested.items() for key, value in values.items()}


__all__ = ["data_for", "default_run_name", "evaluate_checkpoint", "repair_run_files", "train_run"]
