"""The `cifar` command line. It only parses options and calls `cifar_core`; no logic lives here."""

from __future__ import annotations

import sys

import click

from cifar_core.errors import CifarError


class _CifarGroup(click.Group):
    """Turns a CifarError anywhere below into one `error:` line and exit status 2 (also under CliRunner)."""

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
from jobs.train_cmds import evaluate_cmd, train_cmd  # noqa: E402

cli.add_command(train_cmd)
cli.add_command(evaluate_cmd)
from jobs.gan_cmds import gan_group  # noqa: E402

cli.add_command(gan_group)
from jobs.data_cmds import data  # noqa: E402

cli.add_command(data)
from jobs.models_cmd import models_cmd  # noqa: E402

cli.add_command(models_cmd)
from jobs.submit import logs_cmd, status_cmd, submit_cmd  # noqa: E402

cli.add_command(submit_cmd)
cli.add_command(status_cmd)
cli.add_command(logs_cmd)
from jobs.tune_cmds import pipeline_cmd, retrain_cmd, tune_cmd  # noqa: E402

cli.add_command(tune_cmd)
cli.add_command(retrain_cmd)
cli.add_command(pipeline_cmd)
from jobs.fid_cmd import fid_cmd  # noqa: E402

cli.add_command(fid_cmd)
from jobs.report_cmd import report_cmd  # noqa: E402

cli.add_command(report_cmd)
# --- end of command groups ---


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every user error (bad option, bad file, bad value) is one `error:` line, exit 2."""
    try:
        status = cli.main(args=argv, prog_name="cifar", standalone_mode=False)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    # Without standalone mode Click hands back the exit code of ctx.exit() (e.g. 2 after an error).
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
