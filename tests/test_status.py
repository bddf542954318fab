"""`cifar status` shows where a run stands, read from the cluster (a local API server over TLS, the real
kubernetes client): each RayJob's state, its Ray cluster's pods with why one waits or fails, and the
study's standing as the driver last published it on its RayJob (an annotation, read with the RayJob
itself: no log, no extra call). The driver's side, `publish_standing`, runs as in the Ray head (the
pod's service account folder, $CIFAR_RAYJOB) against the same server. An annotation is anyone's to
write: a hostile one gives a safe line, never a traceback."""

from __future__ import annotations

import json
import re
import time

import pytest
from helpers import cifar
from kube_fake import event, gke, ray_pod, submitter_pod

from cifar_core.progress import duration
from jobs import cluster
from jobs.cluster import MAX_STANDING_BYTES, STANDING_ANNOTATION, publish_standing, standing_annotation
from jobs.submit import standing_lines

CLUSTER = "cifar100-pipeline-x7k2p"
GPU_WORKER = f"{CLUSTER}-gpu-worker-m2n8c"
NOT_ENOUGH = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."
STAGES = [
    {"stage": "data", "status": "ran", "done": None, "total": None, "unit": None, "eta_s": None, "work_s": 42.0},
    {"stage": "tune", "status": "running", "done": 23, "total": 60, "unit": "trials", "eta_s": 4800.0, "work_s": 3600.0},
    {"stage": "gan", "status": "running", "done": 12000, "total": 46000, "unit": "steps", "eta_s": None, "work_s": 900.0},
    {"stage": "retrain", "status": "waiting", "done": None, "total": None, "unit": None, "eta_s": None, "work_s": None,
     "note": "for tune"},
]
RAYJOBS = "/apis/ray.io/v1/namespaces/ml/rayjobs"


