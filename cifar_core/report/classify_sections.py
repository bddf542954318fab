"""Report sections for the classifiers: the Tune search, the full-data retrain, the recipes (the
reports' own models), the augmentation ablation, plain training runs."""

from __future__ import annotations

from typing import Any

from cifar_core.protocols import (
    ANCHORS_BY_KEY,
    PUBLISHED,
    RECIPES,
    REPORT_A_MODELS,
    REPORT_A_SEARCH,
    REPORT_B_FINAL_TRAIN_LOSS,
    REPORT_B_RESDW_PARAMETERS,
    REPORT_B_STEPS,
    REPORT_B_TEST_PCT,
    REPORT_B_TEST_SPREAD,
    REPORT_B_TRAIN_PCT,
    REPORT_B_TRAIN_SPREAD,
    budget_text,
    data_text,
    departures,
    mean_std,
    settings_of,
)
from cifar_core.report.document import (
    Cell,
    Facts,
    Figure,
    Heading,
    Section,
    Table,
    Text,
    count,
    decimal,
    duration,
    percent,
    percent_points,
    scientific,
    text,
    yes_no,
)
from cifar_core.report.points import departed_facts, is_synthetic, marked, protocol_name, recorded_departures
from cifar_core.summaries import (
    Concurrency,
    PlanRow,
    PlanSummary,
    RecipeSummary,
    RetrainRow,
    RetrainSummary,
    Rung,
    SearchSummary,
)

SYNTHETIC_NOTE = "Trained on the synthetic stand-in: these accuracies are not CIFAR-100 results."
SYNTHETIC_SEARCH_NOTE = ("Searched on the synthetic stand-in: these accuracies, losses and rankings are not CIFAR-100 "
                         "results, and not comparable with report A's.")


def tune_section(entries: list[dict[str, Any]], figures: dict[str, str]) -> Section:
    section = Section("tune", "Model selection: Ray Tune with ASHA (report A, section III)")
    for entry in entries:
        name, summary = entry["name"], entry["summary"]
        synthetic = bool(entry.get("synthetic_data"))
        section.blocks.append(Heading(f"Experiment {name}"))
        if synthetic:
            section.blocks.append(Text(SYNTHETIC_SEARCH_NOTE, "warning"))
        section.blocks.append(tune_facts(name, summary, search_departures(entry)))
        if entry["trials"]:
            section.blocks.append(trials_table(name, entry["trials"], synthetic))
        if summary.rungs:
            section.blocks.append(rungs_table(name, summary.rungs, synthetic))
        if f"tune/{name}/rungs" in figures:
            section.blocks.append(Figure(f"tune/{name}/rungs", figures[f"tune/{name}/rungs"], marked(
                "Trials per ASHA rung: how many trials trained that many epochs.", synthetic)))
        if entry["figures"]["curves"]:
            section.blocks.append(Figure(f"tune/{name}/curves", entry["figures"]["curves"], marked(
                "Training (solid) and validation (dashed) loss of the best three trials, as report A's figure 1 "
                "shows its own (on CIFAR-100).", synthetic)))
    return section


def search_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """A search's settings by the keys of report A's search protocol, from its summary and
    experiment.json (bf16 only where a trial ran on a GPU), for `cifar_core.protocols.departures`."""
    settings = entry["summary"].settings or {}
    experiment = entry.get("experiment")  # its experiment.json (a SearchRecord), when there is one
    base = settings_of(experiment.base_config if experiment else {})
    keys = [k for s in REPORT_A_SEARCH.settings for k in s.keys if k not in ("top_k", "select")]  # the retrain's
    actual = {k: settings[k] if k in settings else base[k] for k in keys if k in settings or k in base}
    if actual.get("batch_size") is None and "run.batch_size" in base:
        actual["batch_size"] = base["run.batch_size"]
    if actual.get("run.amp"):
        on_gpu = trials_on_gpu(entry)
        actual["run.amp"] = on_gpu if on_gpu is not None else "yes, where its trials had a GPU (not recorded)"
    actual["data"] = data_text(experiment.data_digest if experiment else None)
    return actual


def trials_on_gpu(entry: dict[str, Any]) -> bool | None:
    """Whether a search's trials ran on GPUs: from where they ran, or an explicit GPU share; None when
    neither says (the share then came from the cluster's GPUs when the search started)."""
    devices = [p.device for p in entry["summary"].ran_on or [] if p.device]
    if devices:
        return any(d.startswith("cuda") for d in devices)
    settings = entry["summary"].settings or {}
    if settings.get("device") == "cpu":
        return False
    return None if settings.get("gpus_per_trial") is None else settings["gpus_per_trial"] > 0


