"""Report sections for the generative side: DCGAN runs and their FID scores (report B, part 2), each
score beside its GAN run's recoveries and departures from report B's protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cifar_core.protocols import (
    REPORT_B_FID,
    REPORT_B_FID_IMAGES,
    REPORT_B_FID_STEP,
    REPORT_B_GAN_PARAMETERS,
    REPORT_B_GAN_STEPS,
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
    scientific,
    text,
)
from cifar_core.report.points import (
    departures,
    fid_protocol,
    gan_note,
    gan_run_of,
    lr_after,
    pipeline_records,
    precision_of_gan,
    ranking_split,
    run_departures,
    snapshot_comparisons,
    snapshot_step,
)

SYNTHETIC_GAN_NOTE = "Trained on the synthetic stand-in: these samples and losses are not CIFAR-100 results."
SYNTHETIC_FID_NOTE = ("Scored against the synthetic stand-in's test images: these FIDs cannot be compared "
                      f"with report B's {REPORT_B_FID}.")


def gan_section(entries: list[dict[str, Any]]) -> Section:
    section = Section("gan", "DCGAN (report B, part 2)")
    for entry in entries:
        name, summary = entry["name"], entry["summary"]
        section.blocks += [Heading(f"Run {name}"), gan_facts(name, summary)]
        if summary.get("synthetic_data"):
            section.blocks.append(Text(SYNTHETIC_GAN_NOTE, "warning"))
        figures = entry["figures"]
        if figures["samples"]:
            section.blocks.append(Figure(f"gan/{name}/samples", figures["samples"],
                                         f"Fixed-noise samples at step {entry['samples_step']:,} (not cherry-picked).",
                                         pixel_art=True))
        if figures["losses"]:
            section.blocks.append(Figure(f"gan/{name}/losses", figures["losses"],
                                         "Losses and discriminator outputs against optimiser steps; red lines mark "
                                         "collapses."))
        events = summary.get("collapse_events") or []
        section.blocks.append(collapse_table(name, events) if events
                              else Text("No mode collapse was detected in this run."))
    return section


def gan_facts(name: str, summary: dict[str, Any]) -> Facts:
    params = summary.get("parameters") or {}
    final = summary.get("final") or {}
    ours = f"{params.get('generator', 0):,} + {params.get('discriminator', 0):,}"
    theirs = f"{REPORT_B_GAN_PARAMETERS['generator']:,} + {REPORT_B_GAN_PARAMETERS['discriminator']:,}"
    return Facts(f"gan/{name}/facts", [
        ("Steps", count(summary.get("steps"))),
        ("Optimiser steps (including rolled-back work)", count(summary.get("optimizer_steps"))),
        ("Parameters, generator + discriminator", Cell(f"{ours} (report B: {theirs})", params.get("total"), True)),
        ("Precision", text(precision_of_gan(summary))),
        ("Collapse handling", text(summary["collapse_mode"])),
        ("Collapse events", count(len(summary.get("collapse_events") or []))),
        ("Recoveries", count(summary.get("recoveries"))),
        ("Departures from report B's protocol", text(departed_facts(departures(summary)))),
        ("Final D loss", decimal(final.get("d_loss"))),
        ("Final G loss", decimal(final.get("g_loss"))),
        ("Final learning rate", scientific(summary.get("final_lr"))),
        ("Wall time", duration(summary.get("wall_time_s"))),
        ("Device", text(summary.get("device_name") or summary.get("device"))),
    ])


def departed_facts(departed: list[str]) -> str:
    return "; ".join(departed) or "none"


def collapse_table(name: str, events: list[dict[str, Any]]) -> Table:
    columns = ["Step", "Optimiser steps", "Symptom", "Action", "Back to step", "Seed after", "Learning rate after",
               "Detail"]
    rows = [[count(e.get("step")), count(e.get("optimizer_steps")), text(e.get("reason")), text(e.get("action")),
             count(e.get("rolled_back_to")), text(e.get("new_seed")), scientific(lr_after(e)), text(e.get("detail"))]
            for e in events]
    return Table(f"gan/{name}/collapses", columns, rows, "Mode-collapse events and what recovery did (the run's "
                 "summary.json, `collapse_events`).")


FID_STAGES = ("fid-b", "fid")  # report B's protocol, ours


def fid_section(entries: list[dict[str, Any]], figures: dict[str, str], collected: dict[str, Any]) -> Section:
    """Every FID result, and each FID stage's record in the pipelines (why one is missing)."""
    section = Section("fid", f"FID against CIFAR-100 (report B: {REPORT_B_FID})")
    section.blocks.append(Text(
        f"Two protocols (docs/provenance.md). Report B's: its step-{REPORT_B_FID_STEP:,} snapshot, chosen by eye, "
        f"{REPORT_B_FID_IMAGES:,} samples against the test set (`cifar fid --snapshot RUN`, pipeline stage "
        f"fid-b, which also scores the {REPORT_B_GAN_STEPS:,}-step snapshot report B judged it against). Ours: "
        "every snapshot scored against the training split, and only the chosen one scored on the test set, with "
        "noise the choice never saw (`cifar fid --select-best RUN`, stage fid): choosing on the test set and "
        "reporting that score would flatter it. Beside each score: the GAN run's recoveries from mode collapse "
        "and how it departed from report B's protocol, as its trainer recorded them (bf16, flipped images, a "
        "rollback: the step counter moved back, a new seed, a lower learning rate; a collapse left unrecovered). "
        "A restart from step 0 is report B's own remedy, not a departure."))
    records = pipeline_records(collected, *FID_STAGES)
    if records:
        section.blocks.append(stage_records_table(records))
    if not entries:
        section.blocks.append(Text("No FID has been computed here: each FID stage's record above says why.", "note"))
        return section
    if any((e["summary"].get("real") or {}).get("dataset") == "synthetic" for e in entries):
        section.blocks.append(Text(SYNTHETIC_FID_NOTE, "warning"))
    if any(e["summary"].get("weights_standard") is False for e in entries):
        section.blocks.append(Text("Some scores used Inception weights that are not pytorch-fid's released file (by "
                                   "sha256): those FIDs are not comparable with published ones.", "warning"))
    section.blocks.append(fid_table(entries, collected))
    for comparison in snapshot_comparisons(collected):
        section.blocks.append(comparison_table(comparison, collected))
    if "fid_over_snapshots" in figures:
        section.blocks.append(Figure("fid_over_snapshots", figures["fid_over_snapshots"],
                                     f"FID of each generator snapshot (the legend names the split each is against); "
                                     f"report B's {REPORT_B_FID} was its step {REPORT_B_FID_STEP:,} snapshot on "
                                     f"{REPORT_B_FID_IMAGES:,} samples against the test set."))
    for entry in entries:
        if entry["summary"].get("ranking"):
            section.blocks.append(ranking_table(entry["name"], entry["summary"]))
    return section


