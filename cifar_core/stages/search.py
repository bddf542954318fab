"""Stages `tune` and `retrain`: report A's model selection (Ray Tune + ASHA, coordinated from the
driver, cifar_core.tune.search) and the retraining of its best configs on all training images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cifar_core.atomic import read_jsonl
from cifar_core.execution.resources import Resources
from cifar_core.execution.runners import Done, InProcess
from cifar_core.fields import inline, require
from cifar_core.retrain import RetrainPlan
from cifar_core.stages.recipes import plan_stage
from cifar_core.stages.registry import Context, Progress, Stage, register_stage
from cifar_core.summaries import SearchSummary
from cifar_core.tune.settings import TuneSettings


@dataclass(frozen=True)
class TuneStage:
    """The settings of `cifar tune` as this section's own (tune.num_samples), report A's experiment."""

    search: TuneSettings = inline(TuneSettings(experiment="report-a"))


def tune_settings(ctx: Context) -> TuneSettings:
    """The section's search as it runs: `--device` applies unless the section sets its own."""
    search = ctx.section("tune").search
    return dataclasses.replace(search, device=ctx.device) if search.device == "auto" else search


def check_retrain(ctx: Context) -> None:
    """Before anything runs (each setting's own range is checked with the profile): that the search
    this profile runs can list as many configs as the retrain takes (its configs themselves exist
    only once the search ran)."""
    retrain, search = ctx.section("retrain"), ctx.section("tune").search
    if retrain.experiment == search.experiment:
        most = min(search.top_k, search.num_samples)
        require(retrain.top_k <= most, "retrain.top_k", retrain.top_k,
                f"<= what the search lists, min(tune.top_k, tune.num_samples) = {most}")


def check(ctx: Context) -> None:
    """Before anything runs: the search's settings and its space (a file named by tune.space that
    is missing or malformed fails now, not after the other stages' hours of work)."""
    from cifar_core.tune.space import load_space

    settings = tune_settings(ctx)
    settings.validate()
    load_space(settings.space)


def run_tune(ctx: Context, needs: dict[str, Any]) -> Done:
    """The search, in this process: it coordinates its trials (Ray tasks) from here."""
    from cifar_core.tune.search import run_tune as search

    for handle in needs.values():
        ctx.work.get(handle)
    # The profile's data stage already refused data its comparisons cannot use.
    return InProcess().submit(search, Resources(), tune_settings(ctx), ctx.data_dir, ctx.results.root,
                              watch=getattr(ctx.work, "watch", None), allow_synthetic=True)


def progress(ctx: Context) -> Progress:
    s = ctx.section("tune").search
    done = sum(len(read_jsonl(path)) for path in ctx.results.tune_trials(s.experiment).glob("*/metrics.jsonl"))
    return done, s.num_samples * s.max_epochs, "trial epochs (at most)"


register_stage(Stage(
    "tune", TuneStage, Resources(1, 0), lambda ctx: SearchSummary.file_in(ctx.results.tune_experiment(
        ctx.section("tune").search.experiment)), run_tune, needs=("data",), check=check, progress=progress, in_driver=True,
    help="report A's search: Ray Tune + ASHA over 8 CNNs x 4 optimizers, 60 trials",
    smoke={"experiment": "smoke", "num_samples": 4, "max_concurrent": 4, "max_epochs": 2},
))
register_stage(plan_stage(
    "retrain", lambda ctx, name: ctx.section("retrain"), settings=RetrainPlan, resources=Resources(4, 1),
    needs=("tune",), check=check_retrain,
    help="the search's best configs retrained on all 50,000 images, 100 epochs, scored on the test set",
    smoke={"experiment": "smoke", "top_k": 2, "epochs": 2, "select": "trials"}))
