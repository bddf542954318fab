"""Typed JSON objects: a `Record` is a dataclass that parses a JSON object key by key (numbers,
strings, true/false, null, lists, objects keyed by data, nested records) and refuses a value of
another type naming its key. A key declared `optional()` may be missing (None to readers) and is
written back only when it was there or has been set since; undeclared keys are kept as they are
(`extra`), so an older reader never drops what a newer writer added. The summaries are records.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from cifar_core.errors import CifarError

R = TypeVar("R", bound="Record")


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT: Any = _Absent()  # the default of an optional() field until __post_init__ makes it None


def optional() -> Any:
    """A key a record may lack: None when it does, and then not written back."""
    return dataclasses.field(default=_ABSENT)


@dataclasses.dataclass(kw_only=True)
class Record:
    """`Cls.parse(data)`, `Cls.read(path)`, `.to_json()`. Subclasses are `@dataclass(kw_only=True)`;
    those stored as a file name it (`FILE`): `Cls.read_in(folder)`."""

    FILE: ClassVar[str | None] = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        missing = frozenset(f.name for f in _fields(type(self)) if getattr(self, f.name) is _ABSENT)
        for name in missing:
            setattr(self, name, None)
        self._missing = missing

    @classmethod
    def parse(cls: type[R], data: Any, where: str = "") -> R:
        """`data` as this record: ValueError naming the first key whose value has another type."""
        return _parse(cls, data, where)

    @classmethod
    def read(cls: type[R], path: str | Path) -> R:
        """The record at `path`: one CifarError naming the file and the key."""
        from cifar_core.atomic import read_json

        try:
            return cls.parse(read_json(path))
        except Mismatch as exc:
            raise CifarError(f"unexpected contents in {path}: {exc}") from None

    @classmethod
    def file_in(cls, folder: str | Path) -> Path:
        if cls.FILE is None:
            raise TypeError(f"{cls.__name__} is not stored as a file of its own")
        return Path(folder) / cls.FILE

    @classmethod
    def read_in(cls: type[R], folder: str | Path) -> R:
        return cls.read(cls.file_in(folder))

    def to_json(self) -> dict[str, Any]:
        out = dict(self.extra)
        for f in _fields(type(self)):
            value = getattr(self, f.name)
            if value is not None or f.name not in self._missing:
                out[f.name] = plain(value)
        return out


class Mismatch(ValueError):
    """A value of another type than its record declares (its message names the key)."""


def plain(value: Any) -> Any:
    """Records (nested in lists and dicts too) as plain JSON values."""
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


@cache
def _fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(cls) if f.name != "extra")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _parse(cls: type[R], data: Any, where: str) -> R:
    if not isinstance(data, dict):
        raise Mismatch(f"{where or 'the file'} is {_kind(data)}, expected an object")
    values, hints = {}, _hints(cls)
    for f in _fields(cls):
        if f.name in data:
            values[f.name] = _value(hints[f.name], data[f.name], _key(where, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise Mismatch(f"{_key(where, f.name)} is missing")
    names = {f.name for f in _fields(cls)}
    return cls(**values, extra={k: v for k, v in data.items() if k not in names})


def _value(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _union(args, value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise Mismatch(f"{where} is {_kind(value)}, expected a list")
        return [_value(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise Mismatch(f"{where} is {_kind(value)}, expected an object")
        return {k: _value(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Record):
        return value if isinstance(value, hint) else _parse(hint, value, where)
    return _scalar(hint, value, where)


def _union(options: tuple[Any, ...], value: Any, where: str) -> Any:
    if value is None and type(None) in options:
        return None
    errors = []
    for option in (a for a in options if a is not type(None)):
        try:
            return _value(option, value, where)
        except Mismatch as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    names = " or ".join(getattr(a, "__name__", str(a)) for a in options if a is not type(None))
    raise Mismatch(f"{where} is {_kind(value)}, expected {names}")


_SCALARS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint not in _SCALARS:
        raise TypeError(f"{where}: unsupported record field type {hint!r}")
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a numpy scalar, as JSON writes it
        value = value.item()
    elif isinstance(value, os.PathLike):
        value = os.fspath(value)
    if hint is bool:
        fits = isinstance(value, bool)
    elif hint in (int, float):
        fits = isinstance(value, (int, float)) and not isinstance(value, bool) and (hint is float or isinstance(value, int))
        if fits and not math.isfinite(value):
            raise Mismatch(f"{where} is {value}, expected a finite number")
    else:
        fits = isinstance(value, str)
    if not fits:
        raise Mismatch(f"{where} is {_kind(value)}, expected {_SCALARS[hint]}")
    return value


def _kind(value: Any) -> str:
    shown = json.dumps(value)[:40] if not isinstance(value, float) or math.isfinite(value) else str(value)
    name = ("null" if value is None else "true or false" if isinstance(value, bool) else "a number"
            if isinstance(value, (int, float)) else "a string" if isinstance(value, str) else "a list"
            if isinstance(value, list) else "an object")
    return f"{name} ({shown})"
