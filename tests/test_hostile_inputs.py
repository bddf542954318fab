"""Hostile files, numbers and options (issue 29, items 5 and 8): each refused in one `error:` line, exit
2, in bounded time, with nothing already written changed. YAML (config files, search spaces, Helm
values files, --set values) and JSON (summaries, metrics) go through one bounded reader each.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from helpers import assert_one_line_error, cifar

DIGITS_400 = "9" * 400

# Each a YAML text past a limit, and what the error line says about it.
HOSTILE_YAML = {
    "alias-built-keys": ("a: &a [x, x, x, x, x, x, x, x]\n"
                         "b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "? [*b, *b]\n: 1\n? [*b, *b, 1]\n: 2\n", "a key must be a plain value"),
    "alias-key-mapping": ("m: &m {lr: 1}\n? *m\n: 2\n", "a key must be a plain value"),
    "billion-laughs": ("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
                       + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n"
                                 for i in range(6)), "once its aliases are expanded"),
    "deep-flow": ("lr: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested deeper than 64 levels"),
    "deep-block": ("".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + f"{'  ' * 200}v: 1\n", "nested deeper"),
    "deep-aliases": ("a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n",
                     "nested deeper than 64 levels once its aliases are expanded"),
    "self-alias": ("a: &a [1, *a]\n", "an alias refers to a value that contains it"),
    "400-digit-int": (f"lr: {DIGITS_400}\n", "has 400 characters"),
    "400-digit-float": (f"lr: {DIGITS_400}.5\n", "has 402 characters"),
}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- YAML from users -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HOSTILE_YAML)
def test_a_hostile_config_file_is_one_line(tmp_path, name):
    text, fragment = HOSTILE_YAML[name]
    config = tmp_path / "config.yaml"
    config.write_text(text)
    result = cifar("train", "--config", config, "--data-dir", tmp_path / "none", "--results-dir", tmp_path / "r")
    assert_one_line_error(result, str(config), fragment)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["alias-built-keys", "billion-laughs", "deep-flow", "self-alias", "400-digit-int"])
def test_a_hostile_search_space_is_one_line(tmp_path, name):
    text, fragment = HOSTILE_YAML[name]
    space = tmp_path / "space.yaml"
    space.write_text(text.replace("lr:", "fixed:"))
    result = cifar("tune", "--experiment", "x", "--space", space, "--data-dir", tmp_path / "none",
                   "--results-dir", tmp_path / "r")
    assert_one_line_error(result, str(space), fragment)


@pytest.mark.parametrize("name", ["alias-built-keys", "billion-laughs", "deep-flow", "deep-block", "400-digit-int"])
def test_a_hostile_values_file_is_one_line(tmp_path, name):
    text, fragment = HOSTILE_YAML[name]
    values = tmp_path / "values.yaml"
    values.write_text(text)
    assert_one_line_error(cifar("submit", "pipeline", "--dry-run", "-f", values), str(values), fragment)


@pytest.mark.parametrize("value, fragment", [
    (DIGITS_400, "has 400 characters"),
    ("[" * 50_000 + "]" * 50_000, "nested deeper than 64 levels"),
    ("{a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], "
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c], "
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d], f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]}",
     "once its aliases are expanded"),
])
def test_a_hostile_set_value_is_one_line(tmp_path, value, fragment):
    result = cifar("pipeline", "--profile", "smoke", "--no-ray", "--set", f"gan.lr={value}",
                   "--data-dir", tmp_path / "none", "--results-dir", tmp_path / "r")
    assert_one_line_error(result, "--set gan.lr", fragment)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("text", [
    "lr: " + "1" + "0" * 60 + "\n",  # an int a float64 holds but a float32 does not
    "weight_decay: " + "1" + "0" * 60 + ".0\n",
    "lr: -1" + "0" * 50 + "\n",
])
def test_a_long_number_for_a_float_setting_is_refused_as_what_it_becomes(tmp_path, text):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    assert_one_line_error(cifar("train", "--config", config, "--data-dir", tmp_path), "does not fit a float32")


def test_a_config_or_values_file_that_never_ends_or_is_no_file_is_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes it: opening it must not wait for a writer
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 110_000 + "lr: 0.1\n")  # past 1 MiB
    for path, fragment in (("/dev/zero", "not a regular file"), (fifo, "not a regular file"),
                           (big, "larger than 1 MiB")):
        assert_one_line_error(cifar("train", "--config", path, "--data-dir", tmp_path), str(path), fragment)
        assert_one_line_error(cifar("submit", "pipeline", "--dry-run", "-f", path), str(path), fragment)
    assert_one_line_error(cifar("tune", "--experiment", "x", "--space", big, "--data-dir", tmp_path,
                                "--results-dir", tmp_path / "r"), str(big), "larger than 1 MiB")


def test_plain_yaml_still_loads_with_its_aliases_and_merge_keys():
    from cifar_core.fields import load_yaml

    assert load_yaml("base: &b {lr: 0.1, wd: 1e-4}\nrun:\n  <<: *b\n  lr: 0.2\nxs: [*b, *b]\n") == {
        "base": {"lr": 0.1, "wd": 1e-4}, "run": {"lr": 0.2, "wd": 1e-4}, "xs": [{"lr": 0.1, "wd": 1e-4}] * 2}


# --- --set: one value per setting ------------------------------------------------------------------
@pytest.mark.parametrize("sets, fragments", [
    (["gan={steps: 5}", "gan.steps=6"], ["--set gan.steps is given twice (5 and 6)"]),
    (["gan.steps=6", "gan={steps: 5}"], ["--set gan.steps is given twice (6 and 5)"]),
    (["gan.collapse={mode: off}", "gan={collapse: {mode: restart}}"], ["gan.collapse.mode is given twice"]),
    (["gan.bogus=1", "gan={steps: 5}"], ["unknown setting 'gan.bogus'"]),
    (["gan={steps: 5}", "gan.bogus=1"], ["unknown setting 'gan.bogus'"]),
    (["gan.steps=5", "gan.steps.x=1"], ["gan.steps.x and gan.steps overlap"]),
    (["gan.steps.x=1", "gan.steps=5"], ["--set gan.steps.x: steps is a setting, not a group"]),
    (["gan.collapse={mode: off}", "gan.collapse=1"], ["gan.collapse and gan.collapse.mode overlap"]),
])
def test_a_setting_given_twice_through_a_group_or_dropped_by_one_is_refused(tmp_path, sets, fragments):
    args = [arg for value in sets for arg in ("--set", value)]
    result = cifar("pipeline", "--profile", "smoke", "--no-ray", *args, "--data-dir", tmp_path / "none",
                   "--results-dir", tmp_path / "r")
    assert_one_line_error(result, *fragments)


def test_a_group_set_keeps_the_profiles_other_settings():
    from cifar_core.pipeline import resolve_profile

    base = resolve_profile("smoke")
    merged = resolve_profile("smoke", ["gan={lr: 0.0005}", "gan.steps=5"])
    assert (merged.gan.training.lr, merged.gan.training.steps) == (0.0005, 5)
    assert merged.gan.training.batch_size == base.gan.training.batch_size
    assert merged.gan.training.log_every == base.gan.training.log_every


# --- numbers from options and the environment ------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", DIGITS_400, "-1"])
@pytest.mark.parametrize("command", [["tune", "--experiment", "x"], ["gan", "train", "--run-name", "g"],
                                     ["pipeline", "--profile", "smoke"], ["fid", "--fake", "."]])
def test_pending_timeout_is_a_finite_number_of_seconds(tmp_path, command, value):
    result = cifar(*command, "--pending-timeout", value, "--results-dir", tmp_path / "r")
    assert_one_line_error(result, "--pending-timeout")
    assert not (tmp_path / "r").exists()
    assert_one_line_error(cifar("check", "--pending-timeout", value), "--pending-timeout")


@pytest.mark.parametrize("text, fragment", [
    (f'[{{"cpu": "8", "gpus": {DIGITS_400}, "max": 1}}]', "is not a finite number"),
    ('[{"cpu": "8", "gpus": 1e999, "max": 1}]', "gpus = 1e999"),
    ('[{"cpu": "8", "gpus": NaN, "max": 1}]', "= NaN"),
    ('[{"cpu": "8", "gpus": 1, "max": 1.5}]', "[0].max = 1.5"),
    ('[{"cpu": "8", "gpus": -1}]', "[0].gpus = -1"),
    ('[{"cpu": "1.2.3", "gpus": 1}]', "[0].cpu = '1.2.3' is not a CPU quantity"),
    ('{"cpu": "8"}', "expected a JSON list"),
    ("[" * 50_000, "nested deeper than 64 levels"),
])
def test_autoscaled_workers_are_read_bounded_and_checked(monkeypatch, text, fragment):
    from cifar_core.errors import ConfigError
    from cifar_core.execution.capacity import AUTOSCALED_WORKERS_ENV, autoscaled_workers

    monkeypatch.setenv(AUTOSCALED_WORKERS_ENV, text)
    with pytest.raises(ConfigError) as refused:
        autoscaled_workers()
    assert fragment in str(refused.value) and "\n" not in str(refused.value)


# --- JSON from summaries and metrics ---------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(synth_root, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results")
    done = cifar("train", "--model", "tinycnn", "--steps", 2, "--batch-size", 100, "--augment", "none", "--device",
                 "cpu", "--data-dir", synth_root, "--results-dir", results, "--run-name", "r")
    assert done.status == 0, done.err
    return results


@pytest.mark.parametrize("number, fragment", [
    ("1e999", "best_val_acc = 1e999"), ("-1e999", "best_val_acc = -1e999"), ("NaN", "best_val_acc = NaN"),
    ("Infinity", "best_val_acc = Infinity"), ("1" + "0" * 30, "best_val_acc = 100000000000...(31 characters)"),
    (DIGITS_400, "(400 characters)"),
])
def test_a_summary_holding_a_number_nothing_can_use_is_named_by_the_report(trained, tmp_path, number, fragment):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(trained, results)
    summary = results / "train" / "r" / "summary.json"
    summary.write_text(summary.read_text().replace('"best_val_acc": ', f'"best_val_acc": {number}, "was": ', 1))
    before = _files(results)
    assert_one_line_error(cifar("report", "--results-dir", results), str(summary), fragment)
    assert _files(results) == before


@pytest.mark.parametrize("name", ["deep-flow", "billion-laughs", "self-alias", "400-digit-int"])
def test_a_hostile_config_yaml_in_a_run_is_one_line_from_the_report(trained, tmp_path, name):
    """The report reads a run's config.yaml (its budget) with the same limits as every YAML file."""
    import shutil

    text, fragment = HOSTILE_YAML[name]
    results = tmp_path / "results"
    shutil.copytree(trained, results)
    config = results / "train" / "r" / "config.yaml"
    config.write_text(text)
    before = _files(results)
    assert_one_line_error(cifar("report", "--results-dir", results), str(config), fragment)
    assert _files(results) == before


