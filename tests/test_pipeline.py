"""The pipeline: the registry's stages in order, skipped when their record completed the same request
(settings, data, the requests of what they need) and their summary is the one recorded, so a killed
pipeline run again continues where it stopped; its settings declared and checked like any other;
published comparisons only on the published data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cifar_core import pipeline
from cifar_core.atomic import atomic_write_json
from cifar_core.errors import CifarError, ConfigError, DataError
from cifar_core.execution.resources import Resources
from cifar_core.pipeline import PipelineRun, run_pipeline
from cifar_core.stages import Context, Stage, all_stages, get_stage
from cifar_core.stages.recipes import recipe_plan


class Killed(Exception):
    """Stands in for the pipeline process dying inside a stage."""


def counting_stage(name: str, calls: list[str], fail_once: set[str] | None = None, needs: tuple[str, ...] = (),
                   reads: tuple[str, ...] = ()) -> Stage:
    """A stage with a real section's settings (its hash) and stand-in work that counts its calls."""

    def work(name_: str, summary_path: Path) -> dict:
        stage = name_
        calls.append(stage)
        if fail_once is not None and stage in fail_once:
            fail_once.discard(stage)
            raise Killed(stage)
        atomic_write_json(summary_path, {"stage": stage})
        return {"stage": stage}

    def summary(ctx: Context) -> Path:
        return ctx.results.root / name / "summary.json"

    def submit(ctx: Context, needed: dict):
        return ctx.submit(name, work, needed, uses_device=False, name_=name, summary_path=summary(ctx))

    return Stage(name, get_stage(name).settings, Resources(), summary, submit, needs=needs, reads=reads,
                 uses_device=False)


@pytest.fixture(autouse=True)
def no_report(monkeypatch):
    monkeypatch.setattr(PipelineRun, "_report", lambda self: None)  # the report has its own tests


def test_stages_run_in_order_skip_when_done_and_resume_after_a_failure(tmp_path):
    calls: list[str] = []
    fail_once = {"fid"}
    # recipe-a needs only gan: it runs although fid fails; fid-b needs fid: it is blocked, with fid's message.
    stages = [counting_stage("gan", calls, fail_once), counting_stage("fid", calls, fail_once, needs=("gan",)),
              counting_stage("fid-b", calls, fail_once, needs=("fid",)),
              counting_stage("recipe-a", calls, fail_once, needs=("gan",))]
    results = tmp_path / "results"

    with pytest.raises(Killed):
        run_pipeline("smoke", tmp_path / "data", results, stages=stages, with_ray=False)
    assert calls == ["gan", "fid", "recipe-a"]
    record = json.loads((results / "pipeline" / "smoke" / "stages" / "gan" / "summary.json").read_text())
    assert record["summary"] == str(results / "gan" / "summary.json") and record["ran_on"][0]["work_s"] >= 0
    assert "pipeline" not in json.loads((results / "gan" / "summary.json").read_text())  # no later stamping
    recorded = json.loads((results / "pipeline" / "smoke" / "summary.json").read_text())
    assert recorded["complete"] is False
    assert [(s["stage"], s["status"]) for s in recorded["stages"]] == [
        ("gan", "ran"), ("fid", "failed"), ("fid-b", "blocked"), ("recipe-a", "ran")]
    assert recorded["stages"][2]["reason"] == "needs fid, which failed: fid"

    summary = run_pipeline("smoke", tmp_path / "data", results, stages=stages, with_ray=False)  # continues at fid
    assert calls == ["gan", "fid", "recipe-a", "fid", "fid-b"]
    assert [s["status"] for s in summary["stages"]] == ["skipped", "ran", "ran", "skipped"]

    run_pipeline("smoke", tmp_path / "data", results, stages=stages, with_ray=False)  # all done: nothing runs
    assert calls == ["gan", "fid", "recipe-a", "fid", "fid-b"]

    # A changed setting runs that stage again, and the stages that read its results.
    summary = run_pipeline("smoke", tmp_path / "data", results, stages=stages, with_ray=False, overrides=("fid.n=20",))
    assert calls == ["gan", "fid", "recipe-a", "fid", "fid-b", "fid", "fid-b"]
    assert [s["status"] for s in summary["stages"]] == ["skipped", "ran", "ran", "skipped"]
    assert json.loads((results / "pipeline" / "smoke" / "summary.json").read_text())["complete"]


