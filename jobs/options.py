"""Click options shared by several commands, so every command spells them the same way."""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CIFAR_DATA_DIR",
    default="data",
    show_default=True,
    show_envvar=True,
    help="Directory holding cifar-100-python/ (official format).",
)

results_dir_option = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CIFAR_RESULTS_DIR",
    default="results",
    show_default=True,
    show_envvar=True,
    help="Root of all results (a persistent volume on Kubernetes).",
)

device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (cuda if available, else cpu), cpu, cuda, cuda:N.",
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")

allow_synthetic_option = click.option(
    "--allow-synthetic", is_flag=True,
    help="Run on data that is not the official CIFAR-100 (by its md5s) although the results are set beside a "
         "report's numbers; every summary and the report then say SYNTHETIC.")


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses what no range check catches: `nan` (every comparison with it
    is false) and what becomes infinite (`inf`, `1e999`, 400 digits). (Settings' options need not:
    `cifar_core.fields.coerce` refuses both, naming the setting.)"""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class SettingOption(click.Option):
    """An option that stays None unless given (so a config file or the dataclass decides), while its
    --help shows the setting's real default, with its unit, beside the range Click shows."""

    def __init__(self, *decls, shown_default: str, **kwargs):
        super().__init__(*decls, **kwargs)
        self.shown_default = shown_default

    def get_help_extra(self, ctx: click.Context):
        extra = super().get_help_extra(ctx)
        extra["default"] = self.shown_default
        return extra


def setting_options(defaults: Any, skip: tuple[str, ...] = ()) -> Callable:
    """One option per setting of the config class `defaults` is an instance of (`cifar_core.fields`):
    `--flat-name` (`--x/--no-x` for booleans), a Choice or a numeric range from the declaration, its
    help, and `defaults`' value as the default shown; a setting without a default is a required
    option. The command receives {flat name: value or None}; `cifar_core.fields.nest` turns that
    into the config's mapping. `skip` leaves out settings a shared option already sets (--device)."""
    import dataclasses

    from cifar_core.fields import leaves, value_at

    options = [_setting_option(leaf, value_at(defaults, leaf),
                               required=leaf.field.default is dataclasses.MISSING
                               and leaf.field.default_factory is dataclasses.MISSING)
               for leaf in leaves(type(defaults)) if leaf.name not in skip]

    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _setting_option(leaf, default: Any, required: bool = False) -> Callable:
    flag = leaf.name.replace("_", "-")
    unit = f" {leaf.meta['unit']}" if leaf.meta.get("unit") else ""
    if bool in leaf.types:
        decls, kwargs = (f"--{flag}/--no-{flag}",), {}
        shown = leaf.meta.get("none_means") or "none" if default is None else flag if default else f"no-{flag}"
    else:
        decls, kwargs = (f"--{flag}",), {"type": _click_type(leaf)}
        shown = (leaf.meta.get("none_means") or "none") if default is None else f"{default}{unit}"
    if required:
        return click.option(*decls, required=True, help=leaf.meta.get("help"), **kwargs)
    return click.option(*decls, cls=SettingOption, default=None, shown_default=shown, help=leaf.meta.get("help"),
                        **kwargs)


class CommaList(click.ParamType):
    """A list setting as one comma-separated word (`--seeds 0,1,2`): each item of the setting's item
    type; the setting's own checks (choices, range, repeats) follow where it is declared."""

    name = "list"

    def __init__(self, item: type):
        self.item = item

    def convert(self, value: Any, param, ctx) -> tuple:
        if isinstance(value, tuple):
            return value
        words = [word.strip() for word in str(value).split(",")]
        if not all(words):
            self.fail(f"{value!r} has an empty item: give a comma-separated list such as 0,1,2", param, ctx)
        try:
            return tuple(self.item(word) for word in words)
        except ValueError:
            self.fail(f"{value!r}: every item must be {'a whole number' if self.item is int else 'a number'}",
                      param, ctx)


def _click_type(leaf) -> click.ParamType:
    (kind,) = leaf.types
    if typing.get_origin(kind) in (tuple, list):
        return CommaList(typing.get_args(kind)[0])
    if leaf.meta.get("choices"):
        return click.Choice([str(c) for c in leaf.meta["choices"]])
    allowed = leaf.meta.get("range")
    if allowed is None or kind is str:
        return {int: click.INT, float: click.FLOAT, str: click.STRING}[kind]
    range_type = click.IntRange if kind is int else click.FloatRange
    return range_type(min=allowed.low, max=allowed.high, min_open=allowed.low_open, max_open=allowed.high_open)
