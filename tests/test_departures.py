"""Departures computed from the protocol rows, not listed by hand: the full profile departs from report
B only where our protocol itself does (sampling with BatchNorm's running statistics, resdw's stem);
the smoke profile names every setting it changes; `cifar fid` labels a scored GAN snapshot as report
B's protocol and lists how it departs (step, images, weights, data); the rows that describe the
networks say what the code builds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from cifar_core.data import data_digest, write_synthetic
from cifar_core.device import Precision
from cifar_core.fid import WEIGHTS_FILENAME, write_random_weights
from cifar_core.gan.checkpoint import save_gan_checkpoint
from cifar_core.gan.config import GanTrainConfig
from cifar_core.gan.state import GanTraining
from cifar_core.models import create_model
from cifar_core.pipeline import resolve_profile
from cifar_core.protocols import (
    DATA_TEXT,
    DCGAN,
    FID,
    REPORT_A_FINAL,
    REPORT_B_CLASSIFIER,
    STANDARD_WEIGHTS,
    budget_settings,
    departure_name,
    departures,
    provenance_markdown,
    settings_of,
)
from cifar_core.retrain import RecipePlan

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "results"
BATCH_NORM = "generator BatchNorm when sampling (both protocols): running (PyTorch DCGAN tutorial: batch)"
STEM = "stem (before the first block)"


def gan_settings(cfg: GanTrainConfig, data: str = "official") -> dict:
    """What `cifar gan train` compares: its config by key, bf16 where autocast applies, its data."""
    return {**settings_of(cfg.to_dict()), "amp": Precision(torch.device("cpu"), cfg.amp).bf16, "data": DATA_TEXT[data]}


def fid_settings(profile, section: str, data: str = "official") -> dict:
    """What `cifar fid` compares for a pipeline FID stage: its images, split, sampling, weights, data, step."""
    stage = getattr(profile, section)
    found = {"n": (stage.score if section == "fid_b" else stage).n, "split": "test", "seed": 0, "batch_norm": "running", "weights": STANDARD_WEIGHTS,
             "data": DATA_TEXT[data]}
    return {**found, "step": stage.step} if section == "fid_b" else found


def texts(found) -> list[str]:
    return [d.text for d in found]


def test_the_full_profile_departs_only_where_our_protocol_does():
    full = resolve_profile("full")
    assert departures(gan_settings(full.gan.training), DCGAN) == []
    assert texts(departures(fid_settings(full, "fid_b"), FID)) == [BATCH_NORM]  # the tutorial samples in train mode
    assert texts(departures(fid_settings(full, "fid"), FID)) == [BATCH_NORM]
    for recipe, protocol in (("report-a", REPORT_A_FINAL), ("report-b", REPORT_B_CLASSIFIER)):
        plan = RecipePlan(recipe=recipe)
        for index in range(plan.size):
            spec = plan.spec(".", index, "cpu")
            actual = {**settings_of(spec.config.to_dict()), **budget_settings(plan.budget()), "seeds": plan.seed_list,
                      "run.amp": False, "data": DATA_TEXT["official"]}
            found = [departure_name(d.text) for d in departures(actual, protocol, model=spec.config.model.name)]
            assert found == ([STEM] if recipe == "report-b" else []), (recipe, index, found)


def test_the_smoke_profile_names_every_setting_it_changes():
    smoke = resolve_profile("smoke")
    gan = texts(departures(gan_settings(smoke.gan.training, "synthetic"), DCGAN))
    assert gan == ["batch size: 64 (PyTorch DCGAN tutorial: 128)", "steps: 150 (report B §5: 50,000)",
                   "snapshots kept every: 50 (this study's protocol: 2,000)",
                   "data: the SYNTHETIC stand-in (`cifar data synth`), not CIFAR-100 (report B §4: the official CIFAR-100)"]
    fid_b = [departure_name(line) for line in texts(departures(fid_settings(smoke, "fid_b", "synthetic"), FID))]
    assert fid_b == ["generated images", "data", "snapshot step of report B's protocol",
                     "generator BatchNorm when sampling (both protocols)"]
    bf16 = gan_settings(smoke.gan.training) | {"amp": True, "hflip": True}  # as on a GPU, with flips
    assert {"bf16 autocast on GPUs: yes (PyTorch DCGAN tutorial: no)",
            "random flips of real images: yes (PyTorch DCGAN tutorial: no)"} <= set(texts(departures(bf16, DCGAN)))


def test_a_recipe_records_its_departures_as_the_protocol_computes_them():
    """The fixture's recipes (real stage outputs: 1 epoch, 2 steps, synthetic data) against the rows."""
    a = json.loads((FIXTURE / "recipe" / "report-a-e1" / "summary.json").read_text())
    assert a["protocol"] == "report-a" and a["protocol_settings"]["run.epochs"] == 1
    assert a["protocol_departures"] == [
        "epochs: 1 (report A §V: 100)",
        "data: the SYNTHETIC stand-in (`cifar data synth`), not CIFAR-100 (report A §I, §II.A: the official CIFAR-100)"]
    assert a["protocol_settings"]["optim.lr"] == "0.004278 / 0.039 / 0.0498"  # each model's, in the recipe's order
    b = json.loads((FIXTURE / "recipe" / "report-b-s2" / "summary.json").read_text())
    assert [departure_name(line) for line in b["protocol_departures"]] == [
        STEM, "optimisation steps", "data", "test set scored every N steps (the curve of figure 2)",
        "seeds (mean ± standard deviation over them)"]
    retrain = json.loads((FIXTURE / "retrain" / "exp" / "summary.json").read_text())
    assert {"models retrained: 2 (report A §IV: 3)",
            "which 3: the best trial of each of the 3 best architectures: trials (this study's protocol: architectures)"} \
        <= set(retrain["protocol_departures"])


