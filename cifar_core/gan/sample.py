"""Sampling from a trained generator: reproducible from a seed, straight to tensors (for FID) or files.

By default the generator runs in eval mode (BatchNorm uses its running statistics), so each image
depends only on its own noise vector: the same seed gives the same images whatever the batch size.
`batch_norm="batch"` samples with each batch's own statistics instead, as the PyTorch DCGAN
tutorial (report B's starting point) does: its images then depend on the batch size too.
"""

from __future__ import annotations

import copy
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cifar_core.atomic import atomic_write
from cifar_core.engine import resolve_device
from cifar_core.errors import ConfigError
from cifar_core.gan.checkpoint import build_network, read_gan_checkpoint
from cifar_core.gan.grid import png_bytes, to_uint8

SAMPLE_FORMATS = ("png", "npz", "both")
BATCH_NORM_MODES = ("running", "batch")  # BatchNorm statistics used when sampling


def load_generator(checkpoint_path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The generator of a GAN checkpoint (last.pt or step_<N>.pt), in eval mode on `device`."""
    checkpoint = read_gan_checkpoint(checkpoint_path)
    generator = build_network(checkpoint, "generator", source=checkpoint_path)
    return generator.to(_device(device)).eval()


def sample_labels(generator: nn.Module, n: int) -> torch.Tensor | None:
    """Class labels `generate` uses: every class in turn for a conditional generator, else None."""
    if not getattr(generator, "conditional", False):
        return None
    return torch.arange(n) % generator.num_classes


@torch.no_grad()
def generate(
    generator: nn.Module, n: int, seed: int, batch_size: int = 500, device: str | torch.device = "cpu",
    batch_norm: str = "running",
) -> torch.Tensor:
    """n images as uint8 [n, 3, 32, 32] on the CPU; the same (generator, seed) gives the same bytes.

    The noise is drawn on the CPU from its own generator, so the global RNG is untouched and the
    images do not depend on the device's RNG or on `batch_size`. Moves `generator` to `device`.
    """
    if n < 1 or batch_size < 1:
        raise ConfigError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    if batch_norm not in BATCH_NORM_MODES:
        raise ConfigError(f"unknown batch_norm {batch_norm!r}; use one of {', '.join(BATCH_NORM_MODES)}")
    device = _device(device)
    was_training = generator.training
    generator.to(device).eval()
    if batch_norm == "batch":
        # A copy in train mode: batch statistics, and the real generator's running statistics stay as saved.
        generator = copy.deepcopy(generator).train()
    noise = torch.randn(n, generator.nz, generator=torch.Generator().manual_seed(seed))
    labels = sample_labels(generator, n)
    batches = []
    for start in range(0, n, batch_size):
        z = noise[start : start + batch_size].to(device)
        y = None if labels is None else labels[start : start + batch_size].to(device)
        batches.append(to_uint8(generator(z, y)))
    generator.train(was_training)
    return torch.cat(batches)


def write_samples(
    images: torch.Tensor, out_dir: str | Path, fmt: str = "png", labels: torch.Tensor | None = None
) -> list[Path]:
    """Write uint8 [N, 3, 32, 32] as out_dir/00000.png... and/or out_dir/samples.npz (key `images`,
    uint8 [N, 32, 32, 3]; plus `labels` for a conditional generator). Returns the paths written."""
    if fmt not in SAMPLE_FORMATS:
        raise ConfigError(f"unknown sample format {fmt!r}; use one of {', '.join(SAMPLE_FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures = images.permute(0, 2, 3, 1).contiguous().numpy()
    written = []
    if fmt in ("png", "both"):
        digits = max(5, len(str(len(pictures) - 1)))
        for i, picture in enumerate(pictures):
            # Plain writes: an fsync per file would make 10,000 images crawl on a network volume.
            path = out_dir / f"{i:0{digits}d}.png"
            path.write_bytes(png_bytes(picture))
            written.append(path)
    if fmt in ("npz", "both"):
        arrays = {"images": pictures} if labels is None else {"images": pictures, "labels": labels.numpy()}
        written.append(atomic_write(out_dir / "samples.npz", lambda f: _write_npz(f, arrays)))
    return written


def _write_npz(file, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but with a fixed timestamp inside the zip, so equal arrays give equal bytes."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(entry, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def _device(device: str | torch.device) -> torch.device:
    return device if isinstance(device, torch.device) else resolve_device(device)
