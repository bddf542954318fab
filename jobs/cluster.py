"""The cluster side of `cifar submit`, `cifar status` and `cifar logs`; jobs/submit.py only parses and
prints, jobs/chart.py renders.

This module owns connecting to the cluster (kubeconfig from $KUBECONFIG or ~/.kube/config, else the
pod's service account), creating rendered objects with the Kubernetes Python client, listing a
release's stage objects with their state (`job_state`, `rayjob_state`), picking the newest pod of a
stage (its RayJob's submitter, else the head) and the container whose log to stream, and turning
every cluster failure into a one-line CifarError.
"""

from __future__ import annotations

import os
from pathlib import Path

from cifar_core.errors import CifarError
from jobs.chart import COMPONENT_ORDER, one_line

# --- cluster access ---


def connect(context: str | None, namespace: str | None = None):
    """(ApiClient, namespace) from the kubeconfig, or from the pod's service account. The namespace is
    `namespace` when given, else the context's (or the service account's), else "default"."""
    from kubernetes import client, config

    # $KUBECONFIG is read now, not when the kubernetes package was imported; it may list several files.
    config_file = os.environ.get("KUBECONFIG") or "~/.kube/config"
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
        ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        default = ns_file.read_text().strip() if ns_file.is_file() else "default"
    configuration = client.Configuration.get_default_copy()
    configuration.retries = 1  # an unreachable server fails in seconds, not after urllib3's three retries
    return client.ApiClient(configuration), namespace or default


def _call(api, fn, *args, passthrough=(), **kwargs):
    """One API call. An unreachable cluster or a refused request becomes a one-line CifarError; API
    errors whose status is in `passthrough` are raised for the caller to handle."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, **kwargs)
    except HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise CifarError(f"no Kubernetes cluster reachable at {api.configuration.host}: {one_line(reason)}") from None
    except ApiException as exc:
        if exc.status in passthrough:
            raise
        if exc.status in (401, 403):
            raise CifarError(f"the cluster refused the request ({exc.status} {exc.reason}): check your credentials and RBAC") from None
        raise CifarError(f"Kubernetes API error {exc.status}: {_api_message(exc)}") from None


def _creator(api, kind: str):
    from kubernetes import client

    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    plural = {"RayJob": "rayjobs", "RayCluster": "rayclusters"}
    if kind == "ServiceAccount":
        return lambda ns, body: core.create_namespaced_service_account(ns, body, _request_timeout=30)
    if kind == "PersistentVolumeClaim":
        return lambda ns, body: core.create_namespaced_persistent_volume_claim(ns, body, _request_timeout=30)
    if kind == "Deployment":
        return lambda ns, body: apps.create_namespaced_deployment(ns, body, _request_timeout=30)
    if kind in plural:
        return lambda ns, body: custom.create_namespaced_custom_object(
            "ray.io", "v1", ns, plural[kind], body, _request_timeout=30
        )
    raise CifarError(f"cifar submit does not know how to create a {kind}")


def create(documents, api, namespace: str) -> list[str]:
    """Create every object; one that already exists is left as it is. Returns one line per object."""
    from kubernetes.client.exceptions import ApiException

    lines = []
    for _, _, obj in documents:
        kind, name = obj["kind"], obj["metadata"]["name"]
        try:
            _call(api, _creator(api, kind), namespace, obj, passthrough=(404, 409))
            lines.append(f"created {kind.lower()}/{name}")
        except ApiException as exc:
            if exc.status == 409:
                lines.append(f"unchanged {kind.lower()}/{name} (already exists; delete it to run it again)")
            elif kind in ("RayJob", "RayCluster"):
                raise CifarError(
                    f"the cluster does not serve {kind} (ray.io/v1): install the KubeRay operator 1.7.0 first "
                    "(docs/kubernetes.md)"
                ) from None
            else:
                raise CifarError(f"creating {kind.lower()}/{name} failed: {exc.status} {_api_message(exc)}") from None
    return lines


def _api_message(exc) -> str:
    import json

    try:
        return json.loads(exc.body).get("message", exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


def _selector(release: str | None, component: str | None = None) -> str:
    parts = ["app.kubernetes.io/part-of=cifar100"]
    if release:
        parts.append(f"app.kubernetes.io/instance={release}")
    if component:
        parts.append(f"app.kubernetes.io/component={component}")
    return ",".join(parts)


def job_state(job: dict) -> str:
    """A Job's state in one word or two."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition["type"] == "Complete":
            return "succeeded"
        if condition["type"] == "Failed":
            return f"failed ({condition.get('reason', '')})"
        if condition["type"] == "Suspended":
            return "suspended (queued)"
    if status.get("active"):
        return "running" if status.get("ready") else "starting or waiting"
    return "pending"