def test_the_network_rows_say_what_the_code_builds():
    discriminator = create_model("dcgan_discriminator")
    convolutions = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.stride) for c in convolutions] == [((4, 4), (2, 2))] * 3 + [((4, 4), (1, 1))]
    layout = next(s for s in DCGAN.settings if s.name == "discriminator layout").value
    assert layout.startswith("three stride-2 4x4 convolutions") and "then a stride-1 4x4 convolution" in layout

    resdw = create_model("resdw")
    stem = next(s for s in REPORT_B_CLASSIFIER.settings if s.name == STEM)
    assert len(resdw.blocks) == 10 and resdw.stem[0].depthwise.in_channels == 3  # ten blocks after our own stem
    assert stem.reference.source.label == "report B §1" and "ten convolutional layers" in stem.reference.value
    assert f"DEPARTS from report B §1: {stem.reference.value}" in provenance_markdown()
    assert "does not describe them" not in stem.source.where


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> dict:
    """A GAN snapshot (step_2.pt) and a checkpoint that is no snapshot, scored by `run_fid` with
    test-made Inception weights on the synthetic stand-in, 3 images each."""
    from cifar_core.fid.scoring import run_fid

    base = tmp_path_factory.mktemp("departures")
    write_synthetic(base / "data", n_train=6, n_test=8, seed=0)
    weights = write_random_weights(base / WEIGHTS_FILENAME)
    config = GanTrainConfig(ngf=8, ndf=8, nz=16)
    payload = {**GanTraining(config, Precision(torch.device("cpu"))).models_payload(), "step": 2, "config": config.to_dict()}
    snapshot = save_gan_checkpoint(payload, base / "gan" / "run" / "checkpoints" / "step_2.pt")
    other = save_gan_checkpoint(payload, base / "elsewhere" / "generator.pt")
    options = {"data_dir": base / "data", "weights": weights, "device": "cpu", "n": 3, "cache_dir": base / "cache"}
    return {"snapshot": run_fid(base / "fid" / "snapshot", checkpoint=snapshot, **options),
            "train": run_fid(base / "fid" / "train", checkpoint=snapshot, split="train", **options),
            "other": run_fid(base / "fid" / "other", checkpoint=other, **options),
            "digest": data_digest(base / "data")}


def test_a_scored_snapshot_is_report_bs_protocol_with_its_departures(scored):
    summary = scored["snapshot"]
    assert summary["protocol"] == "report-b"  # not "checkpoint": one snapshot of a run, on the test split
    assert summary["protocol_settings"]["step"] == 2 and summary["protocol_settings"]["n"] == 3
    departed = summary["protocol_departures"]
    assert departed[:2] == ["generated images: 3 (report B abstract: 10,000)",
                            "data: the SYNTHETIC stand-in (`cifar data synth`), not CIFAR-100 (report B abstract, §5: "
                            "the official CIFAR-100)"]
    sha = summary["weights"]["sha256"]
    assert f"Inception weights: other weights (sha256 {sha[:12]}): not comparable with published FIDs (this study's " \
           "protocol: pytorch-fid's released weights)" in departed
    assert "snapshot step of report B's protocol: 2 (report B §5: 46,000)" in departed and BATCH_NORM in departed
    assert scored["digest"].startswith("synthetic:")


def test_other_checkpoints_and_splits_are_not_report_bs_protocol(scored):
    assert scored["train"]["protocol"] == "checkpoint"  # report B scored against the test set
    assert "real images: the split scored against: train (report B abstract, §5: test)" in \
        scored["train"]["protocol_departures"]
    assert scored["other"]["protocol"] == "checkpoint" and "step" not in scored["other"]["protocol_settings"]


def test_what_a_search_chose_is_its_finding_not_a_retrains_departure(tmp_path):
    """A retrained trial's optimizer (rmsprop, say) is what the search found, not a departure from report
    A's SGD; its budget, precision and selection are the retrain's own settings, and are compared."""
    from cifar_core.retrain import RetrainPlan, protocol_fields

    run = tmp_path / "exp-tinycnn-t1"
    shutil.copytree(FIXTURE / "train" / "exp-tinycnn-t1", run)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("  name: sgd", "  name: rmsprop"))
    [row] = [dict(m) for m in json.loads((FIXTURE / "retrain" / "exp" / "summary.json").read_text())["models"][:1]]
    row.update(run_dir=str(run), params={**row["params"], "optim.name": "rmsprop"}, precision="bf16 autocast")
    found = protocol_fields(RetrainPlan("exp", top_k=3, epochs=100, select="architectures"), [row])
    assert found["protocol"] == "report-a" and "optim.name" not in found["protocol_settings"]
    assert found["protocol_departures"] == [
        "data: the SYNTHETIC stand-in (`cifar data synth`), not CIFAR-100 (report A §I, §II.A: the official CIFAR-100)",
        "batch size: 64 (this study's protocol: 128)",
        "bf16 autocast (else float32): yes (PyTorch default: no)"]
