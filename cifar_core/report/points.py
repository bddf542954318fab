"""Values gathered across stages for the cross-cutting views: every trained model's accuracy and
size, and each GAN run's FID per snapshot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cifar_core.report.document import as_number


def accuracy_points(collected: dict[str, Any]) -> list[dict[str, Any]]:
    """{label, parameters, accuracy_pct, kind} for each training run (test accuracy where it was
    evaluated, else its best validation accuracy) and each scored tune trial (validation)."""
    points = []
    for entry in collected["stages"]["train"]:
        summary = entry["summary"]
        test = (summary.get("test") or {}).get("top1")
        accuracy, kind = (test, "test") if as_number(test) is not None else (summary.get("best_val_acc"), "validation")
        if as_number(accuracy) is not None and as_number(summary.get("parameters")) is not None:
            points.append({"label": entry["name"], "parameters": int(summary["parameters"]),
                           "accuracy_pct": 100 * float(accuracy), "kind": kind})
    for entry in collected["stages"]["tune"]:
        for row in entry["trials"]:
            accuracy, parameters = as_number(row.get("best_val_acc")), as_number(row.get("parameters"))
            if accuracy is not None and parameters is not None:
                points.append({"label": f"{entry['name']}/{row['trial_id']}", "parameters": int(parameters),
                               "accuracy_pct": 100 * accuracy, "kind": "tune"})
    return points


def snapshot_step(checkpoint: str | None) -> int | None:
    """N of a GAN snapshot checkpoints/step_<N>.pt; None for last.pt or anything else."""
    match = re.fullmatch(r"step_(\d+)\.pt", Path(checkpoint or "").name)
    return int(match.group(1)) if match else None


def gan_run_of(fid_summary: dict[str, Any]) -> str | None:
    """The GAN run a FID summary scored: RESULTS/gan/<run>/ or RESULTS/gan/<run>/checkpoints/<file>."""
    fake = fid_summary.get("fake") or {}
    if fake.get("kind") == "run":
        return Path(fake["path"]).name
    if fake.get("kind") == "checkpoint":
        parent = Path(fake["path"]).parent
        return (parent.parent if parent.name == "checkpoints" else parent).name
    return None


def fid_series(collected: dict[str, Any]) -> list[dict[str, Any]]:
    """{label, steps, fids}: one line per select-best ranking, one per GAN run scored snapshot by snapshot."""
    series, singles = [], {}
    for entry in collected["stages"]["fid"]:
        summary = entry["summary"]
        run = gan_run_of(summary) or entry["name"]
        if summary.get("ranking"):
            ranked = sorted(summary["ranking"], key=lambda r: r["step"])
            series.append({"label": f"{run} (fid/{entry['name']}, {summary.get('n_fake')} samples each)",
                           "steps": [r["step"] for r in ranked], "fids": [r["fid"] for r in ranked]})
            continue
        step = snapshot_step((summary.get("fake") or {}).get("path"))
        if step is not None and as_number(summary.get("fid")) is not None:
            singles.setdefault(run, []).append((step, summary["fid"]))
    for run, pairs in sorted(singles.items()):
        pairs.sort()
        series.append({"label": f"{run} (single checkpoints)", "steps": [s for s, _ in pairs],
                       "fids": [f for _, f in pairs]})
    return series