def test_a_summary_nested_50000_deep_is_one_line_and_a_device_is_not_read(trained, tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(trained, results)
    summary = results / "train" / "r" / "summary.json"
    summary.write_text('{"x": ' + "[" * 50_000 + "]" * 50_000 + "}")
    assert_one_line_error(cifar("report", "--results-dir", results), str(summary), "nested deeper than 64 levels")
    summary.unlink()
    summary.symlink_to("/dev/zero")  # not a summary: the run is listed as incomplete, nothing is read
    assert cifar("report", "--results-dir", results).status == 0
    from cifar_core.atomic import read_json
    from cifar_core.errors import CifarError

    with pytest.raises(CifarError, match="is not a regular file"):
        read_json(summary)


def test_a_metrics_line_with_an_unusable_number_names_the_line(tmp_path):
    from cifar_core.atomic import read_jsonl
    from cifar_core.errors import CifarError

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1, "d_loss": 0.5}\n{"step": 2, "d_loss": 1e999}\n{"step": 3}\n')
    with pytest.raises(CifarError, match=r"metrics.jsonl line 2: d_loss = 1e999"):
        read_jsonl(metrics)
    metrics.write_text('{"step": 1, "d_loss": 0.5}\n{"step": 2, "d_lo')  # a torn last line stays tolerated
    assert read_jsonl(metrics) == [{"step": 1, "d_loss": 0.5}]


