"""TrainConfig: nested and flat YAML, overrides, type and range checks."""

import pytest

from cifar_core.config import TrainConfig
from cifar_core.errors import ConfigError


def test_defaults_validate_and_round_trip():
    cfg = TrainConfig()
    cfg.validate()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_overrides_apply_and_ignore_none():
    cfg = TrainConfig().with_overrides({"optim.lr": 0.05, "model.name": "tinycnn", "run.epochs": None})
    assert cfg.optim.lr == 0.05 and cfg.model.name == "tinycnn"
    assert cfg.run.epochs == TrainConfig().run.epochs


def test_int_accepted_where_float_expected():
    assert TrainConfig.from_dict({"optim": {"lr": 1}}).optim.lr == 1.0


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"optim": {"learning_rate": 0.1}}, "optim.learning_rate"),
        ({"trainer": {}}, "trainer"),
        ({"optim": {"lr": "fast"}}, "optim.lr"),
        ({"run": {"epochs": 2.5}}, "run.epochs"),
        ({"run": {"full_train": "yes"}}, "run.full_train"),
        ({"optim": {"lr": -1}}, "optim.lr"),
        ({"optim": {"beta2": 1.0}}, "optim.beta2"),
        ({"optim": {"momentum": 1.5}}, "optim.momentum"),
        ({"optim": {"name": "lion"}}, "optim.name"),
        ({"model": {"name": "cnn99"}}, "cnn99"),
        ({"model": {"dropout": 1.0}}, "model.dropout"),
        ({"run": {"batch_size": 0}}, "run.batch_size"),
        ({"optim": {"nesterov": True}}, "optim.nesterov"),
        # Issue 13: non-finite values, seeds out of range, a GAN network as a classifier.
        ({"optim": {"weight_decay": float("inf")}}, "optim.weight_decay"),
        ({"optim": {"lr": float("nan")}}, "optim.lr"),
        ({"augment": {"brightness": float("inf")}}, "augment.brightness"),
        ({"augment": {"rotation": float("nan")}}, "augment.rotation"),
        ({"run": {"split_seed": -1}}, "run.split_seed"),
        ({"run": {"seed": 2**63}}, "run.seed"),
        ({"model": {"name": "dcgan_generator"}}, "classifier"),
    ],
)
def test_bad_values_name_the_key(data, fragment):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(data)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_from_yaml_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml"):
        TrainConfig.from_yaml(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        TrainConfig.from_yaml(broken)


def test_resolve_config_precedence_file_then_preset_then_options(tmp_path):
    from cifar_core.config import resolve_config

    path = tmp_path / "run.yaml"
    path.write_text("model: tinycnn\nlr: 0.02\naugment: none\nepochs: 3\n")
    cfg = resolve_config(path, "flip-crop", {"lr": 0.05, "epochs": None})
    assert cfg.model.name == "tinycnn" and cfg.run.epochs == 3
    assert cfg.optim.lr == 0.05  # an option wins over the file
    assert cfg.augment.hflip and cfg.augment.crop_padding == 4  # the command line's preset wins
    assert resolve_config(path, None, {}).augment.crop_padding == 0  # else the file's
    with pytest.raises(ConfigError, match="unknown augmentation preset"):
        resolve_config(None, "wild", {})
    # A name that is no setting is refused, never dropped (an option missing from a hand-kept table was).
    with pytest.raises(ConfigError, match="unknown setting 'run_name'"):
        resolve_config(None, None, {"run_name": "x"})


def test_any_seed_up_to_2_63_is_accepted():
    # 2e14 overflowed the old seed * 100_003 + epoch derivation; every seed now goes through SeedSequence.
    assert TrainConfig.from_dict({"run": {"seed": 200_000_000_000_000, "split_seed": 2**63 - 1}}).run.seed == 200_000_000_000_000


def test_augment_config_built_directly_refuses_non_finite_values():
    from cifar_core.data.augment import AugmentConfig

    for key in ("brightness", "contrast", "saturation", "hue", "rotation"):
        with pytest.raises(ConfigError, match=f"augment.{key} = inf is not a finite number"):
            AugmentConfig(**{key: float("inf")})


def test_a_config_file_that_is_not_utf8_is_one_error_naming_it(tmp_path):
    from cifar_core.config import resolve_config

    path = tmp_path / "latin1.yaml"
    path.write_bytes("lr: 0.1  # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml is not UTF-8"):
        resolve_config(path, None, {})
