"""`cifar fid`: parse options, call cifar_core.fid.scoring."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cifar_core.summaries import FidSummary
from jobs.options import (
    allow_synthetic_option,
    data_dir_option,
    device_option,
    json_option,
    results_dir_option,
)
from jobs.work_options import stage_work, task_options

POSITIVE_INT = click.IntRange(min=1)


@click.command("fid")
@click.option(
    "--fake",
    type=click.Path(exists=True, path_type=Path),
    help="Generated images: a folder of 32x32 RGB PNGs, or an .npz with a uint8 `images` array.",
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A GAN checkpoint (step_<N>.pt or last.pt): sample --n images from its generator.",
)
@click.option(
    "--snapshot",
    "snapshot_run",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A GAN run dir: score its snapshot of --step, as report B did (its step-46,000 snapshot, 10,000 images, "
    "the test split).",
)
@click.option("--step", type=click.IntRange(min=0), default=None,
              help="--snapshot: the step of the snapshot to score.  [default: 46000, report B's]")
@click.option(
    "--select-best",
    "run_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A GAN run dir: rank every checkpoints/step_<N>.pt by its FID against the TRAIN split (--n samples "
    "each), then score only the chosen snapshot against --split test, with other noise.",
)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="CIFAR-100 split the generated images are compared with (--select-best: test only).")
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth [default: $CIFAR_FID_WEIGHTS, "
    "else the torch hub cache, downloaded there if the network allows].",
)
@click.option("--n", type=POSITIVE_INT,
              help="Generated images to use: a limit for --fake; samples for --checkpoint and per snapshot for "
              "--select-best (default 10000, as report B).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed for generator samples.")
@click.option("--batch-norm", type=click.Choice(["running", "batch"]), default="running", show_default=True,
              help="Generator BatchNorm statistics when sampling: running (eval mode) or each batch's own "
                   "(train mode, as the PyTorch DCGAN tutorial samples).")
@click.option("--name", help="Results go to RESULTS/fid/<name>/ [default: the input's name, then any setting "
              "that is not the default, e.g. dcgan-step_46000-train-n500]. A result of other settings is never replaced.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write summary.json here instead of RESULTS/fid/<name>/.")
@click.option("--batch-size", type=POSITIVE_INT, help="Images per Inception batch [default: 50 CPU, 200 GPU].")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Reference statistics cache [default: RESULTS/cache/fid].")
@data_dir_option
@results_dir_option
@device_option
@task_options
@allow_synthetic_option
@json_option
def fid_cmd(fake, checkpoint, snapshot_run, step, run_dir, split, weights, n, seed, batch_norm, name, out, batch_size,
            cache_dir, data_dir, results_dir, device, cpus, gpus, ray_flag, pending_timeout, allow_synthetic,
            as_json) -> None:
    """FID of generated images against a CIFAR-100 split (pytorch-fid's Inception, pool3, 2048-d).

    Exactly one of --fake, --checkpoint, --snapshot or --select-best. Report B's protocol:
    `--snapshot RUN` (its step-46,000 snapshot on 10,000 images). --select-best never chooses on
    the split it reports: it chooses on the training split and scores the chosen snapshot on the
    test split. The split's statistics are cached, so
    later runs only pass the generated images through Inception. Writes summary.json. With Ray
    (RAY_ADDRESS, or --ray) the scoring is one Ray task with --cpus and --gpus.
    """
    from cifar_core.execution.runners import run_stage
    from cifar_core.fid import scoring
    from cifar_core.layout import Results
    from cifar_core.names import check_name

    inputs = [p for p in (fake, checkpoint, snapshot_run, run_dir) if p is not None]
    if len(inputs) != 1:
        raise click.UsageError("give exactly one of --fake, --checkpoint, --snapshot or --select-best")
    if step is not None and snapshot_run is None:
        raise click.UsageError("--step applies to --snapshot")
    if snapshot_run is not None:
        checkpoint = scoring.snapshot_path(snapshot_run, *(() if step is None else (step,)))
    if name is not None:
        check_name(name, "--name")
    elif out is None:
        name = scoring.default_name(fake, checkpoint, run_dir, split=split, n=n, seed=seed, batch_norm=batch_norm)
    out_dir = out or Results(results_dir).fid(name)
    if fake is None and not allow_synthetic:  # a generator's score is set beside report B's 46.85
        scoring.require_official_reference(data_dir)
    # The stages' own commands (report B's protocol, and ours) are those stages; other scores are not.
    stage = "fid-b" if snapshot_run is not None else "fid" if run_dir is not None else "fid-score"
    with stage_work("fid-b" if snapshot_run is not None else "fid", ray_flag, cpus, gpus, pending_timeout) as (
            work, resources):
        summary = run_stage(
            work, scoring.run_fid, name=stage, resources=resources, device=device, out_dir=out_dir,
            root=None if out is not None else results_dir, fake=fake, checkpoint=checkpoint, run_dir=run_dir, data_dir=data_dir, split=split,
            weights=weights, batch_size=batch_size, n=n, seed=seed, batch_norm=batch_norm,
            cache_dir=cache_dir or Results(results_dir).fid_cache(),
        )
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    click.echo(f"FID {summary['fid']:.4f} ({summary['n_fake']} generated vs {summary['n_real']} {split} images)")
    if run_dir is not None:
        click.echo(f"FID against the {summary['selection']['split']} split, per snapshot:")
        for row in sorted(summary["ranking"], key=lambda r: r["step"]):
            click.echo(f"  step {row['step']:>8}  FID {row['fid']:.4f}")
        click.echo(f"chosen snapshot: {summary['best']['checkpoint']} (its {split} FID is the one above)")
    click.echo(f"summary: {FidSummary.file_in(out_dir)}")
