"""Crafted checkpoints (issue 29, item 6): a file of the right format, written by the real save
functions, with one field of the wrong type or range. `cifar train --resume`, `cifar gan train` and
`cifar evaluate` each give one `error:` line naming the file and the field, exit 2, and leave every
file as it was. And best.pt against metrics.jsonl after a --steps run is extended (item 8).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import assert_one_line_error, cifar

NAN = float("nan")
TRAIN = ["--model", "tinycnn", "--optimizer", "adam", "--batch-size", 64, "--eval-batch-size", 500, "--augment", "none",
         "--eval-test-every", 10, "--device", "cpu", "--run-name", "r"]
GAN = ["--run-name", "g", "--batch-size", 16, "--ngf", 8, "--ndf", 8, "--nz", 16, "--log-every", 2,
       "--checkpoint-every", 2, "--sample-every", 4, "--collapse-warmup", 2, "--collapse-window", 2, "--device", "cpu",
       "--no-ray"]


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes but the lock's (its holder record names whoever opened the run last)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def _tamper(path: Path, change: Callable[[dict], None]) -> None:
    """Read with torch, change one field, write back with the project's own writer."""
    from cifar_core.checkpoint import save_checkpoint

    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint)
    save_checkpoint(checkpoint, path)


def _set(*keys, value=None, via: Callable | None = None) -> Callable[[dict], None]:
    """A change: the field at `keys` set to `value` (or to `via(old value)`)."""
    def change(checkpoint: dict) -> None:
        target = checkpoint
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = via(target[keys[-1]]) if via is not None else value
    return change


def _drop(*keys) -> Callable[[dict], None]:
    def change(checkpoint: dict) -> None:
        target = checkpoint
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return change


@pytest.fixture(scope="module")
def classifier_run(synth_root, tmp_path_factory) -> Path:
    """A run stopped mid-epoch (30 of 25-step epochs): history, partial, test curve all present."""
    results = tmp_path_factory.mktemp("classifier")
    done = cifar("train", *TRAIN, "--steps", 30, "--data-dir", synth_root,
                 "--results-dir", results)
    assert done.status == 0, done.err
    return results


