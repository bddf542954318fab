"""Report sections for the generative side: DCGAN runs and their FID scores (report B, part 2), each
score beside its own departures from report B's protocol and its GAN run's recoveries and departures;
no arithmetic with report B's 46.85 for a score that cannot be compared with it."""

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
    SYNTHETIC,
    departed_facts,
    departures_text,
    fid_caveats,
    fid_protocol,
    gan_note,
    gan_run_of,
    marked,
    pipeline_records,
    precision_of_gan,
    ranking_split,
    recorded_departures,
    scored_split,
    snapshot_comparisons,
    snapshot_step,
)
from cifar_core.summaries import CollapseEvent, FidSummary, GanSummary, RealImages, StageRow

SYNTHETIC_GAN_NOTE = "Trained on the synthetic stand-in: these samples and losses are not CIFAR-100 results."
SYNTHETIC_FID_NOTE = ("Scored against the synthetic stand-in's test images: these FIDs cannot be compared "
                      f"with report B's {REPORT_B_FID}.")


def gan_section(entries: list[dict[str, Any]]) -> Section:
    section = Section("gan", "DCGAN (report B, part 2)")
    for entry in entries:
        name, summary = entry["name"], entry["summary"]
        synthetic = bool(summary.synthetic_data)
        section.blocks.append(Heading(f"Run {name}"))
        if synthetic:
            section.blocks.append(Text(SYNTHETIC_GAN_NOTE, "warning"))
        section.blocks.append(gan_facts(name, summary))
        figures = entry["figures"]
        if figures["samples"]:
            section.blocks.append(Figure(f"gan/{name}/samples", figures["samples"], marked(
                f"Fixed-noise samples at step {entry['samples_step']:,} (not cherry-picked).", synthetic), pixel_art=True))
        if figures["losses"]:
            section.blocks.append(Figure(f"gan/{name}/losses", figures["losses"], marked(
                "Losses and discriminator outputs against optimiser steps; red lines mark collapses.", synthetic)))
        events = summary.collapse_events or []
        section.blocks.append(collapse_table(name, events, synthetic) if events
                              else Text("No mode collapse was detected in this run."))
    return section


def gan_facts(name: str, summary: GanSummary) -> Facts:
    params, final = summary.parameters, summary.final
    ours = f"{params.generator if params else 0:,} + {params.discriminator if params else 0:,}"
    theirs = f"{REPORT_B_GAN_PARAMETERS['generator']:,} + {REPORT_B_GAN_PARAMETERS['discriminator']:,}"
    return Facts(f"gan/{name}/facts", [
        ("Steps", count(summary.steps)),
        ("Optimiser steps (including rolled-back work)", count(summary.optimizer_steps)),
        ("Parameters, generator + discriminator", Cell(f"{ours} (report B: {theirs})", params and params.total, True)),
        ("Precision", text(precision_of_gan(summary))),
        ("Collapse handling", text(summary.collapse_mode)),
        ("Collapse events", count(len(summary.collapse_events or []))),
        ("Recoveries", count(summary.recoveries)),
        ("Departures from report B's DCGAN (its settings, the tutorial's, ours)",
         text(departed_facts(recorded_departures(summary)))),
        ("Final D loss", decimal(final.d_loss if final else None)),
        ("Final G loss", decimal(final.g_loss if final else None)),
        ("Final learning rate", scientific(summary.final_lr)),
        ("Wall time", duration(summary.wall_time_s)),
        ("Device", text(summary.device_name or summary.device)),
    ])


def collapse_table(name: str, events: list[CollapseEvent], synthetic: bool) -> Table:
    columns = ["Step", "Optimiser steps", "Symptom", "Action", "Back to step", "Seed after", "Learning rate after",
               "Detail"]
    rows = [[count(e.step), count(e.optimizer_steps), text(e.reason), text(e.action), count(e.rolled_back_to),
             text(e.new_seed), scientific(e.lr_after), text(e.detail)] for e in events]
    return Table(f"gan/{name}/collapses", columns, rows, marked(
        "Mode-collapse events and what recovery did (the run's summary.json, `collapse_events`).", synthetic))


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
        "reporting that score would flatter it. Beside each score: how it departed from report B's protocol (its "
        "snapshot, the number of images, BatchNorm when sampling, the Inception weights, the data), as `cifar fid` "
        "recorded it, and its GAN run's departures and recoveries from mode collapse, as its trainer recorded them "
        "(steps, batch size, bf16, flipped images, data; a rollback: the step counter moved back, a new seed, a "
        "lower learning rate; a collapse left unrecovered). A restart from step 0 is report B's own remedy, not a "
        "departure. A score on the synthetic stand-in or on other Inception weights is not set against 46.85."))
    records = pipeline_records(collected, *FID_STAGES)
    if records:
        section.blocks.append(stage_records_table(records))
    if not entries:
        section.blocks.append(Text("No FID has been computed here: each FID stage's record above says why.", "note"))
        return section
    if any(SYNTHETIC in fid_caveats(e["summary"]) for e in entries):
        section.blocks.append(Text(SYNTHETIC_FID_NOTE, "warning"))
    if any(e["summary"].weights_standard is False for e in entries):
        section.blocks.append(Text("Some scores used Inception weights that are not pytorch-fid's released file (by "
                                   "sha256): those FIDs are not comparable with published ones.", "warning"))
    section.blocks.append(fid_table(entries, collected))
    for comparison in snapshot_comparisons(collected):
        section.blocks.append(comparison_table(comparison, collected))
    if "fid_over_snapshots" in figures:
        caveats = sorted({c for e in entries for c in fid_caveats(e["summary"])})
        against = (f"; report B's {REPORT_B_FID} (its step {REPORT_B_FID_STEP:,} snapshot, {REPORT_B_FID_IMAGES:,} "
                   "samples, the test set) is drawn for reference only: these scores are not comparable with it ("
                   + "; ".join(caveats) + ")") if caveats else \
            (f"; report B's {REPORT_B_FID} was its step {REPORT_B_FID_STEP:,} snapshot on {REPORT_B_FID_IMAGES:,} "
             "samples against the test set")
        section.blocks.append(Figure("fid_over_snapshots", figures["fid_over_snapshots"], marked(
            f"FID of each generator snapshot (the legend names the split each is against){against}.",
            any(SYNTHETIC in fid_caveats(e["summary"]) for e in entries))))
    for entry in entries:
        if entry["summary"].ranking:
            section.blocks.append(ranking_table(entry["name"], entry["summary"]))
    return section


