"""`cifar tune`, `cifar retrain` and `cifar pipeline`: parse options, call cifar_core, print where."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cifar_core.pipeline import stage_names
from cifar_core.protocols import RECIPES
from cifar_core.retrain import RecipeSettings, RetrainPlan
from cifar_core.tune.settings import TuneSettings
from jobs.options import (
    allow_synthetic_option,
    data_dir_option,
    device_option,
    json_option,
    results_dir_option,
    setting_options,
)
from jobs.work_options import explain_pending, pending_timeout_option, stage_work, task_options

_T = TuneSettings(experiment="defaults")  # --help shows the dataclass's defaults (report A's protocol)
verbose_option = click.option(
    "--verbose", is_flag=True,
    help="Print Ray Tune's own tables of the trials as well (by default a live view shows each trial's epoch, "
         "val_acc and time left: redrawn in place on a terminal, a line at most every 30 s in a log).")


@click.command("tune")
@setting_options(_T, skip=("device",))
@click.option("--smoke", is_flag=True, help="Shrink to 4 trials of 2 epochs, to check a setup in minutes.")
@data_dir_option
@results_dir_option
@device_option
@pending_timeout_option
@allow_synthetic_option
@verbose_option
@json_option
def tune_cmd(smoke, data_dir, results_dir, pending_timeout, allow_synthetic, verbose, as_json, **options):
    """Model selection with Ray Tune and ASHA (report A: 60 trials, 16 at a time, 30 epochs).

    Running the same command again resumes an interrupted experiment; a finished one is only
    re-summarised. Ray runs locally unless RAY_ADDRESS points at a cluster. SIGTERM or Ctrl-C save
    the search's state and exit 143 or 130; the same command continues it. Its trials are set
    beside report A's, so it runs only on the official CIFAR-100 (--allow-synthetic runs it anyway,
    labelled SYNTHETIC).
    """
    from cifar_core import live
    from cifar_core.tune.search import TuneSettings, experiment_dir, run_tune, smoke_settings

    settings = TuneSettings(**{name: value for name, value in options.items() if value is not None})
    if smoke:
        settings = smoke_settings(settings)
    live.set_verbose(verbose)
    summary = run_tune(settings, data_dir, results_dir, pending_timeout=pending_timeout, explain=explain_pending,
                       allow_synthetic=allow_synthetic)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    _print_tune(summary, experiment_dir(results_dir, settings.experiment))


def _print_tune(summary: dict, exp_dir: Path) -> None:
    counts = ", ".join(f"{n} {status}" for status, n in summary["status_counts"].items())
    click.echo(f"{summary['trials']} trials ({counts}); ASHA stopped {summary['stopped_early']} early; "
               f"{summary['epochs_run']} of {summary['epochs_without_early_stopping']} epochs run")
    best = summary["best"]
    if best is not None:
        click.echo(f"best: {best['params']['model.name']} / {best['params']['optim.name']} "
                   f"val acc {best['val_acc']:.4f} at epoch {best['epoch']} ({best['parameters']:,} parameters)")
    click.echo(f"results: {exp_dir} (trials.csv, top_k.json, curves.png, summary.json)")


_SEARCH_RETRAIN, _RECIPE = RetrainPlan(), RecipeSettings()  # --help shows their defaults (report A's, the recipe's)


@click.command("retrain")
@click.option("--from-tune", "experiment", help="Experiment name of a finished `cifar tune`: retrain its best configs.")
@click.option("--recipe", type=click.Choice(list(RECIPES)),
              help="Retrain a report's own models, without a search: report-a (CNN6, CNN7, CNN2 with report A's "
                   "SGD settings and activations, 100 epochs) or report-b (resdw, Adam, flips and crops, "
                   "10,000 steps, seeds 0, 1, 2). Where each value comes from: docs/provenance.md.")
@setting_options(_SEARCH_RETRAIN, skip=("experiment", "epochs"))
@setting_options(_RECIPE)
@data_dir_option
@results_dir_option
@device_option
@task_options
@allow_synthetic_option
@json_option
def retrain_cmd(experiment, recipe, data_dir, results_dir, device, cpus, gpus, ray_flag, pending_timeout,
                allow_synthetic, as_json, **options):
    """Retrain on all 50,000 training images, then score the test set: the best configs of a search
    (--from-tune: --top-k, --select, --epochs, 100 by default) or a report's own models without one
    (--recipe: --models, --seeds, --epochs or --steps, --augment, --amp, --eval-every; `--augment
    none` is the ablation). Every option is the setting of the same name in the pipeline's retrain
    and recipe sections.

    With Ray (RAY_ADDRESS, or --ray for a local one) the runs are Ray tasks at once, each with
    --cpus and --gpus, resumed on another node if theirs dies; otherwise one after another here.
    Resumable: running it again continues unfinished runs and re-scores finished ones.
    """
    from cifar_core.data import data_digest
    from cifar_core.data.identity import require_official
    from cifar_core.fields import from_mapping, leaves
    from cifar_core.retrain import RecipePlan, run_plan

    if (experiment is None) == (recipe is None):
        raise click.UsageError("give exactly one of --from-tune or --recipe")
    given = {name: value for name, value in options.items() if value is not None}
    others = {leaf.name for leaf in leaves(RecipeSettings if experiment else RetrainPlan)} - {"experiment", "epochs"}
    wrong = sorted(given.keys() & others)
    if wrong:
        mode, other = ("--from-tune", "--recipe") if experiment else ("--recipe", "--from-tune")
        raise click.UsageError(f"--{wrong[0].replace('_', '-')} applies to {other}, not {mode}")
    if experiment is not None:
        plan = from_mapping(RetrainPlan, {"experiment": experiment, **given}, "retrain.")
        stage = "retrain"
    else:
        plan = RecipePlan(recipe=recipe, **given)
        stage = "recipe-b" if recipe == "report-b" else "ablation" if given.get("augment") == "none" else "recipe-a"
    if not allow_synthetic:  # the runs are tabled beside the report's numbers
        require_official(data_digest(data_dir), data_dir, f"`cifar retrain {'--recipe' if recipe else '--from-tune'}`")
    plan.check(results_dir)
    with stage_work(stage, ray_flag, cpus, gpus, pending_timeout) as (work, resources):
        summary = run_plan(plan, data_dir, results_dir, device, work, resources, name=stage)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    if experiment is not None:
        for m in summary["models"]:
            click.echo(f"rank {m['rank']}: {m['model']:<10} test top-1 {m['test_top1'] * 100:6.2f}%  "
                       f"top-5 {m['test_top5'] * 100:6.2f}%  ({m['parameters']:,} parameters, {m['epochs']} epochs)")
    else:
        for m in summary["by_model"]:
            spread = f" ± {m['test_top1_std'] * 100:.2f}" if m["test_top1_std"] is not None else ""
            click.echo(f"{m['label']:<6} test top-1 {m['test_top1_mean'] * 100:6.2f}%{spread} over seeds "
                       f"{', '.join(map(str, m['seeds']))}  ({m['parameters']:,} parameters)")
    if any(m["synthetic_data"] for m in summary["models"]):
        click.echo("note: trained on the SYNTHETIC stand-in dataset, not real CIFAR-100")
    click.echo(f"results: {plan.out_dir(results_dir)} (summary.json, table.md, {', '.join(sorted(summary['files']))})")


@click.command("pipeline")
@click.option("--profile", type=click.Choice(["smoke", "full"]), default="smoke", show_default=True,
              help="smoke: minutes on a laptop CPU (synthetic data if none); full: both reports' protocols: report "
                   "A's search, retrain, final models and augmentation ablation; report B's classifier (3 seeds), "
                   "DCGAN (46,000 steps) and FID (its protocol and ours).")
@click.option("--stage", "only", multiple=True, type=click.Choice(stage_names()),
              help="Run only this stage (repeatable; the stages it needs must have run), then the report; "
                   "`report` renders the report alone.  [default: every stage]")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Change one value of the profile (repeatable), e.g. tune.num_samples=20, retrain.top_k=3, "
                   "resources.retrain.gpus=1; unknown keys are refused.")
@click.option("--ray/--no-ray", "ray_flag", default=True, show_default=True,
              help="Run the stages as Ray tasks (the cluster in RAY_ADDRESS, else a local Ray), or one after "
                   "another in this process (the search still uses a local Ray for its trials).")
@data_dir_option
@results_dir_option
@device_option
@pending_timeout_option
@allow_synthetic_option
@verbose_option
@json_option
def pipeline_cmd(profile, only, overrides, ray_flag, data_dir, results_dir, device, pending_timeout, allow_synthetic,
                 verbose, as_json):
    """Every stage (data; then tune, the recipes, the ablation and gan side by side; retrain after
    tune, fid and fid-b after gan), then the HTML report.

    Each stage runs as Ray tasks with the CPUs and GPUs of resources.<stage>; Ray starts a stage when
    the stages it needs have finished and moves work off a lost node. A stage already done with the
    same config and data is skipped, so a killed pipeline, run again, continues where it stopped.
    The smoke profile makes a synthetic dataset when none is there; the full profile runs only on the
    official CIFAR-100 (--allow-synthetic runs it anyway, labelled so; no --set does).

    On a terminal one live view shows each stage (and the search's trials) with its progress and
    time left; in a log, a line at most every 30 s. Where the study stands also goes to
    RESULTS/pipeline/PROFILE/standing.json and, in a RayJob's Ray cluster, onto the RayJob, for
    `cifar status`.
    """
    from cifar_core import live
    from cifar_core.execution.runners import machine_names
    from cifar_core.pipeline import run_pipeline
    from cifar_core.summaries import DataSummary
    from jobs.cluster import publish_standing

    live.set_verbose(verbose)
    summary = run_pipeline(profile, data_dir, results_dir, device, only=only or None, overrides=overrides,
                           with_ray=ray_flag, allow_synthetic=allow_synthetic, pending_timeout=pending_timeout,
                           explain=explain_pending, publish=publish_standing)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    click.echo(f"{'stage':<9} {'status':<11} {'work':>7}  result")
    everywhere = [place for stage in summary["stages"] for place in stage.get("ran_on") or []]
    for stage in summary["stages"]:
        took = f"{stage['work_s']:.0f} s" if stage.get("work_s") is not None else "-"
        hosts = machine_names(stage.get("ran_on"), among=everywhere)
        where = f" on {', '.join(hosts)}" if hosts else ""
        click.echo(f"{stage['stage']:<9} {stage['status']:<11} {took:>7}  {stage.get('reason') or stage.get('summary')}{where}")
    data = next((s for s in summary["stages"] if s["stage"] == "data" and s.get("summary")), None)
    if data is not None and DataSummary.read(data["summary"]).synthetic:
        click.echo("note: the data is the SYNTHETIC stand-in, not real CIFAR-100: its numbers do not compare "
                   "with the reports'")
    click.echo(f"results: {summary['results_dir']}")
    click.echo(f"report:  {summary['report']}")
