"""The pipeline: stages in order, skipped when their summary carries the same config hash, so a
killed pipeline run again continues where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

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


@pytest.mark.slow  # real Ray Tune and training: ~30 s on a 2-core CPU
def test_smoke_pipeline_end_to_end_on_a_tiny_profile(tmp_path, monkeypatch, ray_env):
    """The real stages (synthetic data, Ray Tune, retrain, DCGAN, FID with a test-made Inception
    weights file, report), shrunk to seconds; then skip and resume."""
    from cifar_core.fid.inception import write_random_weights
    from jobs.cli import cli

    weights = tmp_path / "inception.pth"
    write_random_weights(weights, seed=0)
    monkeypatch.setenv("CIFAR_FID_WEIGHTS", str(weights))

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"models": [{"names": ["tinycnn"]}], "fixed": {"run.eval_batch_size": 500},
                                     "optimizers": {"sgd": {"lr": {"loguniform": [0.01, 0.1]}, "momentum": 0.9}}}))
    tiny = {
        # Few training images (one batch of the recipes): FID's selection passes the whole training split
        # through Inception.
        "data": {"if_missing": "synthesize", "n_train": 128, "n_test": 40, "seed": 0},
        "tune": {"experiment": "smoke", "space": str(space), "num_samples": 2, "max_concurrent": 2, "max_epochs": 1,
                 "grace_period": 1, "reduction_factor": 2, "cpus_per_trial": 1.0, "batch_size": 50, "seed": 0},
        "retrain": {"experiment": "smoke", "top_k": 2, "epochs": 1, "select": "trials"},
        "recipe-a": {"models": ["cnn6"], "seeds": [0], "epochs": 1, "amp": False},
        "ablation": {"models": ["cnn6"], "augment": "none"},
        "recipe-b": {"seeds": [0, 1], "steps": 1, "eval_every": 1, "amp": False},
        "gan": {"run": "smoke", "steps": 4, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 2,
                "sample_every": 2, "checkpoint_every": 2, "seed": 0},
        "fid": {"gan_run": "smoke", "n": 4, "if_no_weights": "fail"},
        "fid-b": {"gan_run": "smoke", "step": 4, "n": 4, "if_no_weights": "fail"},
        "resources": pipeline.PROFILES["smoke"]["resources"],
    }
    monkeypatch.setitem(pipeline.PROFILES, "smoke", tiny)
    # Relative paths, as `make demo` passes them: Ray trials run in another working directory.
    monkeypatch.chdir(tmp_path)
    data, results = Path("data"), Path("results")
    args = ["pipeline", "--profile", "smoke", "--data-dir", str(data), "--results-dir", str(results), "--device", "cpu"]

    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "SYNTHETIC" in first.output  # said plainly
    everything = [s.name for s in pipeline.STAGES]
    assert stage_lines(first.output) == [[name, "ran"] for name in everything]
    assert f"results: {results.resolve()}" in first.output
    assert f"report:  {results / 'report' / 'index.html'}" in first.output
    assert (results / "report" / "index.html").stat().st_size > 10_000
    fid = json.loads((results / "fid" / "smoke-select-n4" / "summary.json").read_text())
    assert [entry["step"] for entry in fid["ranking"]] and fid["fid"] >= 0
    retrain = json.loads((results / "retrain" / "smoke" / "summary.json").read_text())
    assert len(retrain["models"]) == 2 and retrain["pipeline"]["stage"] == "retrain"
    assert json.loads((results / "tune" / "smoke" / "summary.json").read_text())["trials"] == 2
    ablation = json.loads((results / "recipe" / "report-a-augment-none-e1" / "summary.json").read_text())
    assert ablation["budget"] == {"epochs": 1} and ablation["augment"] == "none"  # recipe-a's budget, no augmentation
    assert [p["step"] for p in json.loads((results / "recipe" / "report-b-s1" / "summary.json").read_text())
            ["models"][1]["test_curve"]] == [1]
    fid_b = json.loads((results / "fid" / "smoke-step_4-n4" / "summary.json").read_text())
    assert fid_b["protocol"] == "checkpoint" and fid_b["pipeline"]["stage"] == "fid-b"
    assert_fixture_has_the_shape_of(results)

    (results / "retrain" / "smoke" / "summary.json").unlink()  # as if killed during retraining
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert stage_lines(second.output) == [[name, "ran" if name in ("data", "retrain") else "skipped"]
                                          for name in everything]


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "results"


def assert_fixture_has_the_shape_of(results: Path) -> None:
    """The contract between the stages and the report's tests: every key (and kind of value) the
    committed fixture tree has, real stage outputs have too. A stage that renames or drops what the
    report reads fails here; then rerun tests/fixtures/make_results.py."""
    pairs = [("pipeline/fixture/summary.json", "pipeline/smoke/summary.json"),
             ("pipeline/fixture/data/summary.json", "pipeline/smoke/data/summary.json"),
             *((f"tune/exp/{name}", f"tune/smoke/{name}") for name in ("summary.json", "top_k.json", "experiment.json")),
             ("retrain/exp/summary.json", "retrain/smoke/summary.json"),
             ("recipe/report-a-e1/summary.json", "recipe/report-a-e1/summary.json"),
             ("recipe/report-a-augment-none-e1/summary.json", "recipe/report-a-augment-none-e1/summary.json"),
             ("recipe/report-b-s2/summary.json", "recipe/report-b-s1/summary.json"),
             ("train/tiny-evaluated/summary.json", "train/report-a-cnn6-e1-seed0/summary.json"),
             ("gan/dcgan/summary.json", "gan/smoke/summary.json"),
             ("fid/dcgan-select-n4/summary.json", "fid/smoke-select-n4/summary.json"),
             ("fid/dcgan-step_40-n4/summary.json", "fid/smoke-step_4-n4/summary.json")]
    for fixture, fresh in pairs:
        assert_within(json.loads((FIXTURE / fixture).read_text()), json.loads((results / fresh).read_text()), fixture)
    for fixture, fresh in (("gan/dcgan/metrics.jsonl", "gan/smoke/metrics.jsonl"),
                           ("train/tiny-evaluated/metrics.jsonl", "train/report-a-cnn6-e1-seed0/metrics.jsonl")):
        first_row = [json.loads(line) for line in (FIXTURE / fixture).read_text().splitlines()][:1]
        assert_within(first_row, [json.loads(line) for line in (results / fresh).read_text().splitlines()], fixture)
    header = (FIXTURE / "tune/exp/trials.csv").read_text().splitlines()[0].split(",")
    assert set(header) <= set((results / "tune/smoke/trials.csv").read_text().splitlines()[0].split(","))


DATA_KEYED = {"epochs_histogram", "status_counts", "params", "evaluations", "space_file"}


def assert_within(fixture, fresh, where: str) -> None:
    """`fixture`'s keys are all in `fresh`, recursively, with values of the same kind (null matches any)."""
    if fixture is None or fresh is None:
        return
    if isinstance(fixture, dict):
        assert isinstance(fresh, dict), where
        if where.rsplit(".", 1)[-1] in DATA_KEYED:
            return  # its keys are data (statuses, epochs, searched keys), not the shape
        for key, value in fixture.items():
            if key == "pipeline" and where.startswith(("tune", "recipe", "gan", "fid", "retrain")):
                continue  # the pipeline's stamp: only in summaries a pipeline made
            assert key in fresh, f"{where}: real outputs have no {key!r}"
            assert_within(value, fresh[key], f"{where}.{key}")
    elif isinstance(fixture, list):
        assert isinstance(fresh, list), where
        if fixture and fresh:
            assert_within(fixture[0], fresh[0], f"{where}[0]")
    else:
        number = (int, float)
        same = (isinstance(fixture, number) and isinstance(fresh, number) and not isinstance(fixture, bool)) \
            or type(fixture) is type(fresh)
        assert same, f"{where}: {type(fixture).__name__} in the fixture, {type(fresh).__name__} in real outputs"


def stage_lines(output: str) -> list[list[str]]:
    """(stage, status) of each stage line `cifar pipeline` prints at the end."""
    names = {stage.name for stage in pipeline.STAGES}
    statuses = {"ran", "skipped", "unavailable", "failed", "blocked"}
    return [words[:2] for words in map(str.split, output.splitlines())
            if len(words) >= 2 and words[0] in names and words[1] in statuses]


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
