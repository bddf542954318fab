"""DCGAN for 32x32 CIFAR images (report B, part 2; after Radford et al. 2015).

The defaults (nz=100, ngf=ndf=46) give the 635,812 and 344,264 parameters report B states. No conv
bias (BatchNorm's shift makes it redundant) and no BatchNorm on D's first layer, as in DCGAN. D's
`forward` returns probabilities (report B's semantics); training uses `logits` with BCE-with-logits,
the same loss without overflow and safe under bf16 autocast.
"""

from __future__ import annotations

import torch
from torch import nn

from cifar_core.models.registry import register_model

IMAGE_SIZE = 32
IMAGE_CHANNELS = 3
KERNEL = 4  # every layer: 4x4 kernels, so stride 2 + padding 1 exactly doubles or halves the size


def dcgan_weight_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02), shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _upsample_block(in_channels: int, out_channels: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, KERNEL, stride, padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _downsample_block(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, KERNEL, 2, 1, bias=False)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class DCGANGenerator(nn.Module):
    def __init__(
        self,
        nz: int = 100,
        ngf: int = 46,
        conditional: bool = False,
        num_classes: int = 100,
        embed_dim: int = 32,
    ):
        super().__init__()
        self.nz = nz
        self.conditional = conditional
        self.num_classes = num_classes
        self.label_embedding = nn.Embedding(num_classes, embed_dim) if conditional else None
        in_features = nz + (embed_dim if conditional else 0)
        self.net = nn.Sequential(
            _upsample_block(in_features, ngf * 4, stride=1, padding=0),  # 1x1 -> 4x4
            _upsample_block(ngf * 4, ngf * 2, stride=2, padding=1),  # -> 8x8
            _upsample_block(ngf * 2, ngf, stride=2, padding=1),  # -> 16x16
            nn.ConvTranspose2d(ngf, IMAGE_CHANNELS, KERNEL, 2, 1, bias=False),  # -> 32x32
            nn.Tanh(),
        )
        self.apply(dcgan_weight_init)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """noise [B, nz] (or [B, nz, 1, 1]) -> images [B, 3, 32, 32] in [-1, 1]."""
        features = noise.flatten(1)
        if self.conditional:
            if labels is None:
                raise ValueError("a conditional generator needs class labels")
            features = torch.cat([features, self.label_embedding(labels).to(features.dtype)], dim=1)
        return self.net(features[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, ndf: int = 46, conditional: bool = False, num_classes: int = 100):
        super().__init__()
        self.conditional = conditional
        self.num_classes = num_classes
        self.label_plane = nn.Embedding(num_classes, IMAGE_SIZE * IMAGE_SIZE) if conditional else None
        in_channels = IMAGE_CHANNELS + (1 if conditional else 0)
        self.features = nn.Sequential(
            _downsample_block(in_channels, ndf, batch_norm=False),  # 32 -> 16
            _downsample_block(ndf, ndf * 2, batch_norm=True),  # -> 8
            _downsample_block(ndf * 2, ndf * 4, batch_norm=True),  # -> 4
        )
        self.head = nn.Conv2d(ndf * 4, 1, KERNEL, 1, 0, bias=False)  # 4x4 -> one score
        self.apply(dcgan_weight_init)

    def logits(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, 3, 32, 32] -> real-vs-fake logits [B]."""
        if self.conditional:
            if labels is None:
                raise ValueError("a conditional discriminator needs class labels")
            plane = self.label_plane(labels).view(-1, 1, IMAGE_SIZE, IMAGE_SIZE).to(images.dtype)
            images = torch.cat([images, plane], dim=1)
        return self.head(self.features(images)).flatten()

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Probability that each image is real, [B] (report B's sigmoid output)."""
        return torch.sigmoid(self.logits(images, labels))


@register_model(
    family="gan",
    description="DCGAN generator (the DCGAN tutorial's at 32x32; report B's size): 100-d noise -> 4 transposed "
    "convs -> tanh",
)
def dcgan_generator(
    nz: int = 100, ngf: int = 46, conditional: bool = False, num_classes: int = 100, embed_dim: int = 32
) -> DCGANGenerator:
    return DCGANGenerator(
        nz=nz, ngf=ngf, conditional=conditional, num_classes=num_classes, embed_dim=embed_dim
    )


@register_model(
    family="gan",
    description="DCGAN discriminator (the DCGAN tutorial's at 32x32; report B's size): 4 strided convs, "
    "LeakyReLU 0.2, sigmoid",
)
def dcgan_discriminator(
    ndf: int = 46, conditional: bool = False, num_classes: int = 100
) -> DCGANDiscriminator:
    return DCGANDiscriminator(ndf=ndf, conditional=conditional, num_classes=num_classes)
