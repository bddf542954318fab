"""Every result's departures from the protocol it is set beside, as its stage computed them (a search's
computed here, by the same `cifar_core.protocols.departures`): one table of them all beside the
numbers, and the value each result used of each protocol row (the provenance section)."""

from __future__ import annotations

from typing import Any

from cifar_core.protocols import (
    DCGAN,
    FID,
    PROTOCOLS_BY_KEY,
    REPORT_A_FINAL,
    REPORT_A_SEARCH,
    Setting,
    departure_name,
    value_text,
)
from cifar_core.report.classify_sections import search_departures, search_settings
from cifar_core.report.document import Table, text
from cifar_core.report.points import departed_facts, recorded_departures

Run = tuple[str, dict[str, Any], list[str] | None]  # (result, its settings as compared, its departures)
Result = tuple[str, tuple[str, ...], dict[str, Any], list[str] | None]  # + the protocols it is set beside


def results(collected: dict[str, Any]) -> list[Result]:
    """Every result here: (name, the protocols it is set beside, its settings as compared, its departures)."""
    stages, found = collected["stages"], []
    for entry in stages["tune"]:
        found.append((f"tune/{entry['name']}", (REPORT_A_SEARCH.key,), search_settings(entry), search_departures(entry)))
    for stage, protocols in (("retrain", (REPORT_A_FINAL.key, REPORT_A_SEARCH.key)), ("recipe", ()),
                             ("gan", (DCGAN.key,)), ("fid", (FID.key,))):
        for entry in stages[stage]:
            s = entry["summary"]
            found.append((f"{stage}/{entry['name']}", protocols or (s.protocol,), s.protocol_settings or {},
                          recorded_departures(s)))
    return found


def protocol_runs(collected: dict[str, Any]) -> dict[str, list[Run]]:
    """{protocol key: [(result, its settings as compared, its departures)]} of every result here."""
    runs: dict[str, list[Run]] = {}
    for label, protocols, settings, departed in results(collected):
        for key in protocols:
            runs.setdefault(key, []).append((label, settings, departed))
    return runs


def departures_table(collected: dict[str, Any]) -> Table:
    """Each result once: the protocol it is set beside and each of its departures with its values."""
    rows = []
    for label, protocols, _, departed in results(collected):
        beside = "; ".join(PROTOCOLS_BY_KEY[key].title if key in PROTOCOLS_BY_KEY else str(key) for key in protocols)
        rows.append([text(label), text(beside), text(departed_facts(departed, ";\n"))])
    return Table("anchors/departures", ["Result", "Set beside", "Departures: this result's value (whose value the "
                                        "protocol has: that value)"], rows,
                 "Every result's departures from the protocol it is set beside, each with its values, as its stage "
                 "recorded them (a search's computed from its settings); the numbers above name them.")


def values_here(setting: Setting, runs: list[Run]) -> str | None:
    """The value of `setting` in the results compared with its protocol, those with the same value
    together, "(departs)" where it departs: "64 in gan/smoke (departs)"."""
    found: dict[tuple[str, bool], list[str]] = {}
    for label, settings, departed in runs:
        keys = [k for k in setting.keys if k in settings]
        if keys:
            value = " / ".join(dict.fromkeys(value_text(settings[k]) for k in keys))
            departs = any(departure_name(line) == setting.name for line in departed or [])
            found.setdefault((value, departs), []).append(label)
    return "; ".join(f"{value} in {', '.join(labels)}" + (" (departs)" if departs else "")
                     for (value, departs), labels in found.items()) or None
