"""The trainable's per-worker data cache: trials that would train on different batches never share."""

from __future__ import annotations

from cifar_core.config import TrainConfig
from cifar_core.tune import trainable


def test_cached_data_is_shared_only_by_configs_that_shape_the_same_batches(synth_root):
    base = TrainConfig().with_overrides({"model.name": "tinycnn", "run.device": "cpu", "run.batch_size": 100})
    first = trainable.cached_data(base, str(synth_root))
    # Another learning rate: the same batches, the same loaded data.
    assert trainable.cached_data(base.with_overrides({"optim.lr": 0.5}), str(synth_root)) is first
    # The memory layout of the batches changes them: loaded again.
    other_layout = base.with_overrides({"run.channels_last": not base.run.channels_last})
    assert trainable.cached_data(other_layout, str(synth_root)) is not first
    assert trainable.data_cache_size() == 1  # and the old one was let go
