"""Every number both reports publish, beside this study's measurement of it, or the reason there is
none: the stage that would measure it has not run, or ran and was unavailable, failed or blocked
(from the pipeline's records), or the number is one the report only cites."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cifar_core.protocols import ANCHORS, OUR_PARAMETERS, RECIPES, Anchor, mean_std
from cifar_core.report.document import MISSING, Cell, Section, Table, Text, as_number, count, decimal, text
from cifar_core.report.points import fid_protocol, snapshot_step


@dataclass(frozen=True)
class Measured:
    cell: Cell  # ours, as the anchor's unit shows it
    how: str  # where it comes from and anything that differs from the report's protocol
    label: str = ""  # which of several measurements (the FID protocols)


# The stage that measures each kind of number, and the command that runs it alone.
STAGE_OF = {"a.split": "tune", "a.search": "tune", "a.augment": "ablation", "a.final": "recipe-a",
            "a.cnn": "recipe-a", "b.resdw": "recipe-b", "b.fid": "fid-b", "b.gan.steps": "gan"}
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
    for anchor in ANCHORS:
        published = Cell(anchor.text, anchor.value, True)
        measured = measure(anchor, collected)
        if measured:
            rows += [[text(anchor.what + (f" ({m.label})" if m.label else "")), text(anchor.source.label), published,
                      m.cell, text(m.how)] for m in measured]
        else:
            rows.append([text(anchor.what), text(anchor.source.label), published, Cell(MISSING, numeric=True),
                         text(why_absent(anchor, collected))])
    table = Table("anchors", ["Number", "Source", "Published", "This study", "How this study's number was measured"],
                  rows, "Every number of reports A and B (sections as the reports number them), with ours.")
    intro = Text("Each published number beside this study's. Where ours is missing the last column says why: a stage "
                 "that did not run, or ran and could not finish, or a number the report only cites. Where ours was "
                 "measured differently from the report (fewer epochs, synthetic data, another FID protocol) the last "
                 "column says so. Where each protocol value comes from: the provenance section and docs/provenance.md.")
    return Section("anchors", "Both reports, number by number", [intro, table])


def measure(anchor: Anchor, collected: dict[str, Any]) -> list[Measured]:
    for prefix, fn in MEASURES:
        if anchor.key.startswith(prefix):
            return fn(anchor, collected)
    return []


def why_absent(anchor: Anchor, collected: dict[str, Any]) -> str:
    if anchor.key.startswith(CITED):
        return "cited by the report from other work: nothing to measure"
    stage = next((s for prefix, s in STAGE_OF.items() if anchor.key.startswith(prefix)), None)
    if stage is None:
        return "not measured"
    if anchor.key == "a.augment.gain" and recipe_result(collected, "report-a", "none") is not None:
        return ("the ablation ran, but no recipe-a result with the same budget, seeds and precision to compare "
                f"with (`{COMMANDS['recipe-a']}` with the ablation's settings)")
    for profile, record in pipeline_records(collected, stage):
        if record.get("status") in ("unavailable", "failed", "blocked", "running"):
            reason = record.get("reason") or "no reason recorded"
            return f"pipeline {profile}: stage {stage} {record['status']}: {reason}"
    return f"stage {stage} has not run here (`{COMMANDS[stage]}`, or `cifar pipeline`)"


def pipeline_records(collected: dict[str, Any], stage: str) -> list[tuple[str, dict[str, Any]]]:
    """(profile, record) of the stage in every pipeline summary that has one."""
    return [(p["name"], record) for p in collected["pipelines"] if p["summary"]
            for record in p["summary"].get("stages") or [] if record.get("stage") == stage]


# --- the measurements -----------------------------------------------------------------------------
def recipe_result(collected: dict[str, Any], recipe: str, augment: str | None = None) -> dict[str, Any] | None:
    """A recipe's summary: the one with the recipe's own budget when there is one."""
    found = [e["summary"] for e in collected["stages"]["recipe"]
             if e["summary"].get("recipe") == recipe and e["summary"].get("augment") == augment]
    default = recipe if augment is None else f"{recipe}-augment-{augment}"
    return next((s for s in found if s.get("name") == default), found[0] if found else None)


def _budget_note(summary: dict[str, Any]) -> str:
    budget = summary.get("budget") or {}
    own = RECIPES[summary["recipe"]].budget
    notes = [f"recipe/{summary.get('name')}", f"seeds {', '.join(map(str, summary.get('seeds') or []))}"]
    if budget != own:
        notes.append(" ".join(f"{k} {v:,}, not {own[k]:,}" if k in own else f"{k} {v:,}" for k, v in budget.items()))
    if any(m.get("synthetic_data") for m in summary.get("models") or []):
        notes.append("SYNTHETIC data")
    return "; ".join(notes)


def _pct(mean: float | None, std: float | None = None) -> Cell:
    if mean is None:
        return Cell(MISSING, numeric=True)
    return Cell(f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else ""), 100 * mean, True)


def _recipe_model(anchor: Anchor, collected) -> list[Measured]:
    summary = recipe_result(collected, "report-a")
    model = anchor.key.split(".")[1]
    entry = next((m for m in (summary or {}).get("by_model") or [] if m["model"] == model), None)
    if entry is None:
        return []
    return [Measured(_pct(entry["test_top1_mean"], entry["test_top1_std"]), _budget_note(summary))]


def _parameters(anchor: Anchor, collected) -> list[Measured]:
    model = {"a.cnn6": "cnn6", "a.cnn7": "cnn7", "a.cnn2": "cnn2", "b.resdw": "resdw",
             "b.gan.generator": "dcgan_generator", "b.gan.discriminator": "dcgan_discriminator"}
    gan = next(iter(collected["stages"]["gan"]), None)
    parameters = (gan or {}).get("summary", {}).get("parameters") or {}
    if anchor.key.startswith("b.gan.") and as_number(parameters.get(anchor.key.split(".")[-1])) is not None:
        value = parameters[anchor.key.split(".")[-1]]
        return [Measured(count(value), f"GAN run gan/{gan['name']}")]
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
    summary, settings = entry["summary"], entry["summary"].get("settings") or {}
    where = f"tune/{entry['name']}" + ("; SYNTHETIC data" if entry.get("synthetic_data") else "")
    if anchor.key.startswith("a.split"):
        fraction = (((entry.get("experiment") or {}).get("base_config") or {}).get("run") or {}).get("val_fraction")
        images = _train_images(collected)
        if fraction is None or images is None:
            return []
        val = round(images * fraction)
        value = images - val if anchor.key == "a.split.train" else val
        return [Measured(count(value), f"{where}: {fraction:g} of {images:,} training images")]
    value = {"a.search.architectures": len((summary.get("space") or {}).get("architectures") or []),
             "a.search.trials": summary.get("trials"), "a.search.concurrent": settings.get("max_concurrent"),
             "a.search.max_epochs": settings.get("max_epochs"),
             "a.search.keep": 100 / settings["reduction_factor"] if settings.get("reduction_factor") else None}[anchor.key]
    if as_number(value) is None:
        return []
    return [Measured(Cell(f"{value:g}", value, True), where)]


def _train_images(collected) -> int | None:
    for pipeline in collected["pipelines"]:
        count = ((pipeline.get("data") or {}).get("train") or {}).get("count")
        if count is not None:
            return count
    return None


def _final(anchor: Anchor, collected) -> list[Measured]:
    summary = recipe_result(collected, "report-a")
    if summary is None:
        return []
    if anchor.key == "a.final.epochs":
        budget = summary.get("budget") or {}
        value = budget.get("epochs")
        if value is None:
            return []
        return [Measured(count(value), f"recipe/{summary.get('name')}")]
    images = _train_images(collected)
    cell = count(images) if images is not None else Cell("all", None)
    return [Measured(cell, f"recipe/{summary.get('name')}: every image of the training split")]


def _augment(anchor: Anchor, collected) -> list[Measured]:
    without = recipe_result(collected, "report-a", "none")
    if without is None:
        return []
    means = {m["model"]: m["test_top1_mean"] for m in without.get("by_model") or []}
    if anchor.key == "a.augment.none":
        mean, _ = mean_std(means.values())
        return [Measured(_pct(mean), f"mean of {', '.join(means)} without augmentation; " + _budget_note(without))]
    with_aug = recipe_result(collected, "report-a")
    if with_aug is None or any(with_aug.get(k) != without.get(k) for k in ("budget", "seeds", "amp")):
        return []
    gains = [m["test_top1_mean"] - means[m["model"]] for m in with_aug.get("by_model") or []
             if m["model"] in means and m["test_top1_mean"] is not None and means[m["model"]] is not None]
    mean, _ = mean_std(gains)
    if mean is None:
        return []
    return [Measured(Cell(f"{100 * mean:+.2f}", 100 * mean, True),
                     f"mean over {len(gains)} model(s) of recipe/{with_aug.get('name')} minus recipe/{without.get('name')}")]


def _resdw(anchor: Anchor, collected) -> list[Measured]:
    if anchor.key == "b.resdw.params":
        return _parameters(anchor, collected)
    summary = recipe_result(collected, "report-b")
    entry = next(iter((summary or {}).get("by_model") or []), None)
    if entry is None:
        return []
    note = _budget_note(summary)
    if anchor.key == "b.resdw.steps":
        steps = (summary.get("budget") or {}).get("steps")
        return [] if steps is None else [Measured(count(steps), note)]
    if anchor.key == "b.resdw.test":
        return [Measured(_pct(entry["test_top1_mean"], entry["test_top1_std"]), note + "; ± is the SD over seeds")]
    if anchor.key == "b.resdw.train":
        return [Measured(_pct(entry["train_acc_mean"], entry["train_acc_std"]),
                         note + "; the last epoch's running accuracy on augmented batches")]
    mean, std = entry["final_train_loss_mean"], entry["final_train_loss_std"]
    return [] if mean is None else [Measured(Cell(f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else ""), mean,
                                                  True), note + "; the last epoch's mean")]


def _fid(anchor: Anchor, collected) -> list[Measured]:
    out = []
    for entry in collected["stages"]["fid"]:
        summary = entry["summary"]
        key, how = fid_protocol(summary)
        if key not in ("report-b", "select-best", "checkpoint") or (summary.get("real") or {}).get("split") != "test":
            continue
        label = FID_LABELS[key]
        synthetic = (summary.get("real") or {}).get("dataset") == "synthetic"
        how = f"fid/{entry['name']}: {how}" + ("; SYNTHETIC data" if synthetic else "")
        if anchor.key == "b.fid":
            out.append(Measured(decimal(summary["fid"], 2), how, label))
        elif anchor.key == "b.fid.images":
            out.append(Measured(count(summary["n_fake"]), how, label))
    return out


def _gan_steps(anchor: Anchor, collected) -> list[Measured]:
    out = []
    for entry in collected["stages"]["fid"]:
        key, how = fid_protocol(entry["summary"])
        step = (entry["summary"].get("best") or {}).get("step") if key == "select-best" else None
        if key in ("report-b", "checkpoint"):
            step = snapshot_step((entry["summary"].get("fake") or {}).get("path"))
        if step is not None and key in ("report-b", "checkpoint", "select-best"):
            out.append(Measured(count(step), f"fid/{entry['name']}: {how}", FID_LABELS[key]))
    if not out:  # trained, not scored (the FID rows say why)
        for entry in collected["stages"]["gan"]:
            steps = entry["summary"].get("steps")
            if as_number(steps) is not None:
                out.append(Measured(count(steps), f"gan/{entry['name']}: trained, no snapshot scored"))
    return out


MEASURES: tuple[tuple[str, Callable[[Anchor, dict[str, Any]], list[Measured]]], ...] = (
    ("a.split", _tune), ("a.search", _tune), ("a.augment", _augment), ("a.final", _final),
    ("a.cnn6.params", _parameters), ("a.cnn7.params", _parameters), ("a.cnn2.params", _parameters),
    ("a.cnn", _recipe_model), ("b.resdw", _resdw), ("b.fid", _fid), ("b.gan.steps", _gan_steps),
    ("b.gan.", _parameters),
)
