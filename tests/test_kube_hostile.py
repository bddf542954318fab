"""A hostile or broken API server (or a proxy in its place) against `cifar submit --check`, `cifar
status` and `cifar logs`, the real client over TLS: HTML, malformed or wrongly typed JSON, numbers that
are not numbers, names that would steer the terminal, bytes trickled one at a time. Each is one
`error:` line and exit 2 (or a safely printed line), never a traceback, in bounded time."""

from __future__ import annotations

import copy
import re
import time

import pytest
from helpers import cifar
from kube_fake import eks, event, gke, kubeconfig_fixture, ray_pod, submitter_pod  # noqa: F401 (the fixture `use`)

from jobs.cluster import STANDING_ANNOTATION, standing_annotation

GKE_RWX = ("--set", "storage.data.storageClass=standard-rwx,storage.results.storageClass=standard-rwx")
CLUSTER = "cifar100-pipeline-x7k2p"
NODES = "/api/v1/nodes"


def one_error(result, *fragments: str) -> str:
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.status == 2 and len(lines) == 1 and lines[0].startswith("error: "), result
    assert "Traceback" not in result.err and not result.out.strip(), result
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def tamper(kube, path: str, change) -> None:
    """Answer GET `path` with the server's own answer after `change(answer)`."""
    _, honest = kube.answer("GET", path, None)
    kube.requests.pop()
    answer = copy.deepcopy(honest)
    changed = change(answer)
    kube.misbehave(f"^{re.escape(path)}$", body=answer if changed is None else changed)


def study(kube) -> None:
    """A running pipeline: its RayJob with the driver's standing, head, a GPU worker waiting, the submitter."""
    labels = {"app.kubernetes.io/name": "cifar100", "app.kubernetes.io/instance": "cifar100",
              "app.kubernetes.io/part-of": "cifar100", "app.kubernetes.io/component": "pipeline"}
    standing = standing_annotation({"time": time.time(), "stages": [{"stage": "data", "status": "ran", "work_s": 4.0}]})
    kube.put("ray.io/v1", "rayjobs", "ml", {"metadata": {"name": "cifar100-pipeline", "labels": labels,
                                                         "annotations": {STANDING_ANNOTATION: standing}},
                                            "status": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING",
                                                       "rayClusterName": CLUSTER}})
    kube.put("v1", "pods", "ml", ray_pod(f"{CLUSTER}-head-9wq4d", CLUSTER, "head", "headgroup"))
    kube.put("v1", "pods", "ml", ray_pod(f"{CLUSTER}-gpu-worker-m2n8c", CLUSTER, "worker", "gpu", phase="Pending"))
    kube.put("v1", "pods", "ml", submitter_pod("cifar100-pipeline-s8d7f"))
    kube.put("v1", "events", "ml", event(f"{CLUSTER}-gpu-worker-m2n8c", "FailedScheduling", "0/3 nodes are available"))
    kube.pod_logs["cifar100-pipeline-s8d7f"] = "[pipeline] data: running\n"


HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Corporate proxy</body></html>"


# --- not JSON at all ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "body", "status"), [
    ("/version", HTML, 200),
    ("/apis", HTML, 200),
    (NODES, b'{"kind": "NodeList", "items": [', 200),  # cut off
    (NODES, b"\xff\xfe\x00garbage", 200),
    (NODES, b"[" * 100_000 + b"]" * 100_000, 200),  # nested past any object
    (NODES, b'{"kind": "NodeList", "items": ' + b"[" * 100 + b"]" * 100 + b"}", 200),  # past the 64 levels allowed
    (NODES, b"", 200),
    ("/apis/storage.k8s.io/v1/storageclasses/standard-rwx", b"null", 200),
])
def test_submit_check_refuses_an_answer_that_is_not_json(use, path, body, status):
    kube = use(gke())
    kube.misbehave(f"^{re.escape(path)}$", body=body, status=status, content_type="text/html")
    line = one_error(cifar("submit", "pipeline", "--check", *GKE_RWX), "the Kubernetes API at https://127.0.0.1:")
    assert "not JSON" in line or "shape Kubernetes never sends" in line, line
    assert not kube.created()


def test_a_proxys_error_page_is_its_status_not_its_html(use):
    kube = use(gke())
    kube.misbehave("^/version$", body=HTML, status=502, content_type="text/html")
    line = one_error(cifar("submit", "pipeline", "--check", *GKE_RWX), "Kubernetes API error 502 for the version")
    assert "<" not in line


# --- JSON of the wrong shape ------------------------------------------------------------------------------
def first_node(change):
    def on(answer):
        change(answer["items"][0])
    return on


