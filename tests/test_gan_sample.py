"""`cifar gan sample` and the sampling API: reproducible bytes, formats, and bad checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import Result, cifar

from cifar_core.device import Precision
from cifar_core.errors import CheckpointError
from cifar_core.gan.checkpoint import save_gan_checkpoint
from cifar_core.gan.config import GanTrainConfig
from cifar_core.gan.sample import generate, load_generator
from cifar_core.gan.state import GanTraining


def write_checkpoint(path: Path, **config) -> Path:
    """A real GAN checkpoint of freshly initialised tiny networks (sampling does not care about training)."""
    cfg = GanTrainConfig(ngf=8, ndf=8, nz=16, **config)
    training = GanTraining(cfg, Precision(torch.device("cpu")))
    save_gan_checkpoint({**training.models_payload(), "step": 0, "config": cfg.to_dict()}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "step_0.pt")



def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a sample folder but its lock (which names the last writer's pid and time)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


def test_same_seed_gives_identical_files(checkpoint, tmp_path):
    for out in ("a", "b"):
        status, _, err = cifar("gan", "sample", "--checkpoint", checkpoint, "--n", 12, "--out", tmp_path / out,
                               "--seed", 3, "--format", "both", "--batch-size", 5, "--device", "cpu")  # fmt: skip
        assert status == 0, err
    first = folder_bytes(tmp_path / "a")
    assert sorted(first) == [f"{i:05d}.png" for i in range(12)] + ["SAMPLES.json", "complete.json", "request.json",
                                                                    "samples.npz"]
    assert first == folder_bytes(tmp_path / "b")
    images = np.load(tmp_path / "a" / "samples.npz")["images"]
    assert images.dtype == np.uint8 and images.shape == (12, 32, 32, 3)
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / "00007.png")), images[7])


def test_other_seed_gives_other_images(checkpoint, tmp_path):
    for seed in (1, 2):
        assert cifar("gan", "sample", "--checkpoint", checkpoint, "--n", 4, "--out", tmp_path / str(seed),
                     "--seed", seed, "--format", "npz", "--device", "cpu")[0] == 0  # fmt: skip
    assert not np.array_equal(
        np.load(tmp_path / "1" / "samples.npz")["images"], np.load(tmp_path / "2" / "samples.npz")["images"]
    )


def test_generate_contract_and_batch_size_independence(checkpoint):
    generator = load_generator(checkpoint, "cpu")
    images = generate(generator, 7, seed=5, batch_size=500)
    assert images.dtype == torch.uint8 and images.shape == (7, 3, 32, 32) and images.device.type == "cpu"
    assert torch.equal(images, generate(generator, 7, seed=5, batch_size=3))
    assert not generator.training


def test_batch_statistics_sampling_leaves_the_generator_as_saved(checkpoint):
    from cifar_core.errors import ConfigError

    generator = load_generator(checkpoint, "cpu")
    saved = {k: v.clone() for k, v in generator.state_dict().items()}
    running = generate(generator, 8, seed=5, batch_size=4)
    batch = generate(generator, 8, seed=5, batch_size=4, batch_norm="batch")
    assert not torch.equal(running, batch)  # a fresh generator's running statistics are not its batches'
    assert torch.equal(batch, generate(generator, 8, seed=5, batch_size=4, batch_norm="batch"))
    assert all(torch.equal(v, saved[k]) for k, v in generator.state_dict().items())
    assert not generator.training
    with pytest.raises(ConfigError, match="batch_norm"):
        generate(generator, 2, seed=0, batch_norm="moving")


def test_conditional_checkpoint_samples_every_class(tmp_path):
    path = write_checkpoint(tmp_path / "cond.pt", conditional=True)
    status, _, err = cifar(
        "gan",
        "sample",
        "--checkpoint",
        path,
        "--n",
        3,
        "--out",
        tmp_path / "out",
        "--format",
        "npz",
        "--device",
        "cpu",
    )
    assert status == 0, err
    assert np.load(tmp_path / "out" / "samples.npz")["labels"].tolist() == [0, 1, 2]


def _classifier_checkpoint(path: Path) -> None:
    torch.save({"format": "cifar100-k8s/classifier/v1", "model_name": "resnet18", "model_state": {}}, path)


def _mismatched_checkpoint(path: Path) -> None:
    write_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model_kwargs"]["ngf"] = 16  # claims another width than its weights have
    torch.save(checkpoint, path)


def _discriminator_as_generator(path: Path) -> None:
    write_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model_name"] = "dcgan_discriminator"
    torch.save(checkpoint, path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not a checkpoint at all"), "unreadable"),
        (lambda p: p.write_bytes(write_checkpoint(p).read_bytes()[:2000]), "unreadable"),  # torn file
        (_classifier_checkpoint, "not a DCGAN checkpoint"),
        (_mismatched_checkpoint, "do not fit"),
        (_discriminator_as_generator, "where a 'dcgan_generator' was expected"),
        (lambda p: None, "not found"),
    ],
    ids=["garbage", "truncated", "classifier", "other-width", "wrong-network", "missing"],
)
def test_bad_checkpoints_give_one_line_and_exit_2(tmp_path, make, message):
    path = tmp_path / "bad.pt"
    make(path)
    status, _, err = cifar(
        "gan", "sample", "--checkpoint", path, "--n", 2, "--out", tmp_path / "out", "--device", "cpu"
    )
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    with pytest.raises(CheckpointError):
        load_generator(path, "cpu")


# --- a sample folder holds one sample set, never a mix ------------------------------------------
def sample_into(checkpoint: Path, out: Path, *args) -> Result:
    return cifar("gan", "sample", "--checkpoint", checkpoint, "--out", out, "--device", "cpu", *args)


def test_another_sample_never_lands_in_a_folder_holding_one(checkpoint, tmp_path):
    out = tmp_path / "samples"
    assert sample_into(checkpoint, out, "--n", 12, "--format", "both")[0] == 0
    before = folder_bytes(out)
    for other in (["--n", 5], ["--n", 12, "--format", "both", "--seed", 1], ["--n", 12, "--format", "png"]):
        status, _, err = sample_into(checkpoint, out, *other)
        assert status == 2 and err.startswith(f"error: cannot reuse {out}: its sample set has other settings ("), err
        assert len(err.strip().splitlines()) == 1
    assert folder_bytes(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["samples"]  # nothing beside it


def test_the_same_request_replaces_the_whole_set(checkpoint, tmp_path):
    out = tmp_path / "samples"
    assert sample_into(checkpoint, out, "--n", 6, "--format", "both")[0] == 0
    complete = folder_bytes(out)
    (out / "00003.png").unlink()  # a damaged set of the same request
    assert sample_into(checkpoint, out, "--n", 6, "--format", "both")[0] == 0
    assert folder_bytes(out) == complete
    assert json.loads((out / "SAMPLES.json").read_text())["files"] == [f"{i:05d}.png" for i in range(6)] + ["samples.npz"]


def test_a_folder_of_other_files_is_refused(checkpoint, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    status, _, err = sample_into(checkpoint, out, "--n", 2)
    assert status == 2 and f"--out {out} holds notes.txt, which no sample wrote" in err
    assert sorted(p.name for p in out.iterdir()) == [".lock", "notes.txt"]  # the lock's note only
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sample_into(checkpoint, empty, "--n", 2)[0] == 0  # an empty folder is fine


# --- values that used to be tracebacks or silent nonsense ----------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--seed", 200000000000000000000], "seed = 200000000000000000000 is out of range"),
    (["--seed", -1], "seed = -1 is out of range"),
    (["--n", 10**10], "n = 10000000000: generate 1 to 500,000 images at a time"),
])  # fmt: skip
def test_seeds_and_counts_out_of_range_are_one_line(checkpoint, tmp_path, args, message):
    status, _, err = sample_into(checkpoint, tmp_path / "out", *args)
    assert status == 2 and err.strip().splitlines() == [err.strip()] and message in err, err
    assert not (tmp_path / "out").exists()


def nan_checkpoint(path: Path) -> Path:
    """What a GAN trained into NaN leaves: a checkpoint whose generator weights are NaN."""
    write_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    weight = next(k for k, v in checkpoint["model_state"].items() if v.is_floating_point() and v.dim() == 4)
    checkpoint["model_state"][weight] = torch.full_like(checkpoint["model_state"][weight], float("nan"))
    torch.save(checkpoint, path)
    return path


def test_a_diverged_generator_makes_no_images(tmp_path):
    status, _, err = sample_into(nan_checkpoint(tmp_path / "nan.pt"), tmp_path / "out", "--n", 4)
    assert status == 2 and "the generator's weights hold NaN or infinite values" in err and "nan.pt" in err, err
    assert not (tmp_path / "out").exists()


def test_non_finite_output_is_refused_not_turned_into_grey_images(checkpoint):
    generator = load_generator(checkpoint, "cpu")
    with torch.no_grad():  # a network that went bad in memory, past the checks of load_generator
        next(p for p in generator.parameters() if p.dim() == 4).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="output holds NaN or infinite values"):
        generate(generator, 2, seed=0)


def test_image_grid_tiles_images_row_by_row_with_black_gaps():
    from cifar_core.gan.grid import image_grid

    images = torch.randint(1, 256, (10, 3, 32, 32), dtype=torch.uint8)  # no black pixel: gaps are only padding
    grid = image_grid(images, columns=4, padding=2)
    assert grid.shape == (2 + 3 * 34, 2 + 4 * 34, 3) and grid.dtype == np.uint8
    for i, image in enumerate(images):
        top, left = 2 + (i // 4) * 34, 2 + (i % 4) * 34
        assert np.array_equal(grid[top : top + 32, left : left + 32], image.permute(1, 2, 0).numpy())
    assert (grid[:2] == 0).all() and (grid[:, :2] == 0).all() and (grid[2 + 2 * 34 :, 2 + 2 * 34 :] == 0).all()
