"""pytorch-fid's FID Inception network, built from pytorch-fid's blocks and a weights file we read.

pytorch-fid's `InceptionV3` always fetches its own weights; we load a state dict we have read and
checked, so the weights can come from `--weights`, $CIFAR_FID_WEIGHTS or the torch hub cache, and a
wrong file is one clear line. tests/test_fid.py checks the features against pytorch-fid's own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from pytorch_fid import inception as pytorch_fid_inception
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from cifar_core.atomic import atomic_torch_save, file_digest
from cifar_core.errors import CifarError

WEIGHTS_URL = pytorch_fid_inception.FID_WEIGHTS_URL
WEIGHTS_FILENAME = WEIGHTS_URL.rsplit("/", 1)[-1]  # pt_inception-2015-12-05-6726825d.pth
WEIGHTS_SHA256_PREFIX = WEIGHTS_FILENAME.rsplit("-", 1)[-1].split(".")[0]  # torch hub naming: 6726825d
# The whole sha256 of that released file (95,628,359 bytes). Only a file with this digest is the
# standard FID network: any other file under the same name gives scores that are not comparable.
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_ENV = "CIFAR_FID_WEIGHTS"
FEATURE_DIMS = 2048
FEATURE_LAYER = "pool3"  # pytorch-fid block 3: the final average pool, as in the FID paper
INPUT_SIZE = 299  # pytorch-fid resizes every image to Inception's input size


def hub_weights_path() -> Path:
    """Where pytorch-fid itself looks for (and downloads) the weights: the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME


def resolve_weights(weights: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The weights file to use: `weights`, else $CIFAR_FID_WEIGHTS, else the hub cache (downloaded
    there when the network allows). Raises a one-line CifarError saying where to put the file."""
    explicit = weights if weights is not None else os.environ.get(WEIGHTS_ENV) or None
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise CifarError(f"FID Inception weights file not found: {path}")
        return path
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    reason = "downloads disabled"
    if download:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            # Written to a temporary file, checked against the sha256 prefix in the file name, then
            # renamed: never a torn or wrong cache entry.
            torch.hub.download_url_to_file(WEIGHTS_URL, str(cached), hash_prefix=WEIGHTS_SHA256_PREFIX, progress=False)
            return cached
        except (OSError, ValueError, RuntimeError) as exc:  # URLError is an OSError; a bad hash a RuntimeError
            reason = f"download failed: {exc}"
    raise CifarError(
        f"FID Inception weights not available ({reason}); put {WEIGHTS_FILENAME} from {WEIGHTS_URL} "
        f"at {cached}, or pass --weights PATH, or set ${WEIGHTS_ENV}"
    )


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file (cached per unchanged file by `file_digest`): Inception's 95 MB and a
    CIFAR split are hashed by every score."""
    return file_digest(path, "sha256")


def is_standard_weights(sha256: str) -> bool:
    """True only for pytorch-fid's released weights, judged by content, never by file name."""
    return sha256 == WEIGHTS_SHA256


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in a weights file; anything else is a one-line CifarError."""
    try:
        # weights_only: a weights file is tensors only, so refuse arbitrary pickled code.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for torn or foreign files
        raise CifarError(f"FID weights file {path} is unreadable ({type(exc).__name__}): not a torch state dict") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CifarError(f"FID weights file {path} does not hold a state dict of tensors")
    return dict(state)


class FidInception(nn.Module):
    """pytorch-fid's `InceptionV3([3])`: resize to 299x299 (bilinear), scale [0, 1] to [-1, 1], then
    the FID Inception up to its final average pool; returns the pool3 features [N, 2048, 1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        # pytorch-fid's fid_inception_v3() without its download: torchvision's Inception3 (1008
        # classes, no aux head, no slow init) with the FID variants of nine blocks.
        self.inception = net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008,
                                                               init_weights=False)
        fid = pytorch_fid_inception
        net.Mixed_5b = fid.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = fid.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = fid.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = fid.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = fid.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = fid.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = fid.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = fid.FIDInceptionE_1(1280)
        net.Mixed_7c = fid.FIDInceptionE_2(2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.inception
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        for layer in (net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1,
                      net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, net.maxpool2,
                      net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d,
                      net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, net.avgpool):
            x = layer(x)
        return x


def build_fid_inception(state: Mapping[str, torch.Tensor], source: str = "weights") -> FidInception:
    """The FID Inception with `state` (pytorch-fid's weights file: torchvision Inception3 keys)
    loaded; keys or shapes that differ from pytorch-fid's FID Inception raise CifarError."""
    with torch.device("meta"):  # shapes only: every tensor comes from `state` (no 2 s of random init)
        network = FidInception()
    problem = describe_mismatch(network.inception.state_dict(), state)
    if problem:
        raise CifarError(f"{source} is not pytorch-fid's FID Inception weights: {problem}")
    network.inception.load_state_dict(state, assign=True)
    return network


def describe_mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str:
    """'' when `found` has exactly `expected`'s keys and shapes, else a short one-line summary."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [k for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]!r})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]!r})")
    if reshaped:
        k = reshaped[0]
        parts.append(
            f"{len(reshaped)} shape mismatches (e.g. {k!r} is {list(found[k].shape)}, expected {list(expected[k].shape)})"
        )
    return "; ".join(parts)


def random_fid_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with exactly pytorch-fid's FID Inception keys and shapes but random values.

    For tests and benchmarks where the real file cannot be downloaded. Convolutions get He-normal
    weights so that activations keep their scale through the ~100 layers and the features vary
    with the input (PyTorch's default init shrinks them towards zero).
    """
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, value in FidInception().inception.state_dict().items():
        value = value.clone()
        if value.dim() == 4:  # convolution weights [out, in, kh, kw]
            value = torch.randn(value.shape, generator=generator) * (2.0 / value[0].numel()) ** 0.5
        state[key] = value
    return state


def write_random_weights(path: str | os.PathLike, seed: int = 0) -> Path:
    """Save `random_fid_weights(seed)` where pytorch-fid or `--weights` can load it."""
    return atomic_torch_save(random_fid_weights(seed), path)


def prepare_for_inference(network: nn.Module, device: torch.device) -> nn.Module:
    """Eval mode, no gradients, BatchNorm folded into the convolutions, channels-last on `device`.

    Folding removes one full pass over every activation map; channels-last lets oneDNN (CPU) and
    cuDNN pick their fastest convolutions. Both change results only at float32 rounding level.
    """
    network = network.eval().requires_grad_(False)
    for module in network.modules():
        if isinstance(module, torchvision.models.inception.BasicConv2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = nn.Identity()
    return network.to(device=device, memory_format=torch.channels_last)
