"""Stage `gan`: report B's DCGAN, trained to its step budget with collapse detection and recovery
(cifar_core.gan.train), one unit of work that resumes from its last checkpoint wherever it reruns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_core.atomic import read_jsonl
from cifar_core.execution.resources import Resources
from cifar_core.fields import inline, setting
from cifar_core.gan.config import GanTrainConfig
from cifar_core.names import check_name
from cifar_core.stages.registry import Context, Progress, Stage, register_stage
from cifar_core.summaries import GanSummary


@dataclass
class GanStage:
    """The run's name, and the training settings of `cifar gan train` as this section's own (gan.steps)."""

    run: str = setting("dcgan", "The run's name: RESULTS/gan/<run>.", check=check_name)
    training: GanTrainConfig = inline(GanTrainConfig())


def summary_path(ctx: Context) -> Path:
    return GanSummary.file_in(ctx.results.gan_run(ctx.section("gan").run))


def run(ctx: Context, needs: dict[str, Any]) -> Any:
    from cifar_core.gan.train import train_gan

    settings = ctx.section("gan")
    return ctx.submit("gan", train_gan, needs, cfg=settings.training, data_dir=ctx.data_dir,
                      run_dir=ctx.results.gan_run(settings.run), resume=True, wait_s=ctx.work.lock_wait_s)


def progress(ctx: Context) -> Progress | None:
    settings = ctx.section("gan")
    rows = [r for r in read_jsonl(ctx.results.gan_run(settings.run) / "metrics.jsonl") if "step" in r]
    return (rows[-1]["step"], settings.training.steps, "steps") if rows else None


STAGE = register_stage(Stage(
    "gan", GanStage, Resources(2, 0.5), summary_path, run, needs=("data",), progress=progress,
    help="report B's DCGAN to its step budget, collapse detected and recovered",
    # Report B's DCGAN at full width for a few steps: enough to exercise sampling, snapshots and FID
    # selection, far too few for good images.
    smoke={"run": "smoke", "steps": 150, "batch_size": 64, "log_every": 10, "sample_every": 50,
           "checkpoint_every": 50},
))
