"""The cluster side of `cifar submit`, `status` and `logs`, and why Ray work waits (for the driver).

Objects are created with the Kubernetes Python client and Helm's ownership metadata, so a later
`helm install` of the same release adopts them. Every cluster failure is one CifarError line;
`pending_pods_reason` gives the driver the worker pods' own reason for a stall.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from cifar_core.errors import CifarError
from jobs.chart import COMPONENT_ORDER, one_line

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
REQUEST_TIMEOUT_S = 30
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
    return client.ApiClient(configuration), namespace or default


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


def _call(api, fn, *args, passthrough=(), **kwargs):
    """One API call. An unreachable cluster or a refused request becomes a one-line CifarError; API
    errors whose status is in `passthrough` are raised for the caller to handle."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT_S)
    try:
        return fn(*args, **kwargs)
    except HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise CifarError(f"no Kubernetes cluster reachable at {api.configuration.host}: {one_line(reason)}") from None
    except ApiException as exc:
        if exc.status in passthrough:
            raise
        if exc.status in (401, 403):
            raise CifarError(f"the cluster refused the request ({exc.status} {exc.reason}: {api_message(exc)}): "
                             "check your credentials and RBAC") from None
        raise CifarError(f"Kubernetes API error {exc.status}: {api_message(exc)}") from None


def get_json(api, fn, *args, **kwargs):
    """An API call's JSON, as the server sent it (no model classes in between)."""
    return json.loads(_call(api, fn, *args, _preload_content=False, **kwargs).data)


def api_message(exc) -> str:
    """The `message` of the Status object an API error carries."""
    try:
        return one_line(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


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
            _call(api, _creator(api, kind), namespace, helm_owned(obj, release, namespace), passthrough=(409,))
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
                        plural, name, passthrough=(404,))
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
        _call(api, custom.delete_namespaced_custom_object, group, version, namespace, plural, name,
              propagation_policy="Foreground", passthrough=(404,), _preload_content=False)
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


# Container states that keep a pod from running, as the kubelet names them.
_START_FAILURES = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull", "CreateContainerError",
                   "CreateContainerConfigError", "RunContainerError", "CrashLoopBackOff", "StartError", "ContainerCannotRun")


def pod_problem(pod: dict, events: list[dict] = ()) -> str | None:
    """What keeps a pod from running, in one line (reason: message), or None when nothing does: a
    container that cannot be pulled, created or started (with the runtime's message, e.g. NVIDIA's
    `unsatisfied condition: cuda>=13.0`), else the pod's last Warning event (FailedScheduling,
    FailedMount, ...), else an unschedulable condition."""
    status = pod.get("status") or {}
    problem = container_problem(pod)
    if problem:
        return problem
    warnings = [e for e in events if e.get("type") == "Warning"]
    if warnings and status.get("phase") in (None, "Pending", "Failed", "Unknown"):
        last_event = max(warnings, key=_event_time)
        return _reason(last_event.get("reason") or "Warning", last_event.get("message") or "")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return _reason(condition.get("reason") or "Unschedulable", condition.get("message") or "")
    return None


def container_problem(pod: dict) -> str | None:
    """A container of the pod that cannot be pulled, created or started, with the runtime's words."""
    status = pod.get("status") or {}
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        last = (container.get("lastState") or {}).get("terminated") or {}
        if waiting.get("reason") in _START_FAILURES:
            message = waiting.get("message") or ""
            if waiting["reason"] == "CrashLoopBackOff" and last.get("message"):
                message = last["message"]
            return _reason(waiting["reason"], message)
        if last.get("reason") in _START_FAILURES and not (container.get("state") or {}).get("running"):
            return _reason(last["reason"], last.get("message") or "")
    return None


def _reason(reason: str, message: str, limit: int = 400) -> str:
    text = f"{reason}: {one_line(message)}" if message.strip() else reason
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _event_time(event: dict) -> str:
    return event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get("creationTimestamp") or ""


def pod_line(pod: dict, events: list[dict] = ()) -> str:
    """`Running`, `Pending: FailedScheduling: 0/3 nodes are available: ...`, `Succeeded`."""
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        phase += " (terminating)"
    problem = pod_problem(pod, events)
    return f"{phase}: {problem}" if problem else phase


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
                          plural, label_selector=_selector(release), passthrough=(404,))
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

    return get_json(api, client.CoreV1Api(api).list_namespaced_pod, namespace, label_selector=selector).get("items") or []


