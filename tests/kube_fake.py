"""A small Kubernetes API server on 127.0.0.1 that answers as a real cluster of a given shape would,
for the project's real client code (the kubernetes package, unpatched) to talk to over TLS.

It serves what `cifar submit/status/logs` and the driver (its Watch, its standing) ask: /version,
discovery (/api, /apis, /apis/ray.io/v1 or its absence), namespaces, storage classes, nodes,
SelfSubjectAccessReviews, and create/get/list/delete and merge patch of namespaced objects (with label
and field selectors, in one namespace or all), pod logs and events. Errors are Status objects with the
codes and reasons the API server uses (404 NotFound, 409 AlreadyExists, 403 Forbidden, 415, 422). Three shapes, GKE, EKS and AKS, carry nodes,
storage classes and autoscaler markers as those clouds make them. A hostile server is one `answer`
away: HTML, any bytes, or bytes trickled one at a time (`misbehave`).

Every request is recorded (`requests`), so a test can say that nothing was created.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlparse

import pytest
import yaml

# group/version -> {plural: (Kind, namespaced)} for what a stock cluster serves (and KubeRay adds).
CORE = {"namespaces": ("Namespace", False), "nodes": ("Node", False), "pods": ("Pod", True),
        "events": ("Event", True), "serviceaccounts": ("ServiceAccount", True),
        "persistentvolumeclaims": ("PersistentVolumeClaim", True), "secrets": ("Secret", True),
        "configmaps": ("ConfigMap", True)}
GROUPS = {
    "apps/v1": {"deployments": ("Deployment", True), "daemonsets": ("DaemonSet", True)},
    "batch/v1": {"jobs": ("Job", True)},
    "rbac.authorization.k8s.io/v1": {"roles": ("Role", True), "rolebindings": ("RoleBinding", True)},
    "storage.k8s.io/v1": {"storageclasses": ("StorageClass", False)},
    "authorization.k8s.io/v1": {"selfsubjectaccessreviews": ("SelfSubjectAccessReview", False)},
}
KUBERAY = {"ray.io/v1": {"rayjobs": ("RayJob", True), "rayclusters": ("RayCluster", True),
                         "rayservices": ("RayService", True)}}
KARPENTER = {"karpenter.sh/v1": {"nodepools": ("NodePool", False), "nodeclaims": ("NodeClaim", False)}}
# Storage classes as each cloud names them, by provisioner.
PROVISIONERS = {"standard": "kubernetes.io/gce-pd", "standard-rwo": "pd.csi.storage.gke.io",
                "premium-rwo": "pd.csi.storage.gke.io", "standard-rwx": "filestore.csi.storage.gke.io",
                "premium-rwx": "filestore.csi.storage.gke.io", "gp2": "kubernetes.io/aws-ebs", "gp3": "ebs.csi.aws.com",
                "efs-sc": "efs.csi.aws.com", "default": "disk.csi.azure.com", "managed-csi": "disk.csi.azure.com",
                "azurefile-csi": "file.csi.azure.com", "azurefile-nfs": "file.csi.azure.com",
                "nfs-client": "cluster.local/nfs-subdir-external-provisioner"}
STORAGE_PARAMETERS = {"azurefile-csi": {"skuName": "Standard_LRS"},
                      "azurefile-nfs": {"protocol": "nfs", "skuName": "Premium_LRS"}}


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": details or {}, "code": code}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _matches(labels: dict, selector: str) -> bool:
    """Equality-based label selectors (`a=b,c!=d,e`), as the API server reads them."""
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: dict, path: str):
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _fields_match(obj: dict, selector: str) -> bool:
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("=")
        if str(_field(obj, key.rstrip("=")) or "") != value.lstrip("="):
            return False
    return True


class FakeKube:
    """The cluster's state and its HTTP face. Start with `with FakeKube(...) as kube:`."""

    def __init__(self, *, git_version: str, nodes: list[dict], storage_classes: list[str] = (),
                 namespaces: list[str] = ("default", "kube-system"), kuberay: bool = True, karpenter: bool = False,
                 daemonsets: list[dict] = ()):
        self.git_version = git_version
        self.served = {"v1": dict(CORE), **copy.deepcopy(GROUPS), **(copy.deepcopy(KUBERAY) if kuberay else {}),
                       **(copy.deepcopy(KARPENTER) if karpenter else {})}
        self.objects: dict[tuple[str, str, str | None], dict[str, dict]] = {}  # (gv, plural, ns) -> name -> obj
        self.requests: list[tuple[str, str]] = []
        for ns in namespaces:
            self.put("v1", "namespaces", None, {"metadata": {"name": ns}, "status": {"phase": "Active"}})
        for node in nodes:
            self.put("v1", "nodes", None, node)
        for name in storage_classes:
            self.put("storage.k8s.io/v1", "storageclasses", None, {
                "metadata": {"name": name}, "provisioner": PROVISIONERS.get(name, "example.com/provisioner"),
                "parameters": STORAGE_PARAMETERS.get(name, {}), "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer"})
        for daemonset in daemonsets:
            self.put("apps/v1", "daemonsets", daemonset["metadata"]["namespace"], daemonset)
        self.denied: set[tuple[str, str, str]] = set()  # (verb, group, resource) SelfSubjectAccessReview says no to
        self.forbidden: set[tuple[str, str]] = set()  # (method, path regex) answered 403 (RBAC the caller lacks)
        self.deletion_gets = 2  # GETs a deleted object still answers (finalizers at work); None: for ever
        self.pod_logs: dict[str, str] = {}
        self.delay_s = 0.0  # an overloaded API server: every answer waits this long
        self.misbehaving: list[tuple[str, str, Misbehaviour]] = []  # (method, path regex, what is sent instead)
        self._deleting: dict[tuple, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- state ---

    def put(self, gv: str, plural: str, namespace: str | None, obj: dict) -> dict:
        kind = self.served.get(gv, {}).get(plural, (plural.title(), True))[0]
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", gv)
        obj.setdefault("kind", kind)
        meta = obj.setdefault("metadata", {})
        if namespace:
            meta.setdefault("namespace", namespace)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta.setdefault("resourceVersion", str(len(self.requests) + 1))
        self.objects.setdefault((gv, plural, namespace), {})[meta["name"]] = obj
        return obj

    def get(self, gv: str, plural: str, namespace: str | None, name: str) -> dict | None:
        return self.objects.get((gv, plural, namespace), {}).get(name)

    def misbehave(self, pattern: str, *, method: str = "GET", body: bytes | str | object = b"",
                  status: int = 200, content_type: str = "application/json", trickle_s: float = 0.0,
                  trickle_headers: bool = False) -> None:
        """Answer requests whose path matches `pattern` with `body` (bytes as they are, anything else
        as JSON) instead of the truth, optionally a byte every `trickle_s` seconds (the headers too)."""
        if not isinstance(body, bytes):
            body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.misbehaving.append((method, pattern, Misbehaviour(status, content_type, body, trickle_s, trickle_headers)))

    def created(self) -> list[str]:
        """`METHOD path` of every request that would have changed the cluster."""
        return [f"{m} {p}" for m, p in self.requests if m in ("POST", "PUT", "PATCH", "DELETE")
                and "selfsubjectaccessreviews" not in p]

    # --- the server ---

    def __enter__(self) -> FakeKube:
        handler = type("Handler", (_Handler,), {"kube": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = server_certificate()
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path, namespace: str = "ml") -> Path:
        """A kubeconfig file whose current context is this cluster, as `gcloud`/`aws eks` write one."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url, "certificate-authority": str(server_certificate()[0])}}],
            "users": [{"name": "me", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me", "namespace": namespace}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def service_account_dir(self, path: Path, namespace: str = "ml") -> Path:
        """What Kubernetes mounts at /var/run/secrets/kubernetes.io/serviceaccount in a pod."""
        path.mkdir(parents=True, exist_ok=True)
        (path / "token").write_text("pod-token")
        (path / "ca.crt").write_text(server_certificate()[0].read_text())
        (path / "namespace").write_text(namespace)
        return path

    # --- requests ---

    def answer(self, method: str, url: str, body: dict | None, content_type: str = "application/json"
               ) -> tuple[int, object]:
        parsed = urlparse(url)
        path, query = unquote(parsed.path).rstrip("/") or "/", {k: v[0] for k, v in parse_qs(parsed.query).items()}
        with self._lock:
            self.requests.append((method, path))
            for forbidden_method, pattern in self.forbidden:
                if forbidden_method in (method, "*") and re.search(pattern, path):
                    return 403, status(403, "Forbidden", f'{path} is forbidden: User "me" cannot {method.lower()} it')
            if path == "/version":
                major, minor = self.git_version.lstrip("v").split(".")[:2]
                return 200, {"major": major, "minor": minor, "gitVersion": self.git_version, "platform": "linux/amd64"}
            if path == "/api":
                return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
            if path == "/apis":
                return 200, self._group_list()
            match = re.fullmatch(r"/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))(?P<rest>/.*)?", path)
            if not match:
                return 404, status(404, "NotFound", "the server could not find the requested resource")
            gv = match["core"] or f"{match['group']}/{match['version']}"
            if gv not in self.served:
                return 404, status(404, "NotFound", "the server could not find the requested resource")
            if not match["rest"]:
                return 200, self._resource_list(gv)
            return self._resource(method, gv, match["rest"], query, body, content_type)

    def _group_list(self) -> dict:
        groups = {}
        for gv in self.served:
            if "/" in gv:
                group, version = gv.split("/")
                groups.setdefault(group, []).append({"groupVersion": gv, "version": version})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": v, "preferredVersion": v[0]} for g, v in sorted(groups.items())]}

    def _resource_list(self, gv: str) -> dict:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
            {"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
            for plural, (kind, namespaced) in self.served[gv].items()]}

    def _resource(self, method: str, gv: str, rest: str, query: dict, body: dict | None,
                  content_type: str = "application/json") -> tuple[int, object]:
        parts = rest.strip("/").split("/")
        namespace = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        plural, name, sub = parts[0], (parts[1] if len(parts) > 1 else None), (parts[2] if len(parts) > 2 else None)
        if plural not in self.served[gv]:
            return 404, status(404, "NotFound", "the server could not find the requested resource")
        kind, namespaced = self.served[gv][plural]
        if plural == "selfsubjectaccessreviews" and method == "POST":
            attrs = body["spec"]["resourceAttributes"]
            allowed = (attrs.get("verb"), attrs.get("group", ""), attrs.get("resource")) not in self.denied
            return 201, {**body, "status": {"allowed": allowed, **({} if allowed else {"reason": "RBAC: no rule allows it"})}}
        if namespaced and namespace and not self.get("v1", "namespaces", None, namespace):
            if method == "POST" or name:
                return 404, status(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})
        group_name = gv.split("/")[0] if "/" in gv else ""
        store = self.objects.setdefault((gv, plural, namespace if namespaced else None), {})
        if method == "POST" and not name:
            new_name = body["metadata"]["name"]
            if new_name in store:
                return 409, status(409, "AlreadyExists", f'{plural}{"." + group_name if group_name else ""} "{new_name}" already exists',
                                   {"name": new_name, "group": group_name, "kind": plural})
            return 201, self.put(gv, plural, namespace if namespaced else None, body)
        if method == "GET" and not name:
            if namespaced and namespace is None:  # every namespace's, as /apis/apps/v1/daemonsets lists them
                store = {f"{ns}/{n}": o for (g, pl, ns), objs in self.objects.items() if (g, pl) == (gv, plural)
                         for n, o in objs.items()}
            items = [o for o in store.values()
                     if _matches(o["metadata"].get("labels") or {}, query.get("labelSelector"))
                     and _fields_match(o, query.get("fieldSelector"))]
            return 200, {"kind": f"{kind}List", "apiVersion": gv, "metadata": {"resourceVersion": "1"}, "items": items}
        if name not in store:
            return 404, status(404, "NotFound", f'{plural}{"." + group_name if group_name else ""} "{name}" not found',
                               {"name": name, "group": group_name, "kind": plural})
        obj = store[name]
        key = (gv, plural, namespace, name)
        if method == "GET" and sub == "log":
            text = self.pod_logs.get(name, "")
            if query.get("tailLines"):
                text = "".join(text.splitlines(keepends=True)[-int(query["tailLines"]):])
            return 200, text
        if method == "GET":
            if key in self._deleting:
                if self.deletion_gets is not None and self._deleting[key] >= self.deletion_gets:
                    del store[name], self._deleting[key]
                    return 404, status(404, "NotFound", f'{plural}.{group_name} "{name}" not found',
                                       {"name": name, "group": group_name, "kind": plural})
                self._deleting[key] += 1
            return 200, obj
        if method == "DELETE":
            obj["metadata"]["deletionTimestamp"] = _now()
            self._deleting.setdefault(key, 0)
            return 200, obj
        if method == "PATCH" and sub is None:
            return self._patch(store, name, body, content_type)
        return 405, status(405, "MethodNotAllowed", f"{method} is not supported here")

    def _patch(self, store: dict, name: str, body, content_type: str) -> tuple[int, object]:
        """A JSON merge patch (RFC 7386), as the API server applies one to a custom resource: `status`
        is the status subresource's and left alone, the annotations' size is checked (256 KiB in all)."""
        media = content_type.split(";")[0].strip()
        if media != "application/merge-patch+json":  # JSON patch and apply are not needed here
            return 415, status(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - '
                               f'accepted media types include: application/json-patch+json, '
                               f'application/merge-patch+json, application/apply-patch+yaml ("{media}" was sent)')
        if not isinstance(body, dict):
            return 400, status(400, "BadRequest", "the body of a merge patch must be a JSON object")
        obj = store[name]
        patched = merge_patch(obj, {k: v for k, v in body.items() if k != "status"})
        annotations = (patched.get("metadata") or {}).get("annotations") or {}
        if not all(isinstance(v, str) for v in annotations.values()):
            return 400, status(400, "BadRequest", "json: cannot unmarshal into Go struct field ObjectMeta.metadata."
                                                  "annotations of type string")
        size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
        if size > 256 * 1024:
            return 422, status(422, "Invalid", f'{obj["kind"]} "{name}" is invalid: metadata.annotations: Too long: '
                                               f"must have at most 262144 bytes")
        patched["metadata"]["resourceVersion"] = str(len(self.requests) + 1)
        store[name] = patched
        return 200, patched


def merge_patch(target, patch):
    """RFC 7386: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class Misbehaviour(NamedTuple):
    status: int
    content_type: str
    body: bytes
    trickle_s: float
    trickle_headers: bool


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, not after a delayed ACK

    def _serve(self) -> None:
        if self.kube.delay_s:
            time.sleep(self.kube.delay_s)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = unquote(urlparse(self.path).path).rstrip("/") or "/"
        wrong = next((m for method, pattern, m in self.kube.misbehaving
                      if method in (self.command, "*") and re.search(pattern, path)), None)
        if wrong is not None:
            self.kube.requests.append((self.command, path))
            return self._misbehave(wrong)
        code, payload = self.kube.answer(self.command, self.path, body,
                                         self.headers.get("Content-Type") or "application/json")
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _misbehave(self, wrong: Misbehaviour) -> None:
        head = (f"HTTP/1.1 {wrong.status} X\r\nContent-Type: {wrong.content_type}\r\n"
                f"Content-Length: {len(wrong.body)}\r\n\r\n").encode()
        try:
            if wrong.trickle_headers:
                self._trickle(head, wrong.trickle_s)
            else:
                self.wfile.write(head)
            self._trickle(wrong.body, wrong.trickle_s)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass  # the client gave up, as it should
        self.close_connection = True

    def _trickle(self, data: bytes, every_s: float) -> None:
        if not every_s:
            self.wfile.write(data)
            return
        for i in range(len(data)):
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(every_s)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def log_message(self, *args) -> None:  # quiet
        pass


_CERT_DIR: list[Path] = []


def server_certificate() -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made once per test session with openssl), which the
    kubeconfig and the service account's ca.crt trust, as a cluster's CA is trusted."""
    if not _CERT_DIR:
        import tempfile

        if not shutil.which("openssl"):
            pytest.skip("openssl makes the fake API server's certificate")
        folder = Path(tempfile.mkdtemp(prefix="kube-fake-"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                       check=True, capture_output=True)
        _CERT_DIR.append(folder)
    return _CERT_DIR[0] / "cert.pem", _CERT_DIR[0] / "key.pem"


# --- cluster shapes: nodes as GKE and EKS report them ---

GIB = 1024 * 1024  # in Ki


def node(name: str, *, cpu: str, memory_ki: int, labels: dict, gpus: int | None = None, taints: list | None = None,
         capacity_cpu: str, capacity_memory_ki: int, created: str = "2026-01-05T08:00:00Z") -> dict:
    """A Node as the API server returns it: capacity, allocatable (capacity less the platform's
    kube-reserved, system-reserved and eviction threshold), labels, taints, Ready."""
    allocatable = {"cpu": cpu, "memory": f"{memory_ki}Ki", "pods": "110", "ephemeral-storage": "47060071478"}
    capacity = {"cpu": capacity_cpu, "memory": f"{capacity_memory_ki}Ki", "pods": "110", "ephemeral-storage": "98831908Ki"}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = capacity["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                               "kubernetes.io/arch": "amd64", **labels},
                     "creationTimestamp": created},
        "spec": {"taints": taints} if taints else {},
        "status": {"capacity": capacity, "allocatable": allocatable,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                   "nodeInfo": {"kubeletVersion": "v1.33.5", "containerRuntimeVersion": "containerd://2.0.6",
                                "osImage": "Container-Optimized OS from Google", "kernelVersion": "6.6.97+"}},
    }


def gke_node(name: str, machine: str, pool: str, *, accelerator: str | None = None, driver: str = "latest",
             gpus: int | None = 1) -> dict:
    """A GKE node. Allocatable per GKE's reservations: CPU 6% of the first core, 1% of the next, 0.5%
    of the next 2, 0.25% above 4; memory 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8,
    6% of the next 112, plus 100 MiB eviction threshold. GPU nodes are tainted by GKE."""
    shapes = {"e2-medium": (2, 4, "940m", int(2.83 * GIB)), "e2-standard-4": (4, 16, "3920m", int(13.27 * GIB)),
              "g2-standard-8": (8, 32, "7910m", int(28.34 * GIB)), "g2-standard-16": (16, 64, "15890m", int(58.42 * GIB))}
    vcpus, gib, cpu, memory = shapes[machine]
    labels = {"cloud.google.com/gke-nodepool": pool, "node.kubernetes.io/instance-type": machine,
              "cloud.google.com/machine-family": machine.split("-")[0], "cloud.google.com/gke-os-distribution": "cos",
              "topology.kubernetes.io/zone": "us-central1-a"}
    taints = None
    if accelerator:
        labels |= {"cloud.google.com/gke-accelerator": accelerator, "cloud.google.com/gke-gpu": "true",
                   "cloud.google.com/gke-gpu-driver-version": driver}
        taints = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    return node(name, cpu=cpu, memory_ki=memory, labels=labels, gpus=gpus if accelerator else None, taints=taints,
                capacity_cpu=str(vcpus), capacity_memory_ki=gib * GIB)


def eks_node(name: str, instance: str, group: str, *, gpus: int | None = None, gfd_driver: int | None = None,
             created: str = "2026-01-05T08:00:00Z") -> dict:
    """An EKS managed node group's node (AL2023 AMI). Allocatable per the AMI's kube-reserved (CPU 6%
    of the first core, 1% of the next, 0.5% of the next 2, 0.25% above; memory 255 MiB + 11 MiB per
    pod the instance may run) and 100 MiB eviction. Managed groups are not tainted. `gpus` None: no
    device plugin runs there; `gfd_driver`: GPU feature discovery labels the node with its driver."""
    shapes = {"m6i.xlarge": (4, 16, "3920m", 14_783_000), "m6i.large": (2, 8, "1930m", 7_004_000),
              "g6.2xlarge": (8, 32, "7910m", 31_312_000), "g5.xlarge": (4, 16, "3920m", 15_155_000)}
    vcpus, gib, cpu, memory = shapes[instance]
    labels = {"eks.amazonaws.com/nodegroup": group, "node.kubernetes.io/instance-type": instance,
              "eks.amazonaws.com/capacityType": "ON_DEMAND", "topology.kubernetes.io/zone": "us-east-1a"}
    if gfd_driver is not None:
        labels |= {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.count": "1",
                   "nvidia.com/cuda.driver.major": str(gfd_driver), "nvidia.com/cuda.driver.minor": "65",
                   "nvidia.com/cuda.runtime.major": "12" if gfd_driver < 580 else "13"}
    return node(name, cpu=cpu, memory_ki=memory, labels=labels, gpus=gpus, capacity_cpu=str(vcpus),
                capacity_memory_ki=gib * GIB, created=created)


def ray_pod(name: str, cluster: str, node_type: str, group: str, *, release: str = "cifar100", stage: str = "pipeline",
            phase: str = "Running", waiting: tuple[str, str] | None = None, unschedulable: str | None = None,
            node: str | None = None, last_exit: tuple[str, str] | None = None) -> dict:
    """A pod of a RayJob's Ray cluster as KubeRay labels it (ray.io/cluster, node-type, group) on
    top of the chart's labels; `waiting`: (reason, message) of its container; `unschedulable`: the
    PodScheduled condition's message; `node`: where it is scheduled; `last_exit`: (reason, message)
    of its container's last termination."""
    labels = {"app.kubernetes.io/name": "cifar100", "app.kubernetes.io/instance": release, "app.kubernetes.io/part-of": "cifar100",
              "app.kubernetes.io/component": stage, "ray.io/cluster": cluster, "ray.io/node-type": node_type,
              "ray.io/group": group, "ray.io/is-ray-node": "yes"}
    container = "ray-head" if node_type == "head" else "ray-worker"
    status = {"phase": phase, "conditions": []}
    if unschedulable:
        status["conditions"].append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable})
    if node:
        status["conditions"].append({"type": "PodScheduled", "status": "True"})
    if waiting or phase == "Running":
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}} if waiting else {"running": {"startedAt": _now()}}
        status["containerStatuses"] = [{"name": container, "state": state, "ready": not waiting, "restartCount": 0,
                                        "image": "registry.example.com/cifar100-k8s:0.1.0", "imageID": ""}]
        if last_exit:
            status["containerStatuses"][0] |= {"restartCount": 4, "lastState": {"terminated": {
                "reason": last_exit[0], "message": last_exit[1], "exitCode": 1}}}
    spec = {"containers": [{"name": container}], **({"nodeName": node} if node else {})}
    return {"metadata": {"name": name, "labels": labels}, "spec": spec, "status": status}


