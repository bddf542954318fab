"""What `cifar submit` checks before it creates anything, so a failure leaves nothing half made.

In order: the Kubernetes version, KubeRay's kinds served, the namespace, the storage classes, the
caller's rights (SelfSubjectAccessReview), the nodes (GPUs, device plugin, whether each pod group
fits, NVIDIA driver) and the stage's RayJob. A failure is one `error:` line; what may still work out
(a GPU pool that scales from zero) is a note; each pass is an `ok` line for `--check`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cifar_core.errors import CifarError
from cifar_core.quantity import quantity
from jobs.cluster import RESOURCES, api_message, get_json, rayjob_state, read_rayjob

# The image's torch is a CUDA 13.0 build: NVIDIA's R580 drivers are the first to run it.
DRIVER_FLOOR = 580
# The oldest Kubernetes the chart is for (Chart.yaml kubeVersion; tests/test_submit_cluster.py keeps them equal).
KUBERNETES_FLOOR = (1, 30)
# GPU nodes as the clouds label them, and GPU instance families by name.
GPU_NODE_LABELS = {"cloud.google.com/gke-accelerator": None, "cloud.google.com/gke-gpu": "true",
                   "nvidia.com/gpu.present": "true", "kubernetes.azure.com/accelerator": "nvidia"}
GPU_INSTANCE_TYPES = re.compile(r"^(g\d+[a-z]*|p\d+[a-z]*|gr\d+)\.|^(a2|a3|a4|g2|g4)-|^Standard_N[CDGV]", re.IGNORECASE)
DRIVER_LABELS = ("nvidia.com/cuda.driver-version.major", "nvidia.com/cuda.driver.major")
GKE_DRIVER_LABEL = "cloud.google.com/gke-gpu-driver-version"
FRESH_NODE_S = 15 * 60  # a GPU node this young may still be installing its driver


@dataclass
class Report:
    """What the checks found: `ok` lines (passed) and `notes` (worth knowing, not failures)."""

    ok: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class PodGroup:
    """A group of identical pods the submit creates, as the scheduler sees one: what it requests and where it may go."""

    name: str
    cpu: float
    memory: float  # bytes
    gpus: int
    node_selector: dict
    tolerations: list
    absent_labels: list  # required node affinity: keys that must not exist

    def describe(self) -> str:
        gpus = f", {self.gpus} GPU" if self.gpus else ""
        return f"{self.name} ({_cores(self.cpu)} CPUs, {self.memory / 2**30:.1f} GiB{gpus})"


def check(api, namespace: str, documents, *, replace: bool = False, gpu_resource: str = "nvidia.com/gpu") -> Report:
    """Run every check against the cluster for the rendered `documents`. Raises CifarError at the first failure."""
    objs = [obj for _, _, obj in documents]
    kinds = {o["kind"] for o in objs}
    report = Report()
    _version(api, report)
    _served(api, kinds, report)
    _namespace(api, namespace, report)
    _storage_classes(api, objs, report)
    rayjob = next(o for o in objs if o["kind"] == "RayJob")
    _access(api, namespace, kinds, replace, report)
    _nodes(api, pod_groups(objs, gpu_resource), gpu_resource, report)
    _existing(api, namespace, rayjob, replace, report)
    return report


# --- the checks ---


def _version(api, report: Report) -> None:
    from kubernetes import client

    version = get_json(api, client.VersionApi(api).get_code)
    git_version = version.get("gitVersion") or f"v{version.get('major')}.{version.get('minor')}"
    match = re.match(r"v?(\d+)\.(\d+)", git_version)
    if not match:
        report.notes.append(f"cannot read the cluster's Kubernetes version ({git_version!r})")
        return
    if (int(match[1]), int(match[2])) < KUBERNETES_FLOOR:
        raise CifarError(f"the cluster runs Kubernetes {git_version}, older than the chart's "
                         f"{'.'.join(map(str, KUBERNETES_FLOOR))} (KubeRay 1.7.0's and the pods' fields need it): upgrade the cluster")
    report.ok.append(f"Kubernetes {git_version}")


def _served(api, kinds: set[str], report: Report) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    wanted = sorted(k for k in kinds if RESOURCES[k][0] == "ray.io")
    groups = get_json(api, client.ApisApi(api).get_api_versions)
    versions = {v["version"] for g in groups.get("groups") or [] if g["name"] == "ray.io" for v in g.get("versions") or []}
    served = set()
    if "v1" in versions:
        try:
            resources = get_json(api, client.CustomObjectsApi(api).get_api_resources, "ray.io", "v1", passthrough=(404,))
            served = {r.get("kind") for r in resources.get("resources") or []}
        except ApiException:
            pass
    missing = [k for k in wanted if k not in served]
    if missing:
        raise CifarError(f"the cluster does not serve {', '.join(missing)} (ray.io/v1): install the KubeRay operator 1.7.0 "
                         "first, CRDs included (make kuberay-install; docs/kubernetes.md)")
    report.ok.append(f"the cluster serves {', '.join(wanted)} (ray.io/v1)")


def _namespace(api, namespace: str, report: Report) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        get_json(api, client.CoreV1Api(api).read_namespace, namespace, passthrough=(403, 404))
    except ApiException as exc:
        if exc.status == 404:
            raise CifarError(f"namespace {namespace} does not exist: create it (kubectl create namespace {namespace}) "
                             "or pick another with -n") from None
        report.notes.append(f"cannot check that namespace {namespace} exists (you may not read namespaces): {api_message(exc)}")
        return
    report.ok.append(f"namespace {namespace} exists")


def _storage_classes(api, objs: list[dict], report: Report) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    claims = [o for o in objs if o["kind"] == "PersistentVolumeClaim"]
    classes = {}
    for claim in claims:
        name = claim["spec"].get("storageClassName")
        if name:  # "" binds a pre-made volume without a class; existing claims are not created at all
            classes.setdefault(name, []).append(claim["metadata"]["name"])
    for name, users in sorted(classes.items()):
        try:
            get_json(api, client.StorageV1Api(api).read_storage_class, name, passthrough=(403, 404))
        except ApiException as exc:
            if exc.status == 404:
                raise CifarError(f"storage class {name} (for PVC {', '.join(users)}) does not exist on this cluster: "
                                 "`kubectl get storageclass` lists those that do; set storage.data.storageClass and "
                                 "storage.results.storageClass to a ReadWriteMany one, or existingClaim") from None
            report.notes.append(f"cannot check storage class {name} (you may not read storage classes): {api_message(exc)}")
            continue
        report.ok.append(f"storage class {name} exists (PVC {', '.join(users)})")
    if not claims:
        report.ok.append("no PVC to create (existing claims, or another release's)")


def _access(api, namespace: str, kinds: set[str], replace: bool, report: Report) -> None:
    from kubernetes import client

    asks = [("create", kind) for kind in sorted(kinds, key=list(RESOURCES).index)] + [("get", "RayJob")]
    if replace:
        asks.append(("delete", "RayJob"))
    denied = []
    for verb, kind in asks:
        group, _, plural = RESOURCES[kind]
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {"namespace": namespace, "verb": verb, "group": group, "resource": plural}}}
        answer = get_json(api, client.AuthorizationV1Api(api).create_self_subject_access_review, review)
        if not (answer.get("status") or {}).get("allowed"):
            denied.append(f"{verb} {plural}{'.' + group if group else ''}")
    if denied:
        raise CifarError(f"you may not {', '.join(denied)} in namespace {namespace} (SelfSubjectAccessReview): ask the "
                         "cluster's admin for a Role with these verbs, or use a namespace where you have them")
    report.ok.append(f"you may {', '.join(f'{v} {RESOURCES[k][2]}' for v, k in asks)} in namespace {namespace}")


def _existing(api, namespace: str, rayjob: dict, replace: bool, report: Report) -> None:
    name = rayjob["metadata"]["name"]
    stage = rayjob["metadata"].get("labels", {}).get("app.kubernetes.io/component", "?")
    existing = read_rayjob(api, namespace, name)
    if existing is None:
        report.ok.append(f"rayjob/{name} does not exist yet")
    elif replace:
        report.notes.append(f"rayjob/{name} exists ({rayjob_state(existing)}): --replace deletes it and its Ray cluster first")
    else:
        raise CifarError(f"rayjob/{name} already exists ({rayjob_state(existing)}): `cifar status` shows it; "
                         f"to run stage {stage} again, `cifar submit {stage} --replace` deletes it first (finished "
                         "stages are skipped, interrupted ones resume from the volume)")


# --- nodes ---


def pod_groups(objs: list[dict], gpu_resource: str) -> list[PodGroup]:
    """The head (with KubeRay's autoscaler container) and each worker group of the Ray cluster the submit makes."""
    cluster = None
    for obj in objs:
        if obj["kind"] == "RayCluster":
            cluster = obj["spec"]
        elif obj["kind"] == "RayJob" and obj["spec"].get("rayClusterSpec"):
            cluster = obj["spec"]["rayClusterSpec"]
    if not cluster:
        return []
    head_extra = []
    if cluster.get("enableInTreeAutoscaling"):
        head_extra.append({"resources": (cluster.get("autoscalerOptions") or {}).get("resources") or {}})
    groups = [_group("head", cluster["headGroupSpec"]["template"], head_extra, gpu_resource)]
    for worker in cluster.get("workerGroupSpecs") or []:
        groups.append(_group(f"{worker['groupName']} worker", worker["template"], [], gpu_resource))
    return groups


def _group(name: str, template: dict, extra: list[dict], gpu_resource: str) -> PodGroup:
    spec = template["spec"]
    containers = [*spec["containers"], *extra]
    requests = [((c.get("resources") or {}).get("requests") or (c.get("resources") or {}).get("limits") or {}) for c in containers]
    limits = [((c.get("resources") or {}).get("limits") or {}) for c in containers]
    absent = []
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
             or {}).get("nodeSelectorTerms") or []
    if terms and all(any(e.get("operator") == "DoesNotExist" for e in t.get("matchExpressions") or []) for t in terms):
        absent = [e["key"] for e in terms[0].get("matchExpressions") or [] if e.get("operator") == "DoesNotExist"]
    return PodGroup(name, sum(quantity(r.get("cpu", 0)) for r in requests), sum(quantity(r.get("memory", 0)) for r in requests),
                    int(sum(quantity(lim.get(gpu_resource, 0)) for lim in limits)), dict(spec.get("nodeSelector") or {}),
                    list(spec.get("tolerations") or []), absent)


