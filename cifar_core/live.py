"""What a person watching a pipeline or a search sees: one block, a row per stage (or trial) with its
progress and time left, redrawn in place on a terminal, whatever else the process prints scrolling
above it; in a log (a pod, CI), a line at most every 30 s. The block's rows also go, now and then,
to `publish` (the standing `cifar status` reads), never into what a person reads.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cifar_core.progress import duration

Rows = Callable[[], list[dict[str, Any]]]
REDRAW_S = 2.0  # on a terminal
LOG_EVERY_S = 30.0  # in a log: at most two progress lines a minute
HEARTBEAT_S = 300.0  # ... and one at least every 5 minutes while work runs, changed or not
PUBLISH_EVERY_S = 30.0
BAR = 12
LOG_ROWS = 6  # running rows a log line names; it counts the others
STILL_TO_RUN = ("running", "waiting", "pending", "paused")

_view: LiveView | None = None  # the one view of this process: it owns the terminal while it runs
_verbose = False


def set_verbose(on: bool) -> None:
    """--verbose: Ray Tune's own tables as well (they scroll above the block, or into the log)."""
    global _verbose
    _verbose = on


def verbose() -> bool:
    return _verbose


def active() -> LiveView | None:
    return _view


def note(message: str) -> None:
    """A change the block already shows (a stage submitted): a line in a log, nothing on a terminal."""
    if _view is None or not _view.terminal:
        print(message, file=sys.stderr, flush=True)


def clock(seconds: float) -> str:
    """Elapsed time as a clock shows it: 0:45, 12:03, 1:02:03."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --- what the block says -----------------------------------------------------------------------------
def progress_text(row: dict[str, Any]) -> str:
    """`[#####-------]  98/150 steps · about 20 s left` for a running row; its result otherwise."""
    parts = []
    done, total, unit = row.get("done"), row.get("total"), row.get("unit") or ""
    if row.get("status") == "running" and done is not None and total:
        filled = min(BAR, round(BAR * done / total))
        parts.append(f"[{'#' * filled}{'-' * (BAR - filled)}] {done:,}/{total:,} {unit}".rstrip())
        if row.get("eta_s") is not None and done < total:
            parts.append(f"about {duration(row['eta_s'])} left")
    elif row.get("work_s") is not None:
        parts.append(f"{duration(row['work_s'])} of work")
    if row.get("note"):
        parts.append(row["note"])
    if row.get("hosts"):
        parts.append("on " + ", ".join(row["hosts"]))
    return " · ".join(parts)


def block_lines(title: str, rows: list[dict[str, Any]], elapsed_s: float, height: int = 1000) -> list[str]:
    """The block: the title and elapsed time, then a row per stage (nested rows indented), cut to
    `height` lines with a last line saying how many rows it left out."""
    name_width = min(28, max((len(r["stage"]) + 2 * r.get("depth", 0) for r in rows), default=0))
    lines = [f"{title} · {clock(elapsed_s)}"]
    for row in rows:
        name = ("  " * row.get("depth", 0) + row["stage"]).ljust(name_width)
        lines.append(f"  {name}  {row.get('status') or '':<11} {progress_text(row)}".rstrip())
    if len(lines) > height:
        lines = lines[:height - 1] + [f"  ... and {len(lines) - height + 1} more"]
    return lines


def log_line(title: str, rows: list[dict[str, Any]]) -> str | None:
    """One line for a log: the running rows (not nested ones) with their progress; None if none runs."""
    running = [r for r in rows if r.get("status") == "running" and not r.get("depth")]
    if not running:
        return None
    finished, top = tally(rows)
    items = []
    for row in running[:LOG_ROWS]:
        text = row["stage"]
        if row.get("done") is not None and row.get("total"):
            text += f" {row['done']:,}/{row['total']:,} {row.get('unit') or ''}".rstrip()
        if row.get("eta_s") is not None and (row.get("done") or 0) < (row.get("total") or 0):
            text += f" (about {duration(row['eta_s'])} left)"
        items.append(text)
    if len(running) > LOG_ROWS:
        items.append(f"{len(running) - LOG_ROWS} more")
    return f"[{title}] running: {'; '.join(items)} · {finished} of {top} done"


def tally(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(finished, all) of the top rows; a row standing for several (`counts`: status -> how many, a
    search's "7 more trials") counts each of them."""
    finished = total = 0
    for row in rows:
        if row.get("depth"):
            continue
        for status, n in (row.get("counts") or {row.get("status"): 1}).items():
            total += n
            finished += n if status not in STILL_TO_RUN else 0
    return finished, total


