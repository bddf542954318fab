"""DCGAN (report B, part 2): training with collapse detection and recovery, sampling, sample grids.

Modules: `config` (settings), `train` (`train_gan`, the loop), `state` (one DCGAN update, rollback
snapshots), `collapse` (the detector), `sample` (`load_generator`, `generate`, `write_samples`),
`checkpoint` (the file format), `batches` (real images on the device), `grid` and `plots` (PNGs).
The networks live in the model registry (`dcgan_generator`, `dcgan_discriminator`). This package
imports nothing heavy itself, so the CLI can read the defaults without loading torch.
"""

from cifar_core.gan.config import CollapseConfig, GanTrainConfig

__all__ = ["CollapseConfig", "GanTrainConfig"]