def _nodes(api, groups: list[PodGroup], gpu_resource: str, report: Report) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        nodes = get_json(api, client.CoreV1Api(api).list_node, passthrough=(403,)).get("items") or []
    except ApiException as exc:
        report.notes.append(f"cannot check the nodes (you may not list them): {api_message(exc)}")
        return
    wants_gpus = any(g.gpus for g in groups)
    advertising = [n for n in nodes if quantity(_allocatable(n).get(gpu_resource, 0)) > 0]
    silent = [n for n in nodes if _looks_like_gpu_node(n) and n not in advertising]
    cpu_only = [n for n in nodes if n not in advertising and n not in silent]

    if silent:
        names = ", ".join(_node_name(n) for n in silent)
        young = [n for n in silent if _age_s(n) < FRESH_NODE_S]
        fix = (f"GPU nodes {names} advertise no {gpu_resource}: no NVIDIA device plugin runs there (its chart schedules "
               "only on nodes labelled by node/GPU feature discovery or nvidia.com/gpu.present=true): `helm upgrade --install "
               "nvdp nvdp/nvidia-device-plugin -n nvidia-device-plugin --create-namespace --set gfd.enabled=true --set "
               "nfd.enabled=true`, or `kubectl label node NODE nvidia.com/gpu.present=true`, or NVIDIA's GPU operator "
               "(docs/kubernetes.md)")
        if wants_gpus and not advertising and len(young) < len(silent):
            raise CifarError(fix)
        report.notes.append(fix + ("; some are new, and may still be installing their driver" if young else ""))
    if wants_gpus and not advertising:
        report.notes.append(f"no node advertises {gpu_resource} now: fine if a GPU node pool scales from zero (Ray's "
                            "autoscaler asks for a GPU worker, the cluster autoscaler adds a node); otherwise GPU work "
                            "waits for pendingTimeoutSeconds and the run fails naming why")
    elif advertising:
        report.ok.append(f"{len(advertising)} node(s) advertise {gpu_resource}: {', '.join(_node_name(n) for n in advertising)}")

    for group in groups:
        kind, candidates = ("GPU", advertising) if group.gpus else ("CPU-only", cpu_only)
        candidates = [n for n in candidates if _may_host(n, group)]
        if not candidates:
            if not group.gpus:
                report.notes.append(f"no {kind} node now takes the {group.describe()} (node selector, taints, or none "
                                    "yet): fine if a node pool scales from zero, else it stays Pending")
            continue
        fitting = [n for n in candidates if _fits(n, group, gpu_resource)]
        if fitting:
            report.ok.append(f"the {group.describe()} fits {_node_name(max(fitting, key=_size))} "
                             f"({_describe_node(max(fitting, key=_size), gpu_resource)})")
            continue
        largest = max(candidates, key=_size)
        line = (f"the {group.describe()} fits no {kind} node: the largest, {_node_name(largest)}, has "
                f"{_describe_node(largest, gpu_resource)} allocatable")
        if group.gpus:  # a GPU pool's nodes are alike: a bigger one will not come from the same pool
            raise CifarError(line + "; lower ray.workers.gpu.resources (the defaults fit 8 vCPUs and 32 GiB) or use a "
                                    "bigger machine type (docs/kubernetes.md, \"Node pools\")")
        report.notes.append(line + ": fine if a pool of bigger nodes scales from zero, else lower its resources")

    _drivers(advertising + silent, report)


