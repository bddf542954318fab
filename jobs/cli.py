"""The `cifar` command line. It only parses options and calls `cifar_core`; no logic lives here."""

from __future__ import annotations

import sys

import click

from cifar_core.errors import CifarError
from jobs.data_cmds import data
from jobs.fid_cmd import fid_cmd
from jobs.gan_cmds import gan_group
from jobs.models_cmd import models_cmd
from jobs.report_cmd import report_cmd
from jobs.submit import logs_cmd, status_cmd, submit_cmd
from jobs.train_cmds import evaluate_cmd, train_cmd
from jobs.tune_cmds import pipeline_cmd, retrain_cmd, tune_cmd


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


# In the order of a study: data, models, training, search, GAN, FID, the whole pipeline, the
# report, and the same stages on a cluster.
COMMANDS = (
    data, models_cmd, train_cmd, evaluate_cmd, tune_cmd, retrain_cmd, gan_group, fid_cmd,
    pipeline_cmd, report_cmd, submit_cmd, status_cmd, logs_cmd,
)
for command in COMMANDS:
    cli.add_command(command)


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
