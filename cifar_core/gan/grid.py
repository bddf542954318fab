"""Image conversion and PNG output: generator outputs in [-1, 1] -> uint8 -> single images or grids."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from cifar_core.atomic import atomic_write_bytes


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 [0, 255], same shape, on the CPU."""
    scaled = (images.detach().float().cpu() + 1.0) * 127.5
    return scaled.round().clamp(0, 255).to(torch.uint8)


def image_grid(images: torch.Tensor, columns: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 [N, 3, H, W] -> one uint8 [rows, cols, 3] picture, tiles separated by black gaps."""
    return make_grid(images, nrow=columns, padding=padding).permute(1, 2, 0).numpy()


def png_bytes(picture: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes. PIL writes no timestamp, so equal pixels give equal bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(picture: np.ndarray, path: str | Path) -> Path:
    return atomic_write_bytes(path, png_bytes(picture))


def save_grid(images_uint8: torch.Tensor, path: str | Path, columns: int = 8) -> Path:
    return save_png(image_grid(images_uint8, columns), path)
