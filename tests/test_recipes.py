"""The test-set curve a run can record along the way (report B's figure 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cifar_core.config import TrainConfig
from cifar_core.errors import ConfigError
from cifar_core.runs import train_run


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    """256 training and 100 test images: two batches of 128, the recipes' batch size."""
    from cifar_core.data import write_synthetic

    root = tmp_path_factory.mktemp("small")
    write_synthetic(root, n_train=256, n_test=100, seed=0)
    return root


def tiny_config(**overrides) -> TrainConfig:
    return TrainConfig().with_overrides({"model.name": "tinycnn", "optim.name": "sgd", "optim.lr": 0.05,
                                         "run.batch_size": 100, "run.eval_batch_size": 500, "run.device": "cpu",
                                         "run.full_train": True, **overrides})


def test_test_curve_every_n_steps_is_the_runs_own_score_and_the_same_after_a_resume(tmp_path, small_root):
    """256 images at batch 100: 2 steps an epoch, so the run stops and resumes mid-epoch (step 3)."""
    cfg = tiny_config(**{"run.steps": 7, "run.eval_test_every": 3})
    whole = train_run(cfg, small_root, tmp_path, run_name="whole", evaluate_test=True)
    assert [p["step"] for p in whole["test_curve"]] == [3, 6, 7]  # every 3 steps, and the last
    assert whole["test_curve"][-1]["top1"] == whole["test"]["top1"]  # the last point is last.pt's score
    assert whole["test_curve"][-1]["loss"] == pytest.approx(whole["test"]["loss"], rel=1e-6)

    # Stopped after 5 steps (a score at its last step), then resumed mid-epoch to 7.
    first = train_run(cfg.with_overrides({"run.steps": 5}), small_root, tmp_path, run_name="split")
    assert [p["step"] for p in first["test_curve"]] == [3, 5]
    resumed = train_run(cfg, small_root, tmp_path, run_name="split", resume=True)
    by_step = {p["step"]: p for p in resumed["test_curve"]}
    assert sorted(by_step) == [3, 5, 6, 7]
    for point in whole["test_curve"]:
        assert by_step[point["step"]] == point  # scoring took nothing from training: the same numbers
    with pytest.raises(ConfigError, match="run.eval_test_every = 0"):
        tiny_config(**{"run.eval_test_every": 0})
