"""What `make image` needs from the repository, checked in seconds (`make image-test` builds the image
itself, with buildah, in about ten minutes): the build stage's wheel, made from exactly the build
context the Dockerfile sees, carries the chart where an installed `cifar submit` looks for it; the
GPU image declares the CUDA its torch wheels bundle and has no other; the image targets."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import dockerfile
import pytest
from helpers import dockerignore_rules, in_build_context

import jobs.chart

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "images" / "Dockerfile"
IMAGE_MK = REPO / "images" / "image.mk"


def _build_stage_copies() -> list[tuple[str, str]]:
    """(source, destination) of every COPY in the first stage, the one that runs `pip wheel .`."""
    copies, stages = [], 0
    for cmd in dockerfile.parse_file(str(DOCKERFILE)):
        if cmd.cmd == "FROM":
            stages += 1
        elif cmd.cmd == "COPY" and stages == 1 and not any(f.startswith("--from") for f in cmd.flags):
            *sources, dest = cmd.value
            copies += [(source, dest) for source in sources]
    return copies


def _files_under(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _build_context_copy(dest: Path) -> Path:
    """The build stage's working directory after its COPYs (Docker's rules: a directory's contents go
    into the destination), holding only what .dockerignore lets into the build context."""
    rules = dockerignore_rules(REPO)
    for source, target in _build_stage_copies():
        src = REPO / source
        kept = [f for f in _files_under(src) if in_build_context(f.relative_to(REPO).as_posix(), rules)]
        assert kept, f"COPY {source}: nothing of it is in the build context (.dockerignore)"
        for file in kept:
            if src.is_dir():
                out = dest / target / file.relative_to(src)
            else:
                out = dest / target / file.name if target.endswith("/") else dest / target
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(file.read_bytes())
    return dest


def test_dockerignore_reading_matches_buildkit_rules():
    rules = dockerignore_rules(REPO)
    for kept in ("pyproject.toml", "cifar_core/engine.py", "jobs/cli.py", "charts/cifar100/Chart.yaml",
                 "charts/cifar100/templates/_helpers.tpl", "images/constraints.txt"):
        assert in_build_context(kept, rules), kept
    for dropped in (".venv/bin/python", ".git/HEAD", "data/cifar-100-python/train", "results/train/x/last.pt",
                    "build/image-test/standin.tar", "images/Dockerfile", "cifar_core/__pycache__/engine.cpython-311.pyc",
                    "tests/test_image.py"):
        assert not in_build_context(dropped, rules), dropped


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel .` of the project, as the build stage runs it, from a copy of its build context."""
    work = tmp_path_factory.mktemp("image-build")
    context = _build_context_copy(work / "src")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "--wheel-dir", str(work / "wheels"), str(context)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip wheel of the build context failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    (built,) = (work / "wheels").glob("cifar100_k8s-*.whl")
    return built


def test_the_wheel_built_in_the_image_ships_the_whole_chart(wheel):
    version = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    share = f"cifar100_k8s-{version}.data/data/share/cifar100-k8s/charts/cifar100/"
    names = set(zipfile.ZipFile(wheel).namelist())
    chart = REPO / "charts" / "cifar100"
    for file in _files_under(chart):
        assert share + file.relative_to(chart).as_posix() in names, f"{file.relative_to(REPO)} is not in the wheel"


def test_an_installed_copy_finds_the_chart_the_wheel_ships(wheel, tmp_path, monkeypatch):
    """Unpack the wheel's data files under a prefix, as pip does, and ask find_chart from a package that
    is not in a checkout: it must land on the shipped chart."""
    prefix = tmp_path / "prefix"
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            data = name.partition(".data/data/")[2]
            if data:
                (prefix / data).parent.mkdir(parents=True, exist_ok=True)
                (prefix / data).write_bytes(zf.read(name))
    monkeypatch.delenv(jobs.chart.CHART_ENV, raising=False)
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(jobs.chart, "__file__", str(prefix / "lib" / "site-packages" / "jobs" / "chart.py"))
    found = jobs.chart.find_chart()
    assert found == prefix / "share" / "cifar100-k8s" / "charts" / "cifar100"
    assert (found / "templates").is_dir()


def _image_env() -> dict[str, str]:
    env = {}
    for cmd in dockerfile.parse_file(str(DOCKERFILE)):
        if cmd.cmd == "ENV":
            words = list(cmd.value)
            env.update((k, v.strip('"')) for k, v in zip(words[::2], words[1::2], strict=True))
    return env


def _make_value(name: str) -> str:
    """A variable of images/image.mk as GNU make itself expands it."""
    result = subprocess.run(["make", "--no-print-directory", "-s", "-f", str(IMAGE_MK),
                             "--eval", f"print-value: ; @echo '$({name})'", "print-value"],
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


def test_the_gpu_image_declares_the_cuda_its_torch_bundles_and_no_other():
    pins = dict(line.split("==") for line in (REPO / "images" / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    bundled = ".".join(pins["nvidia-cuda-runtime"].split(".")[:2])  # torch 2.14.1's CUDA runtime wheel
    env = _image_env()
    assert env["NVIDIA_REQUIRE_CUDA"] == f"cuda>={bundled}", "the driver floor the image declares"
    assert set(env["NVIDIA_DRIVER_CAPABILITIES"].split(",")) >= {"compute", "utility"}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void", "GPUs only for pods that are allocated some"
    # A -cuXXX base brings a CUDA of its own besides torch's: the image's only CUDA must be torch's.
    default_base = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M).group(1)
    for base in (default_base, _make_value("CUDA_BASE")):
        assert not re.search(r"-cu\d+$|-gpu$", base), f"{base}: a CUDA base besides torch's CUDA {bundled}"


def test_image_targets_build_both_variants_from_pinned_bases():
    assert _make_value("RAY_VERSION") == "2.60.0"
    assert _make_value("CPU_BASE") == "rayproject/ray:2.60.0-py311-cpu"
    assert _make_value("CPU_TORCH_INDEX") == "https://download.pytorch.org/whl/cpu"
    dry_run = subprocess.run(["make", "-n", "--no-print-directory", "-f", str(IMAGE_MK), "image-cpu", "image", "image-test"],
                             cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "--build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311-cpu --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dry_run
    assert re.search(r"-t cifar100-k8s:\S+-cpu \.", dry_run)
    assert "images/test/image-test.sh" in dry_run