def rayjob(name: str, stage: str, cluster: str | None, state: str = "Running", job: str = "RUNNING", release: str = "cifar100",
           standing: dict | None = None) -> dict:
    labels = {"app.kubernetes.io/name": "cifar100", "app.kubernetes.io/instance": release, "app.kubernetes.io/part-of": "cifar100",
              "app.kubernetes.io/component": stage, "app.kubernetes.io/managed-by": "Helm"}
    annotations = {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": "ml"}
    if standing is not None:
        annotations[STANDING_ANNOTATION] = standing_annotation(standing)
    status = {"jobDeploymentStatus": state, "jobStatus": job, **({"rayClusterName": cluster} if cluster else {})}
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations}, "spec": {"entrypoint": "cifar ..."},
            "status": status}


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A running pipeline whose GPU worker cannot be scheduled and whose driver published its standing
    2 minutes ago, a failed fid stage of the same release."""
    kube = gke()
    kube.put("ray.io/v1", "rayjobs", "ml", rayjob("cifar100-pipeline", "pipeline", CLUSTER,
                                                  standing={"time": time.time() - 125, "profile": "full", "stages": STAGES}))
    kube.put("ray.io/v1", "rayjobs", "ml", {**rayjob("cifar100-fid", "fid", None, "Failed", "FAILED"),
                                            "status": {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed"}})
    kube.put("v1", "pods", "ml", ray_pod(f"{CLUSTER}-head-9wq4d", CLUSTER, "head", "headgroup"))
    kube.put("v1", "pods", "ml", ray_pod(GPU_WORKER, CLUSTER, "worker", "gpu", phase="Pending"))
    kube.put("v1", "pods", "ml", ray_pod(f"{CLUSTER}-cpu-worker-q1w2e", CLUSTER, "worker", "cpu", phase="Pending",
                                         waiting=("ImagePullBackOff", 'Back-off pulling image "cifar100-k8s:0.1.0"')))
    kube.put("v1", "pods", "ml", submitter_pod("cifar100-pipeline-s8d7f"))
    kube.put("v1", "events", "ml", event(GPU_WORKER, "FailedScheduling", NOT_ENOUGH))
    kube.pod_logs["cifar100-pipeline-s8d7f"] = "".join(f"[tune] trial {i}\n" for i in range(3000)) + "[gan] step 12000\n"
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
    # the namespace's pod events (tens of MB on a busy cluster) listed once for both RayJobs
    assert [p for m, p in study.requests if p.endswith("/events")] == ["/api/v1/namespaces/ml/events"]


def test_status_shows_each_stages_standing_from_its_rayjobs_annotation(study):
    out = cifar("status", "--release", "cifar100").out
    assert "  study, as the driver reported 2 min ago:\n" in out
    assert "    data       ran         42 s of work\n" in out
    assert "    tune       running     [#####-------] 23/60 trials · about 1 h 20 min left\n" in out
    assert "    gan        running     [###---------] 12,000/46,000 steps\n" in out
    assert "    retrain    waiting     for tune\n" in out
    assert out.index("rayjob/cifar100-pipeline") < out.index("study, as") < out.index("rayjob/cifar100-fid")
    # read with the RayJobs themselves: no log, no RayJob read one by one
    assert not [p for m, p in study.requests if p.endswith("/log") or p.startswith(RAYJOBS + "/")]
    assert [p for m, p in study.requests if p.startswith(RAYJOBS)] == [RAYJOBS]


def test_a_rayjob_without_a_standing_shows_none(study):
    out = cifar("status").out
    fid = out[out.index("rayjob/cifar100-fid"):]
    assert "study" not in fid


def test_the_option_that_read_the_log_is_gone(study):
    result = cifar("status", "--log-lines", "1")
    assert result.status == 2 and "No such option '--log-lines'" in result.err


def test_no_rayjob_says_so(tmp_path, monkeypatch):
    with gke() as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        result = cifar("status", "--release", "other")
    assert result.status == 0 and result.out.strip() == "no cifar100 RayJob in namespace ml for release other"


def test_logs_follow_the_submitter(study):
    result = cifar("logs", "pipeline", "--tail", "2")
    assert result.status == 0, result
    assert result.out == "[tune] trial 2999\n[gan] step 12000\n"
    assert "== pod/cifar100-pipeline-s8d7f container ray-job-submitter ==" in result.err


def test_standing_lines_and_durations():
    now = time.time()
    text = standing_annotation({"time": now, "final": True, "stages": STAGES})
    assert standing_lines(text, now=now + 125)[0] == "study, as the driver reported at its end, 2 min ago:"
    assert standing_lines(None) == [] and standing_lines("") == []
    assert standing_lines(json.dumps({"stages": []})) == ["study, as the driver reported at an unknown time:"]
    assert [duration(s) for s in (5, 75, 3600, 4800, 200000)] == ["5 s", "1 min", "1 h", "1 h 20 min", "2 d 7 h"]


def test_a_large_standing_is_cut_to_fit_one_annotation_and_says_so():
    stages = [{"stage": f"stage-{i}", "status": "failed", "note": "x" * 5000, "hosts": ["h" * 300] * 50} for i in range(200)]
    text = standing_annotation({"time": time.time(), "profile": "full", "stages": stages})
    assert len(text.encode()) <= MAX_STANDING_BYTES
    value = json.loads(text)
    kept = len(value["stages"])
    assert 5 < kept < 200 and value["omitted"] == 200 - kept
    assert all(len(row["note"]) <= 200 and len(row["hosts"]) <= 8 for row in value["stages"])
    lines = standing_lines(text)
    assert lines[-1] == f"  ... and {200 - kept:,} more" and len(lines) == 1 + kept + 1


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
    assert "never start" not in out  # a worker's failure: the driver's Watch ends the run


HEAD = f"{CLUSTER}-head-9wq4d"
NEVER = ("; so the Ray cluster will never start, though KubeRay fails the RayJob only at ray.job.preRunningDeadlineSeconds "
         "(and then retries it): fix it, then `cifar submit pipeline --replace`")


@pytest.mark.parametrize(("waiting", "events", "for_good"), [
    (("ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image "
                      '"registry.example.com/cifar100-k8s:0.1.1": not found'), [], True),
    (("ImagePullBackOff", 'Back-off pulling image "registry.example.com/cifar100-k8s:0.1.1"'),
     [event(HEAD, "Failed", 'Failed to pull image "registry.example.com/cifar100-k8s:0.1.1": unauthorized: authentication '
                            'required')], True),
    (("CreateContainerConfigError", 'secret "registry" not found'), [], True),
    # a registry that is slow now: the kubelet retries, and the head may yet start
    (("ImagePullBackOff", 'Back-off pulling image "registry.example.com/cifar100-k8s:0.1.0"'),
     [event(HEAD, "Failed", "Failed to pull image: rpc error: code = Unknown desc = failed to copy: i/o timeout")], False),
])
def test_a_head_that_can_never_start_says_so_before_kuberays_deadline(study, waiting, events, for_good):
    study.put("v1", "pods", "ml", ray_pod(HEAD, CLUSTER, "head", "headgroup", phase="Pending", node="gke-c-cpu-5e6f7a8b-k2lm",
                                          waiting=waiting))
    for e in events:
        study.put("v1", "events", "ml", e)
    out = cifar("status").out
    line = next(line for line in out.splitlines() if line.startswith(f"  head         pod/{HEAD}  "))
    assert line.startswith(f"  head         pod/{HEAD}  Pending: {waiting[0]}: "), line
    assert line.endswith(NEVER) is for_good and ("waiting cannot fix this" in line) is for_good, line


# --- the driver's side: the standing published on its RayJob, from inside the Ray head ----------------
@pytest.fixture
def head(study, tmp_path, monkeypatch):
    """This process as the driver on the pipeline RayJob's Ray head: the pod's service account
    folder, the API server in the pod's environment, and the chart's $CIFAR_RAYJOB."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(study.port))
    monkeypatch.setenv("CIFAR_RAYJOB", "cifar100-pipeline")
    monkeypatch.setattr(cluster, "_said_unpublished", set())  # each test's driver is a new process
    return study.service_account_dir(tmp_path / "serviceaccount")


