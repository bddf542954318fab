"""One checkpoint shape for every classifier run: written atomically, read with clear errors.

A checkpoint is a plain dict:
    format, model_name, model_kwargs, model_state, optimizer_state, scheduler_state,
    epoch (epochs completed), step (optimisation steps completed), best_val_acc,
    history (per-epoch metrics so far), config (TrainConfig.to_dict()), rng (torch RNG states)

`rng` is restored on resume, but the engine reseeds at every epoch start from (seed, epoch), so an
epoch's randomness never depends on it: it is kept for callers that sample outside `fit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cifar_core.atomic import atomic_torch_save, copy_file_atomically
from cifar_core.errors import CheckpointError

CHECKPOINT_FORMAT = "cifar100-k8s/classifier/v1"


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write atomically: on any failure the previous file at `path` is untouched."""
    try:
        return atomic_torch_save(checkpoint, path)
    except OSError as exc:
        raise CheckpointError(f"could not write checkpoint {path}: {exc.strerror or exc}") from None


def copy_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a written checkpoint file (e.g. last.pt to best.pt) atomically, without re-serialising."""
    try:
        return copy_file_atomically(source, target)
    except OSError as exc:
        raise CheckpointError(f"could not write checkpoint {target}: {exc.strerror or exc}") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return read_checkpoint_file(path, CHECKPOINT_FORMAT, "cifar100-k8s classifier", map_location)


def read_checkpoint_file(path: str | Path, expected_format: str, kind: str,
                         map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict and check its format; every failure is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # weights_only: checkpoints are tensors and plain containers, so refuse arbitrary pickles.
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a torn or foreign file
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}): file is corrupt or not a checkpoint") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != expected_format:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path} is not a {kind} checkpoint (format {found!r}, expected {expected_format!r})")
    return checkpoint


def capture_rng() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
