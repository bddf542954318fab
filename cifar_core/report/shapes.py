"""What the report expects of each summary.json: the type of every key, as the committed fixture tree
(tests/fixtures/results, made by the real stages) has it, kept in shapes.json. A summary whose value
has another type is refused naming that file and key, instead of a traceback, a section naming
every file of the section, or a wrong value printed as if it were a number.

    python -m cifar_core.report.shapes tests/fixtures/results > cifar_core/report/shapes.json
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from cifar_core.errors import CifarError

SHAPES = Path(__file__).with_name("shapes.json")
# Keys whose keys are data (statuses, epochs, searched settings, split@step), not a shape.
DATA_KEYED = {"epochs_histogram", "status_counts", "params", "evaluations", "space_file", "config", "settings",
              "request", "pipeline", "protocol_settings"}


def kind(value: Any) -> Any:
    """The shape of a value: "number", "string", "bool", "any" (null), [element], {key: shape}."""
    if value is None:
        return "any"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        element: Any = "any"
        for item in value:
            element = merge(element, kind(item))
        return [element]
    return {key: "any" if key in DATA_KEYED else kind(item) for key, item in value.items()}


def merge(a: Any, b: Any) -> Any:
    """The shape two values share: a null learns the other's type, objects the union of their keys."""
    if a == "any":
        return b
    if b == "any" or a == b:
        return a
    if isinstance(a, list) and isinstance(b, list):
        return [merge(a[0], b[0])]
    if isinstance(a, dict) and isinstance(b, dict):
        return {key: merge(a.get(key, "any"), b.get(key, "any")) for key in {**a, **b}}
    return "any"  # two types seen for one key: either is fine


def derive(results: Path) -> dict[str, Any]:
    """{folder: shape} from every summary.json of a results tree (pipeline summaries under "pipeline")."""
    shapes: dict[str, Any] = {}
    for path in sorted(results.rglob("summary.json")):
        parts = path.relative_to(results).parts
        folder = "pipeline-data" if parts[0] == "pipeline" and parts[-2] == "data" else parts[0]
        shapes[folder] = merge(shapes.get(folder, "any"), kind(json.loads(path.read_text())))
    return shapes


@cache
def expected() -> dict[str, Any]:
    return json.loads(SHAPES.read_text())


def check(summary: dict[str, Any], folder: str, path: Path) -> None:
    """Refuse a summary with a value of another type than the report expects, naming file and key."""
    mismatch = _mismatch(summary, expected().get(folder, "any"), "")
    if mismatch:
        raise CifarError(f"unexpected contents in {path}: {mismatch}")


def _mismatch(value: Any, shape: Any, where: str) -> str | None:
    if value is None or shape == "any":
        return None
    found = kind(value) if not isinstance(value, (list, dict)) else "list" if isinstance(value, list) else "object"
    wanted = shape if isinstance(shape, str) else "list" if isinstance(shape, list) else "object"
    if found != wanted:
        return f"{where or 'the file'} is {_a(found)} ({json.dumps(value)[:40]}), expected {_a(wanted)}"
    if isinstance(shape, list):
        return next((m for i, item in enumerate(value) if (m := _mismatch(item, shape[0], f"{where}[{i}]"))), None)
    if isinstance(shape, dict):
        return next((m for key, item in value.items() if key in shape
                     if (m := _mismatch(item, shape[key], f"{where}.{key}" if where else key))), None)
    return None


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


if __name__ == "__main__":
    print(json.dumps(derive(Path(sys.argv[1])), indent=1, sort_keys=True))
