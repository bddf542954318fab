"""Figures as PNG files: matplotlib without a display (pods have none), written atomically."""

from __future__ import annotations

import io
from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use (it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Lay out, render to PNG in memory, write atomically, and free the figure."""
    from cifar_core.atomic import atomic_write_bytes

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
