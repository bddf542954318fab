"""The Tune trainable: a plain function over the shared engine, one `tune.report` per epoch.

Each trial trains in its own result directory on the results volume (the protocol of every run:
last.pt is the commit point), so a trial that Tune starts again continues from its last.pt, exact to
the step, whatever Tune restored. Tune holds no checkpoint of ours: to Tune every start is from nothing,
so the trial first reports again the epochs it already trained, and Tune's count and ASHA's rungs see
each epoch in order. A diverged trial reports `diverged` and ends normally (Tune never retries it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from cifar_core.atomic import atomic_write_text
from cifar_core.checkpoint import load_checkpoint
from cifar_core.config import TrainConfig
from cifar_core.device import Precision
from cifar_core.engine import fit, plan_steps, precision_of
from cifar_core.errors import TrainingDiverged
from cifar_core.execution.runners import LOCK_WAIT_IN_TASK_S, this_node
from cifar_core.layout import Results
from cifar_core.resultdir import Opened, ResultDir, settings_request
from cifar_core.runs import data_for, data_settings, repair_run_files, training_directory
from cifar_core.tune.space import flat_params

# A trial's length is the search's max_epochs, part of what the search is: never extended.
FIXED_LENGTH = ("run.epochs", "run.steps")
# One loaded dataset per worker process: trials reusing a worker (reuse_actors) skip the load and
# the copy to the device. One entry is enough (a search shares its data settings) and bounds memory.
_DATA_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_DATA_CACHE_SIZE = 1

Report = Callable[[dict[str, Any]], None]


def trial_train_config(base: dict[str, Any], trial_config: dict[str, Any]) -> TrainConfig:
    """The experiment's base TrainConfig with this trial's sampled values applied."""
    return TrainConfig.from_dict(base).with_overrides(flat_params(trial_config))


def trial_directory(results_dir: str | Path, experiment: str, trial_id: str, wait_s: float = 0.0) -> ResultDir:
    """RESULTS/tune/<experiment>/trials/<trial id>/: last.pt (the commit point), best.pt, metrics.jsonl,
    config.yaml."""
    return training_directory(Results(results_dir).tune_trial(experiment, trial_id), "trial", results_dir, wait_s)


def train_trial(config: dict[str, Any], *, base: dict[str, Any], data_dir: str, results_dir: str, experiment: str,
                digest: str, threads: int = 1) -> None:
    """Tune function trainable (bind the keyword arguments with `tune.with_parameters`)."""
    from ray import tune

    torch.set_num_threads(max(1, threads))  # a CPU trial uses only the cores Tune gave it
    # A retried trial may find its dead predecessor's lock still held (NFS keeps it until the lease ends).
    trial = trial_directory(results_dir, experiment, tune.get_context().get_trial_id(), wait_s=LOCK_WAIT_IN_TASK_S)
    run_trial(trial_train_config(base, config), data_dir, trial, digest, report_epoch)


def run_trial(cfg: TrainConfig, data_dir: str | Path, trial: ResultDir, digest: str, report: Report) -> None:
    """Train (or resume, or only report again) one trial in its directory; `report(metrics)` once per
    epoch from epoch 1: first the epochs last.pt already holds (no training), then each new one."""
    with trial:
        opened = trial.open(settings_request("trial", cfg, also_fixed=FIXED_LENGTH, data=digest))
        state = load_checkpoint(trial.commit_point, resume=True) if trial.commit_point.exists() else None
        if state is not None and opened is not Opened.DONE:
            repair_run_files(trial.path, state)
        history = state["history"] if state is not None else []
        for metrics in history:
            report({**metrics, "replayed": True})  # its metrics, not trained now
        if opened is Opened.DONE:
            return
        atomic_write_text(trial.path / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        precision = precision_of(cfg)  # the trial's device and arithmetic, decided once
        data = cached_data(cfg, data_dir, precision)
        total = plan_steps(cfg, len(data.train), data.train.num_examples())
        epochs = [history[-1]["epoch"] if history else 0]

        def on_epoch(metrics: dict[str, Any], checkpoint: dict[str, Any]) -> None:
            epochs[0] = metrics["epoch"]
            if checkpoint["step"] == total:
                trial.complete()  # before the last report: ASHA's stop at max_t ends the trial inside it
            report(metrics)

        try:
            fit(cfg, data, run_dir=trial.path, state=state, on_epoch=on_epoch, precision=precision)
        except TrainingDiverged as exc:
            # The trial's last result, for the epoch that diverged: ASHA and the ranking see a trial
            # that learned nothing, and the search records why. (Started again, it diverges again.)
            report({"epoch": epochs[0] + 1, "val_acc": 0.0, "diverged": True, "diverged_reason": str(exc)})


def report_epoch(metrics: dict[str, Any]) -> None:
    """One Tune report: the epoch's metrics and where it ran. No checkpoint: the trial's own last.pt
    is what it resumes from, so Tune has none to restore, lose or fail on."""
    from ray import tune

    reported = {k: v for k, v in metrics.items() if v is not None}  # val_* are None only without a val split
    tune.report({**reported, **this_node()})  # where it ran: the summary lists a search's machines


def cached_data(cfg: TrainConfig, data_dir: str | Path, precision: Precision):
    """`make_data` for this config, loaded once per worker process and kept on the trial's device."""
    key = (str(Path(data_dir).resolve()), repr(sorted(data_settings(cfg, precision).items())))
    if key in _DATA_CACHE:
        _DATA_CACHE.move_to_end(key)
        return _DATA_CACHE[key]
    while len(_DATA_CACHE) >= _DATA_CACHE_SIZE:
        _DATA_CACHE.popitem(last=False)  # free the old device tensors before loading new ones
    _DATA_CACHE[key] = data_for(cfg, Path(data_dir), precision)
    return _DATA_CACHE[key]


def data_cache_size() -> int:
    return len(_DATA_CACHE)
