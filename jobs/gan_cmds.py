"""`cifar gan train` and `cifar gan sample`: parse options, call cifar_core.gan."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cifar_core.gan.config import GanTrainConfig
from jobs.options import data_dir_option, device_option, results_dir_option, setting_options
from jobs.work_options import stage_work, task_options

POSITIVE_INT = click.IntRange(min=1)


@click.group("gan")
def gan_group() -> None:
    """DCGAN (report B): train with collapse detection and recovery, and sample images."""


@gan_group.command("train")
@click.option(
    "--run-name", required=True, help="Results go to RESULTS/gan/<run-name>/; rerunning resumes it."
)
@setting_options(GanTrainConfig())
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue from last.pt if the run exists, or start it over.",
)
@device_option
@data_dir_option
@results_dir_option
@task_options
def train_cmd(run_name, device, data_dir, results_dir, resume, cpus, gpus, ray_flag, pending_timeout, **options) -> None:
    """Train a DCGAN on the CIFAR-100 training images.

    Writes RESULTS/gan/RUN/: checkpoints/step_N.pt and last.pt, samples/step_N.png, metrics.jsonl,
    summary.json and losses.png. Running the same command again resumes from last.pt. With Ray
    (RAY_ADDRESS, or --ray) it is one Ray task with --cpus and --gpus, run again on another node,
    from last.pt, if its node dies.
    """
    from cifar_core.execution.runners import run_stage
    from cifar_core.fields import nest
    from cifar_core.gan.train import train_gan
    from cifar_core.layout import Results
    from cifar_core.names import check_name

    cfg = GanTrainConfig.from_dict(nest(options, GanTrainConfig))
    run_dir = Results(results_dir).gan_run(check_name(run_name, "--run-name"))
    with stage_work("gan", ray_flag, cpus, gpus, pending_timeout) as (work, resources):
        summary = run_stage(work, train_gan, name="gan", resources=resources, device=device,
                            cfg=cfg, data_dir=data_dir, run_dir=run_dir, resume=resume, wait_s=work.lock_wait_s)
    final = summary["final"] or {}
    click.echo(
        f"{summary['run_dir']}: {summary['steps']} steps in {summary['wall_time_s']:.0f}s on {summary['device']}, "
        f"D loss {final.get('d_loss', float('nan')):.3f}, G loss {final.get('g_loss', float('nan')):.3f}, "
        f"{summary['recoveries']} recoveries"
    )


@gan_group.command("sample")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="A GAN checkpoint (last.pt or step_<N>.pt).",
)
@click.option("--n", type=POSITIVE_INT, default=10000, show_default=True, help="Number of images.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output directory."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Same seed, same checkpoint: identical files."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "npz", "both"]),
    default="png",
    show_default=True,
    help="PNG files 00000.png..., and/or samples.npz (key images, uint8 N,32,32,3).",
)
@click.option("--batch-size", type=POSITIVE_INT, default=500, show_default=True)
@click.option("--batch-norm", type=click.Choice(["running", "batch"]), default="running", show_default=True,
              help="BatchNorm statistics: running (eval mode; images independent of --batch-size) or each "
                   "batch's own (train mode, as the PyTorch DCGAN tutorial samples).")
@device_option
def sample_cmd(checkpoint, n, out, seed, fmt, batch_size, batch_norm, device) -> None:
    """Generate images from a trained generator, with a SAMPLES.json saying what they are.

    --out must be new or empty, or hold an earlier sample of exactly this request (then it is
    replaced as a whole): two samples never mix, so `cifar fid --fake DIR` scores one of them.
    """
    from cifar_core.gan.sample import sample_to_folder

    manifest = sample_to_folder(checkpoint, out, n, seed, fmt, batch_size=batch_size, batch_norm=batch_norm,
                                device=device)
    click.echo(json.dumps({"out": str(out), "n": n, "seed": seed, "format": fmt, "files": len(manifest["files"])}))