@pytest.fixture(scope="module")
def gan_run(synth_root, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("gan")
    done = cifar("gan", "train", *GAN, "--steps", 4, "--data-dir", synth_root, "--results-dir", results)
    assert done.status == 0, done.err
    return results


def _first_param(key: str) -> Callable[[dict], None]:
    return _set("optimizer_state", "state", 0, key, via=lambda t: torch.zeros(t.numel() + 1))


CLASSIFIER_CASES = {
    "rng-not-a-tensor": (_set("rng", "torch", value=[1, 2, 3]), "rng.torch is [1, 2, 3]"),
    "rng-float": (_set("rng", "torch", via=lambda t: t.float()), "rng.torch is a torch.float32 tensor"),
    "rng-short": (_set("rng", "torch", via=lambda t: t[:100]), "rng is not a generator state"),
    "rng-missing": (_drop("rng"), "has no 'rng'"),
    "history-text": (_set("history", value="rows"), "history is 'rows'"),
    "history-nan-loss": (_set("history", 0, "train_loss", value=NAN), "history[0].train_loss holds nan"),
    "history-negative-step": (_set("history", 0, "step", value=-1), "history[0].step is -1"),
    "history-row-missing-key": (_drop("history", 0, "lr"), "history[0] has no 'lr'"),
    "history-row-extra-nan": (_set("history", 1, "note", value=NAN), "history[1].note holds nan"),
    "history-after-step": (_set("history", 0, "step", value=31), "history names steps [31, 30]"),
    "partial-text": (_set("partial", "loss", value="x"), "partial.loss is 'x'"),
    "partial-missing-key": (_drop("partial", "seen"), "partial has no 'seen'"),
    "partial-not-dict": (_set("partial", value=[1, 2]), "partial is [1, 2], expected dict"),
    "test-curve-inf": (_set("test_curve", 0, "top1", value=float("inf")), "test_curve[0].top1 is inf"),
    "test-curve-text": (_set("test_curve", value={"step": 1}), "test_curve is {'step': 1}"),
    "step-negative": (_set("step", value=-3), "step is -3"),
    "step-bool": (_set("step", value=True), "'step' should be a int, found bool"),
    "best-val-acc-nan": (_set("best_val_acc", value=NAN), "best_val_acc is nan"),
    "best-val-acc-above-one": (_set("best_val_acc", value=1.5), "best_val_acc is 1.5"),
    "best-step-beyond": (_set("best_step", value=99), "best_step names steps [99]"),
    "optimizer-moment-shape": (_first_param("exp_avg"), "optimizer_state: state[0].exp_avg has shape [433]"),
    "optimizer-text": (_set("optimizer_state", value="adam"), "optimizer_state is 'adam'"),
    "optimizer-groups": (_set("optimizer_state", "param_groups", value=[{"lr": 1}]),
                         "optimizer_state.param_groups[0] has no 'params'"),
    "weights-int64": (_set("model_state", via=lambda s: {k: v.long() for k, v in s.items()}),
                      "is a torch.int64 tensor where model tinycnn has torch.float32"),
    "weights-text": (_set("model_state", "head.3.bias", value="zeros"), "model_state['head.3.bias'] is 'zeros'"),
    "weights-shape": (_set("model_state", "head.3.bias", via=lambda t: t[:10]), "do not fit model tinycnn"),
    "scheduler-text": (_set("scheduler_state", value="cosine"), "scheduler_state is 'cosine'"),
    "kwargs-tensor": (_set("model_kwargs", value={"x": torch.zeros(1)}), "model_kwargs.x holds a torch.float32"),
}


def _assert_refused(run: Path, tmp_path: Path, checkpoint: str, change: Callable, *command, named: str = "",
                   fragment: str) -> None:
    """A copy of `run` with `checkpoint` tampered: `cifar COMMAND` (CHECKPOINT and RESULTS filled in)
    is one error line naming the file (or `named`) and the field, and every file stays as it was."""
    results = tmp_path / "results"
    shutil.copytree(run, results)
    path = results / checkpoint
    _tamper(path, change)
    before = _files(results)
    filled = [{"CHECKPOINT": path, "RESULTS": results}.get(arg, arg) if isinstance(arg, str) else arg for arg in command]
    assert_one_line_error(cifar(*filled), named or str(path), fragment)
    assert _files(results) == before


@pytest.mark.parametrize("case", CLASSIFIER_CASES)
def test_a_crafted_classifier_checkpoint_is_refused_on_resume(classifier_run, synth_root, tmp_path, case):
    change, fragment = CLASSIFIER_CASES[case]
    _assert_refused(classifier_run, tmp_path, "train/r/last.pt", change, "train", *TRAIN, "--steps", 40, "--resume",
                    "--data-dir", synth_root, "--results-dir", "RESULTS", fragment=fragment)


@pytest.mark.parametrize("case", ["weights-int64", "weights-text", "weights-shape", "history-nan-loss", "step-negative",
                                  "kwargs-tensor", "best-val-acc-nan"])
def test_a_crafted_checkpoint_is_refused_by_evaluate(classifier_run, synth_root, tmp_path, case):
    change, fragment = CLASSIFIER_CASES[case]
    _assert_refused(classifier_run, tmp_path, "train/r/best.pt", change, "evaluate", "--checkpoint", "CHECKPOINT",
                    "--data-dir", synth_root, "--device", "cpu", fragment=fragment)


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.complex64])
def test_weights_of_another_kind_are_refused_by_evaluate(classifier_run, synth_root, tmp_path, dtype):
    results = tmp_path / "results"
    shutil.copytree(classifier_run, results)
    last = results / "train" / "r" / "last.pt"
    _tamper(last, _set("model_state", via=lambda s: {k: v.to(dtype) for k, v in s.items()}))
    result = cifar("evaluate", "--checkpoint", last, "--data-dir", synth_root, "--device", "cpu")
    assert_one_line_error(result, str(last), f"is a {dtype} tensor where model tinycnn has")


def _gan_moment(*keys) -> Callable[[dict], None]:
    return _set(*keys, "state", 0, "exp_avg", via=lambda t: torch.zeros(3))


