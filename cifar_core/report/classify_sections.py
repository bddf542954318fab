"""Report sections for the classifiers: the Tune search, the full-data retrain, plain training runs."""

from __future__ import annotations

from typing import Any

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
from cifar_core.report.references import PUBLISHED, REPORT_A

SYNTHETIC_NOTE = "Trained on the synthetic stand-in: these accuracies are not CIFAR-100 results."


def tune_section(entries: list[dict[str, Any]], figures: dict[str, str]) -> Section:
    section = Section("tune", "Model selection: Ray Tune with ASHA (report A, section III)")
    for entry in entries:
        name, summary = entry["name"], entry["summary"]
        section.blocks += [Heading(f"Experiment {name}"), tune_facts(name, summary)]
        if entry["trials"]:
            section.blocks.append(trials_table(name, entry["trials"]))
        if summary.get("rungs"):
            section.blocks.append(rungs_table(name, summary["rungs"]))
        if f"tune/{name}/rungs" in figures:
            section.blocks.append(Figure(f"tune/{name}/rungs", figures[f"tune/{name}/rungs"],
                                         "Trials per ASHA rung: how many trials trained that many epochs."))
        if entry["figures"]["curves"]:
            section.blocks.append(Figure(f"tune/{name}/curves", entry["figures"]["curves"],
                                         "Training (solid) and validation (dashed) loss of the best three trials "
                                         "(report A, figure 1)."))
    return section


def tune_facts(name: str, summary: dict[str, Any]) -> Facts:
    settings, space = summary.get("settings") or {}, summary.get("space") or {}
    statuses = ", ".join(f"{n} {status.lower()}" for status, n in (summary.get("status_counts") or {}).items())
    items = [
        ("Search space", text(f"{space.get('name')}: {', '.join(space.get('architectures') or [])} x "
                              f"{', '.join(space.get('optimizers') or [])}")),
        ("Trials", Cell(f"{summary.get('trials')} ({statuses})", summary.get("trials"), numeric=True)),
        ("ASHA", text(f"grace period {settings.get('grace_period')} epoch(s), keeps 1/{settings.get('reduction_factor')} "
                      f"per rung, up to {settings.get('max_epochs')} epochs, {settings.get('max_concurrent')} at a time")),
        ("Stopped early by ASHA", count(summary.get("stopped_early"))),
        ("Epochs trained", Cell(f"{summary.get('epochs_run')} of {summary.get('epochs_without_early_stopping')} "
                                "without early stopping", summary.get("epochs_run"), numeric=True)),
        ("Search complete", yes_no(summary.get("complete"))),
        ("Wall time", duration(summary.get("wall_time_s"))),
    ]
    best = summary.get("best")
    if best:
        params = best.get("params") or {}
        items.append(("Best trial", text(f"{best['trial_id']}: {params.get('model.name')} / {params.get('optim.name')}, "
                                         f"epoch {best.get('epoch')}, {count(best.get('parameters')).text} parameters")))
        items.append(("Best validation accuracy (%)", percent(best.get("val_acc"))))
    return Facts(f"tune/{name}/facts", items)


def trials_table(name: str, rows: list[dict[str, str]]) -> Table:
    columns = ["Rank", "Trial", "Model", "Optimizer", "Learning rate", "Epochs", "Stopped early",
               "Best val acc (%)", "Final train loss", "Parameters", "Status"]
    body = [[text(r.get("rank")), text(r["trial_id"]), text(r.get("model.name")), text(r.get("optim.name")),
             scientific(r.get("optim.lr")), count(r.get("epochs")), yes_no(r.get("stopped_early")),
             percent(r.get("best_val_acc")), decimal(r.get("final_train_loss")), count(r.get("parameters")),
             text(r.get("status") + (f": {r['error']}" if r.get("error") else ""))] for r in rows]
    return Table(f"tune/{name}/trials", columns, body, "Every trial, best validation accuracy first (trials.csv).")


