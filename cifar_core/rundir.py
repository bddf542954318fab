"""The one protocol of a run directory, for the classifier and the GAN alike.

One writer (`RunLock`); a killed writer's temporary files removed; `last.pt` the commit point (files
without it are refused, never silently deleted); one "same run?" rule (`fields.changed_setting`:
settings not declared resumable must match); the data's digest checked before any data is loaded.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cifar_core.atomic import remove_stale_temps
from cifar_core.data.identity import check_same_data
from cifar_core.errors import CheckpointError, ConfigError
from cifar_core.fields import changed_setting
from cifar_core.runlock import RunLock


@dataclasses.dataclass
class RunDir:
    """A run directory: `path`, its commit point `last`, and `outputs()`: the files a run writes."""

    path: Path
    last: Path
    outputs: Callable[[], list[Path]]
    what: str = "run"  # how messages name it ("run", "GAN run")
    wait_s: float = 0.0  # how long to wait for another process's lock (a Ray retry: an NFS lease)
    folders: tuple[Path, ...] = ()  # where else the run writes (checkpoints/, samples/)
    _lock: RunLock | None = dataclasses.field(default=None, repr=False)

    def __enter__(self) -> RunDir:
        self._lock = RunLock(self.path, wait_s=self.wait_s, what=self.what).acquire()
        for folder in {self.path, self.last.parent, *self.folders}:
            remove_stale_temps(folder)
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def clear(self) -> None:
        """Start over (asked for explicitly): remove what a run wrote, and only that."""
        for path in [*self.outputs(), self.last]:
            path.unlink(missing_ok=True)

    def open(self, wanted: Any, digest: str, load: Callable[[Path], dict[str, Any]], *, prefix: str = "",
             also_fixed: tuple[str, ...] = (), restart: str = "") -> dict[str, Any] | None:
        """The checkpoint to resume from (None: a fresh run), once it is the same run on the same data.

        `wanted` is the config asked for now; `digest` the data's (computed from the files, before any
        is loaded onto a device); `load` reads last.pt. Refused, with one line: files of a run whose
        last.pt is missing, a changed setting that is not resumable, other data. `restart` says how
        to start over instead, where the command has a way ("pass --no-resume ...").
        """
        alternatives = f"{restart}, or choose another run name" if restart else "choose another run name"
        if not self.last.exists():
            leftovers = [p for p in self.outputs() if p.exists()]
            if leftovers:
                raise CheckpointError(
                    f"{self.path} holds {len(leftovers)} files of a {self.what} (e.g. {leftovers[0].name}) but no "
                    f"{self.last.relative_to(self.path)} to resume from: move them away, {alternatives}"
                )
            return None
        checkpoint = load(self.last)
        conflict = changed_setting(checkpoint.get("config") or {}, wanted, prefix, also_fixed)
        if conflict:
            raise ConfigError(f"cannot resume {self.path}: {conflict}; {alternatives}")
        check_same_data(checkpoint.get("data_digest"), digest, str(self.path))
        return checkpoint


def refuse_fewer_steps(path: str | os.PathLike, done: int, asked: int, what: str = "steps") -> None:
    """A run that has trained `done` steps is never rewritten as one of `asked` < done: its record
    would no longer describe what ran."""
    if asked < done:
        raise ConfigError(f"{path} has already trained {done:,} {what}; asking for {asked:,} would rewrite its "
                          f"record: ask for at least {done:,}, or choose another run name")
