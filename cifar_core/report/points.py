"""Values gathered across stages for the cross-cutting views: every trained model's accuracy and
size, and each GAN run's FID per snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cifar_core.protocols import REPORT_B_FID_IMAGES, REPORT_B_FID_STEP
from cifar_core.report.document import as_number
from cifar_core.snapshots import step_of


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
    return step_of(checkpoint, ".pt")


def gan_run_of(fid_summary: dict[str, Any]) -> str | None:
    """The GAN run a FID summary scored: RESULTS/gan/<run>/ or RESULTS/gan/<run>/checkpoints/<file>."""
    fake = fid_summary.get("fake") or {}
    if fake.get("kind") == "run":
        return Path(fake["path"]).name
    if fake.get("kind") == "checkpoint":
        parent = Path(fake["path"]).parent
        return (parent.parent if parent.name == "checkpoints" else parent).name
    return None


def ranking_split(fid_summary: dict[str, Any]) -> str | None:
    """The split a select-best ranking scored snapshots against (test for one made before selection
    moved to the training split)."""
    return (fid_summary.get("selection") or {}).get("split") or (fid_summary.get("real") or {}).get("split")


def fid_protocol(fid_summary: dict[str, Any]) -> tuple[str, str]:
    """(key, description) of how an FID was measured: report B's protocol (its step-46,000 snapshot,
    10,000 samples, the test set), our selection (chosen on the training split, scored on the test
    split), a selection made on the split it reports (biased), one other snapshot, or images."""
    fake, real = fid_summary.get("fake") or {}, fid_summary.get("real") or {}
    split, n = real.get("split"), fid_summary.get("n_fake")
    if fake.get("kind") == "run":
        step = (fid_summary.get("best") or {}).get("step")
        chosen_on = ranking_split(fid_summary)
        if chosen_on == split:
            return "select-on-scored-split", (f"best of every snapshot by its {split} FID, reported on that same split "
                                              f"(step {step}; chosen on the split it reports: flattering)")
        return "select-best", (f"snapshot chosen by its {chosen_on} FID (step {step}), then scored once on the "
                               f"{split} split with other noise; {n:,} samples")
    if fake.get("kind") == "checkpoint":
        step = snapshot_step(fake.get("path"))
        where = f"step {step:,}" if step is not None else Path(fake.get("path") or "?").name
        if step == REPORT_B_FID_STEP and n == REPORT_B_FID_IMAGES and split == "test":
            return "report-b", f"report B's: the {where} snapshot, {n:,} samples, the test split"
        return "checkpoint", f"one snapshot ({where}), {n:,} samples, the {split} split"
    return "images", f"{n:,} images from {fake.get('kind')} {Path(fake.get('path') or '?').name}, the {split} split"


def fid_series(collected: dict[str, Any]) -> list[dict[str, Any]]:
    """{label, steps, fids}: one line per select-best ranking, one per (GAN run, split) scored snapshot
    by snapshot; each label names the split the FIDs are against."""
    series, singles = [], {}
    for entry in collected["stages"]["fid"]:
        summary = entry["summary"]
        run = gan_run_of(summary) or entry["name"]
        if summary.get("ranking"):
            ranked = sorted(summary["ranking"], key=lambda r: r["step"])
            series.append({"label": f"{run}: every snapshot against the {ranking_split(summary)} split "
                                    f"(fid/{entry['name']}, {ranked[0].get('n_fake')} samples each)",
                           "steps": [r["step"] for r in ranked], "fids": [r["fid"] for r in ranked]})
            continue
        step = snapshot_step((summary.get("fake") or {}).get("path"))
        if step is not None and as_number(summary.get("fid")) is not None:
            split = (summary.get("real") or {}).get("split")
            singles.setdefault((run, split), []).append((step, summary["fid"]))
    for (run, split), pairs in sorted(singles.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        pairs.sort()
        series.append({"label": f"{run}: single snapshots against the {split} split", "steps": [s for s, _ in pairs],
                       "fids": [f for _, f in pairs]})
    return series
