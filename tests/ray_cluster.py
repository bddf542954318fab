"""Helpers of the tests on a real multi-node Ray cluster (the `cluster` fixture is in conftest.py):
`cifar ...` run as a user runs it, in a new process with RAY_ADDRESS pointing at the cluster."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

# Deadlines catch hangs, not slowness: with two CPU-bound processes beside the suite on 2 cores a
# Ray worker can wait minutes to start.
TIMEOUT_S = 1200
REPO = Path(__file__).resolve().parents[1]


def cifar(args: list[str], env: dict, cluster, log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """`cifar ARGS` as a user would run it against the cluster (output to `log`)."""
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], env={**env, "RAY_ADDRESS": cluster.address},
                            stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=cwd or REPO)


def uninterrupted(args: list[str], env: dict, results: Path) -> subprocess.Popen:
    """The same `cifar ARGS` without Ray, in one process, for a node-loss test to compare with: one
    torch thread, as in a one-CPU task (another thread count sums in another order)."""
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", *args, "--no-ray", "--results-dir", str(results)],
                            env={**env, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def worker_ids(cluster) -> set[str]:
    return {node.node_id for node in cluster.worker_nodes}


def wait_until(condition, what: str, process: subprocess.Popen, log: Path):
    """The first true value of `condition()`, checked every 0.2 s while the command runs."""
    deadline = time.monotonic() + TIMEOUT_S
    while not (value := condition()):
        if process.poll() is not None:
            pytest.fail(f"the command ended before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return value


def finish(process: subprocess.Popen, log: Path, timeout_s: float = TIMEOUT_S) -> str:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"timed out:\n{log.read_text()[-3000:]}")
    output = log.read_text()
    assert process.returncode == 0, output[-4000:]
    return output


def replace_node(cluster, node, **resources) -> None:
    """Kill a worker node (its raylet and every process on it), then add a fresh one."""
    cluster.remove_node(node)
    cluster.add_node(num_cpus=1, **resources)
    cluster.wait_for_nodes()
