"""Every number both reports publish, beside this study's measurement of it, or the reason there is
none: the stage that would measure it has not run, or ran and was unavailable, failed or blocked
(from the pipeline's records), or the number is one the report only cites; and a short list of
those this study cannot measure, each with why. Each measurement carries its unit, says in its cell
what makes it incomparable with the published number (the synthetic stand-in, other Inception
weights) and beside it every departure from the report's protocol, as its producer computed them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_core.protocols import (
    ANCHORS,
    ANCHORS_BY_KEY,
    OUR_PARAMETERS,
    REPORT_A_MODELS,
    REPORT_B_GAN_STEPS,
    Anchor,
    budget_text,
    mean_std,
    with_unit,
)
from cifar_core.report.classify_sections import SELECTION_TEXT, precision_text, same_runs, search_departures
from cifar_core.report.departures import departures_table
from cifar_core.report.document import MISSING, Cell, Section, Table, Text, as_number, count, decimal, text
from cifar_core.report.points import (
    SYNTHETIC,
    departures_text,
    fid_caveats,
    fid_protocol,
    gan_note,
    pipeline_records,
    protocol_name,
    recipe_caveats,
    recorded_departures,
    scored_split,
    snapshot_comparisons,
    snapshot_step,
)
from cifar_core.summaries import ModelMeans, RecipeSummary, SearchSummary


@dataclass(frozen=True)
class Measured:
    cell: Cell  # ours, its number without the unit: the anchor's is added (`unit` says another)
    how: str  # where it comes from and every departure from the report's protocol
    label: str = ""  # which of several measurements (the FID protocols)
    caveats: tuple[str, ...] = ()  # what makes it incomparable with the published number, shown in its cell
    unit: str | None = None  # "" where the cell writes its own unit (a budget in steps beside epochs)


# The stages that measure each kind of number, and the command that runs each alone.
STAGE_OF = {"a.split": ("tune",), "a.search": ("tune",), "a.augment": ("ablation",), "a.final": ("recipe-a",),
            "a.cnn": ("recipe-a",), "a.compare.gap": ("recipe-a",), "b.resdw": ("recipe-b",),
            "b.compare.gap": ("recipe-b",), "b.fid": ("fid-b", "fid"), "b.gan.compared": ("fid-b",),
            "b.gan.steps": ("fid-b", "fid")}
COMMANDS = {
    "tune": "cifar tune --experiment report-a",
    "recipe-a": "cifar retrain --recipe report-a",
    "ablation": "cifar retrain --recipe report-a --augment none",
    "recipe-b": "cifar retrain --recipe report-b",
    "gan": "cifar gan train --run-name dcgan",
    "fid-b": "cifar fid --snapshot RESULTS/gan/dcgan",
    "fid": "cifar fid --select-best RESULTS/gan/dcgan",
}
CITED = ("a.published", "b.sota")  # numbers a report cites from others: nothing to measure
FID_LABELS = {"report-b": "report B's protocol", "select-best": "our protocol: chosen on the training split",
              "checkpoint": "one snapshot"}


def anchors_section(collected: dict[str, Any]) -> Section:
    rows = []
    for anchor in (a for a in ANCHORS if not a.not_measured):
        measured = measure(anchor, collected)
        if measured:
            rows += [[text(anchor.what + (f" ({m.label})" if m.label else "")), text(anchor.source.label),
                      published(anchor), ours_cell(anchor, m), text(m.how)] for m in measured]
        else:
            rows.append([text(anchor.what), text(anchor.source.label), published(anchor), Cell(MISSING, numeric=True),
                         text(why_absent(anchor, collected))])
    table = Table("anchors", ["Number", "Source", "Published", "This study", "How this study's number was measured"],
                  rows, "Every number of reports A and B (sections as the reports number them), with ours.")
    unmeasured = [[text(a.what), text(a.source.label), published(a), text(a.not_measured)]
                  for a in ANCHORS if a.not_measured]
    intro = Text("Each published number beside this study's, both in their units. Where ours is missing the last "
                 "column says why: a stage that did not run, or ran and could not finish, a number the report only "
                 "cites, or arithmetic with a published number ours cannot be compared with. Ours says in its cell "
                 "what makes it incomparable (SYNTHETIC data, Inception weights that are not pytorch-fid's), and the "
                 "last column names every setting in which its run departed from the report's protocol (budget, "
                 "seeds, precision, data, the FID's snapshot, images, sampling and weights, the GAN run's settings "
                 "and recoveries), as the stage that made it computed them; the table after it gives each result's "
                 "departures with their values. Where each protocol value comes from: the provenance section and "
                 "docs/provenance.md.")
    not_measured = Table("anchors/not_measured", ["Number", "Source", "Published", "Why this study does not measure it"],
                         unmeasured, "What the reports publish that this study does not measure.")
    return Section("anchors", "Both reports, number by number", [intro, table, departures_table(collected),
                                                                  not_measured])


def published(anchor: Anchor) -> Cell:
    return Cell(anchor.text, None if isinstance(anchor.value, str) else anchor.value, True)


def ours_cell(anchor: Anchor, measured: Measured) -> Cell:
    """Ours in the anchor's unit, with what makes it incomparable beside it: "1.00% (SYNTHETIC data)"."""
    cell = measured.cell
    if cell.text == MISSING:
        return cell
    shown = with_unit(cell.text, anchor.unit if measured.unit is None else measured.unit)
    caveats = f" ({'; '.join(measured.caveats)})" if measured.caveats else ""
    return Cell(shown + caveats, cell.value, cell.numeric)


