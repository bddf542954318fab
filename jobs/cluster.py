"""The cluster side of `cifar submit`, `status` and `logs`, and, for the driver in the Ray head, what
the worker pods of a waiting Ray cluster are doing (its Watch) and where the study stands (its RayJob).

Objects are created with the Kubernetes Python client and Helm's ownership metadata, so a later
`helm install` of the same release adopts them. Every cluster failure is one CifarError line;
`worker_state` reads the worker pods and their events (scheduler, cluster autoscaler, Karpenter,
kubelet) as progressing, waiting or failed for good; `publish_standing` annotates the RayJob.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cifar_core.errors import CifarError
from cifar_core.execution.session import FATAL, PROGRESSING, WAITING, WorkerState
from jobs import kube_api
from jobs.chart import COMPONENT_ORDER, DEFAULT_RELEASE, one_line
from jobs.kube_api import api_message, cut, get_json, printable

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
REPLACE_WAIT_S = 180  # a RayJob's finalizer stops its Ray job and KubeRay deletes its cluster first

# kind -> (API group, version, plural): what `cifar submit` creates, and what it asks the
# SelfSubjectAccessReview about.
RESOURCES = {
    "ServiceAccount": ("", "v1", "serviceaccounts"),
    "Role": ("rbac.authorization.k8s.io", "v1", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "PersistentVolumeClaim": ("", "v1", "persistentvolumeclaims"),
    "Deployment": ("apps", "v1", "deployments"),
    "RayCluster": ("ray.io", "v1", "rayclusters"),
    "RayJob": ("ray.io", "v1", "rayjobs"),
}
# KubeRay's labels on the pods of a Ray cluster (ray-operator/controllers/ray/utils/constant.go).
RAY_CLUSTER_LABEL = "ray.io/cluster"
RAY_NODE_TYPE_LABEL = "ray.io/node-type"
# Set by KubeRay in every Ray container, from the pod's ray.io/cluster label (downward API).
RAY_CLUSTER_NAME_ENV = "RAY_CLUSTER_NAME"
# Set by the chart on the head of a RayJob's own Ray cluster: the RayJob its driver runs for.
RAYJOB_ENV = "CIFAR_RAYJOB"
# Where the driver publishes the study's standing (cifar_core.progress) for `cifar status`: an
# annotation of its RayJob, read with the RayJob itself. Kubernetes allows 256 KiB of annotations
# on an object in all; this one stays far below.
STANDING_ANNOTATION = "cifar100-k8s.io/standing"
MAX_STANDING_BYTES = 8192


# --- cluster access ---


def connect(context: str | None, namespace: str | None = None):
    """(ApiClient, namespace) from the kubeconfig, or from the pod's service account. The namespace is
    `namespace` when given, else the context's (or the service account's), else "default"."""
    from kubernetes import client, config

    # $KUBECONFIG is read now, not when the kubernetes package was imported; it may list several files.
    config_file = os.environ.get("KUBECONFIG") or "~/.kube/config"
    _refuse_what_is_not_a_kubeconfig(config_file)
    try:
        config.load_kube_config(config_file=config_file, context=context)
        contexts, active = config.list_kube_config_contexts(config_file=config_file)
        if context:
            active = next((c for c in contexts if c["name"] == context), active)
        default = (active or {}).get("context", {}).get("namespace") or "default"
    except (config.ConfigException, OSError, ValueError, TypeError) as kube_exc:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            raise CifarError(
                f"no Kubernetes cluster reachable: no usable kubeconfig ({one_line(kube_exc)}) and not inside a pod; "
                "set KUBECONFIG or use --dry-run"
            ) from None
        ns_file = SERVICE_ACCOUNT_DIR / "namespace"
        default = ns_file.read_text().strip() if ns_file.is_file() else "default"
    configuration = client.Configuration.get_default_copy()
    configuration.retries = 1  # an unreachable server fails in seconds, not after urllib3's three retries
    return kube_api.budget(client.ApiClient(configuration)), namespace or default


def _refuse_what_is_not_a_kubeconfig(config_file: str) -> None:
    """A kubeconfig is a YAML map; the client fails on anything else with a TypeError about item assignment."""
    import yaml

    for part in config_file.split(os.pathsep):
        path = Path(part).expanduser()
        if not path.is_file():
            continue
        try:
            content = yaml.safe_load(path.read_text(errors="replace"))
        except (OSError, yaml.YAMLError) as exc:
            raise CifarError(f"kubeconfig {path} cannot be read as YAML: {one_line(exc)}") from None
        if content is not None and not isinstance(content, dict):
            raise CifarError(f"{path} is not a kubeconfig (a YAML map of clusters, users and contexts, "
                             f"as `kubectl config view` prints): fix $KUBECONFIG or the file")


# --- creating ---


def _creator(api, kind: str):
    from kubernetes import client

    core, apps, rbac = client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    creators = {
        "ServiceAccount": core.create_namespaced_service_account,
        "PersistentVolumeClaim": core.create_namespaced_persistent_volume_claim,
        "Deployment": apps.create_namespaced_deployment,
        "Role": rbac.create_namespaced_role,
        "RoleBinding": rbac.create_namespaced_role_binding,
    }
    if kind in creators:
        return lambda ns, body, **kw: creators[kind](ns, body, _preload_content=False, **kw)
    if kind in ("RayJob", "RayCluster"):
        group, version, plural = RESOURCES[kind]
        return lambda ns, body, **kw: client.CustomObjectsApi(api).create_namespaced_custom_object(
            group, version, ns, plural, body, _preload_content=False, **kw)
    raise CifarError(f"cifar submit does not know how to create a {kind}")


def helm_owned(obj: dict, release: str, namespace: str) -> dict:
    """The object with the label and annotations by which Helm recognises its own: a later `helm
    install`/`upgrade` of the same release adopts it instead of refusing to touch it."""
    out = json.loads(json.dumps(obj))
    meta = out.setdefault("metadata", {})
    meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
    meta.setdefault("annotations", {}).update({"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace})
    return out


def create(documents, api, namespace: str, release: str) -> list[str]:
    """Create every object, owned by Helm's release `release`; one that already exists (volumes,
    service account, RBAC, the results pod of an earlier stage) is reused. Returns one line per object."""
    from kubernetes.client.exceptions import ApiException

    lines = []
    for _, _, obj in documents:
        kind, name = obj["kind"], obj["metadata"]["name"]
        try:
            kube_api.call(api, _creator(api, kind), namespace, helm_owned(obj, release, namespace), read=True,
                          what=f"the creation of {kind.lower()}/{name}", passthrough=(409,))
            lines.append(f"created {kind.lower()}/{name}")
        except ApiException:  # 409: it exists
            if kind == "RayJob":
                raise CifarError(f"rayjob/{name} appeared while submitting (another submit?): see `cifar status`") from None
            lines.append(f"reused {kind.lower()}/{name} (it exists)")
    return lines


def read_rayjob(api, namespace: str, name: str) -> dict | None:
    """The RayJob, or None when there is none (or the cluster serves no RayJob)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    group, version, plural = RESOURCES["RayJob"]
    try:
        return get_json(api, client.CustomObjectsApi(api).get_namespaced_custom_object, group, version, namespace,
                        plural, name, passthrough=(404,), what=f"rayjob/{name}", schema=kube_api.RAYJOB)
    except ApiException:
        return None


