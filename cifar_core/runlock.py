"""One run directory, one writer: an OS file lock (`flock`) on `<run>/.lock`.

The kernel drops it when the holder dies in any way (SIGKILL included), so a killed run never blocks
its own resume and nothing needs cleaning up; the file names the holder for the error. On NFS the
server keeps a dead node's lock until its lease expires (typically 90 s): retries pass `wait_s`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import time
from datetime import datetime, timezone
from pathlib import Path

from cifar_core.errors import CifarError

LOCK_NAME = ".lock"
POLL_S = 0.2


class RunLocked(CifarError):
    """Another process is writing this run directory."""


class RunLock:
    """`with RunLock(run_dir, what="run"):` holds the directory's lock for the block."""

    def __init__(self, run_dir: str | os.PathLike, *, wait_s: float = 0.0, what: str = "run"):
        self.dir = Path(run_dir)
        self.path = self.dir / LOCK_NAME
        self.wait_s = wait_s
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:  # never through a link: the holder's line would be written into whatever it points to
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise CifarError(f"{self.path} is a symbolic link: refusing to lock (and write) through it; "
                             "remove it") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CifarError(f"{self.path} is not a regular file: refusing to lock through it; remove it")
        deadline = time.monotonic() + max(self.wait_s, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    waited = f" (waited {self.wait_s:g}s)" if self.wait_s > 0 else ""
                    raise RunLocked(
                        f"{self.dir} is in use by another {self.what}: {holder}{waited}; "
                        "wait for it to finish or choose another name"
                    ) from None
                time.sleep(POLL_S)
        self._fd = fd
        try:
            _write_holder(fd)
        except OSError as exc:  # a full volume: ENOSPC comes without a file name; say which
            self.release()
            exc.filename = exc.filename or str(self.path)
            raise
        return self

    def release(self) -> None:
        if self._fd is not None:
            # The file stays: unlinking it would let a waiter lock a file nobody else opens.
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self if self._fd is not None else self.acquire()  # `with` an acquired lock: just hold it

    def __exit__(self, *exc) -> None:
        self.release()


def _write_holder(fd: int) -> None:
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, text, 0)


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {holder['pid']} on host {holder['host']} since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown (it is just starting)"
