"""One checkpoint shape for every classifier run: a plain dict, written atomically, read with clear errors.

`partial` (the sums of the epoch in progress) and `rng` (the global torch generator, which dropout
draws from) let a run resume mid-epoch exactly; data order and augmentation need no state, as they
come from their own (seed, epoch) streams. The keys are those engine.py's `_checkpoint` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cifar_core.atomic import atomic_torch_save, copy_file_atomically
from cifar_core.errors import CheckpointError, os_error_line

CHECKPOINT_FORMAT = "cifar100-k8s/classifier/v1"
# What scoring or resuming reads; a file without one of these is refused with its name.
REQUIRED = {"model_name": str, "model_kwargs": dict, "model_state": dict, "epoch": int, "step": int, "config": dict}


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write atomically: on any failure the previous file at `path` is untouched."""
    try:
        return atomic_torch_save(checkpoint, path)
    except OSError as exc:
        raise CheckpointError(_write_failed(path, exc)) from None


def copy_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a written checkpoint file (e.g. last.pt to best.pt) atomically, without re-serialising."""
    try:
        return copy_file_atomically(source, target)
    except OSError as exc:
        raise CheckpointError(_write_failed(target, exc)) from None


def _write_failed(path: str | Path, exc: OSError) -> str:
    """The path, and the one at fault when it is another (a file where a folder must be)."""
    return f"could not write checkpoint {path}: {os_error_line(exc).removeprefix(f'{path}: ')}"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    checkpoint = read_checkpoint_file(path, CHECKPOINT_FORMAT, "cifar100-k8s classifier", map_location)
    require_keys(checkpoint, REQUIRED, path)
    return checkpoint


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


def require_keys(checkpoint: dict[str, Any], required: dict[str, type], path: str | Path) -> None:
    for key, kind in required.items():
        if key not in checkpoint:
            raise CheckpointError(f"{path} is incomplete: it has no {key!r}")
        value = checkpoint[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(f"{path}: {key!r} should be a {kind.__name__}, found {type(value).__name__}")


def load_error_summary(exc: BaseException) -> str:
    """One line out of torch's multi-line load_state_dict error: what was missing, extra or mis-sized."""
    lines = [line.strip().rstrip(".") for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    # torch's first line is only a heading ("Error(s) in loading state_dict for TinyCNN:").
    details = lines[1:] if len(lines) > 1 and lines[0].endswith(":") else lines
    text = "; ".join(details)
    return text if len(text) <= 400 else text[:397] + "..."


def capture_rng(device: torch.device | None = None) -> dict[str, Any]:
    """The global RNG state(s) training draws from: the CPU's, and the training GPU's."""
    state = {"torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
