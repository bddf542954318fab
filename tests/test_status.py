"""`cifar status` shows where a run stands, read from the cluster (a local API server over TLS, the real
kubernetes client): each RayJob's state, its Ray cluster's pods with why one waits or fails, and the
study's standing as the driver last printed it (read from the submitter pod's log, tail-limited)."""

from __future__ import annotations

import time

import pytest
from helpers import cifar
from kube_fake import event, gke, ray_pod, submitter_pod

from cifar_core.progress import standing_line
from jobs.submit import duration, standing_lines

CLUSTER = "cifar100-pipeline-x7k2p"
GPU_WORKER = f"{CLUSTER}-gpu-worker-m2n8c"
NOT_ENOUGH = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."
STAGES = [
    {"stage": "data", "status": "ran", "done": None, "total": None, "unit": None, "eta_s": None, "work_s": 42.0},
    {"stage": "tune", "status": "running", "done": 23, "total": 60, "unit": "trials", "eta_s": 4800.0, "work_s": 3600.0},
    {"stage": "gan", "status": "running", "done": 12000, "total": 46000, "unit": "steps", "eta_s": None, "work_s": 900.0},
    {"stage": "retrain", "status": "waiting", "done": None, "total": None, "unit": None, "eta_s": None, "work_s": None},
]


