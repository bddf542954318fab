"""The report as data: sections of text, tables and figures, rendered to HTML and to Markdown.

Both renderers draw from the same document, so the page and the Markdown always show the same
numbers. A table cell keeps the exact value it shows next to its formatted text; the HTML page
carries that value in a `data-value` attribute, so a script (or a test) can read it back exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MISSING = "—"


@dataclass(frozen=True)
class Cell:
    text: str
    value: Any = None  # the number behind `text`; None for text cells and missing values
    numeric: bool = False  # right-aligned in tables


@dataclass
class Table:
    key: str  # stable id: an HTML id and a test handle
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Figure:
    key: str
    path: str  # a PNG file: embedded in the HTML, linked from the Markdown
    caption: str
    pixel_art: bool = False  # small images (32x32 samples) shown enlarged with sharp pixels


@dataclass
class Text:
    text: str
    kind: str = "p"  # p, note, warning, ok


@dataclass
class Facts:
    """A short list of labelled values (settings, the best trial, versions)."""

    key: str
    items: list[tuple[str, Cell]]


@dataclass
class Heading:
    text: str


Block = Table | Figure | Text | Facts | Heading


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    banner: Text  # which data the results come from, shown above everything else
    subtitle: str
    sections: list[Section]


# --- cells -------------------------------------------------------------------------------------
def text(value: Any) -> Cell:
    return Cell(MISSING if value is None or value == "" else str(value))


def as_number(value: Any) -> float | None:
    """A finite number from a summary value (floats, ints or the strings of trials.csv), else None."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def percent(fraction: Any, digits: int = 2) -> Cell:
    """An accuracy stored as a fraction (0.4213), shown as a percentage (42.13)."""
    number = as_number(fraction)
    if number is None:
        return Cell(MISSING, numeric=True)
    return Cell(f"{number * 100:.{digits}f}", _exact(fraction), numeric=True)


def percent_points(pct: Any, digits: int = 1) -> Cell:
    """A percentage already in points, as reports A and B state them (60.1)."""
    number = as_number(pct)
    return Cell(MISSING, numeric=True) if number is None else Cell(f"{number:.{digits}f}", _exact(pct), numeric=True)


def count(value: Any) -> Cell:
    number = as_number(value)
    return Cell(MISSING, numeric=True) if number is None else Cell(f"{int(number):,}", int(number), numeric=True)


def decimal(value: Any, digits: int = 4) -> Cell:
    number = as_number(value)
    return Cell(MISSING, numeric=True) if number is None else Cell(f"{number:.{digits}f}", _exact(value), numeric=True)


def scientific(value: Any) -> Cell:
    number = as_number(value)
    return Cell(MISSING, numeric=True) if number is None else Cell(f"{number:.3g}", _exact(value), numeric=True)


def duration(seconds: Any) -> Cell:
    number = as_number(seconds)
    return Cell(MISSING, numeric=True) if number is None else Cell(human_duration(number), _exact(seconds), numeric=True)


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def yes_no(value: Any) -> Cell:
    if value is None or value == "":
        return Cell(MISSING)
    return Cell("yes" if value in (True, "True", "true") else "no")


def _exact(value: Any) -> float | int:
    """The value as a number, without rounding: trials.csv strings become floats."""
    if isinstance(value, (int, float)):
        return value
    number = float(value)
    return int(number) if number.is_integer() and "." not in str(value) else number
