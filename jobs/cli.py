"""The `cifar` command line. It only parses options and calls `cifar_core`; no logic lives here.

Each command's module is imported only when that command runs: `cifar --help` and light commands
such as `cifar data verify` (the chart's probe, in a 1 GiB pod) never pay for torch (~2 s, ~900 MB).
"""

from __future__ import annotations

import importlib
import sys

import click

from cifar_core.errors import CifarError, Interrupted, Preempted, os_error_line

# In the order of a study: data, models, training, search, GAN, FID, the whole pipeline, the
# report, and the same stages on a cluster. name -> (module:attribute, the line `cifar --help`
# shows; the command's own --help shows its full docstring).
COMMANDS = {
    "data": ("jobs.data_cmds:data", "Get, make and check CIFAR-100 in the official python format."),
    "models": ("jobs.models_cmd:models_cmd", "List registered models with their exact parameter counts."),
    "train": ("jobs.train_cmds:train_cmd", "Train one model on CIFAR-100."),
    "evaluate": ("jobs.train_cmds:evaluate_cmd", "Score a checkpoint: top-1, top-5 and per-class accuracy."),
    "tune": ("jobs.tune_cmds:tune_cmd", "Model selection with Ray Tune and ASHA (report A)."),
    "retrain": ("jobs.tune_cmds:retrain_cmd", "Retrain a search's best configs or a report's recipe; test them."),
    "gan": ("jobs.gan_cmds:gan_group", "DCGAN (report B): train with collapse recovery, and sample images."),
    "fid": ("jobs.fid_cmd:fid_cmd", "FID of generated images against a CIFAR-100 split."),
    "pipeline": ("jobs.tune_cmds:pipeline_cmd", "Every stage of the study, then the report."),
    "report": ("jobs.report_cmd:report_cmd", "Render whatever stages have run as one report."),
    "check": ("jobs.gpu_check_cmd:check_cmd", "A GPU worker's GPU, driver and CUDA, and one timed training step."),
    "submit": ("jobs.submit:submit_cmd", "Render the chart for a stage and create it on the cluster."),
    "status": ("jobs.submit:status_cmd", "The state of every stage on the cluster."),
    "logs": ("jobs.submit:logs_cmd", "Print the log of a stage's newest pod."),
}


PREEMPTED_STATUS = 143  # 128 + SIGTERM: what Kubernetes and shells expect after an obeyed SIGTERM
INTERRUPTED_STATUS = 130  # 128 + SIGINT


class _CifarGroup(click.Group):
    """Loads commands on demand, and turns every failure a user can cause into one `error:` line
    and exit status 2 (also under CliRunner): a CifarError, a filesystem error (read-only or full
    volume, a path under a file) or running out of memory. Preemption exits 143."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return super().get_command(ctx, name)  # one added with add_command
        module, attribute = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, line) for name, (_, line) in COMMANDS.items()]
        rows += [(name, command.get_short_help_str()) for name, command in self.commands.items() if name not in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["cifar.argv"] = list(args)  # for naming the command in an out-of-memory message
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Preempted as exc:  # not an error: a checkpoint was written; the same command resumes
            click.echo(f"preempted: {exc or 'stopped on SIGTERM after a checkpoint'}", err=True)
            ctx.exit(PREEMPTED_STATUS)
        except (Interrupted, KeyboardInterrupt) as exc:
            click.echo(f"interrupted: {exc or 'stopped by Ctrl-C'}", err=True)
            ctx.exit(INTERRUPTED_STATUS)
        except CifarError as exc:
            message = str(exc)
        except OSError as exc:
            message = os_error_line(exc)
        except MemoryError as exc:
            detail = " ".join(str(exc).split())
            message = f"not enough memory for `{self._command_path(ctx)}`" + (f" ({detail})" if detail else "")
        echo_error(message)
        ctx.exit(2)

    def _command_path(self, ctx: click.Context) -> str:
        words, command = ["cifar"], self
        for word in ctx.meta.get("cifar.argv", []):
            sub = command.get_command(ctx, word) if isinstance(command, click.Group) else None
            if sub is None:
                break
            words.append(word)
            command = sub
        return " ".join(words)


# The most of an error line: messages quote the value at fault, and a value can be a 10 MB label or a
# 400-digit number. The line keeps its start (what and where) and its end (how to fix it).
ERROR_LINE_MAX = 1000


def echo_error(message: str) -> None:
    """`error: <message>` as one bounded line on stderr, whatever the message quotes."""
    line = " ".join(str(message).split())  # one line, whatever control characters a quoted value held
    if len(line) > ERROR_LINE_MAX:
        head, tail = ERROR_LINE_MAX * 2 // 3, ERROR_LINE_MAX // 3
        line = f"{line[:head]} ...({len(line) - head - tail:,} characters left out)... {line[-tail:]}"
    click.echo(f"error: {line}", err=True)


@click.group(cls=_CifarGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cifar100-k8s")
def cli() -> None:
    """CIFAR-100 research platform: data, models, training, Ray Tune search, DCGAN and FID.

    Every command runs the same on a laptop (local Ray, CPU or one GPU) and inside a Kubernetes
    pod. Data and results directories default to $CIFAR_DATA_DIR and $CIFAR_RESULTS_DIR.
    """


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every user error (bad option, bad file, bad value) is one `error:` line, exit 2."""
    try:
        status = cli.main(args=argv, prog_name="cifar", standalone_mode=False)
    except click.ClickException as exc:
        echo_error(exc.format_message())
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return INTERRUPTED_STATUS
    # Without standalone mode Click hands back the exit code of ctx.exit() (e.g. 2 after an error).
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
