"""What `cifar submit` checks before it creates anything, so a failure leaves nothing half made.

In order: the Kubernetes version, KubeRay's kinds served, the namespace, the storage classes (one
that can give ReadWriteMany), the caller's rights (SelfSubjectAccessReview), the nodes (GPUs, device
plugin, whether each pod group fits beside the DaemonSets there, NVIDIA driver, a node autoscaler)
and the stage's RayJob. A failure is one `error:` line; what may still work out (a GPU pool that
scales from zero) is a note; each pass is an `ok` line for `--check`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cifar_core.errors import CifarError
from cifar_core.quantity import parse_quantity, quantity
from jobs import kube_api
from jobs.cluster import RESOURCES, rayjob_state, read_rayjob
from jobs.kube_api import api_message, cut, get_json

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
# Provisioners of block storage, which a node mounts alone: a ReadWriteMany claim of theirs never binds.
BLOCK_PROVISIONERS = {
    "pd.csi.storage.gke.io": "GKE: standard-rwx or premium-rwx (Filestore CSI driver: filestore.csi.storage.gke.io)",
    "kubernetes.io/gce-pd": "GKE: standard-rwx or premium-rwx (Filestore CSI driver: filestore.csi.storage.gke.io)",
    "ebs.csi.aws.com": "EKS: an EFS class (efs.csi.aws.com, the EFS CSI driver)",
    "kubernetes.io/aws-ebs": "EKS: an EFS class (efs.csi.aws.com, the EFS CSI driver)",
    "disk.csi.azure.com": "AKS: an Azure Files class with protocol nfs (file.csi.azure.com)",
    "kubernetes.io/azure-disk": "AKS: an Azure Files class with protocol nfs (file.csi.azure.com)",
    "rancher.io/local-path": "a node-local volume: an NFS provisioner (nfs.csi.k8s.io), or existingClaim",
    "cinder.csi.openstack.org": "an NFS or CephFS class (manila.csi.openstack.org, cephfs.csi.ceph.com)",
    "dobs.csi.digitalocean.com": "an NFS provisioner (nfs.csi.k8s.io)",
}
# Where a node autoscaler shows itself to a caller who may read kube-system: its status ConfigMap
# (the cluster autoscaler writes it, GKE's and AKS's managed ones too) or its Deployment; Karpenter
# (EKS Auto Mode and AKS node auto-provisioning are Karpenter) by its API group.
AUTOSCALER_STATUS = ("kube-system", "cluster-autoscaler-status")
KARPENTER_GROUP = "karpenter.sh"


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
    groups = _served(api, kinds, report)
    _namespace(api, namespace, report)
    _storage_classes(api, objs, report)
    rayjob = next(o for o in objs if o["kind"] == "RayJob")
    _access(api, namespace, kinds, replace, report)
    _nodes(api, pod_groups(objs, gpu_resource), gpu_resource, report, groups)
    _existing(api, namespace, rayjob, replace, report)
    return report


# --- the checks ---


def _version(api, report: Report) -> None:
    from kubernetes import client

    version = get_json(api, client.VersionApi(api).get_code, what="the version (/version)", schema=kube_api.VERSION)
    git_version = version.get("gitVersion") or f"v{version.get('major')}.{version.get('minor')}"
    match = re.match(r"v?(\d+)\.(\d+)", git_version)
    if not match:
        report.notes.append(f"cannot read the cluster's Kubernetes version ({git_version!r})")
        return
    if (int(match[1]), int(match[2])) < KUBERNETES_FLOOR:
        raise CifarError(f"the cluster runs Kubernetes {git_version}, older than the chart's "
                         f"{'.'.join(map(str, KUBERNETES_FLOOR))} (KubeRay 1.7.0's and the pods' fields need it): upgrade the cluster")
    report.ok.append(f"Kubernetes {git_version}")


def _served(api, kinds: set[str], report: Report) -> set[str]:
    """KubeRay's kinds are served; returns the API groups the cluster serves."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    wanted = sorted(k for k in kinds if RESOURCES[k][0] == "ray.io")
    groups = get_json(api, client.ApisApi(api).get_api_versions, what="the API groups (/apis)", schema=kube_api.API_GROUPS)
    versions = {v["version"] for g in groups.get("groups") or [] if g["name"] == "ray.io" for v in g.get("versions") or []}
    served = set()
    if "v1" in versions:
        try:
            resources = get_json(api, client.CustomObjectsApi(api).get_api_resources, "ray.io", "v1", passthrough=(404,),
                                 what="the kinds of ray.io/v1", schema=kube_api.API_RESOURCES)
            served = {r.get("kind") for r in resources.get("resources") or []}
        except ApiException:
            pass
    missing = [k for k in wanted if k not in served]
    if missing:
        raise CifarError(f"the cluster does not serve {', '.join(missing)} (ray.io/v1): install the KubeRay operator 1.7.0 "
                         "first, CRDs included (make kuberay-install; docs/kubernetes.md)")
    report.ok.append(f"the cluster serves {', '.join(wanted)} (ray.io/v1)")
    return {g["name"] for g in groups.get("groups") or []}


