"""`cifar report`: parse options, call cifar_core.report.build_report, print where the report is."""

from __future__ import annotations

from pathlib import Path

import click

from jobs.options import results_dir_option

FORMAT_CHOICES = {"html": ("html",), "md": ("md",), "both": ("html", "md")}


@click.command("report")
@results_dir_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for index.html, report.md and figures/  [default: RESULTS/report]")
@click.option("--format", "fmt", type=click.Choice(list(FORMAT_CHOICES)), default="both", show_default=True,
              help="html: a self-contained page; md: Markdown for terminals and CI logs.")
def report_cmd(results_dir: Path, out: Path | None, fmt: str) -> None:
    """Render whatever stages have run (tune, retrain, recipes, train, GAN, FID) as one report.

    It says first whether the results come from real CIFAR-100 or the synthetic stand-in, then
    sets every number of reports A and B beside ours, saying why one of ours is missing (a stage
    not run, unavailable or failed). Sections of stages that have not run are left out. Where each
    protocol value comes from: the provenance section (docs/provenance.md).
    """
    from cifar_core.report import build_report

    written = build_report(results_dir, out, FORMAT_CHOICES[fmt])
    for kind in ("html", "md", "json"):
        if kind in written:
            click.echo(f"{kind}: {written[kind]}")