def stage_records_table(records: list[tuple[str, StageRow]]) -> Table:
    rows = [[text(f"pipeline {profile}"), text(record.stage), text(record.status), text(record.reason or record.summary)]
            for profile, record in records]
    return Table("fid/stages", ["Pipeline", "Stage", "Status", "Reason, or the result"], rows,
                 "Each FID stage as the pipeline's last run recorded it (fid-b: report B's protocol; fid: ours).")


def fid_table(entries: list[dict[str, Any]], collected: dict[str, Any]) -> Table:
    columns = ["Name", "Generated images", "Protocol", "Generated (images)", "Real (images, split)", "FID",
               "Minus report B's 46.85", "Departures of this score", "The GAN run", "Weights", "Time"]
    rows = []
    for entry in entries:
        s = entry["summary"]
        real = s.real or RealImages()
        caveats = fid_caveats(s)
        shown = decimal(s.fid, 2)
        rows.append([text(entry["name"]), text(fid_source(s)), text(fid_protocol(s)[1]), count(s.n_fake),
                     Cell(f"{s.n_real or 0:,} {real.dataset or ''} {real.split or ''}".strip(), s.n_real, True),
                     Cell(f"{shown.text} ({'; '.join(caveats)})", shown.value, True) if caveats else shown,
                     text(f"not comparable ({'; '.join(caveats)})") if caveats else decimal(s.fid - REPORT_B_FID, 2),
                     text(departures_text(recorded_departures(s), "report B's FID protocol")),
                     text(gan_note(s, collected)),
                     text(f"{_weights_name(s)} ({((s.weights.sha256 if s.weights else None) or '')[:12]})"),
                     duration((s.seconds or {}).get("total"))])
    synthetic = any(SYNTHETIC in fid_caveats(e["summary"]) for e in entries)
    return Table("fid/scores", columns, rows, marked(
        "Each `cifar fid` result and how it was measured; for a run, the chosen snapshot's score; beside it how the "
        "score departed from report B's FID protocol, and its GAN run's recoveries and departures from report B's "
        "DCGAN. A score that is not comparable with report B's is not subtracted from it.", synthetic))


def comparison_table(comparison: dict[str, Any], collected: dict[str, Any]) -> Table:
    """Report B's snapshot and those scored beside it, the same way (stage fid-b)."""
    rows = []
    for i, (step, fid) in enumerate(comparison["pairs"]):
        theirs = REPORT_B_FID_STEP if i == 0 else REPORT_B_GAN_STEPS
        role = "report B's choice" if i == 0 else "the snapshot report B judged it against"
        rows.append([count(step), decimal(fid, 2), text(role if step == theirs else f"in place of {role} ({theirs:,})")])
    summary = comparison["summary"]
    caveats = fid_caveats(summary)
    return Table(f"fid/{comparison['name']}/compared", ["Snapshot step", "FID", "Stands for"], rows, marked(
        f"Report B chose its {REPORT_B_FID_STEP:,}-step snapshot, by eye, as 'more stable and less noisy than the "
        f"samples taken at {REPORT_B_GAN_STEPS:,} steps'; stage fid-b scores both the same way (fid/{comparison['name']}: "
        f"{summary.n_fake} samples each, the {scored_split(summary)} split"
        + (f"; {'; '.join(caveats)}: comparable with each other, not with report B's" if caveats else "")
        + "). " + departures_text(recorded_departures(summary), "report B's FID protocol") + ". "
        f"{gan_note(summary, collected)}.", SYNTHETIC in caveats))


def ranking_table(name: str, summary: FidSummary) -> Table:
    ranked = sorted(summary.ranking, key=lambda r: r.step)
    best = summary.best.step if summary.best else None
    rows = [[count(r.step), decimal(r.fid, 2), count(r.n_fake), Cell("chosen" if r.step == best else "")] for r in ranked]
    split = ranking_split(summary)
    caveats = fid_caveats(summary)
    return Table(f"fid/{name}/ranking", ["Snapshot step", "FID", "Samples (images)", "Selected"], rows, marked(
        f"fid/{name}: every snapshot of GAN run {gan_run_of(summary)} against the {split} split, on the same noise; "
        f"the chosen one's {scored_split(summary)} score is in the table above"
        + (f" ({'; '.join(caveats)})" if caveats else "") + ".", SYNTHETIC in caveats))


def fid_source(summary: FidSummary) -> str:
    fake = summary.fake
    if fake.kind == "run":
        return f"GAN run {gan_run_of(summary)}, chosen snapshot step {summary.best.step if summary.best else None}"
    if fake.kind == "checkpoint":
        step = snapshot_step(fake.path)
        where = f"step {step}" if step is not None else Path(fake.path).name
        return f"GAN run {gan_run_of(summary)}, {where}"
    return f"{fake.kind} {fake.path}"


def _weights_name(summary: FidSummary) -> str | None:
    path = summary.weights.path if summary.weights else None
    return Path(path).name if path else None