def submitter_pod(name: str, *, release: str = "cifar100", stage: str = "pipeline") -> dict:
    """The pod of the Job KubeRay makes to run `ray job submit` (the chart's labels, KubeRay's origin labels)."""
    labels = {"app.kubernetes.io/name": "cifar100", "app.kubernetes.io/instance": release, "app.kubernetes.io/part-of": "cifar100",
              "app.kubernetes.io/component": stage, "ray.io/originated-from-cr-name": f"{release}-{stage}",
              "ray.io/originated-from-crd": "RayJob", "job-name": f"{release}-{stage}"}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [{"name": "ray-job-submitter"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "ray-job-submitter", "state": {"running": {"startedAt": _now()}},
                                                                  "ready": True, "restartCount": 0, "image": "x", "imageID": ""}]}}


def event(pod: str, reason: str, message: str, *, kind: str = "Warning", at: str = "2026-12-05T08:00:00Z",
          source: str | None = None, count: int = 3) -> dict:
    """A core/v1 Event about a pod, as its source records it: the scheduler (FailedScheduling, Scheduled),
    the cluster autoscaler (TriggeredScaleUp, NotTriggerScaleUp, FailedScaleUp), Karpenter (`source=
    "karpenter"`: Nominated, its own FailedScheduling) or the kubelet (the rest)."""
    if source is None:
        source = ("default-scheduler" if reason in ("FailedScheduling", "Scheduled") else
                  "cluster-autoscaler" if reason in ("TriggeredScaleUp", "NotTriggerScaleUp", "FailedScaleUp") else "kubelet")
    return {"metadata": {"name": f"{pod}.{uuid.uuid4().hex[:16]}", "namespace": "ml"},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": "ml"},
            "reason": reason, "message": message, "type": kind, "firstTimestamp": at, "lastTimestamp": at, "count": count,
            "source": {"component": source}, "reportingComponent": source}


