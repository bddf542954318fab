"""Stages `recipe-a`, `ablation` and `recipe-b`: the reports' own models trained with the reports' own
settings and no search (cifar_core.retrain.RecipePlan), each model x seed one unit of work. The
ablation is recipe-a's runs (budget, seeds, precision) with another augmentation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cifar_core.atomic import read_jsonl
from cifar_core.errors import CifarError
from cifar_core.execution.resources import Resources
from cifar_core.fields import setting
from cifar_core.retrain import Plan, RecipePlan, RecipeSettings, submit_plan
from cifar_core.stages.registry import Context, Progress, Stage, register_stage
from cifar_core.summaries import PlanSummary


@dataclass(frozen=True)
class AblationStage:
    """recipe-a's runs (budget, seeds, precision) with another augmentation: the same models with and
    without augmentation."""

    models: tuple[str, ...] | None = setting(None, "Some of recipe-a's models.", none_means="all of them")
    augment: str = setting("none", "The augmentation preset the ablation trains with.",
                           choices=("none", "flip-crop", "report-a"))


def recipe_plan(ctx: Context, stage: str) -> RecipePlan:
    """The runs of stage recipe-a, ablation or recipe-b."""
    if stage == "ablation":
        base, ablation = ctx.section("recipe-a"), ctx.section("ablation")
        values = {**dataclasses.asdict(base), "models": ablation.models or base.models, "augment": ablation.augment}
        return RecipePlan(recipe="report-a", **values)
    return RecipePlan(recipe="report-a" if stage == "recipe-a" else "report-b", **dataclasses.asdict(ctx.section(stage)))


def plan_stage(name: str, plan_of, *, check=None, **options: Any) -> Stage:
    """A stage whose units are the runs of a plan (a recipe's, or a search's best configs), then the
    CPU unit that tables them. `check` (default: the plan's own) runs before anything."""

    def run(ctx: Context, needs: dict[str, Any]) -> Any:
        return submit_plan(ctx.work, plan_of(ctx, name), ctx.data_dir, ctx.results.root, ctx.device,
                           ctx.resources(name), needs=needs, name=name)

    def progress(ctx: Context) -> Progress | None:
        return plan_progress(ctx, plan_of(ctx, name))

    return Stage(name, summary=lambda ctx: PlanSummary.file_in(plan_of(ctx, name).out_dir(ctx.results.root)), run=run,
                 check=check or (lambda ctx: plan_of(ctx, name).check(ctx.results.root)), progress=progress, **options)


def plan_progress(ctx: Context, plan: Plan) -> Progress | None:
    """Steps (or epochs) its runs have trained, of their budget, read from their metrics."""
    try:
        specs = [plan.spec(ctx.results.root, index, "cpu") for index in range(plan.size)]
    except CifarError:
        return None
    unit = "steps" if specs and specs[0].config.run.steps else "epochs"
    done = total = 0
    for spec in specs:
        rows = read_jsonl(ctx.results.train_run(spec.name) / "metrics.jsonl")
        done += (rows[-1]["step"] if unit == "steps" else rows[-1]["epoch"]) if rows else 0
        total += spec.config.run.steps if unit == "steps" else spec.config.run.epochs
    return done, total, unit


register_stage(plan_stage(
    "recipe-a", recipe_plan, settings=RecipeSettings, resources=Resources(4, 1), needs=("data",),
    help="report A's CNN6, CNN7 and CNN2 with its own SGD settings, 100 epochs, without a search",
    smoke={"steps": 4}))
register_stage(plan_stage(
    "ablation", recipe_plan, settings=AblationStage, resources=Resources(4, 1), needs=("data",), reads=("recipe-a",),
    help="recipe-a's runs without augmentation: report A's 'a 10 percent improvement'"))
register_stage(plan_stage(
    "recipe-b", recipe_plan, settings=RecipeSettings, resources=Resources(2, 0.5), needs=("data",),
    help="report B's resdw, Adam, flips and crops, 10,000 steps, seeds 0, 1, 2",
    smoke={"seeds": [0, 1], "steps": 10, "eval_every": 5}))
