"""The GAN checkpoint: one dict, written atomically, read back with one-line errors.

The generator sits under the classifier checkpoints' keys (`model_name`, `model_kwargs`,
`model_state`) so tools can share them, the discriminator under `discriminator_*`. Only last.pt has
`training` (optimisers, RNG, detector, healthy snapshot, metrics rows); step_<N>.pt has the networks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cifar_core.checkpoint import load_error_summary, read_checkpoint_file, save_checkpoint
from cifar_core.errors import CheckpointError, CifarError
from cifar_core.models import create_model

GAN_CHECKPOINT_FORMAT = "cifar100-k8s/gan/v1"
GENERATOR_NAME = "dcgan_generator"
DISCRIMINATOR_NAME = "dcgan_discriminator"


def models_payload(
    generator: nn.Module, generator_kwargs: dict, discriminator: nn.Module, discriminator_kwargs: dict
) -> dict[str, Any]:
    return {
        "format": GAN_CHECKPOINT_FORMAT,
        "model_name": GENERATOR_NAME,
        "model_kwargs": dict(generator_kwargs),
        "model_state": generator.state_dict(),
        "discriminator_name": DISCRIMINATOR_NAME,
        "discriminator_kwargs": dict(discriminator_kwargs),
        "discriminator_state": discriminator.state_dict(),
    }


def save_gan_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    return save_checkpoint(checkpoint, path)


def read_gan_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check the format; every way this can fail is a CheckpointError naming the file."""
    return read_checkpoint_file(path, GAN_CHECKPOINT_FORMAT, "DCGAN", map_location)


def build_network(checkpoint: dict[str, Any], role: str, source: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the generator or discriminator a checkpoint describes and load its weights (on CPU)."""
    prefix = "model" if role == "generator" else "discriminator"
    expected = GENERATOR_NAME if role == "generator" else DISCRIMINATOR_NAME
    name = checkpoint.get(f"{prefix}_name")
    if name != expected:
        raise CheckpointError(f"{source} holds {name!r} where a {expected!r} was expected")
    try:
        network = create_model(name, **checkpoint[f"{prefix}_kwargs"])
        network.load_state_dict(checkpoint[f"{prefix}_state"])
    except (KeyError, RuntimeError, TypeError, ValueError, CifarError) as exc:
        raise CheckpointError(
            f"{source}: the {role} weights do not fit its architecture ({load_error_summary(exc)})"
        ) from None
    return network
