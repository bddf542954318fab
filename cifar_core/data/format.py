"""The official CIFAR-100 python format: `cifar-100-python/{train,test,meta}`, Python 2 pickles.

`train` and `test` hold filenames, batch_label, fine_labels, coarse_labels and data (uint8 rows: the
R, G, then B plane of a 32x32 image); `meta` the label names. We read and write it ourselves, not
through torchvision, so that a synthetic stand-in can take the real data's place anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from cifar_core.atomic import atomic_write_bytes, file_digest
from cifar_core.data.py2pickle import dumps_py2
from cifar_core.errors import DataError

BASE_FOLDER = "cifar-100-python"
SPLITS = ("train", "test")
NUM_FINE, NUM_COARSE = 100, 20
ROW_BYTES = 32 * 32 * 3
OFFICIAL_COUNTS = {"train": 50_000, "test": 10_000}
# The md5s torchvision checks (torchvision.datasets.CIFAR100.train_list/test_list/meta).
OFFICIAL_MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}
OFFICIAL_BATCH_LABELS = {"train": "training batch 1 of 1", "test": "testing batch 1 of 1"}
SYNTHETIC_PREFIX = "synthetic"  # batch_label of synthetic files starts with this
MANIFEST_NAME = "SYNTHETIC.json"  # written beside synthetic files: seed, counts, md5s
BATCH_KEYS = ("filenames", "batch_label", "fine_labels", "coarse_labels", "data")
META_KEYS = ("fine_label_names", "coarse_label_names")
HINT = "run `cifar data fetch --out DIR` or `cifar data synth --out DIR`"


@dataclass
class CifarSplit:
    images: np.ndarray  # uint8 [N, 32, 32, 3]
    fine_labels: np.ndarray  # int64 [N]
    coarse_labels: np.ndarray  # int64 [N]
    filenames: list[str]
    batch_label: str

    def __len__(self) -> int:
        return len(self.fine_labels)


@dataclass
class CifarMeta:
    fine_label_names: list[str]
    coarse_label_names: list[str]


def resolve_root(path: str | os.PathLike) -> Path:
    """The `cifar-100-python` directory, given it or the directory that holds it."""
    path = Path(path)
    if path.name == BASE_FOLDER and path.is_dir():
        return path
    if (path / BASE_FOLDER).is_dir():
        return path / BASE_FOLDER
    raise DataError(f"no CIFAR-100 data at {path}: expected {path / BASE_FOLDER}/{{train,test,meta}}; {HINT}")


def md5_of(path: str | os.PathLike) -> str:
    return file_digest(path, "md5")


class _CifarUnpickler(pickle.Unpickler):
    """Loads only what CIFAR files contain, so a tampered file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def read_pickle(path: Path, encoding: str = "bytes") -> dict:
    """Unpickle one CIFAR file into a dict with `str` keys, or raise a one-line DataError."""
    if not path.is_file():
        raise DataError(f"{path} is missing; {HINT}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding=encoding).load()
    except Exception as exc:  # any parse failure means the file is damaged
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path} is truncated or corrupt ({reason})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR-100 file (holds a {type(obj).__name__}, not a dict)")
    return {_text(key): value for key, value in obj.items()}


def _text(value) -> str:
    # Under encoding="bytes" Python 2 strings arrive as bytes; under "latin1" as str.
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _require_keys(path: Path, entry: dict, keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in entry]
    if missing:
        raise DataError(f"{path} is not a CIFAR-100 file: missing key {missing[0]!r}")


