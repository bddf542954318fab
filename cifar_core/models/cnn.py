"""Report A's eight plain CNNs, `cnn1` ... `cnn8`: conv stages with pooling and dropout, then an FC head.

Report A gives only the parameter counts of its three best (CNN2 10,393,946, CNN6 2,494,022, CNN7
3,004,917), not their layers: these layouts are ours, found by a search over round widths to hit
those counts exactly. Its "Stride=1, padding=1" (section III) is read as padding 1 for every kernel
above 1x1 in layouts marked `report_a`, k//2 elsewhere (docs/provenance.md, "convolution padding").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cifar_core.models.layers import ConvBNAct, check_activation, check_dropout, make_activation
from cifar_core.models.registry import register_model

IMAGE_SIZE = 32
IMAGE_CHANNELS = 3


@dataclass(frozen=True)
class Stage:
    width: int  # output channels of every conv in the stage
    kernels: tuple[int, ...]  # one Conv-BN-activation per entry, all at `width` channels


@dataclass(frozen=True)
class CnnLayout:
    stages: tuple[Stage, ...]  # each stage ends in a 2x2, stride-2 pool
    hidden: tuple[int, ...]  # widths of the hidden fully connected layers
    pool: str = "max"  # "max" | "avg"
    padding: str = "same"  # "same": k // 2 | "report_a": 1 for every kernel above 1x1 (our reading of report A)


def conv_padding(kernel: int, style: str) -> int:
    return kernel // 2 if style == "same" else min(kernel // 2, 1)


def output_size(size: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """Report A's spatial output size formula."""
    return (size + 2 * padding - kernel) // stride + 1


def flatten_size(layout: CnnLayout) -> int:
    """Features entering the head, computed from the layout rather than by a trial forward pass."""
    size = IMAGE_SIZE
    for stage in layout.stages:
        for kernel in stage.kernels:
            size = output_size(size, kernel, conv_padding(kernel, layout.padding))
        size = output_size(size, kernel=2, stride=2)
    return layout.stages[-1].width * size * size


class CNN(nn.Module):
    def __init__(
        self, layout: CnnLayout, num_classes: int = 100, dropout: float = 0.2, activation: str = "relu"
    ):
        super().__init__()
        pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[layout.pool]
        features: list[nn.Module] = []
        channels = IMAGE_CHANNELS
        for stage in layout.stages:
            for kernel in stage.kernels:
                features.append(
                    ConvBNAct(channels, stage.width, kernel, conv_padding(kernel, layout.padding), activation)
                )
                channels = stage.width
            features += [pool(kernel_size=2, stride=2), nn.Dropout(dropout)]
        self.features = nn.Sequential(*features)

        head: list[nn.Module] = [nn.Flatten()]
        width = flatten_size(layout)
        for hidden in layout.hidden:
            head += [nn.Linear(width, hidden), make_activation(activation), nn.Dropout(dropout)]
            width = hidden
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _create_cnn(name: str, layout: CnnLayout, num_classes: int, dropout: float, activation: str) -> CNN:
    check_dropout(dropout, name)
    check_activation(activation, name)
    return CNN(layout, num_classes=num_classes, dropout=dropout, activation=activation)


def _stages(*spec: tuple[int, tuple[int, ...]]) -> tuple[Stage, ...]:
    return tuple(Stage(width, kernels) for width, kernels in spec)


CNN1 = CnnLayout(_stages((32, (3,)), (64, (3,)), (128, (3,))), hidden=(256,))
CNN2 = CnnLayout(_stages((96, (5, 1)), (96, (2, 1)), (192, (2, 2)), (384, (2,))), hidden=(2500, 450))
CNN3 = CnnLayout(_stages((32, (7,)), (64, (3, 3)), (128, (3, 3))), hidden=(512,), pool="avg")
CNN4 = CnnLayout(_stages((64, (3, 1)), (128, (3, 1)), (256, (3, 1))), hidden=(512,))
CNN5 = CnnLayout(
    _stages((32, (4, 2)), (64, (4, 2)), (128, (4, 2))), hidden=(256,), pool="avg", padding="report_a"
)
CNN6 = CnnLayout(
    _stages((64, (7,)), (128, (5,)), (192, (4, 4)), (384, (2, 2))), hidden=(250,), padding="report_a"
)
CNN7 = CnnLayout(
    _stages((64, (4, 1)), (128, (4,)), (256, (4, 2)), (384, (2,))),
    hidden=(750, 625),
    pool="avg",
    padding="report_a",
)
CNN8 = CnnLayout(_stages((48, (3, 3)), (96, (3, 3)), (192, (3, 3))), hidden=(1024,))