def _namespace(api, namespace: str, report: Report) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        get_json(api, client.CoreV1Api(api).read_namespace, namespace, passthrough=(403, 404),
                 what=f"namespace {namespace}", schema=kube_api.NAMESPACE)
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
    classes: dict[str, list[dict]] = {}
    for claim in claims:
        name = claim["spec"].get("storageClassName")
        if name:  # "" binds a pre-made volume without a class; existing claims are not created at all
            classes.setdefault(name, []).append(claim)
    for name, users in sorted(classes.items()):
        names = ", ".join(c["metadata"]["name"] for c in users)
        try:
            found = get_json(api, client.StorageV1Api(api).read_storage_class, name, passthrough=(403, 404),
                             what=f"storage class {name}", schema=kube_api.STORAGE_CLASS)
        except ApiException as exc:
            if exc.status == 404:
                raise CifarError(f"storage class {name} (for PVC {names}) does not exist on this cluster: "
                                 "`kubectl get storageclass` lists those that do; set storage.data.storageClass and "
                                 "storage.results.storageClass to a ReadWriteMany one, or existingClaim") from None
            report.notes.append(f"cannot check storage class {name} (you may not read storage classes): {api_message(exc)}")
            continue
        provisioner = found.get("provisioner") or "?"
        shared = [c["metadata"]["name"] for c in users if "ReadWriteMany" in (c["spec"].get("accessModes") or [])]
        if shared and provisioner in BLOCK_PROVISIONERS:
            raise CifarError(f"storage class {name} (provisioner {provisioner}) gives block volumes, which one node "
                             f"mounts at a time: the ReadWriteMany PVC {', '.join(shared)} would stay Pending; set "
                             f"storage.data.storageClass and storage.results.storageClass to a ReadWriteMany class "
                             f"({BLOCK_PROVISIONERS[provisioner]}; docs/kubernetes.md, step 3), or existingClaim")
        if shared and provisioner == "file.csi.azure.com" and (found.get("parameters") or {}).get("protocol") != "nfs":
            report.notes.append(f"storage class {name} mounts Azure Files over SMB, where files are not owned by uid "
                                "1000 and links fail: use a class with parameters.protocol: nfs (docs/kubernetes.md)")
        report.ok.append(f"storage class {name} exists, provisioner {provisioner} (PVC {names})")
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
        answer = get_json(api, client.AuthorizationV1Api(api).create_self_subject_access_review, review,
                          what=f"a SelfSubjectAccessReview ({verb} {plural})", schema=kube_api.ACCESS_REVIEW)
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


