"""Images -> 2048-d Inception pool3 features, batched on the device.

Images stay uint8 until the device: a batch is one tensor copy and one divide, with no PNG decode,
PIL transform or DataLoader worker in the way. Image folders and .npz files are decoded once, up
front, into the same uint8 form; generated samples go straight in as tensors.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cifar_core.device import resolve_device
from cifar_core.errors import CifarError
from cifar_core.fid.inception import (
    WEIGHTS_FILENAME,
    build_fid_inception,
    file_sha256,
    is_standard_weights,
    prepare_for_inference,
    read_weights,
    resolve_weights,
)
from cifar_core.progress import log, progress

# The suffixes pytorch-fid reads from a folder, so both tools see the same files.
IMAGE_SUFFIXES = {".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"}
IMAGE_SIZE = 32
DEFAULT_BATCH = {"cpu": 50, "cuda": 200}  # 50 saturates 2-16 CPU cores; GPUs want more in flight

ImageBatches = torch.Tensor | np.ndarray | Iterable[torch.Tensor | np.ndarray]


@dataclass
class FeatureExtractor:
    """The FID Inception on a device, and the identity of its weights (for caches and summaries)."""

    network: nn.Module
    device: torch.device
    batch_size: int
    weights_path: Path
    weights_sha256: str

    @property
    def weights_standard(self) -> bool:
        """Whether the weights are pytorch-fid's released file (by sha256), as published FIDs use."""
        return is_standard_weights(self.weights_sha256)

    def features(self, batches: ImageBatches, desc: str = "inception") -> np.ndarray:
        """float32 [N, 2048] pool3 features of uint8 images: one tensor or array ([N, 3, H, W] or
        [N, H, W, 3]) or an iterable of such batches (e.g. a generator's output, batch by batch)."""
        total = -(-len(batches) // self.batch_size) if isinstance(batches, (torch.Tensor, np.ndarray)) else None
        chunks = [self._batch_features(chunk) for chunk in progress(self._chunks(batches), total, desc)]
        if not chunks:
            raise CifarError("no images to compute Inception features of")
        return np.concatenate(chunks)

    def _chunks(self, batches: ImageBatches) -> Iterator[torch.Tensor]:
        if isinstance(batches, (torch.Tensor, np.ndarray)):
            batches = [batches]
        for batch in batches:
            images = as_nchw_uint8(batch)
            yield from images.split(self.batch_size)

    @torch.inference_mode()
    def _batch_features(self, images: torch.Tensor) -> np.ndarray:
        x = images.to(self.device, non_blocking=True).to(torch.float32).div_(255)
        # pytorch-fid's ToTensor gives the same [0, 1] floats; the network resizes and rescales.
        pool3 = self.network(x.contiguous(memory_format=torch.channels_last))
        return pool3.flatten(1).cpu().numpy()


def load_inception(
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    download: bool = True,
) -> FeatureExtractor:
    """The FID feature extractor: pytorch-fid's FID Inception with the standard FID weights (see
    `resolve_weights` for where they come from), ready for inference on `device`."""
    device = resolve_device(device) if isinstance(device, str) else device
    path = resolve_weights(weights, download=download)
    network = build_fid_inception(read_weights(path), source=str(path))
    if device.type == "cpu":
        limit_cpu_threads()
    batch_size = batch_size or DEFAULT_BATCH.get(device.type, 50)
    if batch_size < 1:
        raise CifarError(f"batch size must be positive, got {batch_size}")
    extractor = FeatureExtractor(prepare_for_inference(network, device), device, batch_size, path, file_sha256(path))
    if not extractor.weights_standard:
        log(f"fid: {path} is not pytorch-fid's {WEIGHTS_FILENAME} (sha256 {extractor.weights_sha256[:12]}...): "
            "its scores are not comparable with published FIDs")
    return extractor


def limit_cpu_threads() -> int:
    """Use no more intra-op threads than the CPUs we may actually run on.

    torch sizes its pool from the host's cores; in a pod limited to a few CPUs that oversubscribes
    them and convolutions slow down several-fold. Only ever lowers the count.
    """
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        available = min(available, quota)
    if torch.get_num_threads() > available:
        torch.set_num_threads(available)
    return torch.get_num_threads()


def _cgroup_cpu_quota() -> int | None:
    """CPUs allowed by a cgroup v2 limit (`cpu.max`), rounded up; None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


def as_nchw_uint8(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 [N, 3, H, W] from a uint8 tensor or array in NCHW or NHWC (CIFAR's file layout) form."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if tensor.dtype != torch.uint8:
        raise CifarError(f"images must be uint8 in [0, 255], got {tensor.dtype}")
    if tensor.dim() != 4 or 3 not in (tensor.shape[1], tensor.shape[3]):
        raise CifarError(f"images must be [N, 3, H, W] or [N, H, W, 3], got shape {list(tensor.shape)}")
    return tensor if tensor.shape[1] == 3 else tensor.permute(0, 3, 1, 2)


def load_images(path: str | os.PathLike) -> np.ndarray:
    """uint8 [N, 32, 32, 3] from a folder of 32x32 RGB images or an .npz holding `images`."""
    path = Path(path)
    if path.suffix == ".npz" and path.is_file():
        return load_npz_images(path)
    if path.is_dir():
        return load_image_folder(path)
    raise CifarError(f"{path} is neither a folder of images nor an .npz file")


def load_image_folder(folder: str | os.PathLike) -> np.ndarray:
    """uint8 [N, 32, 32, 3] of every image in `folder` (sorted by name, as pytorch-fid reads them)."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise CifarError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    _check_sample_set(folder, [p.name for p in files])
    images = np.empty((len(files), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for i, file in enumerate(files):
        try:
            with Image.open(file) as image:
                if image.mode != "RGB" or image.size != (IMAGE_SIZE, IMAGE_SIZE):
                    raise CifarError(
                        f"{file} is a {image.size[0]}x{image.size[1]} {image.mode} image; "
                        f"expected {IMAGE_SIZE}x{IMAGE_SIZE} RGB like CIFAR-100"
                    )
                images[i] = np.asarray(image)
        except (UnidentifiedImageError, OSError) as exc:
            raise CifarError(f"{file} is not a readable image ({type(exc).__name__})") from None
    return images


def _check_sample_set(folder: Path, image_names: list[str]) -> None:
    """A folder `cifar gan sample` wrote must hold exactly the images its manifest lists: scoring
    a set with images added or missing would measure something nobody sampled."""
    from cifar_core.summaries import SampleManifest

    if not SampleManifest.file_in(folder).is_file():
        return
    manifest = SampleManifest.read_in(folder)
    listed = {name for name in manifest.files if Path(name).suffix.lower() in IMAGE_SUFFIXES}
    extra, missing = sorted(set(image_names) - listed), sorted(listed - set(image_names))
    if extra or missing:
        problem = (f"it holds images the manifest does not list ({len(extra)}, e.g. {extra[0]})" if extra
                   else f"images the manifest lists are missing ({len(missing)}, e.g. {missing[0]})")
        raise CifarError(f"{folder} is not the sample set its {SampleManifest.FILE} describes: {problem}; sample it again "
                         "into a new folder")


def load_npz_images(path: str | os.PathLike) -> np.ndarray:
    """uint8 [N, 32, 32, 3] from the `images` array of an .npz ([N, 32, 32, 3] or [N, 3, 32, 32])."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive.files:
                raise CifarError(f"{path} has no 'images' array (found: {', '.join(archive.files) or 'nothing'})")
            images = archive["images"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CifarError(f"{path} is not a readable .npz file ({type(exc).__name__})") from None
    if images.dtype != np.uint8:
        raise CifarError(f"{path}: 'images' must be uint8, got {images.dtype}")
    if images.ndim == 4 and images.shape[1:] == (3, IMAGE_SIZE, IMAGE_SIZE):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise CifarError(f"{path}: 'images' has shape {list(images.shape)}; expected [N, 32, 32, 3] or [N, 3, 32, 32]")
    return np.ascontiguousarray(images)

