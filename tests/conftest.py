"""Shared fixtures: a tiny synthetic CIFAR-100 in the official format, and a quiet local Ray."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

# Two cores, several processes: one torch thread each keeps tests from oversubscribing.
torch.set_num_threads(1)

# Ray starts its workers at nice 15 (its own services stay responsive). Beside CPU-bound work at
# nice 0 (a busy CI machine) such a worker gets ~3% of a core and a Ray test runs ten times longer:
# the tests' Ray workers compete as the test process itself does. (Ray's job supervisor runs at 0 too.)
os.environ.setdefault("RAY_worker_niceness", "0")

SHARED = Path(__file__).resolve().parents[2] / "shared"


# The longest modules, longest first: two workers take whole modules (--dist loadfile), and a long
# one started last would leave the other worker idle at the end. Measured each alone with the slow
# tier (-n 0, the 2-core machine): 90-110 s for the first two, 50-80 s down to test_gpu_check,
# 20-30 s down to test_fault_injection.
LONGEST = ("test_live_view.py", "test_spot_preemption.py", "test_ray_cluster.py", "test_kube_hostile.py",
           "test_ray_head.py", "test_ray_pipeline.py", "test_tune_resume.py", "test_gpu_check.py",
           "test_worker_state.py", "test_engine.py", "test_entrypoint_chain.py", "test_tune_search.py",
           "test_bench_gpu.py", "test_probes.py", "test_fault_injection.py", "test_fid_cli.py", "test_fid.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST)}
    items[:] = [item for _, item in sorted(enumerate(items), key=lambda p: (rank.get(p[1].path.name, len(LONGEST)), p[0]))]


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


# --- a real multi-node Ray cluster, one per test module that asks for it ---------------------------
@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory):
    """Environment of the cluster and of every command: Ray's files and tokens kept in this test."""
    home = tmp_path_factory.mktemp("home")
    ray_tmp = f"/tmp/rc{os.getpid()}"  # Ray's socket paths must stay short
    values = {"RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_tmp, "HOME": str(home),
              "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        yield dict(os.environ)
    shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(cluster_env):
    """A head with no CPUs (nothing runs there) and two one-CPU worker nodes."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0}, connect=False)
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="module")
def cluster_data(tmp_path_factory) -> Path:
    from cifar_core.data import write_synthetic

    root = tmp_path_factory.mktemp("data")
    write_synthetic(root, n_train=2500, n_test=200, seed=0)  # 2,000 train / 500 validation images
    return root
