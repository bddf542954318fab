"""The Tune trainable: a plain function over the shared engine, one `tune.report` per epoch.

Each report carries that epoch's checkpoint, so ASHA's decision and the kept checkpoint refer to the
same epoch and a restored trial continues from it. A diverged trial reports `diverged` and ends
normally (Tune never retries it); faults raise, and Tune restarts the trial from its checkpoint.
"""

from __future__ import annotations

import logging
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from cifar_core.checkpoint import load_checkpoint, save_checkpoint
from cifar_core.config import TrainConfig
from cifar_core.engine import fit
from cifar_core.errors import TrainingDiverged
from cifar_core.tune.space import flat_params

CHECKPOINT_FILE = "checkpoint.pt"
# One loaded dataset per worker process: trials reusing a worker (reuse_actors) skip the load and
# the copy to the device. One entry is enough (a search shares its data settings) and bounds memory.
_DATA_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_DATA_CACHE_SIZE = 1


def trial_train_config(base: dict[str, Any], trial_config: dict[str, Any]) -> TrainConfig:
    """The experiment's base TrainConfig with this trial's sampled values applied."""
    return TrainConfig.from_dict(base).with_overrides(flat_params(trial_config))


def train_trial(config: dict[str, Any], *, base: dict[str, Any], data_dir: str, threads: int = 1) -> None:
    """Tune function trainable (bind the keyword arguments with `tune.with_parameters`)."""
    from ray import tune

    torch.set_num_threads(max(1, threads))  # a CPU trial uses only the cores Tune gave it
    # One "checkpoint created" line per epoch per trial would drown the driver's log.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    cfg = trial_train_config(base, config)
    data = cached_data(cfg, data_dir)
    state = restored_state(tune.get_checkpoint())
    last_epoch = [state["epoch"] if state else 0]

    def on_epoch(metrics: dict[str, Any], checkpoint: dict[str, Any]) -> None:
        last_epoch[0] = metrics["epoch"]
        report_epoch(metrics, checkpoint)

    try:
        fit(cfg, data, state=state, on_epoch=on_epoch)
    except TrainingDiverged as exc:
        # The trial's last result, for the epoch that diverged: ASHA and the ranking see a trial
        # that learned nothing, and the search records why.
        tune.report({"epoch": last_epoch[0] + 1, "val_acc": 0.0, "diverged": True, "diverged_reason": str(exc),
                     **where()})


def where() -> dict[str, str]:
    """The node and host this trial ran on, as result columns (the summary lists where a search ran)."""
    from cifar_core.execution.runners import this_node

    return this_node()


def report_epoch(metrics: dict[str, Any], checkpoint: dict[str, Any]) -> None:
    """One Tune report per epoch: the metrics and the engine's checkpoint dict of that epoch."""
    from ray import tune

    reported = {k: v for k, v in metrics.items() if v is not None}  # val_* are None only without a val split
    reported.update(where())
    with tempfile.TemporaryDirectory(prefix="cifar-tune-") as tmp:
        save_checkpoint(checkpoint, Path(tmp) / CHECKPOINT_FILE)
        # Tune copies the directory into the experiment's storage before report returns.
        tune.report(reported, checkpoint=tune.Checkpoint.from_directory(tmp))


def restored_state(tune_checkpoint) -> dict[str, Any] | None:
    """The engine checkpoint dict inside a Tune checkpoint (None for a fresh trial)."""
    if tune_checkpoint is None:
        return None
    with tune_checkpoint.as_directory() as folder:
        return load_checkpoint(Path(folder) / CHECKPOINT_FILE)


def cached_data(cfg: TrainConfig, data_dir: str):
    """`make_data` for this config, loaded once per worker process and kept on the trial's device."""
    from cifar_core.runs import data_for, data_settings

    key = (str(Path(data_dir).resolve()), repr(sorted(data_settings(cfg).items())))
    if key in _DATA_CACHE:
        _DATA_CACHE.move_to_end(key)
        return _DATA_CACHE[key]
    while len(_DATA_CACHE) >= _DATA_CACHE_SIZE:
        _DATA_CACHE.popitem(last=False)  # free the old device tensors before loading new ones
    _DATA_CACHE[key] = data_for(cfg, Path(data_dir))
    return _DATA_CACHE[key]


def data_cache_size() -> int:
    return len(_DATA_CACHE)