def search_departures(entry: dict[str, Any]) -> list[str]:
    """How a search departed from report A's (the tune package records no comparison of its own)."""
    return [d.text for d in departures(search_settings(entry), REPORT_A_SEARCH)]


def tune_facts(name: str, summary: SearchSummary, departed: list[str]) -> Facts:
    settings, space = summary.settings or {}, summary.space
    statuses = ", ".join(f"{n} {status.lower()}" for status, n in (summary.status_counts or {}).items())
    searched = (space.name, space.architectures, space.optimizers) if space else (None, None, None)
    items = [
        ("Search space", text(f"{searched[0]}: {', '.join(searched[1] or [])} x {', '.join(searched[2] or [])}")),
        ("Trials", Cell(f"{summary.trials} ({statuses})", summary.trials, numeric=True)),
        ("ASHA (settings)", text(f"grace period {settings.get('grace_period')} epoch(s), keeps 1/"
                                 f"{settings.get('reduction_factor')} per rung, up to {settings.get('max_epochs')} "
                                 f"epochs, at most {settings.get('max_concurrent')} trials at a time")),
        ("Trials at once (measured)", text(concurrency_text(summary.concurrency))),
        ("Stopped early by ASHA", count(summary.stopped_early)),
        ("Epochs trained", Cell(f"{summary.epochs_run} of {summary.epochs_without_early_stopping} "
                                "without early stopping", summary.epochs_run, numeric=True)),
        ("Search complete", yes_no(summary.complete)),
        ("Wall time", duration(summary.wall_time_s)),
        ("Departures from report A's search", text(departed_facts(departed))),
    ]
    best = summary.best
    if best:
        items.append(("Best trial", text(f"{best.trial_id}: {best.params.get('model.name')} / "
                                         f"{best.params.get('optim.name')}, epoch {best.epoch}, "
                                         f"{count(best.parameters).text} parameters")))
        items.append(("Best validation accuracy (%)", percent(best.val_acc)))
    return Facts(f"tune/{name}/facts", items)


def concurrency_text(measured: Concurrency | None) -> str:
    if measured is None:
        return "not measured (no trial reported an epoch's timing)"
    mean = f", {measured.mean:g} on average while any ran" if measured.mean is not None else ""
    return f"at most {measured.max} together{mean}, from the trials' start and end times"


def trials_table(name: str, rows: list[dict[str, str]], synthetic: bool) -> Table:
    columns = ["Rank", "Trial", "Model", "Optimizer", "Learning rate", "Epochs", "Stopped early",
               "Best val acc (%)", "Final train loss", "Parameters", "Status"]
    body = [[text(r.get("rank")), text(r["trial_id"]), text(r.get("model.name")), text(r.get("optim.name")),
             scientific(r.get("optim.lr")), count(r.get("epochs")), yes_no(r.get("stopped_early")),
             percent(r.get("best_val_acc")), decimal(r.get("final_train_loss")), count(r.get("parameters")),
             text(r.get("status") + (f": {r['error']}" if r.get("error") else ""))] for r in rows]
    return Table(f"tune/{name}/trials", columns, body,
                 marked("Every trial, best validation accuracy first (trials.csv).", synthetic))


def rungs_table(name: str, rungs: list[Rung], synthetic: bool) -> Table:
    body = [[count(r.epoch), count(r.trials_reached), count(r.stopped_here),
             percent((r.trials_reached - r.stopped_here) / r.trials_reached) if i < len(rungs) - 1
             and r.trials_reached else text(None)] for i, r in enumerate(rungs)]
    return Table(f"tune/{name}/rungs", ["Epoch (rung)", "Trials reaching it", "Stopped there", "Kept (%)"], body,
                 marked("ASHA's rungs: the share of trials it let go on at each (report A: the top 50%); the last "
                        "row is the epoch limit.", synthetic))


def retrain_section(entries: list[dict[str, Any]]) -> Section:
    section = Section("retrain", "Full-data retraining of the best configs (report A, sections V-VII)")
    for entry in entries:
        name, summary = entry["name"], entry["summary"]
        selection = SELECTION_TEXT[summary.select]
        budget = budget_text({"epochs": summary.epochs}) if summary.epochs else "?"
        section.blocks.append(Heading(f"Experiment {name}: top {summary.top_k} for {budget}"))
        section.blocks.append(Text(f"Retrained: {selection}."))
        _common_blocks(section, entry, "Training loss on all training images, as report A's figure 3 shows its own.")
    return section


