"""Values gathered across stages for the cross-cutting views: every trained model's accuracy and
size, each GAN run's FID per snapshot, what a FID must carry beside it (its own departures from
report B's protocol, its GAN run's recoveries and departures), and what makes a number of ours
incomparable with a published one (the synthetic stand-in, other Inception weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cifar_core.protocols import departure_name
from cifar_core.report.document import as_number
from cifar_core.snapshots import step_of
from cifar_core.summaries import CollapseEvent, FidSummary, GanSummary, PlanSummary, RecipeSummary, StageRow


def accuracy_points(collected: dict[str, Any]) -> list[dict[str, Any]]:
    """{label, parameters, accuracy_pct, kind} for each training run (test accuracy where it was
    evaluated, else its best validation accuracy) and each scored tune trial (validation)."""
    points = []
    for entry in collected["stages"]["train"]:
        summary = entry["summary"]
        test = summary.test.top1 if summary.test else None
        accuracy, kind = (test, "test") if test is not None else (summary.best_val_acc, "validation")
        if accuracy is not None:
            points.append({"label": entry["name"], "parameters": summary.parameters, "accuracy_pct": 100 * float(accuracy),
                           "kind": kind, "synthetic": bool(summary.synthetic_data)})
    for entry in collected["stages"]["tune"]:
        for row in entry["trials"]:
            accuracy, parameters = as_number(row.get("best_val_acc")), as_number(row.get("parameters"))
            if accuracy is not None and parameters is not None:
                points.append({"label": f"{entry['name']}/{row['trial_id']}", "parameters": int(parameters),
                               "accuracy_pct": 100 * accuracy, "kind": "tune",
                               "synthetic": bool(entry.get("synthetic_data"))})
    return points


# --- what makes a number of ours incomparable with a published one --------------------------------
SYNTHETIC = "SYNTHETIC data"
OTHER_WEIGHTS = "not pytorch-fid's Inception weights"


def fid_caveats(fid_summary: FidSummary) -> list[str]:
    """Why a FID cannot be set against report B's 46.85 (the page says so beside it): [] when it can."""
    caveats = [SYNTHETIC] if fid_summary.real and fid_summary.real.dataset == "synthetic" else []
    return caveats + ([OTHER_WEIGHTS] if fid_summary.weights_standard is False else [])


def marked(caption: str, synthetic: bool) -> str:
    """A table's or figure's caption, saying first when its numbers come from the synthetic stand-in."""
    return f"{SYNTHETIC}, not CIFAR-100: {caption}" if synthetic else caption


def is_synthetic(summary: PlanSummary) -> bool:
    """Whether any run of a retrain or recipe trained on the synthetic stand-in."""
    return any(m.synthetic_data for m in summary.models)


def recipe_caveats(summary: PlanSummary) -> list[str]:
    """A retrain's or recipe's accuracies: [SYNTHETIC] when any of its runs trained on the stand-in."""
    return [SYNTHETIC] if is_synthetic(summary) else []


def departed_facts(departed: list[str] | None, separator: str = "; ") -> str:
    """A result's recorded departures as text: "none" only when there are none."""
    if departed is None:
        return "not recorded (a summary made before they were)"
    return separator.join(departed) or "none"


def snapshot_step(checkpoint: str | None) -> int | None:
    """N of a GAN snapshot checkpoints/step_<N>.pt; None for last.pt or anything else."""
    return step_of(checkpoint, ".pt")


def gan_run_of(fid_summary: FidSummary) -> str | None:
    """The GAN run a FID summary scored: RESULTS/gan/<run>/ or RESULTS/gan/<run>/checkpoints/<file>."""
    fake = fid_summary.fake
    if fake.kind == "run":
        return Path(fake.path).name
    if fake.kind == "checkpoint":
        parent = Path(fake.path).parent
        return (parent.parent if parent.name == "checkpoints" else parent).name
    return None


def ranking_split(fid_summary: FidSummary) -> str | None:
    """The split a select-best ranking scored snapshots against."""
    return fid_summary.selection.split if fid_summary.selection else None


def scored_split(fid_summary: FidSummary) -> str | None:
    """The split a FID was scored against."""
    return fid_summary.real.split if fid_summary.real else None


def fid_protocol(fid_summary: FidSummary) -> tuple[str, str]:
    """(key, description) of how an FID was measured: report B's protocol (its step-46,000 snapshot,
    10,000 samples, the test set), our selection (chosen on the training split, scored on the test
    split), one other snapshot, or images."""
    fake, split, n = fid_summary.fake, scored_split(fid_summary), fid_summary.n_fake
    if fake.kind == "run":
        step = fid_summary.best.step if fid_summary.best else None
        return "select-best", (f"snapshot chosen by its {ranking_split(fid_summary)} FID (step {step}), then scored "
                               f"once on the {split} split with other noise; {n:,} samples")
    if fake.kind == "checkpoint":
        step = snapshot_step(fake.path)
        where = f"step {step:,}" if step is not None else Path(fake.path).name
        if fid_summary.protocol == "report-b":  # as the scorer recorded it (its departures beside)
            return "report-b", f"report B's: one snapshot ({where}), {n:,} samples, the {split} split"
        return "checkpoint", f"one snapshot ({where}), {n:,} samples, the {split} split"
    return "images", f"{n:,} images from {fake.kind} {Path(fake.path).name}, the {split} split"


