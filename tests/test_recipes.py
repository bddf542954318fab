"""The reports' own models as recipes (`cifar retrain --recipe`), and the test-set curve a run can
record along the way (report B's figure 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cifar_core.config import TrainConfig
from cifar_core.errors import ConfigError
from cifar_core.protocols import RECIPES, REPORT_A_MODELS
from cifar_core.retrain import RecipePlan, run_plan
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
    # The score made only because the first run ended at step 5 is gone: the extended run's curve is
    # the uninterrupted run's, number for number (scoring took nothing from training).
    assert resumed["test_curve"] == whole["test_curve"]
    with pytest.raises(ConfigError, match="run.eval_test_every = 0"):
        tiny_config(**{"run.eval_test_every": 0})


def test_recipes_carry_the_reports_settings():
    """Report A's section IV (SGD settings, activations) and V (100 epochs on all images); report B's
    resdw, Adam, flips and crops, 10,000 steps, three seeds; both in float32."""
    plan = RecipePlan(recipe="report-a")
    assert plan.model_names == ("cnn6", "cnn7", "cnn2") and plan.seed_list == (0,) and plan.size == 3
    for index, reported in enumerate(REPORT_A_MODELS):
        cfg = plan.spec("unused", index, "cpu").config
        assert (cfg.model.name, cfg.model.activation) == (reported.model, reported.activation)
        assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.dampening) == (
            "sgd", reported.lr, reported.momentum, reported.dampening)
        assert (cfg.run.epochs, cfg.run.steps, cfg.run.full_train, cfg.run.amp) == (100, None, True, False)
        assert cfg.augment.hflip and cfg.augment.rotation > 0 and cfg.augment.brightness > 0
    assert [m.model for m in REPORT_A_MODELS] == ["cnn6", "cnn7", "cnn2"]
    assert [m.activation for m in REPORT_A_MODELS] == ["relu", "leaky_relu", "relu"]

    b = RecipePlan(recipe="report-b")
    assert b.size == 3 and b.seed_list == (0, 1, 2)
    specs = [b.spec("unused", i, "cpu") for i in range(3)]
    assert [s.config.run.seed for s in specs] == [0, 1, 2]
    cfg = specs[0].config
    assert (cfg.model.name, cfg.optim.name, cfg.run.steps, cfg.run.full_train, cfg.run.amp) == (
        "resdw", "adam", 10_000, True, False)
    assert cfg.augment.hflip and cfg.augment.crop_padding == 4 and cfg.augment.rotation == 0 and cfg.augment.hue == 0
    assert cfg.run.eval_test_every == 500
    # A run of another budget or augmentation is another run, never an extension or a mix.
    names = {RecipePlan(recipe="report-a", epochs=e, augment=a).spec("unused", 0, "cpu").name
             for e in (100, 1) for a in (None, "none")}
    assert names == {"report-a-cnn6-e100-seed0", "report-a-cnn6-e1-seed0", "report-a-augment-none-cnn6-e100-seed0",
                     "report-a-augment-none-cnn6-e1-seed0"}
    assert RecipePlan(recipe="report-a", augment="none").name == "report-a-augment-none"
    assert RecipePlan(recipe="report-b", steps=20).name == "report-b-s20"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"recipe": "report-c"}, "recipe = 'report-c' is out of range: expected one of report-a, report-b"),
    ({"recipe": "report-a", "models": ("cnn9",)}, "no model 'cnn9' \\(known: cnn6, cnn7, cnn2\\)"),
    ({"recipe": "report-a", "seeds": (0, 0)}, "recipe report-a: seeds = \\[0, 0\\] repeats a value"),
    ({"recipe": "report-a", "seeds": (-1,)}, "recipe report-a: seeds\\[0\\] = -1 is out of range"),
    ({"recipe": "report-a", "seeds": ()}, "recipe report-a: seeds = \\[\\] is empty"),
    ({"recipe": "report-a", "epochs": 0}, "epochs = 0"),
    ({"recipe": "report-a", "epochs": 2, "steps": 3}, "steps = 3 is out of range: expected unset when epochs"),
    ({"recipe": "report-a", "augment": "heavy"}, "augment = 'heavy' is out of range"),
])
def test_bad_recipe_requests_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RecipePlan(**kwargs)


def test_recipe_runs_each_model_and_seed_and_tables_them(tmp_path, small_root):
    """report-b for 1 step on two seeds: a real resdw run per seed, mean and SD over them, the test
    curve figure; the table set against report B's 56.9 ± 4.6."""
    plan = RecipePlan(recipe="report-b", seeds=(0, 1), steps=1, eval_every=1)
    summary = run_plan(plan, small_root, tmp_path, device="cpu")
    assert summary["kind"] == "recipe" and summary["name"] == "report-b-s1" and summary["budget"] == {"steps": 1}
    runs = summary["models"]
    assert [(r["model"], r["seed"], r["steps"]) for r in runs] == [("resdw", 0, 1), ("resdw", 1, 1)]
    assert all([p["step"] for p in r["test_curve"]] == [1] for r in runs)
    assert runs[0]["test_top1"] != runs[1]["test_top1"] or runs[0]["test_loss"] != runs[1]["test_loss"]  # two seeds
    [model] = summary["by_model"]
    tops = [r["test_top1"] for r in runs]
    assert model["test_top1_mean"] == pytest.approx(sum(tops) / 2)
    assert model["test_top1_std"] == pytest.approx(abs(tops[0] - tops[1]) / 2 ** 0.5)
    out = tmp_path / "recipe" / "report-b-s1"
    assert json.loads((out / "summary.json").read_text())["by_model"] == summary["by_model"]
    assert (out / "test_accuracy.png").stat().st_size > 10_000 and (out / "loss.png").is_file()
    table = (out / "table.md").read_text()
    assert "| resdw | report B §2 |" in table and "56.9 | 4.6 | 68.1 | 4.3 | 1.099" in table
    assert f"| resdw (resdw) | this study | 0, 1 | {runs[0]['parameters']:,} | 1 step |" in table