SELECTION_TEXT = {
    "architectures": "the best trial of each of the best architectures, our reading of report A's 'top 3 models' "
                     "(three architectures) (`--select architectures`)",
    "trials": "the best trials whatever their architecture, so an architecture may appear more than once "
              "(`--select trials`)",
}


def recipe_section(entries: list[dict[str, Any]]) -> Section:
    """The recipes' own runs (report A's final models, report B's classifier), without a search."""
    section = Section("recipes", "The reports' own models, without a search (recipes)")
    section.blocks.append(Text("Each recipe trains a report's models with the report's own settings; every value the "
                               "reports do not give is this project's choice, listed with its reason in the "
                               "provenance section below (and docs/provenance.md). `cifar retrain --recipe NAME`."))
    for entry in entries:
        summary = entry["summary"]
        recipe = RECIPES.get(summary.recipe)
        title = recipe.protocol.title if recipe is not None else summary.recipe
        section.blocks += [Heading(f"{title}: recipe/{entry['name']}"), Text(recipe_facts_text(summary))]
        caption = ("Test accuracy over the optimisation steps, each seed, with report B's 56.9 ± 4.6% at 10,000 "
                   "steps (as report B's figure 2 shows its own).")
        loss = ("Training loss on all training images, as report A's figure 3 shows its own."
                if summary.recipe == "report-a" else "Training loss of each seed on all training images.")
        _common_blocks(section, entry, loss, caption)
    return section


def precision_text(summary: PlanSummary, models: list[PlanRow] | None = None) -> str:
    """How a retrain's runs (or `models` of them) computed: each run's own record, else what the
    retrain asked for."""
    found = sorted({m.precision for m in (summary.models if models is None else models) if m.precision})
    if found:
        return " and ".join(found)
    return "bf16 autocast on GPUs (asked)" if isinstance(summary, RecipeSummary) and summary.amp else "float32"


def recipe_facts_text(summary: RecipeSummary) -> str:
    budget = budget_text(summary.budget)
    precision = precision_text(summary)
    augment = "the recipe's augmentation" if summary.augment is None else f"augmentation `{summary.augment}`"
    models = ", ".join(f"{m.label} ({m.model})" for m in summary.by_model or [])
    return (f"Models {models}; seeds {', '.join(map(str, summary.seeds or []))}; "
            f"{budget} on all training images; {augment}; {precision}.")


def ablation_section(recipes: list[dict[str, Any]]) -> Section | None:
    """Each recipe run with another augmentation, beside the same recipe and budget with its own."""
    arms = [e for e in recipes if e["summary"].augment is not None]
    if not arms:
        return None
    section = Section("ablation", "Augmentation ablation (report A, section II.B)")
    section.blocks.append(Text("Report A (section II.B): the transformations 'allowed me to achieve a 10 percent "
                               "improvement compared to doing it without', and without them it 'got 50 % percent "
                               "accuracy for all three models'. Here the same models, budget, seeds and precision, "
                               "with the recipe's augmentation and without."))
    for arm in arms:
        base = matching_recipe(arm["summary"], recipes)
        section.blocks.append(ablation_table(arm, base))
        if base is None:
            section.blocks.append(Text(f"No recipe/{arm['summary'].recipe} result with the same budget, seeds "
                                       "and precision: run it to compare.", "note"))
        _common_blocks(section, arm, f"Training loss without augmentation (recipe/{arm['name']}).")
    return section


