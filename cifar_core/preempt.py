"""Preemption: SIGTERM (what Kubernetes sends before it evicts a pod) asks training to stop.

`with preemption() as stop:` installs a SIGTERM handler that only sets `stop.requested`; the
training loop looks at it after every step, writes a checkpoint of that step and raises
`cifar_core.errors.Preempted`. The handler exists only while the block runs (the previous one is
put back after) and only in the main thread, the only thread Python delivers signals to (Ray runs
a task in its worker's main thread, so Ray work is covered).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class StopRequest:
    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum, frame) -> None:
        self.requested = True


@contextmanager
def preemption():
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # never requested: this thread cannot install a handler
        return
    previous = signal.signal(signal.SIGTERM, stop._handle)
    try:
        yield stop
    finally:
        # None means a handler installed from C: the default is the closest we can restore.
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