def test_retrain_recipe_command(tmp_path, small_root):
    from jobs.cli import cli

    base = ["retrain", "--data-dir", str(small_root), "--results-dir", str(tmp_path), "--device", "cpu"]
    args = ["--recipe", "report-a", "--models", "cnn6", "--epochs", "1", "--augment", "none"]
    refused = CliRunner().invoke(cli, [*base, *args])  # tabled beside report A's numbers: its data only
    assert refused.exit_code == 2 and "needs the official CIFAR-100" in refused.output, refused.output
    assert not (tmp_path / "train").exists()
    base.append("--allow-synthetic")
    result = CliRunner().invoke(cli, [*base, *args])
    assert result.exit_code == 0, result.output
    assert "CNN6   test top-1" in result.output and "SYNTHETIC" in result.output
    out = tmp_path / "recipe" / "report-a-augment-none-e1"
    assert f"results: {out}" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["augment"] == "none" and summary["models"][0]["run"] == "report-a-augment-none-cnn6-e1-seed0"
    config = (tmp_path / "train" / "report-a-augment-none-cnn6-e1-seed0" / "config.yaml").read_text()
    assert "hflip: false" in config and "rotation: 0.0" in config and "lr: 0.004278" in config

    for args, message in ((["--recipe", "report-a", "--from-tune", "x"], "exactly one of --from-tune or --recipe"),
                          (["--from-tune", "x", "--seeds", "1"], "--seeds applies to --recipe"),
                          (["--recipe", "report-a", "--models", "cnn9"], "no model 'cnn9'"),
                          (["--recipe", "report-a", "--seeds", ""], "has an empty item"),
                          (["--recipe", "report-a", "--seeds", ",,"], "has an empty item"),
                          (["--recipe", "report-a", "--models", ""], "has an empty item"),
                          # options are the declared settings: each belongs to one kind of retrain
                          (["--recipe", "report-a", "--top-k", "2"], "--top-k applies to --from-tune"),
                          (["--recipe", "report-a", "--seeds", "0,x"], "every item must be a whole number"),
                          (["--recipe", "report-a", "--seeds", "1,1"], "repeats a value"),
                          (["--recipe", "report-a", "--eval-every", "0"], "x>=1")):
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_a_recipe_is_what_its_protocol_rows_say():
    """Recipes are derived from the provenance rows (protocols.recipe_from): every training setting a
    row states is what each run of the recipe trains with, per model where the row differs by model;
    nothing a run sets has no row (an unattributed value)."""
    for recipe in RECIPES.values():
        plan = RecipePlan(recipe=recipe.name)
        sourced = {key for s in recipe.protocol.settings for key in s.keys}
        for index in range(plan.size):
            spec = plan.spec(".", index, "cpu")
            model = spec.config.model.name
            for setting in recipe.protocol.settings:
                for key in setting.keys:
                    if "." not in key:
                        continue  # seeds, data: not a training setting
                    want = dict(setting.per_model)[model] if setting.per_model else setting.value
                    assert _dotted(spec.config, key) == want, (recipe.name, model, key)
            assert {*recipe.shared, *(k for m in recipe.models for k in m.overrides)} <= sourced, recipe.name
        assert plan.seed_list == next(s for s in recipe.protocol.settings if "seeds" in s.keys).value


def _dotted(config, key: str):
    for part in key.split("."):
        config = getattr(config, part)
    return config