def fid_series(collected: dict[str, Any]) -> list[dict[str, Any]]:
    """{label, steps, fids, caveats}: one line per select-best ranking, one per (GAN run, split) scored
    snapshot by snapshot; each label names the split the FIDs are against and what makes them
    incomparable with report B's (the synthetic stand-in, other Inception weights)."""
    series, singles = [], {}
    for entry in collected["stages"]["fid"]:
        summary = entry["summary"]
        run = gan_run_of(summary) or entry["name"]
        if summary.ranking:
            ranked = sorted(summary.ranking, key=lambda r: r.step)
            series.append(_series(f"{run}: every snapshot against the {ranking_split(summary)} split (fid/"
                                  f"{entry['name']}, {ranked[0].n_fake} samples each)",
                                  [(r.step, r.fid) for r in ranked], fid_caveats(summary)))
            continue
        step = snapshot_step(summary.fake.path)
        if step is not None:
            found = singles.setdefault((run, scored_split(summary)), ([], []))
            found[0].append((step, summary.fid))
            found[1].extend(c for c in fid_caveats(summary) if c not in found[1])
    for (run, split), (pairs, caveats) in sorted(singles.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        series.append(_series(f"{run}: single snapshots against the {split} split", sorted(pairs), caveats))
    return series


def _series(label: str, pairs: list[tuple[int, float]], caveats: list[str]) -> dict[str, Any]:
    return {"label": label + (f" ({'; '.join(caveats)})" if caveats else ""), "steps": [s for s, _ in pairs],
            "fids": [f for _, f in pairs], "caveats": caveats}


# --- a GAN run as the FIDs of it must show it: its recoveries and how it departed from report B ----
def gan_summaries(collected: dict[str, Any]) -> dict[str, GanSummary]:
    """{run name: its summary} of every GAN run here."""
    return {entry["name"]: entry["summary"] for entry in collected["stages"]["gan"]}


def recovery_text(event: CollapseEvent) -> str:
    """"step 12,300: rollback to step 11,000, learning rate 0.0001" (or "restart from step 0", or
    "none (collapse.mode is off)") for one collapse event."""
    action = event.action or "none"
    parts = [f"step {event.step:,}: {action}" + (f" ({event.why})" if event.why else "")]
    if event.rolled_back_to is not None:
        parts[0] += f" {'from' if action == 'restart' else 'to'} step {event.rolled_back_to:,}"
    if event.lr_after is not None:
        parts.append(f"learning rate {event.lr_after:g}")
    return ", ".join(parts)


def recorded_departures(summary: GanSummary | FidSummary | PlanSummary) -> list[str] | None:
    """How a run (or a score) departed from the protocol it is set beside, as its producer computed it
    (`protocol_departures`: every setting that differs from the report's, the tutorial's or ours, the
    data, each recovery); None for a summary made before they were recorded."""
    return None if summary.protocol_departures is None else list(summary.protocol_departures)


def protocol_name(summary: PlanSummary) -> str:
    """Whose protocol a retrain or recipe is set beside: report B's classifier, else report A's."""
    return "report B's protocol" if isinstance(summary, RecipeSummary) and summary.recipe == "report-b" \
        else "report A's protocol"


def departures_text(departed: list[str] | None, protocol: str = "report B's protocol") -> str:
    """The departures a number carries beside it, by name ("departed from report B's DCGAN in: batch
    size; steps; data"); each with its values in the table of every result's departures."""
    if departed is None:
        return f"departures from {protocol} not recorded (a summary made before they were)"
    names = "; ".join(dict.fromkeys(departure_name(line) for line in departed))
    return f"departed from {protocol} in: {names}" if departed else f"no departure from {protocol}"


def precision_of_gan(gan: GanSummary) -> str:
    """What the run computed in, as it recorded it (cifar_core.device.Precision.record)."""
    return gan.precision or "not recorded"


def gan_note(fid_summary: FidSummary, collected: dict[str, Any]) -> str:
    """What a FID of a GAN run must carry beside it: the run's precision and collapse handling, every
    recovery, and its departures from report B's protocol."""
    run = gan_run_of(fid_summary)
    if run is None:
        return ""
    gan = gan_summaries(collected).get(run)
    if gan is None:
        return f"GAN run {run}: no summary here, so its recoveries are unknown"
    events = gan.collapse_events or []
    mode = gan.collapse_mode
    recoveries = "recoveries: " + "; ".join(recovery_text(e) for e in events) if events else "no collapse"
    departed_text = departures_text(recorded_departures(gan), "report B's DCGAN")
    return f"GAN run {run} ({precision_of_gan(gan)}, collapse handling {mode}): {recoveries}; {departed_text}"


def snapshot_comparisons(collected: dict[str, Any]) -> list[dict[str, Any]]:
    """Stage fid-b's comparisons (its summary's `compared`: report B's snapshot, then the ones scored
    beside it the same way): {"name", "summary", "pairs": [(step, fid)]}."""
    found = []
    for entry in collected["stages"]["fid"]:
        compared = entry["summary"].compared
        if compared:
            found.append({"name": entry["name"], "summary": entry["summary"], "pairs": [(c.step, c.fid) for c in compared]})
    return found


def pipeline_records(collected: dict[str, Any], *stages: str) -> list[tuple[str, StageRow]]:
    """(profile, record) of these stages in every pipeline summary, as its last run recorded them."""
    return [(p["name"], record) for p in collected["pipelines"] if p["summary"]
            for record in p["summary"].stages if record.stage in stages]