def publish(account, standing: dict) -> bool:
    """As the live view calls it, with a minute for the API: these tests are about what it writes."""
    return publish_standing(standing, account, timeout_s=60)


def test_the_driver_publishes_its_standing_on_its_rayjob_and_status_shows_it(study, head, capsys):
    started = {"time": time.time(), "profile": "full", "final": False, "stages": STAGES[:1]}
    assert publish(head, started)
    ended = {"time": time.time(), "profile": "full", "final": True,
             "stages": [{**STAGES[0], "hosts": ["gke-c-cpu-5e6f7a8b-k2lm"]}, {**STAGES[1], "status": "ran", "work_s": 7200.0}]}
    assert publish(head, ended)
    patches = [p for m, p in study.requests if m == "PATCH"]
    assert patches == [f"{RAYJOBS}/cifar100-pipeline"] * 2  # its own RayJob, nothing else
    meta = study.get("ray.io/v1", "rayjobs", "ml", "cifar100-pipeline")["metadata"]
    assert meta["annotations"]["meta.helm.sh/release-name"] == "cifar100"  # a merge patch: the others stay
    assert json.loads(meta["annotations"][STANDING_ANNOTATION])["final"] is True
    assert capsys.readouterr().err == ""
    out = cifar("status").out
    assert "  study, as the driver reported at its end, 0 s ago:\n" in out
    assert "    data       ran         42 s of work · on gke-c-cpu-5e6f7a8b-k2lm\n" in out
    assert "    tune       ran         2 h of work\n" in out


def test_outside_a_pod_or_without_its_rayjob_nothing_is_published(study, head, monkeypatch, tmp_path):
    monkeypatch.delenv("CIFAR_RAYJOB")  # a shared Ray cluster's head: its drivers belong to no one RayJob
    assert not publish(head, {"stages": STAGES})
    monkeypatch.setenv("CIFAR_RAYJOB", "cifar100-pipeline")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")  # a laptop
    assert not publish(head, {"stages": STAGES})
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    assert not publish(tmp_path / "no-token", {"stages": STAGES})  # a pod without the token mounted
    assert not [m for m, p in study.requests if m == "PATCH"]


@pytest.mark.parametrize(("refusal", "said"), [
    ("missing", "404 for the annotation of rayjob/cifar100-gone"),
    ("forbidden", "the cluster refused the annotation of rayjob/cifar100-pipeline (403 Forbidden"),
])
def test_a_refused_publication_is_said_once_and_never_raises(study, head, monkeypatch, capsys, refusal, said):
    if refusal == "missing":
        monkeypatch.setenv("CIFAR_RAYJOB", "cifar100-gone")
    else:  # a Role from before the driver published (`cifar submit` reuses what exists)
        study.forbidden.add(("PATCH", r"/rayjobs/"))
    assert not publish(head, {"time": time.time(), "stages": STAGES})
    assert not publish(head, {"time": time.time(), "stages": STAGES})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("note: `cifar status` will not show where the study stands: "), err
    assert said in err[0], err[0]


