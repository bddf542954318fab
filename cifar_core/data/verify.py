"""Check a dataset on disk (`verify_dataset`) and download the real one (`fetch_cifar100`)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np

from cifar_core.data import format as fmt
from cifar_core.errors import DataError
from cifar_core.progress import log

DOWNLOAD_HOST = "www.cs.toronto.edu"  # where torchvision downloads CIFAR-100 from


def verify_dataset(root: str | os.PathLike) -> dict:
    """Counts, classes and checksum status of a dataset; DataError for anything wrong with it.

    Checksums are compared with the official md5s when the files claim to be the official set
    (full counts, no synthetic marker), and with the md5s in the manifest of a synthetic set.
    Other sets (a subset someone cut themselves) are reported as "unchecked".
    """
    folder = fmt.resolve_root(root)
    meta = fmt.load_meta(folder)
    splits, batch_labels = {}, {}
    for name in fmt.SPLITS:
        # One split in memory at a time: this is the chart's probe, in a pod with 1 GiB.
        split = fmt.load_split(folder, name)
        splits[name] = {
            "count": len(split),
            "fine_classes_present": int(np.unique(split.fine_labels).size),
            "coarse_classes_present": int(np.unique(split.coarse_labels).size),
        }
        batch_labels[name] = split.batch_label
        del split
    manifest = fmt.read_manifest(folder)
    synthetic = manifest is not None or batch_labels["train"].startswith(fmt.SYNTHETIC_PREFIX)
    expected_md5, checksum = _expected_checksums(folder, splits, manifest, synthetic)
    md5 = {}
    for name in ("train", "test", "meta"):
        md5[name] = fmt.md5_of(folder / name)
        if expected_md5 and md5[name] != expected_md5[name]:
            source = "the synthetic manifest" if synthetic else "the official CIFAR-100 file"
            raise DataError(
                f"{folder / name} is corrupt: md5 {md5[name]} does not match {source} "
                f"({expected_md5[name]}); delete it and run `cifar data fetch` or `cifar data synth` again"
            )
    report = {
        "root": str(folder),
        "synthetic": synthetic,
        "checksum": checksum,
        "fine_classes": len(meta.fine_label_names),
        "coarse_classes": len(meta.coarse_label_names),
    }
    for name, counts in splits.items():
        report[name] = {**counts, "md5": md5[name]}
    report["meta"] = {"md5": md5["meta"]}
    return report


def _expected_checksums(folder: Path, splits: dict, manifest: dict | None, synthetic: bool):
    """(md5 table to compare with or None, checksum status word)."""
    if manifest is not None:
        missing = [name for name in ("train", "test", "meta") if name not in manifest["md5"]]
        if missing:
            raise DataError(f"{folder / fmt.MANIFEST_NAME} has no md5 for {missing[0]!r}")
        return manifest["md5"], "ok-synthetic-manifest"
    counts = {name: split["count"] for name, split in splits.items()}
    if not synthetic and counts == fmt.OFFICIAL_COUNTS:
        return fmt.OFFICIAL_MD5, "ok-official"
    return None, "unchecked"


def fetch_cifar100(out_dir: str | os.PathLike, *, timeout_s: float = 10.0) -> Path:
    """Download the official CIFAR-100 into `out_dir/cifar-100-python/`; a no-op when already there.

    `out_dir` is a data set's result directory (cifar_core.resultdir): one writer at a time. Files
    already present are kept when they verify as the official set. The archive is fetched into a
    temporary folder and moved into place only once it verifies, so an interrupted download never
    leaves a half-written dataset behind.
    """
    from cifar_core.resultdir import Request, ResultDir

    out = Path(out_dir)
    folder = out / fmt.BASE_FOLDER
    with ResultDir(out, "data set", root=Path(os.path.abspath(out)).parent, replaceable=True,
                   outputs=lambda: [folder / name for name in (*fmt.SPLITS, "meta")]) as result:
        _fetch(out, folder, timeout_s)
        result.open(Request("data set", {"source": "official CIFAR-100"}))
        result.complete()
    return folder


def _fetch(out: Path, folder: Path, timeout_s: float) -> None:
    if folder.is_dir():
        existing = _verify_quietly(folder)
        if existing is not None and existing["synthetic"]:
            raise DataError(
                f"{folder} holds the synthetic dataset; delete it or choose another --out to fetch CIFAR-100"
            )
        if existing is not None and existing["checksum"] == "ok-official":
            log(f"CIFAR-100 already present and verified at {folder}")
            return
    _require_network(out, timeout_s)
    staging = out / ".fetch-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        import torchvision

        torchvision.datasets.CIFAR100(root=str(staging), train=True, download=True)
    except Exception as exc:  # network errors come in many types (URLError, HTTPError, OSError, RuntimeError)
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(
            f"downloading CIFAR-100 failed ({' '.join(str(exc).split())}); {_offline_hint(out)}"
        ) from None
    downloaded = staging / fmt.BASE_FOLDER
    verify_dataset(downloaded)
    if folder.exists():
        shutil.rmtree(folder)
    out.mkdir(parents=True, exist_ok=True)
    os.replace(downloaded, folder)
    shutil.rmtree(staging, ignore_errors=True)  # the 160 MB archive is no longer needed


def _verify_quietly(folder: Path) -> dict | None:
    try:
        return verify_dataset(folder)
    except DataError as exc:
        log(f"existing data at {folder} is unusable ({exc}); downloading again")
        return None


def _require_network(out: Path, timeout_s: float) -> None:
    # Probe first: without a network torchvision's download can wait a long time before failing.
    try:
        socket.create_connection((DOWNLOAD_HOST, 443), timeout=timeout_s).close()
    except OSError as exc:
        raise DataError(
            f"cannot reach {DOWNLOAD_HOST} ({exc.strerror or exc}); {_offline_hint(out)}"
        ) from None


def _offline_hint(out: Path) -> str:
    return (
        f"put the official files (train, test, meta) at {out / fmt.BASE_FOLDER} "
        f"or run `cifar data synth --out {out}` for a synthetic stand-in"
    )
