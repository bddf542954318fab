"""Shared fixtures: a tiny synthetic CIFAR-100 in the official format, and a quiet local Ray."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

# Two cores, several processes: one torch thread each keeps tests from oversubscribing.
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A synthetic dataset (2,000 train / 500 test) written by the real writer, read by the real reader."""
    from cifar_core.data import write_synthetic

    root = tmp_path_factory.mktemp("cifar")
    write_synthetic(root, n_train=2000, n_test=500, seed=0)
    return root


@pytest.fixture
def ray_env(tmp_path, monkeypatch):
    """Keep Ray's temp dir and auth token inside the test's own temp dir."""
    ray_tmp = Path("/tmp") / f"rt{os.getpid()}"  # Ray's socket paths must stay short.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    (tmp_path / "home").mkdir(exist_ok=True)
    yield ray_tmp
    # Sessions (logs, sockets) of a finished or killed local Ray: nothing reads them afterwards.
    shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (users' checkouts have none)")
    return SHARED
