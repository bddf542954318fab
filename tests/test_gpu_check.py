"""`cifar check` (the `check` stage): one real training step where the study's GPU work would run,
with the device, driver and CUDA it found; as a Ray task when asked, failing with the reason when no
node takes it. The GPU itself is checked on a GPU machine (bench/gpu.sh); here CPU and a local Ray."""

from __future__ import annotations

import math
import sys

import pytest
from helpers import assert_one_line_error, cifar

from cifar_core.gpu_check import probe, report_lines


def test_one_training_step_on_the_cpu():
    result = cifar("check", "--device", "cpu", "--no-ray", "--model", "tinycnn")
    assert result.status == 0, result
    lines = result.out.splitlines()
    assert lines[0].startswith("host:") and lines[0].endswith("(cpu)")
    assert any(line.startswith("cuda:    torch ") for line in lines)
    (step,) = [line for line in lines if line.startswith("step:")]
    assert "one training step of tinycnn (batch 128)" in step


def test_the_probe_measures_a_real_step():
    info = probe("cpu", "tinycnn", batch_size=16)
    assert info["device"] == "cpu" and info["gpu"] == "cpu"
    assert math.isfinite(info["step"]["loss"]) and info["step"]["step_s"] > 0
    assert info["step"]["loss"] == probe("cpu", "tinycnn", batch_size=16)["step"]["loss"]  # seeded


@pytest.mark.skipif("torch" in sys.modules and __import__("torch").cuda.is_available(), reason="a GPU is visible here")
def test_cuda_without_a_gpu_is_one_error_line():
    result = cifar("check", "--device", "cuda", "--no-ray")
    assert_one_line_error(result, "device 'cuda' requested but CUDA cannot be used here")


def test_an_old_driver_is_said_plainly():
    info = {"host": "gpu-node", "device": "cuda", "gpu": "NVIDIA L4", "capability": "8.9", "gpu_memory_gib": 22.0,
            "torch": "2.14.1+cu130", "torch_cuda": "13.0", "driver": "570.133.20", "cuda_driver": "12.8",
            "step": {"model": "resdw", "batch_size": 128, "loss": 4.61, "first_s": 2.5, "step_s": 0.0042}}
    lines = report_lines(info)
    assert lines[1] == "gpu:     NVIDIA L4, compute capability 8.9, 22.0 GiB"
    assert lines[2] == "driver:  NVIDIA 570.133.20 (older than R580: this image's CUDA 13.0 torch needs R580+)"
    assert lines[3] == "cuda:    torch 2.14.1+cu130 built for CUDA 13.0; the driver runs CUDA up to 12.8"
    assert lines[4].startswith("step:    one training step of resdw (batch 128) in 4.2 ms")
    assert "older" not in report_lines({**info, "driver": "580.65.06"})[2]


@pytest.mark.slow
def test_on_ray_it_runs_as_a_task_and_names_why_nothing_takes_a_gpu_task(ray_env, monkeypatch):
    """A local Ray with no GPU: the CPU check runs as a task; the GPU one is refused at once (no node,
    nor any the deployment says may come, has a GPU), or, when a GPU group is advertised that never
    comes, fails after the pending timeout in one line, as any stage's work does."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    done = cifar("check", "--device", "cpu", "--ray", "--model", "tinycnn")
    assert done.status == 0, done
    assert "one training step of tinycnn" in done.out
    assert_one_line_error(cifar("check", "--device", "cuda", "--ray"),
                          "each check task asks for 1 CPUs and 1 GPUs per task, but no node of this Ray cluster has")
    monkeypatch.setenv("CIFAR_AUTOSCALED_WORKERS", '[{"cpu": "4", "gpus": 1, "max": 1}]')
    assert_one_line_error(cifar("check", "--device", "cuda", "--ray", "--pending-timeout", "3"),
                          "check asking for 1 CPUs and 1 GPUs has waited", "(--pending-timeout 3 s)")
