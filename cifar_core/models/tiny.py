"""`tinycnn`: a deliberately small network for smoke runs and tests on a 2-core CPU.

Not from either report. Three conv-BN-activation stages and a linear head: enough capacity to
learn the synthetic dataset in a few epochs, cheap enough to train in seconds.
"""

from __future__ import annotations

from torch import nn

from cifar_core.errors import ConfigError
from cifar_core.models.registry import register_model

_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.1)}


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 100, width: int = 16, dropout: float = 0.1, activation: str = "relu"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ConfigError(f"tinycnn: unknown activation {activation!r}; known: relu, leaky_relu")
        act = _ACTIVATIONS[activation]

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), act(), nn.MaxPool2d(2))

        self.features = nn.Sequential(stage(3, width), stage(width, 2 * width), stage(2 * width, 4 * width))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


@register_model(family="smoke", description="3 conv stages (16-32-64), GAP, linear: for smoke runs and tests")
def tinycnn(num_classes: int = 100, width: int = 16, dropout: float = 0.1, activation: str = "relu") -> nn.Module:
    return TinyCNN(num_classes=num_classes, width=width, dropout=dropout, activation=activation)
