"""The `cifar` command line. It only parses options and calls `cifar_core`; no logic lives here."""

from __future__ import annotations

import sys

import click

from cifar_core.errors import CifarError


class _CifarGroup(click.Group):
    """Turns a CifarError anywhere below into one `error:` line and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CifarError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_CifarGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cifar100-k8s")
def cli() -> None:
    """CIFAR-100 research platform: data, models, training, Ray Tune search, DCGAN and FID.

    Every command runs the same on a laptop (local Ray, CPU or one GPU) and inside a Kubernetes
    pod. Data and results directories default to $CIFAR_DATA_DIR and $CIFAR_RESULTS_DIR.
    """


# --- command groups (one import + add_command per module; each owner adds its own line) ---
# --- end of command groups ---


def main() -> None:
    cli(prog_name="cifar")


if __name__ == "__main__":
    sys.exit(main())
