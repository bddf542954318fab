"""Settings declared once, as dataclass fields that carry their help, unit and valid range.

From `lr: float = setting(1e-3, "Learning rate per step.", range=above(0))` come the keys a file or
`--set` may use, the checks (type, float32/int64 fit, choices, range), whether a resume may change it
(`resumable`) and the CLI option (jobs/options.py): one declaration, one kind of error message.
Only the standard library at import (PyYAML when asked), so the CLI reads these without torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, dataclass
from pathlib import Path
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
    resumable: bool = False,
) -> Any:
    """A dataclass field with what a user needs to know about it.

    help: one sentence for --help; unit: what the number counts ("steps", "degrees"), shown with the
    default; range / choices: the values accepted; check: `check(value, key)` raising ConfigError for
    rules a range cannot say (a seed, a plain name); flag: the flat name when it differs from the
    field's (`optimizer` for optim.name), used by the option (`--optimizer`) and flat config files;
    none_means: what None stands for, shown as the default; resumable: the setting may change when a
    run is resumed (every other one must stay as the run started: `resultdir.settings_request`).
    A list setting (`tuple[int, ...]`) takes a non-empty list: an empty one never means "all".
    """
    metadata = {"help": help, "unit": unit, "range": range, "choices": tuple(choices), "check": check,
                "flag": flag, "none_means": none_means, "resumable": resumable}
    if isinstance(default, (list, dict, set)):
        raise TypeError("a mutable default would be shared: use a tuple")
    if dataclasses.is_dataclass(default):  # a nested config: each instance gets its own copy
        return dataclasses.field(default_factory=functools.partial(dataclasses.replace, default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def inline(default: Any) -> Any:
    """A config inside another whose settings read as the outer one's own (composition, not
    inheritance): a stage's section is its name plus the settings of the config it runs, e.g.
    `gan.run` and `gan.steps`, with `section.training` a GanTrainConfig as it is, nothing copied out."""
    factory = functools.partial(dataclasses.replace, default) if dataclasses.is_dataclass(default) and not isinstance(
        default, type) else default
    return dataclasses.field(default_factory=factory, metadata={"inline": True})


def section(default_factory: Callable[[], Any], key: str) -> Any:
    """A group of settings written `key` wherever a user sees it (a stage's name: `recipe-a`)."""
    return dataclasses.field(default_factory=default_factory, metadata={"key": key})


@dataclass(frozen=True)
class Leaf:
    """One setting of a (possibly nested) config class: its dotted key, its field and its type."""

    key: str  # "optim.lr", "collapse.warmup_steps", "steps": as users write it
    field: Field
    hint: Any
    attrs: tuple[str, ...] = ()  # the attributes that reach it (an inline config adds one the key lacks)

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


def leaves(cls: type, prefix: str = "", attrs: tuple[str, ...] = ()) -> list[Leaf]:
    """Every setting of `cls`, nested config classes flattened into dotted keys, in field order."""
    found = []
    for f in dataclasses.fields(cls):
        hint = _hints(cls)[f.name]
        if f.metadata.get("inline"):
            found += leaves(hint, prefix, (*attrs, f.name))
        elif _nested(hint):
            found += leaves(hint, f"{prefix}{_shown(f)}.", (*attrs, f.name))
        else:
            found.append(Leaf(prefix + _shown(f), f, hint, (*attrs, f.name)))
    return found


def _shown(f: Field) -> str:
    """How a user writes a field: its declared key (a stage's `recipe-a`), else its name."""
    return f.metadata.get("key") or f.name


def _fields_here(cls: type) -> dict[str, tuple[Field | None, Field]]:
    """{field name as a key at this level: (the inline field holding it or None, the field)}: a
    config's own fields and those of the configs it holds inline."""
    here: dict[str, tuple[Field | None, Field]] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("inline"):
            here.update({name: (f, inner) for name, (_, inner) in _fields_here(_hints(cls)[f.name]).items()})
        else:
            here[_shown(f).replace("-", "_")] = (None, f)
    return here


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
    known = _fields_here(cls)
    values: dict[str, Any] = {}
    held: dict[str, dict[str, Any]] = {}  # inline field -> the keys given for the config it holds
    for key, (given, value) in _by_field(data, prefix).items():
        if key not in known:
            names = ", ".join(_shown(f) for _, f in known.values())
            raise ConfigError(f"unknown setting '{prefix}{given}' (known: {names})")
        holder, f = known[key]
        if holder is not None:
            held.setdefault(holder.name, {})[given] = value
            continue
        hint = _hints(cls)[f.name]
        if _nested(hint):
            default = _default_of(f)
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"{prefix}{given} is a group of settings, not a value (known: "
                                  f"{', '.join(_shown(g) for _, g in _fields_here(hint).values())})")
            merged = _merged(asdict_shallow(default) if default is not None else {}, value or {}, f"{prefix}{given}.")
            values[f.name] = from_mapping(hint, merged, f"{prefix}{given}.")
        else:
            values[f.name] = coerce(f"{prefix}{given}", hint, value)
    for f in dataclasses.fields(cls):
        if f.metadata.get("inline") and f.name in held:
            values[f.name] = from_mapping(_hints(cls)[f.name], _merged(asdict_shallow(_default_of(f)), held[f.name],
                                                                       prefix), prefix)
    return cls(**values)


