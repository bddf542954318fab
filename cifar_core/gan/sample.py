"""Sampling from a trained generator: reproducible from a seed, straight to tensors (for FID) or files.

By default the generator runs in eval mode (BatchNorm uses its running statistics), so each image
depends only on its own noise vector: the same seed gives the same images whatever the batch size.
`batch_norm="batch"` samples with each batch's own statistics instead, as the PyTorch DCGAN
tutorial (report B's starting point) does: its images then depend on the batch size too.
"""

from __future__ import annotations

import copy
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cifar_core.atomic import atomic_write, file_digest, write_plain
from cifar_core.device import resolve_device
from cifar_core.errors import CheckpointError, ConfigError
from cifar_core.gan.checkpoint import build_network, read_gan_checkpoint
from cifar_core.gan.grid import png_bytes, to_uint8
from cifar_core.resultdir import PROTOCOL_FILES, Opened, Request, ResultDir, is_temp
from cifar_core.seeds import check_seed
from cifar_core.summaries import SampleManifest

SAMPLE_FORMATS = ("png", "npz", "both")
BATCH_NORM_MODES = ("running", "batch")  # BatchNorm statistics used when sampling
# Images generated at once are held as uint8 on the CPU: 500,000 are 1.5 GB (and 4 GB of Inception
# features when FID scores them; the usual FID uses 10,000 to 50,000). More is refused up front.
MAX_IMAGES = 500_000


def load_generator(checkpoint_path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The generator of a GAN checkpoint (last.pt or step_<N>.pt), in eval mode on `device`."""
    checkpoint = read_gan_checkpoint(checkpoint_path)
    generator = build_network(checkpoint, "generator", source=checkpoint_path)
    if not all(t.isfinite().all() for t in generator.state_dict().values() if t.is_floating_point()):
        raise CheckpointError(f"{checkpoint_path}: the generator's weights hold NaN or infinite values "
                              "(its training diverged); it cannot make images")
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
    check_sampling(n, seed, batch_size, batch_norm)
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
        output = generator(z, y)
        if not output.isfinite().all():  # uint8 would hide it: NaN becomes a plausible grey image
            raise CheckpointError("the generator's output holds NaN or infinite values (its training diverged?); "
                                  "refusing to turn it into images")
        batches.append(to_uint8(output))
    generator.train(was_training)
    return torch.cat(batches)


def check_sampling(n: int, seed: int, batch_size: int, batch_norm: str) -> None:
    if not 1 <= n <= MAX_IMAGES:
        raise ConfigError(f"n = {n}: generate 1 to {MAX_IMAGES:,} images at a time")
    if batch_size < 1:
        raise ConfigError(f"batch_size = {batch_size}: must be >= 1")
    check_seed(seed, "seed")
    if batch_norm not in BATCH_NORM_MODES:
        raise ConfigError(f"unknown batch_norm {batch_norm!r}; use one of {', '.join(BATCH_NORM_MODES)}")


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
            write_plain(path, png_bytes(picture))
            written.append(path)
    if fmt in ("npz", "both"):
        arrays = {"images": pictures} if labels is None else {"images": pictures, "labels": labels.numpy()}
        written.append(atomic_write(out_dir / "samples.npz", lambda f: _write_npz(f, arrays)))
    return written


def sample_to_folder(checkpoint: str | Path, out_dir: str | Path, n: int, seed: int, fmt: str = "png",
                     batch_size: int = 500, batch_norm: str = "running",
                     device: str | torch.device = "cpu") -> dict[str, Any]:
    """Write n samples of a checkpoint's generator into `out_dir` as one complete set, with a
    SAMPLES.json manifest (a SampleManifest: what they are a sample of, and their files, written last);
    returns the manifest as written.

    `out_dir` is a result directory (cifar_core.resultdir): its only writer holds its lock; a folder
    of other files, or of another sample, is refused before any work; the same request on the same
    checkpoint is done (or, killed midway or damaged since, made again as a whole)."""
    if fmt not in SAMPLE_FORMATS:
        raise ConfigError(f"unknown sample format {fmt!r}; use one of {', '.join(SAMPLE_FORMATS)}")
    out_dir = Path(out_dir)
    check_sampling(n, seed, batch_size, batch_norm)  # before anything is made
    generator = load_generator(checkpoint, device)  # then a bad checkpoint is the error to report
    settings = {
        "checkpoint": str(Path(checkpoint).resolve()), "n": n, "seed": seed, "format": fmt, "batch_norm": batch_norm,
        # Running statistics make every image independent of the batch size; batch statistics do not.
        "batch_size": batch_size if batch_norm == "batch" else None,
    }
    request = Request("sample set", settings, inputs={"checkpoint": file_digest(checkpoint, "sha256")})
    ours = lambda: [p for p in out_dir.iterdir() if _SAMPLE_FILE.fullmatch(p.name)] if out_dir.is_dir() else []  # noqa: E731
    with ResultDir(out_dir, "sample set", root=Path(os.path.abspath(out_dir)).parent, summary=SampleManifest.FILE,
                   outputs=ours) as result:
        _refuse_foreign(out_dir)
        opened = result.open(request, remedy="choose another --out, or delete it")
        if opened is Opened.DONE:
            return SampleManifest.read(result.summary_path).to_json()
        result.clear()  # a set killed midway, damaged, or of a retrained checkpoint: made again as a whole
        images = generate(generator, n, seed, batch_size=batch_size, device=device, batch_norm=batch_norm)
        written = write_samples(images, out_dir, fmt, labels=sample_labels(generator, n))
        return result.complete(SampleManifest.parse({**settings, "checkpoint_sha256": request.inputs["checkpoint"],
                                                     "files": [path.name for path in written]}).to_json())


# What a sample set writes: its images, its .npz and its manifest; anything else in --out is someone's.
_SAMPLE_FILE = re.compile(rf"[0-9]{{5,}}\.png|samples\.npz|{re.escape(SampleManifest.FILE)}")


def _refuse_foreign(out_dir: Path) -> None:
    """Writing (or clearing) a set beside files no sample wrote could lose or mix them: refused."""
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in PROTOCOL_FILES and not _SAMPLE_FILE.fullmatch(p.name)
                     and not is_temp(p))
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ConfigError(f"--out {out_dir} holds {foreign[0]}{more}, which no sample wrote: move it away, or choose "
                          "another --out")


def _write_npz(file, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but with a fixed timestamp inside the zip, so equal arrays give equal bytes."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(entry, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def _device(device: str | torch.device) -> torch.device:
    return device if isinstance(device, torch.device) else resolve_device(device)