def daemonset(name: str, namespace: str, *, cpu: str, memory: str, node_selector: dict | None = None,
              tolerations: list | None = None, affinity: dict | None = None, init: dict | None = None) -> dict:
    """A DaemonSet whose pods request `cpu` and `memory` (one container; `init`: an init container's
    requests, counted when larger), scheduled by its selector, affinity and tolerations."""
    spec = {"containers": [{"name": name, "image": f"{name}:1", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
    if init:
        spec["initContainers"] = [{"name": "init", "image": "init:1", "resources": {"requests": init}}]
    for key, value in (("nodeSelector", node_selector), ("tolerations", tolerations), ("affinity", affinity)):
        if value:
            spec[key] = value
    return {"metadata": {"name": name, "namespace": namespace, "labels": {"k8s-app": name}},
            "spec": {"selector": {"matchLabels": {"k8s-app": name}}, "template": {"metadata": {"labels": {"k8s-app": name}},
                                                                             "spec": spec}}}


# A GKE cluster's own DaemonSets, shaped as GKE deploys them (which nodes they go to); the requests are
# of the order the issue reports (up to ~0.6 CPU and 1 GiB a node in all), not measured on a cluster.
GKE_DAEMONSETS = [
    daemonset("fluentbit-gke", "kube-system", cpu="100m", memory="200Mi", tolerations=[{"operator": "Exists"}]),
    daemonset("gke-metrics-agent", "kube-system", cpu="13m", memory="120Mi", tolerations=[{"operator": "Exists"}]),
    daemonset("pdcsi-node", "kube-system", cpu="10m", memory="20Mi", tolerations=[{"operator": "Exists"}]),
    daemonset("netd", "kube-system", cpu="25m", memory="30Mi", tolerations=[{"operator": "Exists"}]),
    daemonset("nvidia-gpu-device-plugin-small-cos", "kube-system", cpu="150m", memory="80Mi",
              tolerations=[{"operator": "Exists"}],
              affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                  {"matchExpressions": [{"key": "cloud.google.com/gke-accelerator", "operator": "Exists"}]}]}}}),
    # a user's logging agent that tolerates no taint: it stays off the tainted GPU nodes
    daemonset("log-shipper", "logging", cpu="300m", memory="512Mi", init={"cpu": "500m", "memory": "64Mi"}),
]
AUTOSCALER_STATUS = {"metadata": {"name": "cluster-autoscaler-status", "namespace": "kube-system"},
                     "data": {"status": "time: 2026-12-05 08:00:00.000000000 +0000 UTC\nautoscalerStatus: Running\n"}}