def rungs_table(name: str, rungs: list[dict[str, Any]]) -> Table:
    body = [[count(r["epoch"]), count(r["trials_reached"]), count(r["stopped_here"])] for r in rungs]
    return Table(f"tune/{name}/rungs", ["Epoch (rung)", "Trials reaching it", "Stopped there"], body,
                 "ASHA's rungs: the last row is the epoch limit.")


def retrain_section(entries: list[dict[str, Any]]) -> Section:
    section = Section("retrain", "Full-data retraining of the best configs (report A, sections V-VII)")
    for entry in entries:
        name, summary = entry["name"], entry["summary"]
        section.blocks.append(Heading(f"Experiment {name}: top {summary.get('top_k')} for {summary.get('epochs')} epochs"))
        if not summary.get("complete"):
            section.blocks.append(Text("Retraining has not finished: the models below are those done so far.", "note"))
        if any(m.get("synthetic_data") for m in summary.get("models", [])):
            section.blocks.append(Text(SYNTHETIC_NOTE, "warning"))
        section.blocks.append(retrain_table(name, summary))
        if entry["figures"]["loss"]:
            section.blocks.append(Figure(f"retrain/{name}/loss", entry["figures"]["loss"],
                                         "Training loss on all training images (report A, figure 3)."))
    return section


def retrain_table(name: str, summary: dict[str, Any]) -> Table:
    columns = ["Model", "Source", "Optimizer", "Parameters", "Epochs", "Test top-1 (%)", "Test top-5 (%)",
               "Search val acc (%)"]
    rows = [[text(f"{m['model']} (rank {m['rank']})"), text("this study"), text(m.get("optimizer")),
             count(m.get("parameters")), count(m.get("epochs")), percent(m.get("test_top1")),
             percent(m.get("test_top5")), percent(m.get("tune_val_acc"))] for m in summary.get("models", [])]
    report_a = summary.get("report_a") or [{"model": m, "test_top1_pct": a, "parameters": n} for m, a, n in REPORT_A]
    rows += [[text(r["model"]), text("report A"), text("SGD"), count(r["parameters"]), count(100),
              percent_points(r["test_top1_pct"]), text(None), text(None)] for r in report_a]
    published = summary.get("published") or [{"title": t, "test_top1_pct": a} for t, a in PUBLISHED]
    rows += [[text(r["title"]), text("published, cited by report A"), text(None), text(None), text(None),
              percent_points(r["test_top1_pct"], 2), text(None), text(None)] for r in published]
    return Table(f"retrain/{name}/models", columns, rows,
                 "Test accuracy after retraining on all training images, against report A and the results it cites.")


def train_section(entries: list[dict[str, Any]]) -> Section:
    section = Section("train", "Training runs (RESULTS/train)")
    if any(e["summary"].get("synthetic_data") for e in entries):
        section.blocks.append(Text(SYNTHETIC_NOTE, "warning"))
    columns = ["Run", "Model", "Optimizer", "Parameters", "Epochs", "Data", "Best val acc (%)",
               "Test top-1 (%)", "Test top-5 (%)", "Train time", "Device"]
    rows = []
    for entry in entries:
        s = entry["summary"]
        test = s.get("test") or {}
        data = "all" if s.get("full_train") else "split"
        rows.append([text(entry["name"]), text(s.get("model")), text(s.get("optimizer")), count(s.get("parameters")),
                     count(s.get("epochs")), text(data), percent(s.get("best_val_acc")),
                     percent(test.get("top1")), percent(test.get("top5")), duration(s.get("train_time_s")),
                     text(s.get("device_name") or s.get("device"))])
    section.blocks.append(Table("train/runs", columns, rows,
                                "Data: all training images, or the training split with a validation part held out. "
                                "Test accuracy where the run was evaluated (`cifar evaluate`)."))
    return section


def accuracy_section(figures: dict[str, str]) -> Section:
    figure = Figure("accuracy_vs_parameters", figures["accuracy_vs_parameters"],
                    "Every trained model: test accuracy where evaluated, else validation; report A's three models, "
                    "report B's resdw (56.9% with 98,068 parameters) and its 100,000-parameter budget.")
    return Section("accuracy", "Accuracy against parameter count", [figure])
