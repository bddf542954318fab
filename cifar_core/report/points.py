"""Values gathered across stages for the cross-cutting views: every trained model's accuracy and
size, each GAN run's FID per snapshot, and what a FID of a GAN run must carry beside it (the run's
recoveries and departures from report B's protocol)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cifar_core.device import BF16_DEVICE_TYPES
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
    """The split a select-best ranking scored snapshots against."""
    return (fid_summary.get("selection") or {}).get("split")


def fid_protocol(fid_summary: dict[str, Any]) -> tuple[str, str]:
    """(key, description) of how an FID was measured: report B's protocol (its step-46,000 snapshot,
    10,000 samples, the test set), our selection (chosen on the training split, scored on the test
    split), one other snapshot, or images."""
    fake, real = fid_summary.get("fake") or {}, fid_summary.get("real") or {}
    split, n = real.get("split"), fid_summary.get("n_fake")
    if fake.get("kind") == "run":
        step = (fid_summary.get("best") or {}).get("step")
        return "select-best", (f"snapshot chosen by its {ranking_split(fid_summary)} FID (step {step}), then scored "
                               f"once on the {split} split with other noise; {n:,} samples")
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


# --- a GAN run as the FIDs of it must show it: its recoveries and how it departed from report B ----
def gan_summaries(collected: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{run name: summary.json} of every GAN run here."""
    return {entry["name"]: entry["summary"] for entry in collected["stages"]["gan"]}


def lr_after(event: dict[str, Any]) -> float | None:
    """The learning rate after a collapse event."""
    return event.get("lr_after")


def recovery_text(event: dict[str, Any]) -> str:
    """"step 12,300: rollback to step 11,000, learning rate 0.0001" (or "restart from step 0", or
    "none (collapse.mode is off)") for one collapse event."""
    action = str(event.get("action") or "none")
    parts = [f"step {event['step']:,}: {action}" + (f" ({event['why']})" if event.get("why") else "")]
    if event.get("rolled_back_to") is not None:
        parts[0] += f" {'from' if action == 'restart' else 'to'} step {event['rolled_back_to']:,}"
    if as_number(lr_after(event)) is not None:
        parts.append(f"learning rate {lr_after(event):g}")
    return ", ".join(parts)


def departures(gan: dict[str, Any]) -> list[str]:
    """How the run departed from report B's protocol, as its trainer recorded it (`protocol_departures`:
    bf16, flipped images, each rollback, a collapse left unrecovered)."""
    return [str(d) for d in gan["protocol_departures"]]


def run_departures(fid_summary: dict[str, Any], collected: dict[str, Any]) -> list[str]:
    """The departures from report B's protocol of the GAN run a FID scored (none known: [])."""
    gan = gan_summaries(collected).get(gan_run_of(fid_summary) or "")
    return departures(gan) if gan is not None else []


def departures_text(departed: list[str]) -> str:
    return "departed from report B's protocol: " + "; ".join(departed) if departed else \
        "no departure from report B's protocol"


def precision_of_gan(gan: dict[str, Any]) -> str:
    bf16 = (gan.get("config") or {}).get("amp") and str(gan.get("device", "")).split(":")[0] in BF16_DEVICE_TYPES
    return "bf16 autocast" if bf16 else "float32"


def gan_note(fid_summary: dict[str, Any], collected: dict[str, Any]) -> str:
    """What a FID of a GAN run must carry beside it: the run's precision and collapse handling, every
    recovery, and its departures from report B's protocol."""
    run = gan_run_of(fid_summary)
    if run is None:
        return ""
    gan = gan_summaries(collected).get(run)
    if gan is None:
        return f"GAN run {run}: no summary here, so its recoveries are unknown"
    events = gan.get("collapse_events") or []
    mode = gan["collapse_mode"]
    recoveries = "recoveries: " + "; ".join(recovery_text(e) for e in events) if events else "no collapse"
    departed_text = departures_text(departures(gan))
    return f"GAN run {run} ({precision_of_gan(gan)}, collapse handling {mode}): {recoveries}; {departed_text}"


def snapshot_comparisons(collected: dict[str, Any]) -> list[dict[str, Any]]:
    """Stage fid-b's comparisons (its summary's `compared`: report B's snapshot, then the ones scored
    beside it the same way): {"name", "summary", "pairs": [(step, fid)]}."""
    found = []
    for entry in collected["stages"]["fid"]:
        compared = entry["summary"].get("compared")
        if compared:
            found.append({"name": entry["name"], "summary": entry["summary"],
                          "pairs": [(c["step"], c["fid"]) for c in compared]})
    return found


def pipeline_records(collected: dict[str, Any], *stages: str) -> list[tuple[str, dict[str, Any]]]:
    """(profile, record) of these stages in every pipeline summary, as its last run recorded them."""
    return [(p["name"], record) for p in collected["pipelines"] if p["summary"]
            for record in p["summary"].get("stages") or [] if record.get("stage") in stages]