def rayjob(name: str, stage: str, cluster: str | None, state: str = "Running", job: str = "RUNNING", release: str = "cifar100") -> dict:
    labels = {"app.kubernetes.io/name": "cifar100", "app.kubernetes.io/instance": release, "app.kubernetes.io/part-of": "cifar100",
              "app.kubernetes.io/component": stage, "app.kubernetes.io/managed-by": "Helm"}
    status = {"jobDeploymentStatus": state, "jobStatus": job, **({"rayClusterName": cluster} if cluster else {})}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"entrypoint": "cifar ..."}, "status": status}


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A running pipeline whose GPU worker cannot be scheduled, a failed fid stage of the same release."""
    kube = gke()
    kube.put("ray.io/v1", "rayjobs", "ml", rayjob("cifar100-pipeline", "pipeline", CLUSTER))
    kube.put("ray.io/v1", "rayjobs", "ml", {**rayjob("cifar100-fid", "fid", None, "Failed", "FAILED"),
                                            "status": {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed"}})
    kube.put("v1", "pods", "ml", ray_pod(f"{CLUSTER}-head-9wq4d", CLUSTER, "head", "headgroup"))
    kube.put("v1", "pods", "ml", ray_pod(GPU_WORKER, CLUSTER, "worker", "gpu", phase="Pending"))
    kube.put("v1", "pods", "ml", ray_pod(f"{CLUSTER}-cpu-worker-q1w2e", CLUSTER, "worker", "cpu", phase="Pending",
                                         waiting=("ImagePullBackOff", 'Back-off pulling image "cifar100-k8s:0.1.0"')))
    kube.put("v1", "pods", "ml", submitter_pod("cifar100-pipeline-s8d7f"))
    kube.put("v1", "events", "ml", event(GPU_WORKER, "FailedScheduling", NOT_ENOUGH))
    log = ["[stage data] ran in 42 s\n", standing_line(STAGES[:1]) + "\n"] + [f"[tune] trial {i}\n" for i in range(3000)]
    log += [standing_line(STAGES) + "\n", "[gan] step 12000\n"]
    kube.pod_logs["cifar100-pipeline-s8d7f"] = "".join(log)
    with kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        yield kube


def test_status_shows_the_rayjob_its_pods_and_why_one_waits(study):
    result = cifar("status")
    assert result.status == 0, result
    out = result.out
    assert "cifar100         pipeline  rayjob/cifar100-pipeline                 running (ray job running)" in out
    assert f"gpu worker   pod/{GPU_WORKER}  Pending: FailedScheduling: {NOT_ENOUGH}" in out
    assert 'cpu worker   pod/cifar100-pipeline-x7k2p-cpu-worker-q1w2e  Pending: ImagePullBackOff: Back-off pulling image "cifar100-k8s:0.1.0"' in out
    assert "head         pod/cifar100-pipeline-x7k2p-head-9wq4d  Running" in out
    assert "submitter    pod/cifar100-pipeline-s8d7f  Running" in out
    assert "cifar100         fid       rayjob/cifar100-fid                      failed (ray job failed): AppFailed" in out
    assert out.index("rayjob/cifar100-pipeline") < out.index("rayjob/cifar100-fid")  # the study's order


def test_status_shows_each_stages_standing_from_the_drivers_last_line(study):
    out = cifar("status", "--release", "cifar100").out
    assert "study, as the driver reported" in out
    assert "    data       ran         in 42 s" in out
    assert "    tune       running     23/60 trials, about 1 h 20 min left" in out
    assert "    gan        running     12000/46000 steps" in out
    assert "    retrain    waiting" in out
    # the log is read tail-limited: the last standing line only, not the first
    assert [p for m, p in study.requests if p.endswith("/log")] == ["/api/v1/namespaces/ml/pods/cifar100-pipeline-s8d7f/log"]


def test_a_tail_that_misses_the_last_standing_line_says_so(study):
    out = cifar("status", "--log-lines", "1").out
    assert "study: the driver's log has no standing line yet" in out


def test_no_rayjob_says_so(tmp_path, monkeypatch):
    with gke() as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        result = cifar("status", "--release", "other")
    assert result.status == 0 and result.out.strip() == "no cifar100 RayJob in namespace ml for release other"


def test_logs_follow_the_submitter(study):
    result = cifar("logs", "pipeline", "--tail", "2")
    assert result.status == 0, result
    assert result.out.endswith("[gan] step 12000\n") and "[cifar-standing]" in result.out
    assert "== pod/cifar100-pipeline-s8d7f container ray-job-submitter ==" in result.err


def test_standing_lines_and_durations():
    now = time.time()
    text = standing_line(STAGES)
    lines = standing_lines(f"noise\n{text}\n", now=now + 125)
    assert lines[0] == "study, as the driver reported 2 min ago:"
    assert standing_lines(None) == [] and standing_lines("") == []
    assert [duration(s) for s in (5, 75, 3600, 4800, 200000)] == ["5 s", "1 min", "1 h", "1 h 20 min", "2 d 7 h"]


def test_status_names_the_autoscalers_newest_word_beside_the_schedulers(study):
    """The cluster autoscaler's NotTriggerScaleUp is of type Normal, and newer than its TriggeredScaleUp: it is shown."""
    study.put("v1", "events", "ml", event(GPU_WORKER, "TriggeredScaleUp", "pod triggered scale-up: [...]", kind="Normal",
                                          at="2026-12-05T07:00:00Z"))
    study.put("v1", "events", "ml", event(GPU_WORKER, "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 in backoff "
                                          "after failed scale-up", kind="Normal", at="2026-12-05T07:30:00Z"))
    out = cifar("status").out
    assert (f"gpu worker   pod/{GPU_WORKER}  Pending: FailedScheduling: {NOT_ENOUGH}; the cluster autoscaler: "
            "NotTriggerScaleUp: pod didn't trigger scale-up: 1 in backoff after failed scale-up (an earlier scale-up of "
            "the pool failed: its FailedScaleUp event or the autoscaler's log says why)") in out, out


def test_status_says_when_a_worker_cannot_start_for_good(study):
    study.put("v1", "pods", "ml", ray_pod(GPU_WORKER, CLUSTER, "worker", "gpu", phase="Pending", node="gke-c-gpu-0",
                                          waiting=("ErrImagePull", "registry.example.com/cifar100-k8s:0.1.1: not found")))
    out = cifar("status").out
    assert (f"gpu worker   pod/{GPU_WORKER}  Pending: ErrImagePull: registry.example.com/cifar100-k8s:0.1.1: not found; "
            "waiting cannot fix this: check image.repository and image.tag") in out, out