def _drivers(gpu_nodes: list[dict], report: Report) -> None:
    old, new, unknown = [], [], []
    for node in gpu_nodes:
        labels = _labels(node)
        major = next((labels[k] for k in DRIVER_LABELS if labels.get(k, "").isdigit()), None)
        if major is not None:
            (old if int(major) < DRIVER_FLOOR else new).append((_node_name(node), int(major)))
        elif labels.get(GKE_DRIVER_LABEL) == "default":
            report.notes.append(f"GPU node {_node_name(node)} runs GKE's default NVIDIA driver, which may be older than "
                                f"R{DRIVER_FLOOR} on this GKE version (the image needs R{DRIVER_FLOOR}+ for CUDA 13.0): "
                                "create the pool with --accelerator ...,gpu-driver-version=latest")
        else:
            unknown.append(node)
    if old:
        where = ", ".join(f"{name} (R{major})" for name, major in old)
        line = (f"NVIDIA driver older than R{DRIVER_FLOOR} on {where} (nvidia.com/cuda.driver.major): the image's "
                f"torch is a CUDA 13.0 build, so a GPU worker there fails to start or to use its GPU; upgrade the driver "
                f"(GKE: gpu-driver-version=latest; GPU operator: driver.version), or pick other nodes with gpu.nodeSelector")
        if not new and not unknown:
            raise CifarError(line)
        report.notes.append(line)
    if new:
        report.ok.append(f"NVIDIA driver R{min(m for _, m in new)}+ on {', '.join(n for n, _ in new)}")


