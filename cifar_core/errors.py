"""User-facing errors.

Anything a user can cause (bad input, missing files, a corrupt checkpoint) raises a `CifarError`
whose message is one line naming the problem. The CLI prints it as `error: <message>` and exits
non-zero; library callers can catch it like any exception.
"""


class CifarError(Exception):
    """A problem the user can fix: the message names the file, key or value at fault."""


class DataError(CifarError):
    """The dataset on disk is missing, truncated, corrupt or in the wrong format."""


class ConfigError(CifarError):
    """A configuration value or file is invalid (unknown key, out of range, wrong type)."""


class CheckpointError(CifarError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into."""


class TrainingDiverged(CifarError):
    """The loss became NaN or infinite (usually a learning rate far too high)."""


class Preempted(Exception):
    """Training stopped on SIGTERM after writing a checkpoint of its current step.

    Not a CifarError: nothing is wrong with the user's input. The CLI exits 143 (128 + SIGTERM),
    the status Kubernetes and shells expect from a process that obeyed SIGTERM.
    """


class Interrupted(Exception):
    """Stopped on SIGINT (Ctrl-C) with every finished step kept; the CLI exits 130 (128 + SIGINT).

    Not a CifarError either: the same command continues the work.
    """


def os_error_line(exc: OSError) -> str:
    """`path: reason` (both paths of a failed rename), e.g. `results/fid/x: Read-only file system`;
    where a file stands in for a folder (mkdir's "File exists", "Not a directory"), that file."""
    import errno

    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    in_the_way = _file_in_the_way(exc.filename) if exc.errno in (errno.EEXIST, errno.ENOTDIR) else None
    if in_the_way == str(exc.filename):
        return f"{in_the_way}: a file is in the way where a directory must be"
    if in_the_way is not None:
        reason = f"{'cannot be created' if exc.errno == errno.EEXIST else reason}: {in_the_way} is a file, " \
                 "where a directory must be"
    return f"{paths}: {reason}" if paths else reason


def _file_in_the_way(path) -> str | None:
    """The first of `path`'s parents, or `path` itself, that exists and is not a directory."""
    import os
    from pathlib import Path

    if path is None:
        return None
    path = Path(os.fsdecode(path))
    for candidate in [*reversed(path.parents), path]:
        if os.path.lexists(candidate) and not os.path.isdir(candidate):
            return str(candidate)
    return None
