"""The model zoo: every registered model builds, runs forward and backward, and has a pinned size."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from cifar_core.errors import ConfigError
from cifar_core.models import cnn as cnn_module
from cifar_core.models import count_parameters, create_model, get_entry, list_models, register_model
from cifar_core.models.registry import _natural_key, parameter_count

# Exact trainable parameters for 100 classes. A model added without an entry here fails the test:
# pin its count on purpose.
PINNED = {
    "cnn1": 643_716,
    "cnn2": 10_393_946,  # report A's CNN2
    "cnn3": 1_382_404,
    "cnn4": 2_607_140,
    "cnn5": 802_532,
    "cnn6": 2_494_022,  # report A's CNN6
    "cnn7": 3_004_917,  # report A's CNN7
    "cnn8": 3_894_708,
    "resdw": 98_077,  # report B: 98,068
    "resnet18": 11_220_132,
    "preact_resnet18": 11_218_340,
    "wrn16_4": 2_772_020,
    "wrn28_10": 36_536_884,
    "tinycnn": 30_196,
    "dcgan_generator": 635_812,  # report B
    "dcgan_discriminator": 344_264,  # report B
}
REPORT_A = {"cnn2": 10_393_946, "cnn6": 2_494_022, "cnn7": 3_004_917}  # as report A states them
REPORT_B_LIMIT = 100_000
# Inputs for the models that are not image classifiers.
GAN_INPUTS = {
    "dcgan_generator": lambda: torch.randn(2, 100),
    "dcgan_discriminator": lambda: torch.randn(2, 3, 32, 32),
}


def test_every_registered_model_has_a_pinned_count():
    assert sorted(list_models()) == sorted(PINNED), "pin the parameter count of every new model in PINNED"


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_and_size(name):
    torch.manual_seed(0)
    model = create_model(name)
    assert count_parameters(model) == PINNED[name]
    family = get_entry(name).family
    if family == "gan":
        assert name in GAN_INPUTS, f"add an input for the GAN model {name} to GAN_INPUTS"
        out = model(GAN_INPUTS[name]())
    else:
        out = model(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 100)
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without a gradient: {missing}"


def test_meta_device_count_equals_a_real_build():
    for name in ("cnn7", "resdw", "wrn16_4"):
        assert parameter_count(name) == count_parameters(create_model(name)) == PINNED[name]
    assert parameter_count("cnn1", num_classes=10) == PINNED["cnn1"] - 90 * (256 + 1)


def test_report_sizes():
    assert parameter_count("resdw") <= REPORT_B_LIMIT
    for name, reported in REPORT_A.items():  # report A, section VII
        assert parameter_count(name) == reported  # our layouts hit report A exactly
    assert parameter_count("resnet18") == pytest.approx(11.2e6, rel=0.01)  # the usual CIFAR ResNet-18


def test_resdw_follows_report_b():
    model = create_model("resdw")
    widths = [block.bn2.num_features for block in model.blocks]
    assert widths == [42] * 8 + [128] * 2
    assert model.stem[0].depthwise.groups == 3 and model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize("name", list_models(family="cnn"))
def test_cnn_flatten_size_follows_report_a_formula(name):
    model = create_model(name)
    assert isinstance(model, cnn_module.CNN)
    features = model.features(torch.randn(1, 3, 32, 32))
    layout = getattr(cnn_module, name.upper())  # CNN1 ... CNN8
    assert features.flatten(1).shape[1] == cnn_module.flatten_size(layout)


def _modules_of(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if type(m) is kind]


@pytest.mark.parametrize("name", list_models(family="cnn"))
def test_cnn_overrides_change_the_modules(name):
    default = create_model(name)
    rates = {m.p for m in _modules_of(default, nn.Dropout)}
    assert len(rates) == 1 and 0.1 <= rates.pop() <= 0.3  # report A's range

    model = create_model(name, dropout=0.0, activation="leaky_relu")
    assert {m.p for m in _modules_of(model, nn.Dropout)} == {0.0}
    assert _modules_of(model, nn.LeakyReLU) and not _modules_of(model, nn.ReLU)
    model = create_model(name, activation="relu")
    assert _modules_of(model, nn.ReLU) and not _modules_of(model, nn.LeakyReLU)
    assert count_parameters(model) == PINNED[name]  # activations and dropout cost nothing


def test_report_a_activations():
    for name, kind in (("cnn2", nn.ReLU), ("cnn6", nn.ReLU), ("cnn7", nn.LeakyReLU)):
        assert _modules_of(create_model(name), kind)


def test_none_overrides_keep_the_defaults():
    model = create_model("cnn1", dropout=None, activation=None)
    assert {m.p for m in _modules_of(model, nn.Dropout)} == {0.2}
    wrn = create_model("wrn16_4", dropout=0.3)
    assert {m.p for m in _modules_of(wrn, nn.Dropout)} == {0.3}


@pytest.mark.parametrize(
    "name, overrides, fragment",
    [
        ("cnn1", {"activation": "gelu"}, "activation"),
        ("cnn3", {"dropout": 1.0}, "dropout"),
        ("cnn3", {"dropout": -0.1}, "dropout"),
        ("wrn16_4", {"dropout": "high"}, "dropout"),
        ("resdw", {"activation": "relu"}, "it takes: num_classes, dropout"),
        ("resnet18", {"widht": 2}, "widht"),
    ],
)
def test_bad_overrides_are_config_errors(name, overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        create_model(name, **overrides)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown model 'cnn9'.*cnn1, cnn2"):
        create_model("cnn9")


def test_registry_lookup_rules():
    assert list_models("cnn*") == [f"cnn{i}" for i in range(1, 9)]
    assert list_models(family="efficient") == ["resdw"]
    assert list_models("wrn*") == ["wrn16_4", "wrn28_10"]
    assert "wrn28_10" not in list_models(family="reference", exclude="wrn28*")
    assert sorted(["cnn10", "cnn2", "cnn1"], key=_natural_key) == ["cnn1", "cnn2", "cnn10"]
    with pytest.raises(ValueError, match="registered twice"):

        @register_model(family="cnn", description="a second cnn1")
        def cnn1():  # noqa: F811 - the clash is the point
            return nn.Identity()

    assert get_entry("cnn1").module == "cifar_core.models.cnn"


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_cli_refuses_a_class_count_that_is_not_positive(capsys, value):
    from jobs.cli import main

    capsys.readouterr()
    assert main(["models", "cnn2", "--num-classes", value]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("error: ") and "--num-classes" in err, err


def test_only_the_gan_pair_is_not_a_classifier():
    assert [name for name in list_models() if not get_entry(name).is_classifier] == ["dcgan_discriminator",
                                                                                      "dcgan_generator"]
    assert get_entry("tinycnn").is_classifier and get_entry("resdw").is_classifier


def test_cli_lists_every_model_with_its_count():
    from jobs.cli import cli

    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == list_models()
    for row in rows:
        assert row["parameters"] == parameter_count(row["name"]) == PINNED[row["name"]]
        assert row["family"] == get_entry(row["name"]).family and row["description"]

    table = CliRunner().invoke(cli, ["models", "cnn*", "--family", "cnn"])
    assert table.exit_code == 0
    assert [line.split()[0] for line in table.output.splitlines()[1:]] == list_models("cnn*")
    assert "2,494,022" in table.output


def test_cli_rejects_an_unknown_family_in_one_line(capsys):
    from jobs.cli import main

    assert main(["models", "--family", "vit"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown model family 'vit'; known families: cnn, ")
    assert main(["models", "resnet*", "--family", "cnn"]) == 2
    assert capsys.readouterr().err.strip() == "error: no model matches 'resnet*' in family 'cnn'"


@pytest.mark.parametrize("name", ["cnn7", "resdw"])
def test_a_few_steps_fit_one_batch(name):
    torch.manual_seed(0)
    model = create_model(name)
    images, labels = torch.randn(8, 3, 32, 32), torch.arange(8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
