"""`cifar data fetch|synth|verify`: get, make and check the CIFAR-100 files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from jobs.options import json_option

CHECKSUM_WORDS = {
    "ok-official": "ok (md5s match the official CIFAR-100 files)",
    "ok-synthetic-manifest": "ok (md5s match the synthetic set's manifest)",
    "unchecked": "not checked (neither the full official set nor a synthetic set with a manifest)",
}

out_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CIFAR_DATA_DIR",
    default="data",
    show_default=True,
    show_envvar=True,
    help="Directory to hold cifar-100-python/.",
)


@click.group("data")
def data() -> None:
    """Get, make and check CIFAR-100 in the official python format (cifar-100-python/)."""


@data.command("fetch")
@out_option
def fetch(out: Path) -> None:
    """Download the official CIFAR-100 (through torchvision); does nothing if it is already there."""
    from cifar_core.data.verify import fetch_cifar100, verify_dataset

    folder = fetch_cifar100(out)
    _print_report(verify_dataset(folder))


@data.command("synth")
@out_option
@click.option(
    "--train",
    "n_train",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Training images (the real set has 50,000).",
)
@click.option(
    "--test",
    "n_test",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Test images (the real set has 10,000).",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Same seed, same bytes."
)
def synth(out: Path, n_train: int, n_test: int, seed: int) -> None:
    """Write a SYNTHETIC stand-in (procedural shapes, real class names) in the official format."""
    from cifar_core.data.synth import write_synthetic

    start = time.monotonic()
    folder = write_synthetic(out, n_train=n_train, n_test=n_test, seed=seed)
    click.echo(
        f"wrote SYNTHETIC data (procedurally generated, not CIFAR-100): {n_train} train / {n_test} test "
        f"images, seed {seed}, to {folder} in {time.monotonic() - start:.1f}s"
    )


@data.command("verify")
@click.argument("root", type=click.Path(path_type=Path), envvar="CIFAR_DATA_DIR", default="data")
@json_option
def verify(root: Path, as_json: bool) -> None:
    """Check counts, classes and checksums of ROOT (holding cifar-100-python/, or that folder)."""
    # Only the data modules: this is the chart's probe, run in a pod with 1 GiB (torch alone is ~900 MB).
    from cifar_core.data.verify import verify_dataset

    report = verify_dataset(root)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_report(report)


def _print_report(report: dict) -> None:
    kind = "SYNTHETIC (procedurally generated, not CIFAR-100)" if report["synthetic"] else "CIFAR-100"
    click.echo(f"{report['root']}: {kind}")
    for split in ("train", "test"):
        info = report[split]
        click.echo(
            f"  {split + ':':6} {info['count']:>6} images, "
            f"{info['fine_classes_present']}/{report['fine_classes']} fine classes, "
            f"{info['coarse_classes_present']}/{report['coarse_classes']} coarse classes"
        )
    click.echo(f"  checksums: {CHECKSUM_WORDS[report['checksum']]}")
