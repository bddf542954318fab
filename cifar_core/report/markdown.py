"""The report as Markdown, for terminals and CI logs: the same tables, figures as relative links."""

from __future__ import annotations

import os
from pathlib import Path

from cifar_core.report.document import Block, Cell, Document, Facts, Figure, Heading, Section, Table, Text


def render_markdown(document: Document, out_dir: str | os.PathLike) -> str:
    """Markdown for OUT_DIR/report.md; figure links are relative to `out_dir`."""
    lines = [f"# {document.title}", "", render_text(document.banner), "", f"_{document.subtitle}_", ""]
    for section in document.sections:
        lines += render_section(section, Path(out_dir))
    return "\n".join(lines).rstrip() + "\n"


def render_section(section: Section, out_dir: Path) -> list[str]:
    lines = [f"## {section.title}", ""]
    for block in section.blocks:
        lines += [render_block(block, out_dir), ""]
    return lines


def render_block(block: Block, out_dir: Path) -> str:
    if isinstance(block, Heading):
        return f"### {block.text}"
    if isinstance(block, Text):
        return render_text(block)
    if isinstance(block, Table):
        return render_table(block)
    if isinstance(block, Facts):
        return "\n".join(f"- **{label}:** {cell.text}" for label, cell in block.items)
    if isinstance(block, Figure):
        link = Path(os.path.relpath(Path(block.path).resolve(), out_dir.resolve())).as_posix()
        return f"![{block.caption}]({link})\n\n_{block.caption}_"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_text(block: Text) -> str:
    if block.kind == "warning":
        return f"> **{block.text}**"
    if block.kind in ("note", "ok"):
        return f"> {block.text}"
    return block.text


def render_table(table: Table) -> str:
    header = "| " + " | ".join(_escape(c) for c in table.columns) + " |"
    align = "|" + "|".join("---:" if _numeric_column(table, i) else "---" for i in range(len(table.columns))) + "|"
    rows = ["| " + " | ".join(_escape(c.text) for c in row) + " |" for row in table.rows]
    caption = [f"_{table.caption}_", ""] if table.caption else []
    return "\n".join([*caption, header, align, *rows])


def _numeric_column(table: Table, index: int) -> bool:
    cells: list[Cell] = [row[index] for row in table.rows]
    return bool(cells) and all(c.numeric for c in cells if c.value is not None) and any(c.numeric for c in cells)


def _escape(text: str) -> str:
    # A pipe would end the cell; a newline the row.
    return text.replace("|", "\\|").replace("\n", " ")