def _nodes(api, groups: list[PodGroup], gpu_resource: str, report: Report, api_groups: set[str] = frozenset()) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        nodes = get_json(api, client.CoreV1Api(api).list_node, passthrough=(403,), what="the nodes",
                         schema=kube_api.listing(kube_api.NODE)).get("items") or []
    except ApiException as exc:
        report.notes.append(f"cannot check the nodes (you may not list them): {api_message(exc)}")
        return
    for node in nodes:
        _check_node(node, gpu_resource)
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
        if not silent:
            _node_autoscaler(api, api_groups, report)
    elif advertising:
        report.ok.append(f"{len(advertising)} node(s) advertise {gpu_resource}: {', '.join(_node_name(n) for n in advertising)}")

    daemons = _daemonsets(api, report) if nodes else []
    for group in groups:
        _fit(group, advertising if group.gpus else cpu_only, daemons, gpu_resource, report)
    _drivers(advertising + silent, report)


def _fit(group: PodGroup, nodes: list[dict], daemons: list[Daemon], gpu_resource: str, report: Report) -> None:
    """Whether the group fits a node that may host it, beside the DaemonSets' pods that node runs."""
    kind = "GPU" if group.gpus else "CPU-only"
    candidates = [n for n in nodes if _may_host(n, group)]
    if not candidates:
        if not group.gpus:
            report.notes.append(f"no {kind} node now takes the {group.describe()} (node selector, taints, or none "
                                "yet): fine if a node pool scales from zero, else it stays Pending")
        return
    room = {_node_name(n): _room(n, daemons, gpu_resource) for n in candidates}
    largest = max(candidates, key=lambda n: room[_node_name(n)].free)
    fitting = [n for n in candidates if room[_node_name(n)].fits(group)]
    if fitting:
        best = max(fitting, key=lambda n: room[_node_name(n)].free)
        report.ok.append(f"the {group.describe()} fits {_node_name(best)} "
                         f"({_describe_node(best, room[_node_name(best)], gpu_resource)})")
        return
    line = (f"the {group.describe()} fits no {kind} node: the largest, {_node_name(largest)}, has "
            f"{_describe_node(largest, room[_node_name(largest)], gpu_resource)}")
    if group.gpus:  # a GPU pool's nodes are alike: a bigger one will not come from the same pool
        raise CifarError(line + "; lower ray.workers.gpu.resources (the defaults fit 8 vCPUs and 32 GiB) or use a "
                                "bigger machine type (docs/kubernetes.md, \"Node pools\")")
    report.notes.append(line + ": fine if a pool of bigger nodes scales from zero, else lower its resources")


def _node_autoscaler(api, api_groups: set[str], report: Report) -> None:
    """Says whether anything can add the GPU nodes that do not exist yet: a note when no node
    autoscaler shows itself (EKS has none unless one is installed)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    if KARPENTER_GROUP in api_groups:
        report.ok.append(f"a node autoscaler may add GPU nodes: Karpenter ({KARPENTER_GROUP} is served)")
        return
    namespace, name = AUTOSCALER_STATUS
    unknown = []
    try:
        get_json(api, client.CoreV1Api(api).read_namespaced_config_map, name, namespace, passthrough=(403, 404),
                 what=f"configmap {namespace}/{name}", schema=kube_api.CONFIG_MAP)
        report.ok.append(f"a node autoscaler may add GPU nodes: the cluster autoscaler ({namespace}/{name})")
        return
    except ApiException as exc:
        if exc.status == 403:
            unknown.append(f"configmap {namespace}/{name}")
    try:
        deployments = get_json(api, client.AppsV1Api(api).list_namespaced_deployment, namespace, passthrough=(403, 404),
                               what=f"the deployments of {namespace}", schema=kube_api.listing(kube_api.NAMED))
        found = [d["metadata"]["name"] for d in deployments.get("items") or [] if "autoscaler" in d["metadata"]["name"]
                 and "cluster" in d["metadata"]["name"]]
        if found:
            report.ok.append(f"a node autoscaler may add GPU nodes: deployment {namespace}/{found[0]}")
            return
    except ApiException as exc:
        if exc.status == 403:
            unknown.append(f"the deployments of {namespace}")
    if unknown:
        report.notes.append(f"cannot tell whether a node autoscaler runs (you may not read {' or '.join(unknown)}): "
                            "if none does, GPU work waits until a GPU node is added by hand")
        return
    report.notes.append(f"no node autoscaler found (no {namespace}/{name} ConfigMap, no cluster-autoscaler Deployment "
                        f"in {namespace}, no Karpenter) while no GPU node exists: nothing will add one, and GPU work "
                        "waits for pendingTimeoutSeconds; enable the cloud's autoscaling on the GPU pool, or on EKS "
                        "install Cluster Autoscaler or Karpenter (docs/kubernetes.md)")


# --- DaemonSets: pods every matching node runs beside ours ---


@dataclass
class Daemon:
    """A DaemonSet's pod as the scheduler counts it on each node it lands on."""

    name: str
    cpu: float
    memory: float
    node_selector: dict
    tolerations: list
    terms: list  # required node affinity: nodeSelectorTerms (any one must match)


