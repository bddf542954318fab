"""Real images for GAN training, held as one uint8 tensor on the device; batches are drawn there.

Batch `step` is a pure function of (data_seed, step) apart from its flips: the epoch's order is a
permutation seeded by (data_seed, epoch), so a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

import numpy as np
import torch

from cifar_core.errors import ConfigError


class RealImages:
    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, device: torch.device):
        """images: uint8 [N, 32, 32, 3] as `load_split` returns them; labels: int64 [N]."""
        if len(images) < batch_size:
            raise ConfigError(f"batch size {batch_size} is larger than the {len(images)} training images")
        self.device = device
        self.batch_size = batch_size
        self.images = (
            torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)
        )
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.batches_per_epoch = len(images) // batch_size  # the last partial batch is dropped
        self._order_key: tuple[int, int] | None = None
        self._order: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.images)

    def epoch_order(self, data_seed: int, epoch: int) -> torch.Tensor:
        if self._order_key != (data_seed, epoch):
            rng = torch.Generator(device=self.device).manual_seed(data_seed * 100_003 + epoch)
            self._order = torch.randperm(len(self.images), generator=rng, device=self.device)
            self._order_key = (data_seed, epoch)
        return self._order

    def batch(
        self, step: int, data_seed: int, flip_rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images scaled to [-1, 1] with random horizontal flips, [B, 3, 32, 32] float32, and labels."""
        epoch, position = divmod(step, self.batches_per_epoch)
        start = position * self.batch_size
        index = self.epoch_order(data_seed, epoch)[start : start + self.batch_size]
        images = self.images[index].float().div_(127.5).sub_(1.0)
        flip = torch.rand(self.batch_size, generator=flip_rng, device=self.device) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return images, self.labels[index]

    def fixed_sample(self, n: int, seed: int) -> torch.Tensor:
        """n images in [-1, 1] chosen by `seed`, unflipped: the real side of diversity comparisons."""
        rng = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(self.images), generator=rng)[:n].to(self.device)
        return self.images[index].float() / 127.5 - 1.0
