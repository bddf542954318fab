"""The DCGAN pair in the registry: report B's exact parameter counts, shapes, init, conditional variant."""

from __future__ import annotations

import pytest
import torch

from cifar_core.models import count_parameters, create_model, list_models


def test_report_b_parameter_counts():
    generator = create_model("dcgan_generator")
    discriminator = create_model("dcgan_discriminator")
    assert count_parameters(generator) == 635_812
    assert count_parameters(discriminator) == 344_264  # report B: 980,076 together


def test_registered_in_gan_family():
    assert list_models(family="gan") == ["dcgan_discriminator", "dcgan_generator"]


def test_shapes_ranges_and_sigmoid_output():
    generator = create_model("dcgan_generator", ngf=8)
    discriminator = create_model("dcgan_discriminator", ndf=8)
    images = generator(torch.randn(5, 100))
    assert images.shape == (5, 3, 32, 32)
    assert images.min() >= -1 and images.max() <= 1
    probabilities = discriminator(images)
    assert probabilities.shape == (5,)
    assert torch.allclose(probabilities, torch.sigmoid(discriminator.logits(images)))
    assert generator(torch.randn(2, 100, 1, 1)).shape == (2, 3, 32, 32)  # DCGAN's 4-D noise works too


def test_widths_and_noise_size_configurable():
    small = create_model("dcgan_generator", nz=16, ngf=8)
    assert small(torch.randn(3, 16)).shape == (3, 3, 32, 32)
    assert count_parameters(small) < count_parameters(create_model("dcgan_generator", nz=16, ngf=16))


def test_dcgan_weight_init():
    torch.manual_seed(0)
    generator = create_model("dcgan_generator")
    conv = generator.net[1][0].weight
    norm = generator.net[1][1]
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.002
    assert abs(norm.weight.mean().item() - 1.0) < 0.01 and norm.bias.abs().max() == 0


def test_no_batch_norm_on_first_discriminator_layer_and_no_biases():
    discriminator = create_model("dcgan_discriminator")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.features[0])
    convs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(m.bias is None for m in convs)


def test_conditional_variant_uses_labels():
    torch.manual_seed(0)
    generator = create_model("dcgan_generator", ngf=8, conditional=True)
    discriminator = create_model("dcgan_discriminator", ndf=8, conditional=True)
    noise = torch.randn(1, 100).repeat(2, 1)
    images = generator(noise, torch.tensor([3, 7]))
    assert not torch.equal(images[0], images[1])  # same noise, different class, different image
    assert discriminator(images, torch.tensor([3, 7])).shape == (2,)
    with pytest.raises(ValueError, match="labels"):
        generator(noise)