def delete_rayjob(api, namespace: str, name: str, *, wait_s: float = REPLACE_WAIT_S, poll_s: float = 1.0) -> None:
    """Delete the RayJob and wait until it is gone. Foreground: the RayJob goes last, after its Ray
    cluster and its submitter Job (named like the RayJob), so a new one cannot meet the old Job."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    group, version, plural = RESOURCES["RayJob"]
    custom = client.CustomObjectsApi(api)
    try:
        kube_api.call(api, custom.delete_namespaced_custom_object, group, version, namespace, plural, name,
                      propagation_policy="Foreground", passthrough=(404,), _preload_content=False, read=True,
                      what=f"the deletion of rayjob/{name}")
    except ApiException:
        return  # already gone
    deadline = time.monotonic() + wait_s
    while read_rayjob(api, namespace, name) is not None:
        if time.monotonic() > deadline:
            raise CifarError(f"rayjob/{name} is still being deleted after {wait_s:.0f} s (KubeRay stops its Ray job "
                             f"and deletes its cluster first): run the same command again later, or see "
                             f"`kubectl -n {namespace} describe rayjob {name}`")
        time.sleep(poll_s)


# --- states ---


def rayjob_state(rayjob: dict) -> str:
    """A RayJob's deployment state, the Ray job's state, and why KubeRay failed it (e.g.
    PreRunningDeadlineExceeded, AppFailed)."""
    status = rayjob.get("status") or {}
    deployment = status.get("jobDeploymentStatus") or "New"
    job = status.get("jobStatus")
    state = deployment.lower() + (f" (ray job {job.lower()})" if job else "")
    if deployment == "Failed" and status.get("reason"):
        state += f": {status['reason']}"
    if (rayjob.get("metadata") or {}).get("deletionTimestamp"):
        state += " (being deleted)"
    return state


# Why a pod waits, and whether waiting can help: the kubelet's container states, and the events of
# the scheduler, the cluster autoscaler (kubernetes/autoscaler: TriggeredScaleUp, NotTriggerScaleUp,
# and GKE's FailedScaleUp, whatever their type), Karpenter (Nominated, its own FailedScheduling) and
# the kubelet (Scheduled, Pulling, ..., FailedMount).
_START_FAILURES = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull", "CreateContainerError",
                   "CreateContainerConfigError", "RunContainerError", "CrashLoopBackOff", "StartError", "ContainerCannotRun")
_PULL_FAILURES = ("ImagePullBackOff", "ErrImagePull")
# A registry's answer that no retry changes: the image or tag is not there, or may not be pulled.
_IMAGE_GONE = re.compile(r"not found|manifest unknown|name unknown|unauthorized|denied|authentication required|"
                         r"\b40[13]\b|forbidden|repository does not exist|invalid reference format", re.IGNORECASE)
_SLOW_RUNTIME = re.compile(r"deadline exceeded|DeadlineExceeded|timed out|name is reserved", re.IGNORECASE)
_MISSING_CONFIG = re.compile(r'(configmap|secret|persistentvolumeclaim|serviceaccount)s? "[^"]*" not found|'
                             r"couldn't find key", re.IGNORECASE)
_PROGRESS = {"Scheduled", "Pulling", "Pulled", "Created", "Started", "SuccessfulAttachVolume"}
_SCALE_UP = {"TriggeredScaleUp", "Nominated"}  # a node is being added (cluster autoscaler, Karpenter)
_NO_SCALE_UP = {"NotTriggerScaleUp", "FailedScaleUp"}
_AUTOSCALERS = ("cluster-autoscaler", "karpenter")
# The fix for what an autoscaler says, by its words (docs/kubernetes.md, Troubleshooting, says more).
_NO_POOL_FITS = "no node pool's machines fit the pod: add a pool that does (docs/kubernetes.md, Node pools)"
_AUTOSCALER_FIXES = (
    (re.compile(r"quota", re.IGNORECASE), "raise the cloud's GPU quota for the region"),
    (re.compile(r"max node group size|max nodepool size|node limits have been exhausted|exceed limits for nodepool",
                re.IGNORECASE), "raise the node pool's maximum size (or the NodePool's limits)"),
    (re.compile(r"max cluster .* limit|max cluster size", re.IGNORECASE),
     "raise the cluster autoscaler's resource limits (node auto-provisioning: its GPU limit)"),
    (re.compile(r"IP space exhausted", re.IGNORECASE), "the cluster's node or pod IP range is used up: widen it"),
    (re.compile(r"out of resources|stockout|InsufficientCapacity|insufficient capacity|RESOURCE_POOL_EXHAUSTED",
                re.IGNORECASE),
     "the zone has no such machine now: wait, or add a pool in another zone or of another machine type"),
    (re.compile(r"in backoff after failed scale-up", re.IGNORECASE),
     "an earlier scale-up of the pool failed: its FailedScaleUp event or the autoscaler's log says why"),
    (re.compile(r"not ready for scale-up", re.IGNORECASE), "the pool is being created or changed: wait"),
    (re.compile(r"wouldn't fit|didn't match|did not tolerate|untolerated taint|Insufficient|no instance type|"
                r"incompatible", re.IGNORECASE), _NO_POOL_FITS),
)
# With ray.workers.gpu.spot the GPU workers require one of the labels each cloud puts on its spot
# nodes (the chart's cifar100.spotNodeLabels; tests/test_worker_state.py checks the two agree).
SPOT_LABEL_KEYS = ("cloud.google.com/gke-spot", "cloud.google.com/gke-preemptible", "eks.amazonaws.com/capacityType",
                   "karpenter.sh/capacity-type", "kubernetes.azure.com/scalesetpriority")
_NO_NODE_MATCHES = "didn't match Pod's node affinity/selector"
_NO_SPOT_POOL = ("it asks for a spot node (ray.workers.gpu.spot) and none matches: the spot GPU pool is missing, or its "
                 "nodes carry no spot label the chart knows (EKS: a group scaling from zero needs the label as a "
                 "node-template tag); add one (docs/kubernetes.md, Spot GPUs) or set ray.workers.gpu.spot=false")


def pod_state(pod: dict, events: list[dict] = ()) -> WorkerState | None:
    """What holds a pod back, or None when nothing does (it runs, or has finished): PROGRESSING (a
    node is being added for it, or it is scheduled and starting), WAITING (the scheduler's reason,
    beside the autoscaler's newest word on it and its fix) or FATAL (an image that does not exist or
    may not be pulled, a container the runtime refuses, a missing ConfigMap or Secret, a crash loop)."""
    status = pod.get("status") or {}
    events = sorted(events, key=_event_time)
    problem = _container_state(pod, events)
    if problem is not None:
        return problem
    if status.get("phase") not in (None, "Pending", "Unknown", "Failed"):
        return None
    if status.get("phase") == "Failed":  # evicted or refused by its node: KubeRay makes another
        return WorkerState(WAITING, _reason(status.get("reason") or "Failed", status.get("message") or ""))
    if _scheduled(pod):
        return _starting(events)
    scheduler = _newest(events, lambda e: e.get("reason") == "FailedScheduling" and _source(e) != "karpenter")
    line = (_reason(scheduler.get("reason") or "", scheduler.get("message") or "") if scheduler
            else _unschedulable(pod) or "not scheduled yet, and no event says why")
    autoscaler = _newest(events, lambda e: _source(e) in _AUTOSCALERS or e.get("reason") in _SCALE_UP | _NO_SCALE_UP)
    spot = _asks_for_spot(pod)
    if autoscaler is None:
        words = (scheduler or {}).get("message") or ""  # a spot node that is full says Insufficient
        no_spot = spot and _NO_NODE_MATCHES in words and "Insufficient" not in words
        return WorkerState(WAITING, line + (f" ({_NO_SPOT_POOL})" if no_spot else ""))
    said = _reason(autoscaler.get("reason") or "", autoscaler.get("message") or "")
    if autoscaler.get("reason") in _SCALE_UP:
        return WorkerState(PROGRESSING, f"{line}; a node is being added for it ({said})")
    fix = next((fix for pattern, fix in _AUTOSCALER_FIXES if pattern.search(autoscaler.get("message") or "")), None)
    if spot and fix == _NO_POOL_FITS and _NO_NODE_MATCHES in (autoscaler.get("message") or ""):
        fix = _NO_SPOT_POOL
    who = "Karpenter" if _source(autoscaler) == "karpenter" else "the cluster autoscaler"
    return WorkerState(WAITING, f"{line}; {who}: {said}" + (f" ({fix})" if fix else ""))


def _asks_for_spot(pod: dict) -> bool:
    """Whether the pod requires a spot node (the chart's GPU workers with ray.workers.gpu.spot)."""
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    terms = (affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    return bool(terms) and all(any(e.get("key") in SPOT_LABEL_KEYS and e.get("operator") == "In"
                                   for e in term.get("matchExpressions") or []) for term in terms)


def _container_state(pod: dict, events: list[dict]) -> WorkerState | None:
    """A container that cannot be pulled, created or started, with the runtime's words, FATAL when
    waiting cannot change it."""
    found = container_problem(pod)
    if found is None:
        return None
    reason, message = found
    if reason in _PULL_FAILURES:  # the registry's own answer is in the kubelet's Failed events
        pulls = [e.get("message") or "" for e in events if e.get("reason") in ("Failed", "ErrImagePull")]
        gone = _IMAGE_GONE.search(" ".join([message, *pulls[-2:]]))
        if gone and not _IMAGE_GONE.search(message):
            message = f"{message}; {pulls[-1]}" if pulls else message
        kind = FATAL if gone else WAITING
        fix = "check image.repository and image.tag, and imagePullSecrets for a private registry"
    elif reason in ("InvalidImageName", "ErrImageNeverPull"):
        kind, fix = FATAL, "check image.repository and image.tag (kind: `make kind-load` first)"
    elif reason == "CreateContainerError" and _SLOW_RUNTIME.search(message):
        kind, fix = WAITING, None
    elif reason == "CreateContainerConfigError":
        kind, fix = FATAL, "create what the pod refers to, or fix the values that name it"
    elif reason == "CrashLoopBackOff":
        kind, fix = FATAL, f"`kubectl logs --previous {_name(pod)}` shows why it exits"
    else:  # the runtime refused the container: e.g. a driver older than the image's CUDA
        kind = FATAL
        fix = ("the node's NVIDIA driver is older than the image's CUDA: R580+ (docs/kubernetes.md, Troubleshooting)"
               if "cuda" in message.lower() else "`kubectl describe pod` shows the runtime's words")
    line = _reason(reason, message)
    return WorkerState(kind, line + (f"; waiting cannot fix this: {fix}" if kind == FATAL else ""))


def _starting(events: list[dict]) -> WorkerState:
    """A pod on a node, not yet running: PROGRESSING while the kubelet moves on, WAITING on a
    warning (a volume that does not mount yet), FATAL when what it mounts does not exist."""
    kubelet = _newest(events, lambda e: e.get("reason") in _PROGRESS or (
        e.get("type") == "Warning" and e.get("reason") != "FailedScheduling" and _source(e) not in _AUTOSCALERS))
    if kubelet is None or kubelet.get("reason") in _PROGRESS:
        said = _reason(kubelet.get("reason") or "", kubelet.get("message") or "") if kubelet else "scheduled"
        return WorkerState(PROGRESSING, f"starting ({said})")
    line = _reason(kubelet.get("reason") or "Warning", kubelet.get("message") or "")
    if _MISSING_CONFIG.search(kubelet.get("message") or ""):
        return WorkerState(FATAL, f"{line}; waiting cannot fix this: create what the pod refers to, or fix the "
                                  "values that name it")
    return WorkerState(WAITING, line)


def container_problem(pod: dict) -> tuple[str, str] | None:
    """(reason, message) of a container of the pod that cannot be pulled, created or started."""
    status = pod.get("status") or {}
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        last = (container.get("lastState") or {}).get("terminated") or {}
        if waiting.get("reason") in _START_FAILURES:
            message = waiting.get("message") or ""
            if waiting["reason"] == "CrashLoopBackOff" and last.get("message"):
                message = last["message"]
            return waiting["reason"], message
        if last.get("reason") in _START_FAILURES and not (container.get("state") or {}).get("running"):
            return last["reason"], last.get("message") or ""
    return None


def _scheduled(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return bool((pod.get("spec") or {}).get("nodeName")) or any(
        c.get("type") == "PodScheduled" and c.get("status") == "True" for c in conditions)


def _unschedulable(pod: dict) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return _reason(condition.get("reason") or "Unschedulable", condition.get("message") or "")
    return None


def _newest(events: list[dict], wanted) -> dict | None:
    """The newest of the (time-sorted) events that `wanted` says yes to."""
    return next((e for e in reversed(events) if wanted(e)), None)


def _source(event: dict) -> str:
    return (event.get("source") or {}).get("component") or event.get("reportingComponent") or ""


def _reason(reason: str, message: str, limit: int = 400) -> str:
    text = f"{reason}: {one_line(message)}" if message.strip() else reason
    return cut(text, limit)


def _event_time(event: dict) -> str:
    return event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get("creationTimestamp") or ""


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name") or "?"


def pod_line(pod: dict, events: list[dict] = (), *, for_good: str = "") -> str:
    """`Running`, `Pending: FailedScheduling: 0/3 nodes are available: ...; the cluster autoscaler:
    NotTriggerScaleUp: ... (fix)`, `Succeeded`; `for_good` is added when the pod cannot start for good."""
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        phase += " (terminating)"
    state = pod_state(pod, events)
    if state is None and phase.startswith(("Pending", "Failed", "Unknown")):  # a warning says more than nothing
        warning = _newest(sorted(events, key=_event_time), lambda e: e.get("type") == "Warning")
        state = warning and WorkerState(WAITING, _reason(warning.get("reason") or "Warning", warning.get("message") or ""))
    if state and state.kind == FATAL and for_good:
        return f"{phase}: {state.line}; {for_good}"
    return f"{phase}: {state.line}" if state and state.line else phase


# --- status ---


def _selector(release: str | None, component: str | None = None) -> str:
    parts = ["app.kubernetes.io/part-of=cifar100"]
    if release:
        parts.append(f"app.kubernetes.io/instance={release}")
    if component:
        parts.append(f"app.kubernetes.io/component={component}")
    return ",".join(parts)


def rayjobs(api, namespace: str, release: str | None) -> list[dict]:
    """Every RayJob of `release` (or of every cifar100 release), by release then stage order. Without
    KubeRay there are none."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    group, version, plural = RESOURCES["RayJob"]
    try:
        listed = get_json(api, client.CustomObjectsApi(api).list_namespaced_custom_object, group, version, namespace,
                          plural, label_selector=_selector(release), passthrough=(404,),
                          what=f"the RayJobs of namespace {namespace}", schema=kube_api.listing(kube_api.RAYJOB))
    except ApiException:
        return []  # 404: KubeRay is not installed, so there is no RayJob to show
    items = listed.get("items") or []
    return sorted(items, key=lambda r: (_label(r, "app.kubernetes.io/instance"),
                                        _order(_label(r, "app.kubernetes.io/component"))))


def _label(obj: dict, key: str) -> str:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(key, "?")


def _order(component: str) -> int:
    return COMPONENT_ORDER.index(component) if component in COMPONENT_ORDER else len(COMPONENT_ORDER)


def list_pods(api, namespace: str, selector: str) -> list[dict]:
    from kubernetes import client

    return get_json(api, client.CoreV1Api(api).list_namespaced_pod, namespace, label_selector=selector,
                    what=f"the pods of namespace {namespace} ({selector})", schema=kube_api.listing(kube_api.POD)
                    ).get("items") or []


def pod_events(api, namespace: str, keep: Callable[[str], bool] = lambda name: True,
               passthrough: tuple[int, ...] = (403,)) -> dict[str, list[dict]]:
    """Events of the namespace's pods whose name `keep` accepts, by pod name (one listing of them
    all: the answer can be large, so a command reads it once). A refusal whose status is in
    `passthrough` is raised as the ApiException."""
    from kubernetes import client

    listed = get_json(api, client.CoreV1Api(api).list_namespaced_event, namespace,
                      field_selector="involvedObject.kind=Pod", passthrough=passthrough,
                      what=f"the pod events of namespace {namespace}", schema=kube_api.listing(kube_api.EVENT))
    by_pod: dict[str, list[dict]] = {}
    for event in listed.get("items") or []:
        name = (event.get("involvedObject") or {}).get("name") or ""
        if keep(name):
            by_pod.setdefault(name, []).append(event)
    return by_pod


def readable_pod_events(api, namespace: str) -> dict[str, list[dict]]:
    """Every pod's events, or {} when the caller may not read events (the pods' own status still says much)."""
    from kubernetes.client.exceptions import ApiException

    try:
        return pod_events(api, namespace)
    except ApiException:
        return {}


def stage_pods(api, namespace: str, rayjob: dict, events: dict[str, list[dict]]) -> list[tuple[str, str, str]]:
    """(pod name, role, line) for the RayJob's submitter and its Ray cluster's pods: head, workers,
    submitter; `events`: the namespace's pod events by pod name (`readable_pod_events`)."""
    release = _label(rayjob, "app.kubernetes.io/instance")
    stage = _label(rayjob, "app.kubernetes.io/component")
    cluster = (rayjob.get("status") or {}).get("rayClusterName")
    pods = {p["metadata"]["name"]: p for p in list_pods(api, namespace, _selector(release, stage))}
    if cluster:  # a shared cluster's pods carry the component `ray`: select them by KubeRay's label
        pods |= {p["metadata"]["name"]: p for p in list_pods(api, namespace, f"{RAY_CLUSTER_LABEL}={cluster}")}
    rows = []
    for pod in pods.values():
        node_type = _label(pod, RAY_NODE_TYPE_LABEL)
        role = {"head": "head", "worker": f"{_label(pod, 'ray.io/group')} worker"}.get(node_type, "submitter")
        for_good = _head_never_starts(pod, release, stage) if role == "head" else ""
        rows.append((pod["metadata"]["name"], role, pod_line(pod, events.get(pod["metadata"]["name"], []), for_good=for_good)))
    order = {"head": 0, "submitter": 2}
    return sorted(rows, key=lambda r: (order.get(r[1], 1), r[1], r[0]))


def _head_never_starts(head: dict, release: str, stage: str) -> str:
    """What a head that cannot start for good means: KubeRay fails the RayJob only at its pre-running
    deadline (15 minutes by default), and then retries it with the same pods."""
    if _label(head, "app.kubernetes.io/component") == "ray":  # the shared RayCluster's head
        again = "`helm upgrade` the release"
    else:
        again = f"`cifar submit {stage}" + (f" --release {release}" if release != DEFAULT_RELEASE else "") + " --replace`"
    return (f"so the Ray cluster will never start, though KubeRay fails the RayJob only at "
            f"ray.job.preRunningDeadlineSeconds (and then retries it): fix it, then {again}")


# --- logs ---


def newest_pod(api, namespace: str, release: str, stage: str) -> dict:
    """The newest pod of `stage`'s RayJob: its submitter, which relays the driver's output (`ray job
    submit` follows the job's log), else the Ray head, where the driver runs."""
    pods = list_pods(api, namespace, _selector(release, stage))
    # The submitter carries the driver's output; head and workers have ray.io/node-type. A shared
    # cluster's pods have the component `ray`, so for them only the submitter matches.
    submitters = [p for p in pods if RAY_NODE_TYPE_LABEL not in (p["metadata"].get("labels") or {})]
    pods = submitters or [p for p in pods if _label(p, RAY_NODE_TYPE_LABEL) == "head"]
    if not pods:
        raise CifarError(f"no pod of stage {stage} (release {release}) in namespace {namespace}; see `cifar status`")
    return max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")


def _first_container(pod: dict) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        raise CifarError(f"pod {_name(pod)} has no container, as the API describes it: see `kubectl describe pod "
                         f"{_name(pod)}`")
    return containers[0]["name"]


def running_container(pod: dict) -> str:
    """The main container, or the initContainer the pod is still in."""
    status = pod.get("status") or {}
    for init in status.get("initContainerStatuses") or []:
        if init.get("name") and not (init.get("state") or {}).get("terminated"):
            return init["name"]
    return _first_container(pod)


def pod_log(api, namespace: str, pod: dict, container: str, *, follow: bool = False, tail: int | None = None):
    """The container's log as text chunks. The request is made now (a refusal raises here); the chunks
    arrive as they are iterated, until the log ends (or, with `follow`, until the container does)."""
    from kubernetes import client

    kwargs = {"_request_timeout": None} if follow else {}
    stream = kube_api.call(api, client.CoreV1Api(api).read_namespaced_pod_log, pod["metadata"]["name"], namespace,
                           container=container, follow=follow, tail_lines=tail, _preload_content=False,
                           what=f"the log of pod {pod['metadata']['name']}", **kwargs)
    return (chunk.decode("utf-8", "replace") for chunk in stream.stream())


# --- for the driver: what the worker pods are doing ---


def worker_state(service_account_dir: Path = SERVICE_ACCOUNT_DIR, timeout_s: float = 5.0) -> WorkerState | None:
    """What the worker pods of the Ray cluster this process runs in are doing, for the driver's
    Watch: FATAL when one cannot start for good, PROGRESSING when one is on its way (a node being
    added, an image pulled), else WAITING with the most telling line; each line names its pod.

    None outside a Kubernetes pod. Never raises, and gives up within about `timeout_s`: an API that
    cannot be read gives a WAITING line saying why. Reads the pods and events of the pod's own
    namespace (the chart's Role grants get/list on both to the head's service account).
    """
    if not _in_pod(service_account_dir):
        return None
    try:
        return _worker_state(service_account_dir, timeout_s)
    except Exception as exc:  # never let the diagnosis hide the error it is for
        return WorkerState(WAITING, f"the worker pods' events could not be read: {_short_error(exc)}")


def _worker_state(service_account_dir: Path, timeout_s: float) -> WorkerState:
    from kubernetes.client.exceptions import ApiException

    cluster = os.environ.get(RAY_CLUSTER_NAME_ENV, "").strip()
    if not cluster:
        return WorkerState(WAITING, f"the worker pods' events could not be read: ${RAY_CLUSTER_NAME_ENV} is not set "
                                    "(KubeRay sets it in Ray pods)")
    api, namespace = _in_pod_api(service_account_dir, timeout_s)
    try:
        pods = list_pods(api, namespace, f"{RAY_CLUSTER_LABEL}={cluster}")
        head = {p["metadata"]["name"] for p in pods if _label(p, RAY_NODE_TYPE_LABEL) == "head"}
        by_pod = pod_events(api, namespace, lambda name: name.startswith(f"{cluster}-") and name not in head,
                            passthrough=(403, 404))
    except ApiException as exc:
        return WorkerState(WAITING, f"the worker pods' events could not be read: {exc.status} {api_message(exc)}")
    workers = [p for p in pods if p["metadata"]["name"] not in head]
    return workers_state(workers, by_pod) or (
        WorkerState(WAITING, f"no worker pod of Ray cluster {cluster} exists in namespace {namespace} (the "
                             "autoscaler has asked for none, or removed them)") if not workers else None)


def _in_pod(service_account_dir: Path) -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (service_account_dir / "token").is_file()


def _in_pod_api(service_account_dir: Path, timeout_s: float):
    """(ApiClient, namespace) of the pod's service account, every call of it within `timeout_s` in all."""
    from kubernetes import client, config

    namespace = (service_account_dir / "namespace").read_text().strip()
    configuration = client.Configuration()
    config.incluster_config.InClusterConfigLoader(
        token_filename=str(service_account_dir / "token"), cert_filename=str(service_account_dir / "ca.crt"),
        environ=os.environ).load_and_set(configuration)
    configuration.retries = 0
    return kube_api.budget(client.ApiClient(configuration), timeout_s), namespace


def workers_state(workers: list[dict], events: dict[str, list[dict]]) -> WorkerState | None:
    """One verdict over the worker pods: the first FATAL, else the first PROGRESSING, else the most
    telling WAITING (a container problem, else the newest event); events of pods already removed
    count only for the line. None when every worker runs and nothing else is said."""
    states = [(p["metadata"]["name"], pod_state(p, events.get(p["metadata"]["name"], []))) for p in workers]
    for kind in (FATAL, PROGRESSING):
        found = next(((n, s) for n, s in states if s is not None and s.kind == kind), None)
        if found:
            return WorkerState(kind, f"pod {found[0]}: {found[1].line}")
    live = {p["metadata"]["name"]: p for p in workers}
    waiting = [(container_problem(live[n]) is not None, _newest_time(events.get(n, [])), n, s) for n, s in states if s]
    gone = [(False, _event_time(e), n, WorkerState(WAITING, _reason(e.get("reason") or "Warning", e.get("message") or "")))
            for n, evs in events.items() if n not in live for e in evs if e.get("type") == "Warning"]
    if not waiting and not gone:
        return None
    _, _, name, state = max(waiting or gone, key=lambda item: item[:2])
    return WorkerState(WAITING, f"pod {name}: {state.line}")


def _newest_time(events: list[dict]) -> str:
    return max((_event_time(e) for e in events), default="")


def _short_error(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    text = one_line(printable(str(reason if reason is not None else exc))) or type(exc).__name__
    text = re.sub(r"<urllib3\.[^>]*>: ", "", text)
    return cut(text, 300)


# --- for the driver: where the study stands, on its RayJob ---

_STANDING_KEYS = ("stage", "status", "done", "total", "unit", "eta_s", "work_s", "note", "hosts")
_said_unpublished: set[str] = set()  # the RayJobs this process could not annotate: said once each


def publish_standing(standing: dict, service_account_dir: Path | None = None, timeout_s: float = 5.0) -> bool:
    """Put `standing` (cifar_core.progress's) on the RayJob this driver runs for, as its
    STANDING_ANNOTATION, where `cifar status` reads it: a JSON merge patch of the annotation alone
    (the chart's Role grants patch on rayjobs). True once done.

    False, silently, outside a pod or without $CIFAR_RAYJOB (a shared Ray cluster's drivers belong to
    no one RayJob). Never raises and gives up within about `timeout_s`; a failure is said once on
    stderr, since `cifar status` will then show no standing.
    """
    rayjob = os.environ.get(RAYJOB_ENV, "").strip()
    service_account_dir = service_account_dir or SERVICE_ACCOUNT_DIR
    if not rayjob or not _in_pod(service_account_dir):
        return False
    try:
        _annotate_rayjob(service_account_dir, timeout_s, rayjob, {STANDING_ANNOTATION: standing_annotation(standing)})
        return True
    except Exception as exc:  # the standing is a courtesy: never let it end the run
        if rayjob not in _said_unpublished:
            _said_unpublished.add(rayjob)
            print(f"note: `cifar status` will not show where the study stands: rayjob/{rayjob} could not be "
                  f"annotated ({_short_error(exc)})", file=sys.stderr, flush=True)
        return False


def _annotate_rayjob(service_account_dir: Path, timeout_s: float, rayjob: str, annotations: dict[str, str]) -> None:
    from kubernetes import client

    api, namespace = _in_pod_api(service_account_dir, timeout_s)
    group, version, plural = RESOURCES["RayJob"]
    with api:  # every 30 s for days: no connection pool left behind
        kube_api.call(api, client.CustomObjectsApi(api).patch_namespaced_custom_object, group, version, namespace,
                      plural, rayjob, {"metadata": {"annotations": annotations}},
                      _content_type="application/merge-patch+json", _preload_content=False, read=True,
                      what=f"the annotation of rayjob/{rayjob}")


def standing_annotation(standing: dict) -> str:
    """`standing` as the annotation's compact JSON, at most MAX_STANDING_BYTES: its time, profile and
    final flag, and each stage's row (notes and host names cut short); the stages that do not fit
    are left out and counted (`omitted`)."""
    rows = [{key: _shortened(row[key]) for key in _STANDING_KEYS if row.get(key) is not None}
            for row in standing.get("stages") or [] if isinstance(row, dict)]
    head = {key: _shortened(standing[key]) for key in ("time", "profile", "final") if key in standing}
    for kept in range(len(rows), -1, -1):
        value = {**head, "stages": rows[:kept], **({"omitted": len(rows) - kept} if kept < len(rows) else {})}
        text = json.dumps(value, separators=(",", ":"), default=str)
        if len(text.encode()) <= MAX_STANDING_BYTES:
            return text
    return json.dumps({"stages": [], "omitted": len(rows)})


def _shortened(value, limit: int = 200):
    if isinstance(value, str):
        return cut(value, limit)
    if isinstance(value, list):
        return [_shortened(v, 63) for v in value[:8]]
    return value