@pytest.mark.parametrize(("override", "message"), [
    ("tune.num_sample=3", "unknown setting 'tune.num_sample' (known: experiment, space, num_samples"),
    ("tune.num_samples=three", "tune.num_samples = 'three' has the wrong type: expected int"),
    ("gan.steps=1.5", "gan.steps = 1.5 has the wrong type: expected int"),
    ("resources", "expected KEY=VALUE"),
    ("resources.gan=1", "resources.gan is a group of settings, not a value"),
    ("tune.max_epochs=[1", "is not a YAML value"),
    ("gan.run=../../ESCAPED", "gan.run '../../ESCAPED': use letters, digits"),
    ("gan.run=a/b", "gan.run 'a/b'"),
    ("recipe-b.seeds=[]", "recipe-b.seeds = [] is empty"),
    ("recipe-b.seeds=[0, 0]", "recipe-b.seeds = [0, 0] repeats a value"),
    ("gan.lr=1e39", "gan.lr = 1e+39 does not fit a float32"),
    ("resources.gan.cpus=1e308", "does not fit a float32"),
    ("resources.gan.gpus=1.5", "a share above 1 GPU must be a whole number"),
    ("fid.if_no_weights=explode", "fid.if_no_weights = 'explode' is out of range: expected one of fail, skip"),
    ("tune.experiment=x/y", "tune.experiment 'x/y'"),
    ("gan.steps=null", "gan.steps must not be empty"),
])
def test_profile_overrides_are_checked_like_every_other_setting(override, message):
    with pytest.raises(ConfigError) as error:
        pipeline.resolve_profile("smoke", [override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_profile_overrides_change_only_what_they_name():
    config = pipeline.resolve_profile("full", ["tune.num_samples=20", "resources.gan.gpus=0.25",
                                               "tune.gpus_per_trial=0.5", "retrain.select=trials"])
    assert config.tune.search.num_samples == 20 and config.tune.search.gpus_per_trial == 0.5
    assert (config.resources.gan.cpus, config.resources.gan.gpus) == (2, 0.25)
    assert config.retrain.select == "trials" and config.tune.search.max_epochs == 30
    assert pipeline.resolve_profile("full").tune.search.num_samples == 60  # the profile itself is untouched
    # A fractional GPU share in the smoke profile, whose shares are whole zeros.
    assert pipeline.resolve_profile("smoke", ["resources.gan.gpus=0.5"]).resources.gan.gpus == 0.5


def test_the_single_stages_ask_what_the_pipeline_asks():
    assert pipeline.stage_resources("gan") == pipeline.resolve_profile("full").resources.gan
    assert pipeline.stage_resources("fid-b") == pipeline.resolve_profile("full").resources.fid_b


def test_unknown_profile_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown pipeline profile 'huge'"):
        run_pipeline("huge", tmp_path, tmp_path)


def test_full_profile_without_data_or_network_fails_clearly(tmp_path, monkeypatch):
    from cifar_core.data import verify as verify_module

    # This machine may be online: point the download probe at a port nothing listens on.
    monkeypatch.setattr(verify_module, "DOWNLOAD_HOST", "127.0.0.1")
    with pytest.raises(DataError, match="the full profile needs the real CIFAR-100"):
        run_pipeline("full", tmp_path / "empty", tmp_path / "results", stages=all_stages()[:1], with_ray=False)


def test_full_profile_refuses_synthetic_data_before_anything_runs(tmp_path, synth_root):
    """`cifar pipeline` then `cifar pipeline --profile full` must not run the study on the stand-in."""
    with pytest.raises(DataError) as error:
        run_pipeline("full", synth_root, tmp_path / "results", with_ray=False)
    assert "needs the official CIFAR-100" in str(error.value) and "--allow-synthetic" in str(error.value)
    assert not (tmp_path / "results").exists()  # refused before any stage (or lock) wrote anything
    with pytest.raises(ConfigError, match="data.if_missing=synthesize would make a stand-in"):
        run_pipeline("full", tmp_path / "none", tmp_path / "results", overrides=("data.if_missing=synthesize",),
                     with_ray=False)
    # --allow-synthetic runs it anyway; the data stage says what the data is.
    summary = run_pipeline("full", synth_root, tmp_path / "results", stages=all_stages()[:1], with_ray=False,
                           allow_synthetic=True)
    assert summary["config"]["data"]["official_only"] is False
    data = json.loads((tmp_path / "results" / "pipeline" / "full" / "data" / "summary.json").read_text())
    assert data["synthetic"] is True


@pytest.mark.parametrize(("overrides", "message"), [
    (("tune.space=no-such-space.yaml",), "unknown search space 'no-such-space.yaml'"),
    (("fid-b.step=151",), "fid-b.step = 151: run smoke keeps snapshots at multiples of gan.checkpoint_every (50)"),
    (("fid-b.step=200",), "fid-b.step = 200"),
    (("fid-b.compare_steps=[100, 175]",), "fid-b.compare_steps[1] = 175"),
    (("tune.grace_period=5",), "tune.grace_period = 5 is out of range: expected <= tune.max_epochs (2)"),
    (("tune.num_samples=1",), "retrain.top_k = 2 is out of range: expected <= what the search lists"),
])
def test_settings_that_could_only_fail_later_are_refused_before_any_stage(tmp_path, overrides, message):
    """Issue 29, item 4: a search space that is not there, a snapshot the GAN never keeps, found after
    hours of the other stages' work, are refused before anything runs."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_pipeline("smoke", tmp_path / "data", tmp_path / "results", overrides=overrides, with_ray=False)
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()
    bad_space = tmp_path / "space.yaml"
    bad_space.write_text("models: [{names: [tinycnn]}]\noptimizers: {sgd: {lr: {uniform: [1, 0]}}}\n")
    with pytest.raises(ConfigError, match="space.yaml"):
        run_pipeline("smoke", tmp_path / "data", tmp_path / "results", overrides=(f"tune.space={bad_space}",),
                     with_ray=False)


def test_a_single_stage_of_the_full_profile_refuses_the_stand_in_too(tmp_path, synth_root):
    """`cifar pipeline --stage tune` (the chart's single stage) compares with report A as the whole
    study does: the data's check runs whichever stages run."""
    with pytest.raises(DataError, match="needs the official CIFAR-100"):
        run_pipeline("full", synth_root, tmp_path / "results", only=("tune",), with_ray=False)
    assert not (tmp_path / "results").exists()


def test_one_pipeline_at_a_time_per_profile_and_results(tmp_path):
    from cifar_core.runlock import RunLock, RunLocked

    with RunLock(tmp_path / "results" / "pipeline" / "smoke", what="pipeline"):
        with pytest.raises(RunLocked, match="in use by another pipeline"):
            run_pipeline("smoke", tmp_path / "data", tmp_path / "results", stages=all_stages()[:1], with_ray=False)


def test_fid_stage_without_weights_is_reported_not_stamped_or_fails_by_profile(tmp_path, monkeypatch):
    from cifar_core.fid import inception

    monkeypatch.delenv("CIFAR_FID_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    monkeypatch.setattr(inception, "WEIGHTS_URL", "http://127.0.0.1:9/pt_inception.pth")  # nothing listens
    fid_stage = [get_stage("fid")]
    summary = run_pipeline("smoke", tmp_path / "data", tmp_path / "results", stages=fid_stage, with_ray=False,
                           overrides=("fid.gan_run=g", "fid.n=4"))
    (record,) = summary["stages"]
    assert record["status"] == "unavailable" and "CIFAR_FID_WEIGHTS" in record["reason"]
    assert not (tmp_path / "results" / "fid").exists()

    with pytest.raises(CifarError, match="weights"):
        run_pipeline("smoke", tmp_path / "data", tmp_path / "results", stages=fid_stage, with_ray=False,
                     overrides=("fid.gan_run=g", "fid.n=4", "fid.if_no_weights=fail"))


def test_device_cuda_applies_to_the_stages_that_train(tmp_path):
    """--device cuda (what the chart passes on a GPU cluster) does not stop the data check, which
    holds no GPU; a training stage without a GPU share is refused before it starts."""
    tiny = ("data.n_train=200", "data.n_test=100")
    summary = run_pipeline("smoke", tmp_path / "data", tmp_path / "results", device="cuda", overrides=tiny,
                           stages=all_stages()[:1], with_ray=False)
    assert [s["status"] for s in summary["stages"]] == ["ran"]
    with pytest.raises(ConfigError, match="--device cuda needs a GPU share"):
        run_pipeline("smoke", tmp_path / "fresh", tmp_path / "results", device="cuda", overrides=tiny,
                     stages=all_stages()[:2], with_ray=False)
    assert not (tmp_path / "fresh").exists()  # refused before the data stage ran


def test_a_stage_that_reads_another_section_runs_again_when_that_section_changes(tmp_path):
    """The ablation trains with recipe-a's budget: a change there must not leave an old ablation standing."""
    calls: list[str] = []
    stages = [counting_stage("recipe-a", calls), counting_stage("ablation", calls, reads=("recipe-a",))]
    run_pipeline("smoke", tmp_path / "data", tmp_path / "results", stages=stages, with_ray=False)
    run_pipeline("smoke", tmp_path / "data", tmp_path / "results", stages=stages, with_ray=False)
    assert calls == ["recipe-a", "ablation"]
    run_pipeline("smoke", tmp_path / "data", tmp_path / "results", stages=stages, with_ray=False,
                 overrides=("recipe-a.steps=5",))
    assert calls == ["recipe-a", "ablation", "recipe-a", "ablation"]


def test_the_ablation_is_recipe_a_without_augmentation():
    config = pipeline.resolve_profile("full", ["recipe-a.epochs=7", "recipe-a.seeds=[1, 2]"])
    ctx = Context("full", config, Path("data"), pipeline.Results("results"))
    plan = recipe_plan(ctx, "ablation")
    assert (plan.recipe, plan.epochs, plan.seeds, plan.augment, plan.amp) == ("report-a", 7, (1, 2), "none", None)
    assert plan.model_names == ("cnn6", "cnn7", "cnn2") and plan.name == "report-a-augment-none-e7"
    recipe_b = recipe_plan(ctx, "recipe-b")
    assert (recipe_b.budget(), recipe_b.seed_list, recipe_b.spec("results", 0, "cpu").config.run.eval_test_every) == (
        {"steps": 10_000}, (0, 1, 2), 500)


@pytest.mark.parametrize(("override", "message"), [
    ("recipe-a.models=[cnn9]", "recipe report-a has no model 'cnn9'"),
    ("recipe-b.seeds=[0, 0]", "repeats a value"),
    ("ablation.augment=heavy", "ablation.augment = 'heavy' is out of range"),
    ("recipe-a.epochs=3", "steps"),  # the smoke profile gives recipe-a steps: not both
])
def test_bad_recipe_settings_are_refused_before_anything_runs(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        run_pipeline("smoke", tmp_path / "data", tmp_path / "results", overrides=(override,), with_ray=False)
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


def test_report_bs_fid_protocol_without_its_snapshot_fails_naming_the_kept_steps(tmp_path, monkeypatch):
    (tmp_path / "results" / "gan" / "g" / "checkpoints").mkdir(parents=True)
    (tmp_path / "results" / "gan" / "g" / "checkpoints" / "step_2000.pt").write_bytes(b"")
    stages = [get_stage("fid-b")]
    with pytest.raises(CifarError, match="no snapshot .*step_46000.pt .*the run kept steps: 2,000"):
        run_pipeline("smoke", tmp_path / "data", tmp_path / "results", stages=stages, with_ray=False,
                     overrides=("fid-b.gan_run=g", "fid-b.step=46000", "fid-b.n=4"))
