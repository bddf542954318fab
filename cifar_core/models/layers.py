"""Small building blocks shared by the classification models, plus the checks on their options.

Convolutions that BatchNorm follows carry no bias: BN subtracts the per-channel mean, so a bias
there would be a parameter that can never matter.
"""

from __future__ import annotations

from torch import nn

from cifar_core.errors import ConfigError

LEAKY_RELU_SLOPE = 0.1  # the same slope tinycnn uses, so "leaky_relu" means one thing everywhere
ACTIVATIONS = ("relu", "leaky_relu")


def check_activation(name: str, model: str) -> str:
    if name not in ACTIVATIONS:
        raise ConfigError(f"{model}: unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return name


def check_dropout(rate: float, model: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ConfigError(f"{model}: dropout must be a number in [0, 1), got {rate!r}")
    return float(rate)


def make_activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(LEAKY_RELU_SLOPE, inplace=True)
    raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, padding: int, activation: str = "relu"
    ):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            make_activation(activation),
        )


class DepthwiseSeparableConv(nn.Sequential):
    """A k x k depthwise conv (one filter per input channel) then a 1x1 pointwise conv that mixes channels.

    k*k*C_in + C_in*C_out weights instead of k*k*C_in*C_out (Chollet 2017). No bias: every use is
    followed by BatchNorm.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels,
            in_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=in_channels,
            bias=False,
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