@pytest.mark.parametrize(("path", "change", "fragment"), [
    ("/version", lambda a: a.update(gitVersion=133), "gitVersion is a whole number 133, not a string"),
    ("/apis", lambda a: a.update(groups={"ray.io": "v1"}), "groups is an object, not a list"),
    ("/apis", lambda a: a["groups"][0].clear(), "groups[0].name is missing"),
    ("/apis/ray.io/v1", lambda a: a.update(resources="RayJob"), "resources is a string 'RayJob', not a list"),
    (NODES, lambda a: [], "the answer is a list, not an object"),
    (NODES, lambda a: a.update(items={"a": 1}), "items is an object, not a list"),
    (NODES, lambda a: a.update(items=[1, 2]), "items[0] is a whole number 1, not an object"),
    (NODES, first_node(lambda n: n["metadata"].pop("name")), "items[0].metadata.name is missing"),
    (NODES, first_node(lambda n: n["metadata"]["labels"].update({"nvidia.com/cuda.driver.major": 580})),
     "items[0].metadata.labels['nvidia.com/cuda.driver.major'] is a whole number 580, not a string"),
    (NODES, first_node(lambda n: n["metadata"].update(labels=["a"])), "items[0].metadata.labels is a list"),
    (NODES, first_node(lambda n: n["status"]["allocatable"].update(cpu=True)),
     "items[0].status.allocatable['cpu'] is true or false True"),
    (NODES, first_node(lambda n: n["spec"].update(taints="nvidia.com/gpu")), "items[0].spec.taints is a string"),
    ("/apis/storage.k8s.io/v1/storageclasses/standard-rwx", lambda a: a.update(provisioner=["x"]), "provisioner is a list"),
    ("/api/v1/namespaces/ml", lambda a: a.update(metadata="ml"), "metadata is a string 'ml', not an object"),
])
def test_submit_check_refuses_json_of_the_wrong_shape(use, path, change, fragment):
    kube = use(gke())
    tamper(kube, path, change)
    one_error(cifar("submit", "pipeline", "--check", *GKE_RWX), "in a shape Kubernetes never sends", fragment)
    assert not kube.created()


def test_an_access_review_whose_answer_is_not_true_or_false_is_refused(use):
    kube = use(gke())
    kube.misbehave("selfsubjectaccessreviews$", method="POST", body={"status": {"allowed": "yes"}})
    one_error(cifar("submit", "pipeline", *GKE_RWX), "status.allowed is a string 'yes', not true or false")
    assert not kube.created()


# --- numbers that are not numbers ------------------------------------------------------------------------
@pytest.mark.parametrize("cpu", ["1.2.3", "", "12Qi", "1e999", "nan", "-4", "7 cores", "9" * 400, "0x10"])
def test_a_node_cpu_that_is_not_a_quantity_is_named(use, cpu):
    kube = use(gke())
    tamper(kube, NODES, first_node(lambda n: n["status"]["allocatable"].update(cpu=cpu)))
    line = one_error(cifar("submit", "pipeline", "--check", *GKE_RWX),
                     "node gke-c-default-pool-1a2b3c4d-x0fz [e2-medium], allocatable cpu is", "not a Kubernetes quantity")
    assert len(line) < 600, line


@pytest.mark.parametrize("memory", ["lots", "16GB!", "Gi"])
def test_a_node_memory_or_gpu_count_that_is_not_a_quantity_is_named(use, memory):
    kube = use(gke())
    tamper(kube, NODES, lambda a: a["items"][2]["status"]["allocatable"].update({"memory": memory}))
    one_error(cifar("submit", "pipeline", "--check", *GKE_RWX), "allocatable memory is", repr(memory))
    kube = use(gke())
    tamper(kube, NODES, lambda a: a["items"][2]["status"]["allocatable"].update({"nvidia.com/gpu": memory}))
    one_error(cifar("submit", "pipeline", "--check", *GKE_RWX), "allocatable nvidia.com/gpu is")


@pytest.mark.parametrize("label", ["abc", "²", "５８０", "", "580.65", "-1", "1" * 40])
def test_a_driver_label_that_is_not_a_number_is_named(use, label):
    kube = use(eks(gfd_driver=580))
    tamper(kube, NODES, lambda a: a["items"][1]["metadata"]["labels"].update({"nvidia.com/cuda.driver.major": label}))
    one_error(cifar("submit", "pipeline", "--check", "--set",
                    "storage.data.storageClass=efs-sc,storage.results.storageClass=efs-sc"),
              "node ip-192-168-56-78.ec2.internal [g6.2xlarge] has label nvidia.com/cuda.driver.major=", "not a driver version number")


def test_a_daemonset_request_that_is_not_a_quantity_is_named(use):
    from kube_fake import daemonset

    use(gke(daemonsets=[daemonset("agent", "logging", cpu="a lot", memory="1Gi")]))
    one_error(cifar("submit", "pipeline", "--check", *GKE_RWX), "daemonset logging/agent, container agent, cpu is 'a lot'")


# --- status and logs ---------------------------------------------------------------------------------------
RAYJOBS = "/apis/ray.io/v1/namespaces/ml/rayjobs"
PODS = "/api/v1/namespaces/ml/pods"
EVENTS = "/api/v1/namespaces/ml/events"