def stage_records_table(records: list[tuple[str, dict[str, Any]]]) -> Table:
    rows = [[text(f"pipeline {profile}"), text(record["stage"]), text(record.get("status")),
             text(record.get("reason") or record.get("summary"))] for profile, record in records]
    return Table("fid/stages", ["Pipeline", "Stage", "Status", "Reason, or the result"], rows,
                 "Each FID stage as the pipeline's last run recorded it (fid-b: report B's protocol; fid: ours).")


def fid_table(entries: list[dict[str, Any]], collected: dict[str, Any]) -> Table:
    columns = ["Name", "Generated images", "Protocol", "Generated", "Real (split)", "FID", "Minus report B",
               "The GAN run", "Weights", "Time"]
    rows = []
    for entry in entries:
        s = entry["summary"]
        real = s.get("real") or {}
        fid = s.get("fid")
        key, protocol = fid_protocol(s)
        if key == "report-b" and run_departures(s, collected):
            protocol += "; but its GAN run departed from that protocol (beside)"
        rows.append([text(entry["name"]), text(fid_source(s)), text(protocol), count(s.get("n_fake")),
                     Cell(f"{s.get('n_real', 0):,} {real.get('dataset', '')} {real.get('split', '')}".strip(),
                          s.get("n_real"), True),
                     decimal(fid, 2), decimal(None if fid is None else fid - REPORT_B_FID, 2),
                     text(gan_note(s, collected)),
                     text(f"{_weights_name(s)} ({(s.get('weights') or {}).get('sha256', '')[:12]})"),
                     duration((s.get("seconds") or {}).get("total"))])
    return Table("fid/scores", columns, rows, "Each `cifar fid` result and how it was measured; for a run, the "
                 "chosen snapshot's score; the GAN run's recoveries and departures from report B's protocol.")


def comparison_table(comparison: dict[str, Any], collected: dict[str, Any]) -> Table:
    """Report B's snapshot and those scored beside it, the same way (stage fid-b)."""
    rows = []
    for i, (step, fid) in enumerate(comparison["pairs"]):
        theirs = REPORT_B_FID_STEP if i == 0 else REPORT_B_GAN_STEPS
        role = "report B's choice" if i == 0 else "the snapshot report B judged it against"
        rows.append([count(step), decimal(fid, 2), text(role if step == theirs else f"in place of {role} ({theirs:,})")])
    summary = comparison["summary"]
    return Table(f"fid/{comparison['name']}/compared", ["Snapshot step", "FID", "Stands for"], rows,
                 f"Report B chose its {REPORT_B_FID_STEP:,}-step snapshot, by eye, as 'more stable and less noisy "
                 f"than the samples taken at {REPORT_B_GAN_STEPS:,} steps'; stage fid-b scores both the same way "
                 f"(fid/{comparison['name']}: {summary.get('n_fake')} samples each, the "
                 f"{(summary.get('real') or {}).get('split')} split). {gan_note(summary, collected)}.")


def ranking_table(name: str, summary: dict[str, Any]) -> Table:
    ranked = sorted(summary["ranking"], key=lambda r: r["step"])
    best = (summary.get("best") or {}).get("step")
    rows = [[count(r["step"]), decimal(r["fid"], 2), count(r.get("n_fake")), Cell("chosen" if r["step"] == best else "")]
            for r in ranked]
    split = ranking_split(summary)
    return Table(f"fid/{name}/ranking", ["Snapshot step", "FID", "Samples", "Selected"],
                 rows, f"fid/{name}: every snapshot of GAN run {gan_run_of(summary)} against the {split} split, on "
                 f"the same noise; the chosen one's {(summary.get('real') or {}).get('split')} score is in the "
                 "table above.")


def fid_source(summary: dict[str, Any]) -> str:
    fake = summary.get("fake") or {}
    kind = fake.get("kind")
    if kind == "run":
        return f"GAN run {gan_run_of(summary)}, chosen snapshot step {(summary.get('best') or {}).get('step')}"
    if kind == "checkpoint":
        step = snapshot_step(fake.get("path"))
        where = f"step {step}" if step is not None else Path(fake["path"]).name
        return f"GAN run {gan_run_of(summary)}, {where}"
    return f"{kind} {fake.get('path')}"


def _weights_name(summary: dict[str, Any]) -> str | None:
    path = (summary.get("weights") or {}).get("path")
    return Path(path).name if path else None
