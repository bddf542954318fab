"""Progress for long work: a tqdm bar on a terminal, plain log lines otherwise (pods, CI, files)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def is_terminal() -> bool:
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", every_s: float = 30.0) -> Iterator[T]:
    """Yield from `iterable`, showing progress on stderr.

    On a terminal: a tqdm bar. Elsewhere: one plain line at most every `every_s` seconds and one
    at the end, so Kubernetes logs stay readable.
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if is_terminal():
        from tqdm import tqdm

        yield from tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
        return
    start = last = time.monotonic()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            of = f"/{total}" if total else ""
            print(f"[{desc}] {done}{of} ({now - start:.0f}s)", file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """45 s, 12 min, 1 h 20 min, 2 d 3 h."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def log(message: str) -> None:
    """A plain progress line on stderr (stdout is kept for results such as --json)."""
    print(message, file=sys.stderr, flush=True)


# --- where a study stands, for `cifar status` ----------------------------------------------------
# The pipeline's driver writes its standing to RESULTS/pipeline/<profile>/standing.json now and then
# and at the end (`write_standing`), never into what a person reads, and hands the same standing to
# its caller (on Kubernetes: an annotation of its RayJob, which `cifar status` reads back with
# `read_standing`), so what it shows was measured by the driver, never guessed.
# A stage: {"stage", "status" (waiting, running, ran, skipped, unavailable, failed, blocked),
#           "done", "total", "unit" (steps, epochs, trials; null when unknown), "eta_s", "work_s"}.
STANDING_FILE = "standing.json"


def write_standing(path: Path, stages: list[dict], **extra) -> dict:
    """Write the standing of `stages` (with `extra` keys such as profile, final) to `path`; returns it."""
    from cifar_core.atomic import atomic_write_json

    standing = {"time": time.time(), **extra, "stages": stages}
    atomic_write_json(path, standing)
    return standing


def read_standing(text: str) -> dict | None:
    """A standing as `write_standing` wrote it, or None for anything else (empty, torn, not one).
    Only its outline is checked: whoever prints its fields checks each one."""
    import json

    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("stages"), list) else None