def test_a_slow_api_does_not_hold_the_driver(study, head):
    study.delay_s = 30
    started = time.monotonic()
    assert not publish_standing({"stages": STAGES}, head, timeout_s=1)
    assert time.monotonic() - started < 15  # gave up long before the answer, on a loaded machine too


# --- a hostile annotation: one safe line, never a traceback ----------------------------------------------
HOSTILE = {
    "not JSON": ("the standing", "not one the driver wrote (12 characters, not a standing's JSON)"),
    "nested": ("[" * 10_000 + "]" * 10_000, "not a standing's JSON"),
    "huge": (json.dumps({"stages": [{"stage": "x" * 100}] * 2000}), "more than the driver ever writes"),
    "stages not a list": ('{"stages": "all ran"}', "not a standing's JSON"),
    "wrong types": (json.dumps({"time": "yesterday", "omitted": -3, "stages": [
        7, None, {"stage": 5, "status": ["ran"], "done": "12", "total": True, "eta_s": -5, "work_s": 1e308,
                  "hosts": "vm", "note": {"x": 1}},
        {"stage": "tune", "status": "running", "done": 3, "total": 1e300, "eta_s": 1e300}]}),
        "study, as the driver reported at an unknown time:"),
    "control characters": (json.dumps({"time": 0, "stages": [
        {"stage": "data\n\x1b[2J\x1b[31mRELEASE  STAGE", "status": "ran\r\u202e", "note": "\x07" * 500,
         "hosts": ["vm\x1b]0;title\x07"]}]}), "study, as the driver reported "),
    "raw escape in the text": ('{"stages": [{"stage": "\x1b[31m"}]}', "not a standing's JSON"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_standing_annotation_is_one_safe_line(study, case):
    text, fragment = HOSTILE[case]
    job = study.get("ray.io/v1", "rayjobs", "ml", "cifar100-pipeline")
    job["metadata"]["annotations"][STANDING_ANNOTATION] = text
    result = cifar("status")
    assert result.status == 0 and "Traceback" not in result.err, result
    lines = result.out.splitlines()
    assert all(not re.search(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e]", line) for line in lines), result.out
    study_lines = lines[lines.index(next(line for line in lines if line.startswith("  study"))):]
    study_lines = study_lines[:next((i for i, line in enumerate(study_lines) if line.startswith("cifar100 ")), None)]
    assert fragment in study_lines[0], study_lines
    assert len(study_lines) <= 2 + 40 and all(len(line) < 400 for line in study_lines), study_lines
    assert sum(line.startswith("cifar100 ") for line in lines) == 2  # no line of its own making


def test_the_pipelines_driver_in_the_ray_head_publishes_where_it_ends(study, head, tmp_path, monkeypatch):
    """`cifar pipeline` itself, as the chart runs it on the head (here one stage, in this process):
    the standing it writes to standing.json at its end is on its RayJob too, and `cifar status` shows it."""
    monkeypatch.setattr(cluster, "SERVICE_ACCOUNT_DIR", head)  # where Kubernetes mounts the pod's token
    result = cifar("pipeline", "--profile", "smoke", "--stage", "data", "--no-ray", "--data-dir", tmp_path / "data",
                   "--results-dir", tmp_path / "results")
    assert result.status == 0, result
    annotation = study.get("ray.io/v1", "rayjobs", "ml", "cifar100-pipeline")["metadata"]["annotations"][STANDING_ANNOTATION]
    published = json.loads(annotation)
    written = json.loads((tmp_path / "results" / "pipeline" / "smoke" / "standing.json").read_text())
    assert published["final"] is True and published["profile"] == "smoke" and published["time"] == written["time"]
    assert [(s["stage"], s["status"]) for s in published["stages"]] == [("data", "ran")]
    assert "note:" not in result.err  # nothing refused
    out = cifar("status").out
    assert re.search(r"\n  study, as the driver reported at its end, \d+ s ago:\n    data       ran         \d+ s of work · on ", out), out