# --- the view ------------------------------------------------------------------------------------------
class LiveView:
    """Draws `rows()` under `title` until closed (a context manager); rows nested under a row come
    from `nest`. `publish(rows, final)` gets the top rows every PUBLISH_EVERY_S and once at the end."""

    def __init__(self, title: str | Callable[[], str], rows: Rows, *, stream=None, terminal: bool | None = None,
                 publish: Callable[[list[dict[str, Any]], bool], None] | None = None):
        self.title = title if callable(title) else (lambda: title)
        self.rows = rows
        self.stream = stream or sys.stderr
        self.terminal = _is_terminal(self.stream) if terminal is None else terminal
        self.publish = publish
        self._nested: dict[str, Rows] = {}
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._lines: list[str] = []  # the block as last rendered
        self._drawn = 0  # lines of the block now on the terminal
        self._pending = ""  # text written above the block, up to its next newline
        self._started = time.monotonic()
        self._restore: list[Callable[[], None]] = []

    def nest(self, under: str, rows: Rows) -> None:
        """Show `rows()` indented below the row named `under` (a search's trials under `tune`)."""
        self._nested[under] = rows

    def unnest(self, under: str) -> None:
        self._nested.pop(under, None)

    def __enter__(self) -> LiveView:
        global _view
        if _view is not None:
            raise RuntimeError("a live view is already showing")
        _view = self
        if self.terminal:
            self._take_streams()
        self._thread = threading.Thread(target=self._loop, name="cifar-live", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        global _view
        self._stopped.set()
        self._thread.join(timeout=30)
        try:
            self._publish(final=True)
            if not self.terminal:  # a log always ends with where the work stands, however short it ran
                finished, top = tally(self.rows())
                print(f"[{self.title()}] {finished} of {top} done · {clock(time.monotonic() - self._started)}",
                      file=self.stream, flush=True)
        finally:
            with self._lock:
                if self.terminal:
                    self._erase()
                    self._flush_pending()
                for undo in reversed(self._restore):
                    undo()
                self._restore.clear()
            _view = None

    # -- what the view shows
    def all_rows(self, top: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """`top` (the rows as just read, else read now) with the rows nested under each."""
        rows = []
        for row in self.rows() if top is None else top:
            rows.append(row)
            nested = self._nested.get(row["stage"])
            if nested is not None:
                rows.extend({**r, "depth": 1} for r in nested())
        return rows

    def _loop(self) -> None:
        last_line, last_printed, last_published = None, 0.0, time.monotonic()
        while not self._stopped.wait(REDRAW_S if self.terminal else LOG_EVERY_S):
            now = time.monotonic()
            try:
                top = self.rows()  # read once a tick: a pipeline's rows read its stages' files
                if now - last_published >= PUBLISH_EVERY_S:
                    last_published = now
                    self._publish(final=False, rows=top)
                if self.terminal:
                    self.redraw(top)
                    continue
                line = log_line(self.title(), self.all_rows(top))
                if line is not None and (line != last_line or now - last_printed >= HEARTBEAT_S):
                    print(f"{line} · {clock(now - self._started)}", file=self.stream, flush=True)
                    last_line, last_printed = line, now
            except Exception:  # files half written, a row that failed to read: next time
                continue

    def _publish(self, final: bool, rows: list[dict[str, Any]] | None = None) -> None:
        if self.publish is not None:
            try:
                self.publish(self.rows() if rows is None else rows, final)
            except Exception:  # the standing is a courtesy: never let it end the run
                pass

    # -- the terminal
    def redraw(self, top: list[dict[str, Any]] | None = None) -> None:
        size = self._size()
        lines = block_lines(self.title(), self.all_rows(top), time.monotonic() - self._started,
                            height=max(3, size.lines - 2))
        with self._lock:
            self._lines = [_fit(line, size.columns) for line in lines]
            self._erase()
            self._draw()

    def above(self, text: str) -> None:
        """Text another writer printed while the block is up: whole lines go above it."""
        with self._lock:
            self._pending += text
            if "\n" not in self._pending:
                return
            done, _, self._pending = self._pending.rpartition("\n")
            shown = self._drawn
            self._erase()
            self._write(done + "\n")
            if shown:
                self._draw()

    def _draw(self) -> None:
        if self._lines:
            self._write("\n".join(self._lines))
            self._drawn = len(self._lines)

    def _erase(self) -> None:
        if self._drawn:
            self._write("\r" + (f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else "") + "\x1b[J")
            self._drawn = 0

    def _flush_pending(self) -> None:
        if self._pending:
            self._write(self._pending + "\n")
            self._pending = ""

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _size(self) -> os.terminal_size:
        try:
            return os.get_terminal_size(self.stream.fileno())
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return shutil.get_terminal_size()

    def _take_streams(self) -> None:
        """stdout, stderr and the logging handlers writing to them go above the block while it shows."""
        for name in ("stdout", "stderr"):
            original = getattr(sys, name)
            setattr(sys, name, _Above(self, original))
            self._restore.append(lambda name=name, original=original: setattr(sys, name, original))
        streams = {id(s) for s in (sys.__stdout__, sys.__stderr__, self.stream) if s is not None}
        for handler in _stream_handlers():
            if id(handler.stream) in streams:
                original = handler.setStream(_Above(self, handler.stream))
                self._restore.append(lambda handler=handler, original=original: handler.setStream(original))


class _Above(io.TextIOBase):
    """A text stream whose lines go above the live block."""

    def __init__(self, view: LiveView, original):
        self.view = view
        self.original = original

    def write(self, text: str) -> int:
        self.view.above(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False  # nothing else draws on the terminal while the block does (progress(), tqdm)

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.original, "encoding", "utf-8")


def _stream_handlers() -> Iterator[logging.StreamHandler]:
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                yield handler  # Ray's own (ray._private.log.PlainRayHandler) among them


def _is_terminal(stream) -> bool:
    return os.environ.get("TERM") != "dumb" and hasattr(stream, "isatty") and stream.isatty()


def _fit(line: str, columns: int) -> str:
    """A line that cannot wrap (a wrapped line would throw the redraw's count off)."""
    return line if len(line) < columns else line[:max(1, columns - 4)] + "..."


@contextmanager
def showing(under: str, rows: Rows, title: str | Callable[[], str]) -> Iterator[None]:
    """Rows of one piece of work (a search's trials): nested under the row `under` of the view that
    is showing (the pipeline's), else in a view of their own."""
    if _view is not None:
        _view.nest(under, rows)
        try:
            yield
        finally:
            _view.unnest(under)
        return
    with LiveView(title, rows):
        yield