def rayjob_state(rayjob: dict) -> str:
    """A RayJob's deployment state, the Ray job's state, and why KubeRay failed it (e.g.
    PreRunningDeadlineExceeded, AppFailed)."""
    status = rayjob.get("status") or {}
    deployment = status.get("jobDeploymentStatus") or "New"
    job = status.get("jobStatus")
    state = deployment.lower() + (f" (ray job {job.lower()})" if job else "")
    if deployment == "Failed" and status.get("reason"):
        state += f": {status['reason']}"
    return state


# --- status and logs ---


def stage_rows(api, namespace: str, release: str | None) -> list[tuple]:
    """(release, stage, object, state) for every RayJob of `release` (or of every cifar100 release),
    and every Job an older chart version left, sorted by release then stage order. Without KubeRay
    there are no RayJob rows."""
    from kubernetes import client

    selector = _selector(release)
    jobs = _call(api, client.BatchV1Api(api).list_namespaced_job, namespace, label_selector=selector, _request_timeout=30)
    rows = []
    for job in api.sanitize_for_serialization(jobs)["items"]:
        rows.append(_row(job, "job", job_state(job)))
    try:
        rayjobs = _call(api, client.CustomObjectsApi(api).list_namespaced_custom_object, "ray.io", "v1", namespace,
                        "rayjobs", label_selector=selector, _request_timeout=30, passthrough=(404,))
        rows.extend(_row(r, "rayjob", rayjob_state(r)) for r in rayjobs["items"])
    except client.exceptions.ApiException:
        pass  # 404: KubeRay is not installed, so there is no RayJob to show
    rows.sort(key=lambda r: (r[0], COMPONENT_ORDER.index(r[1]) if r[1] in COMPONENT_ORDER else 99))
    return rows


def _row(obj: dict, kind: str, state: str) -> tuple:
    labels = obj["metadata"].get("labels") or {}
    return (labels.get("app.kubernetes.io/instance", "?"), labels.get("app.kubernetes.io/component", "?"),
            f"{kind}/{obj['metadata']['name']}", state)


def newest_pod(api, namespace: str, release: str, stage: str) -> dict:
    """The newest pod of `stage`'s RayJob: its submitter, which relays the driver's output (`ray job
    submit` follows the job's log), else the Ray head, where the driver runs."""
    from kubernetes import client

    pods = _call(api, client.CoreV1Api(api).list_namespaced_pod, namespace,
                 label_selector=_selector(release, stage), _request_timeout=30)
    pods = api.sanitize_for_serialization(pods)["items"]
    # The submitter carries the driver's output; head and workers have ray.io/node-type. A shared
    # cluster's pods have the component `ray`, so for them only the submitter matches.
    submitters = [p for p in pods if "ray.io/node-type" not in (p["metadata"].get("labels") or {})]
    pods = submitters or [p for p in pods if p["metadata"]["labels"].get("ray.io/node-type") == "head"]
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

    stream = _call(api, client.CoreV1Api(api).read_namespaced_pod_log, pod["metadata"]["name"], namespace,
                   container=container, follow=follow, tail_lines=tail, _preload_content=False)
    return (chunk.decode("utf-8", "replace") for chunk in stream.stream())