def not_computed(against: str, caveats: list[str]) -> list[Measured]:
    """No arithmetic against a published number ours cannot be compared with: the reason instead."""
    return [Measured(Cell(MISSING, numeric=True), f"not computed: ours ({'; '.join(caveats)}) cannot be set "
                     f"against {against}")]


def measure(anchor: Anchor, collected: dict[str, Any]) -> list[Measured]:
    for prefix, fn in MEASURES:
        if anchor.key.startswith(prefix):
            return fn(anchor, collected)
    return []


def why_absent(anchor: Anchor, collected: dict[str, Any]) -> str:
    if anchor.key.startswith(CITED):
        return "cited by the report from other work: nothing to measure"
    stages = next((s for prefix, s in STAGE_OF.items() if anchor.key.startswith(prefix)), ())
    if not stages:
        return "not measured"
    if anchor.key == "a.augment.gain" and recipe_result(collected, "report-a", "none") is not None:
        return ("the ablation ran, but no recipe-a result with the same budget, seeds and precision to compare "
                f"with (`{COMMANDS['recipe-a']}` with the ablation's settings)")
    reasons = "; ".join(stage_state(stage, collected) for stage in stages)
    if anchor.key == "b.gan.steps" and collected["stages"]["gan"]:
        trained = ", ".join(f"gan/{e['name']} trained {count(e['summary'].steps).text} steps"
                            for e in collected["stages"]["gan"])
        return f"no snapshot scored on the test split ({trained}: training steps, not a scored snapshot's); {reasons}"
    tune = next(iter(collected["stages"]["tune"]), None)
    if anchor.key == "a.search.concurrent" and tune is not None:
        return "the search's trials report no timings (no trial reported an epoch), so none can be counted"
    if anchor.key == "a.search.keep" and tune is not None:
        limit = (tune["summary"].settings or {}).get("max_epochs")
        return f"tune/{tune['name']}: no ASHA rung below its epoch limit ({limit}), so ASHA kept or stopped nothing"
    return reasons


def _made_by(stage: str) -> Callable[[dict[str, Any]], bool]:
    """Whether a FID here was made by stage `stage` (the pipeline's, or its own command)."""
    return lambda c: any(e["summary"].made_by == stage for e in c["stages"]["fid"])


RESULT_OF = {"tune": lambda c: bool(c["stages"]["tune"]), "recipe-a": lambda c: recipe_result(c, "report-a"),
             "ablation": lambda c: recipe_result(c, "report-a", "none"), "recipe-b": lambda c: recipe_result(c, "report-b"),
             "fid-b": _made_by("fid-b"), "fid": _made_by("fid")}


def stage_state(stage: str, collected: dict[str, Any]) -> str:
    if stage in RESULT_OF and RESULT_OF[stage](collected):
        return f"stage {stage} ran here, but its result does not record what measures this"
    for profile, record in pipeline_records(collected, stage):
        if record.status in ("unavailable", "failed", "blocked", "running"):
            return f"pipeline {profile}: stage {stage} {record.status}: {record.reason or 'no reason recorded'}"
    return f"stage {stage} has not run here (`{COMMANDS[stage]}`, or `cifar pipeline`)"



