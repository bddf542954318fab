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
