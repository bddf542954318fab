"""cifar_core.protocols against the code that uses its values, and docs/provenance.md against it:
every row with a `key` equals the default of what it names, and the rows without one (constants,
layouts, the search's algorithm and distributions) equal what the code does."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from pathlib import Path
from typing import Any

from cifar_core.config import TrainConfig
from cifar_core.gan.config import GanTrainConfig
from cifar_core.models import count_parameters, create_model
from cifar_core.pipeline import resolve_profile
from cifar_core.protocols import (
    CLASSIFIERS,
    DATA_TEXT,
    DCGAN,
    FID,
    OUR_PARAMETERS,
    PADDING_1_LAYOUTS,
    PROTOCOLS,
    REPORT_A_FINAL,
    REPORT_A_MODELS,
    REPORT_A_SEARCH,
    REPORT_B_CLASSIFIER,
    REPORT_B_GAN_PARAMETERS,
    STANDARD_WEIGHTS,
    Protocol,
    provenance_markdown,
    value_text,
)
from cifar_core.retrain import RecipePlan, RetrainPlan
from cifar_core.tune.settings import TuneSettings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "provenance.md"


def _row(protocol: Protocol, name_start: str):
    return next(s for s in protocol.settings if s.name.startswith(name_start))


def _dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


# --- what the code uses for a key: one value per run the protocol makes --------------------------
@functools.cache
def _full() -> Any:
    return resolve_profile("full")


@functools.cache
def _search_base() -> TrainConfig:
    """What every trial of the report-a search starts from."""
    from cifar_core.tune.search import base_train_config
    from cifar_core.tune.space import load_space

    tune = TuneSettings(experiment="x")
    return base_train_config(load_space(tune.space), tune)


def _search_values(key: str) -> list[Any]:
    tune, base = TuneSettings(experiment="x"), _search_base()
    if "." in key:
        return [_dotted(base, key)]
    values = [getattr(owner, key) for owner in (tune, RetrainPlan()) if hasattr(owner, key)]
    assert values, f"neither TuneSettings nor RetrainPlan has {key!r}"
    return [base.run.batch_size if v is None and key == "batch_size" else v for v in values]


def _recipe_values(recipe: str, key: str) -> list[Any]:
    plan = RecipePlan(recipe=recipe)
    if key == "seeds":  # the recipe's, not one run's
        return [plan.seed_list]
    seeds = len(plan.seed_list)
    return [_dotted(plan.spec(".", i * seeds, "cpu").config, key) for i in range(len(plan.model_names))]


def _fid_default_weights() -> list[Any]:
    """`cifar fid` without --weights: pytorch-fid's own file, as the Inception weights row says."""
    from cifar_core.fid.scoring import run_fid

    assert inspect.signature(run_fid).parameters["weights"].default is None
    return [STANDARD_WEIGHTS]


def _data(key: str) -> list[Any]:
    """What every protocol runs on: the full profile refuses all but the official CIFAR-100."""
    return [DATA_TEXT["official"] if _full().data.official_only else DATA_TEXT["synthetic"]]


def _fid_values(key: str) -> list[Any]:
    from cifar_core.fid.scoring import run_fid

    if key == "weights":
        return _fid_default_weights()
    full = _full()
    found = [getattr(section, key) for section in (full.fid_b, full.fid_b.score, full.fid) if hasattr(section, key)]
    return found or [inspect.signature(run_fid).parameters[key].default]


CODE = {
    REPORT_A_SEARCH.key: _search_values,
    REPORT_A_FINAL.key: lambda key: _recipe_values("report-a", key),
    REPORT_B_CLASSIFIER.key: lambda key: _recipe_values("report-b", key),
    DCGAN.key: lambda key: [_dotted(GanTrainConfig(), key), _dotted(_full().gan.training, key)],
    FID.key: _fid_values,
}


def _agrees(stated: Any, values: list[Any]) -> bool:
    """One value for every run, or "a / b / c" over the recipe's models in order."""
    if all(v == values[0] for v in values):
        return stated == values[0]
    return stated == " / ".join(value_text(v) for v in values)


# --- tests ----------------------------------------------------------------------------------------
def test_docs_provenance_is_the_module_rendered():
    assert DOCS.read_text() == provenance_markdown(), "run: python -m cifar_core.protocols > docs/provenance.md"


def test_every_keyed_value_is_the_default_of_what_it_names():
    checked = 0
    for protocol in PROTOCOLS:
        for setting in protocol.settings:
            for key in setting.keys:
                values = _data(key) if key == "data" else CODE[protocol.key](key)
                assert _agrees(setting.value, values), (protocol.key, setting.name, key, setting.value, values)
                checked += 1
    assert checked > 60  # every protocol with keys was walked


