"""The trainable's per-worker data cache: trials that would train on different batches never share."""

from __future__ import annotations

import pytest

from cifar_core.config import TrainConfig
from cifar_core.engine import precision_of
from cifar_core.tune import trainable


def test_cached_data_is_shared_only_by_configs_that_shape_the_same_batches(synth_root):
    base = TrainConfig().with_overrides({"model.name": "tinycnn", "run.device": "cpu", "run.batch_size": 100})
    def cached(cfg: TrainConfig):
        return trainable.cached_data(cfg, str(synth_root), precision_of(cfg))

    first = cached(base)
    # Another learning rate: the same batches, the same loaded data.
    assert cached(base.with_overrides({"optim.lr": 0.5})) is first
    # The memory layout of the batches changes them: loaded again.
    assert cached(base.with_overrides({"run.channels_last": not base.run.channels_last})) is not first
    assert trainable.data_cache_size() == 1  # and the old one was let go


@pytest.mark.parametrize(("field", "value"), [("cpus_per_trial", float("nan")), ("cpus_per_trial", 0.0),
                                              ("gpus_per_trial", float("inf")), ("gpus_per_trial", -1.0)])
def test_trial_resources_must_be_finite_numbers(field, value):
    from cifar_core.errors import ConfigError
    from cifar_core.tune.settings import TuneSettings

    with pytest.raises(ConfigError, match=field):
        TuneSettings(experiment="x", **{field: value}).validate()


@pytest.mark.slow  # starts a local Ray
def test_a_gpu_share_on_a_cluster_without_gpus_is_refused_and_a_stale_ray_address_file_is_ignored(
        tmp_path, synth_root, ray_env):
    """`--gpus-per-trial 0.5` where no node has a GPU would wait forever: one error line instead.
    The address file a dead Ray session left in Ray's temporary directory does not stop a local Ray."""
    from helpers import cifar

    (ray_env / "ray").mkdir(parents=True, exist_ok=True)  # Ray's default temporary directory
    (ray_env / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")  # nothing listens there
    result = cifar("tune", "--experiment", "gpu", "--gpus-per-trial", "0.5", "--allow-synthetic", "--data-dir", str(synth_root),
                   "--results-dir", str(tmp_path))
    assert result.status == 2, result.err
    assert "error: each trial asks for 1 CPUs and 0.5 GPUs per task, but no node of this Ray cluster has that " \
           "much" in result.err
