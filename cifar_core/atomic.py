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
    try:  # never through a link planted in the results tree
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666), "wb") as f:
            f.write(data)
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
    # O_NOFOLLOW: an append never goes through a link planted in the results tree.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666), "a",
                   encoding="utf-8") as f:
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


# --- reading what others may have written: bounded ------------------------------------------------
# Limits on every JSON or YAML file read (summaries, manifests, configs, search spaces, values files):
# a hostile or broken file is refused in one line instead of read for ever, nested past the
# interpreter's stack or turned into numbers nothing can use.
JSON_MAX_BYTES = 64 << 20  # a tune experiment's summary with its trials' curves is a few MB
MAX_NESTING = 64  # our files nest fewer than ten levels
INT64 = (-(2**63), 2**63 - 1)


def read_limited(path: str | os.PathLike, limit: int, what: str = "file", error: type | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. A device (/dev/zero), a pipe or a
    directory is refused, and so is a larger file: `error` (CifarError) naming `what` and the path,
    never a read that does not end. A missing or unreadable file is the OSError."""
    import stat

    from cifar_core.errors import CifarError

    error = error or CifarError
    # O_NONBLOCK: opening a pipe with no writer must not wait; a regular file ignores it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{what} {path} is not a regular file (a device, pipe or directory): give a file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{what} {path} is larger than {_size(limit)}, the most it may be")
    return data


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB" if n >= 1 << 10 else f"{n} bytes"


class _BadNumber:
    """A number of a JSON text that is not finite or does not fit: found again to name its key."""

    def __init__(self, text: str):
        self.text = text


def _parse_int(text: str) -> int | _BadNumber:
    if len(text) > 20:  # before int(): 10 MB of digits must not be converted to find out
        return _BadNumber(text)
    value = int(text)
    return value if INT64[0] <= value <= INT64[1] else _BadNumber(text)


def _parse_float(text: str) -> float | _BadNumber:
    value = float(text)
    return value if math.isfinite(value) else _BadNumber(text)


def parse_json(text: str, source: str) -> Any:
    """A JSON value, strict and bounded: NaN, Infinity, a number that overflows a float64 (1e999) or
    an int64, or nesting deeper than MAX_NESTING is a CifarError naming `source` and the key."""
    from cifar_core.errors import CifarError

    try:
        return _decode(text, source)
    except json.JSONDecodeError as exc:
        raise CifarError(f"corrupt {source}: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _decode(text: str, source: str) -> Any:
    """`parse_json` but for text that is not JSON at all: that stays a JSONDecodeError (a torn line)."""
    from cifar_core.errors import CifarError

    try:
        value = json.loads(text, parse_constant=_BadNumber, parse_float=_parse_float, parse_int=_parse_int)
    except RecursionError:
        raise CifarError(f"corrupt {source}: nested deeper than {MAX_NESTING} levels") from None
    problem = _first_problem(value)
    if problem is not None:
        raise CifarError(f"corrupt {source}: {problem}")
    return value


def _first_problem(value: Any) -> str | None:
    """What makes a parsed JSON value unusable (a bad number, too deep), naming its key; walked
    without recursion, as the value may be as deep as the parser allowed."""
    stack = [(value, "", 1)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_NESTING:
            return f"{where or 'the value'} is nested deeper than {MAX_NESTING} levels"
        if isinstance(item, _BadNumber):
            shown = item.text if len(item.text) <= 24 else f"{item.text[:12]}...({len(item.text)} characters)"
            return f"{where or 'the value'} = {shown} is not a finite number that fits a float64 or int64"
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, child in reversed(list(children)):
            inner = f"[{key}]" if isinstance(key, int) else f".{key}" if where else str(key)
            stack.append((child, where + inner, depth + 1))
    return None


def read_json(path: str | os.PathLike, limit: int = JSON_MAX_BYTES) -> dict:
    """A JSON object from `path` (a regular file of at most `limit` bytes, see `parse_json`);
    anything else is a one-line CifarError naming the file."""
    from cifar_core.errors import CifarError

    path = Path(path)
    try:
        text = read_limited(path, limit, "JSON file").decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CifarError(f"cannot read {path}: {type(exc).__name__}") from None
    value = parse_json(text, str(path))
    if not isinstance(value, dict):
        raise CifarError(f"corrupt {path}: expected a JSON object, found {type(value).__name__}")
    return value


def read_jsonl(path: str | os.PathLike, limit: int = JSON_MAX_BYTES) -> list[dict]:
    """Read a JSON-lines file, ignoring a torn last line left by a crash mid-append. Each line is
    bounded as `parse_json` says; a line that parses to an unusable value names the line."""
    from cifar_core.errors import CifarError

    path = Path(path)
    if not path.exists():
        return []
    try:
        text = read_limited(path, limit, "JSON-lines file").decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CifarError(f"cannot read {path}: {type(exc).__name__}") from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(_decode(line, f"{path} line {number}"))
        except json.JSONDecodeError:
            break  # torn: the file ends here for every reader
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
