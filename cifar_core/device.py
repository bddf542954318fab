"""Which device work runs on and how it computes there: one policy for every command.

`pick_device` is the one "auto" rule, torch-free so that Ray's drivers decide without importing
torch: work given a GPU share runs on CUDA exactly when the share is above zero, never on a GPU Ray
gave someone else. `Precision.of` decides, once per unit of work, the device and how it computes there
(bf16 autocast, input dtype, memory format); that one value is passed down and says what ran.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cifar_core.errors import ConfigError

if TYPE_CHECKING:
    import torch

# Where bf16 autocast is used when a run asks for it (`amp`). On the CPU it would be slower, and the
# result would differ from float32 (PyTorch's default; neither report mentions precision) for no gain.
BF16_DEVICE_TYPES = ("cuda",)
# What a summary says of a unit that computed under bf16 autocast (else "float32").
BF16_AUTOCAST = "bf16 autocast"


def pick_device(requested: str, gpu_share: float | None = None) -> str:
    """The device name work runs on. `gpu_share` is what Ray gave the work (None outside Ray)."""
    if requested == "auto":
        if gpu_share is not None:
            return "cuda" if gpu_share > 0 else "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if gpu_share is not None and gpu_share == 0 and requested.startswith("cuda"):
        raise ConfigError(f"--device {requested} needs a GPU share for the work: give it GPUs (--gpus, --gpus-per-trial "
                          "or resources.<stage>.gpus)")
    return requested


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    import torch

    if isinstance(name, torch.device):
        return name
    try:
        device = torch.device(pick_device(name))
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA cannot be used here: {cuda_problem()}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


@dataclass(frozen=True)
class Precision:
    """How a run computes on `device`: `amp` asks for bf16 autocast, which applies where
    `bf16_device_types` says (CUDA; tests add "cpu" to run the bf16 path here); `channels_last` asks
    for NHWC tensors. Inputs are stored in the dtype the model is run in."""

    device: torch.device
    amp: bool = False
    channels_last: bool = False
    bf16_device_types: tuple[str, ...] = BF16_DEVICE_TYPES

    @classmethod
    def of(cls, device: str | torch.device = "auto", amp: bool = False, channels_last: bool = False) -> Precision:
        """The one decision of a unit of work: its device (an unusable one is a ConfigError with
        CUDA's reason) and how it computes there."""
        return cls(resolve_device(device), amp, channels_last)

    def record(self) -> dict[str, str]:
        """What ran, as summaries say it: the device, its name (the GPU's) and the arithmetic."""
        return {"device": str(self.device), "device_name": device_name(self.device),
                "precision": BF16_AUTOCAST if self.bf16 else "float32"}

    @property
    def bf16(self) -> bool:
        return self.amp and self.device.type in self.bf16_device_types

    @property
    def input_dtype(self) -> torch.dtype:
        import torch

        return torch.bfloat16 if self.bf16 else torch.float32

    @property
    def memory_format(self) -> torch.memory_format:
        import torch

        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self):
        """A fresh context: bf16 autocast on the device, or nothing (float32)."""
        import torch

        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def layout(self) -> dict:
        """What a DeviceLoader stores batches as: {"dtype", "channels_last"}."""
        return {"dtype": self.input_dtype, "channels_last": self.channels_last}

    def prepare_model(self, model):
        return model.to(self.device, memory_format=self.memory_format)

    def prepare_input(self, x):
        """A batch as the model takes it (a no-op for the device loader's own batches)."""
        return x.to(self.device, self.input_dtype, non_blocking=True).contiguous(memory_format=self.memory_format)


def device_name(device: str | torch.device) -> str:
    """What a summary records beside the device: the GPU's name for a CUDA device, else "cpu".
    Torch is imported only for CUDA devices (a CPU task never needs it)."""
    if not str(device).startswith("cuda"):
        return "cpu"
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def cuda_problem() -> str:
    """Why torch cannot use CUDA here, in one line."""
    import torch

    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) was built without CUDA"
    try:
        torch.cuda.init()
    except Exception as exc:  # torch reports a missing driver or a broken setup as RuntimeError/AssertionError
        return " ".join(str(exc).split()) or type(exc).__name__
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"no GPU is visible (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else "no GPU is visible"
