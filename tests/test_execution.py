"""The one way to run a stage (submit_stage), the driver's Watch, and the one device policy, tested
without a cluster: the watch's decisions are functions of what the head reports and of the clock,
and the CUDA decisions functions of the device type (bf16 autocast runs here on the CPU)."""

from __future__ import annotations

import json
import signal
import time

import click
import pytest
import torch

from cifar_core.device import Precision, pick_device
from cifar_core.errors import ConfigError, Interrupted, Preempted
from cifar_core.execution.resources import Resources
from cifar_core.execution.runners import InProcess, run_stage, submit_stage, work_span_s
from cifar_core.execution.session import PendingTimeout, Watch, pending_timeout_s
from cifar_core.quantity import parse_quantity, ray_cpus
from cifar_core.resultdir import Request, ResultDir


# --- one way to run a stage ------------------------------------------------------------------------
def write_summary(folder, value: int, needed: dict | None = None) -> dict:
    """A unit that owns a result directory, completing it as every stage does."""
    summary = {"value": value, "needed": sorted(needed or {})}
    with ResultDir(folder, "test result") as result:
        result.open(Request("test result", {"value": value}))
        return result.complete(summary)


def test_a_stage_unit_records_where_and_how_long_it_ran_in_its_result_and_summary(tmp_path):
    work = InProcess()
    first = submit_stage(work, write_summary, resources=Resources(1, 0), folder=tmp_path / "a", value=1)
    # Dependencies by name: the unit receives what it needs under the names it was given.
    second = run_stage(work, write_summary, resources=Resources(1, 0), needs={"gan": first, "data": first},
                       folder=tmp_path / "b", value=2)
    assert second["needed"] == ["data", "gan"]
    # Written once, by the owner, inside the unit: no later stamping.
    recorded = json.loads((tmp_path / "a" / "summary.json").read_text())["ran_on"]
    (place,) = work.get(first)["ran_on"]
    assert recorded == [place] and place["device"] == "cpu" and place["ended_at"] >= place["started_at"]
    assert work_span_s([place, {**place, "ended_at": place["started_at"] + 9}]) == pytest.approx(9, abs=0.01)


def test_an_error_of_work_in_this_process_comes_back_from_get():
    def fails() -> dict:
        raise ConfigError("bad")

    work = InProcess()
    handle = submit_stage(work, fails, resources=Resources())
    with pytest.raises(ConfigError, match="bad"):
        work.get(handle)


@pytest.mark.parametrize(("values", "message"), [
    ({"cpus": 0}, "cpus = 0.0 is out of range: expected > 0"),
    ({"gpus": 1.5}, "gpus = 1.5: a share above 1 GPU must be a whole number"),
    ({"gpus": -1}, "gpus = -1.0 is out of range"),
    ({"cpus": 1e39}, "does not fit a float32"),
])
def test_resources_are_checked_like_every_setting(values, message):
    with pytest.raises(ConfigError, match=message):
        Resources(**values).checked()


def test_cpu_limits_count_as_ray_counts_them():
    """KubeRay and Ray's autoscaler round a pod's CPU limit up to whole cores."""
    assert [ray_cpus(q) for q in ("4", "7500m", "500m", 2)] == [4.0, 8.0, 1.0, 2.0]
    assert [parse_quantity(q) for q in ("3920m", "16Ki", "1e3", "26Gi")] == [3.92, 16384.0, 1000.0, 26 * 2**30]
    for garbled in ("1.2.3", "", "12Qi", "1e999", "nan", True, None, "9" * 400):
        assert parse_quantity(garbled) is None, garbled