def matching_recipe(arm: RecipeSummary, recipes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The recipe result `arm` differs from only by its augmentation."""
    for entry in recipes:
        s = entry["summary"]
        if s.augment is None and same_runs(s, arm):
            return entry
    return None


def same_runs(a: RecipeSummary, b: RecipeSummary) -> bool:
    """The same recipe, budget, precision and seeds (the augmentation may differ)."""
    return (a.recipe, a.budget, a.amp, a.seeds) == (b.recipe, b.budget, b.amp, b.seeds)


def ablation_table(arm: dict[str, Any], base: dict[str, Any] | None) -> Table:
    with_aug = {m.model: m for m in base["summary"].by_model or []} if base else {}
    rows, gains = [], []
    for m in arm["summary"].by_model or []:
        ours = with_aug[m.model].test_top1_mean if m.model in with_aug else None
        without = m.test_top1_mean
        gain = None if ours is None or without is None else ours - without
        if gain is not None:
            gains.append(gain)
        rows.append([text(f"{m.label} ({m.model})"), text(", ".join(map(str, m.seeds))), percent(ours),
                     percent(without), percent(gain)])
    mean_gain, _ = mean_std(gains)
    rows.append([text("mean of the models"), text(None), text(None), text(None), percent(mean_gain)])
    gain_anchor, none_anchor = ANCHORS_BY_KEY["a.augment.gain"], ANCHORS_BY_KEY["a.augment.none"]
    rows.append([text("report A (section II.B)"), text(None), text(None), Cell(none_anchor.text, none_anchor.value, True),
                 Cell(gain_anchor.text, gain_anchor.value, True)])
    arm_text = arm["summary"].augment
    columns = ["Model", "Seeds", "With augmentation (%)", f"Augmentation {arm_text} (%)", "Gain (points)"]
    synthetic = is_synthetic(arm["summary"]) or (base is not None and is_synthetic(base["summary"]))
    return Table(f"ablation/{arm['name']}", columns, rows, marked(
        f"Test top-1, mean over seeds: recipe/{base['name'] if base else '—'} against recipe/{arm['name']} "
        f"({precision_text(arm['summary'])}).", synthetic))


def _common_blocks(section: Section, entry: dict[str, Any], loss_caption: str, curve_caption: str = "") -> None:
    name, summary = entry["name"], entry["summary"]
    if not summary.complete:
        section.blocks.append(Text("Retraining has not finished: the models below are those done so far.", "note"))
    synthetic = is_synthetic(summary)
    if synthetic:
        section.blocks.append(Text(SYNTHETIC_NOTE, "warning"))
    section.blocks.append(plan_table(name, summary))
    key = "retrain" if isinstance(summary, RetrainSummary) else "recipe"
    if entry["figures"].get("loss"):
        section.blocks.append(Figure(f"{key}/{name}/loss", entry["figures"]["loss"], marked(loss_caption, synthetic)))
    if entry["figures"].get("test_accuracy"):
        section.blocks.append(Figure(f"{key}/{name}/test_accuracy", entry["figures"]["test_accuracy"],
                                     marked(curve_caption or "Test accuracy over the optimisation steps.", synthetic)))


def departures_line(summary: PlanSummary) -> str:
    """A retrain's or recipe's departures from the protocol it is set beside, as its runs recorded them."""
    return f"Departures from {protocol_name(summary)}: {departed_facts(recorded_departures(summary))}."


def plan_table(name: str, summary: PlanSummary) -> Table:
    """The table of a retraining (the summary of retrain/ or recipe/) against the reports: the one
    table, here and in the stage's own table.md."""
    if isinstance(summary, RetrainSummary):
        return _search_table(name, summary)
    return _recipe_table(name, summary)


NOT_STATED = "not stated"  # the precision beside a report's number: neither report mentions it


def run_precision(m: PlanRow) -> str:
    """A retrained run's precision and device ("float32 on cpu")."""
    return f"{m.precision} on {m.device}"


def _search_table(name: str, summary: RetrainSummary) -> Table:
    columns = ["Model", "Source", "Optimizer", "Parameters", "Epochs", "Precision", "Test top-1 (%)", "Test top-5 (%)",
               "Search val acc (%)"]
    rows = [[text(f"{m.model} (rank {m.rank})"), text("this study"), text(optimizer_text(m)), count(m.parameters),
             count(m.epochs), text(run_precision(m)), percent(m.test_top1), percent(m.test_top5),
             percent(m.tune_val_acc)] for m in summary.models]
    rows += [[text(m.label), text("report A"), text(f"sgd (lr={m.lr:g}, momentum={m.momentum:g}, dampening="
                                                    f"{m.dampening:g})"), count(m.parameters), count(100),
              text(NOT_STATED), percent_points(m.test_top1_pct), text(None), text(None)] for m in REPORT_A_MODELS]
    rows += [[text(title), text("published, cited by report A"), *[text(None)] * 4, percent_points(pct, 2),
              text(None), text(None)] for title, pct in PUBLISHED]
    return Table(f"retrain/{name}/models", columns, rows, marked(
        f"retrain/{name}: test accuracy after retraining on all training images, against report A and the results it "
        "cites; each retrain keeps its trial's precision (the search's bf16 autocast on GPUs). "
        + departures_line(summary), is_synthetic(summary)))


def _recipe_table(name: str, summary: RecipeSummary) -> Table:
    columns = ["Model", "Source", "Seeds", "Parameters", "Budget", "Precision", "Test top-1 (%)", "Test SD (points)",
               "Train acc (%)", "Train SD (points)", "Final train loss"]
    budget = budget_text(summary.budget)
    rows = [[text(f"{m.label} ({m.model})"), text("this study"), text(", ".join(map(str, m.seeds))),
             count(m.parameters), text(budget),
             text(precision_text(summary, [r for r in summary.models if r.model == m.model])),
             percent(m.test_top1_mean), percent(m.test_top1_std), percent(m.train_acc_mean), percent(m.train_acc_std),
             decimal(m.final_train_loss_mean)] for m in summary.by_model or []]
    recipe, augment = summary.recipe, summary.augment
    if recipe == "report-a" and augment is None:
        rows += [[text(m.label), text("report A"), text(None), count(m.parameters), text("100 epochs"),
                  text(NOT_STATED), percent_points(m.test_top1_pct), *[text(None)] * 4] for m in REPORT_A_MODELS]
        rows += [[text(title), text("published, cited by report A"), *[text(None)] * 4, percent_points(pct, 2),
                  *[text(None)] * 4] for title, pct in PUBLISHED]
    elif recipe == "report-a":
        anchor = ANCHORS_BY_KEY["a.augment.none"]
        rows.append([text("all three, without augmentation"), text(anchor.source.label), text(None),
                     text(None), text(None), text(NOT_STATED), Cell(anchor.text, anchor.value, True)] + [text(None)] * 4)
    elif recipe == "report-b":
        rows.append([text("resdw"), text("report B §2"), text(None), count(REPORT_B_RESDW_PARAMETERS),
                     text(f"{REPORT_B_STEPS:,} steps"), text(NOT_STATED), percent_points(REPORT_B_TEST_PCT),
                     percent_points(REPORT_B_TEST_SPREAD), percent_points(REPORT_B_TRAIN_PCT),
                     percent_points(REPORT_B_TRAIN_SPREAD), decimal(REPORT_B_FINAL_TRAIN_LOSS, 3)])
    caption = (f"recipe/{name}: test accuracy on the whole test split after the last step, mean and standard "
               "deviation over seeds; training accuracy and loss of the last epoch's batches")
    if recipe == "report-b":
        caption += " (report B's ± is not said to be over seeds)"
    return Table(f"recipe/{name}/models", columns, rows,
                 marked(f"{caption}. {departures_line(summary)}", is_synthetic(summary)))


def optimizer_text(m: RetrainRow) -> str:
    """sgd (lr=0.0043, momentum=0.0096, ...) from a retrained trial's searched params."""
    params = m.params or {}
    shown = ", ".join(f"{k.removeprefix('optim.')}={v:.3g}" for k, v in sorted(params.items())
                      if k.startswith("optim.") and k != "optim.name" and isinstance(v, float))
    name = params.get("optim.name", m.optimizer)
    return f"{name} ({shown})" if shown else str(name)


def train_section(entries: list[dict[str, Any]]) -> Section:
    section = Section("train", "Training runs (RESULTS/train)")
    synthetic = any(e["summary"].synthetic_data for e in entries)
    if synthetic:
        section.blocks.append(Text(SYNTHETIC_NOTE, "warning"))
    columns = ["Run", "Model", "Optimizer", "Parameters", "Budget", "Steps trained", "Data", "Best val acc (%)",
               "Test top-1 (%)", "Test top-5 (%)", "Train time", "Device"]
    rows = []
    for entry in entries:
        s = entry["summary"]
        data = ("all" if s.full_train else "split") + (", SYNTHETIC" if s.synthetic_data else "")
        rows.append([text(entry["name"]), text(s.model), text(s.optimizer), count(s.parameters),
                     text(budget_text(entry.get("budget"))), count(s.steps), text(data), percent(s.best_val_acc),
                     percent(s.test.top1 if s.test else None), percent(s.test.top5 if s.test else None),
                     duration(s.train_time_s), text(s.device_name or s.device)])
    section.blocks.append(Table("train/runs", columns, rows, marked(
        "Budget: what the run was set to train for (its config.yaml: epochs, or optimisation steps); steps trained: "
        "its optimisation steps so far. Data: all training images, or the training split with a validation part "
        "held out. Test accuracy where the run was evaluated (`cifar evaluate`).", synthetic)))
    return section


def accuracy_section(figures: dict[str, str], synthetic: bool) -> Section:
    figure = Figure("accuracy_vs_parameters", figures["accuracy_vs_parameters"], marked(
        "Every trained model of this study: test accuracy where evaluated, else validation; beside them report A's "
        "three models, report B's resdw (56.9% with 98,068 parameters) and its parameter limit (100,000 assumed: "
        "report B does not state it), all on CIFAR-100.", synthetic))
    blocks = [Text("This study's points come from the synthetic stand-in: they cannot be compared with the "
                   "reports' points beside them.", "warning")] if synthetic else []
    return Section("accuracy", "Accuracy against parameter count", [*blocks, figure])
