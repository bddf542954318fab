"""A training run on disk, `RESULTS/train/<run>/`: config.yaml, metrics.jsonl, last.pt (the commit
point), best.pt and summary.json, under the result-directory protocol (cifar_core.resultdir). Used by `cifar train`, `cifar evaluate` and the
retrain stage; best.pt and metrics.jsonl are repaired from last.pt wherever a kill landed.
"""

from __future__ import annotations

import filecmp
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import yaml

from cifar_core.atomic import atomic_write_text, write_jsonl
from cifar_core.checkpoint import copy_checkpoint, load_checkpoint, load_weights
from cifar_core.config import TrainConfig
from cifar_core.data import data_digest, load_meta, make_data, make_test_loader
from cifar_core.device import Precision
from cifar_core.engine import EpochCallback, fit, plan_steps, precision_of
from cifar_core.errors import CheckpointError, CifarError, ConfigError
from cifar_core.evaluate import evaluate
from cifar_core.layout import Results
from cifar_core.models import create_model
from cifar_core.resultdir import ResultDir, refuse_fewer_steps, settings_request
from cifar_core.summaries import Score, TrainSummary

# What a run writes once last.pt (the commit point) exists: found without last.pt, they mean it was
# lost. (config.yaml comes first: alone, it is a start that was killed before its first checkpoint.)
RUN_FILES = ("metrics.jsonl", "best.pt", TrainSummary.FILE)


def default_run_name(cfg: TrainConfig) -> str:
    """Deterministic, so that re-running the same command finds the same run to resume."""
    suffix = "-full" if cfg.run.full_train else ""
    return f"{cfg.model.name}-{cfg.optim.name}-seed{cfg.run.seed}{suffix}"


def run_directory(results_dir: str | Path, name: str, wait_s: float = 0.0) -> ResultDir:
    return training_directory(Results(results_dir).train_run(name), "training run", results_dir, wait_s)


def training_directory(path: Path, kind: str, results_dir: str | Path, wait_s: float = 0.0) -> ResultDir:
    """The result directory of one training (a run or a search's trial): last.pt its commit point."""
    return ResultDir(path, kind, root=results_dir, wait_s=wait_s, commit_point=path / "last.pt",
                     outputs=lambda: [path / f for f in RUN_FILES])


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
    """Train (or resume) one run and write its summary (a TrainSummary); returns it as written.

    `wait_s`: how long to wait for another process's lock on the run (e.g. a retry after a node
    loss, whose lock NFS holds until its lease ends); 0 fails at once naming the holder.
    """
    run = run_directory(results_dir, default_run_name(cfg) if run_name is None else run_name, wait_s)
    precision = precision_of(cfg)  # the unit's device and arithmetic: an unusable device is refused first
    digest = data_digest(data_dir)  # from the files, before any of them is loaded onto the device
    # A schedule's length is fixed by the run's length: a longer run would need another schedule.
    fixed = ("run.epochs", "run.steps") if cfg.optim.schedule != "none" else ()
    request = settings_request("training run", cfg, also_fixed=fixed, data=digest)
    with run:
        if run.commit_point.exists() and not resume:
            raise CifarError(f"{run.path} already holds a run: pass --resume to continue it, or choose another --run-name")
        run.open(request)
        state = load_checkpoint(run.commit_point, resume=True) if run.commit_point.exists() else None
        data = data_for(cfg, data_dir, precision)
        earlier = None
        if state is not None:
            refuse_fewer_steps(run.path, state["step"], plan_steps(cfg, len(data.train), data.train.num_examples()))
            earlier = _earlier_summary(run.summary_path)

        def accepted() -> None:  # last.pt fits the model: only now may the run's files change
            if state is not None:
                repair_run_files(run.path, state)
            atomic_write_text(run.path / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))

        result = fit(cfg, data, run_dir=run.path, state=state, on_epoch=on_epoch, on_start=accepted,
                     precision=precision)
        summary = TrainSummary.parse({**{k: v for k, v in result.items() if k != "history"}, "run_dir": str(run.path),
                                      "synthetic_data": data.synthetic, "full_train": cfg.run.full_train})
        if earlier is not None:  # what `cifar evaluate` and --evaluate-test recorded: each score names its step
            summary.evaluations, summary.test = earlier.evaluations, earlier.test
        if evaluate_test:
            last = load_checkpoint(run.path / "last.pt")
            scores = _score(last, data.test, precision, run.path / "last.pt")
            summary.test = Score(**{k: v for k, v in scores.items() if k != "per_class"}, step=last["step"])
        return run.complete(summary.to_json())


