"""The hostile probes of issue 19 as regression tests, by family: input that does not fit becomes one
`error:` line and exit 2 before anything is written; what a user or a later command wrote is kept;
nothing silently wrong (other data, fewer steps, a second writer). The Ray failures are in
test_ray_cluster.py (they need a cluster); the reaper's kill test is at the end here."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_one_line_error, cifar

from cifar_core.data import write_synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("probe-data")
    write_synthetic(root, n_train=300, n_test=100, seed=0)
    return root


def train_args(data: Path, results: Path, *extra) -> list:
    return ["train", "--model", "tinycnn", "--optimizer", "sgd", "--lr", "0.05", "--batch-size", "100",
            "--eval-batch-size", "100", "--device", "cpu", "--data-dir", data, "--results-dir", results, *extra]


# --- values that do not fit what they become, and input that is not one thing --------------------
@pytest.mark.parametrize(("args", "fragment"), [
    (["--lr", "1e39"], "optim.lr = 1e+39 does not fit a float32"),
    (["--weight-decay", "1e308"], "optim.weight_decay = 1e+308 does not fit a float32"),
    (["--optimizer", "adagrad", "--initial-accumulator-value", "1e300"], "does not fit a float32"),
    (["--brightness", "1e308"], "augment.brightness = 1e+308 does not fit a float32"),
    (["--seed", "99999999999999999999"], "seed"),
])
def test_train_values_that_do_not_fit_their_type(tmp_path, data, args, fragment):
    result = cifar(*train_args(data, tmp_path, "--steps", "1", *args))
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "train").exists()


@pytest.mark.parametrize(("args", "fragment"), [
    (["models", "--num-classes", "99999999999999999999"], "--num-classes"),
    (["retrain", "--recipe", "report-b", "--cpus", "1e308"], "--cpus"),
    (["retrain", "--recipe", "report-b", "--seeds", ""], "empty item"),
    (["retrain", "--recipe", "report-b", "--seeds", ",,"], "empty item"),
    (["retrain", "--recipe", "report-a", "--models", ""], "empty item"),
    (["pipeline", "--set", "gan.run=../../ESCAPED"], "gan.run '../../ESCAPED'"),
    (["pipeline", "--set", "gan.run=a/b"], "gan.run 'a/b'"),
    (["pipeline", "--set", "fid.if_no_weights=explode"], "expected one of fail, skip"),
    (["pipeline", "--set", "recipe-b.seeds=[]"], "recipe-b.seeds = [] is empty"),
    (["pipeline", "--set", "gan.steps=10", "--set", "gan.steps=20"], "gan.steps is given twice"),
    (["gan", "train", "--run-name", "../x"], "--run-name '../x'"),
    (["fid", "--fake", ".", "--name", "a/b"], "--name 'a/b'"),
])
def test_commands_refuse_what_is_not_one_value(tmp_path, data, args, fragment):
    result = cifar(*args, "--data-dir", data, "--results-dir", tmp_path / "results") if args[0] != "models" \
        else cifar(*args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "results").exists() and not (tmp_path.parent / "ESCAPED").exists()


@pytest.mark.parametrize(("text", "fragment"), [
    ("lr: 0.1\nlr: 0.2\n", "the key 'lr' is given twice"),
    ("steps: 3\nrun:\n  steps: 4\n", "gives run.steps twice: as run.steps and as steps"),
])
def test_a_config_file_gives_each_setting_once(tmp_path, data, text, fragment):
    (tmp_path / "c.yaml").write_text(text)
    assert_one_line_error(cifar(*train_args(data, tmp_path, "--config", tmp_path / "c.yaml")), fragment)


def test_a_results_directory_with_a_file_in_the_way(tmp_path, data):
    (tmp_path / "afile").write_text("x")
    assert_one_line_error(cifar(*train_args(data, tmp_path / "afile" / "r", "--steps", "1")), "afile")


def test_a_refused_device_leaves_no_run_directory(tmp_path, data):
    result = cifar(*train_args(data, tmp_path, "--steps", "1", "--run-name", "dev")[:-6], "--device", "cuda:7",
                   "--data-dir", data, "--results-dir", tmp_path)
    assert result.status == 2 and not (tmp_path / "train" / "dev").exists()


# --- what was written is kept ----------------------------------------------------------------------
def test_scores_recorded_after_the_commit_point_survive_resume_and_extension(tmp_path, data):
    assert cifar(*train_args(data, tmp_path, "--steps", "4", "--run-name", "a", "--evaluate-test")).status == 0
    assert cifar("evaluate", "--checkpoint", tmp_path / "train/a/last.pt", "--data-dir", data, "--device",
                 "cpu").status == 0
    summary = lambda: json.loads((tmp_path / "train/a/summary.json").read_text())  # noqa: E731
    test, evaluations = summary()["test"], summary()["evaluations"]
    assert test["step"] == 4 and list(evaluations) == ["test@step4"]
    assert cifar(*train_args(data, tmp_path, "--steps", "4", "--run-name", "a", "--resume")).status == 0  # a no-op
    assert summary()["evaluations"] == evaluations and summary()["test"] == test
    assert cifar(*train_args(data, tmp_path, "--steps", "6", "--run-name", "a", "--resume")).status == 0  # extended
    assert summary()["steps"] == 6 and summary()["evaluations"] == evaluations
    assert summary()["test"] == test  # still the score of step 4, and it says so


def test_a_run_is_never_rewritten_as_a_shorter_one(tmp_path, data):
    assert cifar(*train_args(data, tmp_path, "--steps", "4", "--run-name", "a")).status == 0
    config = (tmp_path / "train/a/config.yaml").read_text()
    for shorter in (["--steps", "2"], ["--epochs", "1"]):
        assert_one_line_error(cifar(*train_args(data, tmp_path, *shorter, "--run-name", "a", "--resume")),
                              "has already trained 4 steps")
    assert (tmp_path / "train/a/config.yaml").read_text() == config
    gan = ["gan", "train", "--run-name", "g", "--batch-size", "32", "--ngf", "8", "--ndf", "8", "--log-every", "2",
           "--sample-every", "4", "--checkpoint-every", "4", "--device", "cpu", "--data-dir", data,
           "--results-dir", tmp_path, "--no-ray"]
    assert cifar(*gan, "--steps", "4").status == 0
    assert_one_line_error(cifar(*gan, "--steps", "2"), "has already trained 4 steps")
    assert json.loads((tmp_path / "gan/g/summary.json").read_text())["config"]["steps"] == 4


def test_resuming_on_changed_files_is_refused_although_the_manifest_is_the_same(tmp_path, data):
    """Another synthetic set's train file copied over the data, SYNTHETIC.json left in place."""
    mine = tmp_path / "data"
    shutil.copytree(data, mine)
    assert cifar(*train_args(mine, tmp_path, "--steps", "2", "--run-name", "a")).status == 0
    other = write_synthetic(tmp_path / "other", n_train=300, n_test=100, seed=1)
    shutil.copy(Path(other) / "train", mine / "cifar-100-python" / "train")
    assert_one_line_error(cifar(*train_args(mine, tmp_path, "--steps", "4", "--run-name", "a", "--resume")),
                          "cannot reuse", "made from other data")


