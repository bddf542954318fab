"""Batched augmentations as pure tensor functions, run on whatever device the batch is on.

Each takes its random draws as arguments (one per image; `sample_augment_params` makes them), so it
is deterministic and testable alone. Crops pad by reflection, as airbench does (zeros would add black
borders that shift colour statistics); jitter and rotation follow torchvision, as `tv_loader` does.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from cifar_core.data.augment_config import AUGMENT_PRESETS, AugmentConfig, resolve_augment  # noqa: F401 (re-exported)

# Per-channel statistics of the CIFAR-100 training images (in [0, 1]).
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


# --- random draws: one row per image, on the CPU so they are the same on every device ---


def sample_augment_params(cfg: AugmentConfig, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Draws for `n` images; only the enabled augmentations get an entry."""
    params: dict[str, torch.Tensor] = {}
    if cfg.crop_padding:
        params["shift"] = torch.randint(0, 2 * cfg.crop_padding + 1, (n, 2), generator=generator)
    if cfg.hflip:
        params["flip"] = torch.rand(n, generator=generator) < 0.5
    if cfg.rotation:
        params["angle"] = (torch.rand(n, generator=generator) * 2 - 1) * cfg.rotation
    if any(cfg.jitter):
        u = torch.rand(n, 4, generator=generator)
        low = torch.tensor([max(0.0, 1 - s) for s in cfg.jitter[:3]] + [-cfg.hue])
        high = torch.tensor([1 + s for s in cfg.jitter[:3]] + [cfg.hue])
        params["jitter"] = low + u * (high - low)
        params["jitter_order"] = torch.argsort(torch.rand(n, 4, generator=generator), dim=1)
    return params


def apply_augment(x: torch.Tensor, cfg: AugmentConfig, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Crop, flip, rotate, then colour-jitter a batch with its draws (already on x's device)."""
    if "shift" in params:
        x = crop_with_padding(x, params["shift"], cfg.crop_padding)
    if "flip" in params:
        x = hflip(x, params["flip"])
    if "angle" in params:
        x = rotate(x, params["angle"])
    if "jitter" in params:
        enabled = tuple(s > 0 for s in cfg.jitter)
        x = color_jitter(x, params["jitter"], params["jitter_order"], enabled)
    return x


# --- geometry ---


def hflip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the images where `flip` (bool [B]) is set."""
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def crop_with_padding(x: torch.Tensor, shift: torch.Tensor, padding: int) -> torch.Tensor:
    """Reflect-pad by `padding`, then cut an HxW window at (row, col) = shift[i] in [0, 2*padding].

    shift = (padding, padding) returns the image unchanged; (0, 0) moves it down-right by `padding`.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode="reflect")
    rows = shift[:, 0, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = shift[:, 1, None] + torch.arange(w, device=x.device)  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    # One gather for the whole batch; advanced indexing puts the channel axis last.
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre by its angle (counter-clockwise if positive)."""
    radians = degrees.to(x.dtype) * (math.pi / 180)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    # affine_grid maps output to input coordinates (y pointing down), hence this sign pattern.
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# --- colour (torchvision ColorJitter semantics, one factor per image) ---


def grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.to(x.dtype)[:, None, None, None]
    return (f * x + (1 - f) * other).clamp(0, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Turn each image's hues by `shift` (in turns, -0.5..0.5), keeping saturation and value."""
    h, s, v = _rgb_to_hsv(x)
    return _hsv_to_rgb((h + shift.to(x.dtype)[:, None, None]) % 1.0, s, v)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    chroma = maxc - minc
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))  # grey pixels: hue 0
    sat = chroma / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    # Hue sector by which channel is largest (ties go to red, then green).
    hue = torch.where(
        maxc == r, ((g - b) / safe) % 6, torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = torch.where(chroma > 0, hue / 6, torch.zeros_like(hue))
    return hue, sat, maxc


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # Closed form: channel n in (5, 3, 1) for (R, G, B), k = (n + 6h) mod 6.
    n = _per_channel((5.0, 3.0, 1.0), h.device, h.dtype)
    k = (n + h[:, None] * 6) % 6
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


_JITTER_FNS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(
    x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, enabled: tuple[bool, ...] = (True,) * 4
) -> torch.Tensor:
    """Apply brightness, contrast, saturation and hue (factors [B, 4]) in each image's own order [B, 4].

    At each of the four steps the images whose order names the same op are gathered and adjusted
    together, so every op runs once per image (computing all four for every image and keeping one
    costs four times as much). The gathers need the group sizes on the host: a few syncs per call,
    which the loader makes once per epoch chunk, not per batch.
    """
    x = x.clone()
    for step in range(4):
        for op, fn in enumerate(_JITTER_FNS):
            if not enabled[op]:
                continue
            index = (order[:, step] == op).nonzero().squeeze(1)
            if index.numel():
                x[index] = fn(x[index], factors[index, op])
    return x


def normalize(
    x: torch.Tensor, mean: tuple[float, ...] = CIFAR100_MEAN, std: tuple[float, ...] = CIFAR100_STD
) -> torch.Tensor:
    """(x - mean) / std per channel; the defaults are CIFAR-100's (the GAN passes 0.5s: [-1, 1])."""
    mean_t, std_t = (_per_channel(tuple(v), x.device, x.dtype) for v in (mean, std))
    return (x - mean_t) / std_t


@lru_cache(maxsize=32)
def _per_channel(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Made once per device: building it every batch would be a host-to-device copy per batch.
    return torch.tensor(values, device=device, dtype=dtype)[None, :, None, None]