def load_split(root: str | os.PathLike, split: str, *, encoding: str = "bytes") -> CifarSplit:
    """Read `train` or `test`, checking shapes, dtypes and label ranges."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    path = resolve_root(root) / split
    entry = read_pickle(path, encoding)
    _require_keys(path, entry, BATCH_KEYS)
    data = entry["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != ROW_BYTES
    ):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' is {got}, expected uint8 (N, {ROW_BYTES})")
    n = data.shape[0]
    fine = _labels(path, entry, "fine_labels", n, NUM_FINE)
    coarse = _labels(path, entry, "coarse_labels", n, NUM_COARSE)
    filenames = _strings(path, entry, "filenames", n)
    batch_label = entry["batch_label"]
    if not isinstance(batch_label, (str, bytes)):
        raise DataError(f"{path}: 'batch_label' has type {type(batch_label).__name__}, expected a string")
    # Rows are planar RGB; images are wanted as HWC like torchvision's CIFAR100.data.
    images = np.ascontiguousarray(data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))
    return CifarSplit(images, fine, coarse, filenames, _text(batch_label))


def _labels(path: Path, entry: dict, key: str, n: int, num_classes: int) -> np.ndarray:
    """int64 [n] from a list of ints (the official files) or an integer array; a float, a bool or
    anything else is refused rather than truncated to a plausible class."""
    values = entry[key]
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu" or values.ndim != 1:
            raise DataError(f"{path}: {key!r} is an array of {values.dtype} with shape {list(values.shape)}, "
                            "expected a list of integers")
    elif isinstance(values, list):
        bad = next((i for i, v in enumerate(values) if isinstance(v, bool) or not isinstance(v, int)), None)
        if bad is not None:
            raise DataError(f"{path}: {key!r}[{bad}] is {values[bad]!r}, expected an integer class index")
    else:
        raise DataError(f"{path}: {key!r} has type {type(values).__name__}, expected a list of integers")
    if len(values) != n:
        raise DataError(f"{path}: {len(values)} {key} for {n} images")
    if n and (min(values) < 0 or max(values) >= num_classes):
        raise DataError(f"{path}: {key} outside 0..{num_classes - 1}")
    return np.asarray(values, dtype=np.int64)


def _strings(path: Path, entry: dict, key: str, n: int | None = None) -> list[str]:
    """A list of str (Python 2 strings arrive as bytes) of length `n` when given."""
    values = entry[key]
    if not isinstance(values, list):
        raise DataError(f"{path}: {key!r} has type {type(values).__name__}, expected a list of strings")
    bad = next((i for i, v in enumerate(values) if not isinstance(v, (str, bytes))), None)
    if bad is not None:
        raise DataError(f"{path}: {key!r}[{bad}] has type {type(values[bad]).__name__}, expected a string")
    if n is not None and len(values) != n:
        raise DataError(f"{path}: {len(values)} {key} for {n} images")
    return [_text(v) for v in values]


def load_meta(root: str | os.PathLike, *, encoding: str = "bytes") -> CifarMeta:
    path = resolve_root(root) / "meta"
    entry = read_pickle(path, encoding)
    _require_keys(path, entry, META_KEYS)
    fine = _strings(path, entry, "fine_label_names")
    coarse = _strings(path, entry, "coarse_label_names")
    if len(fine) != NUM_FINE or len(coarse) != NUM_COARSE:
        raise DataError(f"{path}: {len(fine)} fine and {len(coarse)} coarse names, expected 100 and 20")
    return CifarMeta(fine, coarse)


@lru_cache(maxsize=1)
def _shipped_names() -> dict:
    with open(Path(__file__).with_name("class_names.json"), encoding="utf-8") as f:
        return json.load(f)


def official_meta() -> CifarMeta:
    """The real CIFAR-100 class names, shipped with the package (no dataset needed)."""
    names = _shipped_names()
    return CifarMeta(list(names["fine_label_names"]), list(names["coarse_label_names"]))


def fine_to_coarse() -> np.ndarray:
    """Superclass of each fine label, int64 [100]."""
    return np.asarray(_shipped_names()["fine_to_coarse"], dtype=np.int64)


def batch_bytes(
    images_chw_rows: np.ndarray, fine: np.ndarray, coarse: np.ndarray, filenames: list[str], batch_label: str
) -> bytes:
    """One `train`/`test` file's bytes; `images_chw_rows` is uint8 (N, 3072) in planar RGB."""
    entry = {
        "filenames": list(filenames),
        "batch_label": batch_label,
        "fine_labels": [int(v) for v in fine],
        "coarse_labels": [int(v) for v in coarse],
        "data": np.ascontiguousarray(images_chw_rows, dtype=np.uint8),
    }
    return dumps_py2(entry)


def meta_bytes(meta: CifarMeta) -> bytes:
    return dumps_py2(
        {"fine_label_names": meta.fine_label_names, "coarse_label_names": meta.coarse_label_names}
    )


def write_file(path: Path, data: bytes) -> str:
    """Write atomically and return the md5, so manifests never describe a torn file."""
    atomic_write_bytes(path, data)
    return hashlib.md5(data).hexdigest()


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is unreadable ({' '.join(str(exc).split())})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("md5"), dict):
        raise DataError(f"{path} has no 'md5' table")
    return manifest


def is_synthetic(root: str | os.PathLike) -> bool:
    """True for data made by `write_synthetic`: a manifest, or a batch_label saying so."""
    folder = resolve_root(root)
    if (folder / MANIFEST_NAME).is_file():
        return True
    return load_split(folder, "train").batch_label.startswith(SYNTHETIC_PREFIX)