def test_gan_sample_never_deletes_what_it_did_not_write(tmp_path, data):
    gan = ["gan", "train", "--run-name", "g", "--steps", "2", "--batch-size", "32", "--ngf", "8", "--ndf", "8",
           "--log-every", "2", "--sample-every", "2", "--checkpoint-every", "2", "--device", "cpu",
           "--data-dir", data, "--results-dir", tmp_path, "--no-ray"]
    assert cifar(*gan).status == 0
    sample = ["gan", "sample", "--checkpoint", tmp_path / "gan/g/checkpoints/last.pt", "--n", "4", "--out",
              tmp_path / "S", "--device", "cpu"]
    assert cifar(*sample).status == 0
    (tmp_path / "S" / "notes.txt").write_text("mine")
    (tmp_path / "S" / "analysis").mkdir()
    assert_one_line_error(cifar(*sample), "holds analysis and 1 more, which no sample wrote")
    assert (tmp_path / "S/notes.txt").read_text() == "mine" and (tmp_path / "S/analysis").is_dir()
    # A set killed before its completion marker (an image lost too) is made again as a whole.
    out = tmp_path / "T"
    assert cifar(*sample[:-4], "--out", out, "--device", "cpu").status == 0
    made = {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"}
    (out / "complete.json").unlink()
    (out / "00002.png").unlink()
    assert cifar(*sample[:-4], "--out", out, "--device", "cpu").status == 0
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"} == made


def test_a_write_that_fails_names_its_file(tmp_path, data):
    """A full volume (here a file-size limit, the same failure to the writer) names the file that
    could not be written, also for the samples `gan sample` writes one by one."""
    gan = ["gan", "train", "--run-name", "g", "--steps", "2", "--batch-size", "32", "--ngf", "8", "--ndf", "8",
           "--log-every", "2", "--sample-every", "2", "--checkpoint-every", "2", "--device", "cpu",
           "--data-dir", data, "--results-dir", tmp_path, "--no-ray"]
    assert cifar(*gan).status == 0
    limited = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100)); from jobs.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", limited, "gan", "sample", "--checkpoint",
                           str(tmp_path / "gan/g/checkpoints/last.pt"), "--n", "4", "--out", str(tmp_path / "S"),
                           "--device", "cpu"], capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "/S/" in lines[0] and "File too large" in lines[0]
    assert not (tmp_path / "S" / "complete.json").exists()  # nothing claims to be a finished set


