"""The report's document: which data, an overview, both reports number by number (`anchors`), one
section per stage that has run, where every protocol value comes from (`protocols`), and where each
stage ran. Stage sections come from `classify_sections` and `gan_sections`."""

from __future__ import annotations

from typing import Any

from cifar_core.protocols import PROTOCOLS, Setting, departure_wording
from cifar_core.report.anchors import anchors_section
from cifar_core.report.classify_sections import (
    ablation_section,
    accuracy_section,
    recipe_section,
    retrain_section,
    train_section,
    trials_on_gpu,
    tune_section,
)
from cifar_core.report.collect import summaries_of
from cifar_core.report.departures import protocol_runs, values_here
from cifar_core.report.document import (
    Cell,
    Document,
    Facts,
    Heading,
    Section,
    Table,
    Text,
    count,
    duration,
    percent,
    text,
)
from cifar_core.report.gan_sections import FID_STAGES, fid_section, gan_section
from cifar_core.report.points import accuracy_points, fid_caveats, pipeline_records

STAGE_TITLES = {"tune": "Model selection (Ray Tune + ASHA)", "retrain": "Full-data retraining",
                "recipe": "The reports' own models (recipes)", "train": "Training runs", "gan": "DCGAN", "fid": "FID"}


def build_document(collected: dict[str, Any], figures: dict[str, str]) -> Document:
    stages = collected["stages"]
    subtitle = f"Results in {collected['results_dir']}, report built {collected['created']}."
    everything = [e for entries in stages.values() for e in entries]
    fid = None
    if stages["fid"] or pipeline_records(collected, *FID_STAGES):
        with summaries_of(stages["fid"] + stages["gan"]):
            fid = fid_section(stages["fid"], figures, collected)
    if not everything:
        return Document("CIFAR-100 study report", Text("No stages have run yet.", "note"), subtitle,
                        [nothing_section(collected), anchors_section(collected), *([fid] if fid else []),
                         provenance_section(collected)])
    with summaries_of(everything):
        sections = [overview_section(stages, collected["data"]), anchors_section(collected)]
    if "accuracy_vs_parameters" in figures:
        with summaries_of(stages["train"] + stages["tune"]):
            sections.append(accuracy_section(figures, any(p["synthetic"] for p in accuracy_points(collected))))
    recipes = [e for e in stages["recipe"] if e["summary"].augment is None]
    builders = [("tune", lambda e: tune_section(e, figures)), ("retrain", retrain_section),
                ("recipe", lambda e: recipe_section(recipes) if recipes else None), ("recipe", ablation_section),
                ("train", train_section), ("gan", gan_section)]
    for stage, build in builders:
        if stages[stage]:
            with summaries_of(stages[stage]):
                section = build(stages[stage])
            if section is not None:
                sections.append(section)
    if fid is not None:  # also when no FID could run: each FID stage's reason
        sections.append(fid)
    with summaries_of(everything):
        sections.append(provenance_section(collected))
        sections.append(environment_section(collected))
    return Document("CIFAR-100 study report", data_banner(collected["data"]), subtitle, sections)


def data_banner(data: dict[str, Any]) -> Text:
    """The first thing a reader sees: whether these are CIFAR-100 results at all."""
    verdict = data["verdict"]
    if verdict == "synthetic":
        return Text("SYNTHETIC DATA: every result here comes from the generated stand-in for CIFAR-100 "
                    "(`cifar data synth`), not from CIFAR-100. The numbers show that the pipeline works; they "
                    "cannot be compared with reports A and B.", "warning")
    if verdict == "real":
        return Text("Real CIFAR-100: every result that records its data used the official CIFAR-100 files.", "ok")
    if verdict == "mixed":
        synthetic = ", ".join(s["where"] for s in data["sources"] if s["synthetic"])
        return Text(f"MIXED DATA: some results come from the synthetic stand-in, not CIFAR-100 ({synthetic}); "
                    "the others from real CIFAR-100.", "warning")
    return Text("Unknown data: these results do not record whether they used CIFAR-100 or the synthetic stand-in.",
                "note")


def nothing_section(collected: dict[str, Any]) -> Section:
    folders = ", ".join(f"{stage}/" for stage in collected["stages"])
    blocks = [Text(f"No stages have run yet: {collected['results_dir']} holds no summary.json under {folders}. "
                   "Run `cifar pipeline --profile smoke` (or any stage), then `cifar report` again.")]
    if collected["incomplete"]:
        blocks.append(incomplete_text(collected["incomplete"]))
    return Section("nothing", "No stages have run", blocks)


