"""FID with the real pytorch-fid network on a few tiny images (random weights with pytorch-fid's
exact keys and shapes, since the real file cannot be downloaded here): features, scores, weights
resolution and the reference-statistics cache. Inception at 299x299 is slow on a CPU, so every
test passes only a handful of images through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_fid.inception import InceptionV3

from cifar_core.data import load_split, write_synthetic
from cifar_core.errors import CifarError
from cifar_core.fid import (
    WEIGHTS_ENV,
    WEIGHTS_FILENAME,
    FidStatistics,
    fid_of_images,
    hub_weights_path,
    load_inception,
    reference_statistics,
    resolve_weights,
    statistics_of_images,
    write_random_weights,
)
from cifar_core.fid.stats import read_statistics, write_statistics


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_random_weights(tmp_path_factory.mktemp("weights") / WEIGHTS_FILENAME, seed=0)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_synthetic(root, n_train=2, n_test=8, seed=0)
    return root


@pytest.fixture(scope="module")
def real_images(tiny_root) -> np.ndarray:
    return load_split(tiny_root, "test").images  # uint8 [8, 32, 32, 3]


@pytest.fixture(scope="module")
def extractor(weights):
    return load_inception(weights, "cpu", batch_size=4)


def noised(images: np.ndarray, scale: int = 60, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-scale, scale + 1, images.shape)
    return np.clip(images.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def test_features_match_pytorch_fids_own_network(extractor, weights, real_images, tmp_path, monkeypatch):
    # pytorch-fid reads its weights from the torch hub cache: put ours there under its file name.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    hub_weights_path().parent.mkdir(parents=True)
    hub_weights_path().symlink_to(weights)
    theirs_network = InceptionV3([3]).eval()
    images = real_images[:3]
    with torch.no_grad():
        theirs = theirs_network(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)[0].flatten(1).numpy()
    ours = extractor.features(images)
    assert ours.shape == (3, 2048) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())
    assert np.std(ours, axis=0).mean() > 1e-4  # random weights, yet the features vary with the image


def test_fid_of_a_set_with_itself_is_zero_and_noise_raises_it(extractor, real_images):
    reference = statistics_of_images(real_images, extractor)
    same = fid_of_images(torch.from_numpy(real_images).permute(0, 3, 1, 2), reference, extractor)
    shifted = fid_of_images(noised(real_images), reference, extractor)
    assert abs(same) < 1e-6 * np.trace(reference.sigma)
    assert shifted > 1e-3 * np.trace(reference.sigma)
    # The same images as an iterable of odd-sized batches give the same score.
    batches = iter([noised(real_images)[:3], noised(real_images)[3:]])
    assert fid_of_images(batches, reference, extractor) == pytest.approx(shifted, rel=1e-5)


def test_reference_statistics_are_cached_and_reused(extractor, tiny_root, tmp_path):
    first = reference_statistics(tiny_root, "test", extractor, tmp_path)
    assert not first.from_cache and first.n == 8 and first.cache_path.parent == tmp_path
    assert first.key["dataset"] == "synthetic" and first.key["weights_sha256"] == extractor.weights_sha256
    stamp = first.cache_path.stat().st_mtime_ns
    second = reference_statistics(tiny_root, "test", extractor, tmp_path)
    assert second.from_cache and second.cache_path == first.cache_path
    assert first.cache_path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.sigma, first.sigma)


def test_cache_entries_are_never_overwritten_with_different_statistics(tmp_path):
    key = {"dataset": "synthetic", "n": 3}
    stats = FidStatistics(np.zeros(2), np.eye(2), 3, key)
    path = write_statistics(tmp_path / "entry.npz", stats)
    content = path.read_bytes()
    write_statistics(path, FidStatistics(np.zeros(2), np.eye(2), 3, key))  # same content: accepted
    with pytest.raises(CifarError, match="refusing to overwrite"):
        write_statistics(path, FidStatistics(np.ones(2), np.eye(2), 3, key))
    assert path.read_bytes() == content
    assert read_statistics(path).key == key
    (tmp_path / "torn.npz").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(CifarError, match="unreadable"):
        read_statistics(tmp_path / "torn.npz")


def test_weights_come_from_the_argument_the_environment_or_the_hub_cache(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(CifarError) as missing:
        resolve_weights(download=False)
    message = str(missing.value)
    assert "\n" not in message and str(hub_weights_path()) in message and "--weights" in message
    with pytest.raises(CifarError, match="not found"):
        resolve_weights(tmp_path / "nowhere.pth")
    hub_weights_path().parent.mkdir(parents=True)
    hub_weights_path().symlink_to(weights)
    assert resolve_weights(download=False) == hub_weights_path()
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    assert resolve_weights(download=False) == weights
    explicit = tmp_path / "explicit.pth"
    explicit.symlink_to(weights)
    assert resolve_weights(explicit, download=False) == explicit  # the argument wins over the environment


def test_weights_with_other_keys_or_shapes_are_one_line_errors(weights, tmp_path):
    state = torch.load(weights, weights_only=True)
    renamed = {("Mixed_7c.renamed" if k == "Mixed_7c.branch_pool.conv.weight" else k): v for k, v in state.items()}
    torch.save(renamed, tmp_path / "renamed.pth")
    reshaped = {**state, "fc.weight": torch.zeros(1000, 2048)}  # torchvision's 1000 classes, not 1008
    torch.save(reshaped, tmp_path / "reshaped.pth")
    (tmp_path / "text.pth").write_text("not weights")
    cases = {"renamed.pth": "1 missing keys", "reshaped.pth": "shape mismatches", "text.pth": "unreadable"}
    for name, fragment in cases.items():
        with pytest.raises(CifarError) as error:
            load_inception(tmp_path / name, "cpu")
        assert fragment in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_weights_are_hashed_once_per_unchanged_file(tmp_path):
    import hashlib

    from cifar_core import atomic
    from cifar_core.fid import inception

    path = tmp_path / WEIGHTS_FILENAME
    path.write_bytes(b"first weights")
    atomic._file_digest.cache_clear()  # the one cached file digest (atomic.file_digest)
    first = inception.file_sha256(path)
    assert first == hashlib.sha256(b"first weights").hexdigest()
    assert inception.file_sha256(tmp_path / "." / WEIGHTS_FILENAME) == first  # same file, another spelling
    assert atomic._file_digest.cache_info().misses == 1 and atomic._file_digest.cache_info().hits == 1
    path.write_bytes(b"other weights, same name")  # replaced: size and modification time change
    assert inception.file_sha256(path) != first and atomic._file_digest.cache_info().misses == 2
    assert not inception.is_standard_weights(inception.file_sha256(path))
    assert inception.is_standard_weights(inception.WEIGHTS_SHA256)
    assert inception.WEIGHTS_SHA256.startswith(inception.WEIGHTS_SHA256_PREFIX)  # the file name's 8 digits
