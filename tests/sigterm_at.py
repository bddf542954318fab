"""`python tests/sigterm_at.py STEP cifar-args...`: run the `cifar` command in this process and send it
SIGTERM (or $CIFAR_TEST_SIGNAL, e.g. SIGINT) once training step STEP is done, so an eviction lands at
a known step, never wherever a sleep happened to leave it. The run obeys after the step it is in
(STEP + 1)."""

from __future__ import annotations

import os
import signal
import sys

from cifar_core import engine


def main(step: int, argv: list[str]) -> int:
    real, done = engine.progress, [0]

    def progress(iterable, **options):
        for item in real(iterable, **options):
            yield item  # the step of this batch runs before the loop asks for the next one
            done[0] += 1
            if done[0] == step:
                os.kill(os.getpid(), getattr(signal, os.environ.get("CIFAR_TEST_SIGNAL", "SIGTERM")))

    engine.progress = progress
    from jobs.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2:]))
