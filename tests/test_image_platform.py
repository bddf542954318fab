"""`make image` builds for the cloud's amd64 nodes wherever it runs (an arm laptop included), and
`make image-cpu` for the machine kind runs on: the recipes as GNU make expands them (`make -n`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def recipe(target: str, *assignments: str) -> str:
    return subprocess.run(["make", "-n", "--no-print-directory", "-f", "images/image.mk", target, *assignments],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout


def test_the_gpu_image_is_built_for_amd64_unless_asked_otherwise():
    assert "docker build --platform linux/amd64 " in recipe("image")
    assert "docker build --platform linux/arm64 " in recipe("image", "PLATFORM=linux/arm64")


def test_the_cpu_image_is_built_for_this_machine_unless_asked_otherwise():
    assert "--platform" not in recipe("image-cpu")  # kind runs it here: Docker's own platform
    arm = recipe("image-cpu", "CPU_PLATFORM=linux/arm64", "CPU_BASE=rayproject/ray:2.60.0-py311-cpu-aarch64")
    assert "--platform linux/arm64 " in arm and "--build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311-cpu-aarch64 " in arm