def test_the_pending_timeout_comes_from_the_option_then_the_environment(monkeypatch):
    monkeypatch.delenv("CIFAR_PENDING_TIMEOUT", raising=False)
    assert pending_timeout_s() == 1800 and pending_timeout_s(5) == 5
    monkeypatch.setenv("CIFAR_PENDING_TIMEOUT", "0")
    assert pending_timeout_s() == 0
    monkeypatch.setenv("CIFAR_PENDING_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="CIFAR_PENDING_TIMEOUT"):
        pending_timeout_s()


# --- the watch ----------------------------------------------------------------------------------------
def test_work_no_live_node_can_take_fails_after_the_timeout_and_work_that_waits_its_turn_does_not():
    watch = Watch(30, explain=lambda: "pod x: FailedScheduling: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu")
    watch.expect("gan", Resources(2, 0.5))
    nodes = [{"CPU": 2.0}, {"CPU": 2.0}]
    gpu_work, cpu_work = {"CPU": 2.0, "GPU": 0.5}, {"CPU": 1.0}  # the CPU work only waits for a free node
    assert watch._stalled([gpu_work, cpu_work], nodes, now=100.0) is None
    assert watch._stalled([gpu_work, cpu_work], nodes, now=129.0) is None
    message = watch._stalled([gpu_work, cpu_work], nodes, now=131.0)
    assert message.startswith("gan asking for 2 CPUs and 0.5 GPUs has waited 31 s for a node that can run it "
                              "(--pending-timeout 30 s); the cluster's nodes have 2 CPUs, 0 GPUs; pod x: "
                              "FailedScheduling: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu")
    # A node that arrives in time resets the clock: an autoscaler that scales up is not a stall.
    assert watch._stalled([gpu_work], [*nodes, {"CPU": 4.0, "GPU": 1.0}], now=132.0) is None
    assert watch._stalled([gpu_work], nodes, now=150.0) is None  # waiting again since 150


def test_signals_end_the_drivers_waits_with_what_the_cli_turns_into_143_and_130():
    watch = Watch(0)
    with watch.running():
        watch._on_signal(signal.SIGINT, None)
        with pytest.raises(Interrupted, match="SIGINT"):
            watch.check()
    watch = Watch(0)
    with watch.running():
        watch._on_signal(signal.SIGTERM, None)
        with pytest.raises(Preempted, match="SIGTERM"):
            watch.check()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are the watch's only while it runs


@pytest.mark.parametrize(("raised", "status", "line"), [
    (Interrupted("stopped by SIGINT (Ctrl-C)"), 130, "interrupted: stopped by SIGINT (Ctrl-C)"),
    (Preempted("stopped by SIGTERM"), 143, "preempted: stopped by SIGTERM"),
    (PendingTimeout("gan asking for ..."), 2, "error: gan asking for ..."),
])
def test_the_cli_exits_with_the_status_of_what_stopped_it(raised, status, line, capsys):
    from jobs.cli import cli, main

    @click.command("stopped")
    def stopped():
        raise raised

    cli.add_command(stopped)
    try:
        assert main(["stopped"]) == status
    finally:
        cli.commands.pop("stopped")
    assert capsys.readouterr().err.strip() == line


# --- the device policy ----------------------------------------------------------------------------------
def test_auto_follows_the_gpu_share_ray_gave_and_cuda_needs_one():
    assert pick_device("auto", 0.5) == "cuda" and pick_device("auto", 0.0) == "cpu"
    assert pick_device("cpu", 1.0) == "cpu"
    with pytest.raises(ConfigError, match="--device cuda needs a GPU share"):
        pick_device("cuda", 0.0)


def test_the_cuda_decisions_are_functions_of_the_device_type():
    cuda = Precision(torch.device("cuda"), amp=True, channels_last=True)
    assert cuda.bf16 and cuda.input_dtype == torch.bfloat16 and cuda.memory_format == torch.channels_last
    assert cuda.layout() == {"dtype": torch.bfloat16, "channels_last": True}
    cpu = Precision(torch.device("cpu"), amp=True)
    assert not cpu.bf16 and cpu.input_dtype == torch.float32  # amp is a CUDA setting: ignored on the CPU
    assert not Precision(torch.device("cuda"), amp=False).bf16


def test_the_bf16_path_trains_and_scores_as_on_a_gpu(synth_root):
    """The code a GPU runs under amp (bf16 batches, autocast, float32 loss), run on this CPU."""
    from cifar_core.config import TrainConfig
    from cifar_core.data import make_data
    from cifar_core.engine import build_model, make_train_step
    from cifar_core.evaluate import evaluate
    from cifar_core.optim import build_optimizer

    cfg = TrainConfig().with_overrides({"model.name": "tinycnn", "run.amp": True, "run.device": "cpu"})
    precision = Precision(torch.device("cpu"), amp=True, channels_last=True, bf16_device_types=("cpu", "cuda"))
    data = make_data(synth_root, batch_size=64, eval_batch_size=250, augment="flip-crop", device="cpu",
                     **precision.layout())
    x, y = next(iter(data.train))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)
    model = build_model(cfg, precision)
    step = make_train_step(cfg, model, build_optimizer(model.parameters(), cfg.optim), None, precision)
    loss, logits = step(x, y)
    assert loss.dtype == torch.float32 and logits.dtype == torch.bfloat16 and torch.isfinite(loss)
    scores = evaluate(model, data.test, precision)
    assert scores["n"] == 500 and 0 <= scores["top1"] <= scores["top5"] <= 1


def test_a_stall_message_names_the_stage_once_for_all_its_tasks():
    watch = Watch(1)
    for _ in range(3):  # three retrain tasks
        watch.expect("retrain", Resources(4, 1))
    watch.expect("recipe-a", Resources(4, 1))
    message = watch._stalled([{"CPU": 4.0, "GPU": 1.0}], [{"CPU": 2.0}], now=time.monotonic())
    assert message is None
    message = watch._stalled([{"CPU": 4.0, "GPU": 1.0}], [{"CPU": 2.0}], now=time.monotonic() + 5)
    assert message.startswith("retrain, recipe-a asking for 4 CPUs and 1 GPUs")
