"""The report as one self-contained HTML page: inline CSS, figures as base64 data URIs, no script.

A Content-Security-Policy forbids every request (and any script), so the page shows the same
offline, from a mail attachment or from a CI artifact; a browser reports any violation.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from string import Template

from cifar_core.report.document import Block, Cell, Document, Facts, Figure, Heading, Section, Table, Text

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="$csp">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$css</style>
</head>
<body>
<header>
<h1>$title</h1>
<p class="subtitle">$subtitle</p>
$banner
<nav>$nav</nav>
</header>
<main>
$sections
</main>
</body>
</html>
""")

CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #f5f7fa; line-height: 1.45;
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header, main { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 0 0 12px; font-size: 20px; border-bottom: 2px solid var(--line); padding-bottom: 6px; }
h3 { margin: 22px 0 8px; font-size: 16px; color: #334e68; }
.subtitle { margin: 0 0 14px; color: var(--muted); font-size: 13px; }
.banner { margin: 0 0 14px; padding: 12px 16px; border-radius: 6px; font-size: 16px; border-left: 6px solid; }
.banner.warning { background: #fde8e8; border-color: #c81e1e; color: #771d1d; font-weight: 600; }
.banner.ok { background: #def7ec; border-color: #057a55; color: #03543f; }
.banner.note { background: #e1effe; border-color: #1c64f2; color: #1e429f; }
nav { display: flex; flex-wrap: wrap; gap: 6px 14px; margin-bottom: 18px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 22px; margin: 0 0 18px; }
p { margin: 8px 0; }
p.note, p.warning, p.ok { padding: 8px 12px; border-radius: 4px; }
p.note { background: #f0f4f8; color: #334e68; }
p.warning { background: #fdf2f2; color: #9b1c1c; font-weight: 600; }
p.ok { background: #f3faf7; color: #03543f; }
code { background: #f0f4f8; padding: 0 4px; border-radius: 3px; font-size: 13px; }
.table-wrap { overflow-x: auto; margin: 10px 0 14px; }
table { border-collapse: collapse; font-size: 12.5px; min-width: 50%; }
caption { caption-side: top; text-align: left; color: var(--muted); font-size: 12.5px; padding-bottom: 4px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #f0f4f8; font-weight: 600; white-space: nowrap; }
#s-train-runs td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
#s-anchors td.num { white-space: normal; min-width: 7em; }
#s-anchors td:last-child { min-width: 26em; }
#s-anchors-departures td:last-child { white-space: pre-line; }
tbody tr:nth-child(even) { background: #fafbfc; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 8px 0 12px; font-size: 14px; }
dl > div { display: contents; }
dt { color: var(--muted); }
dd { margin: 0; font-variant-numeric: tabular-nums; }
figure { margin: 12px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
figure img.pixels { width: 420px; image-rendering: pixelated; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
"""


def render_html(document: Document) -> str:
    links = [f'<a href="#{_id(s.key)}">{html.escape(s.title)}</a>' for s in document.sections]
    nav = " ".join(links) if len(links) > 1 else ""
    return PAGE.substitute(
        csp=CSP,
        title=html.escape(document.title),
        subtitle=html.escape(document.subtitle),
        banner=f'<p class="banner {document.banner.kind}" id="data-banner">{_inline(document.banner.text)}</p>',
        nav=nav,
        sections="\n".join(render_section(s) for s in document.sections),
        css=CSS,
    )


def render_section(section: Section) -> str:
    body = "\n".join(render_block(b) for b in section.blocks)
    return f'<section id="{_id(section.key)}">\n<h2>{html.escape(section.title)}</h2>\n{body}\n</section>'


def render_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h3>{html.escape(block.text)}</h3>"
    if isinstance(block, Text):
        return f'<p class="{block.kind}">{_inline(block.text)}</p>'
    if isinstance(block, Table):
        return render_table(block)
    if isinstance(block, Facts):
        items = "".join(f"<div><dt>{html.escape(label)}</dt>{_cell('dd', cell)}</div>" for label, cell in block.items)
        return f'<dl id="{_id(block.key)}">{items}</dl>'
    if isinstance(block, Figure):
        return render_figure(block)
    raise TypeError(f"unknown block {type(block).__name__}")


def render_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = "\n".join("<tr>" + "".join(_cell("td", c) for c in row) + "</tr>" for row in table.rows)
    caption = f"<caption>{_inline(table.caption)}</caption>" if table.caption else ""
    return (f'<div class="table-wrap"><table id="{_id(table.key)}">{caption}<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{rows}\n</tbody></table></div>")


def render_figure(figure: Figure) -> str:
    data = base64.b64encode(Path(figure.path).read_bytes()).decode("ascii")
    css_class = ' class="pixels"' if figure.pixel_art else ""
    return (f'<figure id="{_id(figure.key)}"><img{css_class} alt="{html.escape(figure.caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{_inline(figure.caption)}</figcaption></figure>')


def _cell(tag: str, cell: Cell) -> str:
    classes = ' class="num"' if cell.numeric else ""
    # The exact number behind the text, for anyone (a script, a test) reading the page back.
    value = f' data-value="{html.escape(json.dumps(cell.value))}"' if cell.value is not None else ""
    return f"<{tag}{classes}{value}>{html.escape(cell.text)}</{tag}>"


def _inline(text: str) -> str:
    """Escaped text with `code` spans, the one piece of Markdown the document's prose uses."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _id(key: str) -> str:
    return "s-" + re.sub(r"[^A-Za-z0-9_-]+", "-", key)
