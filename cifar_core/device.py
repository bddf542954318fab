"""Which device to run on: one rule for every command ("auto" = CUDA when present).

Inside Ray work the caller resolves "auto" from the resources the task was given first
(cifar_core.execution), so torch's own guess is only used outside Ray. A CUDA device that cannot
be used is refused at once, with the reason CUDA itself gives (no driver, no GPU visible, a torch
built without CUDA), not when the first tensor reaches it.
"""

from __future__ import annotations

import os

import torch

from cifar_core.errors import ConfigError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA cannot be used here: {cuda_problem()}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def device_name(device: str | torch.device) -> str:
    """What a summary records beside the device: the GPU's name for a CUDA device, else "cpu"."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def cuda_problem() -> str:
    """Why torch cannot use CUDA here, in one line."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) was built without CUDA"
    try:
        torch.cuda.init()
    except Exception as exc:  # torch reports a missing driver or a broken setup as RuntimeError/AssertionError
        return " ".join(str(exc).split()) or type(exc).__name__
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"no GPU is visible (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else "no GPU is visible"
