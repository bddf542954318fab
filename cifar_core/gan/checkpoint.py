"""The GAN checkpoint: one dict, written atomically, read back with one-line errors.

The generator sits under the classifier checkpoints' keys (`model_name`, `model_kwargs`,
`model_state`) so tools can share them, the discriminator under `discriminator_*`. Only last.pt has
`training` (optimisers, RNG, detector, healthy snapshot, metrics rows); step_<N>.pt has the networks.
Every field is checked for type and range when the file is read, the weights and optimiser moments
against the networks they describe, so a resume never fails later on what it loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cifar_core.checkpoint import (
    OPTIMIZER,
    RNG_STATE,
    check_checkpoint,
    check_optimizer_state,
    fields,
    items,
    kind,
    load_weights,
    optional,
    read_checkpoint_file,
    real,
    record,
    save_checkpoint,
    state_dict,
    tensor,
    values,
    whole,
)
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


DETECTOR = fields({"symptom_since": values(optional(whole())), "last_symptom_step": optional(whole()),
                   "best_diversity": optional(real())})
FIELDS = {
    "model_name": kind(str), "model_kwargs": record, "model_state": state_dict,
    "discriminator_name": kind(str), "discriminator_kwargs": record, "discriminator_state": state_dict,
    "step": whole(), "config": kind(dict), "data_digest": optional(kind(str)),
    "training": fields({
        "opt_g": OPTIMIZER, "opt_d": OPTIMIZER, "rng": RNG_STATE, "data_seed": whole(), "lr": real(),
        "optimizer_steps": whole(), "recoveries": whole(), "interval_steps": whole(),
        "interval_sums": tensor(shape=(4,), floating=True), "detector": DETECTOR,
        "healthy": fields({"step": whole(), "generator": state_dict, "discriminator": state_dict,
                           "opt_g": OPTIMIZER, "opt_d": OPTIMIZER, "detector": DETECTOR}),
        "events": items(record), "rows": items(record), "wall_time_s": real()}),
}
NETWORKS = ("model_name", "model_kwargs", "model_state", "discriminator_name", "discriminator_kwargs",
            "discriminator_state", "step")


def read_gan_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check every field (`FIELDS`; `training` only in last.pt) and the weights and optimiser
    moments against the networks; every way this can fail is a CheckpointError naming the file."""
    checkpoint = read_checkpoint_file(path, GAN_CHECKPOINT_FORMAT, "DCGAN", map_location)
    check_checkpoint(checkpoint, FIELDS, path, required=NETWORKS)
    generator, discriminator = (build_network(checkpoint, role, path) for role in ("generator", "discriminator"))
    training = checkpoint.get("training")
    if training is not None:
        healthy = training["healthy"]  # what a rollback returns to, maybe hours later: checked now
        if healthy["step"] > checkpoint["step"]:
            raise CheckpointError(f"{path}: training.healthy.step {healthy['step']} is after step {checkpoint['step']}")
        load_weights(generator, healthy["generator"], f"{path}: training.healthy.generator", GENERATOR_NAME)
        load_weights(discriminator, healthy["discriminator"], f"{path}: training.healthy.discriminator",
                     DISCRIMINATOR_NAME)
        for where, state in (("training", training), ("training.healthy", healthy)):
            for name, network in (("opt_g", generator), ("opt_d", discriminator)):
                check_optimizer_state(state[name], torch.optim.Adam(network.parameters()), f"{path}: {where}.{name}")
    return checkpoint


def build_network(checkpoint: dict[str, Any], role: str, source: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the generator or discriminator a checkpoint describes and load its weights (on CPU)."""
    prefix = "model" if role == "generator" else "discriminator"
    expected = GENERATOR_NAME if role == "generator" else DISCRIMINATOR_NAME
    name = checkpoint.get(f"{prefix}_name")
    if name != expected:
        raise CheckpointError(f"{source} holds {name!r} where a {expected!r} was expected")
    try:
        network = create_model(name, **checkpoint[f"{prefix}_kwargs"])
    except (KeyError, TypeError, ValueError, CifarError) as exc:
        raise CheckpointError(f"{source}: {prefix}_kwargs do not build a {name} ({' '.join(str(exc).split())})") from None
    load_weights(network, checkpoint[f"{prefix}_state"], f"{source}: {prefix}_state", f"the {name}")
    return network
