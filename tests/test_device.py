"""The device rule: auto, explicit devices, and a CUDA that cannot be used refused with its reason."""

from __future__ import annotations

import pytest
import torch

from cifar_core.device import resolve_device
from cifar_core.errors import ConfigError


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a usable GPU is here")
def test_cuda_without_a_usable_gpu_names_the_reason():
    with pytest.raises(ConfigError) as caught:
        resolve_device("cuda")
    message = str(caught.value)
    assert "CUDA cannot be used here" in message and "\n" not in message
    # The reason is CUDA's own (here: no NVIDIA driver), not a generic "not available".
    assert "driver" in message or "without CUDA" in message or "no GPU is visible" in message, message
