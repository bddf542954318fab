"""The Frechet distance and feature statistics: agreement with pytorch-fid, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance as pytorch_fid_distance

from cifar_core.errors import CifarError
from cifar_core.fid import activation_statistics, frechet_distance
from cifar_core.fid import frechet as frechet_module


def feature_pair(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated, differently shifted and scaled float32 feature sets, like Inception's."""
    rng = np.random.default_rng(seed)
    mixing = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    real = (rng.standard_normal((n, d)) @ mixing).astype(np.float32)
    fake = (1.2 * rng.standard_normal((n, d)) @ mixing + 0.05).astype(np.float32)
    return real, fake


def both_distances(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    mu1, sigma1 = activation_statistics(real)
    mu2, sigma2 = activation_statistics(fake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's sqrtm warns about `disp` and singular products
        theirs = float(pytorch_fid_distance(mu1, sigma1, mu2, sigma2))
    return frechet_distance(mu1, sigma1, mu2, sigma2), theirs


@pytest.mark.parametrize(
    ("n", "d"),
    [
        (400, 16),  # small, full rank
        (1200, 256),  # full rank
        (100, 256),  # fewer samples than dimensions: singular covariances
    ],
)
def test_matches_pytorch_fid(n, d):
    ours, theirs = both_distances(*feature_pair(n, d))
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_matches_pytorch_fid_with_nearly_as_many_dimensions_as_samples():
    # As with 2,500 pool3 features of width 2,048 (n/d = 1.22: ill-conditioned covariances), at half
    # the width: scipy's sqrtm takes 2 s here instead of 12 (46 on a busy machine); both agree to 1e-14.
    ours, theirs = both_distances(*feature_pair(1250, 1024, seed=1))
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_identical_statistics_give_zero_and_distance_is_symmetric():
    real, fake = feature_pair(300, 32)
    mu1, sigma1 = activation_statistics(real)
    mu2, sigma2 = activation_statistics(fake)
    assert abs(frechet_distance(mu1, sigma1, mu1, sigma1)) < 1e-8
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(frechet_distance(mu2, sigma2, mu1, sigma1))
    assert frechet_distance(mu1, sigma1, mu2, sigma2) > 1.0


def test_statistics_match_numpy_across_chunks(monkeypatch):
    monkeypatch.setattr(frechet_module, "STATS_CHUNK", 7)  # several chunks and a ragged last one
    features = np.random.default_rng(3).standard_normal((50, 5)).astype(np.float32)
    mu, sigma = activation_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, features.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-14)


def test_bad_statistics_are_one_line_errors():
    mu, sigma = np.zeros(4), np.eye(4)
    with pytest.raises(CifarError, match="different feature widths"):
        frechet_distance(mu, sigma, np.zeros(3), np.eye(3))
    with pytest.raises(CifarError, match="sigma2"):
        frechet_distance(mu, sigma, mu, np.eye(3))
    bad = sigma.copy()
    bad[1, 2] = np.nan
    with pytest.raises(CifarError, match="NaN or infinite"):
        frechet_distance(mu, sigma, mu, bad)
    with pytest.raises(CifarError, match="NaN or infinite"):
        frechet_distance(np.full(4, np.inf), sigma, mu, sigma)


def test_bad_features_are_one_line_errors():
    with pytest.raises(CifarError, match="at least 2"):
        activation_statistics(np.zeros((1, 8), np.float32))
    with pytest.raises(CifarError, match="2-D"):
        activation_statistics(np.zeros(8, np.float32))
    with pytest.raises(CifarError, match="NaN"):
        activation_statistics(np.array([[0.0, 1.0], [np.nan, 2.0]]))
