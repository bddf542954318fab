"""Search spaces as data: the shipped spaces, conditional sampling, and every way a file can be wrong."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from cifar_core.errors import ConfigError
from cifar_core.tune.space import flat_params, load_space, parse_space, space_names

REPORT_A_RANGES = {  # report A, section III
    "sgd": {"lr": (1e-5, 0.1), "momentum": (0, 0.4), "dampening": (0, 0.4)},
    "adam": {"lr": (1e-4, 0.1), "beta1": (0.8, 0.99999), "beta2": (0.8, 0.99999999)},
    "rmsprop": {"lr": (1e-4, 0.1), "alpha": (0.8, 1.0), "momentum": (0, 0.5)},
    "adagrad": {"lr": (1e-3, 0.1), "initial_accumulator_value": (0, 0.3), "lr_decay": (0, 0.1)},
}


def sample(space, n: int, seed: int = 0) -> list[dict]:
    from ray.tune.search.variant_generator import generate_variants

    rng = np.random.RandomState(seed)
    return [flat_params(v) for _ in range(n) for _, v in generate_variants(space.param_space(), random_state=rng)]


def test_shipped_spaces_load():
    assert {"report-a", "modern"} <= set(space_names())
    report_a = load_space("report-a")
    assert report_a.architectures == [f"cnn{i}" for i in range(1, 9)]
    assert set(report_a.optimizers) == set(REPORT_A_RANGES)
    modern = load_space("modern")
    assert {"resnet18", "wrn16_4", "resdw"} <= set(modern.architectures)
    assert {"optim.schedule", "optim.weight_decay", "optim.label_smoothing"} <= set(modern.shared)


def test_report_a_samples_only_the_chosen_optimizers_params_within_range():
    seen = set()
    for params in sample(load_space("report-a"), 200):
        opt = params["optim.name"]
        seen.add(opt)
        ranges = REPORT_A_RANGES[opt]
        used = {k.removeprefix("optim.") for k in params if k.startswith("optim.") and k != "optim.name"}
        assert used == set(ranges), f"{opt} trial carries another optimizer's keys: {params}"
        for key, (low, high) in ranges.items():
            assert low <= params[f"optim.{key}"] <= high
        assert 0.1 <= params["model.dropout"] <= 0.3
        assert params["model.activation"] in ("relu", "leaky_relu")
    assert seen == set(REPORT_A_RANGES)


def test_sgd_lr_is_log_uniform():
    lrs = np.array([p["optim.lr"] for p in sample(load_space("report-a"), 600) if p["optim.name"] == "sgd"])
    # Log-uniform on [1e-5, 0.1]: a quarter of the decades lie below 1e-4; uniform would put ~0% there.
    assert 0.12 < np.mean(lrs < 1e-4) < 0.40


def test_a_file_path_works_and_unknown_names_are_rejected(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"models": [{"names": ["tinycnn"]}], "optimizers": {"adam": {"lr": 0.001}}}))
    assert load_space(str(path)).architectures == ["tinycnn"]
    with pytest.raises(ConfigError, match="unknown search space 'nope'"):
        load_space("nope")


GOOD = {
    "models": [{"names": ["tinycnn"], "params": {"dropout": {"uniform": [0.1, 0.3]}}}],
    "optimizers": {"sgd": {"lr": {"loguniform": [1e-5, 0.1]}}, "adam": {"beta2": {"uniform": [0.8, 0.99]}}},
    "shared": {"optim.weight_decay": {"loguniform": [1e-5, 1e-3]}},
    "fixed": {"run.eval_batch_size": 500},
}


def with_change(path: str, value):
    """GOOD with one entry (dotted path, list indices as ints) replaced."""
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    keys = [int(k) if k.isdigit() else k for k in path.split("/")]
    target = data
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "named_key", "problem"),
    [
        ("models/0/names", ["tinycnn", "cnn99"], "models[0].names", "unknown model 'cnn99'"),
        ("optimizers/sgd/lr", {"loguniform": [0.1, 1e-5]}, "optimizers.sgd.lr", "inverted"),
        ("optimizers/sgd/lr", {"uniform": [0.5, 0.5]}, "optimizers.sgd.lr", "inverted or empty"),
        ("optimizers/sgd/lr", {"loguniform": [0.0, 0.1]}, "optimizers.sgd.lr", "must be positive"),
        ("optimizers/sgd/lr", {"loguniform": [-1.0, 0.1]}, "optimizers.sgd.lr", "must be positive"),
        ("optimizers/sgd/betas", {"uniform": [0.8, 0.9]}, "optimizers.sgd.betas", "unknown key"),
        ("optimizers/sgd/beta1", {"uniform": [0.8, 0.9]}, "optimizers.sgd.beta1", "unknown key"),  # adam's, not sgd's
        ("optimizers/lion", {"lr": 0.001}, "optimizers.lion", "unknown optimizer"),
        ("optimizers/adam/beta2", {"uniform": [0.8, 1.0]}, "optimizers.adam.beta2", "optim.beta2 = 1.0"),
        ("optimizers/sgd/momentum", {"normal": [0.1, 0.2]}, "optimizers.sgd.momentum", "exactly one of"),
        ("optimizers/sgd/momentum", [0.1, 0.2], "optimizers.sgd.momentum", "bare list"),
        ("optimizers/sgd/momentum", {"choice": []}, "optimizers.sgd.momentum", "non-empty list"),
        ("models/0/params/width", {"uniform": [8, 16]}, "models[0].params.width", "unknown key"),
        ("models/0/params/dropout", {"uniform": [0.5, 1.5]}, "models[0].params.dropout", "model.dropout = 1.5"),
        ("shared/optim.weight_dekay", 0.1, "shared.optim.weight_dekay", "unknown setting"),
        ("shared/run.epochs", 3, "shared.run.epochs", "set by the tune command"),
        ("fixed/optim.lr", 0.1, "fixed.optim.lr", "also set"),
        ("fixed/run.batch_size", {"choice": [64, 128]}, "fixed.run.batch_size", "plain value"),
        ("searchalg", "hyperopt", "searchalg", "unknown key"),
        ("optimizers/sgd/lr", {"loguniform": [1e-5, float("inf")]}, "optimizers.sgd.lr", "needs finite bounds"),
        ("shared/optim.weight_decay", {"uniform": [0.0, float("nan")]}, "shared.optim.weight_decay", "finite bounds"),
        ("models/0/params/dropout", {"uniform": [float("-inf"), 0.3]}, "models[0].params.dropout", "finite bounds"),
        ("models/0/names", ["tinycnn", "dcgan_generator"], "models[0].names",
         "'dcgan_generator' is a gan network, not a classifier"),
    ],
)
def test_bad_space_is_rejected_naming_the_key(path, value, named_key, problem):
    with pytest.raises(ConfigError) as err:
        parse_space(with_change(path, value), "bad.yaml")
    message = str(err.value)
    assert f"search space bad.yaml: {named_key}:" in message
    assert problem in message


def test_missing_sections_are_rejected():
    with pytest.raises(ConfigError, match="models: must be a non-empty list"):
        parse_space({"optimizers": GOOD["optimizers"]}, "bad.yaml")
    with pytest.raises(ConfigError, match="optimizers: must map at least one optimizer"):
        parse_space({"models": GOOD["models"]}, "bad.yaml")


def test_bad_space_fails_before_ray_starts(tmp_path, synth_root):
    import ray

    from cifar_core.tune.search import TuneSettings, run_tune

    for bound in (0.0, ".inf"):  # the file as a user writes it: YAML's .inf is a float
        path = tmp_path / "bad.yaml"
        path.write_text(f"models: [{{names: [tinycnn]}}]\noptimizers: {{sgd: {{lr: {{loguniform: [{bound}, 0.1]}}}}}}\n")
        with pytest.raises(ConfigError, match="optimizers.sgd.lr"):
            run_tune(TuneSettings(experiment="bad", space=str(path)), synth_root, tmp_path / "results")
        assert not ray.is_initialized()
        assert not (tmp_path / "results" / "tune" / "bad").exists()


@pytest.mark.parametrize("name", ["../escape", "/abs", "", "a b"])
def test_experiment_names_are_plain_directory_names(name):
    from cifar_core.errors import ConfigError
    from cifar_core.tune.settings import TuneSettings

    with pytest.raises(ConfigError, match="tune.experiment"):
        TuneSettings(experiment=name).validate()


def test_the_checker_does_not_import_the_space_module():
    """space.py builds on space_check.py, never the other way round (issue 12: they imported each other)."""
    import ast
    import inspect

    from cifar_core.tune import space_check

    tree = ast.parse(inspect.getsource(space_check))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "cifar_core.tune.space" not in imported
