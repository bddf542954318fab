"""Reference statistics of a CIFAR-100 split, cached on disk, and the FID of images against them.

The real side never changes between runs, so its (mu, sigma) is computed once into an .npz whose
name and contents record all it depends on (data, split, count, feature width, weights' sha256).
Written atomically and never replaced: a file that disagrees is an error, not papered over.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cifar_core.atomic import atomic_write
from cifar_core.errors import CifarError
from cifar_core.fid.features import FeatureExtractor, ImageBatches
from cifar_core.fid.frechet import activation_statistics, frechet_distance
from cifar_core.fid.inception import FEATURE_DIMS, FEATURE_LAYER, file_sha256

CACHE_FORMAT = "cifar100-k8s/fid-stats/v1"


@dataclass
class FidStatistics:
    """(mu, sigma) of n images' features, with what they were computed from."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    key: dict = field(default_factory=dict)  # dataset, split, fingerprint, weights, dims
    cache_path: Path | None = None
    from_cache: bool = False


def statistics_of_images(images: ImageBatches, extractor: FeatureExtractor, desc: str = "inception") -> FidStatistics:
    features = extractor.features(images, desc=desc)
    mu, sigma = activation_statistics(features)
    return FidStatistics(mu, sigma, len(features))


def fid_of_images(images: ImageBatches, ref_stats: FidStatistics, extractor: FeatureExtractor) -> float:
    """FID of uint8 images (a tensor, an array or an iterable of batches) against `ref_stats`."""
    fake = statistics_of_images(images, extractor, desc="fake images")
    return frechet_distance(fake.mu, fake.sigma, ref_stats.mu, ref_stats.sigma)


def reference_statistics(
    data_root: str | os.PathLike, split: str, extractor: FeatureExtractor, cache_dir: str | os.PathLike | None
) -> FidStatistics:
    """(mu, sigma) of a whole CIFAR-100 split, from `cache_dir` when an entry for exactly this
    data, split and weights exists, else computed and stored there (no caching when None)."""
    from cifar_core.data import is_synthetic, load_split, resolve_root

    split_file = resolve_root(data_root) / split
    if not split_file.is_file():
        raise CifarError(f"no {split} split at {split_file}")
    key = {
        "format": CACHE_FORMAT,
        "dataset": "synthetic" if is_synthetic(data_root) else "cifar100",
        "split": split,
        "data_sha256": file_sha256(split_file),
        "weights_sha256": extractor.weights_sha256,
        "feature_layer": FEATURE_LAYER,
        "dims": FEATURE_DIMS,
    }
    # The image count belongs in the key, but knowing it means reading the split: do that only
    # when no cache entry for this data file exists (entries for the same file share the count).
    cache_path = _find_entry(Path(cache_dir), key) if cache_dir is not None else None
    if cache_path is not None:
        stats = read_statistics(cache_path)
        if stats.key == {**key, "n": stats.n}:
            stats.from_cache = True
            return stats
        raise CifarError(f"FID statistics cache {cache_path} does not match its name; delete it to recompute")
    split_data = load_split(data_root, split)
    key["n"] = len(split_data)
    stats = statistics_of_images(split_data.images, extractor, desc=f"reference {split}")
    stats.key = key
    if cache_dir is not None:
        stats.cache_path = write_statistics(Path(cache_dir) / _entry_name(key), stats)
    return stats


def read_statistics(path: str | os.PathLike) -> FidStatistics:
    try:
        with np.load(path, allow_pickle=False) as archive:
            key = json.loads(str(archive["key"]))
            return FidStatistics(archive["mu"], archive["sigma"], int(archive["n"]), key, Path(path))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CifarError(f"FID statistics file {path} is unreadable ({type(exc).__name__}); delete it to recompute") from None


def write_statistics(path: str | os.PathLike, stats: FidStatistics) -> Path:
    """Write atomically; an existing file must hold the same statistics (another process may have
    raced us to it) and is left alone, anything else there is an error."""
    path = Path(path)
    if path.exists():
        existing = read_statistics(path)
        if existing.key == stats.key and _same_statistics(existing, stats):
            return path
        raise CifarError(f"refusing to overwrite {path}: it holds different FID statistics; delete it to recompute")
    arrays = {"mu": stats.mu, "sigma": stats.sigma, "n": np.int64(stats.n), "key": json.dumps(stats.key, sort_keys=True)}
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def _same_statistics(a: FidStatistics, b: FidStatistics) -> bool:
    # Two runs on different devices or thread counts differ at float32 rounding level only.
    return a.n == b.n and np.allclose(a.mu, b.mu, rtol=1e-4, atol=1e-6) and np.allclose(a.sigma, b.sigma, rtol=1e-3, atol=1e-6)


def _entry_name(key: dict) -> str:
    return (
        f"{key['dataset']}-{key['split']}-n{key['n']}-data{key['data_sha256'][:12]}"
        f"-w{key['weights_sha256'][:12]}-{key['feature_layer']}-{key['dims']}.npz"
    )


def _find_entry(cache_dir: Path, key: dict) -> Path | None:
    pattern = _entry_name({**key, "n": "*"})
    matches = sorted(cache_dir.glob(pattern)) if cache_dir.is_dir() else []
    return matches[0] if matches else None

