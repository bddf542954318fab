"""Progress for long work: a tqdm bar on a terminal, plain log lines otherwise (pods, CI, files)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
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


def log(message: str) -> None:
    """A plain progress line on stderr (stdout is kept for results such as --json)."""
    print(message, file=sys.stderr, flush=True)


# --- where a study stands, as the driver's log says it -------------------------------------------
# The pipeline's driver prints one such line now and then (and at the end); `cifar status` reads the
# last one from the driver's log, so what it shows was measured by the driver, never guessed.
# A stage: {"stage", "status" (waiting, running, ran, skipped, unavailable, failed, blocked),
#           "done", "total", "unit" (steps, epochs, trials; null when unknown), "eta_s", "work_s"}.
STANDING_MARK = "[cifar-standing] "


def standing_line(stages: list[dict], **extra) -> str:
    import json

    return STANDING_MARK + json.dumps({"time": time.time(), **extra, "stages": stages}, sort_keys=True)


def last_standing(log_text: str) -> dict | None:
    """The last standing line of a log, or None when it has none (or only a torn one)."""
    import json

    for line in reversed(log_text.splitlines()):
        at = line.find(STANDING_MARK)
        if at < 0:
            continue
        try:
            value = json.loads(line[at + len(STANDING_MARK):])
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("stages"), list):
            return value
    return None