# --- the smaller ones: bounded messages, a file in a folder's place, a full disk -------------------
def test_a_huge_bad_label_gives_a_bounded_error_line(tmp_path):
    assert cifar("data", "synth", "--out", tmp_path, "--train", 20, "--test", 10).status == 0
    train = tmp_path / "cifar-100-python" / "train"
    entry = pickle.loads(train.read_bytes(), encoding="bytes")
    entry[b"fine_labels"][3] = "x" * 10_000_000
    train.write_bytes(pickle.dumps(entry))
    result = cifar("data", "verify", tmp_path)
    assert_one_line_error(result, str(train), "'fine_labels'[3]", "characters left out")
    assert len(result.err) < 1100


def test_a_huge_bad_option_value_gives_a_bounded_error_line(tmp_path):
    result = cifar("train", "--lr", "x" * 1_000_000, "--data-dir", tmp_path)
    assert_one_line_error(result, "--lr", "characters left out")
    assert len(result.err) < 1100


def test_a_file_where_a_folder_must_be_is_named(synth_root, tmp_path):
    (tmp_path / "train").write_text("")
    result = cifar("train", "--model", "tinycnn", "--steps", 1, "--device", "cpu", "--data-dir", synth_root,
                   "--results-dir", tmp_path)
    assert_one_line_error(result, f"{tmp_path / 'train'} is a file, where a directory must be")
    run = tmp_path / "gan" / "g"
    run.mkdir(parents=True)
    (run / "checkpoints").write_text("")
    result = cifar("gan", "train", "--run-name", "g", "--steps", 2, "--batch-size", 16, "--ngf", 8, "--ndf", 8,
                   "--device", "cpu", "--no-ray", "--data-dir", synth_root, "--results-dir", tmp_path)
    assert_one_line_error(result, f"{run / 'checkpoints'}: a file is in the way where a directory must be")
    assert "File exists" not in result.err and (run / "checkpoints").read_text() == ""