def test_models_list_each_models_options(capsys):
    rows = json.loads(cifar("models", "tinycnn", "--json").out)
    assert rows[0]["options"] == ["width", "dropout", "activation"]


def test_nan_weights_are_never_scored(tmp_path, data):
    import torch

    assert cifar(*train_args(data, tmp_path, "--steps", "2", "--run-name", "n")).status == 0
    last = tmp_path / "train/n/last.pt"
    checkpoint = torch.load(last, weights_only=True)
    for value in checkpoint["model_state"].values():
        if value.is_floating_point():
            value.fill_(float("nan"))
    torch.save(checkpoint, last)
    for extra in ((), ("--json",)):
        assert_one_line_error(cifar("evaluate", "--checkpoint", last, "--data-dir", data, "--device", "cpu", *extra),
                              "hold NaN or infinite values")


def test_a_report_on_a_summary_with_nan_names_that_file(tmp_path):
    (tmp_path / "train" / "x").mkdir(parents=True)
    (tmp_path / "train" / "x" / "summary.json").write_text('{"model": "tinycnn", "best_val_acc": NaN}')
    assert_one_line_error(cifar("report", "--results-dir", tmp_path), "train/x/summary.json", "NaN")


def test_a_ray_address_where_nothing_answers_is_one_line_in_seconds(tmp_path, data, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    started = time.monotonic()
    assert_one_line_error(cifar("gan", "train", "--run-name", "g", "--steps", "1", "--data-dir", data,
                                "--results-dir", tmp_path), "nothing answers at RAY_ADDRESS=127.0.0.1:1")
    assert time.monotonic() - started < 30 and not (tmp_path / "gan").exists()


def test_a_search_on_cuda_without_a_gpu_share_is_refused_before_any_trial(tmp_path, data):
    assert_one_line_error(cifar("tune", "--experiment", "c", "--device", "cuda", "--gpus-per-trial", "0", "--allow-synthetic",
                                "--data-dir", data, "--results-dir", tmp_path), "--device cuda needs a GPU share")
    assert not (tmp_path / "tune").exists()


def test_one_writer_per_search(tmp_path, data):
    from cifar_core.runlock import RunLock

    with RunLock(tmp_path / "tune" / "same", what="search"):
        assert_one_line_error(cifar("tune", "--experiment", "same", "--allow-synthetic", "--data-dir", data, "--results-dir", tmp_path),
                              "in use by another search")


# --- nothing of a local Ray outlives its command ------------------------------------------------------
DRIVER = """
import signal, subprocess, sys, time
from cifar_core import reaper
reaper.watch()
# A child that ignores SIGTERM, and its own child: as Ray's agents are under its raylet.
subprocess.Popen([sys.executable, "-c", "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                  "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); time.sleep(300)"])
print("ready", flush=True)
time.sleep(300)
"""


@pytest.mark.slow  # a driver, its reaper and their children, killed: ~20 s
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="the reaper reads /proc (Linux)")
def test_a_killed_driver_leaves_no_process_behind(tmp_path):
    from cifar_core.reaper import descendants

    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    assert driver.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 120
    while len(children := set(descendants(driver.pid))) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)  # the reaper, the child and the grandchild
    assert len(children) >= 3, [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children]
    time.sleep(5)  # the reaper (it looks every second) has seen them, on a busy machine too
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 120
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.3)
    left = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert not left, [(pid, Path(f"/proc/{pid}/cmdline").read_bytes()) for pid in left]
