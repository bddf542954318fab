"""`cifar gan train` on the synthetic dataset: outputs, exact resumption, collapse recovery, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import cifar

from cifar_core.atomic import read_jsonl
from cifar_core.errors import CheckpointError, ConfigError, TrainingDiverged
from cifar_core.gan.config import CollapseConfig, GanTrainConfig
from cifar_core.gan.train import train_gan

TINY = dict(batch_size=16, ngf=8, ndf=8, nz=16)


def tiny_config(**overrides) -> GanTrainConfig:
    collapse = overrides.pop("collapse", {})
    values = {**TINY, "steps": 12, "log_every": 2, "sample_every": 6, "checkpoint_every": 4, **overrides}
    return GanTrainConfig(
        **values, collapse=CollapseConfig(**{"warmup_steps": 4, "window_steps": 4, **collapse})
    )



def metric_rows(run_dir: Path) -> list[dict]:
    return read_jsonl(run_dir / "metrics.jsonl")


def generator_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model_state"]


@pytest.fixture(scope="module")
def uninterrupted(synth_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("results") / "gan" / "whole"
    train_gan(tiny_config(), synth_root, run_dir, device="cpu")
    return run_dir


def test_cli_train_writes_every_output(synth_root, tmp_path):
    status, out, err = cifar(
        "gan", "train", "--run-name", "smoke", "--steps", 8, "--batch-size", 16, "--ngf", 8, "--ndf", 8,
        "--log-every", 2, "--sample-every", 4, "--checkpoint-every", 4, "--collapse-warmup", 2, "--collapse-window", 2,
        "--device", "cpu", "--data-dir", synth_root, "--results-dir", tmp_path,
    )  # fmt: skip
    assert status == 0, err
    run_dir = tmp_path / "gan" / "smoke"
    assert "8 steps" in out
    for name in ("checkpoints/step_4.pt", "checkpoints/step_8.pt", "checkpoints/last.pt", "samples/step_4.png",
                 "samples/step_8.png", "metrics.jsonl", "summary.json", "losses.png"):  # fmt: skip
        assert (run_dir / name).stat().st_size > 0, name
    rows = metric_rows(run_dir)
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert {"d_loss", "g_loss", "d_x", "d_g_z", "diversity"} <= set(rows[0])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["device"] == "cpu" and summary["synthetic_data"] is True
    assert summary["parameters"]["generator"] > 0 and summary["collapse_events"] == []
    assert summary["final"]["step"] == 8 and summary["checkpoints"] == ["step_4.pt", "step_8.pt"]
    from PIL import Image

    assert Image.open(run_dir / "samples" / "step_8.png").size == (8 * 34 + 2, 8 * 34 + 2)  # 8x8 grid


def test_killed_run_resumes_exactly(synth_root, tmp_path, uninterrupted):
    run_dir = tmp_path / "resumed"

    def crash_at_step_10(row, training):
        if row.get("step") == 10:
            raise KeyboardInterrupt  # the process dies after step 10; last.pt is from step 8

    with pytest.raises(KeyboardInterrupt):
        train_gan(tiny_config(), synth_root, run_dir, device="cpu", on_log=crash_at_step_10)
    assert [r["step"] for r in metric_rows(run_dir)] == [2, 4, 6, 8, 10]
    train_gan(tiny_config(), synth_root, run_dir, device="cpu")
    assert metric_rows(run_dir) == metric_rows(uninterrupted)
    resumed, whole = generator_state(run_dir), generator_state(uninterrupted)
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    same_grid = (run_dir / "samples" / "step_12.png").read_bytes() == (
        uninterrupted / "samples" / "step_12.png"
    ).read_bytes()
    assert same_grid


def test_stopped_run_extended_through_cli_matches(synth_root, tmp_path, uninterrupted):
    common = ["gan", "train", "--run-name", "ext", "--batch-size", 16, "--ngf", 8, "--ndf", 8, "--nz", 16,
              "--log-every", 2, "--sample-every", 6, "--checkpoint-every", 4, "--collapse-warmup", 4,
              "--collapse-window", 4, "--device", "cpu", "--data-dir", synth_root, "--results-dir", tmp_path]  # fmt: skip
    assert cifar(*common, "--steps", 6)[0] == 0
    assert cifar(*common, "--steps", 12)[0] == 0
    run_dir = tmp_path / "gan" / "ext"
    assert metric_rows(run_dir) == metric_rows(uninterrupted)
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 12


def test_resume_with_other_architecture_is_refused(synth_root, uninterrupted):
    results_dir = uninterrupted.parent.parent
    status, _, err = cifar("gan", "train", "--run-name", uninterrupted.name, "--steps", 12, "--batch-size", 16,
                           "--ngf", 16, "--ndf", 8, "--nz", 16, "--device", "cpu", "--data-dir", synth_root,
                           "--results-dir", results_dir)  # fmt: skip
    assert status == 2
    assert (
        len(err.strip().splitlines()) == 1
        and err.startswith("error: cannot reuse")
        and "ngf was 8, now 16" in err
    )


def test_healthy_short_run_raises_no_collapse(synth_root, tmp_path):
    cfg = tiny_config(
        steps=40,
        log_every=4,
        sample_every=40,
        checkpoint_every=40,
        collapse={"warmup_steps": 4, "window_steps": 4},
    )
    summary = train_gan(cfg, synth_root, tmp_path / "healthy", device="cpu")
    assert summary["collapse_events"] == [] and summary["recoveries"] == 0 and summary["steps"] == 40


def test_forced_collapse_is_detected_and_rolled_back(synth_root, tmp_path):
    """Pin the generator to a constant image from step 20 on; the detector must roll back to step 20."""
    cfg = tiny_config(
        steps=40,
        log_every=5,
        sample_every=40,
        checkpoint_every=40,
        collapse={"warmup_steps": 10, "window_steps": 10},
    )
    hooks = []

    def sabotage(row, training):
        if row.get("step") == 20 and not hooks and "event" not in row:
            constant = lambda module, inputs, output: torch.zeros_like(output)  # noqa: E731
            hooks.append(training.generator.register_forward_hook(constant))
        if row.get("event") == "collapse" and hooks:
            hooks.pop().remove()  # rollback happened: let the restored generator train normally

    summary = train_gan(cfg, synth_root, tmp_path / "forced", device="cpu", on_log=sabotage)
    [event] = summary["collapse_events"]
    assert event["reason"] == "diversity_collapse" and event["step"] == 35  # symptom from 25, window 10
    assert event["rolled_back_to"] == 20  # the last check with a clean window behind it
    assert event["lr_after"] == pytest.approx(cfg.lr * 0.5) and event["new_seed"] != cfg.seed
    assert summary["collapse_mode"] == "rollback"
    # Every setting that differs from report B's DCGAN (computed from the protocol's rows), then the rollback.
    assert summary["protocol_departures"][-1] == (
        "collapse at step 35: rolled back to step 20 with a new seed, learning rate 0.0001 (report B started a "
        "collapsed run over)")
    assert {"batch size: 16 (PyTorch DCGAN tutorial: 128)", "steps: 40 (report B §5: 50,000)",
            "generator / discriminator width: 8 (report B §5: 46)"} <= set(summary["protocol_departures"])
    assert summary["protocol_settings"]["batch_size"] == 16 and summary["protocol_settings"]["amp"] is False
    assert summary["steps"] == 40 and summary["recoveries"] == 1 and summary["optimizer_steps"] == 55
    rows = metric_rows(tmp_path / "forced")
    after = [r for r in rows if r.get("recoveries") == 1]
    assert after[0]["step"] == 25 and after[0]["lr"] == pytest.approx(cfg.lr * 0.5)
    assert any(r.get("event") == "collapse" for r in rows)


def test_recoveries_are_capped(synth_root, tmp_path):
    cfg = tiny_config(steps=20, log_every=2, sample_every=20, checkpoint_every=20,
                      collapse={"warmup_steps": 4, "window_steps": 0, "max_recoveries": 1})  # fmt: skip

    def pin_forever(row, training):
        if row.get("step") == 6 and not getattr(training.generator, "pinned", False):
            training.generator.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
            training.generator.pinned = True

    summary = train_gan(cfg, synth_root, tmp_path / "capped", device="cpu", on_log=pin_forever)
    actions = [e["action"] for e in summary["collapse_events"]]
    assert actions[0] == "rollback" and summary["recoveries"] == 1
    assert set(actions[1:]) == {"none"} and len(actions) > 1
    assert summary["collapse_events"][1]["why"] == "1 recoveries allowed, all used"
    assert ": not recovered (1 recoveries allowed, all used), the run went on collapsed" in \
        summary["protocol_departures"][-1]


def test_restart_starts_over_as_report_b_did_and_off_only_logs(synth_root, tmp_path):
    """--collapse restart: report B's own way, the whole run again from step 0 with a new seed and the
    same learning rate (no departure from its protocol); off: detected and logged, nothing else."""
    hooks, pinned = [], []

    def pin_until_collapse(row, training):  # once per run: from step 20 until the collapse is handled
        if row.get("step") == 20 and "event" not in row and not pinned:
            pinned.append(True)
            hooks.append(training.generator.register_forward_hook(lambda m, i, out: torch.zeros_like(out)))
        if row.get("event") == "collapse" and hooks:
            hooks.pop().remove()

    cfg = tiny_config(steps=40, log_every=5, sample_every=40, checkpoint_every=40,
                      collapse={"warmup_steps": 10, "window_steps": 10, "mode": "restart"})
    summary = train_gan(cfg, synth_root, tmp_path / "restart", device="cpu", on_log=pin_until_collapse)
    [event] = summary["collapse_events"]
    assert (event["action"], event["rolled_back_to"], event["step"]) == ("restart", 0, 35)
    assert event["lr_after"] == cfg.lr and summary["final_lr"] == cfg.lr
    assert summary["steps"] == 40 and summary["optimizer_steps"] == 35 + 40  # the lost attempt, then all 40
    assert not [line for line in summary["protocol_departures"] if line.startswith("collapse at step")]  # report B's remedy
    rows = [r for r in metric_rows(tmp_path / "restart") if "event" not in r]
    assert [r["step"] for r in rows].count(5) == 2  # the second attempt logged its own step 5

    pinned.clear()
    cfg = tiny_config(steps=40, log_every=5, sample_every=40, checkpoint_every=40,
                      collapse={"warmup_steps": 10, "window_steps": 10, "mode": "off"})
    summary = train_gan(cfg, synth_root, tmp_path / "off", device="cpu", on_log=pin_until_collapse)
    assert [e["action"] for e in summary["collapse_events"]] == ["none"]
    assert summary["collapse_events"][0]["why"] == "collapse.mode is off" and summary["recoveries"] == 0
    assert summary["optimizer_steps"] == 40


@pytest.mark.parametrize("flag, value", [("--steps", 0), ("--lr", 0), ("--lr", -1), ("--batch-size", 0)])
def test_bad_flag_values_exit_2(tmp_path, flag, value):
    status, _, err = cifar("gan", "train", "--run-name", "x", flag, value, "--results-dir", tmp_path)
    assert status == 2 and err.startswith("error: ") and flag in err


def test_bad_config_values_raise_config_error():
    with pytest.raises(ConfigError, match="steps"):
        GanTrainConfig(steps=0).validate()
    with pytest.raises(ConfigError, match="lr"):
        GanTrainConfig(lr=0.0).validate()
    with pytest.raises(ConfigError, match="unknown setting 'gan.colapse'"):
        GanTrainConfig.from_dict({"colapse": {}})


def test_rerun_without_last_pt_keeps_the_runs_files(synth_root, tmp_path):
    """Issue 13 case 5: the rerun deleted every kept step_N.pt, the metrics and the samples."""
    run_dir = tmp_path / "lost"
    train_gan(tiny_config(steps=8, sample_every=4), synth_root, run_dir, device="cpu")
    (run_dir / "checkpoints" / "last.pt").unlink()
    kept = sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock")
    with pytest.raises(CheckpointError, match="no checkpoints/last.pt to resume from"):
        train_gan(tiny_config(steps=8, sample_every=4), synth_root, run_dir, device="cpu")
    assert sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock") == kept
    assert {"step_4.pt", "step_8.pt"} <= {p.name for p in kept} and "metrics.jsonl" in {p.name for p in kept}


def test_a_run_that_turns_nan_ends_failed_with_strict_json(synth_root, tmp_path):
    """Issue 13 case 8: a NaN run reported "completed" and wrote NaN into summary.json."""

    def poison(row, training):
        if row.get("step") == 4:
            with torch.no_grad():
                next(training.generator.parameters()).fill_(float("nan"))

    run_dir = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match="failed at step 4"):
        train_gan(tiny_config(), synth_root, run_dir, device="cpu", on_log=poison)

    def no_constants(name):
        raise AssertionError(f"{name} in strict JSON")

    summary = json.loads((run_dir / "summary.json").read_text(), parse_constant=no_constants)
    assert summary["status"] == "failed" and summary["failure"]["step"] == 4
    assert "NaN" in summary["failure"]["reason"] and summary["final"]["step"] == 4
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=no_constants)
    assert metric_rows(run_dir)[-1]["event"] == "failed"
    # Nothing of the NaN networks was kept: the step-4 checkpoint was not written, last.pt is step 0's.
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert last["step"] == 0 and all(torch.isfinite(v).all() for v in last["model_state"].values() if v.is_floating_point())
    assert not (run_dir / "checkpoints" / "step_4.pt").exists()
    # A NaN loss (not only NaN weights) ends the run the same way, at the next row.
    losses = tmp_path / "losses"

    def poison_discriminator(row, training):
        if row.get("step") == 2:
            with torch.no_grad():
                next(training.discriminator.parameters()).fill_(float("inf"))

    with pytest.raises(TrainingDiverged, match="failed at step 4"):
        train_gan(tiny_config(), synth_root, losses, device="cpu", on_log=poison_discriminator)
    assert "NaN or infinite" in json.loads((losses / "summary.json").read_text())["failure"]["reason"]


@pytest.mark.parametrize("field, value", [("lr", float("inf")), ("beta1", float("nan")), ("seed", -1), ("seed", 2**63)])
def test_non_finite_values_and_bad_seeds_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        GanTrainConfig(**{field: value}).validate()
    with pytest.raises(ConfigError, match="collapse.d_loss_floor"):
        GanTrainConfig(collapse=CollapseConfig(d_loss_floor=float("inf"))).validate()


def test_lr_inf_on_the_command_line_is_one_error_line(tmp_path, synth_root):
    status, _, err = cifar("gan", "train", "--run-name", "inf", "--lr", "inf", "--device", "cpu",
                           "--data-dir", synth_root, "--results-dir", tmp_path)
    assert status == 2 and err.count("\n") == 1 and "finite" in err
    assert not (tmp_path / "gan" / "inf" / "checkpoints").exists()


def _batches_seen(monkeypatch) -> list:
    from cifar_core.data.loader import DeviceLoader

    seen, original = [], DeviceLoader.batch

    def batch(self, step):
        x, y = original(self, step)
        seen.append((self, x, y))
        return x, y

    monkeypatch.setattr(DeviceLoader, "batch", batch)
    return seen


def test_real_images_come_unflipped_from_the_shared_loader_unless_asked(synth_root, tmp_path, monkeypatch):
    from cifar_core.data.loader import GAN_NORMALIZATION

    seen = _batches_seen(monkeypatch)
    train_gan(tiny_config(steps=1), synth_root, tmp_path / "plain", device="cpu")
    loader, x, _ = seen[0]
    assert loader.augment is None and loader.normalization == GAN_NORMALIZATION
    assert -1.0 <= x.min() and x.max() <= 1.0
    order, _ = loader.epoch_plan(0)
    expected = loader.images[order[: x.shape[0]]].float() / 127.5 - 1
    assert torch.allclose(x, expected, atol=1e-6)  # exactly the images, in the epoch's order
    seen.clear()
    train_gan(tiny_config(steps=1, hflip=True), synth_root, tmp_path / "flipped", device="cpu")
    assert seen[0][0].augment is not None and seen[0][0].augment.hflip


def test_sigterm_mid_run_checkpoints_that_step_and_resumes_exactly(synth_root, tmp_path, uninterrupted, monkeypatch):
    import os
    import signal

    from cifar_core.data.loader import DeviceLoader
    from cifar_core.errors import Preempted

    original = DeviceLoader.batch

    def batch(self, step):
        if step == 6:  # the 7th step: not a log, sample or checkpoint step
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, step)

    monkeypatch.setattr(DeviceLoader, "batch", batch)
    run_dir = tmp_path / "term"
    with pytest.raises(Preempted, match="after step 7"):
        train_gan(tiny_config(), synth_root, run_dir, device="cpu")
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"] == 7
    monkeypatch.undo()
    train_gan(tiny_config(), synth_root, run_dir, device="cpu")
    assert metric_rows(run_dir) == metric_rows(uninterrupted)
    resumed, whole = generator_state(run_dir), generator_state(uninterrupted)
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_resume_on_other_data_is_refused(synth_root, tmp_path):
    from cifar_core.data import data_digest, write_synthetic
    from cifar_core.errors import DataError

    run_dir = tmp_path / "data"
    train_gan(tiny_config(steps=4), synth_root, run_dir, device="cpu")
    other = write_synthetic(tmp_path / "other", n_train=300, n_test=50, seed=4)
    with pytest.raises(DataError) as caught:
        train_gan(tiny_config(steps=8), other, run_dir, device="cpu")
    assert data_digest(synth_root) in str(caught.value) and data_digest(other) in str(caught.value)
    assert json.loads((run_dir / "summary.json").read_text())["data_digest"] == data_digest(synth_root)


def test_a_second_process_on_the_run_is_refused(synth_root, tmp_path):
    import subprocess
    import sys

    from cifar_core.runlock import RunLocked

    run_dir = tmp_path / "busy"
    hold = "import sys, time; from cifar_core.runlock import RunLock; RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run_dir)], cwd=Path(__file__).resolve().parents[1],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
            train_gan(tiny_config(steps=2), synth_root, run_dir, device="cpu")
    finally:
        holder.kill()
        holder.wait()
    assert not (run_dir / "checkpoints").exists()


@pytest.mark.parametrize("amp", [False, True])
def test_real_images_arrive_in_the_dtype_the_discriminator_takes(amp):
    """On CUDA the real batches are bf16 only under bf16 autocast: a float32 run (gan.amp off, the
    default) feeding bf16 images to its float32 discriminator fails at the first step. The layout is
    decided without a GPU: a CUDA device object needs none."""
    from cifar_core.device import Precision
    from cifar_core.models import create_model

    cfg = tiny_config(amp=amp)
    # The one value a GAN run's loader and networks share: its device and arithmetic.
    assert Precision(torch.device("cuda"), cfg.amp).layout()["dtype"] == (torch.bfloat16 if amp else torch.float32)
    layout = Precision(torch.device("cpu"), cfg.amp).layout()  # no autocast on the CPU: float32 either way
    discriminator = create_model("dcgan_discriminator")
    images = torch.zeros(2, 3, 32, 32, dtype=layout["dtype"])
    assert discriminator.logits(images).dtype == torch.float32
