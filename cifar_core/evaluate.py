"""Evaluation: loss, top-1, top-5 and per-class accuracy over a loader, without gradients."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cifar_core.device import Precision


@torch.inference_mode()
def evaluate(model: nn.Module, loader, precision: Precision, num_classes: int = 100) -> dict:
    """Average over every image of `loader` (a DeviceLoader or any iterable of (x, y) batches), on
    the device and in the precision the run trains in."""
    device = precision.device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top1 = torch.zeros((), dtype=torch.int64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    correct_per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
    count_per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
    for x, y in loader:
        x, y = precision.prepare_input(x), y.to(device, non_blocking=True)
        with precision.autocast():
            logits = model(x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        best5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit1 = best5[:, 0] == y
        top1 += hit1.sum()
        top5 += (best5 == y[:, None]).any(dim=1).sum()
        # index_add_ rather than bincount or a boolean mask: neither waits for the host.
        count_per_class.index_add_(0, y, torch.ones_like(y))
        correct_per_class.index_add_(0, y, hit1.long())
    model.train(was_training)
    n = int(count_per_class.sum())  # the only host sync: once, at the end
    if n == 0:  # no images, no scores (None, not NaN: the result goes into strict JSON)
        return {"loss": None, "top1": None, "top5": None, "per_class": [], "n": 0}
    per_class = (correct_per_class.double() / count_per_class.clamp(min=1).double()).tolist()
    return {
        "loss": float(loss_sum) / n,
        "top1": int(top1) / n,
        "top5": int(top5) / n,
        "per_class": per_class,
        "n": n,
    }
