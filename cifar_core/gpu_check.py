"""A five-minute check of a GPU node before the full study: which GPU, NVIDIA driver and CUDA a pod
gets, and one real training step of the study's model on it.

`probe` runs where the work would run (a Ray task with a GPU, on a GPU worker); `report_lines`
turns its answer into what `cifar check` prints. torch is imported only inside `probe`.
"""

from __future__ import annotations

import ctypes
import math
import socket
import time

from cifar_core.errors import CifarError

# The image's torch is a CUDA 13.0 build; NVIDIA's R580 drivers are the first to run it.
DRIVER_FLOOR = 580


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver's version (e.g. "580.65.06") from NVML, which the NVIDIA container runtime
    mounts into GPU pods; None where there is none."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:
        return None
    try:
        buffer = ctypes.create_string_buffer(96)
        return buffer.value.decode() if nvml.nvmlSystemGetDriverVersion(buffer, 96) == 0 else None
    finally:
        nvml.nvmlShutdown()


def cuda_driver_version() -> str | None:
    """The newest CUDA version the driver runs (e.g. "13.0"), from libcuda; None without one."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int()
    if cuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"


def probe(device: str = "cuda", model: str = "resdw", batch_size: int = 128, seed: int = 0) -> dict:
    """What this process's device is, and the time of one training step of `model` on it (after a
    first step that pays for CUDA's and cuDNN's start-up). Raises CifarError for a device that
    cannot be used, or a step whose loss is not finite."""
    import torch

    from cifar_core.device import device_name, resolve_device
    from cifar_core.models import create_model

    target = resolve_device(device)
    info = {"host": socket.gethostname(), "device": str(target), "gpu": device_name(target), "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "driver": nvidia_driver_version(), "cuda_driver": cuda_driver_version()}
    if target.type == "cuda":
        major, minor = torch.cuda.get_device_capability(target)
        info["capability"] = f"{major}.{minor}"
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(target).total_memory / 2**30, 1)
    torch.manual_seed(seed)
    net = create_model(model).to(target)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch_size, 3, 32, 32, device=target)
    labels = torch.randint(0, 100, (batch_size,), device=target)

    def step() -> tuple[float, float]:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(images), labels)
        loss.backward()
        optimizer.step()
        value = loss.item()  # waits for the GPU
        return value, time.perf_counter() - start

    first_loss, first_s = step()
    loss, step_s = step()
    if not (math.isfinite(first_loss) and math.isfinite(loss)):
        raise CifarError(f"one training step of {model} on {info['gpu']} gave a loss of {loss}: the device computes wrongly")
    info["step"] = {"model": model, "batch_size": batch_size, "loss": round(loss, 4), "first_s": round(first_s, 3),
                    "step_s": round(step_s, 4)}
    return info


def report_lines(info: dict) -> list[str]:
    """What the check found, one fact per line."""
    lines = [f"host:    {info['host']} ({info['device']})"]
    if info["device"].startswith("cuda"):
        lines.append(f"gpu:     {info['gpu']}, compute capability {info.get('capability')}, {info.get('gpu_memory_gib')} GiB")
    driver = info.get("driver")
    if driver:
        old = driver.split(".")[0].isdigit() and int(driver.split(".")[0]) < DRIVER_FLOOR
        lines.append(f"driver:  NVIDIA {driver}" + (f" (older than R{DRIVER_FLOOR}: this image's CUDA 13.0 torch needs R{DRIVER_FLOOR}+)" if old else ""))
    elif info["device"].startswith("cuda"):
        lines.append("driver:  unknown (no NVML in this container)")
    lines.append(f"cuda:    torch {info['torch']} built for CUDA {info['torch_cuda'] or '-'}; "
                 f"the driver runs CUDA up to {info.get('cuda_driver') or '-'}")
    step = info["step"]
    lines.append(f"step:    one training step of {step['model']} (batch {step['batch_size']}) in {step['step_s'] * 1000:.1f} ms, "
                 f"loss {step['loss']} (the first, with start-up: {step['first_s']:.2f} s)")
    return lines
