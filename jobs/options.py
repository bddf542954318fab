"""Click options shared by several commands, so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path

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