# DaemonSet pods tolerate these node conditions by themselves (the DaemonSet controller adds them).
_DAEMON_TOLERATIONS = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists"} for k in (
    "not-ready", "unreachable", "disk-pressure", "memory-pressure", "pid-pressure", "unschedulable",
    "network-unavailable")]


def _daemonsets(api, report: Report) -> list[Daemon]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        listed = get_json(api, client.AppsV1Api(api).list_daemon_set_for_all_namespaces, passthrough=(403,),
                          what="the DaemonSets of every namespace", schema=kube_api.listing(kube_api.DAEMONSET))
    except ApiException as exc:
        report.notes.append(f"cannot count what DaemonSets take on each node (you may not list daemonsets in every "
                            f"namespace: {api_message(exc)}): the fit below counts the whole allocatable")
        return []
    daemons = []
    for item in listed.get("items") or []:
        spec = ((item.get("spec") or {}).get("template") or {}).get("spec") or {}
        where = f"daemonset {item['metadata'].get('namespace', '?')}/{item['metadata']['name']}"
        cpu, memory = (_pod_request(spec, key, where) for key in ("cpu", "memory"))
        terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
        daemons.append(Daemon(where.split(" ", 1)[1], cpu, memory, dict(spec.get("nodeSelector") or {}),
                              [*(spec.get("tolerations") or []), *_DAEMON_TOLERATIONS], terms))
    return daemons


def _pod_request(spec: dict, key: str, where: str) -> float:
    """What a pod of `spec` requests of `key`, as the scheduler counts it: its containers and sidecars,
    or its largest init container if more, plus the runtime's overhead."""
    def of(container: dict) -> float:
        resources = container.get("resources") or {}
        value = (resources.get("requests") or {}).get(key, (resources.get("limits") or {}).get(key, 0))
        return _amount(value, f"{where}, container {container.get('name')}, {key}")

    init = spec.get("initContainers") or []
    sidecars = sum(of(c) for c in init if c.get("restartPolicy") == "Always")
    main = sum(of(c) for c in spec.get("containers") or []) + sidecars
    largest_init = max((of(c) for c in init if c.get("restartPolicy") != "Always"), default=0.0)
    return max(main, largest_init) + _amount((spec.get("overhead") or {}).get(key, 0), f"{where}, overhead {key}")


def _runs_on(daemon: Daemon, node: dict) -> bool:
    if daemon.terms and not any(_term_matches(t, _labels(node)) for t in daemon.terms):
        return False
    return _admits(node, daemon.node_selector, daemon.tolerations)


def _admits(node: dict, node_selector: dict, tolerations: list[dict]) -> bool:
    """The node has every label of `node_selector`, and `tolerations` tolerate each of its NoSchedule
    and NoExecute taints: as the scheduler decides for a pod (a DaemonSet's, or one of ours)."""
    labels = _labels(node)
    if any(labels.get(k) != v for k, v in node_selector.items()):
        return False
    return all(taint.get("effect") not in ("NoSchedule", "NoExecute") or any(_tolerates(t, taint) for t in tolerations)
               for taint in (node.get("spec") or {}).get("taints") or [])