@pytest.mark.parametrize(("path", "body", "fragment"), [
    (RAYJOBS, HTML, "answered the RayJobs of namespace ml with something that is not JSON (it starts '<!DOCTYPE html>"),
    (RAYJOBS, {"items": [{"metadata": {"labels": {}}}]}, "items[0].metadata.name is missing"),
    (RAYJOBS, {"items": [{"metadata": {"name": "x", "labels": {"app.kubernetes.io/instance": None, "a": 3}}}]},
     "items[0].metadata.labels['a'] is a whole number 3"),
    (RAYJOBS, {"items": [{"metadata": {"name": "x"}, "status": {"jobDeploymentStatus": ["Running"]}}]},
     "items[0].status.jobDeploymentStatus is a list"),
    (PODS, {"items": [{"metadata": {"name": "p"}, "spec": {"containers": "ray"}}]}, "items[0].spec.containers is a string"),
    (PODS, {"items": [{"metadata": {"name": "p"}}]}, "items[0].spec is missing"),
    (PODS, {"items": [{"metadata": {"name": "p"}, "spec": {"containers": []},
                       "status": {"containerStatuses": [{"state": {"waiting": {"reason": 7}}}]}}]},
     "items[0].status.containerStatuses[0].state.waiting.reason is a whole number 7"),
    (EVENTS, {"items": [{"involvedObject": {"name": 5}}]}, "items[0].involvedObject.name is a whole number 5"),
    (EVENTS, b'{"items": [{"reason": "FailedScheduling", "message": "0/3 nodes', "not JSON"),
])
def test_status_refuses_what_is_not_an_api_answer(use, path, body, fragment):
    kube = use(gke())
    study(kube)
    kube.misbehave(f"^{re.escape(path)}$", body=body)
    one_error(cifar("status"), fragment)


def test_logs_refuse_a_pod_list_that_is_not_one(use):
    kube = use(gke())
    study(kube)
    kube.misbehave(f"^{re.escape(PODS)}$", body=HTML)
    one_error(cifar("logs", "pipeline"), "answered the pods of namespace ml", "not JSON")
    kube = use(gke())
    study(kube)
    kube.misbehave(f"^{re.escape(PODS)}$", body={"items": [{"metadata": {"name": "s", "labels": {}, "creationTimestamp": "x"},
                                                             "spec": {"containers": []}}]})
    one_error(cifar("logs", "pipeline"), "pod s has no container")


@pytest.mark.parametrize("name", ["evil\nRELEASE  STAGE  rayjob/owned  succeeded", "evil\r\x1b[2J\x1b[31mred",
                                  "evil\u202etxt.exe", "evil\x00\x07\x08"])
def test_names_from_the_cluster_are_printed_on_their_own_line_without_control_characters(use, name):
    kube = use(gke())
    study(kube)
    job = copy.deepcopy(kube.get("ray.io/v1", "rayjobs", "ml", "cifar100-pipeline"))
    job["metadata"]["name"] = name
    job["status"]["reason"] = "AppFailed\n\x1b]0;title\x07"
    kube.put("ray.io/v1", "rayjobs", "ml", job)
    pod = ray_pod(f"{CLUSTER}-gpu-worker-{name}", CLUSTER, "worker", "gpu", phase="Pending")
    kube.put("v1", "pods", "ml", pod)
    kube.put("v1", "events", "ml", event(pod["metadata"]["name"], "FailedScheduling", f"no\n{name}"))
    result = cifar("status")
    assert result.status == 0, result
    lines = result.out.splitlines()
    assert all(not re.search(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e]", line) for line in lines), result.out
    assert lines[0].startswith("RELEASE") and sum(line.startswith("cifar100 ") for line in lines) == 2, result.out
    assert not any(line.startswith(("RELEASE  STAGE", "red")) for line in lines[1:]), result.out


def test_an_event_message_with_escapes_shows_them_escaped(use):
    kube = use(gke())
    study(kube)
    kube.put("v1", "events", "ml", event(f"{CLUSTER}-gpu-worker-m2n8c", "FailedScheduling", "0/3\x1b[31m nodes",
                                         at="2026-12-05T09:00:00Z"))
    out = cifar("status").out
    assert "FailedScheduling: 0/3\\x1b[31m nodes" in out and "\x1b" not in out, out


# --- an answer trickled a byte at a time -----------------------------------------------------------------
@pytest.mark.slow  # the command's 30 s budget runs out, as it should
@pytest.mark.parametrize(("command", "path", "headers"), [
    (("submit", "pipeline", "--check", *GKE_RWX), NODES, False),
    (("status",), RAYJOBS, True),
])
def test_a_trickled_answer_cannot_hold_a_command_past_its_budget(use, command, path, headers):
    kube = use(gke())
    study(kube)
    tamper(kube, path, lambda a: None)
    wrong = kube.misbehaving[-1]
    kube.misbehaving[-1] = (wrong[0], wrong[1], wrong[2]._replace(trickle_s=0.5, trickle_headers=headers,
                                                                  body=wrong[2].body + b" " * 4000))
    started = time.monotonic()
    one_error(cifar(*command), "has not answered", "within the 30 s this command gives it in all")
    assert time.monotonic() - started < 60  # the budget, not the 2,000 s the answer would take
