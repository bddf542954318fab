"""The pipeline: stages in order, skipped when their summary carries the same config hash, so a
killed pipeline run again continues where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cifar_core import pipeline
from cifar_core.atomic import atomic_write_json
from cifar_core.pipeline import PipelineContext, Stage, run_pipeline


class Killed(Exception):
    """Stands in for the pipeline process dying inside a stage."""


def counting_stage(name: str, calls: list[str], fail_once: set[str] | None = None, needs: tuple[str, ...] = ()) -> Stage:
    def run(ctx: PipelineContext, config: dict, *needed: dict) -> dict:
        calls.append(name)
        if fail_once is not None and name in fail_once:
            fail_once.discard(name)
            raise Killed(name)
        summary = {"stage": name, "value": config["value"]}
        atomic_write_json(summary_path(ctx, config), summary)
        return summary

    def summary_path(ctx: PipelineContext, config: dict) -> Path:
        return ctx.results_dir / name / "summary.json"

    return Stage(name, run, summary_path, needs=needs)


def unit_profile(monkeypatch, **sections) -> None:
    monkeypatch.setitem(pipeline.PROFILES, "unit", sections)
    monkeypatch.setattr(pipeline, "_build_report", lambda ctx, work: None)  # the report has its own tests


def test_stages_run_in_order_skip_when_done_and_resume_after_a_failure(tmp_path, monkeypatch):
    unit_profile(monkeypatch, a={"value": 1}, b={"value": 2}, c={"value": 3}, d={"value": 4})
    calls: list[str] = []
    fail_once = {"b"}
    # d needs only a: it runs although b fails; c needs b: it is blocked, with b's message.
    stages = [counting_stage("a", calls, fail_once), counting_stage("b", calls, fail_once, needs=("a",)),
              counting_stage("c", calls, fail_once, needs=("b",)), counting_stage("d", calls, fail_once, needs=("a",))]
    results = tmp_path / "results"

    with pytest.raises(Killed):
        run_pipeline("unit", tmp_path / "data", results, stages=stages, with_ray=False)
    assert calls == ["a", "b", "d"]
    assert json.loads((results / "a" / "summary.json").read_text())["pipeline"]["stage"] == "a"
    recorded = json.loads((results / "pipeline" / "unit" / "summary.json").read_text())
    assert recorded["complete"] is False
    assert [(s["stage"], s["status"]) for s in recorded["stages"]] == [
        ("a", "ran"), ("b", "failed"), ("c", "blocked"), ("d", "ran")]
    assert recorded["stages"][2]["reason"] == "needs b, which failed: b"

    summary = run_pipeline("unit", tmp_path / "data", results, stages=stages, with_ray=False)  # continues at b
    assert calls == ["a", "b", "d", "b", "c"]
    assert [s["status"] for s in summary["stages"]] == ["skipped", "ran", "ran", "skipped"]

    run_pipeline("unit", tmp_path / "data", results, stages=stages, with_ray=False)  # all done: nothing runs
    assert calls == ["a", "b", "d", "b", "c"]

    # A changed config runs that stage again, and the stages that read its results.
    summary = run_pipeline("unit", tmp_path / "data", results, stages=stages, with_ray=False, overrides=("b.value=20",))
    assert calls == ["a", "b", "d", "b", "c", "b", "c"]
    assert [s["status"] for s in summary["stages"]] == ["skipped", "ran", "ran", "skipped"]
    assert json.loads((results / "pipeline" / "unit" / "summary.json").read_text())["complete"]


@pytest.mark.parametrize(("override", "message"), [
    ("tune.num_sample=3", "the smoke profile has no such key"),
    ("tune.num_samples=three", "expected a int like the default 4"),
    ("gan.steps=1.5", "expected a int"),
    ("resources", "expected SECTION.KEY=VALUE"),
    ("resources.gan=1", "no such key"),
    ("tune.max_epochs=[1", "is not a YAML value"),
])
def test_profile_overrides_are_checked_against_the_profile(override, message):
    from cifar_core.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        pipeline.resolve_profile("smoke", [override])


def test_a_null_override_is_checked_by_its_stage_before_anything_runs(tmp_path, monkeypatch):
    from cifar_core.errors import ConfigError

    monkeypatch.setattr(pipeline, "_build_report", lambda ctx, work: None)
    with pytest.raises(ConfigError, match="steps"):
        run_pipeline("smoke", tmp_path / "data", tmp_path / "results", overrides=("gan.steps=null",),
                     stages=pipeline.STAGES[:2], with_ray=False)
    assert not (tmp_path / "data").exists()


def test_profile_overrides_change_only_what_they_name():
    config = pipeline.resolve_profile("full", ["tune.num_samples=20", "resources.gan.gpus=0.25",
                                               "tune.gpus_per_trial=0.5", "retrain.select=trials"])
    assert config["tune"]["num_samples"] == 20 and config["tune"]["gpus_per_trial"] == 0.5
    assert config["resources"]["gan"] == {"cpus": 2, "gpus": 0.25}
    assert config["retrain"]["select"] == "trials"
    assert pipeline.PROFILES["full"]["tune"]["num_samples"] == 60  # the profile itself is untouched


def test_unknown_profile_is_an_error(tmp_path):
    from cifar_core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown pipeline profile 'huge'"):
        run_pipeline("huge", tmp_path, tmp_path)


def test_full_profile_without_data_or_network_fails_clearly(tmp_path, monkeypatch):
    from cifar_core.data import verify as verify_module
    from cifar_core.errors import DataError

    # This machine may be online: point the download probe at a port nothing listens on.
    monkeypatch.setattr(verify_module, "DOWNLOAD_HOST", "127.0.0.1")
    monkeypatch.setattr(pipeline, "_build_report", lambda ctx, work: None)
    with pytest.raises(DataError, match="the full profile needs the real CIFAR-100"):
        run_pipeline("full", tmp_path / "empty", tmp_path / "results", stages=pipeline.STAGES[:1], with_ray=False)


def test_fid_stage_without_weights_is_reported_not_stamped_or_fails_by_profile(tmp_path, monkeypatch):
    from cifar_core.errors import CifarError
    from cifar_core.fid import inception

    monkeypatch.delenv("CIFAR_FID_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    monkeypatch.setattr(inception, "WEIGHTS_URL", "http://127.0.0.1:9/pt_inception.pth")  # nothing listens
    fid_stage = [s for s in pipeline.STAGES if s.name == "fid"]
    unit_profile(monkeypatch, fid={"gan_run": "g", "n": 4, "if_no_weights": "skip"})
    summary = run_pipeline("unit", tmp_path / "data", tmp_path / "results", stages=fid_stage, with_ray=False)
    (record,) = summary["stages"]
    assert record["status"] == "unavailable" and "CIFAR_FID_WEIGHTS" in record["reason"]
    assert not (tmp_path / "results" / "fid").exists()

    unit_profile(monkeypatch, fid={"gan_run": "g", "n": 4, "if_no_weights": "fail"})
    with pytest.raises(CifarError, match="weights"):
        run_pipeline("unit", tmp_path / "data", tmp_path / "results", stages=fid_stage, with_ray=False)


def test_device_cuda_applies_to_the_stages_that_train(tmp_path, monkeypatch):
    """--device cuda (what the chart passes on a GPU cluster) does not stop the data check, which
    holds no GPU; a training stage without a GPU share is refused before it starts."""
    from cifar_core.errors import ConfigError

    monkeypatch.setattr(pipeline, "_build_report", lambda ctx, work: None)
    tiny = ("data.n_train=200", "data.n_test=100")
    summary = run_pipeline("smoke", tmp_path / "data", tmp_path / "results", device="cuda", overrides=tiny,
                           stages=pipeline.STAGES[:1], with_ray=False)
    assert [s["status"] for s in summary["stages"]] == ["ran"]
    with pytest.raises(ConfigError, match="--device cuda needs a GPU share"):
        run_pipeline("smoke", tmp_path / "fresh", tmp_path / "results", device="cuda", overrides=tiny,
                     stages=pipeline.STAGES[:2], with_ray=False)
    assert not (tmp_path / "fresh").exists()  # refused before the data stage ran


def test_a_stage_that_reads_another_section_runs_again_when_that_section_changes(tmp_path, monkeypatch):
    """The ablation trains with recipe-a's budget: a change there must not leave an old ablation standing."""
    unit_profile(monkeypatch, a={"value": 1}, b={"value": 2})
    calls: list[str] = []
    stages = [counting_stage("a", calls), Stage("b", counting_stage("b", calls).run,
                                                counting_stage("b", calls).summary_path, reads=("a",))]
    run_pipeline("unit", tmp_path / "data", tmp_path / "results", stages=stages, with_ray=False)
    run_pipeline("unit", tmp_path / "data", tmp_path / "results", stages=stages, with_ray=False)
    assert calls == ["a", "b"]
    run_pipeline("unit", tmp_path / "data", tmp_path / "results", stages=stages, with_ray=False, overrides=("a.value=5",))
    assert calls == ["a", "b", "a", "b"]


