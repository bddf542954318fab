"""The report's own figures (matplotlib, headless). Figures a stage already draws (tune curves,
retrain loss, GAN losses and samples) are reused as they are, not redrawn."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cifar_core.figures import pyplot, save_figure
from cifar_core.protocols import (
    ASSUMED_PARAMETER_LIMIT,
    PUBLISHED,
    REPORT_A_MODELS,
    REPORT_B_FID,
    REPORT_B_FID_STEP,
    REPORT_B_RESDW_PARAMETERS,
    REPORT_B_TEST_PCT,
)
from cifar_core.report.collect import summaries_of
from cifar_core.report.points import accuracy_points, fid_series
from cifar_core.summaries import Rung

REPORT_A = [(m.label, m.test_top1_pct, m.parameters) for m in REPORT_A_MODELS]

MARKERS = {"test": ("o", "tab:blue"), "validation": ("o", "tab:cyan"), "tune": (".", "0.55")}
LABELS = {"test": "this study: test accuracy", "validation": "this study: validation accuracy (no test score)",
          "tune": "tune trials: best validation accuracy"}


def make_figures(collected: dict[str, Any], figures_dir: Path) -> dict[str, str]:
    """Draw every figure the collected results support; returns {figure key: PNG path}."""
    figures, stages = {}, collected["stages"]
    with summaries_of(stages["train"] + stages["tune"]):
        points = accuracy_points(collected)
    if points:
        figures["accuracy_vs_parameters"] = accuracy_vs_parameters(points, figures_dir / "accuracy_vs_parameters.png")
    with summaries_of(stages["fid"]):
        series = fid_series(collected)
    if series:
        figures["fid_over_snapshots"] = fid_over_snapshots(series, figures_dir / "fid_over_snapshots.png")
    for entry in collected["stages"]["tune"]:
        rungs = entry["summary"].rungs
        if rungs:
            path = figures_dir / f"tune_{entry['name']}_rungs.png"
            with summaries_of([entry]):
                figures[f"tune/{entry['name']}/rungs"] = trials_per_rung(rungs, entry["name"], path)
    return figures


def accuracy_vs_parameters(points: list[dict[str, Any]], path: Path) -> str:
    """Every trained model's accuracy against its size, with both reports' models and budget."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.2))
    for kind in ("tune", "validation", "test"):
        chosen = [p for p in points if p["kind"] == kind]
        if chosen:
            marker, color = MARKERS[kind]
            synthetic = " (SYNTHETIC data)" if any(p["synthetic"] for p in chosen) else ""
            ax.scatter([p["parameters"] for p in chosen], [p["accuracy_pct"] for p in chosen], marker=marker,
                       color=color, s=40 if kind != "tune" else 30, zorder=3,
                       label=LABELS[kind].replace(":", f"{synthetic}:", 1))
    for p in best_test_point_per_size(points):
        ax.annotate(p["label"], (p["parameters"], p["accuracy_pct"]), fontsize=7, xytext=(5, 3),
                    textcoords="offset points")
    ax.scatter([n for _, _, n in REPORT_A], [pct for _, pct, _ in REPORT_A], marker="D", color="tab:green",
               zorder=3, label="report A: CNN6 / CNN7 / CNN2, test")
    # CNN6 and CNN7 sit close together: their labels go on opposite sides.
    for (name, pct, n), offset in zip(REPORT_A, ((-30, -11), (4, 4), (4, -11)), strict=True):
        ax.annotate(name, (n, pct), fontsize=7, xytext=offset, textcoords="offset points", color="tab:green")
    ax.scatter([REPORT_B_RESDW_PARAMETERS], [REPORT_B_TEST_PCT], marker="*", s=160, color="tab:red", zorder=4,
               label=f"report B: resdw, {REPORT_B_TEST_PCT}% with {REPORT_B_RESDW_PARAMETERS:,} parameters")
    ax.axvline(ASSUMED_PARAMETER_LIMIT, color="tab:red", linestyle="--", linewidth=1,
               label=f"report B's parameter limit (value not stated; {ASSUMED_PARAMETER_LIMIT:,} assumed)")
    published = ", ".join(f"{pct}" for _, pct in PUBLISHED)
    for i, (_, pct) in enumerate(PUBLISHED):
        ax.axhline(pct, color="0.6", linestyle=":", linewidth=1,
                   label=f"published, cited by report A: {published}%\n(sizes not given)" if i == 0 else None)
    sizes = [p["parameters"] for p in points] + [n for *_, n in REPORT_A] + [ASSUMED_PARAMETER_LIMIT]
    ax.set_xscale("log")
    ax.set_xlim(min(sizes) / 2, max(sizes) * 2)
    ax.set_ylim(0, 100)
    title = "Accuracy against model size"
    if any(p["synthetic"] for p in points):
        title += "\nthis study's points: SYNTHETIC data, not comparable with the reports'"
    ax.set(xlabel="parameters (log scale)", ylabel="top-1 accuracy (%)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


def best_test_point_per_size(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The label-worthy points: the best test score at each model size (same-size runs would overlap)."""
    best: dict[int, dict[str, Any]] = {}
    for p in points:
        if p["kind"] == "test" and (p["parameters"] not in best or p["accuracy_pct"] > best[p["parameters"]]["accuracy_pct"]):
            best[p["parameters"]] = p
    return list(best.values())


def fid_over_snapshots(series: list[dict[str, Any]], path: Path) -> str:
    """FID of each GAN snapshot against the step it was taken at, and report B's 46.85."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    values = [REPORT_B_FID]
    for s in series:  # each label names its data and weights where they make it incomparable
        ax.plot(s["steps"], s["fids"], marker="o", linewidth=1.2, label=s["label"])
        values += s["fids"]
    incomparable = " on CIFAR-100, for reference only: not comparable with the lines marked" \
        if any(s["caveats"] for s in series) else ""
    ax.axhline(REPORT_B_FID, color="tab:red", linestyle="--", linewidth=1,
               label=f"report B: {REPORT_B_FID} (step {REPORT_B_FID_STEP:,}){incomparable}")
    if max(values) / max(min(values), 1e-12) > 20:
        ax.set_yscale("log")  # a short or synthetic run can sit orders of magnitude from 46.85
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set(xlabel="generator snapshot (training step)", ylabel="FID (lower is better)", title="FID over snapshots")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def trials_per_rung(rungs: list[Rung], experiment: str, path: Path) -> str:
    """How many trials reached each ASHA rung (epochs reached), and how many ASHA stopped there."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    labels = [f"epoch {r.epoch}" for r in rungs]
    positions = range(len(rungs))
    reached = ax.bar([x - 0.2 for x in positions], [r.trials_reached for r in rungs], width=0.4,
                     color="tab:blue", label="trials reaching the rung")
    stopped = ax.bar([x + 0.2 for x in positions], [r.stopped_here for r in rungs], width=0.4,
                     color="tab:orange", label="stopped there by ASHA")
    ax.bar_label(reached, fontsize=8)
    ax.bar_label(stopped, fontsize=8)
    ax.set_xticks(list(positions), labels)
    top = max([r.trials_reached for r in rungs] + [1])
    ax.set_ylim(0, math.ceil(top * 1.2))
    ax.yaxis.set_major_locator(_integer_ticks())
    ax.set(ylabel="trials", title=f"{experiment}: trials per ASHA rung")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _save(fig, path: Path) -> str:
    return str(save_figure(fig, path, dpi=110))
