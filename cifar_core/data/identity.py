"""Which data a run used: `data_digest(root)`, a short string that changes when the data does.

    official:<16 hex>   the three files are the official CIFAR-100 (their md5s are the published ones)
    synthetic:<16 hex>  a set written by `cifar data synth`: a digest of its SYNTHETIC.json
                        manifest (seed, counts and the files' md5s, checked by `cifar data verify`)
    files:<16 hex>      anything else: a digest of the files' md5s

Runs record it and refuse to resume (or a stage to be skipped) on data with another digest. The
md5s are computed once per process for an unchanged file (`cifar_core.atomic.file_digest`):
CIFAR-100's 160 MB take about a second to hash.
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
    manifest = folder / fmt.MANIFEST_NAME
    if manifest.is_file():
        return "synthetic:" + _short(manifest.read_bytes())
    md5 = {name: _md5(folder / name) for name in FILES}
    kind = "official" if md5 == fmt.OFFICIAL_MD5 else "files"
    return f"{kind}:" + _short(json.dumps(md5, sort_keys=True).encode())


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