def pod_events(api, namespace: str, pod_names: set[str]) -> dict[str, list[dict]]:
    """Events of the named pods, by pod name; {} when the caller may not read events."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        listed = get_json(api, client.CoreV1Api(api).list_namespaced_event, namespace,
                          field_selector="involvedObject.kind=Pod", passthrough=(403,))
    except ApiException:
        return {}  # the pods' own status still says much
    by_pod: dict[str, list[dict]] = {}
    for event in listed.get("items") or []:
        name = (event.get("involvedObject") or {}).get("name") or ""
        if name in pod_names:
            by_pod.setdefault(name, []).append(event)
    return by_pod


def stage_pods(api, namespace: str, rayjob: dict) -> list[tuple[str, str, str]]:
    """(pod name, role, line) for the RayJob's submitter and its Ray cluster's pods: head, workers, submitter."""
    release = _label(rayjob, "app.kubernetes.io/instance")
    stage = _label(rayjob, "app.kubernetes.io/component")
    cluster = (rayjob.get("status") or {}).get("rayClusterName")
    pods = {p["metadata"]["name"]: p for p in list_pods(api, namespace, _selector(release, stage))}
    if cluster:  # a shared cluster's pods carry the component `ray`: select them by KubeRay's label
        pods |= {p["metadata"]["name"]: p for p in list_pods(api, namespace, f"{RAY_CLUSTER_LABEL}={cluster}")}
    events = pod_events(api, namespace, set(pods))
    rows = []
    for pod in pods.values():
        node_type = _label(pod, RAY_NODE_TYPE_LABEL)
        role = {"head": "head", "worker": f"{_label(pod, 'ray.io/group')} worker"}.get(node_type, "submitter")
        rows.append((pod["metadata"]["name"], role, pod_line(pod, events.get(pod["metadata"]["name"], []))))
    order = {"head": 0, "submitter": 2}
    return sorted(rows, key=lambda r: (order.get(r[1], 1), r[1], r[0]))


def driver_log_tail(api, namespace: str, rayjob: dict, lines: int = 2000) -> str | None:
    """The last `lines` of the driver's output, as its submitter pod relays it; None without one."""
    release, stage = _label(rayjob, "app.kubernetes.io/instance"), _label(rayjob, "app.kubernetes.io/component")
    try:
        pod = newest_pod(api, namespace, release, stage)
    except CifarError:
        return None
    if _label(pod, RAY_NODE_TYPE_LABEL) != "?" or not ((pod.get("status") or {}).get("containerStatuses")):
        return None  # no submitter (yet), or it never started: no log
    try:
        return "".join(pod_log(api, namespace, pod, pod["spec"]["containers"][0]["name"], tail=lines))
    except CifarError:
        return None


# --- logs ---


def newest_pod(api, namespace: str, release: str, stage: str) -> dict:
    """The newest pod of `stage`'s RayJob: its submitter, which relays the driver's output (`ray job
    submit` follows the job's log), else the Ray head, where the driver runs."""
    pods = list_pods(api, namespace, _selector(release, stage))
    # The submitter carries the driver's output; head and workers have ray.io/node-type. A shared
    # cluster's pods have the component `ray`, so for them only the submitter matches.
    submitters = [p for p in pods if RAY_NODE_TYPE_LABEL not in (p["metadata"].get("labels") or {})]
    pods = submitters or [p for p in pods if p["metadata"]["labels"].get(RAY_NODE_TYPE_LABEL) == "head"]
    if not pods:
        raise CifarError(f"no pod of stage {stage} (release {release}) in namespace {namespace}; see `cifar status`")
    return max(pods, key=lambda p: p["metadata"]["creationTimestamp"])


def running_container(pod: dict) -> str:
    """The main container, or the initContainer the pod is still in."""
    status = pod.get("status") or {}
    for init in status.get("initContainerStatuses") or []:
        if not (init.get("state") or {}).get("terminated"):
            return init["name"]
    return pod["spec"]["containers"][0]["name"]


def pod_log(api, namespace: str, pod: dict, container: str, *, follow: bool = False, tail: int | None = None):
    """The container's log as text chunks. The request is made now (a refusal raises here); the chunks
    arrive as they are iterated, until the log ends (or, with `follow`, until the container does)."""
    from kubernetes import client

    kwargs = {"_request_timeout": None} if follow else {}
    stream = _call(api, client.CoreV1Api(api).read_namespaced_pod_log, pod["metadata"]["name"], namespace,
                   container=container, follow=follow, tail_lines=tail, _preload_content=False, **kwargs)
    return (chunk.decode("utf-8", "replace") for chunk in stream.stream())


