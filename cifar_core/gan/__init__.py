"""DCGAN (report B, part 2): training with collapse detection and recovery, sampling, sample grids.

Modules: `config` (settings), `train` (`train_gan`, the loop), `state` (one DCGAN update, rollback
snapshots), `collapse` (the detector), `sample` (`load_generator`, `generate`, `write_samples`),
`checkpoint` (the file format), `grid` and `plots` (PNGs). Real images come from the classifier's
loader (`cifar_core.data.loader`, scaled to [-1, 1]). The networks live in the model registry
(`dcgan_generator`, `dcgan_discriminator`).
"""

from cifar_core.gan.config import CollapseConfig, GanTrainConfig

__all__ = ["CollapseConfig", "GanTrainConfig"]
