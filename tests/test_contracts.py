"""docs/CONTRACTS.md stays true to the code where a test can tell: every module, class and function it
names by its dotted path exists, and the functions whose signatures it writes out take those
parameters. (What each one does is the other tests' to check.)"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

CONTRACTS = Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md"
# The first part of a dotted name the document uses for code (cifar_core's modules, by their short name too).
PACKAGES = {"cifar_core", "jobs"}
SHORT = {"execution", "stages", "pipeline", "fields", "resultdir", "runs", "engine", "gan", "fid", "tune", "data",
         "retrain", "protocols", "progress", "live", "records", "summaries", "device", "quantity", "layout", "atomic",
         "runlock", "reaper", "report", "checkpoint", "snapshots", "seeds", "names", "errors", "config", "evaluate"}
NAMED = re.compile(r"`([a-z_]+(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(\([^()`]*\))?")


def resolve(dotted: str):
    parts = dotted.split(".")
    if parts[0] not in PACKAGES:
        parts = ["cifar_core", *parts]
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            target = getattr(target, name)
        return target
    raise ImportError(dotted)


def not_code() -> set[str]:
    """Dotted names the document uses for settings (`gan.steps`) and the chart's values (`pipeline.set`)."""
    import yaml

    from cifar_core.config import TrainConfig
    from cifar_core.fields import leaves
    from cifar_core.pipeline import PipelineConfig

    def keys(mapping: dict, prefix: str = "") -> set[str]:
        found = set()
        for key, value in mapping.items():
            found.add(prefix + key)
            if isinstance(value, dict):
                found |= keys(value, f"{prefix}{key}.")
        return found

    values = yaml.safe_load((CONTRACTS.parents[1] / "charts" / "cifar100" / "values.yaml").read_text())
    return {leaf.key for cls in (TrainConfig, PipelineConfig) for leaf in leaves(cls)} | keys(values)


def named() -> list[tuple[str, str | None]]:
    found, skipped = [], not_code()
    for dotted, call in NAMED.findall(CONTRACTS.read_text()):
        if dotted.split(".")[0] in PACKAGES | SHORT and dotted not in skipped:
            found.append((dotted, call or None))
    return sorted(set(found))


def test_the_contracts_name_code():
    assert len(named()) > 40  # the document names the code it describes


@pytest.mark.parametrize(("dotted", "call"), named())
def test_every_name_in_the_contracts_exists_with_the_parameters_written(dotted, call):
    target = resolve(dotted)
    if call is None or not callable(target):
        return
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    written = [w.split("=")[0].strip(" *") for w in call.strip("()").split(",")]
    for word in written:
        if re.fullmatch(r"[a-z_][a-z0-9_]*", word) and word not in ("self",):
            assert word in parameters, f"{dotted}{call}: {word!r} is not a parameter of {list(parameters)}"
