"""The names of a GAN run's step files: `checkpoints/step_<N>.pt` (kept generator snapshots) and
`samples/step_<N>.png` (fixed-noise grids). Made and read only through these functions, by the
trainer, FID and the report; nothing here imports torch."""

from __future__ import annotations

import re
from pathlib import Path

_STEP_FILE = re.compile(r"step_(\d+)(\.[a-z]+)")


def step_file(step: int, suffix: str) -> str:
    """`step_<N><suffix>`, e.g. step_file(46000, ".pt") == "step_46000.pt"."""
    return f"step_{int(step)}{suffix}"


def step_of(path: str | Path | None, suffix: str = ".pt") -> int | None:
    """N of a `step_<N><suffix>` file name; None for anything else (last.pt, a stray file)."""
    match = _STEP_FILE.fullmatch(Path(path or "").name)
    return int(match.group(1)) if match and match.group(2) == suffix else None


def step_files(folder: str | Path, suffix: str) -> list[tuple[int, Path]]:
    """(N, path) of every `step_<N><suffix>` in `folder`, in step order; [] when there is no folder."""
    folder = Path(folder)
    found = [(step_of(p, suffix), p) for p in folder.glob(f"step_*{suffix}")] if folder.is_dir() else []
    return sorted((step, p) for step, p in found if step is not None)
