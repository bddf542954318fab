"""Optimizers and learning-rate schedules, named as in report A.

`build_optimizer` maps an `OptimConfig` onto torch.optim once; `build_scheduler` returns a
per-step scheduler (or None) whose state travels in the checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from cifar_core.config import OptimConfig
from cifar_core.errors import ConfigError


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """One optimizer per report A name, taking only the hyper-parameters that optimizer has."""
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, dampening=cfg.dampening,
            weight_decay=cfg.weight_decay, nesterov=cfg.nesterov,
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=cfg.lr, alpha=cfg.alpha, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if cfg.name == "adagrad":
        return torch.optim.Adagrad(
            params, lr=cfg.lr, lr_decay=cfg.lr_decay,
            initial_accumulator_value=cfg.initial_accumulator_value, weight_decay=cfg.weight_decay,
        )
    raise ConfigError(f"unknown optimizer {cfg.name!r}; known: sgd, adam, rmsprop, adagrad")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    """A scheduler stepped once per optimisation step, or None for a constant learning rate."""
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    if cfg.schedule == "onecycle":
        # Momentum is left as configured (no cycling), so a searched momentum means the same thing
        # under every schedule; `lr` is the peak of the cycle.
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=max(total_steps, 1), cycle_momentum=False
        )
    raise ConfigError(f"unknown schedule {cfg.schedule!r}; known: none, cosine, onecycle")


def build_loss(cfg: OptimConfig) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
