"""`cifar fid` end to end on tiny inputs: folders, .npz files, generator checkpoints, choosing the
best snapshot of a GAN run, the reference cache across runs, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_core.data import load_split, write_synthetic
from cifar_core.device import Precision
from cifar_core.fid import WEIGHTS_FILENAME, write_random_weights
from cifar_core.fid.inception import WEIGHTS_SHA256
from cifar_core.gan.checkpoint import save_gan_checkpoint
from cifar_core.gan.config import GanTrainConfig
from cifar_core.gan.state import GanTraining
from jobs.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """Test-made weights (random values, pytorch-fid's keys), 6 synthetic training and 8 test images,
    and one reference cache shared by the module so only the first run computes the real side."""
    base = tmp_path_factory.mktemp("fid-cli")
    write_synthetic(base / "data", n_train=6, n_test=8, seed=0)
    return {
        "weights": write_random_weights(base / WEIGHTS_FILENAME),
        "data": base / "data",
        "cache": base / "cache",
        "images": load_split(base / "data", "test").images,
    }


def cifar_fid(capsys, setup, results: Path, *args) -> tuple[int, str, str]:
    base = ["fid", "--allow-synthetic", "--weights", setup["weights"], "--data-dir", setup["data"], "--results-dir", results,
            "--cache-dir", setup["cache"], "--device", "cpu"]
    capsys.readouterr()
    status = main([str(a) for a in [*base, *args]])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), (status, err)
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_pngs(folder: Path, images: np.ndarray, mode: str = "RGB") -> Path:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).convert(mode).save(folder / f"{i:03d}.png")
    return folder


def write_gan_checkpoint(path: Path, seed: int, **kwargs) -> Path:
    """A real GAN checkpoint of a freshly initialised tiny generator (FID does not care about training)."""
    config = GanTrainConfig(ngf=8, ndf=8, nz=16, seed=seed)
    payload = {**GanTraining(config, Precision(torch.device("cpu"))).models_payload(), "step": 0, "config": config.to_dict()}
    payload["model_kwargs"] = {**payload["model_kwargs"], **kwargs}
    return save_gan_checkpoint(payload, path)


def test_folder_of_pngs_then_cached_reference(capsys, setup, tmp_path):
    shifted = np.clip(setup["images"].astype(int) + 40, 0, 255).astype(np.uint8)
    fake = write_pngs(tmp_path / "samples", shifted)
    status, out, err = cifar_fid(capsys, setup, tmp_path / "results", "--fake", fake, "--n", 6, "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert summary == json.loads((tmp_path / "results" / "fid" / "samples-n6" / "summary.json").read_text())
    assert summary["fid"] > 0 and summary["n_fake"] == 6 and summary["n_real"] == 8
    assert summary["feature_layer"] == "pool3" and summary["feature_dims"] == 2048
    assert summary["weights"]["sha256"] and summary["device"].startswith("cpu")
    assert summary["real"]["dataset"] == "synthetic" and summary["fake"]["kind"] == "folder"
    cache_file = Path(summary["real"]["stats_cache"])
    stamp = cache_file.stat().st_mtime_ns

    # The same images as an .npz in channels-first layout: same score, reference from the cache.
    np.savez(tmp_path / "samples.npz", images=shifted[:6].transpose(0, 3, 1, 2))
    status, out, err = cifar_fid(capsys, setup, tmp_path / "results", "--fake", tmp_path / "samples.npz",
                                 "--name", "again", "--json")
    assert status == 0, err
    again = json.loads(out)
    assert again["real"]["from_cache"] and cache_file.stat().st_mtime_ns == stamp
    assert again["fid"] == pytest.approx(summary["fid"], rel=1e-6)
    assert (tmp_path / "results" / "fid" / "again" / "summary.json").is_file()


def test_checkpoint_and_select_best(capsys, setup, tmp_path):
    run = tmp_path / "gan-run"
    for step, seed in ((2, 0), (4, 1)):
        write_gan_checkpoint(run / "checkpoints" / f"step_{step}.pt", seed)
    # Report B's protocol: one fixed snapshot of the run (step 46,000 unless --step says otherwise),
    # the same request as --checkpoint RUN/checkpoints/step_<N>.pt.
    status, _, err = cifar_fid(capsys, setup, tmp_path / "results", "--snapshot", run)
    assert_one_line_error(status, err, "step_46000.pt", "the run kept steps: 2, 4")
    status, out, err = cifar_fid(capsys, setup, tmp_path / "results", "--snapshot", run, "--step", 2, "--n", 3, "--json")
    assert status == 0, err
    single = json.loads(out)
    assert single["n_fake"] == 3 and single["fake"] == {"kind": "checkpoint", "path": str(run / "checkpoints" / "step_2.pt"),
                                                        "seed": 0, "batch_norm": "running"}
    assert (tmp_path / "results" / "fid" / "gan-run-step_2-n3" / "summary.json").is_file()

    status, out, err = cifar_fid(capsys, setup, tmp_path / "results", "--select-best", run, "--n", 3)
    assert status == 0, err
    summary = json.loads((tmp_path / "results" / "fid" / "gan-run-select-n3" / "summary.json").read_text())
    assert [row["step"] for row in sorted(summary["ranking"], key=lambda r: r["step"])] == [2, 4]
    # Chosen on the training split: each snapshot's rank is its FID against the 6 training images.
    assert summary["protocol"] == "select-best" and summary["selection"]["split"] == "train"
    assert summary["selection"]["n_real"] == 6 and summary["real"]["split"] == "test" and summary["n_real"] == 8
    fids = [row["fid"] for row in summary["ranking"]]
    chosen = summary["best"]
    assert fids == sorted(fids) and chosen["step"] == summary["ranking"][0]["step"]
    status, out_train, err = cifar_fid(capsys, setup, tmp_path / "results", "--checkpoint", chosen["checkpoint"],
                                       "--n", 3, "--split", "train", "--json")
    assert status == 0, err
    assert json.loads(out_train)["fid"] == pytest.approx(fids[0], rel=1e-6)  # the ranking is the train-split FID
    # Reported: only the chosen snapshot, on the test split, with noise the choice never saw.
    assert chosen["scored_seed"] != 0 and summary["fake"]["seed"] == chosen["scored_seed"]
    status, out_test, err = cifar_fid(capsys, setup, tmp_path / "results", "--checkpoint", chosen["checkpoint"],
                                      "--n", 3, "--seed", chosen["scored_seed"], "--json")
    assert status == 0, err
    assert summary["fid"] == pytest.approx(json.loads(out_test)["fid"], rel=1e-6)
    assert summary["fid"] != pytest.approx(fids[0], rel=1e-6)
    assert "chosen snapshot" in out and "FID against the train split, per snapshot" in out

    status, _, err = cifar_fid(capsys, setup, tmp_path / "results", "--select-best", run, "--split", "train")
    assert_one_line_error(status, err, "chooses the snapshot on the train split")

    status, out, err = cifar_fid(capsys, setup, tmp_path / "results", "--checkpoint", run / "checkpoints" / "step_2.pt",
                                 "--n", 3, "--batch-norm", "batch", "--name", "batch-stats", "--json")
    assert status == 0, err
    batch_stats = json.loads(out)
    assert batch_stats["fake"]["batch_norm"] == "batch" and batch_stats["fid"] != single["fid"]


def test_bad_generated_inputs_are_one_line_errors(capsys, setup, tmp_path):
    images = setup["images"]
    (tmp_path / "empty").mkdir()
    big = np.zeros((2, 64, 64, 3), np.uint8)
    cases = [
        (write_pngs(tmp_path / "big", big), "64x64 RGB"),
        (write_pngs(tmp_path / "gray", images[:2], mode="L"), "32x32 L"),
        (write_pngs(tmp_path / "rgba", images[:2], mode="RGBA"), "RGBA"),
        (tmp_path / "empty", "no images"),
        (write_pngs(tmp_path / "single", images[:1]), "at least 2"),
    ]
    np.savez(tmp_path / "floats.npz", images=images.astype(np.float32))
    np.savez(tmp_path / "shape.npz", images=images[:, :16])
    np.savez(tmp_path / "nokey.npz", pictures=images)
    cases += [(tmp_path / "floats.npz", "uint8"), (tmp_path / "shape.npz", "shape"), (tmp_path / "nokey.npz", "no 'images'")]
    for fake, fragment in cases:
        status, _, err = cifar_fid(capsys, setup, tmp_path / "results", "--fake", fake)
        assert_one_line_error(status, err, fragment)
    assert not (tmp_path / "results" / "fid").exists()


def test_bad_checkpoints_weights_and_options_are_one_line_errors(capsys, setup, tmp_path):
    other = write_gan_checkpoint(tmp_path / "run" / "checkpoints" / "step_1.pt", 0, ngf=16)
    status, _, err = cifar_fid(capsys, setup, tmp_path / "r", "--checkpoint", other)
    assert_one_line_error(status, err, "do not fit")
    tmp_path.joinpath("results").mkdir()
    status, _, err = cifar_fid(capsys, setup, tmp_path / "r", "--select-best", tmp_path / "results")
    assert_one_line_error(status, err, "no generator snapshots")

    state = torch.load(setup["weights"], weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("Mixed_7c")}, tmp_path / "cut.pth")
    fake = write_pngs(tmp_path / "fake", setup["images"][:2])
    # A later --weights wins over the one cifar_fid passes.
    status, _, err = cifar_fid(capsys, setup, tmp_path / "r", "--fake", fake, "--weights", tmp_path / "cut.pth")
    assert_one_line_error(status, err, "not pytorch-fid's FID Inception weights", "missing keys")

    status, _, err = cifar_fid(capsys, setup, tmp_path / "r", "--fake", fake, "--checkpoint", other)
    assert_one_line_error(status, err, "exactly one of")



def test_another_setting_never_replaces_an_earlier_result(capsys, setup, tmp_path):
    checkpoint = write_gan_checkpoint(tmp_path / "gan" / "run" / "checkpoints" / "step_2.pt", 0)
    results = tmp_path / "results"
    scores = {}
    for args, name in ((["--n", 3], "run-step_2-n3"), (["--n", 3, "--split", "train"], "run-step_2-train-n3"),
                       (["--n", 4, "--seed", 2], "run-step_2-n4-seed2"),
                       (["--n", 3, "--batch-norm", "batch"], "run-step_2-n3-bn-batch")):
        status, out, err = cifar_fid(capsys, setup, results, "--checkpoint", checkpoint, *args, "--json")
        assert status == 0, err
        scores[name] = json.loads(out)
    for name, summary in scores.items():  # each kept in its own directory, as measured
        assert json.loads((results / "fid" / name / "summary.json").read_text()) == summary
    assert scores["run-step_2-train-n3"]["real"]["split"] == "train" and scores["run-step_2-n3"]["real"]["split"] == "test"

    # A name chosen by hand holds one request too: another one is refused and the first is kept.
    first = cifar_fid(capsys, setup, results, "--checkpoint", checkpoint, "--n", 3, "--name", "mine")
    assert first[0] == 0, first[2]
    kept = (results / "fid" / "mine" / "summary.json").read_bytes()
    status, _, err = cifar_fid(capsys, setup, results, "--checkpoint", checkpoint, "--n", 3, "--split", "train",
                               "--name", "mine")
    assert_one_line_error(status, err, f"cannot reuse {results / 'fid' / 'mine'}: its FID score has other settings",
                          "split was 'test', now 'train'", "pass --name")
    assert (results / "fid" / "mine" / "summary.json").read_bytes() == kept
    again = cifar_fid(capsys, setup, results, "--checkpoint", checkpoint, "--n", 3, "--name", "mine")
    assert again[0] == 0, again[2]  # the same request on the same inputs: done, its score stands


def test_names_are_plain_directory_names(capsys, setup, tmp_path):
    checkpoint = write_gan_checkpoint(tmp_path / "step_2.pt", 0)
    for name in ("a b", ".x", "../up", ""):
        status, _, err = cifar_fid(capsys, setup, tmp_path / "results", "--checkpoint", checkpoint, "--name", name)
        assert_one_line_error(status, err, "--name")
    odd = write_pngs(tmp_path / "my samples", setup["images"][:2])
    status, _, err = cifar_fid(capsys, setup, tmp_path / "results", "--fake", odd)
    assert_one_line_error(status, err, "'my samples'", "pass --name")
    assert not (tmp_path / "results").exists()


def test_weights_under_the_standard_name_are_not_standard_by_that_name(capsys, setup, tmp_path):
    assert setup["weights"].name == WEIGHTS_FILENAME  # test-made random weights under the released file's name
    fake = write_pngs(tmp_path / "fake", setup["images"][:3])
    status, out, err = cifar_fid(capsys, setup, tmp_path / "results", "--fake", fake, "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["weights_standard"] is False and summary["weights"]["sha256"] != WEIGHTS_SHA256
    assert "is not pytorch-fid's" in err and "not comparable with published FIDs" in err


def test_a_diverged_generator_gets_no_score(capsys, setup, tmp_path):
    checkpoint = write_gan_checkpoint(tmp_path / "run" / "checkpoints" / "step_2.pt", 0)
    payload = torch.load(checkpoint, weights_only=True)
    payload["model_state"] = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v
                              for k, v in payload["model_state"].items()}
    torch.save(payload, checkpoint)
    for args in (["--checkpoint", checkpoint, "--n", 3], ["--select-best", tmp_path / "run", "--n", 3]):
        status, _, err = cifar_fid(capsys, setup, tmp_path / "results", *args)
        assert_one_line_error(status, err, "step_2.pt", "NaN or infinite")
    assert not (tmp_path / "results" / "fid").exists()


def test_a_sample_folder_with_foreign_images_is_not_scored(capsys, setup, tmp_path):
    checkpoint = write_gan_checkpoint(tmp_path / "step_2.pt", 0)
    samples = tmp_path / "samples"
    assert main(["gan", "sample", "--checkpoint", str(checkpoint), "--n", "4", "--out", str(samples),
                 "--device", "cpu"]) == 0
    (samples / "00099.png").write_bytes((samples / "00000.png").read_bytes())  # an image from elsewhere
    status, _, err = cifar_fid(capsys, setup, tmp_path / "results", "--fake", samples)
    assert_one_line_error(status, err, "is not the sample set its SAMPLES.json describes", "00099.png")
    (samples / "00099.png").unlink()
    (samples / "00001.png").unlink()
    status, _, err = cifar_fid(capsys, setup, tmp_path / "results", "--fake", samples)
    assert_one_line_error(status, err, "missing", "00001.png")


@pytest.mark.parametrize("seed", ["200000000000000000000", "-1"])
def test_seeds_out_of_range_are_one_line(capsys, setup, tmp_path, seed):
    checkpoint = write_gan_checkpoint(tmp_path / "step_2.pt", 0)
    status, _, err = cifar_fid(capsys, setup, tmp_path / "results", "--checkpoint", checkpoint, "--seed", seed)
    assert_one_line_error(status, err, f"seed = {seed} is out of range")