def gke(*, gpu_nodes: int = 1, driver: str = "latest", gpu_machine: str = "g2-standard-8", autoscaler: bool = True,
        **kwargs) -> FakeKube:
    """GKE 1.33: a small default pool, a CPU pool of e2-standard-4, an L4 pool (scaled to `gpu_nodes`),
    the storage classes GKE makes (Filestore's when its CSI driver is on), the cluster autoscaler's
    status ConfigMap (any autoscaled pool; `autoscaler=False`: none); the namespace `ml`."""
    nodes = [gke_node("gke-c-default-pool-1a2b3c4d-x0fz", "e2-medium", "default-pool"),
             gke_node("gke-c-cpu-5e6f7a8b-k2lm", "e2-standard-4", "cpu")]
    nodes += [gke_node(f"gke-c-gpu-9c0d1e2f-{i:04d}", gpu_machine, "gpu", accelerator="nvidia-l4", driver=driver)
              for i in range(gpu_nodes)]
    return _cloud("v1.33.5-gke.1201000", nodes, ["standard", "standard-rwo", "standard-rwx", "premium-rwx"],
                  autoscaler_status=autoscaler, **kwargs)


def eks(*, gpu: str = "plugin", gfd_driver: int | None = None, gpu_created: str = "2026-01-05T08:00:00Z",
        autoscaler: str | None = None, **kwargs) -> FakeKube:
    """EKS 1.33: a CPU group of m6i.xlarge and a g6.2xlarge group. `gpu`: "plugin" (the device plugin
    advertises the GPU), "none" (no device plugin: the node advertises no nvidia.com/gpu), "absent"
    (the group is at zero nodes). EFS's storage class beside gp2; the namespace `ml`. No node
    autoscaler unless `autoscaler` names one: "cluster-autoscaler" (its Helm chart's Deployment in
    kube-system) or "karpenter" (its API group)."""
    nodes = [eks_node("ip-192-168-12-34.ec2.internal", "m6i.xlarge", "cpu")]
    if gpu != "absent":
        nodes.append(eks_node("ip-192-168-56-78.ec2.internal", "g6.2xlarge", "gpu", gpus=1 if gpu == "plugin" else None,
                              gfd_driver=gfd_driver, created=gpu_created))
    kube = _cloud("v1.33.4-eks-a737599", nodes, ["gp2", "efs-sc"], karpenter=autoscaler == "karpenter", **kwargs)
    if autoscaler == "cluster-autoscaler":
        kube.put("apps/v1", "deployments", "kube-system", {"metadata": {
            "name": "cluster-autoscaler-aws-cluster-autoscaler", "labels": {"app.kubernetes.io/name": "aws-cluster-autoscaler"}}})
    return kube


