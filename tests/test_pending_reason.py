"""The line of `jobs.cluster.worker_state()`, what the driver adds to its pending-work error: run as the Ray
head would (in-cluster config from a service account directory, KubeRay's RAY_CLUSTER_NAME) against
a local API server over TLS, it names the worker pods' last scheduling or start-up problem, never
raises, and gives up quickly."""

from __future__ import annotations

import socket
import time

import pytest
from kube_fake import event, gke, ray_pod

from jobs.cluster import worker_state

CLUSTER = "cifar100-pipeline-x7k2p"
HEAD = f"{CLUSTER}-head-9wq4d"
GPU_WORKER = f"{CLUSTER}-gpu-worker-m2n8c"
UNSCHEDULABLE = ("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
                 "2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
NVIDIA_RUNTIME = ("failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: "
                  "unable to start container process: error during container init: error running prestart hook #0: exit status 1, "
                  "stdout: , stderr: Auto-detected mode as 'legacy'\nnvidia-container-cli: requirement error: unsatisfied "
                  "condition: cuda>=13.0, please update your driver to a newer version, or use an earlier cuda container: unknown")


@pytest.fixture
def in_pod(tmp_path, monkeypatch):
    """Start `kube` and make this process look like the Ray head's driver in namespace ml."""
    started = []

    def _in_pod(kube, cluster: str = CLUSTER):
        started.append(kube.__enter__())
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(kube.port))
        monkeypatch.setenv("RAY_CLUSTER_NAME", cluster)
        return kube.service_account_dir(tmp_path / "serviceaccount")

    yield _in_pod
    for kube in started:
        kube.__exit__(None, None, None)


def reason(account) -> str | None:
    """The line, with a minute for the API: these tests are about what it says. (Beside CPU-bound work an
    answer of this in-process server once took over the product's 5 s; giving up has its own tests.)"""
    return line_of(account, timeout_s=60)


def line_of(account, timeout_s: float = 5.0) -> str | None:
    """The worker pods' most telling problem, e.g. `pod c-gpu-worker-x: FailedScheduling: 0/3 nodes are
    available: 3 Insufficient nvidia.com/gpu`; None outside a pod."""
    state = worker_state(account, timeout_s)
    return state.line if state is not None else None


def cluster_with(*pods, events=()):
    kube = gke()
    kube.put("v1", "pods", "ml", ray_pod(HEAD, CLUSTER, "head", "headgroup"))
    for pod in pods:
        kube.put("v1", "pods", "ml", pod)
    for e in events:
        kube.put("v1", "events", "ml", e)
    return kube


def test_outside_a_pod_there_is_nothing_to_say(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert line_of(tmp_path) is None
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # a pod without a mounted token
    assert line_of(tmp_path / "nowhere") is None


def test_an_unschedulable_gpu_worker_is_named_with_the_schedulers_words(in_pod):
    kube = cluster_with(ray_pod(GPU_WORKER, CLUSTER, "worker", "gpu", phase="Pending", unschedulable=UNSCHEDULABLE),
                        events=[event(GPU_WORKER, "FailedScheduling", UNSCHEDULABLE),
                                event(HEAD, "Unhealthy", "Readiness probe failed", at="2026-12-05T09:00:00Z"),  # the head: not a worker
                                event("other-cluster-gpu-worker-aaaaa", "FailedScheduling", "elsewhere", at="2026-12-05T10:00:00Z")])
    account = in_pod(kube)
    assert reason(account) == f"pod {GPU_WORKER}: FailedScheduling: {UNSCHEDULABLE}"


@pytest.mark.parametrize(("waiting", "expected"), [
    (("ImagePullBackOff", 'Back-off pulling image "registry.example.com/cifar100-k8s:0.1.0"'),
     'ImagePullBackOff: Back-off pulling image "registry.example.com/cifar100-k8s:0.1.0"'),
    (("ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image: not found"),
     "ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image: not found"),
    (("RunContainerError", NVIDIA_RUNTIME), "RunContainerError: failed to create containerd task"),
    (("CreateContainerError", "context deadline exceeded"), "CreateContainerError: context deadline exceeded"),
])
def test_a_worker_that_cannot_start_is_named_with_the_runtimes_words(in_pod, waiting, expected):
    kube = cluster_with(ray_pod(GPU_WORKER, CLUSTER, "worker", "gpu", phase="Pending", waiting=waiting),
                        events=[event(GPU_WORKER, "Pulling", "Pulling image", kind="Normal")])
    line = reason(in_pod(kube))
    assert line.startswith(f"pod {GPU_WORKER}: {expected}"), line
    assert "\n" not in line
    if waiting[0] == "RunContainerError":
        assert "unsatisfied condition: cuda>=13.0" in line


def test_events_of_workers_the_autoscaler_already_removed_still_count(in_pod):
    gone = f"{CLUSTER}-gpu-worker-zz9yx"
    kube = cluster_with(events=[event(gone, "FailedScheduling", "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")])
    assert reason(in_pod(kube)) == f"pod {gone}: FailedScheduling: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu."


def test_no_worker_at_all_is_said_so(in_pod):
    assert reason(in_pod(cluster_with())) == (
        f"no worker pod of Ray cluster {CLUSTER} exists in namespace ml (the autoscaler has asked for none, or removed them)")


def test_running_workers_leave_nothing_to_say(in_pod):
    kube = cluster_with(ray_pod(GPU_WORKER, CLUSTER, "worker", "gpu"),
                        events=[event(GPU_WORKER, "FailedScheduling", "an old event, since resolved")])
    assert reason(in_pod(kube)) is None


def test_no_right_to_read_events_is_a_line_not_an_exception(in_pod):
    kube = cluster_with(ray_pod(GPU_WORKER, CLUSTER, "worker", "gpu", phase="Pending"))
    kube.forbidden.add(("GET", r"/events$"))
    line = reason(in_pod(kube))
    assert line.startswith("the worker pods' events could not be read: 403 "), line
    assert "events is forbidden" in line


def test_an_unreachable_api_is_a_line_within_seconds(in_pod, monkeypatch):
    account = in_pod(cluster_with())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(closed))
    start = time.monotonic()
    line = line_of(account, timeout_s=2)
    assert time.monotonic() - start < 5
    assert line.startswith("the worker pods' events could not be read: "), line


def test_a_slow_api_is_given_up_on(in_pod):
    kube = cluster_with()
    account = in_pod(kube)
    kube.delay_s = 30
    start = time.monotonic()
    line = line_of(account, timeout_s=1)
    assert time.monotonic() - start < 15  # gave up long before the answer, on a loaded machine too
    assert line.startswith("the worker pods' events could not be read: "), line


def test_without_kuberays_cluster_name_it_says_so(in_pod, monkeypatch):
    account = in_pod(cluster_with())
    monkeypatch.delenv("RAY_CLUSTER_NAME")
    assert "RAY_CLUSTER_NAME is not set" in reason(account)
