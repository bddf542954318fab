"""Preemption: SIGTERM (what Kubernetes sends before it evicts a pod) asks training to stop.

The handler only sets `stop.requested`; the loop checks it after each step, checkpoints that step and
raises Preempted. It exists only inside `with preemption()` and only in the main thread, the one
Python delivers signals to (Ray runs a task in its worker's main thread, so Ray work is covered).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cifar_core.errors import Interrupted, Preempted


class StopRequest:
    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum, frame) -> None:
        self.requested = True


@contextmanager
def preemption():
    stop = StopRequest()
    with handling({signal.SIGTERM: stop._handle}):
        yield stop  # outside the main thread never requested: it cannot install a handler


@contextmanager
def handling(handlers: dict[int, Callable]) -> Iterator[None]:
    """`handlers` in place for the block, the previous ones restored after; only in the main thread,
    the one Python lets install them (elsewhere the block runs with none)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None means a handler installed from C: the default is the closest we can restore.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def stopped_by(signum: int) -> Preempted | Interrupted:
    """What a signal that ends the command raises: Preempted (SIGTERM, exit 143) or Interrupted (SIGINT, 130)."""
    if signum == signal.SIGTERM:
        return Preempted("stopped by SIGTERM; every finished step is checkpointed: run the same command again "
                         "to continue")
    return Interrupted("stopped by SIGINT (Ctrl-C); every finished step is checkpointed: run the same command "
                       "again to continue")
