"""`cifar train` / `cifar evaluate` through the real entry point: results, config files, bad input."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import assert_one_line_error, cifar


@pytest.fixture(scope="module")
def trained(synth_root, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    config = results / "tiny.yaml"
    config.write_text(yaml.safe_dump({"model": "tinycnn", "optimizer": "sgd", "lr": 0.05, "momentum": 0.4,
                                      "augment": "none", "epochs": 2, "batch_size": 64}))
    run = cifar("train", "--config", config, "--lr", "0.03", "--device", "cpu", "--run-name", "cfg",
                "--data-dir", synth_root, "--results-dir", results, "--json")
    assert run.status == 0, run.err
    return results, json.loads(run.out)


def test_config_file_and_flags_combine(trained):
    results, summary = trained
    saved = yaml.safe_load((results / "train" / "cfg" / "config.yaml").read_text())
    assert saved["model"]["name"] == "tinycnn" and saved["optim"]["name"] == "sgd"
    assert saved["optim"]["lr"] == 0.03  # the flag wins over the file
    assert saved["optim"]["momentum"] == 0.4 and saved["augment"]["crop_padding"] == 0
    assert summary["epochs"] == 2 and summary["parameters"] > 0 and summary["synthetic_data"] is True
    on_disk = json.loads((results / "train" / "cfg" / "summary.json").read_text())
    assert on_disk["best_val_acc"] == summary["best_val_acc"]


def test_evaluate_reports_top1_top5_per_class_and_records_it(trained, synth_root):
    results, _ = trained
    checkpoint = results / "train" / "cfg" / "last.pt"
    out = cifar("evaluate", "--checkpoint", checkpoint, "--data-dir", synth_root, "--device", "cpu", "--json")
    assert out.status == 0, out.err
    scores = json.loads(out.out)
    assert scores["n"] == 500 and 0 <= scores["top1"] <= scores["top5"] <= 1
    assert len(scores["per_class"]) == 100 and "apple" in scores["per_class"]
    recorded = json.loads((results / "train" / "cfg" / "summary.json").read_text())
    assert scores["recorded_in"] == str(results / "train" / "cfg" / "summary.json")
    assert recorded["evaluations"][f"test@step{scores['step']}"]["top1"] == scores["top1"]
    assert "test" not in recorded  # only a run's own --evaluate-test writes its test score


def test_environment_variables_choose_directories(trained, synth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_DATA_DIR", str(synth_root))
    monkeypatch.setenv("CIFAR_RESULTS_DIR", str(tmp_path))
    run = cifar("train", "--model", "tinycnn", "--steps", "3", "--batch-size", "32", "--device", "cpu", "--run-name", "env")
    assert run.status == 0, run.err
    metrics = (tmp_path / "train" / "env" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(metrics[-1])["step"] == 3


def test_help_lists_commands():
    out = cifar("--help")
    assert out.status == 0
    for command in ("train", "evaluate"):
        assert command in out.out


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--model", "cnn99"], ["unknown model 'cnn99'"]),
        (["--optimizer", "lion"], ["--optimizer", "lion"]),
        (["--lr", "-1"], ["--lr", "-1.0 is not in the range x>0"]),  # the declared range, checked by Click
        (["--lr", "inf"], ["optim.lr = inf is not a finite number"]),
        (["--dropout", "1.5"], ["--dropout"]),
        (["--epochs", "0"], ["--epochs"]),
        (["--hue", "0.9"], ["--hue", "0<=x<=0.5"]),
        (["--model", "tinycnn", "--run-name", "../escape"], ["run name", "no paths"]),
    ],
)
def test_bad_training_options(args, fragments, synth_root, tmp_path):
    result = cifar("train", *args, "--data-dir", synth_root, "--results-dir", tmp_path, "--device", "cpu")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "train").exists() or not any((tmp_path / "train").rglob("*.pt"))


def test_missing_data_directory(tmp_path):
    result = cifar("train", "--model", "tinycnn", "--data-dir", tmp_path / "nowhere", "--results-dir", tmp_path)
    assert_one_line_error(result, "nowhere")


def test_unknown_key_in_config_file(tmp_path, synth_root):
    config = tmp_path / "bad.yaml"
    config.write_text("learning_rate: 0.1\n")
    assert_one_line_error(cifar("train", "--config", config, "--data-dir", synth_root), "learning_rate", "bad.yaml")


def test_unreadable_checkpoint(tmp_path, synth_root):
    bogus = tmp_path / "last.pt"
    bogus.write_bytes(b"not a checkpoint at all")
    assert_one_line_error(cifar("evaluate", "--checkpoint", bogus, "--data-dir", synth_root), "last.pt", "unreadable")
    assert_one_line_error(cifar("evaluate", "--checkpoint", tmp_path / "absent.pt", "--data-dir", synth_root), "absent.pt")


def test_corrupt_pickle_is_named(tmp_path, synth_root):
    import shutil

    broken = tmp_path / "data"
    shutil.copytree(synth_root, broken)
    train_file = broken / "cifar-100-python" / "train"
    train_file.write_bytes(train_file.read_bytes()[:1000])
    result = cifar("train", "--model", "tinycnn", "--data-dir", broken, "--results-dir", tmp_path / "r", "--device", "cpu")
    assert_one_line_error(result, "train")


def test_checkpoint_that_does_not_fit_its_model(trained, synth_root, tmp_path):
    import torch

    results, _ = trained
    checkpoint = torch.load(results / "train" / "cfg" / "last.pt", weights_only=True)
    checkpoint["model_name"] = "cnn1"  # tinycnn's weights under another architecture's name
    foreign = tmp_path / "foreign.pt"
    torch.save(checkpoint, foreign)
    assert_one_line_error(cifar("evaluate", "--checkpoint", foreign, "--data-dir", synth_root, "--device", "cpu"),
                          "do not fit model cnn1")


def test_evaluate_on_the_validation_split(trained, synth_root):
    results, summary = trained
    out = cifar("evaluate", "--checkpoint", results / "train" / "cfg" / "last.pt", "--split", "val",
                "--data-dir", synth_root, "--device", "cpu", "--json")
    assert out.status == 0, out.err
    scores = json.loads(out.out)
    assert scores["n"] == 400 and scores["split"] == "val"  # 2,000 training images, 1/5 held out
    assert scores["top1"] == pytest.approx(summary["final_val_acc"])