def _earlier_summary(path: Path) -> TrainSummary | None:
    """The summary of the run being resumed or extended, for what later commands recorded in it; a
    torn or unreadable one keeps nothing."""
    try:
        return TrainSummary.read(path) if path.is_file() else None
    except CifarError:
        return None


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
        try:  # the run's own lock: RunLocked (another writer) is one error line
            lock = ResultDir(run_dir, "training run", root=run_dir.parent.parent).__enter__()
        except OSError as exc:  # e.g. a read-only results volume: score, but say why nothing is kept
            reason = f"cannot write to {run_dir} ({exc.strerror or exc})"
    with lock:
        precision = precision_of(cfg)  # with the run's own precision (bf16 autocast on CUDA if amp)
        if split == "test":  # the training split stays on disk
            loader = make_test_loader(data_dir, cfg.run.eval_batch_size, precision.device, **precision.layout())
        elif cfg.run.full_train:
            raise ConfigError("this run trained on the full training set: it has no validation split")
        else:
            loader = data_for(cfg, data_dir, precision).val
        scores = _score(checkpoint, loader, precision, checkpoint_path)
        scores["class_names"] = load_meta(data_dir).fine_label_names
        scores.update(checkpoint=str(checkpoint_path), split=split, epoch=checkpoint["epoch"], step=checkpoint["step"],
                      model=checkpoint["model_name"], data_digest=digest, recorded_in=None, not_recorded=reason)
        if reason is None:
            try:
                scores["recorded_in"] = str(_record(lock, scores))
            except OSError as exc:  # e.g. a full volume: the scores are still the answer, said with why
                scores["not_recorded"] = f"cannot write {exc.filename or TrainSummary.file_in(run_dir)} ({exc.strerror or exc})"
    return scores


def _why_not_recorded(path: Path, checkpoint: dict[str, Any], digest: str) -> str | None:
    summary_path = TrainSummary.file_in(path.parent)
    if path.name not in ("last.pt", "best.pt") or not summary_path.is_file():
        return f"{path} is not the last.pt or best.pt of a finished run"
    recorded = TrainSummary.read(summary_path).data_digest
    if recorded is None or checkpoint.get("data_digest") != recorded:
        return f"{path} was not trained on the data its run records ({recorded})"
    if digest != recorded:
        return f"the run trained on {recorded}, this data is {digest}"
    return None


def _record(run: ResultDir, scores: dict[str, Any]) -> Path:
    summary = TrainSummary.read(run.summary_path)
    key = f"{scores['split']}@step{scores['step']}"
    summary.evaluations = {**(summary.evaluations or {}), key: {
        k: scores[k] for k in ("loss", "top1", "top5", "n", "epoch", "step", "checkpoint", "data_digest")
    }}
    run.amend(summary.to_json())
    return run.summary_path


def data_for(cfg: TrainConfig, data_dir: Path, precision: Precision):
    """The DataBundle a config trains on (split, batch sizes, augmentation; on the unit's device, in
    its batch layout)."""
    return make_data(data_dir, **data_settings(cfg, precision))


def data_settings(cfg: TrainConfig, precision: Precision) -> dict[str, Any]:
    """Everything of a config that shapes its DataBundle: equal settings, equal batches."""
    r = cfg.run
    return {
        "full_train": r.full_train,
        "val_fraction": r.val_fraction,
        "split_seed": r.split_seed,
        "batch_size": r.batch_size,
        "eval_batch_size": r.eval_batch_size,
        "augment": cfg.augment,
        "device": precision.device,
        "seed": r.seed,
        **precision.layout(),
    }


def _score(checkpoint: dict, loader, precision: Precision, path: Path) -> dict[str, Any]:
    """Scores of a checkpoint's weights on the unit's device, with the run's own arithmetic."""
    name, kwargs = checkpoint["model_name"], checkpoint["model_kwargs"]
    broken = next((key for key, value in checkpoint["model_state"].items()
                   if value.is_floating_point() and not bool(value.isfinite().all())), None)
    if broken is not None:  # its scores would be NaN: no score is better than a NaN one
        raise CheckpointError(f"the checkpoint's weights hold NaN or infinite values ({broken}): it cannot be scored")
    try:
        model = create_model(name, num_classes=100, **kwargs)
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint model_kwargs {kwargs} do not fit model {name}: {exc}") from None
    load_weights(model, checkpoint["model_state"], f"{path}: model_state", f"model {name}")
    scores = evaluate(precision.prepare_model(model), loader, precision)
    return {"loss": scores["loss"], "top1": scores["top1"], "top5": scores["top5"], "n": scores["n"], "per_class": scores["per_class"]}


__all__ = ["data_for", "default_run_name", "evaluate_checkpoint", "repair_run_files", "train_run"]
