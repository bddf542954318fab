"""Stages `fid` and `fid-b`: the DCGAN scored by FID (cifar_core.fid.scoring). fid-b is report B's
protocol (its 46,000-step snapshot, compared with the 50,000-step one, scored the same way); fid is
ours (every snapshot ranked on the training split, only the chosen one scored on the test split).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_core.errors import CifarError, ConfigError
from cifar_core.execution.resources import Resources
from cifar_core.fields import at_least, inline, setting
from cifar_core.names import check_name
from cifar_core.protocols import REPORT_B_FID_STEP, REPORT_B_GAN_STEPS
from cifar_core.stages.registry import Context, Stage, StageUnavailable, register_stage
from cifar_core.summaries import ComparedScore, FidSummary


@dataclass
class FidStage:
    gan_run: str = setting("dcgan", "The GAN run whose snapshots are scored.",
                           check=check_name)
    n: int = setting(10_000, "Generated images per score (report B: 10,000).", unit="images", range=at_least(2))
    if_no_weights: str = setting("fail", "Without pytorch-fid's Inception weights: fail, or skip (the stage is "
                                         "then `unavailable` and tried again next run).", choices=("fail", "skip"))


@dataclass
class FidBStage:
    """What stage fid scores (the run, images, what to do without weights) as this section's own,
    and the snapshots report B's protocol scores."""

    score: FidStage = inline(FidStage())
    step: int = setting(REPORT_B_FID_STEP, "The snapshot report B scored.", unit="steps", range=at_least(0))
    compare_steps: tuple[int, ...] | None = setting(
        (REPORT_B_GAN_STEPS,), "Snapshots scored beside it, the same way (report B compared its 46,000-step "
                               "snapshot with the 50,000-step one).", range=at_least(0), none_means="none")


def require_inception(if_no_weights: str) -> None:
    """The Inception weights, downloaded into the torch hub cache where the network allows; without
    them the stage is unavailable (reported, tried again next run) or fails, as the profile says."""
    from cifar_core.fid.inception import resolve_weights

    try:
        resolve_weights()
    except CifarError as exc:
        if if_no_weights == "skip":
            raise StageUnavailable(str(exc)) from None
        raise


# --- fid: our protocol -------------------------------------------------------------------------------
def fid_dir(ctx: Context) -> Path:
    from cifar_core.fid.scoring import default_name

    # Where `cifar fid --select-best RESULTS/gan/<run>` writes: one directory, whichever way it was started.
    s = ctx.section("fid")
    return ctx.results.fid(default_name(run_dir=ctx.results.gan_run(s.gan_run), n=s.n))


def score_selection(if_no_weights: str, **options: Any) -> dict:
    from cifar_core.fid.scoring import run_fid

    require_inception(if_no_weights)
    return run_fid(**options)


def run_fid_stage(ctx: Context, needs: dict[str, Any]) -> Any:
    s = ctx.section("fid")
    return ctx.submit("fid", score_selection, needs, if_no_weights=s.if_no_weights, out_dir=fid_dir(ctx),
                      root=ctx.results.root, run_dir=ctx.results.gan_run(s.gan_run), data_dir=ctx.data_dir,
                      split="test", n=s.n, cache_dir=ctx.results.fid_cache())


# --- fid-b: report B's protocol ----------------------------------------------------------------------
def snapshot_dir(ctx: Context, step: int) -> Path:
    from cifar_core.fid.scoring import default_name, snapshot_file

    # Where `cifar fid --snapshot RESULTS/gan/<run> --step N` writes.
    s = ctx.section("fid-b").score
    return ctx.results.fid(default_name(checkpoint=snapshot_file(ctx.results.gan_run(s.gan_run), step), n=s.n))


def fid_b_steps(settings: FidBStage) -> tuple[int, ...]:
    """Report B's snapshot first, then those scored beside it."""
    return (settings.step, *(step for step in settings.compare_steps or () if step != settings.step))


def score_snapshots(if_no_weights: str, run_dir: Path, steps: tuple[int, ...], out_dirs: tuple[Path, ...],
                    **options: Any) -> dict:
    """Report B's protocol: each snapshot of `steps` scored on `n` samples against the test split,
    the later ones first, so that report B's snapshot's summary says, when it is written, what it was
    set beside. Returns that summary."""
    from cifar_core.fid.scoring import run_fid, snapshot_path

    checkpoints = [snapshot_path(run_dir, step) for step in steps]  # every snapshot there, before any work
    require_inception(if_no_weights)
    beside = [(step, run_fid(out_dir, checkpoint=checkpoint, **options))
              for step, checkpoint, out_dir in zip(steps[1:], checkpoints[1:], out_dirs[1:], strict=True)]
    return run_fid(out_dirs[0], checkpoint=checkpoints[0], compared=[
        ComparedScore(step=step, fid=summary["fid"], summary=str(FidSummary.file_in(out_dir)))
        for (step, summary), out_dir in zip(beside, out_dirs[1:], strict=True)], **options)


def check_fid_b(ctx: Context) -> None:
    """Before anything runs: the snapshots report B's protocol scores are ones the GAN stage keeps (its
    checkpoint grid, up to its last step), not a failure after days of training."""
    s, gan = ctx.section("fid-b"), ctx.section("gan")
    gan_run, gan = gan.run, gan.training
    if s.score.gan_run != gan_run or "gan" not in ctx.running:
        return  # snapshots already made (or another run's): named before any work if one is missing
    keys = ["fid-b.step", *(f"fid-b.compare_steps[{i}]" for i in range(len(s.compare_steps or ())))]
    for key, step in zip(keys, (s.step, *(s.compare_steps or ())), strict=True):
        if step > gan.steps or (step % gan.checkpoint_every and step != gan.steps):
            raise ConfigError(f"{key} = {step}: run {gan_run} keeps snapshots at multiples of gan.checkpoint_every "
                              f"({gan.checkpoint_every:,}) and at its last step, gan.steps ({gan.steps:,}): choose one "
                              "of those, or change gan's settings")


def fid_b_summary(ctx: Context) -> Path:
    return FidSummary.file_in(snapshot_dir(ctx, ctx.section("fid-b").step))


def run_fid_b_stage(ctx: Context, needs: dict[str, Any]) -> Any:
    s = ctx.section("fid-b")
    steps = fid_b_steps(s)
    return ctx.submit("fid-b", score_snapshots, needs, if_no_weights=s.score.if_no_weights,
                      run_dir=ctx.results.gan_run(s.score.gan_run), steps=steps,
                      out_dirs=tuple(snapshot_dir(ctx, step) for step in steps), root=ctx.results.root,
                      data_dir=ctx.data_dir, split="test", n=s.score.n, cache_dir=ctx.results.fid_cache())


register_stage(Stage(
    "fid", FidStage, Resources(2, 0.5), lambda ctx: FidSummary.file_in(fid_dir(ctx)), run_fid_stage, needs=("gan",),
    help="our FID protocol: every snapshot ranked on the training split, the chosen one scored on the test split",
    smoke={"gan_run": "smoke", "n": 100, "if_no_weights": "skip"},
))
register_stage(Stage(
    "fid-b", FidBStage, Resources(2, 0.5), fid_b_summary, run_fid_b_stage, needs=("gan",), check=check_fid_b,
    help="report B's FID protocol: its step-46,000 snapshot beside the 50,000-step one, 10,000 images",
    smoke={"gan_run": "smoke", "step": 100, "compare_steps": [150], "n": 100, "if_no_weights": "skip"},
))