def test_the_ablation_is_recipe_a_without_augmentation():
    config = pipeline.resolve_profile("full", ["recipe-a.epochs=7", "recipe-a.seeds=[1, 2]"])
    ctx = PipelineContext("full", Path("data"), Path("results"), config=config)
    plan = pipeline.ablation_plan(ctx, config["ablation"])
    assert (plan.recipe, plan.epochs, plan.seeds, plan.augment, plan.amp) == ("report-a", 7, (1, 2), "none", False)
    assert plan.model_names == ("cnn6", "cnn7", "cnn2") and plan.name == "report-a-augment-none-e7"
    recipe_b = pipeline.recipe_b_plan(ctx, config["recipe-b"])
    assert (recipe_b.steps, recipe_b.seeds, recipe_b.eval_every) == (10_000, (0, 1, 2), 500)


@pytest.mark.parametrize(("override", "message"), [
    ("recipe-a.models=[cnn9]", "recipe report-a has no model 'cnn9'"),
    ("recipe-b.seeds=[0, 0]", "must not repeat"),
    ("ablation.augment=heavy", "unknown augmentation preset 'heavy'"),
])
def test_bad_recipe_settings_are_refused_before_anything_runs(tmp_path, override, message):
    from cifar_core.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        run_pipeline("smoke", tmp_path / "data", tmp_path / "results", overrides=(override,), with_ray=False)
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


def test_report_bs_fid_protocol_without_its_snapshot_fails_naming_the_kept_steps(tmp_path, monkeypatch):
    from cifar_core.errors import CifarError

    (tmp_path / "results" / "gan" / "g" / "checkpoints").mkdir(parents=True)
    (tmp_path / "results" / "gan" / "g" / "checkpoints" / "step_2000.pt").write_bytes(b"")
    unit_profile(monkeypatch, **{"fid-b": {"gan_run": "g", "step": 46000, "n": 4, "if_no_weights": "skip"}})
    stages = [s for s in pipeline.STAGES if s.name == "fid-b"]
    with pytest.raises(CifarError, match="no snapshot .*step_46000.pt .*the run kept steps: 2,000"):
        run_pipeline("unit", tmp_path / "data", tmp_path / "results", stages=stages, with_ray=False)
