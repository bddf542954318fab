"""One protocol for every result directory: training and GAN runs, searches, FID scores, samples, data
sets, reports and pipeline stages. Under the directory's lock the request is recorded (the settings
that make the result, the data's digest, the digests of what it reads); opening it again is fresh,
resume or done by one rule, or a one-line refusal; a completion marker is written last. Nothing under
the tree's root is followed through a symbolic link: a link planted in a shared volume is refused.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cifar_core.atomic import atomic_write_json, file_digest, read_json, remove_stale_temps
from cifar_core.errors import CheckpointError, CifarError, ConfigError, DataError
from cifar_core.runlock import LOCK_NAME, RunLock
from cifar_core.summaries import Summary

REQUEST_FILE = "request.json"  # what the result is of: recorded before any work
COMPLETE_FILE = "complete.json"  # written last: the request it completed, and the digest of every file it made
PROTOCOL_FILES = frozenset({LOCK_NAME, REQUEST_FILE, COMPLETE_FILE})


class Opened(enum.Enum):
    FRESH = "fresh"  # nothing of this request was made yet (or what it was made from has changed)
    RESUME = "resume"  # the same request, not finished: continue from what is there
    DONE = "done"  # the same request, finished: its summary stands


@dataclasses.dataclass(frozen=True)
class Request:
    """What a result is of. `settings` must match for the directory to be reused; `budget` (how
    long, on which device) may change between runs and is recorded, not compared; `data` is the
    data's digest (other data is another result, never mixed in); `inputs` are the digests of what
    it reads (a changed input makes a derived result stale: it is made again)."""

    kind: str  # how messages name it: "training run", "FID score", "stage gan"
    settings: Mapping[str, Any]
    budget: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    data: str | None = None
    inputs: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps({"kind": self.kind, "settings": dict(self.settings), "budget": dict(self.budget),
                                      "data": self.data, "inputs": dict(self.inputs)}, sort_keys=True, default=list))

    def digest(self) -> str:
        """Of everything the request says: a finished result is done only for exactly this request."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def settings_request(kind: str, config: Any, *, also_fixed: tuple[str, ...] = (), data: str | None = None,
                     inputs: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> Request:
    """The request of a declared config (cifar_core.fields): its settings not declared resumable (and
    `also_fixed`) must match; the resumable ones are its budget."""
    from cifar_core.fields import leaves, value_at

    settings, budget = {}, {}
    for leaf in leaves(type(config)):
        value = value_at(config, leaf)
        resumable = leaf.meta.get("resumable") and leaf.key not in also_fixed
        (budget if resumable else settings)[leaf.key] = list(value) if isinstance(value, tuple) else value
    return Request(kind, {**settings, **(extra or {})}, budget, data, inputs or {})


# --- nothing followed out of the tree ---------------------------------------------------------------
def check_inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """`path` lies under `root` with no symbolic link on the way (the root itself may be one: a user's
    choice of volume); raises CifarError naming the link. Returns `path` as given."""
    root, path = Path(root), Path(path)
    try:
        rest = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        raise CifarError(f"{path} is not inside {root}") from None
    here = Path(os.path.abspath(root))
    for part in rest.parts:
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            break  # the rest is still to be made
        if stat.S_ISLNK(mode):
            raise CifarError(f"{here} is a symbolic link inside {root}: refusing to follow it out of the tree "
                             "(remove it; results are never written or read through links)")
    return path


