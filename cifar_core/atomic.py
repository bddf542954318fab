"""Atomic file writes: a temporary file beside the target, fsync, then rename.

A crash at any moment leaves the old file or the new one, never a torn one, plus at most a
`.<name>.<8 hex>.tmp` that `remove_stale_temps` deletes when the directory's owner opens it again.
New files get the umask's mode (mkstemp's 0600 would hide results from the chart's shared group).
Only `_publish` and `_append` touch a target file: the fault-injection tests kill the process there.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")  # what atomic_write names its temporary files


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(fileobj)` on a temp file in the target's directory, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    # O_EXCL with mode 0o666: the kernel applies the umask, as for any new file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException as exc:
        # The target is untouched; only our temp file goes.
        tmp.unlink(missing_ok=True)
        _name_the_file(exc, path)
        raise
    return path


def write_plain(path: str | os.PathLike, data: bytes) -> None:
    """A plain write (no fsync, no rename: for files of a folder that is itself renamed into place),
    whose failure names the file like every other write."""
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        _name_the_file(exc, Path(path))
        raise


def _name_the_file(exc: BaseException, path: Path) -> None:
    """A write or fsync on a full disk raises ENOSPC without a file name: name the target, so the
    CLI's one line says which file could not be written."""
    if isinstance(exc, OSError) and exc.filename is None:
        exc.filename = str(path)


def _publish(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    _fsync_dir(path.parent)  # the rename itself survives a power loss


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer left in `folder` (call it only as the folder's
    single writer, e.g. under its run lock). Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if _TEMP_NAME.fullmatch(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj, path, indent=2) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save into memory first, so that a failing disk surfaces as a plain OSError."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getbuffer())


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line. Callers that need crash-exact files rewrite them with `write_jsonl`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _append(path, to_json(record, path) + "\n")
    except OSError as exc:
        _name_the_file(exc, path)
        raise


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> Path:
    text = "".join(to_json(r, path) + "\n" for r in records)
    return atomic_write_text(path, text)


def to_json(obj: Any, path: str | os.PathLike = "<memory>", indent: int | None = None) -> str:
    """Strict JSON (sorted keys); a NaN or infinite number is a ValueError naming `path`."""
    try:
        return json.dumps(obj, indent=indent, sort_keys=True, default=_json_default, allow_nan=False)
    except ValueError:
        raise ValueError(f"refusing to write NaN or Infinity into {path}: {_non_finite_key(obj)}") from None


def _non_finite_key(obj: Any, where: str = "") -> str:
    """The first key path holding a non-finite float, for the error message."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "value"
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _non_finite_key(value, f"{where}.{key}" if where else str(key))
            if found:
                return found
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found = _non_finite_key(value, f"{where}[{i}]")
            if found:
                return found
    return ""


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from `path`; anything else is a one-line CifarError naming the file."""
    from cifar_core.errors import CifarError

    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise CifarError(f"corrupt {path}: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # NaN or Infinity: not JSON, and never written by us
        raise CifarError(f"corrupt {path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CifarError(f"cannot read {path}: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise CifarError(f"corrupt {path}: expected a JSON object, found {type(value).__name__}")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file, ignoring a torn last line left by a crash mid-append."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, computed once per process while the file is unchanged (same resolved
    path, size, modification time and inode): CIFAR's 150 MB pickles and Inception's 95 MB weights
    are hashed by every data check and every FID score, about a second each."""
    stat = os.stat(path)
    return _file_digest(str(Path(path).resolve()), algorithm, stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, algorithm: str, size: int, mtime_ns: int, inode: int) -> str:
    import hashlib

    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):  # 4 MiB at a time
            digest.update(chunk)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    # numpy scalars and paths show up in metrics and configs.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def copy_file_atomically(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    import shutil

    with open(source, "rb") as src:
        return atomic_write(target, lambda f: shutil.copyfileobj(src, f, 1 << 22))
