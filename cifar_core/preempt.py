"""Preemption: SIGTERM (what Kubernetes sends before it evicts a pod) asks training to stop.

The handler only sets `stop.requested`; the loop checks it after each step, checkpoints that step and
raises Preempted. It exists only inside `with preemption()` and only in the main thread, the one
Python delivers signals to (Ray runs a task in its worker's main thread, so Ray work is covered).
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
