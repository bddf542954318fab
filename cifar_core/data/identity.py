"""Which data a run used: `data_digest(root)`, from the md5s of the files themselves.

`official:<hex>` (the published md5s), `synthetic:<hex>` (a `cifar data synth` set) or `files:<hex>`.
Always the files, never a manifest's word: a file copied over another changes the digest. Runs
refuse to resume, and stages to be skipped, on other data; the md5s are cached per process.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from cifar_core.data import format as fmt
from cifar_core.errors import DataError

FILES = ("train", "test", "meta")


def data_digest(root: str | os.PathLike) -> str:
    folder = fmt.resolve_root(root)
    md5 = {name: _md5(folder / name) for name in FILES}
    kind = "official" if md5 == fmt.OFFICIAL_MD5 else "synthetic" if (folder / fmt.MANIFEST_NAME).is_file() else "files"
    return f"{kind}:" + _short(json.dumps(md5, sort_keys=True).encode())


def data_digest_or_none(root: str | os.PathLike) -> str | None:
    """`data_digest`, or None where there is no dataset (yet): its absence is said where it is loaded."""
    try:
        return data_digest(root)
    except DataError:
        return None


def is_official(digest: str | None) -> bool:
    """Whether a digest is of the official CIFAR-100 files (by their published md5s)."""
    return bool(digest) and digest.startswith("official:")


def _short(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _md5(path: Path) -> str:
    try:
        return fmt.md5_of(path)
    except FileNotFoundError:
        raise DataError(f"{path} is missing; {fmt.HINT}") from None


def check_same_data(recorded: str | None, current: str | None, what: str) -> None:
    """Refuse to continue `what` on data other than it started on (unknown digests pass)."""
    if recorded is not None and current is not None and recorded != current:
        raise DataError(
            f"cannot resume {what} on other data: it was trained on {recorded}, this data is {current} "
            "(pass the original --data-dir, or choose another run name)"
        )


def require_official(digest: str, data_dir: str | os.PathLike, what: str) -> None:
    """Refuse, before any work, to set results beside a report's numbers that were not made on the
    report's data; --allow-synthetic runs them anyway (every summary says SYNTHETIC)."""
    if is_official(digest):
        return
    kind = "a SYNTHETIC stand-in" if digest.startswith("synthetic:") else "files that are not the official ones"
    raise DataError(f"{what} sets its results beside the reports' numbers and needs the official CIFAR-100, but "
                    f"{data_dir} holds {kind} ({digest}): run `cifar data fetch --out {data_dir}`, or pass "
                    "--allow-synthetic to run it anyway, labelled SYNTHETIC")
