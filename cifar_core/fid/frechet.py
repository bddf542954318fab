"""Features -> (mu, sigma) -> the Frechet distance between two Gaussians, in float64.

pytorch-fid takes scipy's sqrtm of S1 S2 (~15 s at 2048 dims on two cores) only to use its trace.
With S1 = A A^T (pivoted Cholesky), tr(sqrt(S1 S2)) = sum(sqrt(eigvalsh(A^T S2 A))): one symmetric
eigenvalue solve, about 1 s, with no complex arithmetic and no imaginary part to drop.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from cifar_core.errors import CifarError

STATS_CHUNK = 4096  # feature rows turned into float64 at a time when forming the covariance


def activation_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu [d], sigma [d, d]) in float64: the mean and the unbiased covariance (as np.cov) of
    feature rows, built chunk by chunk so 50,000 float32 rows never become one float64 copy."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise CifarError(f"features must be a 2-D [N, d] array, got shape {list(features.shape)}")
    n, d = features.shape
    if n < 2:
        raise CifarError(f"FID needs at least 2 images to estimate a covariance, got {n}")
    if not np.isfinite(features).all():
        raise CifarError("features contain NaN or infinite values")
    mu = features.mean(axis=0, dtype=np.float64)
    scatter = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, STATS_CHUNK):
        centred = features[start : start + STATS_CHUNK].astype(np.float64) - mu
        scatter += centred.T @ centred
    return mu, scatter / (n - 1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); the FID for Inception
    statistics. Agrees with pytorch_fid.fid_score.calculate_frechet_distance."""
    mu1, sigma1 = _checked(mu1, sigma1, "1")
    mu2, sigma2 = _checked(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise CifarError(f"statistics have different feature widths: {mu1.shape[0]} and {mu2.shape[0]}")
    diff = mu1 - mu2
    covariance_term = np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + covariance_term)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrt(sigma1 @ sigma2)) for symmetric positive semi-definite sigma1, sigma2."""
    factor = _psd_factor(sigma1)
    inner = factor.T @ (sigma2 @ factor)
    inner = (inner + inner.T) / 2.0  # exactly symmetric, so eigvalsh sees what we mean
    eigenvalues = np.linalg.eigvalsh(inner)
    # Rank-deficient covariances (fewer images than dimensions) give eigenvalues that are zero in
    # exact arithmetic and tiny negatives in floating point; their square roots are zero.
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def _psd_factor(sigma: np.ndarray) -> np.ndarray:
    """A [d, r] with A @ A.T == sigma, r = numerical rank: a pivoted Cholesky factorisation.

    Pivoting stops at the rank, so a covariance of fewer images than dimensions (rank n - 1)
    gives a thin factor and the eigenvalue problem shrinks to n - 1 instead of d.
    """
    packed, pivots, rank, info = lapack.dpstrf(sigma, lower=1)
    if info < 0:
        raise CifarError(f"covariance factorisation failed (LAPACK dpstrf info={info})")
    factor = np.empty((sigma.shape[0], rank), dtype=np.float64)
    factor[pivots - 1] = np.tril(packed)[:, :rank]  # undo the symmetric row/column pivoting
    return factor


def _checked(mu: np.ndarray, sigma: np.ndarray, which: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise CifarError(f"mu{which} {list(mu.shape)} and sigma{which} {list(sigma.shape)} are not a [d] and a [d, d]")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise CifarError(f"mu{which} or sigma{which} contains NaN or infinite values")
    return mu, sigma
