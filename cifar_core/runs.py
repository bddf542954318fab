"""A training run on disk: `RESULTS/train/<run>/` with config.yaml, metrics.jsonl, last.pt,
best.pt and summary.json. Used by `cifar train`, `cifar evaluate` and the retrain stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cifar_core.atomic import atomic_write_json, atomic_write_text, read_json
from cifar_core.checkpoint import load_checkpoint
from cifar_core.config import TrainConfig
from cifar_core.data import load_meta, make_data, make_test_loader
from cifar_core.engine import EpochCallback, fit, resolve_device
from cifar_core.errors import CheckpointError, CifarError, ConfigError
from cifar_core.evaluate import evaluate
from cifar_core.models import create_model
from cifar_core.names import check_name
from cifar_core.progress import log

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
) -> dict[str, Any]:
    """Train (or resume) one run and write its summary.json; returns the summary."""
    run_dir = Path(results_dir) / "train" / check_name(run_name or default_run_name(cfg), "run name")
    state = _resume_state(run_dir, cfg, resume)
    data = data_for(cfg, data_dir)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if state is not None:
        log(f"resuming {run_dir} after epoch {state['epoch']} (step {state['step']})")
    result = fit(cfg, data, run_dir=run_dir, state=state, on_epoch=on_epoch)
    summary = {k: v for k, v in result.items() if k != "history"}
    summary.update(run_dir=str(run_dir), synthetic_data=data.synthetic, full_train=cfg.run.full_train)
    if evaluate_test:
        summary["test"] = _test_scores(run_dir / "last.pt", data, cfg.run.device)
    atomic_write_json(run_dir / "summary.json", summary)
    return summary


def evaluate_checkpoint(checkpoint_path: Path, data_dir: Path, device: str = "auto", split: str = "test") -> dict[str, Any]:
    """Score a checkpoint on the test (or validation) split; record it in the run's summary.json."""
    checkpoint = load_checkpoint(checkpoint_path)
    cfg = TrainConfig.from_dict(checkpoint["config"])
    cfg = cfg.with_overrides({"run.device": device})
    if split == "test":  # the training split stays on disk
        loader = make_test_loader(data_dir, cfg.run.eval_batch_size, resolve_device(cfg.run.device))
    elif cfg.run.full_train:
        raise ConfigError("this run trained on the full training set: it has no validation split")
    else:
        loader = data_for(cfg, data_dir).val
    scores = _score(checkpoint, loader, cfg.run.device)
    scores["class_names"] = load_meta(data_dir).fine_label_names
    scores.update(checkpoint=str(checkpoint_path), split=split, epoch=checkpoint["epoch"], model=checkpoint["model_name"])
    summary_path = Path(checkpoint_path).parent / "summary.json"
    if split == "test" and summary_path.exists():
        _record_test(summary_path, scores)
    return scores


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
    """The DataBundle a config trains on (split, batch sizes, augmentation, device)."""
    r = cfg.run
    return make_data(
        data_dir,
        full_train=r.full_train,
        val_fraction=r.val_fraction,
        split_seed=r.split_seed,
        batch_size=r.batch_size,
        eval_batch_size=r.eval_batch_size,
        augment=cfg.augment,
        device=resolve_device(r.device),
        seed=r.seed,
    )


def _score(checkpoint: dict, loader, device_name: str) -> dict[str, Any]:
    device = resolve_device(device_name)
    model = create_model(checkpoint["model_name"], num_classes=100, **checkpoint["model_kwargs"]).to(device)
    try:
        model.load_state_dict(checkpoint["model_state"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint weights do not fit model {checkpoint['model_name']}: {str(exc).splitlines()[0]}") from None
    scores = evaluate(model, loader, device)
    return {"loss": scores["loss"], "top1": scores["top1"], "top5": scores["top5"], "n": scores["n"], "per_class": scores["per_class"]}


def _test_scores(checkpoint_path: Path, data, device_name: str) -> dict[str, Any]:
    scores = _score(load_checkpoint(checkpoint_path), data.test, device_name)
    return {k: v for k, v in scores.items() if k != "per_class"}


def _record_test(summary_path: Path, scores: dict[str, Any]) -> None:

    summary = read_json(summary_path)
    summary["test"] = {k: scores[k] for k in ("loss", "top1", "top5", "n", "epoch", "checkpoint")}
    atomic_write_json(summary_path, summary)


def _flatten(nested: dict[str, Any]) -> dict[str, Any]:
    return {f"{group}.{key}": value for group, values in nested.items() for key, value in values.items()}


__all__ = ["default_run_name", "evaluate_checkpoint", "train_run"]
