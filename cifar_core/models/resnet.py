"""Modern reference networks for 32x32 inputs: ResNet-18, pre-activation ResNet-18, Wide ResNets.

Not from either report: they show how far the reports' models sit from standard CIFAR baselines
trained in the same engine. The usual CIFAR stem (3x3, stride 1, no max pool); WRN dropout defaults
to 0 (its paper used 0.3 on CIFAR).
"""

from __future__ import annotations

import torch
from torch import nn

from cifar_core.models.layers import check_dropout
from cifar_core.models.registry import register_model


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _init_weights(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class BasicBlock(nn.Module):
    """Post-activation block: conv-BN-ReLU-conv-BN, + shortcut, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv-BN-ReLU-dropout-conv, + shortcut (no activation after the sum)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.projection = None
        if stride != 1 or in_channels != out_channels:
            self.projection = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu(self.bn1(x))
        # When the shape changes, the projection sees the normalised input, as in the paper.
        shortcut = x if self.projection is None else self.projection(activated)
        out = self.conv1(activated)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + shortcut


def _stage(block, in_channels: int, out_channels: int, depth: int, stride: int, **kwargs) -> nn.Sequential:
    """`depth` blocks; the first one changes width and stride."""
    blocks = [block(in_channels, out_channels, stride, **kwargs)]
    blocks += [block(out_channels, out_channels, 1, **kwargs) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


class ResNet(nn.Module):
    def __init__(
        self, depths: tuple[int, ...], widths: tuple[int, ...], num_classes: int = 100, dropout: float = 0.0
    ):
        super().__init__()
        self.stem = nn.Sequential(_conv3x3(3, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, channels = [], widths[0]
        for i, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            stages.append(_stage(BasicBlock, channels, width, depth, stride=1 if i == 0 else 2))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pool(self.stages(self.stem(x)))))


class PreActResNet(nn.Module):
    """Pre-activation ResNet; with a 16-channel stem and three wide stages it is a Wide ResNet."""

    def __init__(
        self,
        depths: tuple[int, ...],
        widths: tuple[int, ...],
        stem_width: int,
        num_classes: int = 100,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.stem = _conv3x3(3, stem_width)  # no BN-ReLU: the first block starts with one
        stages, channels = [], stem_width
        for i, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            stages.append(
                _stage(PreActBlock, channels, width, depth, stride=1 if i == 0 else 2, dropout=dropout)
            )
            channels = width
        self.stages = nn.Sequential(*stages)
        # Pre-activation blocks end on a sum, so the net normalises once more before pooling.
        self.final = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = nn.Linear(channels, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final(self.stages(self.stem(x))))


def _create_wide_resnet(name: str, depth: int, widen: int, num_classes: int, dropout: float) -> PreActResNet:
    blocks_per_stage = (depth - 4) // 6
    widths = (16 * widen, 32 * widen, 64 * widen)
    return PreActResNet((blocks_per_stage,) * 3, widths, 16, num_classes, check_dropout(dropout, name))


@register_model(
    family="reference", description="ResNet-18 for 32x32 (3x3 stem, no max pool); 11,220,132 params"
)
def resnet18(num_classes: int = 100, dropout: float = 0.0) -> ResNet:
    return ResNet((2, 2, 2, 2), (64, 128, 256, 512), num_classes, check_dropout(dropout, "resnet18"))


@register_model(family="reference", description="pre-activation ResNet-18 for 32x32; 11,218,340 params")
def preact_resnet18(num_classes: int = 100, dropout: float = 0.0) -> PreActResNet:
    return PreActResNet(
        (2, 2, 2, 2), (64, 128, 256, 512), 64, num_classes, check_dropout(dropout, "preact_resnet18")
    )


@register_model(
    family="reference", description="Wide ResNet 16-4 (pre-activation, dropout option); 2,772,020 params"
)
def wrn16_4(num_classes: int = 100, dropout: float = 0.0) -> PreActResNet:
    return _create_wide_resnet("wrn16_4", 16, 4, num_classes, dropout)


@register_model(
    family="reference", description="Wide ResNet 28-10 (pre-activation, dropout option); 36,536,884 params"
)
def wrn28_10(num_classes: int = 100, dropout: float = 0.0) -> PreActResNet:
    return _create_wide_resnet("wrn28_10", 28, 10, num_classes, dropout)
