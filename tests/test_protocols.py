"""cifar_core.protocols against the code that uses its values, and docs/provenance.md against it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cifar_core.config import TrainConfig
from cifar_core.gan.config import GanTrainConfig
from cifar_core.models import count_parameters, create_model
from cifar_core.pipeline import resolve_profile
from cifar_core.protocols import (
    DCGAN,
    FID,
    OUR_PARAMETERS,
    REPORT_A_MODELS,
    REPORT_A_SEARCH,
    REPORT_B_GAN_PARAMETERS,
    provenance_markdown,
)
from cifar_core.retrain import RecipePlan
from cifar_core.tune.settings import TuneSettings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "provenance.md"


def _keys(protocol):
    return {key.strip(): s.value for s in protocol.settings if s.key for key in s.key.split(",")}


def test_docs_provenance_is_the_module_rendered():
    assert DOCS.read_text() == provenance_markdown(), "run: python -m cifar_core.protocols > docs/provenance.md"


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


def test_the_dcgan_and_search_defaults_are_the_values_the_table_credits():
    gan = GanTrainConfig()
    for key, value in _keys(DCGAN).items():
        assert getattr(gan, key) == value, key
    assert gan.hflip is False  # neither report B nor the tutorial flips real images
    tune, train = TuneSettings(experiment="x"), TrainConfig()
    for key, value in _keys(REPORT_A_SEARCH).items():
        if "." in key:
            group, _, name = key.partition(".")
            assert getattr(getattr(train, group), name) == value, key
        else:
            ours = getattr(tune, key)
            assert (ours if ours is not None else getattr(train.run, key)) == value, key


def test_the_pipelines_full_profile_runs_the_fid_protocols_of_the_table():
    fid = _keys(FID)
    full = resolve_profile("full")
    assert full.fid_b.n == full.fid.n == fid["n"] == 10_000
    assert full.fid_b.step == fid["step"] == 46_000 and full.gan.steps == _keys(DCGAN)["steps"] == 50_000
    assert full.fid_b.compare_steps == (50_000,)  # report B compared its 46,000-step snapshot with this one
    assert full.gan.checkpoint_every == _keys(DCGAN)["checkpoint_every"]
    plan = RecipePlan(recipe="report-a", **dataclasses.asdict(full.recipe_a))
    assert RecipePlan(recipe="report-b").seed_list == (0, 1, 2) and plan.budget() == {"epochs": 100}
