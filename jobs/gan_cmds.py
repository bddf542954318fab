"""`cifar gan train` and `cifar gan sample`: parse options, call cifar_core.gan."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cifar_core.names import check_name
from jobs.options import data_dir_option, device_option, results_dir_option
from jobs.work_options import stage_work, task_options

POSITIVE_INT = click.IntRange(min=1)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)
FRACTION = click.FloatRange(min=0, max=1, max_open=True)


def _defaults():
    from cifar_core.gan.config import CollapseConfig, GanTrainConfig

    return GanTrainConfig(), CollapseConfig()


_RUN, _COLLAPSE = _defaults()  # one source of defaults: the config dataclasses


@click.group("gan")
def gan_group() -> None:
    """DCGAN (report B): train with collapse detection and recovery, and sample images."""


@gan_group.command("train")
@click.option(
    "--run-name", required=True, help="Results go to RESULTS/gan/<run-name>/; rerunning resumes it."
)
@click.option(
    "--steps",
    type=POSITIVE_INT,
    default=_RUN.steps,
    show_default=True,
    help="Optimisation steps (D + G update each).",
)
@click.option("--batch-size", type=POSITIVE_INT, default=_RUN.batch_size, show_default=True)
@click.option(
    "--lr", type=POSITIVE_FLOAT, default=_RUN.lr, show_default=True, help="Adam learning rate, both networks."
)
@click.option(
    "--beta1", type=FRACTION, default=_RUN.beta1, show_default=True, help="Adam beta1 (beta2 stays 0.999)."
)
@click.option("--nz", type=POSITIVE_INT, default=_RUN.nz, show_default=True, help="Noise dimension.")
@click.option("--ngf", type=POSITIVE_INT, default=_RUN.ngf, show_default=True, help="Generator width.")
@click.option("--ndf", type=POSITIVE_INT, default=_RUN.ndf, show_default=True, help="Discriminator width.")
@click.option("--conditional", is_flag=True, help="Class-conditional generator and discriminator.")
@click.option("--seed", type=int, default=_RUN.seed, show_default=True)
@click.option(
    "--log-every",
    type=POSITIVE_INT,
    default=_RUN.log_every,
    show_default=True,
    help="Steps per metrics row and collapse check.",
)
@click.option(
    "--sample-every",
    type=POSITIVE_INT,
    default=_RUN.sample_every,
    show_default=True,
    help="Steps per sample grid PNG.",
)
@click.option(
    "--checkpoint-every",
    type=POSITIVE_INT,
    default=_RUN.checkpoint_every,
    show_default=True,
    help="Steps per kept checkpoint.",
)
@click.option(
    "--collapse-warmup",
    type=click.IntRange(min=0),
    default=_COLLAPSE.warmup_steps,
    show_default=True,
    help="Steps before collapse is judged.",
)
@click.option(
    "--collapse-window",
    type=click.IntRange(min=0),
    default=_COLLAPSE.window_steps,
    show_default=True,
    help="Steps a symptom must persist.",
)
@click.option(
    "--d-loss-floor",
    type=click.FloatRange(min=0),
    default=_COLLAPSE.d_loss_floor,
    show_default=True,
    help="D wins below this D loss ...",
)
@click.option(
    "--g-loss-ceiling",
    type=POSITIVE_FLOAT,
    default=_COLLAPSE.g_loss_ceiling,
    show_default=True,
    help="... with G loss above this.",
)
@click.option(
    "--diversity-fraction",
    type=FRACTION,
    default=_COLLAPSE.diversity_fraction,
    show_default=True,
    help="Collapse when sample diversity falls below this fraction of its healthy level.",
)
@click.option(
    "--max-recoveries",
    type=click.IntRange(min=0),
    default=_COLLAPSE.max_recoveries,
    show_default=True,
    help="Rollbacks allowed (0: detect and log only).",
)
@click.option(
    "--recovery-lr-factor",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=_COLLAPSE.lr_factor,
    show_default=True,
    help="lr multiplier per recovery.",
)
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
def train_cmd(run_name, device, data_dir, results_dir, resume, cpus, gpus, ray_flag, **options) -> None:
    """Train a DCGAN on the CIFAR-100 training images.

    Writes RESULTS/gan/RUN/: checkpoints/step_N.pt and last.pt, samples/step_N.png, metrics.jsonl,
    summary.json and losses.png. Running the same command again resumes from last.pt. With Ray
    (RAY_ADDRESS, or --ray) it is one Ray task with --cpus and --gpus, run again on another node,
    from last.pt, if its node dies.
    """
    from cifar_core.execution import run_stage
    from cifar_core.gan.config import CollapseConfig, GanTrainConfig
    from cifar_core.gan.train import train_gan

    collapse = CollapseConfig(
        warmup_steps=options.pop("collapse_warmup"),
        window_steps=options.pop("collapse_window"),
        d_loss_floor=options.pop("d_loss_floor"),
        g_loss_ceiling=options.pop("g_loss_ceiling"),
        diversity_fraction=options.pop("diversity_fraction"),
        max_recoveries=options.pop("max_recoveries"),
        lr_factor=options.pop("recovery_lr_factor"),
    )
    cfg = GanTrainConfig(**options, collapse=collapse)
    run_dir = _run_dir(results_dir, run_name)
    with stage_work(ray_flag, cpus, gpus, default_ray=False) as (work, resources):
        summary = run_stage(work, resources, train_gan, run_dir / "summary.json", device,
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


def _run_dir(results_dir: Path, run_name: str) -> Path:
    return Path(results_dir) / "gan" / check_name(run_name, "--run-name")
