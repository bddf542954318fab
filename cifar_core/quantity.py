"""Kubernetes quantities ("3920m", "13948519Ki", "26Gi", "1e3", 2) as numbers: the one parser, for
preflight's node arithmetic and for the worker types the chart describes to the driver. Torch-free.
"""

from __future__ import annotations

import math
import re

_NUMBER = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([-+]?[0-9]{1,3}))?([a-zA-Z]*)")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


def parse_quantity(value: object) -> float | None:
    """The quantity as a number (cores, bytes, a count); None when it is not one: a bad quantity is
    the caller's to name, never a silent zero or an exception from deep inside."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str) or len(value) > 64:
        return None
    match = _NUMBER.fullmatch(value.strip())
    if not match or (match.group(2) and match.group(3)):
        return None
    number = float(match.group(1) + (f"e{match.group(2)}" if match.group(2) else ""))
    factor = _BINARY.get(match.group(3)) or _DECIMAL.get(match.group(3))
    if factor is None:
        return None
    result = number * factor
    return result if math.isfinite(result) else None


def quantity(value: object) -> float:
    """`parse_quantity`, with 0 for what is not a quantity (a field the API left out or garbled counts
    as nothing there)."""
    parsed = parse_quantity(value)
    return 0.0 if parsed is None else parsed


def ray_cpus(value: object) -> float:
    """A pod's CPU limit as Ray counts it: whole cores, rounded up ("7500m" is 8 CPUs for KubeRay and
    Ray's autoscaler). ValueError when it is not a quantity."""
    parsed = parse_quantity(value)
    if parsed is None or parsed < 0:
        raise ValueError(f"not a CPU quantity: {value!r}")
    return float(math.ceil(parsed))