GAN_CASES = {
    "rng-missing": (_drop("training", "rng"), "training has no 'rng'"),
    "rng-text": (_set("training", "rng", value="seed"), "training.rng is 'seed'"),
    "rng-of-another-device": (_set("training", "rng", via=lambda t: t[:16]), "training.rng is not a state of this"),
    "lr-nan": (_set("training", "lr", value=NAN), "training.lr is nan"),
    "interval-sums-shape": (_set("training", "interval_sums", value=torch.zeros(5)),
                            "training.interval_sums is a torch.float32 tensor of shape [5]"),
    "detector-missing-key": (_drop("training", "detector", "best_diversity"),
                             "training.detector has no 'best_diversity'"),
    "detector-symptom-text": (_set("training", "detector", "symptom_since", value={"x": "soon"}),
                              "training.detector.symptom_since['x'] is 'soon'"),
    "healthy-missing": (_drop("training", "healthy"), "training has no 'healthy'"),
    "healthy-moment-shape": (_gan_moment("training", "healthy", "opt_g"), "training.healthy.opt_g: state[0].exp_avg"),
    "healthy-weights": (_set("training", "healthy", "generator", via=lambda s: dict(list(s.items())[1:])),
                        "training.healthy.generator: the weights do not fit dcgan_generator"),
    "healthy-after-step": (_set("training", "healthy", "step", value=99), "training.healthy.step 99 is after step 4"),
    "moment-shape": (_gan_moment("training", "opt_d"), "training.opt_d: state[0].exp_avg has shape [3]"),
    "rows-nan": (_set("training", "rows", 0, "d_loss", value=NAN), "training.rows[0].d_loss holds nan"),
    "events-text": (_set("training", "events", value="none"), "training.events is 'none'"),
    "event-not-a-record": (_set("training", "events", value=["rollback"]), "training.events[0] is 'rollback'"),
    "kwargs-list": (_set("discriminator_kwargs", value=[8]), "discriminator_kwargs is [8], expected dict"),
    "step-negative": (_set("step", value=-1), "step is -1"),
    "steps-text": (_set("training", "optimizer_steps", value="4"), "training.optimizer_steps is '4'"),
    "wall-time-inf": (_set("training", "wall_time_s", value=float("inf")), "training.wall_time_s is inf"),
    "weights-int64": (_set("model_state", via=lambda s: {k: v.long() for k, v in s.items()}),
                      "is a torch.int64 tensor where the dcgan_generator has torch.float32"),
    "discriminator-missing": (_drop("discriminator_state"), "has no 'discriminator_state'"),
}


@pytest.mark.parametrize("case", GAN_CASES)
def test_a_crafted_gan_checkpoint_is_refused_on_resume(gan_run, synth_root, tmp_path, case):
    change, fragment = GAN_CASES[case]
    named = "last.pt" if case == "rng-of-another-device" else ""  # found once loaded into the generator
    _assert_refused(gan_run, tmp_path, "gan/g/checkpoints/last.pt", change, "gan", "train", *GAN, "--steps", 6,
                    "--data-dir", synth_root, "--results-dir", "RESULTS", named=named, fragment=fragment)


def test_untouched_checkpoints_still_resume(classifier_run, gan_run, synth_root, tmp_path):
    for source, name in ((classifier_run, "c"), (gan_run, "g")):
        shutil.copytree(source, tmp_path / name)
    assert cifar("train", *TRAIN, "--steps", 40, "--resume", "--data-dir", synth_root,
                 "--results-dir", tmp_path / "c").status == 0
    assert cifar("gan", "train", *GAN, "--steps", 6, "--data-dir", synth_root, "--results-dir", tmp_path / "g").status == 0


# --- best.pt against metrics.jsonl (item 8) --------------------------------------------------------
def _agree(run_dir: Path) -> tuple[dict, list[dict]]:
    """best.pt, the summary and metrics.jsonl name the same best step, a row of metrics.jsonl."""
    from cifar_core.checkpoint import load_checkpoint

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    best = load_checkpoint(run_dir / "best.pt")
    assert summary["best_step"] == best["step"] in [row["step"] for row in rows], (summary["best_step"], rows)
    best_row = next(row for row in rows if row["step"] == best["step"])
    assert summary["best_val_acc"] == best_row["val_acc"] == best["best_val_acc"]
    return summary, rows


@pytest.mark.parametrize("first, then", [(5, 12), (5, 30), (30, 40), (30, 50), (12, 13)])
def test_extending_a_steps_run_keeps_best_pt_a_row_of_its_metrics(synth_root, tmp_path, first, then):
    """25 steps an epoch: a run cut mid-epoch has a provisional row; extended, the finished epoch's row
    replaces it, and best.pt is never left at a step whose row is gone."""
    args = ["train", *TRAIN, "--data-dir", synth_root, "--results-dir", tmp_path]
    assert cifar(*args, "--steps", first).status == 0
    _, rows = _agree(tmp_path / "train" / "r")
    assert rows[-1]["step"] == first
    assert cifar(*args, "--steps", then, "--resume").status == 0
    summary, rows = _agree(tmp_path / "train" / "r")
    finished = [row["val_acc"] for row in rows if row["step"] % 25 == 0]
    # The best of the finished epochs; a cut epoch's row only where no epoch finished.
    assert summary["best_val_acc"] == (max(finished) if finished else rows[-1]["val_acc"])
    assert first not in [row["step"] for row in rows] or first % 25 == 0
