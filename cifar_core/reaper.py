"""Nothing of a local Ray outlives the command that started it, even when that command is killed.

Ray's agents survive a SIGKILL of their driver, waiting for ever on the dead head. `watch()` starts a
small process that tracks the driver's descendants (from /proc) and ends them when the driver dies
without saying "done". Linux only; elsewhere nothing is started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PROC = Path("/proc")


def watch(driver: int | None = None) -> subprocess.Popen | None:
    """Start the reaper of `driver` (this process); write b"done\\n" to its stdin at a clean end."""
    if not PROC.is_dir():
        return None
    return subprocess.Popen([sys.executable, "-m", "cifar_core.reaper", str(driver or os.getpid())],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


def release(reaper: subprocess.Popen | None) -> None:
    """A clean end: the reaper leaves without ending anything."""
    if reaper is None:
        return
    try:
        reaper.stdin.write(b"done\n")
        reaper.stdin.close()
        reaper.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        reaper.kill()


def descendants(root: int) -> dict[int, str]:
    """{pid: start time} of every process below `root` (the start time tells a reused pid apart)."""
    parents: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(entry.name)
        parents.setdefault(int(fields[1]), []).append(pid)
        started[pid] = fields[19]
    found, todo = {}, list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = started[pid]
        todo += parents.get(pid, [])
    return found


def signal_each(pids: list[int], sig: signal.Signals) -> None:
    """Send `sig` to each of `pids`; one that is gone (or whose pid another user's process now has) is skipped."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _start_time(pid: int) -> str | None:
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def main(driver: int) -> None:
    done = threading.Event()
    clean = threading.Event()

    def read_pipe() -> None:
        clean.set() if sys.stdin.readline().strip() == "done" else None
        done.set()

    threading.Thread(target=read_pipe, daemon=True).start()
    seen: dict[int, str] = {}
    while not done.wait(1.0):
        seen.update(descendants(driver))
    seen.pop(os.getpid(), None)  # the driver started this process too
    if clean.is_set():
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid, start in seen.items() if _start_time(pid) == start]
        signal_each(alive, sig)
        if not alive:
            return
        time.sleep(3)


if __name__ == "__main__":
    main(int(sys.argv[1]))