def regular_file(path: str | os.PathLike) -> bool:
    """A regular file itself, not a link to one (what a report may embed, what a reader may trust)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


# --- the directory -----------------------------------------------------------------------------------
class ResultDir:
    """`with ResultDir(path, "FID score", root=RESULTS) as result:` holds the directory's lock;
    `result.open(request)` says fresh, resume or done (or refuses); `result.complete(summary)` writes
    the summary, then the completion marker.

    `outputs()` lists what the result writes (default: every entry but the protocol's own files);
    files of a result with no recorded request are refused, never cleared, unless `adopt()` says they
    are exactly what this request would make (a dataset fetched by hand). `commit_point` (a run's
    last.pt) must exist for its other outputs to be trusted. A `replaceable` directory is a record of
    the newest request only (a pipeline's stage record: the results it points at have their own
    directories): another request replaces it instead of being refused.
    """

    def __init__(self, path: str | os.PathLike, kind: str, *, root: str | os.PathLike | None = None,
                 wait_s: float = 0.0, outputs: Callable[[], list[Path]] | None = None,
                 commit_point: Path | None = None, folders: tuple[Path, ...] = (), summary: str = Summary.FILE,
                 adopt: Callable[[Request], bool] | None = None, replaceable: bool = False):
        self.path = Path(path)
        self.kind = kind
        self.root = Path(root) if root is not None else self.path.parent
        self.wait_s = wait_s
        self._outputs = outputs
        self.commit_point = commit_point
        self.folders = folders
        self.summary_path = self.path / summary
        self.adopt = adopt
        self.replaceable = replaceable
        self.request: Request | None = None
        self._lock: RunLock | None = None

    # -- the lock --
    def __enter__(self) -> ResultDir:
        if self._lock is not None:  # `with` a directory already entered: just hold it
            return self
        check_inside(self.root, self.path)
        self._lock = RunLock(self.path, wait_s=self.wait_s, what=self.kind).acquire()
        for folder in {self.path, *self.folders, *((self.commit_point.parent,) if self.commit_point else ())}:
            check_inside(self.root, folder)
            remove_stale_temps(folder)
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- what is there --
    def outputs(self) -> list[Path]:
        if self._outputs is not None:
            return [p for p in self._outputs() if p.exists() or p.is_symlink()]
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir() if p.name not in PROTOCOL_FILES and not is_temp(p))

    def made(self) -> list[Path]:
        """What a run of some request has already written here."""
        point = [self.commit_point] if self.commit_point is not None and self.commit_point.exists() else []
        return point + [p for p in self.outputs() if p != self.commit_point]

    def recorded(self) -> dict[str, Any] | None:
        path = self.path / REQUEST_FILE
        return _read_protocol_file(path) if path.exists() or path.is_symlink() else None

    # -- the one rule --
    def open(self, request: Request, *, remedy: str = "choose another name, or delete it") -> Opened:
        """Record `request` and say what to do, or refuse (ConfigError for other settings, DataError for
        other data, CheckpointError for files that cannot be trusted), offering `remedy`: the command's
        own ways out ("pass --no-resume to start over, or choose another run name")."""
        self._require_lock()
        recorded, made = self.recorded(), self.made()
        if self.replaceable and recorded != request.to_json():
            (self.path / COMPLETE_FILE).unlink(missing_ok=True)
            return self._record(request, Opened.FRESH)
        if recorded is None or not made:
            if made and not (self.adopt is not None and self.adopt(request)):
                raise CheckpointError(f"{self.path} holds {len(made)} files (e.g. {made[0].name}) but no {REQUEST_FILE} "
                                      f"saying what they are: move them away, or {remedy}")
            return self._record(request, Opened.FRESH)
        if recorded.get("kind") != request.kind:
            raise ConfigError(f"cannot reuse {self.path}: it holds another kind of result ({recorded.get('kind')}), "
                              f"not this {request.kind}; {remedy}")
        conflict = changed(recorded.get("settings") or {}, request.settings)
        if conflict:
            raise ConfigError(f"cannot reuse {self.path}: its {request.kind} has other settings ({conflict}); "
                              f"{remedy}")
        if recorded.get("data") != request.data:
            raise DataError(f"cannot reuse {self.path}: its {request.kind} was made from other data (it recorded "
                            f"{recorded.get('data')}, this data is {request.data}); point --data-dir at the data it "
                            f"used, or {remedy}")
        if (recorded.get("inputs") or {}) != request.to_json()["inputs"]:
            (self.path / COMPLETE_FILE).unlink(missing_ok=True)  # what it was made from changed: make it again
            return self._record(request, Opened.FRESH)
        opened = Opened.DONE if self._completed(request) else Opened.RESUME
        if self.commit_point is not None and not self.commit_point.exists():
            others = [p for p in made if p != self.commit_point]
            if others:
                raise CheckpointError(f"{self.path} holds {len(others)} files of a {self.kind} (e.g. {others[0].name}) "
                                      f"but no {self.commit_point.relative_to(self.path)} to resume from: move them "
                                      f"away, or {remedy}")
        return self._record(request, opened)

    def complete(self, summary: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The summary (when given; returned as written, where it ran included), then the marker: a
        kill in between leaves the result unfinished, never one that claims to be finished."""
        self._require_lock()
        if self.request is None:
            raise CifarError(f"{self.path}: complete() before open()")
        written = None
        self._write_request(self.request)
        if summary is not None:
            written = with_place(summary)
            atomic_write_json(self.summary_path, written)
        atomic_write_json(self.path / COMPLETE_FILE, {"request": self.request.digest(), "files": self._digests()})
        return written

    def amend(self, summary: Mapping[str, Any]) -> None:
        """A later command's record in a result's summary (an evaluation's scores): the summary is
        rewritten and, if the result was complete, so is its marker, for the request it recorded."""
        self._require_lock()
        recorded = self.recorded()
        request = Request(**recorded) if recorded is not None else None
        was_complete = request is not None and self._completed(request)
        atomic_write_json(self.summary_path, summary)
        if was_complete:
            self.request = request
            self.complete()

    def clear(self) -> None:
        """Start over (asked for explicitly): remove what a run wrote, and only that."""
        for path in self.made():
            path.unlink(missing_ok=True)
        (self.path / COMPLETE_FILE).unlink(missing_ok=True)

    # -- read-only, without the lock (the pipeline's driver deciding what to skip) --
    def is_done(self, request: Request) -> bool:
        try:
            check_inside(self.root, self.path)
        except CifarError:
            return False
        return self._completed(request)

    def _completed(self, request: Request) -> bool:
        """Completed for this request, every file it made still as it was (one deleted or changed since
        makes it unfinished: the same command makes it again)."""
        path = self.path / COMPLETE_FILE
        if not regular_file(path):
            return False
        try:
            marker = read_json(path)
        except CifarError:
            return False  # a torn marker vouches for nothing
        files = marker.get("files")
        if marker.get("request") != request.digest() or not isinstance(files, dict):
            return False
        return all(regular_file(self.path / name) and file_digest(self.path / name) == digest
                   for name, digest in files.items())

    def _digests(self) -> dict[str, str]:
        made = {*self.made(), *([self.summary_path] if regular_file(self.summary_path) else [])}
        return {str(p.relative_to(self.path)): file_digest(p) for p in sorted(made) if regular_file(p)}

    def _record(self, request: Request, opened: Opened) -> Opened:
        """A new request is recorded before any work; a resumed one's budget (more steps, another
        device) only once it completes, so a resume refused later (a damaged last.pt) changes no file."""
        if opened is Opened.FRESH:
            self._write_request(request)
        self.request = request
        return opened

    def _write_request(self, request: Request) -> None:
        if self.recorded() != request.to_json():
            atomic_write_json(self.path / REQUEST_FILE, request.to_json())

    def _require_lock(self) -> None:
        if self._lock is None:
            raise CifarError(f"{self.path}: open the result directory with `with` first")


def with_place(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A summary with the stage whose unit made it (`made_by`) and `ran_on`, where that unit ran (both
    set by the runner), unless it lists its units' places itself (a table of runs)."""
    from cifar_core.execution.runners import current_place, current_stage

    place, stage = current_place(), current_stage()
    if place is None:
        return dict(summary)
    return {"made_by": stage, **summary, **({} if "ran_on" in summary else {"ran_on": [place]})}


def refuse_fewer_steps(path: str | os.PathLike, done: int, asked: int, what: str = "steps") -> None:
    """A run that has trained `done` steps is never rewritten as one of `asked` < done: its record
    would no longer describe what ran."""
    if asked < done:
        raise ConfigError(f"{path} has already trained {done:,} {what}; asking for {asked:,} would rewrite its "
                          f"record: ask for at least {done:,}, or choose another run name")


def changed(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> str | None:
    """The first setting of `wanted` that differs from `recorded`, as "key was X, now Y"; a setting the
    recorded request lacks counts as changed (a new setting is never silently assumed)."""
    now = json.loads(json.dumps(dict(wanted), default=list))
    for key, value in now.items():
        was = recorded.get(key, _ABSENT)
        if was != value:
            return f"{key} was {'absent' if was is _ABSENT else repr(was)}, now {value!r}"
    return None


_ABSENT = object()


def _read_protocol_file(path: Path) -> dict[str, Any]:
    if not regular_file(path):
        raise CifarError(f"{path} is not a regular file (a link?): refusing to read it")
    return read_json(path)


def is_temp(path: Path) -> bool:
    """A writer's temporary file (`atomic`'s, or one a killed writer left): never a result's own."""
    return path.name.startswith(".") and path.name.endswith(".tmp")