def test_os_error_line_names_the_file_in_the_way(tmp_path):
    from cifar_core.errors import os_error_line

    blocker = tmp_path / "a"
    blocker.write_text("")
    for target in (blocker, blocker / "b" / "c"):
        with pytest.raises(OSError) as failed:
            target.mkdir(parents=True, exist_ok=True)
        assert str(blocker) in os_error_line(failed.value) and "a directory must be" in os_error_line(failed.value)


def test_a_full_volume_names_the_lock_file(synth_root, tmp_path):
    from test_cli_errors import _in_mount_namespace, _unshare_works

    if not _unshare_works():
        pytest.skip("needs `unshare -rm` (user+mount namespaces)")
    volume = tmp_path / "volume"
    volume.mkdir()
    run = volume / "train" / "r"
    done = _in_mount_namespace(
        f"mount -t tmpfs -o size=64k tmpfs {volume} && mkdir -p {run} && "
        f"{{ dd if=/dev/zero of={volume / 'fill'} bs=4k 2>/dev/null; true; }}",
        ["train", "--model", "tinycnn", "--steps", "1", "--device", "cpu", "--data-dir", str(synth_root),
         "--results-dir", str(volume), "--run-name", "r"])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and lines == [f"error: {run / '.lock'}: No space left on device"], done.stderr


def test_json_written_by_us_reads_back(tmp_path):
    from cifar_core.atomic import atomic_write_json, read_json

    value = {"a": [1, -2**63, 2**63 - 1, 1.5e308, -0.0, None, True, "x"], "b": {"c": [[[]]]}}
    atomic_write_json(tmp_path / "s.json", value)
    assert read_json(tmp_path / "s.json") == json.loads(json.dumps(value))