@register_model(family="cnn", description="3x3 convs 32-64-128, max pool, FC 256; ReLU; 643,716 params")
def cnn1(num_classes: int = 100, dropout: float = 0.2, activation: str = "relu") -> CNN:
    """The smallest baseline: one 3x3 conv per stage."""
    return _create_cnn("cnn1", CNN1, num_classes, dropout, activation)


@register_model(
    family="cnn",
    description="5x5/2x2/1x1 convs 96-96-192-384, max pool, FC 2500-450; ReLU; 10,393,946 params (= report A's CNN2)",
)
def cnn2(num_classes: int = 100, dropout: float = 0.3, activation: str = "relu") -> CNN:
    """Report A's CNN2 (58.7% test): 10,393,946 parameters, most of them in the wide head."""
    return _create_cnn("cnn2", CNN2, num_classes, dropout, activation)


@register_model(
    family="cnn",
    description="7x7 stem then 3x3 pairs 32-64-128, avg pool, FC 512; LeakyReLU; 1,382,404 params",
)
def cnn3(num_classes: int = 100, dropout: float = 0.2, activation: str = "leaky_relu") -> CNN:
    """A wide 7x7 first layer sees more context before the first pool."""
    return _create_cnn("cnn3", CNN3, num_classes, dropout, activation)


@register_model(
    family="cnn",
    description="3x3 + 1x1 (network-in-network) 64-128-256, max pool, FC 512; ReLU; 2,607,140 params",
)
def cnn4(num_classes: int = 100, dropout: float = 0.2, activation: str = "relu") -> CNN:
    """Each 3x3 conv is followed by a 1x1 conv that mixes channels at every position."""
    return _create_cnn("cnn4", CNN4, num_classes, dropout, activation)


@register_model(
    family="cnn",
    description="4x4 + 2x2 convs 32-64-128 (padding 1), avg pool, FC 256; LeakyReLU; 802,532 params",
)
def cnn5(num_classes: int = 100, dropout: float = 0.1, activation: str = "leaky_relu") -> CNN:
    """Even kernels with report A's padding of 1: a 4x4 conv trims one pixel, a 2x2 adds it back."""
    return _create_cnn("cnn5", CNN5, num_classes, dropout, activation)


@register_model(
    family="cnn",
    description="7x7-5x5-4x4-2x2 convs 64-128-192-384 (padding 1), max pool, FC 250; ReLU; 2,494,022 params (= report A's CNN6)",
)
def cnn6(num_classes: int = 100, dropout: float = 0.2, activation: str = "relu") -> CNN:
    """Report A's CNN6 (60.1% test): 2,494,022 parameters; kernels shrink as the map does."""
    return _create_cnn("cnn6", CNN6, num_classes, dropout, activation)


@register_model(
    family="cnn",
    description="4x4/2x2/1x1 convs 64-128-256-384 (padding 1), avg pool, FC 750-625; LeakyReLU; 3,004,917 params (= report A's CNN7)",
)
def cnn7(num_classes: int = 100, dropout: float = 0.2, activation: str = "leaky_relu") -> CNN:
    """Report A's CNN7 (61.1% test, its best): 3,004,917 parameters."""
    return _create_cnn("cnn7", CNN7, num_classes, dropout, activation)


@register_model(
    family="cnn", description="VGG-style 3x3 pairs 48-96-192, max pool, FC 1024; ReLU; 3,894,708 params"
)
def cnn8(num_classes: int = 100, dropout: float = 0.3, activation: str = "relu") -> CNN:
    """The deepest of the eight: two 3x3 convs per stage, as in VGG."""
    return _create_cnn("cnn8", CNN8, num_classes, dropout, activation)