# --- the measurements -----------------------------------------------------------------------------
def recipe_result(collected: dict[str, Any], recipe: str, augment: str | None = None) -> RecipeSummary | None:
    """A recipe's summary: the one with the recipe's own budget when there is one."""
    found = [e["summary"] for e in collected["stages"]["recipe"]
             if e["summary"].recipe == recipe and e["summary"].augment == augment]
    default = recipe if augment is None else f"{recipe}-augment-{augment}"
    return next((s for s in found if s.name == default), found[0] if found else None)


def recipe_note(summary: RecipeSummary) -> str:
    """Which result, its seeds, budget and precision, then every departure its runs recorded."""
    notes = [f"recipe/{summary.name}", f"seeds {', '.join(map(str, summary.seeds or []))}",
             budget_text(summary.budget), precision_text(summary),
             departures_text(recorded_departures(summary), protocol_name(summary))]
    return "; ".join(notes)


def _recipe_measured(cell: Cell, summary: RecipeSummary, how: str = "") -> Measured:
    """A number of a recipe's runs, with its caveats and departures."""
    note = recipe_note(summary)
    return Measured(cell, f"{how}; {note}" if how else note, caveats=tuple(recipe_caveats(summary)))


def _pct(mean: float | None, std: float | None = None) -> Cell:
    if mean is None:
        return Cell(MISSING, numeric=True)
    return Cell(f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else ""), 100 * mean, True)


def _points(value: float) -> Cell:
    return Cell(f"{value:.2f}", value, True)


def _recipe_model(anchor: Anchor, collected) -> list[Measured]:
    summary = recipe_result(collected, "report-a")
    model = anchor.key.split(".")[1]
    entry = next((m for m in _by_model(summary) if m.model == model), None)
    if entry is None:
        return []
    return [_recipe_measured(_pct(entry.test_top1_mean, entry.test_top1_std), summary)]


def _by_model(summary: RecipeSummary | None) -> list[ModelMeans]:
    """A recipe's per-model means ([] without a recipe)."""
    return (summary.by_model or []) if summary is not None else []


def _parameters(anchor: Anchor, collected) -> list[Measured]:
    model = {"a.cnn6": "cnn6", "a.cnn7": "cnn7", "a.cnn2": "cnn2", "b.resdw": "resdw",
             "b.gan.generator": "dcgan_generator", "b.gan.discriminator": "dcgan_discriminator"}
    gan = next(iter(collected["stages"]["gan"]), None)
    counted = gan["summary"].parameters if gan is not None else None
    if anchor.key.startswith("b.gan.") and counted is not None:
        value = {"b.gan.generator": counted.generator, "b.gan.discriminator": counted.discriminator,
                 "b.gan.total": counted.total}[anchor.key]
        config = gan["summary"].config or {}
        return [Measured(count(value), f"GAN run gan/{gan['name']}, widths ngf {config.get('ngf')}, ndf "
                         f"{config.get('ndf')} (report B's sizes at 46)")]
    if anchor.key == "b.gan.total":
        value = OUR_PARAMETERS["dcgan_generator"] + OUR_PARAMETERS["dcgan_discriminator"]
        return [Measured(count(value), "our DCGAN at its default widths (`cifar models`)")]
    name = next(v for k, v in model.items() if anchor.key.startswith(k))
    value = OUR_PARAMETERS[name]
    return [Measured(count(value), f"our {name} (`cifar models`)")]


def _tune(anchor: Anchor, collected) -> list[Measured]:
    entry = next(iter(collected["stages"]["tune"]), None)
    if entry is None:
        return []
    summary, settings = entry["summary"], entry["summary"].settings or {}
    where = f"tune/{entry['name']}; " + departures_text(search_departures(entry), "report A's search")
    caveats = (SYNTHETIC,) if entry.get("synthetic_data") else ()
    if anchor.key.startswith("a.split"):
        experiment = entry.get("experiment")
        fraction = ((experiment.base_config if experiment else {}).get("run") or {}).get("val_fraction")
        images = _train_images(collected)
        if fraction is None or images is None:
            return []
        val = round(images * fraction)
        value = images - val if anchor.key == "a.split.train" else val
        return [Measured(count(value), f"{fraction:g} of {images:,} training images; {where}", caveats=caveats)]
    if anchor.key == "a.search.concurrent":
        found = _concurrency(summary, settings, where)
    elif anchor.key == "a.search.keep":
        found = _kept(summary, settings, where)
    elif anchor.key == "a.search.optimizers":
        return _optimizers(collected, entry, caveats)
    else:
        architectures = summary.space.architectures if summary.space else None
        value = {"a.search.architectures": len(architectures or []), "a.search.trials": summary.trials,
                 "a.search.max_epochs": settings.get("max_epochs")}[anchor.key]
        found = [] if as_number(value) is None else [Measured(Cell(f"{value:g}", value, True), where)]
    return [Measured(m.cell, m.how, caveats=caveats) for m in found]