def _term_matches(term: dict, labels: dict) -> bool:
    """A nodeSelectorTerm's matchExpressions against the node's labels (matchFields: by name, assumed to hold)."""
    for expression in term.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        value = labels.get(key)
        if operator == "In" and value not in values or operator == "NotIn" and value in values:
            return False
        if operator == "Exists" and key not in labels or operator == "DoesNotExist" and key in labels:
            return False
        if operator in ("Gt", "Lt"):
            number, bound = parse_quantity(value), parse_quantity(values[0] if values else None)
            if number is None or bound is None or (number <= bound if operator == "Gt" else number >= bound):
                return False
    return True


def _drivers(gpu_nodes: list[dict], report: Report) -> None:
    old, new, unknown = [], [], []
    for node in gpu_nodes:
        labels = _labels(node)
        major = next((labels[k] for k in DRIVER_LABELS if k in labels), None)
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
    if (node.get("spec") or {}).get("unschedulable") or any(k in _labels(node) for k in group.absent_labels):
        return False
    return _admits(node, group.node_selector, group.tolerations)


def _tolerates(toleration: dict, taint: dict) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", "")


def _check_node(node: dict, gpu_resource: str) -> None:
    """Every number preflight reads from the node is one: a garbled quantity or driver label is named."""
    for key in ("cpu", "memory", gpu_resource):
        _amount(_allocatable(node).get(key, 0), f"node {_node_name(node)}, allocatable {key}")
    for label in DRIVER_LABELS:
        value = _labels(node).get(label)
        if value is not None and not re.fullmatch(r"[0-9]{1,6}", value):
            raise CifarError(f"node {_node_name(node)} has label {label}={_shown(value)}, not a driver version number: the "
                             "GPU feature discovery that sets it is broken, or someone else set it; fix or remove the "
                             f"label (`kubectl label node {node['metadata']['name']} {label}-`)")


def _amount(value, where: str) -> float:
    """A quantity the cluster reported, as a number; one error line naming it when it is not one."""
    parsed = parse_quantity(value)
    if parsed is None or parsed < 0:
        raise CifarError(f"{where} is {_shown(value)}, not a Kubernetes quantity (such as 3920m, 16Gi or 1): the API "
                         "server or whatever answers in its place sent a broken value; check `kubectl get node -o yaml`")
    return parsed


def _shown(value) -> str:
    return cut(repr(value), 40)


@dataclass(frozen=True)
class Room:
    """What a node has left for our pods once its DaemonSets have theirs, and what those take."""

    cpu: float
    memory: float
    gpus: float
    taken_cpu: float
    taken_memory: float

    @property
    def free(self) -> tuple[float, float]:
        return self.cpu, self.memory

    def fits(self, group: PodGroup) -> bool:
        return self.cpu >= group.cpu and self.memory >= group.memory and self.gpus >= group.gpus


def _room(node: dict, daemons: list[Daemon], gpu_resource: str) -> Room:
    free = _allocatable(node)
    mine = [d for d in daemons if _runs_on(d, node)]
    taken_cpu, taken_memory = sum(d.cpu for d in mine), sum(d.memory for d in mine)
    return Room(quantity(free.get("cpu", 0)) - taken_cpu, quantity(free.get("memory", 0)) - taken_memory,
                quantity(free.get(gpu_resource, 0)), taken_cpu, taken_memory)


def _describe_node(node: dict, room: Room, gpu_resource: str) -> str:
    """The node's allocatable resources, and what of them its DaemonSets take (`room`, as `_room` found)."""
    free = _allocatable(node)
    gpus = quantity(free.get(gpu_resource, 0))
    text = (f"{_cores(round(quantity(free.get('cpu', 0)), 3))} CPUs, {quantity(free.get('memory', 0)) / 2**30:.1f} GiB"
            + (f", {gpus:g} GPU" if gpus else "") + " allocatable")
    taken_cpu, taken_memory = room.taken_cpu, room.taken_memory
    if taken_cpu or taken_memory:
        text += f", of which its DaemonSets take {_cores(round(taken_cpu, 3))} CPUs, {taken_memory / 2**30:.1f} GiB"
    return text