def test_a_disagreeing_value_is_caught():
    """The check itself: a per-model row in another order, or another scalar, does not pass."""
    assert _agrees("cnn6 / cnn7 / cnn2", ["cnn6", "cnn7", "cnn2"])
    assert not _agrees("cnn7 / cnn6 / cnn2", ["cnn6", "cnn7", "cnn2"])
    assert not _agrees(0.0002, [0.0001, 0.0001])


def test_the_values_without_a_key_are_what_the_code_does(tmp_path):
    from cifar_core.data import make_data, write_synthetic
    from cifar_core.data.augment import CIFAR100_MEAN, CIFAR100_STD
    from cifar_core.models import cnn
    from cifar_core.models.layers import LEAKY_RELU_SLOPE
    from cifar_core.tune import search
    from cifar_core.tune.space import load_space

    assert _row(CLASSIFIERS, "input normalisation: per-channel mean").value == CIFAR100_MEAN
    assert _row(CLASSIFIERS, "input normalisation: per-channel standard").value == CIFAR100_STD
    assert _row(CLASSIFIERS, "LeakyReLU").value == LEAKY_RELU_SLOPE
    layouts = {f"cnn{i}": getattr(cnn, f"CNN{i}") for i in range(1, 9)}
    assert {name for name, layout in layouts.items() if layout.padding == "report_a"} == set(PADDING_1_LAYOUTS)
    assert {layout.padding for layout in layouts.values()} == {"report_a", "same"}

    ragged = _row(CLASSIFIERS, "a ragged last batch").value
    assert f"{50_000 // 128} steps an epoch" in ragged and f"{100 * (50_000 // 128):,} steps" in ragged
    write_synthetic(tmp_path, n_train=300, n_test=10, seed=0)
    bundle = make_data(tmp_path, full_train=True, batch_size=128, eval_batch_size=100, augment="none", device="cpu")
    assert len(bundle.train) == 300 // 128  # the 44 left over make no batch

    source = inspect.getsource(search)
    assert "BasicVariantGenerator(" in source and "random_state=settings.seed" in source  # seeded random search
    assert '"run.seed": settings.seed' in source  # one training seed for every trial

    space = load_space("report-a").raw
    [models] = space["models"]
    assert models["names"] == [f"cnn{i}" for i in range(1, 9)] and _row(REPORT_A_SEARCH, "architectures").value == 8
    assert models["params"] == {"dropout": {"uniform": [0.1, 0.3]}, "activation": {"choice": ["relu", "leaky_relu"]}}
    assert space["optimizers"]["adam"]["lr"] == {"uniform": [1.0e-4, 0.1]}  # an interval: drawn uniformly
    assert space["optimizers"]["sgd"]["lr"] == {"loguniform": [1.0e-5, 0.1]}  # "lr ~ log U(...)"

    assert RecipePlan(recipe="report-a").seed_list == (0,) == _row(REPORT_A_FINAL, "seeds").value


def test_our_parameter_counts_are_the_registrys():
    for name, count in OUR_PARAMETERS.items():
        kwargs = {} if name.startswith("dcgan") else {"num_classes": 100}
        if name.startswith("dcgan"):
            gan = GanTrainConfig()
            kwargs = {"nz": gan.nz, "ngf": gan.ngf} if name.endswith("generator") else {"ndf": gan.ndf}
        assert count_parameters(create_model(name, **kwargs)) == count, name
    for m in REPORT_A_MODELS:  # our layouts hit report A's counts exactly
        assert OUR_PARAMETERS[m.model] == m.parameters
    assert OUR_PARAMETERS["dcgan_generator"] == REPORT_B_GAN_PARAMETERS["generator"]
    assert OUR_PARAMETERS["dcgan_discriminator"] == REPORT_B_GAN_PARAMETERS["discriminator"]


def test_the_full_profile_runs_the_recipes_and_fid_protocols_of_the_table():
    full = resolve_profile("full")
    assert full.fid_b.compare_steps == (_row(DCGAN, "steps").value,)  # report B's 50,000, scored beside 46,000
    plan = RecipePlan(recipe="report-a", **dataclasses.asdict(full.recipe_a))
    assert RecipePlan(recipe="report-b").seed_list == (0, 1, 2) and plan.budget() == {"epochs": 100}
    assert TrainConfig().run.amp is True and plan.spec(".", 0, "cpu").config.run.amp is False  # the recipes: float32