def _concurrency(summary: SearchSummary, settings: dict[str, Any], where: str) -> list[Measured]:
    """Trials that really ran at once, from their epochs' times (not the setting)."""
    measured = summary.concurrency
    if measured is None:
        return []
    mean = measured.mean
    return [Measured(count(measured.max), "the most trials running together, from their start and end "
                     "times" + (f" (mean {mean:g} while any ran)" if mean is not None else "")
                     + f"; at most {settings.get('max_concurrent')} allowed; {where}")]


def _kept(summary: SearchSummary, settings: dict[str, Any], where: str) -> list[Measured]:
    """The fraction of trials ASHA let go on at its rungs (below the epoch limit), pooled."""
    rungs = [r for r in summary.rungs or [] if r.epoch < settings.get("max_epochs", 0) and r.trials_reached]
    if not rungs:
        return []
    kept = sum(r.trials_reached - r.stopped_here for r in rungs)
    reached = sum(r.trials_reached for r in rungs)
    each = ", ".join(f"epoch {r.epoch}: {r.trials_reached - r.stopped_here} of {r.trials_reached}" for r in rungs)
    return [Measured(_points(100 * kept / reached), f"trials ASHA let go on at its rungs ({each}); reduction "
                     f"factor {settings.get('reduction_factor')} (asynchronous: early trials at a rung are compared "
                     f"with fewer); {where}", unit="%")]


def _optimizers(collected: dict[str, Any], entry: dict[str, Any], caveats: tuple[str, ...]) -> list[Measured]:
    """The optimizers of the models selected from the search: those its retrain retrained (as it
    selected them), else the best trial of each of its 3 best architectures (report A's reading)."""
    retrain = next((e for e in collected["stages"]["retrain"] if e["summary"].experiment == entry["name"]), None)
    if retrain is not None:
        s = retrain["summary"]
        chosen = [{"model": m.model, "optim": (m.params or {}).get("optim.name", m.optimizer)} for m in s.models]
        which = f"retrain/{retrain['name']}: the {len(chosen)} it retrained, {SELECTION_TEXT[s.select]}"
    else:
        top = ((entry["top_k"].top_architectures if entry.get("top_k") else None) or [])[:3]
        chosen = [{"model": t.params.get("model.name"), "optim": t.params.get("optim.name")} for t in top]
        which = (f"tune/{entry['name']}/top_k.json (no retrain of it here): the best trial of each of the "
                 f"{len(chosen)} best architectures, report A's 'top 3' as we read it")
    if not chosen:
        return []
    names = [c["optim"] for c in chosen]
    verdict = "only SGD, as report A" if set(names) == {"sgd"} else "not only SGD"
    shown = ", ".join(f"{c['model']}: {c['optim']}" for c in chosen)
    return [Measured(text(", ".join(names)), f"{which} ({shown}): {verdict}", caveats=caveats)]



def _train_images(collected) -> int | None:
    for pipeline in collected["pipelines"]:
        if pipeline["data"] is not None:
            return pipeline["data"].train.count
    return None


def _final(anchor: Anchor, collected) -> list[Measured]:
    summary = recipe_result(collected, "report-a")
    if summary is None:
        return []
    if anchor.key == "a.final.epochs":
        budget = summary.budget or {}
        if "epochs" in budget:
            return [_recipe_measured(count(budget["epochs"]), summary)]
        return [Measured(Cell(budget_text(budget), None, True), f"trained for steps, not epochs; {recipe_note(summary)}",
                         caveats=tuple(recipe_caveats(summary)), unit="")]
    images = _train_images(collected)
    cell = count(images) if images is not None else Cell("all", None)
    return [_recipe_measured(cell, summary, "every image of the training split")]