def overview_section(stages: dict[str, list], data: dict[str, Any]) -> Section:
    rows = [[text(STAGE_TITLES[stage]), Cell(str(len(entries)), len(entries), True), text(stage_data(stage, data)),
             text(headline(stage, entries))] for stage, entries in stages.items() if entries]
    table = Table("overview", ["Stage", "Results", "Data", "Headline"], rows,
                  "Each stage's results, the data they come from (SYNTHETIC: the generated stand-in, not CIFAR-100, "
                  "whose numbers cannot be compared with the reports'), and its best result.")
    return Section("overview", "Overview", [table])


def stage_data(stage: str, data: dict[str, Any]) -> str:
    """Which data a stage's results come from: CIFAR-100, SYNTHETIC, MIXED, or not recorded."""
    known = {s["synthetic"] for s in data["sources"] if s["where"].startswith(f"{stage}/") and s["synthetic"] is not None}
    return "not recorded" if not known else "MIXED" if len(known) == 2 else "SYNTHETIC" if True in known else "CIFAR-100"


def headline(stage: str, entries: list[dict[str, Any]]) -> str:
    """One line per stage: its best result."""
    parts = []
    for e in entries:
        s = e["summary"]
        if stage == "tune" and s.best:
            best = s.best
            parts.append(f"{e['name']}: {s.trials} trials, best {best.params.get('model.name')}/"
                         f"{best.params.get('optim.name')} at {percent(best.val_acc).text}% validation")
        elif stage == "retrain" and s.models:
            top = max(s.models, key=lambda m: m.test_top1)
            parts.append(f"{e['name']}: best {top.model} at {percent(top.test_top1).text}% test")
        elif stage == "recipe" and s.by_model:
            shown = ", ".join(f"{m.label} {percent(m.test_top1_mean).text}%" for m in s.by_model)
            parts.append(f"{e['name']}: {shown} test")
        elif stage == "gan":
            parts.append(f"{e['name']}: {count(s.steps).text} steps, "
                         f"{len(s.collapse_events or [])} collapse(s), {s.recoveries} recovery(ies)")
        elif stage == "fid":
            caveats = fid_caveats(s)
            parts.append(f"{e['name']}: FID {s.fid:.2f}" + (f" ({'; '.join(caveats)})" if caveats else ""))
    if stage == "train":
        tested = [e for e in entries if e["summary"].test is not None]
        parts.append(f"{len(tested)} of {len(entries)} evaluated on the test set")
        if tested:
            best = max(tested, key=lambda e: e["summary"].test.top1)
            parts.append(f"best {best['name']} at {percent(best['summary'].test.top1).text}% test")
    return "; ".join(parts) or "no results yet"


def environment_section(collected: dict[str, Any]) -> Section:
    env = collected["environment"]
    versions = [(name, text(version)) for name, version in env["versions"].items()]
    facts = Facts("environment/versions", [*versions, ("platform", text(env["platform"])),
                                           ("CPU cores", text(env["cpu_count"]))])
    blocks = [Text("Versions of the environment that built this report (on a cluster, the image the stages ran "
                   "in); each stage records its own device and time below."), facts, stage_times_table(collected),
              ran_on_table(collected)]
    if collected["incomplete"]:
        blocks.append(incomplete_text(collected["incomplete"]))
    return Section("environment", "Environment, devices and time per stage", blocks)


def stage_times_table(collected: dict[str, Any]) -> Table:
    stages, rows = collected["stages"], []
    for e in stages["tune"]:
        rows.append(["tune", e["name"], search_device(e), e["summary"].wall_time_s, "wall time of the search"])
    for stage in ("retrain", "recipe"):
        for e in stages[stage]:
            models = e["summary"].models
            seconds = sum(m.train_time_s or 0 for m in models)
            devices = ", ".join(sorted({m.device for m in models if m.device})) or None
            rows.append([stage, e["name"], devices, seconds, "training time of its models"])
    for e in stages["train"]:
        s = e["summary"]
        rows.append(["train", e["name"], s.device_name or s.device, s.train_time_s, "training time, all epochs"])
    for e in stages["gan"]:
        s = e["summary"]
        rows.append(["gan", e["name"], s.device_name or s.device, s.wall_time_s, "wall time"])
    for e in stages["fid"]:
        s = e["summary"]
        rows.append(["fid", e["name"], s.device, (s.seconds or {}).get("total"), "wall time"])
    for p in collected["pipelines"]:
        for record in p["summary"].stages if p["summary"] else []:
            measured = "; the stage's own work time" if record.work_s is not None else ""
            rows.append([f"pipeline {p['name']}", record.stage, None, record.work_s, f"{record.status}{measured}"])
    body = [[text(stage), text(name), text(device), duration(seconds), text(note)]
            for stage, name, device, seconds, note in rows]
    return Table("environment/stages", ["Stage", "Result", "Device", "Time", "Measured"], body)


