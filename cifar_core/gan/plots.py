"""The losses figure of a GAN run (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from cifar_core.figures import pyplot, save_figure


def save_loss_plot(rows: list[dict], path: str | Path) -> Path:
    """D and G losses (top) and D's outputs (bottom) against optimiser steps, collapses marked.

    The x axis counts every update made, including work later rolled back, so a recovery shows as
    a marked line rather than a curve folding back on itself.
    """
    plt = pyplot()
    metrics = [r for r in rows if "event" not in r]
    events = [r for r in rows if r.get("event") == "collapse"]
    x = [r["optimizer_steps"] for r in metrics]
    fig, (losses, outputs) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    losses.plot(x, [r["d_loss"] for r in metrics], label="D loss", linewidth=1)
    losses.plot(x, [r["g_loss"] for r in metrics], label="G loss", linewidth=1)
    losses.set_ylabel("BCE")
    outputs.plot(x, [r["d_x"] for r in metrics], label="D(x), real", linewidth=1)
    outputs.plot(x, [r["d_g_z"] for r in metrics], label="D(G(z)), fake", linewidth=1)
    outputs.set_ylabel("discriminator output")
    outputs.set_ylim(0, 1)
    outputs.set_xlabel("optimiser steps (including rolled-back work)")
    for event in events:
        for axes in (losses, outputs):
            axes.axvline(event["optimizer_steps"], color="red", linestyle="--", linewidth=1)
    losses.legend(loc="upper right")
    outputs.legend(loc="upper right")
    losses.set_title("DCGAN training" + (f" ({len(events)} collapse(s), red)" if events else ""))
    return save_figure(fig, path, dpi=100)