def _augment(anchor: Anchor, collected) -> list[Measured]:
    without = recipe_result(collected, "report-a", "none")
    if without is None:
        return []
    means = {m.model: m.test_top1_mean for m in _by_model(without)}
    if anchor.key == "a.augment.none":
        mean, _ = mean_std(means.values())
        return [_recipe_measured(_pct(mean), without, f"mean of {', '.join(means)} without augmentation")]
    with_aug = recipe_result(collected, "report-a")
    if with_aug is None or not same_runs(with_aug, without):
        return []
    gains = [m.test_top1_mean - means[m.model] for m in _by_model(with_aug)
             if m.model in means and m.test_top1_mean is not None and means[m.model] is not None]
    mean, _ = mean_std(gains)
    if mean is None:
        return []
    return [_recipe_measured(Cell(f"{100 * mean:+.2f}", 100 * mean, True), without, f"mean over {len(gains)} model(s) "
                             f"of recipe/{with_aug.name} minus recipe/{without.name}")]


def _published_gap(anchor: Anchor, collected) -> list[Measured]:
    """Report A's "about 16% better": the published mean minus the mean of its three models."""
    summary = recipe_result(collected, "report-a")
    means = [m.test_top1_mean for m in _by_model(summary) if m.test_top1_mean is not None]
    if not means:
        return []
    published_mean = ANCHORS_BY_KEY["a.published.mean"].value
    if recipe_caveats(summary):
        return not_computed(f"the published mean, {published_mean}%; {recipe_note(summary)}", recipe_caveats(summary))
    ours, _ = mean_std(means)
    theirs, _ = mean_std(m.test_top1_pct for m in REPORT_A_MODELS)
    return [_recipe_measured(_points(published_mean - 100 * ours), summary, f"{published_mean} minus the mean of our "
                             f"{len(means)} model(s), {100 * ours:.2f}% (report A: minus its {theirs:.2f}%, "
                             f"{published_mean - theirs:.2f})")]


def _resdw(anchor: Anchor, collected) -> list[Measured]:
    if anchor.key == "b.resdw.params":
        return _parameters(anchor, collected)
    summary = recipe_result(collected, "report-b")
    entry = next(iter(_by_model(summary)), None)
    if entry is None:
        return []
    if anchor.key == "b.resdw.steps":
        steps = (summary.budget or {}).get("steps")
        return [] if steps is None else [_recipe_measured(count(steps), summary)]
    if anchor.key == "b.resdw.test":
        return [_recipe_measured(_pct(entry.test_top1_mean, entry.test_top1_std), summary, "± is the SD over seeds")]
    if anchor.key == "b.resdw.train":
        return [_recipe_measured(_pct(entry.train_acc_mean, entry.train_acc_std), summary,
                                 "the last epoch's running accuracy on augmented batches")]
    if anchor.key == "b.resdw.runtime":
        return _runtime(summary)
    mean, std = entry.final_train_loss_mean, entry.final_train_loss_std
    return [] if mean is None else [_recipe_measured(Cell(f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else ""),
                                                          mean, True), summary, "the last epoch's mean")]


def _runtime(summary: RecipeSummary) -> list[Measured]:
    """Training time of one resdw run, in minutes, on the device it ran on."""
    runs = [m for m in summary.models if m.train_time_s is not None]
    if not runs:
        return []
    minutes, _ = mean_std(m.train_time_s / 60 for m in runs)
    devices = ", ".join(sorted({m.device or "?" for m in runs}))
    return [_recipe_measured(decimal(minutes, 2), summary, f"training of one run, mean of {len(runs)}, on {devices} "
                             "(report B's machine is not named)")]


def _sota_ratio(anchor: Anchor, collected) -> list[Measured]:
    """Report B's "more than 5 times as many parameters": the cited model's over resdw's."""
    cited = ANCHORS_BY_KEY["b.sota.params"].value
    ours = OUR_PARAMETERS["resdw"]
    theirs = ANCHORS_BY_KEY["b.resdw.params"].value
    return [Measured(decimal(cited / ours, 2), f"{cited:,} over our resdw's {ours:,} (`cifar models`); over report "
                     f"B's {theirs:,}: {cited / theirs:.2f}")]


def _sota_gap(anchor: Anchor, collected) -> list[Measured]:
    """Report B's "approximately 14 percentage points": the cited accuracy minus resdw's."""
    summary = recipe_result(collected, "report-b")
    entry = next(iter(_by_model(summary)), None)
    if entry is None or entry.test_top1_mean is None:
        return []
    cited = ANCHORS_BY_KEY["b.sota.test"].value
    if recipe_caveats(summary):
        return not_computed(f"the cited {cited}%; {recipe_note(summary)}", recipe_caveats(summary))
    theirs = ANCHORS_BY_KEY["b.resdw.test"].value
    return [_recipe_measured(_points(cited - 100 * entry.test_top1_mean), summary, f"{cited} minus our resdw's "
                             f"{100 * entry.test_top1_mean:.2f}% (report B: minus its {theirs}, {cited - theirs:.2f})")]


