"""Names that become directories under RESULTS/ (runs, experiments): one plain name, never a path."""

from __future__ import annotations

import re

from cifar_core.errors import ConfigError

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str, what: str) -> str:
    """Return `name` if it is one plain directory name; else a ConfigError naming `what` it is."""
    if not _PLAIN_NAME.fullmatch(name):
        raise ConfigError(f"{what} {name!r}: use letters, digits, '.', '_' and '-' (no paths)")
    return name