# --- node arithmetic ---


def _cores(value: float) -> str:
    return f"{value:g}"


def _allocatable(node: dict) -> dict:
    return (node.get("status") or {}).get("allocatable") or {}


def _labels(node: dict) -> dict:
    return (node.get("metadata") or {}).get("labels") or {}


def _node_name(node: dict) -> str:
    labels = _labels(node)
    kind = labels.get("node.kubernetes.io/instance-type") or labels.get("beta.kubernetes.io/instance-type")
    return f"{node['metadata']['name']}" + (f" [{kind}]" if kind else "")


def _looks_like_gpu_node(node: dict) -> bool:
    labels = _labels(node)
    if any(key in labels and (value is None or labels[key] == value) for key, value in GPU_NODE_LABELS.items()):
        return True
    kind = labels.get("node.kubernetes.io/instance-type") or ""
    return bool(GPU_INSTANCE_TYPES.search(kind))


def _age_s(node: dict) -> float:
    created = (node.get("metadata") or {}).get("creationTimestamp")
    try:
        return (datetime.now(timezone.utc) - datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)).total_seconds()
    except (TypeError, ValueError):
        return float("inf")


def _may_host(node: dict, group: PodGroup) -> bool:
    """The node matches the group's node selector and DoesNotExist affinity, and every NoSchedule or
    NoExecute taint on it is tolerated (as the scheduler decides; cordoned nodes are out)."""
    labels = _labels(node)
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    if any(labels.get(k) != v for k, v in group.node_selector.items()) or any(k in labels for k in group.absent_labels):
        return False
    for taint in spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(_tolerates(t, taint) for t in group.tolerations):
            return False
    return True


def _tolerates(toleration: dict, taint: dict) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", "")


def _fits(node: dict, group: PodGroup, gpu_resource: str) -> bool:
    free = _allocatable(node)
    return (quantity(free.get("cpu", 0)) >= group.cpu and quantity(free.get("memory", 0)) >= group.memory
            and quantity(free.get(gpu_resource, 0)) >= group.gpus)


def _size(node: dict) -> tuple[float, float]:
    free = _allocatable(node)
    return quantity(free.get("cpu", 0)), quantity(free.get("memory", 0))


def _describe_node(node: dict, gpu_resource: str) -> str:
    free = _allocatable(node)
    gpus = quantity(free.get(gpu_resource, 0))
    return (f"{_cores(round(quantity(free.get('cpu', 0)), 3))} CPUs, {quantity(free.get('memory', 0)) / 2**30:.1f} GiB"
            + (f", {gpus:g} GPU" if gpus else ""))