# --- for the driver: why Ray work waits ---


def pending_pods_reason(service_account_dir: Path = SERVICE_ACCOUNT_DIR, timeout_s: float = 5.0) -> str | None:
    """The one most telling line about the worker pods of the Ray cluster this process runs in, for
    the driver's pending-work error: the last scheduling or start-up problem of a worker pod, e.g.
    `pod c-gpu-worker-x: FailedScheduling: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu`.

    None outside a Kubernetes pod. Never raises, and gives up within about `timeout_s`: an API that
    cannot be read gives a line saying why. Reads the pods and events of the pod's own namespace
    (the chart's Role grants get/list on both to the head's service account).
    """
    if not os.environ.get("KUBERNETES_SERVICE_HOST") or not (service_account_dir / "token").is_file():
        return None
    try:
        return _pending_pods_reason(service_account_dir, timeout_s)
    except Exception as exc:  # never let the diagnosis hide the error it is for
        return f"the worker pods' events could not be read: {_short_error(exc)}"


def _pending_pods_reason(service_account_dir: Path, timeout_s: float) -> str | None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    cluster = os.environ.get(RAY_CLUSTER_NAME_ENV, "").strip()
    if not cluster:
        return f"the worker pods' events could not be read: ${RAY_CLUSTER_NAME_ENV} is not set (KubeRay sets it in Ray pods)"
    namespace = (service_account_dir / "namespace").read_text().strip()
    configuration = client.Configuration()
    config.incluster_config.InClusterConfigLoader(
        token_filename=str(service_account_dir / "token"), cert_filename=str(service_account_dir / "ca.crt"),
        environ=os.environ).load_and_set(configuration)
    configuration.retries = 0
    api = client.ApiClient(configuration)
    deadline = time.monotonic() + timeout_s
    timeout = (min(2.0, timeout_s), max(0.5, timeout_s / 2))

    core = client.CoreV1Api(api)
    try:
        pods = json.loads(core.list_namespaced_pod(namespace, label_selector=f"{RAY_CLUSTER_LABEL}={cluster}",
                                                   _preload_content=False, _request_timeout=timeout).data)["items"]
        workers = [p for p in pods if _label(p, RAY_NODE_TYPE_LABEL) != "head"]
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API answered too slowly (over {timeout_s:.0f} s)")
        events = json.loads(core.list_namespaced_event(namespace, field_selector="involvedObject.kind=Pod",
                                                       _preload_content=False, _request_timeout=timeout).data)["items"]
    except ApiException as exc:
        return f"the worker pods' events could not be read: {exc.status} {api_message(exc)}"
    head = {p["metadata"]["name"] for p in pods if _label(p, RAY_NODE_TYPE_LABEL) == "head"}
    by_pod: dict[str, list[dict]] = {}
    for event in events:
        name = (event.get("involvedObject") or {}).get("name") or ""
        if name.startswith(f"{cluster}-") and name not in head:
            by_pod.setdefault(name, []).append(event)
    # A container that cannot start says the most; then the newest scheduling or start-up warning.
    for pod in workers:
        problem = container_problem(pod)
        if problem:
            return f"pod {pod['metadata']['name']}: {problem}"
    live = {p["metadata"]["name"]: p for p in workers}
    warnings = [(name, e) for name, events_ in by_pod.items() for e in events_ if e.get("type") == "Warning"
                and (name not in live or (live[name].get("status") or {}).get("phase") != "Running")]
    if warnings:
        name, event = max(warnings, key=lambda item: _event_time(item[1]))
        return f"pod {name}: {_reason(event.get('reason') or 'Warning', event.get('message') or '')}"
    for pod in workers:
        if (pod.get("status") or {}).get("phase") == "Pending":
            return f"pod {pod['metadata']['name']}: {pod_problem(pod) or 'Pending (no event says why yet)'}"
    if not workers:
        return f"no worker pod of Ray cluster {cluster} exists in namespace {namespace} (the autoscaler has asked for none, or removed them)"
    return None


def _short_error(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    text = one_line(str(reason if reason is not None else exc)) or type(exc).__name__
    text = re.sub(r"<urllib3\.[^>]*>: ", "", text)
    return text if len(text) <= 300 else text[:299] + "…"
