"""DCGAN (report B, part 2): training with collapse detection and recovery, sampling, sample grids.

Real images come from the classifier's device loader (scaled to [-1, 1]) and the networks from the
model registry (`dcgan_generator`, `dcgan_discriminator`): the GAN shares the study's data path.
"""

from cifar_core.gan.config import CollapseConfig, GanTrainConfig

__all__ = ["CollapseConfig", "GanTrainConfig"]
