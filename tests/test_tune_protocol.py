"""A search's own resume protocol, without Ray: each trial trains in its own result directory and
resumes from its last.pt whatever Tune restored, reporting every epoch from 1 so that Tune's count
and ASHA's rungs stay right; the search directory is fresh, resume or done by the same one rule."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cifar_core.config import TrainConfig
from cifar_core.data import data_digest
from cifar_core.errors import ConfigError
from cifar_core.resultdir import Opened, ResultDir
from cifar_core.tune.trainable import run_trial, trial_directory

TIMINGS = {"epoch_time_s"}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from cifar_core.data import write_synthetic

    root = tmp_path_factory.mktemp("tiny")
    write_synthetic(root, n_train=500, n_test=100, seed=0)  # 400 training images: 4 steps an epoch
    return root


def tiny_config(**overrides) -> TrainConfig:
    return TrainConfig().with_overrides({"model.name": "tinycnn", "optim.name": "sgd", "optim.lr": 0.05,
                                         "optim.momentum": 0.9, "run.epochs": 3, "run.batch_size": 100,
                                         "run.eval_batch_size": 500, "run.device": "cpu", **overrides})


def without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def without_flag(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "replayed"} for row in rows]


def weights(trial: ResultDir) -> dict:
    return torch.load(trial.commit_point, weights_only=True)["model_state"]


def stop_in_report_of(epoch: int, seen: list[dict]):
    """A report that ends the trial inside its report of `epoch`, as Tune does (SystemExit) when ASHA
    or a stop request ends a trial; a kill there leaves the same files."""
    def report(metrics: dict) -> None:
        seen.append(metrics)
        if metrics["epoch"] == epoch:
            raise SystemExit(0)
    return report


def test_a_trial_ended_mid_search_continues_from_its_last_pt_and_reports_each_epoch_from_1(tiny_root, tmp_path):
    cfg, digest = tiny_config(), data_digest(tiny_root)
    whole: list[dict] = []
    reference = trial_directory(tmp_path, "reference", "t_00000")
    run_trial(cfg, tiny_root, reference, digest, whole.append)
    assert [m["epoch"] for m in whole] == [1, 2, 3]

    trial, first = trial_directory(tmp_path, "stopped", "t_00000"), []
    with pytest.raises(SystemExit):
        run_trial(cfg, tiny_root, trial, digest, stop_in_report_of(2, first))
    assert not (trial.path / "complete.json").exists()
    again: list[dict] = []
    run_trial(cfg, tiny_root, trial, digest, again.append)  # Tune started it again, from nothing
    # Epochs 1 and 2 reported again exactly as first reported (their own timings: not trained again),
    # then epoch 3 trained: Tune's count and ASHA's rungs see each epoch in order, from 1.
    assert [m["epoch"] for m in again] == [1, 2, 3] and [m.get("replayed") for m in again] == [True, True, None]
    assert without_flag(again[:2]) == first
    assert without_timings(without_flag(again)) == without_timings(whole)
    assert all(torch.equal(a, b) for a, b in zip(weights(trial).values(), weights(reference).values(), strict=True))
    assert (trial.path / "complete.json").exists()

    last = trial.commit_point.stat()
    finished: list[dict] = []
    run_trial(cfg, tiny_root, trial, digest, finished.append)  # done: reported again, nothing trained
    assert finished == [{**m, "replayed": True} for m in without_flag(again)]
    assert (trial.commit_point.stat().st_ino, trial.commit_point.stat().st_mtime_ns) == (last.st_ino, last.st_mtime_ns)


def test_a_trial_directory_holding_another_config_is_refused(tiny_root, tmp_path):
    digest = data_digest(tiny_root)
    trial = trial_directory(tmp_path, "x", "t_00000")
    with pytest.raises(SystemExit):
        run_trial(tiny_config(), tiny_root, trial, digest, stop_in_report_of(1, []))
    with pytest.raises(ConfigError, match="its trial has other settings \\(optim.lr was 0.05, now 0.1\\)"):
        run_trial(tiny_config(**{"optim.lr": 0.1}), tiny_root, trial, digest, lambda metrics: None)


@pytest.mark.parametrize("field", ["history", "rng", "optimizer_state"])
def test_a_trials_last_pt_without_what_a_resume_reads_is_refused_in_one_line(tiny_root, tmp_path, field):
    """A trial resumes from its last.pt as a training run does: the same checks, a CheckpointError
    naming the file and the field, nothing of the trial's changed."""
    from cifar_core.checkpoint import save_checkpoint
    from cifar_core.errors import CheckpointError

    digest = data_digest(tiny_root)
    trial = trial_directory(tmp_path, "x", "t_00000")
    with pytest.raises(SystemExit):
        run_trial(tiny_config(), tiny_root, trial, digest, stop_in_report_of(1, []))
    state = torch.load(trial.commit_point, weights_only=True)
    del state[field]
    save_checkpoint(state, trial.commit_point)
    before = {p.name: p.read_bytes() for p in trial.path.iterdir() if p.is_file() and p.name != ".lock"}
    with pytest.raises(CheckpointError, match=f"{trial.commit_point}.*{field}"):
        run_trial(tiny_config(), tiny_root, trial, digest, lambda metrics: None)
    assert {p.name: p.read_bytes() for p in trial.path.iterdir() if p.is_file() and p.name != ".lock"} == before


def test_a_finished_search_is_done_whatever_its_budget_and_other_settings_are_refused(tiny_root, tmp_path):
    """Resources and top_k may change (a finished search is then only re-summarised, and keeps on
    record what it ran with); what it searches may not."""
    from cifar_core.tune.search import TuneSettings, experiment_record, open_search, search_request
    from cifar_core.tune.space import load_space

    def request(settings: TuneSettings):
        return search_request(settings, experiment_record(settings, load_space(settings.space), tiny_root))

    settings = TuneSettings(experiment="x", max_concurrent=2)
    exp_dir = tmp_path / "tune" / "x"
    with ResultDir(exp_dir, "search", root=tmp_path) as search:
        assert open_search(search, request(settings)) is Opened.FRESH
        (exp_dir / "trials.csv").write_text("rank,trial_id\n")
        assert open_search(search, request(dataclasses.replace(settings, max_concurrent=4))) is Opened.RESUME
        search.complete({"complete": True})
        more = dataclasses.replace(settings, max_concurrent=8, cpus_per_trial=3.0, top_k=5, device="cpu")
        assert open_search(search, request(more)) is Opened.DONE
        assert search.recorded()["budget"]["max_concurrent"] == 4  # what the search ran with
        for changed, message in ((dict(max_epochs=5), "max_epochs was 30, now 5"), (dict(seed=1), "seed was 0, now 1"),
                                 (dict(batch_size=64), "batch_size was 128, now 64"),
                                 (dict(space="modern"), "space was '[0-9a-f]+', now '[0-9a-f]+'")):
            with pytest.raises(ConfigError, match=f"its search has other settings \\({message}\\); rerun with the "
                                                  "settings it was started with to resume it, or choose another name"):
                open_search(search, request(dataclasses.replace(settings, **changed)))
