"""What several test files need: the real `cifar` entry point run in this process, and the check
that a user error is one `error:` line with exit status 2. (Import as `from helpers import ...`:
pytest puts tests/ on sys.path.)"""

from __future__ import annotations

import contextlib
import io
import subprocess
from typing import NamedTuple


class Result(NamedTuple):
    status: int
    out: str
    err: str

    @classmethod
    def of(cls, done: subprocess.CompletedProcess) -> Result:
        """A command run in another process (a SIGTERM, a mount namespace, a fresh interpreter)."""
        return cls(done.returncode, done.stdout, done.stderr)


def cifar(*args) -> Result:
    """`cifar ARGS` through jobs.cli.main, in this process: a new Python (and torch) per call would
    add seconds and test nothing more. Works inside module-scoped fixtures (no capsys needed)."""
    from jobs.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return Result(status, out.getvalue(), err.getvalue())


def assert_one_line_error(result: Result, *fragments: str) -> None:
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.status == 2 and len(lines) == 1 and lines[0].startswith("error: "), result
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