def _fid_measured(cell: Cell, entry: dict[str, Any], how: str, collected: dict[str, Any], label: str = "") -> Measured:
    """A FID (or a number of its protocol): where it comes from, what makes it incomparable with report B's,
    its own departures from report B's protocol and its GAN run's recoveries and departures."""
    summary = entry["summary"]
    parts = [f"fid/{entry['name']}: {how}", departures_text(recorded_departures(summary), "report B's FID protocol"),
             gan_note(summary, collected)]
    return Measured(cell, "; ".join(p for p in parts if p), label, tuple(fid_caveats(summary)))


def compared_snapshots(collected: dict[str, Any]) -> set[str]:
    """The FID results stage fid-b scored beside report B's snapshot (the 50,000-step one)."""
    return {Path(c.summary).parent.name for comparison in snapshot_comparisons(collected)
            for c in comparison["summary"].compared[1:]}


def _label(key: str, entry: dict[str, Any], collected: dict[str, Any]) -> str:
    """Which FID: its protocol and snapshot (report B's protocol scores one fixed snapshot)."""
    step = snapshot_step(entry["summary"].fake.path)
    if key == "checkpoint":
        return f"one snapshot, step {step:,}" if step is not None else FID_LABELS[key]
    if key == "report-b":
        judged = ", the snapshot its choice was judged against" if entry["name"] in compared_snapshots(collected) else ""
        return f"{FID_LABELS[key]}, step {step:,}{judged}"
    return FID_LABELS[key]


def _fid(anchor: Anchor, collected) -> list[Measured]:
    out = []
    for entry in collected["stages"]["fid"]:
        summary = entry["summary"]
        key, how = fid_protocol(summary)
        if key not in FID_LABELS or scored_split(summary) != "test":
            continue
        compared = [f"step {c.step:,} scored the same way: FID {c.fid:.2f}" for c in (summary.compared or [])[1:]]
        cell = decimal(summary.fid, 2) if anchor.key == "b.fid" else count(summary.n_fake)
        out.append(_fid_measured(cell, entry, "; ".join([how, *compared]), collected, _label(key, entry, collected)))
    return out


def _gan_steps(anchor: Anchor, collected) -> list[Measured]:
    """The step of each snapshot a FID scored on the test split (never a run's training steps)."""
    out = []
    for entry in collected["stages"]["fid"]:
        summary = entry["summary"]
        key, how = fid_protocol(summary)
        step = (summary.best.step if summary.best else None) if key == "select-best" else None
        if key in ("report-b", "checkpoint"):
            step = snapshot_step(summary.fake.path)
        if step is not None and key in FID_LABELS:
            out.append(_fid_measured(count(step), entry, how, collected, _label(key, entry, collected)))
    return out


def _compared(anchor: Anchor, collected) -> list[Measured]:
    """Report B's 50,000-step snapshot: the one stage fid-b scores beside its 46,000-step choice."""
    out = []
    for comparison in snapshot_comparisons(collected):
        (chosen, chosen_fid), *others = comparison["pairs"]
        for step, fid in others:
            stands = "" if step == REPORT_B_GAN_STEPS else f", in place of report B's {REPORT_B_GAN_STEPS:,}"
            better = step if fid < chosen_fid else chosen
            how = (f"step {step:,}{stands}, scored as stage fid-b scored step {chosen:,}: FID {fid:.2f} against "
                   f"{chosen_fid:.2f}, so by FID step {better:,} is the better of the two (report B chose by eye)")
            entry = {"name": comparison["name"], "summary": comparison["summary"]}
            out.append(_fid_measured(count(step), entry, how, collected))
    return out


MEASURES: tuple[tuple[str, Callable[[Anchor, dict[str, Any]], list[Measured]]], ...] = (
    ("a.split", _tune), ("a.search", _tune), ("a.augment", _augment), ("a.final", _final),
    ("a.cnn6.params", _parameters), ("a.cnn7.params", _parameters), ("a.cnn2.params", _parameters),
    ("a.cnn", _recipe_model), ("a.compare.gap", _published_gap), ("b.resdw", _resdw),
    ("b.compare.ratio", _sota_ratio), ("b.compare.gap", _sota_gap), ("b.fid", _fid), ("b.gan.steps", _gan_steps),
    ("b.gan.compared", _compared), ("b.gan.", _parameters),
)