def aks_node(name: str, vm: str, pool: str, *, gpus: int | None = None) -> dict:
    """An AKS node (Ubuntu). Allocatable computed from AKS's documented reservations for 1.29+: CPU 60m
    for the first core, 100m for 2, 140m for 4, 180m for 8; memory min(20 MiB x max pods (30) + 50 MiB,
    25%), plus 100 MiB eviction threshold. Approximate, not read from a cluster. GPU pools are untainted
    unless made with --node-taints."""
    shapes = {"Standard_D4s_v5": (4, 16, "3860m"), "Standard_NC8as_T4_v3": (8, 56, "7820m")}
    vcpus, gib, cpu = shapes[vm]
    memory_ki = gib * GIB - (650 + 100) * 1024
    labels = {"kubernetes.azure.com/agentpool": pool, "agentpool": pool, "node.kubernetes.io/instance-type": vm,
              "kubernetes.azure.com/os-sku": "Ubuntu", "topology.kubernetes.io/zone": "eastus-1"}
    if gpus is not None:
        labels["kubernetes.azure.com/accelerator"] = "nvidia"
    return node(name, cpu=cpu, memory_ki=memory_ki, labels=labels, gpus=gpus, capacity_cpu=str(vcpus),
                capacity_memory_ki=gib * GIB)


