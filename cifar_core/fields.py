"""Settings declared once, as dataclass fields that carry their help, unit and valid range.

A config dataclass declares each setting with `setting(...)`:

    lr: float = setting(1e-3, "Learning rate per step.", range=above(0))

and everything else comes from that one declaration: the keys a YAML file or a mapping may use
(`from_mapping` refuses unknown keys and wrong types, naming the key), the checks (`check_fields`:
type, a finite number for floats, choices, range, a custom check), the flat names shared by a
command's options and a flat config file (`flat_keys`), and the command-line options themselves
(`jobs/options.py` builds them from `leaves`, showing help, default, unit and range in --help). An
option therefore cannot be added to one of these and forgotten in another. Rules that relate two
fields (nesterov needs momentum, grace period <= max epochs) stay in each config's `validate`.

Standard library only: the CLI reads these declarations without importing torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass
from typing import Any

from cifar_core.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """An interval of numbers; None is an open end. Printed the way error messages say it."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"


def at_least(low: float) -> Range:
    return Range(low=low)


def above(low: float) -> Range:
    return Range(low=low, low_open=True)


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Range:
    return Range(low, high, low_open, high_open)


def setting(
    default: Any = MISSING,
    help: str = "",  # noqa: A002 - the word --help shows
    *,
    unit: str = "",
    range: Range | None = None,  # noqa: A002
    choices: tuple[Any, ...] = (),
    check: Callable[[Any, str], Any] | None = None,
    flag: str | None = None,
    none_means: str = "",
) -> Any:
    """A dataclass field with what a user needs to know about it.

    help: one sentence for --help; unit: what the number counts ("steps", "degrees"), shown with the
    default; range / choices: the values accepted; check: `check(value, key)` raising ConfigError for
    rules a range cannot say (a seed, a plain name); flag: the flat name when it differs from the
    field's (`optimizer` for optim.name), used by the option (`--optimizer`) and flat config files;
    none_means: what None stands for, shown as the default.
    """
    metadata = {"help": help, "unit": unit, "range": range, "choices": tuple(choices), "check": check,
                "flag": flag, "none_means": none_means}
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Leaf:
    """One setting of a (possibly nested) config class: its dotted key, its field and its type."""

    key: str  # "optim.lr", "collapse.warmup_steps", "steps"
    field: Field
    hint: Any

    @property
    def name(self) -> str:
        """The flat name: a command's option (`--name`, dashes for underscores) and a flat YAML key."""
        return self.field.metadata.get("flag") or self.field.name

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.field.metadata

    @property
    def types(self) -> tuple[type, ...]:
        """The value types it takes, without None."""
        return tuple(t for t in (typing.get_args(self.hint) or (self.hint,)) if t is not type(None))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _nested(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def leaves(cls: type, prefix: str = "") -> list[Leaf]:
    """Every setting of `cls`, nested config classes flattened into dotted keys, in field order."""
    found = []
    for f in dataclasses.fields(cls):
        hint = _hints(cls)[f.name]
        if _nested(hint):
            found += leaves(hint, f"{prefix}{f.name}.")
        else:
            found.append(Leaf(prefix + f.name, f, hint))
    return found


@functools.cache
def flat_keys(cls: type) -> dict[str, str]:
    """Flat name -> dotted key of every setting; two settings may not share a flat name."""
    table: dict[str, str] = {}
    for leaf in leaves(cls):
        if leaf.name in table:
            raise TypeError(f"{cls.__name__}: {leaf.key} and {table[leaf.name]} share the flat name {leaf.name!r}")
        table[leaf.name] = leaf.key
    return table


def nest(flat: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """{flat name: value} (None = not given, left out) -> the nested mapping `from_mapping` takes."""
    table = flat_keys(cls)
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        if value is None:
            continue
        if name not in table:
            raise ConfigError(f"unknown setting {name!r} (known: {', '.join(table)})")
        *groups, last = table[name].split(".")
        target = nested
        for group in groups:
            target = target.setdefault(group, {})
        target[last] = value
    return nested


def from_mapping(cls: type, data: Any, prefix: str = "") -> Any:
    """`cls` built from plain values (a YAML file, a saved config): unknown keys and values of the
    wrong type are ConfigErrors naming the dotted key; nested config classes come from sub-mappings.
    Ranges are not checked here: that is the config's `validate` (see `check_fields`)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {prefix.rstrip('.') or 'file'} must be a mapping of keys to values, "
                          f"got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"unknown config key '{prefix}{key}' (known: {', '.join(known)})")
        hint = _hints(cls)[key]
        if _nested(hint):
            values[key] = from_mapping(hint, {} if value is None else value, f"{prefix}{key}.")
        else:
            values[key] = coerce(f"{prefix}{key}", hint, value)
    return cls(**values)


def coerce(key: str, hint: Any, value: Any) -> Any:
    """`value` checked against its annotation: ints are accepted where floats are expected (and made
    floats), booleans are not numbers, and a float must be finite (`--lr inf` trains into NaN)."""
    allowed = typing.get_args(hint) or (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{key} must not be empty")
    for t in allowed:
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key} = {value!r} is not a finite number")
            return float(value)
        if t is str and isinstance(value, str):
            return value
    names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed if t is not type(None))
    raise ConfigError(f"{key} = {value!r} has the wrong type: expected {names}")


def check_fields(config: Any, prefix: str = "") -> None:
    """Every setting of `config` (nested ones included) against its declaration: type, finiteness,
    choices, range and custom check. The first failure is a one-line ConfigError naming the key."""
    for leaf in leaves(type(config), prefix):
        value = config
        for part in leaf.key.removeprefix(prefix).split("."):
            value = getattr(value, part)
        check_value(leaf, value)


def check_value(leaf: Leaf, value: Any) -> None:
    value = coerce(leaf.key, leaf.hint, value)
    if value is None:
        return
    choices, allowed, check = leaf.meta.get("choices"), leaf.meta.get("range"), leaf.meta.get("check")
    if choices and value not in choices:
        raise out_of_range(leaf.key, value, "one of " + ", ".join(map(str, choices)))
    if allowed is not None and value not in allowed:
        raise out_of_range(leaf.key, value, str(allowed))
    if check is not None:
        check(value, leaf.key)


def out_of_range(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{key} = {value!r} is out of range: expected {expected}")


def require(ok: bool, key: str, value: Any, expected: str) -> None:
    """A rule between settings, said the way `check_fields` says a range."""
    if not ok:
        raise out_of_range(key, value, expected)