def _merged(defaults: Mapping[str, Any], given: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """A group's default values with those given on top, setting by setting however each is spelt
    (`fid-b` or `fid_b`, `batch-size` or `batch_size`)."""
    both = {**_by_field(defaults, prefix), **_by_field(given, prefix)}
    return {spelt: value for spelt, value in both.values()}


def _by_field(data: Mapping[str, Any], prefix: str) -> dict[str, tuple[str, Any]]:
    """{field name: (the key as given, value)}: stage names (recipe-a) and option spellings
    (batch-size) name the field with a dash; the same setting given twice is refused."""
    out: dict[str, tuple[str, Any]] = {}
    for given, value in data.items():
        key = str(given).replace("-", "_")
        if key in out:
            raise ConfigError(f"'{prefix}{given}' is given twice (also as '{prefix}{out[key][0]}')")
        out[key] = (str(given), value)
    return out


def _default_of(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def to_mapping(config: Any) -> dict[str, Any]:
    """A config as the nested mapping users write (stage sections as written: recipe-a, fid-b; a
    config held inline as its holder's own settings)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("inline"):
            out.update(to_mapping(value))
        else:
            out[_shown(f)] = to_mapping(value) if dataclasses.is_dataclass(value) else list(value) \
                if isinstance(value, tuple) else value
    return out


def asdict_shallow(config: Any) -> dict[str, Any]:
    """{setting: value} one level deep, as `from_mapping` takes it (nested groups as mappings, a
    config held inline as the holder's own settings)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("inline"):
            out.update(asdict_shallow(value))
        else:
            out[_shown(f)] = to_mapping(value) if dataclasses.is_dataclass(value) else value
    return out


# What a setting becomes: torch works in float32 (a learning rate of 1e39 is inf there) and indexes in
# int64. A number that does not fit is refused where it is declared, not found later as NaN.
FLOAT32_MAX = 3.4028234663852886e38
INT64 = (-(2**63), 2**63 - 1)


def coerce(key: str, hint: Any, value: Any) -> Any:
    """`value` checked against its annotation: ints are accepted where floats are expected (and made
    floats), booleans are not numbers, a float must be finite and fit a float32, an int an int64, and
    a list setting takes a non-empty list of its item type (as a tuple)."""
    allowed = [t for t in (typing.get_args(hint) if typing.get_origin(hint) not in (tuple, list) else ()) or (hint,)]
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{key} must not be empty")
    for t in allowed:
        if typing.get_origin(t) in (tuple, list) and isinstance(value, (list, tuple)):
            if not value:
                raise ConfigError(f"{key} = [] is empty: give at least one value (leave it out for the default)")
            item = typing.get_args(t)[0]
            return tuple(coerce(f"{key}[{i}]", item, v) for i, v in enumerate(value))
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            if not INT64[0] <= value <= INT64[1]:
                raise ConfigError(f"{key} = {value!r} does not fit a 64-bit integer")
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            # An int is compared as it is: a 400-digit one overflows a float before isfinite sees it.
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{key} = {value!r} is not a finite number")
            if abs(value) > FLOAT32_MAX:
                raise ConfigError(f"{key} = {value!r} does not fit a float32 (at most {FLOAT32_MAX:.4g})")
            return float(value)
        if t is str and isinstance(value, str):
            return value
    raise ConfigError(f"{key} = {value!r} has the wrong type: expected {type_name(hint)}")


def type_name(hint: Any) -> str:
    """`int`, `float or null`, `list of int`: how messages and --help name a setting's type."""
    if typing.get_origin(hint) in (tuple, list):
        return f"a list of {type_name(typing.get_args(hint)[0])}"
    allowed = typing.get_args(hint) or (hint,)
    return " or ".join(type_name(t) if typing.get_origin(t) else getattr(t, "__name__", str(t))
                       for t in allowed if t is not type(None))


def check_fields(config: Any, prefix: str = "") -> None:
    """Every setting of `config` (nested ones included) against its declaration: type, finiteness,
    choices, range and custom check. The first failure is a one-line ConfigError naming the key."""
    for leaf in leaves(type(config), prefix):
        check_value(leaf, value_at(config, leaf))


def check_value(leaf: Leaf, value: Any) -> None:
    value = coerce(leaf.key, leaf.hint, value)
    if value is None:
        return
    for i, item in enumerate(value) if isinstance(value, tuple) else ((None, value),):
        key = leaf.key if i is None else f"{leaf.key}[{i}]"
        choices, allowed, check = leaf.meta.get("choices"), leaf.meta.get("range"), leaf.meta.get("check")
        if choices and item not in choices:
            raise out_of_range(key, item, "one of " + ", ".join(map(str, choices)))
        if allowed is not None and item not in allowed:
            raise out_of_range(key, item, str(allowed))
        if check is not None:
            check(item, key)
    if isinstance(value, tuple) and len(set(value)) != len(value):
        raise ConfigError(f"{leaf.key} = {list(value)} repeats a value")


def out_of_range(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{key} = {value!r} is out of range: expected {expected}")


def require(ok: bool, key: str, value: Any, expected: str) -> None:
    """A rule between settings, said the way `check_fields` says a range."""
    if not ok:
        raise out_of_range(key, value, expected)


# --- overrides and the "same run?" rule -------------------------------------------------------------
def with_overrides(cls: type, base: Mapping[str, Any], overrides: Iterable[str], what: str = "--set") -> Any:
    """`with_settings` from `KEY.PATH=VALUE` texts (`--set`, the chart's `pipeline.set`), each VALUE
    read as YAML (`null` unsets a setting that may be empty)."""
    import yaml

    settings = []
    for override in overrides:
        dotted, sep, text = str(override).partition("=")
        if not sep or not all(p.strip() for p in dotted.split(".")):
            raise ConfigError(f"{what} {override!r}: expected KEY=VALUE, e.g. tune.num_samples=20")
        try:
            settings.append((dotted, load_yaml(text)))
        except yaml.YAMLError as exc:
            detail = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise ConfigError(f"{what} {dotted.strip()}: {text!r} is not a YAML value"
                              + (f" ({detail})" if detail else "")) from None
    return with_settings(cls, base, settings, what)


def with_settings(cls: type, base: Mapping[str, Any], settings: Iterable[tuple[str, Any]], what: str = "--set") -> Any:
    """The one override path: `cls` from `base` (a nested mapping of some of its settings) with each
    (dotted key, value) set on top, then built like any other mapping (`from_mapping`): unknown keys
    and wrong types are refused naming the key, as everywhere. A mapping value sets each of its keys
    (`gan={steps: 5}` is `gan.steps=5`), so a setting given twice, directly or through a group, is
    refused, and nothing given is dropped by a later group. Ranges are the caller's `validate`."""
    data = _deep_copy(base)
    given: dict[tuple[str, ...], tuple[str, Any]] = {}  # each setting path -> (as written, value)
    for dotted, value in settings:
        for path, leaf in _settings_of([p.strip() for p in str(dotted).split(".")], value):
            _refuse_given_twice(what, given, path, leaf)
            given[tuple(p.replace("-", "_") for p in path)] = (".".join(path), leaf)
            target = data
            for part in path[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise ConfigError(f"{what} {'.'.join(path)}: {part} is a setting, not a group of settings")
            target[path[-1]] = leaf
    return from_mapping(cls, data)


def _settings_of(parts: list[str], value: Any) -> Iterable[tuple[list[str], Any]]:
    """(key path, value) of every setting a --set value gives: a mapping's keys, nested."""
    if not isinstance(value, Mapping) or not value:
        yield parts, value
        return
    for key, inner in value.items():
        yield from _settings_of([*parts, str(key)], inner)


def _refuse_given_twice(what: str, given: dict, path: list[str], value: Any) -> None:
    key = tuple(p.replace("-", "_") for p in path)
    shown = ".".join(path)
    if key in given and given[key][1] != value:
        raise ConfigError(f"{what} {shown} is given twice ({given[key][1]!r} and {value!r}): give it once")
    overlap = next((written for other, (written, _) in given.items() if _within(other, key) or _within(key, other)),
                   None)
    if overlap is not None:
        raise ConfigError(f"{what} {shown} and {overlap} overlap (one is a group holding the other): "
                          "give each setting once")


def _within(inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
    return len(inner) > len(outer) and inner[:len(outer)] == outer


def _deep_copy(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}


def value_at(config: Any, leaf: Leaf) -> Any:
    """The value of one setting (`leaves`) in a config instance."""
    for attr in leaf.attrs:
        config = getattr(config, attr)
    return config


# --- YAML as a user writes it, bounded -------------------------------------------------------------
_FLOAT = r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
# What one YAML text may hold (a config, a search space, a values file, a --set value): a few KB
# each in practice. Past these, a file is refused in one line before anything walks it.
YAML_MAX_BYTES = 1 << 20
YAML_MAX_NODES = 1_000_000  # values counted with every alias expanded (a "billion laughs" is refused)
NUMBER_MAX_CHARS = 64  # float32's largest value has 39 digits, int64's 19


def load_yaml_file(path: str | Path, what: str = "config file") -> Any:
    """`load_yaml` of a regular file of at most YAML_MAX_BYTES (ConfigError naming it otherwise).
    A YAML error keeps PyYAML's type (callers name the file); a missing file is FileNotFoundError."""
    from cifar_core.atomic import read_limited

    return load_yaml(read_limited(path, YAML_MAX_BYTES, what, ConfigError).decode("utf-8"))


def load_yaml(text: str) -> Any:
    """YAML with two traps of PyYAML's YAML 1.1 closed: `1e-4` is a float (not the string "1e-4"),
    and a key given twice in a mapping is an error (not silently the last one). Bounded: at most
    YAML_MAX_BYTES, MAX_NESTING levels, YAML_MAX_NODES values with aliases expanded, numbers of at
    most NUMBER_MAX_CHARS characters, keys that are plain values (never a list or a mapping built
    from aliases); each refused as a yaml.YAMLError saying which and where."""
    import yaml

    if len(text) > YAML_MAX_BYTES:
        raise yaml.YAMLError(f"the text is longer than {YAML_MAX_BYTES >> 20} MiB, the most it may be")
    return yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass


def check_yaml_limits(text: str) -> None:
    """The limits of `load_yaml` alone, for YAML another parser reads (Helm's values files)."""
    import yaml

    if len(text) > YAML_MAX_BYTES:
        raise yaml.YAMLError(f"the text is longer than {YAML_MAX_BYTES >> 20} MiB, the most it may be")
    loader = _strict_loader()(text)
    try:
        while loader.check_node():
            loader.get_node()
    finally:
        loader.dispose()


@functools.cache
def _strict_loader() -> type:
    import re

    import yaml

    from cifar_core.atomic import MAX_NESTING

    def refuse(problem: str, mark) -> yaml.YAMLError:
        return yaml.composer.ComposerError(None, None, f"{problem} (line {mark.line + 1})", mark)

    class StrictLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            if self.depth >= MAX_NESTING:  # PyYAML composes recursively: 50,000 levels would overflow
                raise refuse(f"nested deeper than {MAX_NESTING} levels", self.peek_event().start_mark)
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def compose_document(self):
            node = super().compose_document()
            _check_nodes(node, {}, refuse)  # before anything is built from it
            return node

    StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(f"^(?:{_FLOAT})$"),
                                       list("-+0123456789."))

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
        seen: dict[Any, None] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node)  # a plain value: _check_nodes saw to it
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)
            seen[key] = None
        return loader.construct_mapping(node, deep=True)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return StrictLoader


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _check_nodes(node, sizes: dict[int, tuple[int, int]], refuse) -> tuple[int, int]:
    """(values, depth) of `node` with aliases expanded, memoised per node (an alias is a node met
    again), refusing what `load_yaml` refuses; recursion is as deep as the composer's, bounded."""
    from cifar_core.atomic import MAX_NESTING

    if id(node) in sizes:
        if sizes[id(node)] is None:
            raise refuse("an alias refers to a value that contains it", node.start_mark)
        return sizes[id(node)]
    sizes[id(node)] = None
    if node.tag in _NUMBER_TAGS and len(node.value) > NUMBER_MAX_CHARS:
        raise refuse(f"the number {node.value[:16]}... has {len(node.value)} characters, more than "
                     f"{NUMBER_MAX_CHARS}", node.start_mark)
    count, depth = 1, 1
    pairs = node.value if isinstance(node.value, list) else ()
    for item in pairs:
        if isinstance(item, tuple):  # a mapping's (key, value)
            key, item = item
            if not hasattr(key, "value") or isinstance(key.value, list):
                raise refuse("a key must be a plain value (a name or a number), not a list or a mapping",
                             key.start_mark)
            count += _check_nodes(key, sizes, refuse)[0]
        values, levels = _check_nodes(item, sizes, refuse)
        count, depth = count + values, max(depth, levels + 1)
        if count > YAML_MAX_NODES or depth > MAX_NESTING:
            raise refuse(f"more than {YAML_MAX_NODES:,} values once its aliases are expanded"
                         if count > YAML_MAX_NODES else f"nested deeper than {MAX_NESTING} levels once its "
                         "aliases are expanded", node.start_mark)
    sizes[id(node)] = (count, depth)
    return count, depth