def search_device(entry: dict[str, Any]) -> str:
    """Where a search's trials ran (its `ran_on`), not the device it was asked for ("auto")."""
    found = sorted({p.device_name or p.device for p in entry["summary"].ran_on or [] if p.device_name or p.device})
    if found:
        return ", ".join(found)
    on_gpu = trials_on_gpu(entry)
    if on_gpu is not None:
        return "cuda" if on_gpu else "cpu"
    asked = (entry["summary"].settings or {}).get("device")
    return f"not recorded by the search (asked: {asked}; a GPU share when the cluster had GPUs)"


def ran_on_table(collected: dict[str, Any]) -> Table:
    """Each task of each stage result: the Ray node, host and device it ran on (`ran_on`)."""
    rows = []
    for stage, entries in collected["stages"].items():
        for e in entries:
            for place in e["summary"].ran_on or []:
                rows.append([text(stage), text(e["name"]), text(place.work), text((place.node_id or "")[:12]),
                             text(place.hostname), text(place.device_name or place.device), duration(place.work_s)])
    for p in collected["pipelines"]:
        for place in (p["summary"].report_ran_on if p["summary"] else None) or []:
            rows.append([text(f"pipeline {p['name']}"), text("report"), text(None), text((place.node_id or "")[:12]),
                         text(place.hostname), text(place.device_name), duration(place.work_s)])
    return Table("environment/ran_on", ["Stage", "Result", "Work", "Ray node", "Host", "Device", "Work time"], rows,
                 "Where each task ran (`ran_on` in the stages' summaries; the node is empty outside Ray).")


def provenance_section(collected: dict[str, Any]) -> Section:
    """Where each protocol value comes from (the same tables as docs/provenance.md), and the value each
    result here used: the profile that ran, not the full profile's defaults."""
    blocks = [Text("Every value of the reports' protocols as this study runs them by default (its full profile), "
                   "with its source: a report's section, the PyTorch DCGAN tutorial report B took its GAN code from, "
                   "a PyTorch default, or this project's choice with the reason (the same tables are "
                   "docs/provenance.md in the repository). The last column gives the value each result here used, "
                   "as its summary recorded it, and says where it departs from the protocol's.")]
    runs = protocol_runs(collected)
    for protocol in PROTOCOLS:
        rows = [[text(s.name), text(s.text), text(s.source.label), text(why_and_note(s)), text(s.key),
                 text(values_here(s, runs.get(protocol.key, [])))] for s in protocol.settings]
        blocks += [Heading(protocol.title), Table(f"provenance/{protocol.key}", [
            "Setting", "Protocol value", "Source", "Why (ours) / note", "Key", "Value in these results"], rows)]
    return Section("provenance", "Provenance: the protocols' values, their sources, and the values these results used",
                   blocks)


def why_and_note(setting: Setting) -> str:
    """Our reason (or the tutorial's or PyTorch's detail), the note a reader needs beside it, and where
    our value departs from the report's by itself."""
    why = "" if setting.source.is_report else setting.source.where
    departs = departure_wording(setting)
    return "; ".join(part for part in (why, setting.note and f"note: {setting.note}", departs) if part)


def incomplete_text(incomplete: list[dict[str, str]]) -> Text:
    """The results not reported: those without a summary yet, and those not read, each with why."""
    waiting = [f"{i['stage']}/{i['name']}" for i in incomplete if not i.get("reason")]
    refused = [f"{i['stage']}/{i['name']} ({i['reason']})" for i in incomplete if i.get("reason")]
    said = [f"Without a summary.json yet (running, interrupted or failed), so not reported: {', '.join(waiting)}."] \
        if waiting else []
    return Text(" ".join(said + ([f"Not read: {'; '.join(refused)}."] if refused else [])), "note")
