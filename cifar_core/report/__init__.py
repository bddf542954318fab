"""`cifar report`: one page (and a Markdown twin) for whatever stages of the study have run.

Summaries, each read through its class -> one dict (`collect`, kept as report.json) -> a document
(`content`) -> a self-contained index.html (figures inline, no requests, no script) and report.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from cifar_core.atomic import atomic_write_json, atomic_write_text
from cifar_core.errors import ConfigError
from cifar_core.layout import Results
from cifar_core.records import plain
from cifar_core.resultdir import Request, ResultDir

FORMATS = ("html", "md")


def build_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                 formats: tuple[str, ...] = FORMATS) -> dict[str, Path]:
    """Write the report of RESULTS_DIR into OUT_DIR (default RESULTS_DIR/report); returns
    {"html": index.html, "md": report.md, "json": report.json} for the formats written."""
    from cifar_core.report.collect import collect_results
    from cifar_core.report.content import build_document
    from cifar_core.report.html import render_html
    from cifar_core.report.markdown import render_markdown
    from cifar_core.report.plots import make_figures

    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ConfigError(f"report format {unknown[0] if unknown else '(none)'!r}: choose from {', '.join(FORMATS)}")
    out = Path(out_dir) if out_dir is not None else Results(results_dir).report()
    collected = collect_results(results_dir)  # read first: a bad summary fails before anything is written
    # One writer (the result-directory protocol): two reports rendered at once never mix their files;
    # a report is made anew each time (it says when and from what), its completion marker last.
    with ResultDir(out, "report", root=Path(os.path.abspath(out)).parent, replaceable=True) as report:
        report.open(Request("report", {"formats": sorted(formats)}))
        figures = make_figures(collected, out / "figures")
        document = build_document(collected, figures)
        written = {"json": atomic_write_json(out / "report.json", plain({**collected, "figures": figures}))}
        if "html" in formats:
            written["html"] = atomic_write_text(out / "index.html", render_html(document))
        if "md" in formats:
            written["md"] = atomic_write_text(out / "report.md", render_markdown(document, out))
        report.complete()
    return written


__all__ = ["FORMATS", "build_report"]
