"""Typed summaries: each kind of result's summary.json is a dataclass, written once by its owner and
read back through the same class, so the writer and the report agree on every key and its type. A
file whose value has another type (or a key it lacks) is refused naming the file and the key.

`Record` rows nest; a field typed `dict[str, Any]` holds data whose keys are data (a config, the
statuses counted); `Any` is left unchecked. Keys a class does not declare are kept as they are
(`extra`), so an older reader never drops what a newer writer added.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from cifar_core.errors import CifarError

R = TypeVar("R", bound="Record")


@dataclasses.dataclass
class Record:
    """A typed JSON object: `Cls.parse(data, where)`, `.to_json()`; extra keys survive a round trip."""

    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, kw_only=True)

    @classmethod
    def parse(cls: type[R], data: Any, where: str = "") -> R:
        return _parse(cls, data, where or cls.__name__)

    @classmethod
    def read(cls: type[R], path: str | Path) -> R:
        """The summary at `path`, checked against this class: one CifarError naming the file and key."""
        from cifar_core.atomic import read_json

        try:
            return cls.parse(read_json(path))
        except _Mismatch as exc:
            raise CifarError(f"unexpected contents in {path}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        out = dict(self.extra)
        for f in _fields(type(self)):
            out[f.name] = _dump(getattr(self, f.name))
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """A value by its JSON key (declared or extra): for readers that take any summary."""
        if key in _names(type(self)):
            return getattr(self, key)
        return self.extra.get(key, default)


class _Mismatch(ValueError):
    pass


@cache
def _fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(cls) if f.name != "extra")


@cache
def _names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in _fields(cls))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse(cls: type[R], data: Any, where: str) -> R:
    if not isinstance(data, dict):
        raise _Mismatch(f"{where} is {_kind(data)}, expected an object")
    values, hints = {}, _hints(cls)
    for f in _fields(cls):
        key = f"{where}.{f.name}"
        if f.name in data:
            values[f.name] = _value(hints[f.name], data[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Mismatch(f"{key} is missing")
    return cls(**values, extra={k: v for k, v in data.items() if k not in _names(cls)})


def _value(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _value(option, value, where)
            except _Mismatch as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else _Mismatch(f"{where} is {_kind(value)}, expected {_name(hint)}")
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch(f"{where} is {_kind(value)}, expected a list")
        return [_value(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch(f"{where} is {_kind(value)}, expected an object")
        return {k: _value(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Record):
        return _parse(hint, value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Mismatch(f"{where} is {_kind(value)}, expected true or false")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (hint is int and isinstance(value, float)):
            raise _Mismatch(f"{where} is {_kind(value)}, expected {'a whole number' if hint is int else 'a number'}")
        if isinstance(value, float) and not math.isfinite(value):
            raise _Mismatch(f"{where} is {value}, expected a finite number")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise _Mismatch(f"{where} is {_kind(value)}, expected a string")
        return value
    raise TypeError(f"{where}: unsupported summary field type {hint!r}")


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _kind(value: Any) -> str:
    import json

    shown = json.dumps(value)[:40] if not isinstance(value, float) or math.isfinite(value) else str(value)
    name = ("null" if value is None else "true or false" if isinstance(value, bool) else "a number"
            if isinstance(value, (int, float)) else "a string" if isinstance(value, str) else "a list"
            if isinstance(value, list) else "an object")
    return f"{name} ({shown})"


def _name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args)