def aks(*, gpu_nodes: int = 1, autoscaler: bool = True, **kwargs) -> FakeKube:
    """AKS 1.33: a system pool of Standard_D4s_v5 and a Standard_NC8as_T4_v3 GPU pool (AKS's GPU driver
    and device plugin), AKS's disk and Azure Files classes plus a user's NFS one (azurefile-nfs), the
    cluster autoscaler's status ConfigMap when a pool autoscales; the namespace `ml`."""
    nodes = [aks_node("aks-system-12345678-vmss000000", "Standard_D4s_v5", "system")]
    nodes += [aks_node(f"aks-gpu-87654321-vmss00000{i}", "Standard_NC8as_T4_v3", "gpu", gpus=1) for i in range(gpu_nodes)]
    return _cloud("v1.33.2", nodes, ["default", "managed-csi", "azurefile-csi", "azurefile-nfs"],
                  autoscaler_status=autoscaler, **kwargs)


def _cloud(git_version: str, nodes: list[dict], default_classes: list[str], *, autoscaler_status: bool = False,
           **kwargs) -> FakeKube:
    """A cloud's cluster with the namespace `ml` and its storage classes (unless `storage_classes`
    names others); `autoscaler_status`: the cluster autoscaler's ConfigMap."""
    kwargs.setdefault("storage_classes", default_classes)
    kwargs.setdefault("namespaces", ["default", "kube-system", "ml"])
    kube = FakeKube(git_version=git_version, nodes=nodes, **kwargs)
    if autoscaler_status:
        kube.put("v1", "configmaps", "kube-system", AUTOSCALER_STATUS)
    return kube


@pytest.fixture(name="use")
def kubeconfig_fixture(tmp_path, monkeypatch):
    """The fixture `use`: `use(kube)` starts a fake cluster and points KUBECONFIG at it (stopped after
    the test); returns it. A test module imports `kubeconfig_fixture` to have it."""
    started = []

    def _use(kube: FakeKube) -> FakeKube:
        started.append(kube.__enter__())
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        return kube

    yield _use
    for kube in started:
        kube.__exit__(None, None, None)
