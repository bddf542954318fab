"""`cifar data synth|verify|fetch`: output, and one-line errors with exit 2 for damaged data."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import Result, assert_one_line_error, cifar

from cifar_core.data import write_synthetic
from cifar_core.data.verify import DOWNLOAD_HOST

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def small(tmp_path) -> Path:
    """A fresh small synthetic set each test may damage."""
    write_synthetic(tmp_path, n_train=200, n_test=100, seed=1)
    return tmp_path / "cifar-100-python"


def test_synth_says_it_is_synthetic_and_verify_agrees(tmp_path):
    made = cifar("data", "synth", "--out", tmp_path, "--train", 300, "--test", 100, "--seed", 2)
    assert made.status == 0, made.err
    assert "SYNTHETIC" in made.out + made.err and "not CIFAR-100" in made.out + made.err
    checked = cifar("data", "verify", tmp_path)
    assert checked.status == 0, checked.err
    assert "SYNTHETIC" in checked.out and "300 images" in checked.out
    report = json.loads(cifar("data", "verify", tmp_path, "--json").out)
    assert report["synthetic"] and report["checksum"] == "ok-synthetic-manifest"
    assert report["train"]["count"] == 300 and report["test"]["count"] == 100
    assert report["fine_classes"] == 100 and report["coarse_classes"] == 20
    assert report["train"]["fine_classes_present"] == 100


@pytest.mark.parametrize("name", ["train", "test", "meta"])
def test_missing_file(small, name):
    (small / name).unlink()
    assert_one_line_error(cifar("data", "verify", small), f"{small / name} is missing")


@pytest.mark.parametrize("name", ["train", "meta"])
def test_truncated_file(small, name):
    data = (small / name).read_bytes()
    (small / name).write_bytes(data[: len(data) // 2])
    assert_one_line_error(cifar("data", "verify", small), f"{small / name} is truncated or corrupt")


def test_empty_file(small):
    (small / "test").write_bytes(b"")
    assert_one_line_error(cifar("data", "verify", small), f"{small / 'test'} is empty")


def test_flipped_pixel_byte_fails_the_checksum(small):
    data = bytearray((small / "train").read_bytes())
    data[-100] ^= 0xFF  # inside the image bytes: still unpickles, md5 differs
    (small / "train").write_bytes(bytes(data))
    assert_one_line_error(cifar("data", "verify", small), f"{small / 'train'} is corrupt: md5", "manifest")


def test_garbage_file(small):
    (small / "meta").write_bytes(b"this is not a pickle\n" * 10)
    assert_one_line_error(cifar("data", "verify", small), f"{small / 'meta'} is truncated or corrupt")


def _rewrite(path: Path, **changes) -> None:
    """Replace keys of one CIFAR file, written the way Python writes protocol-2 pickles."""
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    (path.parent / "SYNTHETIC.json").unlink(missing_ok=True)  # no manifest: only the structure is checked
    path.write_bytes(pickle.dumps({**entry, **changes}, protocol=2))


@pytest.mark.parametrize("name, changes, message", [
    ("train", {"filenames": 5}, "'filenames' has type int, expected a list of strings"),
    ("train", {"filenames": "abc"}, "'filenames' has type str, expected a list of strings"),
    ("train", {"filenames": ["a.png", 3]}, "'filenames'[1] has type int, expected a string"),
    ("test", {"filenames": ["a.png"] * 3}, "3 filenames for 100 images"),
    ("train", {"batch_label": 7}, "'batch_label' has type int, expected a string"),
    ("train", {"fine_labels": [0.5] * 200}, "'fine_labels'[0] is 0.5, expected an integer class index"),
    ("test", {"coarse_labels": [True] * 100}, "'coarse_labels'[0] is True, expected an integer class index"),
    ("test", {"fine_labels": np.zeros(100, np.float32)}, "'fine_labels' is an array of float32"),
    ("meta", {"fine_label_names": 7}, "'fine_label_names' has type int, expected a list of strings"),
    ("meta", {"coarse_label_names": {"a": 1}}, "'coarse_label_names' has type dict, expected a list of strings"),
])  # fmt: skip
def test_wrong_types_inside_a_file_are_one_line_errors(small, name, changes, message):
    _rewrite(small / name, **changes)
    assert_one_line_error(cifar("data", "verify", small), f"{small / name}: {message}")


def test_synth_never_replaces_files_it_did_not_write(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "test").write_bytes(b"my own test split")
    (folder / "meta").write_bytes(b"my own meta")
    assert_one_line_error(cifar("data", "synth", "--out", tmp_path, "--train", 20, "--test", 10),
                          f"{folder} already holds test, meta not written by `cifar data synth`")
    assert (folder / "test").read_bytes() == b"my own test split" and not (folder / "train").exists()
    assert (folder / "meta").read_bytes() == b"my own meta"


def test_synth_replaces_its_own_files(small):
    before = (small / "meta").read_bytes()  # the official meta's bytes: replacing it loses nothing
    made = cifar("data", "synth", "--out", small.parent, "--train", 30, "--test", 20, "--seed", 4)
    assert made.status == 0, made.err
    assert json.loads(cifar("data", "verify", small, "--json").out)["train"]["count"] == 30
    assert (small / "meta").read_bytes() == before


@pytest.mark.parametrize("option", ["--train", "--test"])
def test_synth_refuses_sizes_it_cannot_hold_before_allocating(tmp_path, option):
    result = cifar("data", "synth", "--out", tmp_path, option, 10**11)
    assert_one_line_error(result, f"{option.strip('-')} split of 100000000000 images: use 1 to 500,000")
    assert not (tmp_path / "cifar-100-python").exists()


def test_no_dataset_at_all(tmp_path):
    assert_one_line_error(
        cifar("data", "verify", tmp_path / "nowhere"), "no CIFAR-100 data at", "cifar data synth"
    )


def test_fetch_refuses_to_replace_a_synthetic_set(small):
    assert_one_line_error(cifar("data", "fetch", "--out", small.parent), "holds the synthetic dataset")


def _online() -> bool:
    try:
        socket.create_connection((DOWNLOAD_HOST, 443), timeout=3).close()
        return True
    except OSError:
        return False


def test_fetch_offline_says_where_to_put_the_files(tmp_path):
    if _online():
        pytest.skip("this machine can reach the CIFAR host; not downloading 160 MB in a test")
    result = cifar("data", "fetch", "--out", tmp_path)
    assert_one_line_error(result, str(tmp_path / "cifar-100-python"), "cifar data synth")


def test_real_entry_point_reports_damage_in_one_line(small):
    (small / "train").write_bytes((small / "train").read_bytes()[:1000])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "data", "verify", str(small)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert_one_line_error(Result.of(result), f"{small / 'train'} is truncated or corrupt")
