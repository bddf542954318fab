"""charts/cifar100 rendered by Helm's own engine (helm-python-sdk) and checked with real schemas:
Kubernetes 1.30 and 1.33 (kubernetes-validate, strict), the KubeRay v1.7.0 CRDs, KubeRay's and
Kueue's admission rules, and the chart's values.schema.json. No cluster, no helm binary."""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from helpers import manifest_objects

from cifar_core.errors import CifarError
from jobs.chart import STAGES  # every stage the chart runs: the pipeline's, and the pipeline itself

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cifar100"
CRDS = REPO.parent / "shared" / "kuberay-crds" / "v1.7.0"
KUBE_VERSIONS = ("1.30.0", "1.33.0")
RELEASE = "cifar100"

# The one thing a user must add to the defaults: a storage class that provides ReadWriteMany.
RWX = {"storage": {"data": {"storageClass": "nfs-client"}, "results": {"storageClass": "nfs-client"}}}
KIND = yaml.safe_load((REPO / "k8s" / "kind" / "values.yaml").read_text())


def with_rwx(values: dict) -> dict:
    return merge(RWX, values)


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# Value sets every check runs over: the defaults, each profile, each stage, and the switches.
SCENARIOS = {
    "default": RWX,
    "full": with_rwx({"pipeline": {"profile": "full", "set": {"tune": {"num_samples": 20}, "resources": {"gan": {"gpus": 0.5}}}}}),
    "smoke-cpu-cluster": with_rwx({"pipeline": {"profile": "smoke"}, "device": "cpu", "ray": {"workers": {"gpu": {"maxReplicas": 0}}}}),
    "kind": KIND,
    **{f"stage-{s}": with_rwx({"stage": s}) for s in STAGES if s != "pipeline"},
    "shared-cluster": with_rwx({"ray": {"sharedCluster": {"enabled": True}}}),
    "stage-beside-another-release": {"stage": "gan", "storage": {"fromRelease": "study"}},
    "kueue-elastic": with_rwx({"kueue": {"queueName": "team-a", "elasticJobs": True}}),
    "spot-gpus": with_rwx({"ray": {"workers": {"gpu": {"spot": True}}}}),
    "spot-gpus-shared-cluster": with_rwx({"ray": {"workers": {"gpu": {"spot": True}}, "sharedCluster": {"enabled": True}},
                                          "gpu": {"nodeLabelKeys": ["nvidia.com/gpu.present"]}}),
    "kueue-fixed-size": with_rwx({"kueue": {"queueName": "team-a"}, "ray": {"autoscaling": {"enabled": False}}, "stage": "gan"}),
    "kueue-shared-cluster": with_rwx({"kueue": {"queueName": "team-a", "elasticJobs": True}, "ray": {"sharedCluster": {"enabled": True}}}),
    "rwo-one-node": {"storage": {"data": {"accessModes": ["ReadWriteOnce"]}, "results": {"accessModes": ["ReadWriteOnce"]}},
                     "nodeSelector": {"kubernetes.io/hostname": "gpu-box-1"}},
    "all-options": {
        "priorityClassName": "batch-low",
        "storage": {"data": {"existingClaim": "my-data"}, "results": {"existingClaim": "my-results"}, "fixOwnership": True},
        "image": {"digest": "sha256:" + "a" * 64},
        "ray": {"authMode": "disabled", "autoscaling": {"enabled": False}},
        "resultsPod": {"enabled": False},
        "extraEnv": [{"name": "CUBLAS_WORKSPACE_CONFIG", "value": ":4096:8"}],
        "podAnnotations": {"example.com/team": "vision"},
        "podLabels": {"team": "vision"},
        "imagePullSecrets": [{"name": "regcred"}],
        "gpu": {"nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"}},
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["batch"]}]}}]}},
        "serviceAccount": {"create": False, "name": "existing-sa"},
    },
}


@functools.cache
def _render_cached(values_json: str, release: str) -> tuple:
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(json.loads(values_json), name=release, namespace="ml")
    return tuple(sorted(manifests.items()))


def render(values: dict | None = None, release: str = RELEASE) -> dict[str, str]:
    return dict(_render_cached(json.dumps(values if values is not None else RWX, sort_keys=True), release))


def objects(values: dict | None = None, release: str = RELEASE) -> list[dict]:
    return manifest_objects(render(values, release))


def by_kind(values: dict | None = None) -> dict[str, dict]:
    return {o["kind"]: o for o in objects(values)}


def cluster_spec(obj: dict) -> dict | None:
    if obj["kind"] == "RayJob":
        return obj["spec"].get("rayClusterSpec")
    return obj["spec"] if obj["kind"] == "RayCluster" else None


def pod_templates(obj: dict):
    """(where, PodTemplateSpec) for every pod the object will create."""
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind in ("Job", "Deployment"):
        yield "template", spec["template"]
    if kind == "RayJob" and "submitterPodTemplate" in spec:
        yield "submitter", spec["submitterPodTemplate"]
    cluster = cluster_spec(obj)
    if cluster:
        yield "head", cluster["headGroupSpec"]["template"]
        for group in cluster["workerGroupSpecs"]:
            yield f"worker {group['groupName']}", group["template"]


def all_pods(values: dict | None = None) -> list[tuple[str, dict]]:
    """Every pod template of the render, as (where, template). Never empty: a loop over no pods
    would pass whatever it checks."""
    found = [(f"{obj['kind']}/{obj['metadata']['name']} {where}", template)
             for obj in objects(values) for where, template in pod_templates(obj)]
    assert len(found) >= 3, f"the chart rendered {len(found)} pod templates"  # head, a worker group, submitter
    return found


def containers(pod: dict):
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def groups(values: dict | None = None) -> dict[str, dict]:
    rayjob = by_kind(values)["RayJob"]
    return {g["groupName"]: g for g in rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]}


def render_error(values: dict, release: str = RELEASE, namespace: str = "default") -> str:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmRenderError) as caught:
        chart.render(values, name=release, namespace=namespace)
    return str(caught.value)


# --- lint and render ---


def test_lint_is_clean():
    """`helm lint` only logs `fail` (Helm's lint mode), so the bare defaults lint clean."""
    for values in ({}, RWX):
        report = helm.lint(str(CHART), values, strict=True)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not report["errors"] and not problems, report


def test_the_bare_defaults_are_refused_at_install_with_what_to_set():
    """No storage default binds everywhere: the chart says so instead of leaving a PVC Pending."""
    error = render_error({})
    assert "storage.data.storageClass is empty" in error and "set storage.data.storageClass to a ReadWriteMany class" in error


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_with_each_scenario_and_kube_version(scenario, version):
    report = helm.lint(str(CHART), SCENARIOS[scenario], strict=True, kube_version=f"v{version}")
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2], report


def test_default_render_is_one_rayjob_and_what_it_needs():
    kinds = sorted((o["kind"], o["metadata"]["labels"].get("app.kubernetes.io/component")) for o in objects())
    assert kinds == sorted([
        ("ServiceAccount", None), ("Role", None), ("RoleBinding", None),
        ("PersistentVolumeClaim", "storage"), ("PersistentVolumeClaim", "storage"),
        ("Deployment", "results"), ("RayJob", "pipeline"),
    ])


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_batch_jobs_and_one_rayjob(scenario):
    """Ray is the only scheduler: no Job (immutable, and each one held a GPU while it waited)."""
    objs = objects(SCENARIOS[scenario])
    assert not [o for o in objs if o["kind"] in ("Job", "CronJob", "Pod")]
    assert [o["kind"] for o in objs].count("RayJob") == 1


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_one_resource_per_template(scenario):
    for source, text in render(SCENARIOS[scenario]).items():
        if source.endswith(".yaml"):
            assert len([d for d in yaml.load_all(text, Loader=yaml.CSafeLoader) if d]) <= 1, source


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_is_its_own_rayjob(stage):
    rayjob = by_kind(with_rwx({"stage": stage}))["RayJob"]
    assert rayjob["metadata"]["name"] == f"cifar100-{stage}"
    assert rayjob["metadata"]["labels"]["app.kubernetes.io/component"] == stage
    for _, pod in pod_templates(rayjob):
        assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == stage


def test_shared_cluster_switch_renders_a_raycluster_the_rayjob_selects():
    objs = by_kind(SCENARIOS["shared-cluster"])
    cluster, rayjob = objs["RayCluster"], objs["RayJob"]
    assert rayjob["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert "rayClusterSpec" not in rayjob["spec"]
    assert "shutdownAfterJobFinishes" not in rayjob["spec"] and "backoffLimit" not in rayjob["spec"]
    assert rayjob["spec"]["preRunningDeadlineSeconds"] == 900  # waiting for the shared cluster is bounded too


def test_rayjob_settings_come_from_values():
    spec = by_kind()["RayJob"]["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] == 60  # GPUs are not kept idle for minutes after the end
    assert spec["preRunningDeadlineSeconds"] == 900
    assert spec["activeDeadlineSeconds"] == 259200
    assert spec["backoffLimit"] == 2
    assert spec["submitterConfig"] == {"backoffLimit": 20}
    assert spec["submissionMode"] == "K8sJobMode"
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["rayVersion"] == "2.60.0"
    assert cluster["headGroupSpec"]["rayStartParams"] == {"dashboard-host": "0.0.0.0", "num-cpus": "0"}
    # KubeRay fills the submitter's command in; a command here would replace `ray job submit`.
    assert "command" not in spec["submitterPodTemplate"]["spec"]["containers"][0]
    for pod in (cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])):
        assert "command" not in pod["spec"]["containers"][0]
    changed = by_kind(with_rwx({"ray": {"job": {"ttlSecondsAfterFinished": 0, "preRunningDeadlineSeconds": 600}}}))["RayJob"]
    assert changed["spec"]["ttlSecondsAfterFinished"] == 0 and changed["spec"]["preRunningDeadlineSeconds"] == 600


def test_worker_groups_scale_from_zero_with_the_autoscaler():
    cluster = by_kind()["RayJob"]["spec"]["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] == 60
    workers = groups()
    assert set(workers) == {"cpu", "gpu"}
    assert (workers["gpu"]["replicas"], workers["gpu"]["minReplicas"], workers["gpu"]["maxReplicas"]) == (0, 0, 4)
    assert (workers["cpu"]["replicas"], workers["cpu"]["minReplicas"], workers["cpu"]["maxReplicas"]) == (0, 0, 1)


def test_without_the_autoscaler_every_group_runs_at_its_maximum():
    values = with_rwx({"ray": {"autoscaling": {"enabled": False}, "workers": {"gpu": {"maxReplicas": 2}}}})
    cluster = by_kind(values)["RayJob"]["spec"]["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is False and "autoscalerOptions" not in cluster
    workers = groups(values)
    assert (workers["gpu"]["replicas"], workers["gpu"]["minReplicas"], workers["gpu"]["maxReplicas"]) == (2, 2, 2)


def test_the_driver_knows_the_worker_groups_the_autoscaler_may_add(monkeypatch):
    """While the GPU group has no pod yet, the driver must not refuse GPU work as impossible: the
    chart tells it (CIFAR_AUTOSCALED_WORKERS) which workers may come, and Python reads that."""
    from cifar_core.execution.capacity import AUTOSCALED_WORKERS_ENV, autoscaled_workers

    values = with_rwx({"ray": {"workers": {"gpu": {"gpus": 2, "maxReplicas": 3,
                                                  "resources": {"limits": {"cpu": "6", "memory": "8Gi"}}}}}})
    head = by_kind(values)["RayJob"]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    env = {e["name"]: e.get("value") for e in head["spec"]["containers"][0]["env"]}
    monkeypatch.setenv(AUTOSCALED_WORKERS_ENV, env[AUTOSCALED_WORKERS_ENV])
    assert autoscaled_workers() == [{"CPU": 3.0, "GPU": 0.0, "max": 1}, {"CPU": 6.0, "GPU": 2.0, "max": 3}]

    fixed = with_rwx({"ray": {"autoscaling": {"enabled": False}}})
    head = by_kind(fixed)["RayJob"]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    assert AUTOSCALED_WORKERS_ENV not in {e["name"] for e in head["spec"]["containers"][0]["env"]}  # all nodes are up


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_gets_the_same_worker_groups(stage):
    """The chart knows no stage: which work asks for a GPU is the stage registry's (Python); a group
    no work asks for stays at 0 pods under the autoscaler."""
    assert set(groups(with_rwx({"stage": stage}))) == {"cpu", "gpu"}
    assert set(groups(with_rwx({"stage": stage, "ray": {"workers": {"cpu": {"maxReplicas": 0}}}}))) == {"gpu"}


def test_head_and_workers_share_one_pod_template():
    cluster = by_kind()["RayJob"]["spec"]["rayClusterSpec"]
    specs = [copy.deepcopy(cluster["headGroupSpec"]["template"]["spec"])]
    specs += [copy.deepcopy(g["template"]["spec"]) for g in cluster["workerGroupSpecs"]]
    for spec in specs:  # the parts that differ by design
        for key in ("tolerations", "nodeSelector", "automountServiceAccountToken"):
            spec.pop(key, None)
        for c in spec["containers"]:
            c.pop("name"), c.pop("resources"), c.pop("ports", None)
            c["env"] = [e for e in c["env"] if e["name"] != "CIFAR_RAYJOB"]  # the head's driver: its RayJob
    assert all(spec == specs[0] for spec in specs)


# --- Kubernetes schemas ---


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_core_objects_pass_strict_kubernetes_schemas(scenario, version):
    assert version.rsplit(".", 1)[0] in {v.rsplit(".", 1)[0] for v in kubernetes_validate.utils.all_versions()}
    checked = 0
    for obj in objects(SCENARIOS[scenario]):
        if obj["apiVersion"].startswith("ray.io/"):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {list(exc.absolute_path)}: {exc.message}")
        checked += 1
    # existing claims and service account, no results pod; or another release's volumes, account and pod
    assert checked or scenario in ("all-options", "stage-beside-another-release")


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_ray_pod_templates_pass_strict_kubernetes_schemas(version):
    """A CRD's embedded pod templates are only loosely typed: check them as the Pods they become."""
    for scenario in ("default", "all-options", "kind"):
        for where, template in all_pods(SCENARIOS[scenario]):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", **template["metadata"]}, "spec": template["spec"]}
            try:
                kubernetes_validate.validate(pod, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{scenario} {where} at {list(exc.absolute_path)}: {exc.message}")


def _strict(schema):
    """A CRD's structural schema with unknown fields rejected (the API server would silently prune them)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def _crd_validator(kind: str) -> jsonschema.Draft7Validator:
    path = CRDS / f"ray.io_{kind.lower()}s.yaml"
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 25,000 lines
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


@pytest.fixture(scope="module")
def kuberay_crds():
    if not CRDS.is_dir():
        pytest.skip("../shared/kuberay-crds is absent (users' checkouts have none)")
    return CRDS


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_kuberay_objects_pass_the_v1_7_0_crds(kuberay_crds, scenario):
    ray_objects = [o for o in objects(SCENARIOS[scenario]) if o["apiVersion"].startswith("ray.io/")]
    assert ray_objects
    for obj in ray_objects:
        assert obj["apiVersion"] == "ray.io/v1"
        errors = sorted(_crd_validator(obj["kind"]).iter_errors(obj), key=str)
        assert not errors, [f"{obj['kind']} at {list(e.absolute_path)}: {e.message}" for e in errors]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_kuberay_admission_rules(scenario):
    """The operator's own checks (ValidateRayJobSpec / ValidateRayClusterSpec in KubeRay v1.7.0)."""
    dns1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    for obj in objects(SCENARIOS[scenario]):
        if obj["kind"] not in ("RayJob", "RayCluster"):
            continue
        name, spec = obj["metadata"]["name"], obj["spec"]
        assert dns1035.match(name), name
        assert len(name) <= (47 if obj["kind"] == "RayJob" else 53), name
        if obj["kind"] == "RayJob":
            assert bool(spec.get("rayClusterSpec")) != bool(spec.get("clusterSelector")), "exactly one of rayClusterSpec, clusterSelector"
            if spec.get("clusterSelector"):
                assert spec["clusterSelector"].get("ray.io/cluster")
                assert spec.get("backoffLimit", 0) == 0
            if not spec.get("shutdownAfterJobFinishes"):
                assert spec.get("ttlSecondsAfterFinished", 0) == 0
            assert spec["activeDeadlineSeconds"] > 0 and spec["preRunningDeadlineSeconds"] > 0
            assert spec["preRunningDeadlineSeconds"] < spec["activeDeadlineSeconds"]
        cluster = cluster_spec(obj)
        if not cluster:
            continue
        autoscaling = cluster.get("enableInTreeAutoscaling", False)
        for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
            assert group["template"]["spec"]["containers"]
            params = group.get("rayStartParams", {})
            assert "labels" not in params
            assert not (set(params) & {"num-cpus", "num-gpus", "memory", "resources"} and group.get("resources"))
        for group in cluster["workerGroupSpecs"]:
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
            if not autoscaling:
                assert group["minReplicas"] == group["maxReplicas"]
        if cluster.get("autoscalerOptions", {}).get("version") == "v2":
            for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
                assert group["template"]["spec"].get("restartPolicy", "Never") == "Never"


QUEUE = "kueue.x-k8s.io/queue-name"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_kueue_admission_rules(scenario):
    """Kueue's RayJob/RayCluster webhooks (v0.16+): the queue label only where Kueue manages the
    object, which it admits as a whole; never a kept cluster or an autoscaler outside an elastic job."""
    values = SCENARIOS[scenario]
    queue = values.get("kueue", {}).get("queueName")
    queued = []
    for obj in objects(values):
        labels, annotations = obj["metadata"]["labels"], obj["metadata"].get("annotations") or {}
        if QUEUE not in labels:
            continue
        assert labels[QUEUE] == queue
        assert obj["kind"] in ("RayJob", "RayCluster"), obj["kind"]
        queued.append(obj)
        spec = obj["spec"]
        if obj["kind"] == "RayJob":
            assert "clusterSelector" not in spec, "a Kueue-managed RayJob must bring its own cluster"
            assert spec["shutdownAfterJobFinishes"] is True
        cluster = cluster_spec(obj)
        if cluster.get("enableInTreeAutoscaling"):
            assert annotations.get("kueue.x-k8s.io/elastic-job") == "true"
        assert len(cluster["workerGroupSpecs"]) + 1 <= 8
        assert all(g["groupName"] != "head" for g in cluster["workerGroupSpecs"])
    if queue:  # everything that runs Ray work is admitted by Kueue, as one workload
        assert len(queued) == 1
        shared = values.get("ray", {}).get("sharedCluster", {}).get("enabled")
        assert queued[0]["kind"] == ("RayCluster" if shared else "RayJob")
    else:
        assert not queued


# --- values.schema.json and the validate helper ---


def test_values_schema_is_valid_and_accepts_every_scenario():
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    for scenario, values in SCENARIOS.items():
        with helm.Chart.load(str(CHART)) as chart:
            merged = chart.merge_values(values)
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(merged))
        assert not errors, (scenario, [e.message for e in errors])


BAD_VALUES = {
    "negative GPU count": ({"ray": {"workers": {"gpu": {"gpus": -1}}}}, "/ray/workers/gpu/gpus"),
    "unknown stage": ({"stage": "train"}, "/stage"),
    "unknown profile": ({"pipeline": {"profile": "huge"}}, "/pipeline/profile"),
    "unknown device": ({"device": "tpu"}, "/device"),
    "missing image": ({"image": {"repository": ""}}, "/image/repository"),
    "image removed": ({"image": None}, "image"),
    "unknown key": ({"gpus": 8}, "gpus"),
    "old profiles map": ({"profiles": {"full": {}}}, "profiles"),
    "fractional worker count": ({"ray": {"workers": {"gpu": {"maxReplicas": 2.5}}}}, "/ray/workers/gpu/maxReplicas"),
    "the removed per-stage flags": ({"stages": {"gan": {"args": {"steps": 10}}}}, "stages"),
    "flag name with a dash prefix": ({"check": {"args": {"--model": "cnn6"}}}, "invalid propertyName '--model'"),
    "a map as a flag value": ({"check": {"args": {"model": {"a": 1}}}}, "/check/args/model"),
    "setting key with a space": ({"pipeline": {"set": {"tune": {"num samples": 2}}}}, "/pipeline/set/tune"),
    "allow synthetic as a word": ({"pipeline": {"allowSynthetic": "yes"}}, "/pipeline/allowSynthetic"),
    "bad pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "relative mount path": ({"storage": {"data": {"mountPath": "data"}}}, "/storage/data/mountPath"),
    "unknown access mode": ({"storage": {"data": {"accessModes": ["ReadWriteAll"]}}}, "/storage/data/accessModes/0"),
    "zero pre-running deadline": ({"ray": {"job": {"preRunningDeadlineSeconds": 0}}}, "/ray/job/preRunningDeadlineSeconds"),
    "spot as a word": ({"ray": {"workers": {"gpu": {"spot": "yes"}}}}, "/ray/workers/gpu/spot"),
    "spot on the CPU workers": ({"ray": {"workers": {"cpu": {"spot": True}}}}, "spot"),
    "digest without algorithm": ({"image": {"digest": "abc"}}, "/image/digest"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(case):
    values, where = BAD_VALUES[case]
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError) as caught:
        chart.render(with_rwx(values) if values.get("image", {}) is not None else values, name=RELEASE)
    assert where in str(caught.value)


VALIDATE_FAILURES = {
    "RWX on the default class": ({}, "storage.data.storageClass is empty"),
    "RWX on the default class, results": (
        {"storage": {"data": {"existingClaim": "d"}}}, "set storage.results.storageClass to a ReadWriteMany class"),
    "RWO mounted by several nodes": (
        with_rwx({"storage": {"results": {"accessModes": ["ReadWriteOnce"]}}}),
        'storage.results.accessModes is ["ReadWriteOnce"], but the Ray head, the Ray workers and the results pod mount the volume'),
    "RWO pod": (with_rwx({"storage": {"data": {"accessModes": ["ReadWriteOncePod"]}}}), "ReadWriteOncePod lets one pod mount"),
    "volume without size or claim": (with_rwx({"storage": {"results": {"size": ""}}}), "storage.results: set either existingClaim or size"),
    "same mount path twice": (with_rwx({"storage": {"results": {"mountPath": "/data"}}}), "are both /data"),
    "release name starting with a digit": ({**RWX, "_release": "1st-run"}, "must start with a lowercase letter"),
    "GPU group without GPUs": (with_rwx({"ray": {"workers": {"gpu": {"gpus": 0}}}}), "ray.workers.gpu.gpus is 0"),
    "no worker group at all": (
        with_rwx({"device": "cpu", "ray": {"workers": {"gpu": {"maxReplicas": 0}, "cpu": {"maxReplicas": 0}}}}), "both 0"),
    "kept cluster in a queue": (
        with_rwx({"kueue": {"queueName": "q", "elasticJobs": True}, "ray": {"job": {"shutdownAfterJobFinishes": False}}}),
        'ray.job.shutdownAfterJobFinishes is false but kueue.queueName is "q"'),
    "autoscaler in a queue without elastic jobs": (
        with_rwx({"kueue": {"queueName": "q"}}), "set kueue.elasticJobs=true"),
    "spot without GPU workers": (
        with_rwx({"device": "cpu", "ray": {"workers": {"gpu": {"maxReplicas": 0, "spot": True}}}}),
        "ray.workers.gpu.spot is true but there are no GPU workers"),
    "a namespace that is not a name": ({**RWX, "_namespace": "ns;id"}, 'namespace "ns;id" is not a Kubernetes namespace name'),
    "beside itself": (with_rwx({"storage": {"fromRelease": RELEASE}}), "storage.fromRelease is this release (cifar100)"),
    "a word needing quotes on an old Ray": (
        with_rwx({"ray": {"version": "2.59.0"}, "stage": "gan", "pipeline": {"set": {"gan": {"run": "a&b"}}}}),
        'the command word "gan.run=a&b" needs quoting, but ray.version is 2.59.0'),
    "a NUL in a value": (with_rwx({"stage": "gan", "pipeline": {"set": {"gan": {"run": "a\x00b"}}}}), "holds a NUL character"),
}


@pytest.mark.parametrize("case", sorted(VALIDATE_FAILURES))
def test_validate_helper_fails_with_a_readable_message(case):
    values, message = VALIDATE_FAILURES[case]
    values = dict(values)
    release = values.pop("_release", RELEASE)
    namespace = values.pop("_namespace", "default")
    error = render_error(values, release, namespace)
    assert message in error
    assert "\n" not in error.strip().split(": ", 1)[-1].strip(), "one line"


def test_rwo_is_allowed_when_every_pod_is_pinned_to_one_node():
    for _, pod in all_pods(SCENARIOS["rwo-one-node"]):
        assert pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] == "gpu-box-1"


# --- names, labels, pods ---


@pytest.mark.parametrize("override", [{}, {"fullnameOverride": "f" * 63}, {"nameOverride": "n" * 63}])
def test_names_fit_kubernetes_and_kuberay_limits(override):
    release = "r" + "x" * 52  # the longest release name Helm accepts
    limits = {"RayJob": 47, "RayCluster": 53}
    for values in [{"ray": {"sharedCluster": {"enabled": True}}}, *({"stage": s} for s in STAGES)]:
        objs = objects(with_rwx({**values, **override}), release=release)
        names = [(o["kind"], o["metadata"]["name"]) for o in objs]
        assert len(set(names)) == len(names), names
        for kind, name in names:
            assert len(name) <= limits.get(kind, 63), (kind, name)
            assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name), name
        for obj in objs:
            for value in obj["metadata"]["labels"].values():
                assert len(value) <= 63


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_object_carries_the_standard_labels(scenario):
    values = SCENARIOS[scenario]
    for obj in objects(values):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "cifar100"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "cifar100"
        assert labels["app.kubernetes.io/version"]
        assert obj["metadata"]["namespace"] == "ml"
    for where, pod in all_pods(values):
        labels = pod["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"], where
        # what changes with every release stays off pod templates (some are immutable)
        assert "helm.sh/chart" not in labels and "app.kubernetes.io/version" not in labels, where
        if values.get("priorityClassName"):
            assert pod["spec"]["priorityClassName"] == values["priorityClassName"]
        if values.get("podLabels"):
            assert labels["team"] == "vision"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_pod_is_locked_down(scenario):
    values = SCENARIOS[scenario]
    pods = list(all_pods(values))
    assert pods
    for where, pod in pods:
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["serviceAccountName"], where
        # the token only where it is used: the head's autoscaler (it patches the RayCluster) and its
        # driver (it reads pod events through the chart's Role when work waits too long)
        wants_token = where.endswith(" head") and (bool(cluster_autoscaling(values)) or merged(values)["serviceAccount"]["create"])
        assert spec["automountServiceAccountToken"] is wants_token, where
        mounts_by_volume = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (where, container["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (where, container["name"])
            assert sc["readOnlyRootFilesystem"] is True, (where, container["name"])
            assert sc["runAsNonRoot"] is True, (where, container["name"])
            writable = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            for path in ("/tmp", "/home/ray/.cache", "/home/ray/.ray"):
                assert "emptyDir" in mounts_by_volume[writable[path]], (where, path)
            assert container["resources"]["requests"] and container["resources"]["limits"], (where, container["name"])
        for init in spec.get("initContainers", []):  # only the opt-in ownership fix, see below
            assert init["name"] == "fix-ownership" and values["storage"]["fixOwnership"], where


def merged(values: dict) -> dict:
    with helm.Chart.load(str(CHART)) as chart:
        return chart.merge_values(values)


def cluster_autoscaling(values: dict) -> bool:
    return merged(values)["ray"]["autoscaling"]["enabled"]


def test_autoscaler_runs_locked_down_like_the_other_containers():
    options = by_kind()["RayJob"]["spec"]["rayClusterSpec"]["autoscalerOptions"]
    assert options["securityContext"]["readOnlyRootFilesystem"] is True
    assert options["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {m["mountPath"] for m in options["volumeMounts"]} == {"/tmp", "/home/ray/.cache", "/home/ray/.ray"}
    assert options["resources"]["limits"]


def test_nfs_ownership_fix_is_opt_in_and_runs_as_root_with_chown_only():
    assert not [p for _, p in all_pods() if p["spec"].get("initContainers")]
    values = with_rwx({"storage": {"fixOwnership": True}})
    fixed = {where: p for where, p in all_pods(values) if p["spec"].get("initContainers")}
    assert list(fixed) == ["RayJob/cifar100-pipeline head"]  # it starts before anything writes
    (init,) = fixed["RayJob/cifar100-pipeline head"]["spec"]["initContainers"]
    assert init["securityContext"]["runAsUser"] == 0
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert init["securityContext"]["allowPrivilegeEscalation"] is False
    script = init["command"][-1]
    assert script.startswith("chown 1000:100 /data /results ||") and "no_root_squash" in script
    assert {m["mountPath"] for m in init["volumeMounts"]} >= {"/data", "/results"}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_volumes_are_mounted_at_the_same_paths_everywhere(scenario):
    values = SCENARIOS[scenario]
    with helm.Chart.load(str(CHART)) as chart:
        merged = chart.merge_values(values)
    paths = {"data": merged["storage"]["data"]["mountPath"], "results": merged["storage"]["results"]["mountPath"]}
    claims = {}
    for where, pod in all_pods(values):
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        ray_node = " head" in where or " worker " in where
        assert ("data" in volumes) == ray_node and ("results" in volumes) == (ray_node or "Deployment" in where), where
        for name in ("data", "results"):
            if name in volumes:
                claims.setdefault(name, set()).add(volumes[name]["persistentVolumeClaim"]["claimName"])
        for container in containers(pod):
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if env:
                assert env["CIFAR_DATA_DIR"] == paths["data"] and env["CIFAR_RESULTS_DIR"] == paths["results"], where
            for mount in container["volumeMounts"]:
                if mount["name"] in paths:
                    assert mount["mountPath"] == paths[mount["name"]], where
                    # Ray work (data preparation included) writes both; the results pod only reads
                    assert mount["readOnly"] is ("Deployment" in where), (where, mount)
    assert all(len(c) == 1 for c in claims.values()), claims
    if values.get("storage", {}).get("data", {}).get("existingClaim"):
        assert claims["data"] == {values["storage"]["data"]["existingClaim"]}


def test_gpus_only_on_gpu_workers_with_the_usual_toleration_and_no_node_selector():
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    seen = 0
    for where, pod in all_pods():
        main = pod["spec"]["containers"][0]
        gpu_worker = where.endswith("worker gpu")
        seen += gpu_worker
        assert main["resources"]["limits"].get("nvidia.com/gpu") == (1 if gpu_worker else None), where
        assert (toleration in pod["spec"].get("tolerations", [])) == gpu_worker, where
        assert "nodeSelector" not in pod["spec"], where  # stock GKE/EKS/AKS nodes have no GPU-operator label
    assert seen == 1
    four = dict(all_pods(with_rwx({"ray": {"workers": {"gpu": {"gpus": 4}}}})))
    assert four["RayJob/cifar100-pipeline worker gpu"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 4
    picked = dict(all_pods(SCENARIOS["all-options"]))
    assert picked["RayJob/cifar100-pipeline worker gpu"]["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert "nodeSelector" not in picked["RayJob/cifar100-pipeline head"]["spec"]
    for scenario in ("kind", "smoke-cpu-cluster"):
        for where, pod in all_pods(SCENARIOS[scenario]):
            assert "nvidia.com/gpu" not in json.dumps(pod), where


def test_gpu_workers_and_task_gpus_are_separate_values():
    """Four GPUs per worker pod do not make each task ask for four: the task's share is its own setting."""
    values = with_rwx({"stage": "retrain", "ray": {"workers": {"gpu": {"gpus": 4}}},
                       "pipeline": {"set": {"resources": {"retrain": {"gpus": 1}}}}})
    rayjob = by_kind(values)["RayJob"]
    assert "--set resources.retrain.gpus=1" in rayjob["spec"]["entrypoint"]
    assert groups(values)["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 4


@pytest.mark.parametrize(("values", "message"), [
    ({"ray": {"workers": {"gpu": {"maxReplicas": 0}}}}, "device is cuda but there are no GPU workers"),
    ({"device": "cpu"}, "device is cpu but the GPU workers ask for 1 GPUs each"),
    ({"stage": "check", "device": "cpu"}, "device is cpu but the GPU workers ask for 1 GPUs each"),
])
def test_device_against_the_workers_is_checked_by_python_not_the_chart(values, message):
    """The chart renders any device; `cifar submit` (jobs.chart.render) refuses a device its workers
    contradict, before anything is created, in one line."""
    from jobs import chart as helm_chart

    assert by_kind(with_rwx(values))["RayJob"]  # Helm's engine alone renders it
    with pytest.raises(CifarError, match=message):
        helm_chart.render(with_rwx(values), release=RELEASE, chart=CHART)
    helm_chart.render(with_rwx({"device": "cpu", "ray": {"workers": {"gpu": {"maxReplicas": 0}}}}), release=RELEASE,
                      chart=CHART)


def test_results_pvc_survives_uninstall_and_uses_the_storage_values():
    pvcs = {o["metadata"]["name"]: o for o in objects() if o["kind"] == "PersistentVolumeClaim"}
    assert pvcs["cifar100-results"]["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert "annotations" not in pvcs["cifar100-data"]["metadata"]
    assert pvcs["cifar100-data"]["spec"] == {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs-client",
                                             "resources": {"requests": {"storage": "2Gi"}}}
    custom = {o["metadata"]["name"]: o for o in objects(merge(RWX, {"storage": {"results": {"storageClass": "fast", "size": "1Ti"}, "data": {"storageClass": "-"}}}))
              if o["kind"] == "PersistentVolumeClaim"}
    assert custom["cifar100-results"]["spec"]["storageClassName"] == "fast"
    assert custom["cifar100-results"]["spec"]["resources"]["requests"]["storage"] == "1Ti"
    assert custom["cifar100-data"]["spec"]["storageClassName"] == ""
    assert not [o for o in objects(SCENARIOS["all-options"]) if o["kind"] == "PersistentVolumeClaim"]


def test_results_pod_is_built_from_the_values():
    deployment = by_kind(merge(SCENARIOS["all-options"], {"resultsPod": {"enabled": True}}))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (main,) = pod["containers"]
    assert main["image"] == "cifar100-k8s@sha256:" + "a" * 64
    assert {v["name"]: v for v in pod["volumes"]}["results"]["persistentVolumeClaim"] == {"claimName": "my-results", "readOnly": True}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}] and pod["serviceAccountName"] == "existing-sa"
    assert "nvidia.com/gpu" not in json.dumps(pod)
    assert main["readinessProbe"]["exec"]["command"] == ["test", "-d", "/results"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two pods on a pinned RWO volume
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert "Deployment" not in by_kind(SCENARIOS["all-options"])


def test_notes_say_how_to_follow_and_how_to_get_the_report():
    notes = render()["cifar100/templates/NOTES.txt"]
    for fragment in ("cifar status -n ml", "cifar logs pipeline -n ml", "kubectl -n ml get rayjob cifar100-pipeline",
                     "cifar pipeline --profile full --device cuda", "PVC cifar100-results",
                     "kubectl -n ml exec deploy/cifar100-results -- tar -C /results -cf - report | tar -xf -"):
        assert fragment in notes, fragment
    assert "tar" not in render(SCENARIOS["all-options"])["cifar100/templates/NOTES.txt"]


# --- documentation of the values ---


def test_every_value_is_documented_for_helm_docs():
    """Every leaf key of values.yaml has a `# --` comment above it or above one of its parents."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    keys = []  # (line number, indent, key, has a value on its line, `# --` right above)
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)(-\s+)?([A-Za-z0-9_.-]+):(.*)$", line)
        if not match or line.strip().startswith("#"):
            continue
        indent = len(match.group(1)) + len(match.group(2) or "")
        value = match.group(4).split(" #")[0].strip()
        above, j = [], i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            above.append(lines[j].strip())
            j -= 1
        keys.append((i + 1, indent, match.group(3), bool(value), any(c.startswith("# --") for c in above)))
    undocumented, parents = [], []  # parents: (indent, documented)
    for n, (lineno, indent, key, has_value, doc) in enumerate(keys):
        while parents and parents[-1][0] >= indent:
            parents.pop()
        documented = doc or any(d for _, d in parents)
        is_leaf = has_value or n + 1 == len(keys) or keys[n + 1][1] <= indent
        if is_leaf and not documented:
            undocumented.append(f"values.yaml:{lineno} {key}")
        parents.append((indent, documented))
    assert not undocumented, undocumented


def test_the_schema_checks_catch_a_typo(kuberay_crds):
    """Negative controls: a misspelt field fails both checks above."""
    rayjob = copy.deepcopy(by_kind()["RayJob"])
    rayjob["spec"]["preRuningDeadlineSeconds"] = 1
    assert list(_crd_validator("RayJob").iter_errors(rayjob))
    deployment = copy.deepcopy(by_kind()["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["comand"] = ["cifar"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33.0", strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_kind_storage_passes_strict_kubernetes_schemas(version):
    for obj in yaml.safe_load_all((REPO / "k8s/kind/storage.yaml").read_text()):
        kubernetes_validate.validate(obj, version, strict=True)


def test_kind_storage_matches_the_kind_values():
    claims = {o["metadata"]["name"]: o for o in yaml.safe_load_all((REPO / "k8s/kind/storage.yaml").read_text())
              if o["kind"] == "PersistentVolumeClaim"}
    assert set(claims) == {KIND["storage"]["data"]["existingClaim"], KIND["storage"]["results"]["existingClaim"]}
    assert all("ReadWriteMany" in c["spec"]["accessModes"] for c in claims.values())
    cluster = yaml.safe_load((REPO / "k8s/kind/cluster.yaml").read_text())
    mounts = {m["containerPath"] for node in cluster["nodes"] for m in node["extraMounts"]}
    volumes = {o["spec"]["hostPath"]["path"] for o in yaml.safe_load_all((REPO / "k8s/kind/storage.yaml").read_text())
               if o["kind"] == "PersistentVolume"}
    assert volumes == mounts
    assert KIND["image"]["tag"] == f"{yaml.safe_load((CHART / 'Chart.yaml').read_text())['appVersion']}-cpu"


# --- nodes people have, and work that waits ---


def _cores(quantity) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _gib(quantity) -> float:
    text = str(quantity)
    units = {"Ki": 2**-20, "Mi": 2**-10, "Gi": 1, "Ti": 2**10}
    for unit, scale in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text) / 2**30


def _pod_asks(pod: dict, extra: list[dict] = ()) -> tuple[float, float, int]:
    """CPUs, GiB and GPUs a pod requests (the scheduler's view): its containers' requests summed."""
    containers_ = [*pod["spec"]["containers"], *extra]
    cpu = sum(_cores(c["resources"]["requests"]["cpu"]) for c in containers_)
    memory = sum(_gib(c["resources"]["requests"]["memory"]) for c in containers_)
    gpus = sum(int(c["resources"].get("limits", {}).get("nvidia.com/gpu", 0)) for c in containers_)
    return cpu, memory, gpus


def test_default_pods_fit_common_nodes():
    """The GPU worker fits a 1-GPU node with 8 vCPUs and 32 GiB, the head (with KubeRay's autoscaler
    container) and the CPU worker a 4-vCPU/16-GiB node, after system reservations and daemonsets."""
    cluster = by_kind()["RayJob"]["spec"]["rayClusterSpec"]
    autoscaler = {"resources": cluster["autoscalerOptions"]["resources"]}
    head = _pod_asks(cluster["headGroupSpec"]["template"], [autoscaler])
    workers = {g["groupName"]: _pod_asks(g["template"]) for g in cluster["workerGroupSpecs"]}
    assert workers["gpu"][0] <= 7 and workers["gpu"][1] <= 26 and workers["gpu"][2] == 1, workers["gpu"]
    for name, (cpu, memory, gpus) in {"head": head, "cpu worker": workers["cpu"]}.items():
        assert cpu <= 3.5 and memory <= 12 and gpus == 0, (name, cpu, memory)
    # Ray counts whole cores of a limit (rounded up): whole limits keep what Ray sees equal to what was asked
    for group in cluster["workerGroupSpecs"]:
        limit = group["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]
        assert _cores(limit).is_integer(), (group["groupName"], limit)


@pytest.mark.parametrize("stage", STAGES)
def test_a_single_stage_is_the_pipeline_of_that_stage_with_the_profiles_settings(stage):
    """The chart passes a stage's name and the profile's settings: no per-stage command, flag or
    default; resources come from the profile (Python), the study's settings from `pipeline.set`."""
    values = with_rwx({"stage": stage, "pipeline": {"profile": "smoke", "set": {"gan": {"run": "g7"}}}})
    words = by_kind(values)["RayJob"]["spec"]["entrypoint"].split()
    if stage == "check":
        assert words[:2] == ["cifar", "check"] and "--set" not in words
    else:
        assert words[:4] == ["cifar", "pipeline", "--profile", "smoke"] and "--set" in words
        assert words[words.index("--set") + 1] == "gan.run=g7"
        assert ("--stage" in words) == (stage != "pipeline")
        if stage != "pipeline":
            assert words[words.index("--stage") + 1] == stage
    assert not {"--cpus", "--gpus", "--cpus-per-trial", "--gpus-per-trial"} & set(words), (stage, words)


@pytest.mark.parametrize("stage", STAGES)
def test_every_command_says_how_long_its_work_may_wait(stage):
    words = by_kind(with_rwx({"stage": stage}))["RayJob"]["spec"]["entrypoint"].split()
    assert words[words.index("--pending-timeout") + 1] == "1800", words
    changed = by_kind(with_rwx({"stage": stage, "pendingTimeoutSeconds": 0}))["RayJob"]["spec"]["entrypoint"].split()
    assert changed[changed.index("--pending-timeout") + 1] == "0"  # 0: wait for ever


def test_the_head_may_read_pods_and_events_and_patch_rayjobs_of_its_namespace_and_nothing_else():
    objs = {o["kind"]: o for o in objects()}
    role, binding, account = objs["Role"], objs["RoleBinding"], objs["ServiceAccount"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list"]},
                             {"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["patch"]}]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "ml"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "ml"}]
    head = objs["RayJob"]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["serviceAccountName"] == account["metadata"]["name"] and head["automountServiceAccountToken"] is True
    # without the autoscaler the head still mounts the token, for the driver's pod events
    fixed = by_kind(with_rwx({"ray": {"autoscaling": {"enabled": False}}}))["RayJob"]
    assert fixed["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["automountServiceAccountToken"] is True
    # a service account the chart does not make gets no Role from it
    assert not {"Role", "RoleBinding", "ServiceAccount"} & {o["kind"] for o in objects(SCENARIOS["all-options"])}


@pytest.mark.parametrize("scenario", ["default", "stage-gan", "kueue-elastic", "shared-cluster", "stage-beside-another-release"])
def test_only_the_head_of_a_rayjobs_own_cluster_knows_its_rayjob(scenario):
    """$CIFAR_RAYJOB: where the driver publishes the study's standing; a shared cluster's drivers
    belong to no one RayJob, and no worker or submitter runs a driver."""
    found = {}
    for where, pod in all_pods(SCENARIOS[scenario]):
        for container in pod["spec"]["containers"]:
            found[f"{where} {container['name']}"] = [e.get("value") for e in container["env"] if e["name"] == "CIFAR_RAYJOB"]
    rayjob = by_kind(SCENARIOS[scenario])["RayJob"]["metadata"]["name"]
    heads = [where for where in found if where.startswith("RayJob/") and " head " in where]
    expected = {where: [rayjob] if where in heads else [] for where in found}
    assert found == expected
    assert bool(heads) is (scenario != "shared-cluster")


def test_pods_that_use_no_gpu_can_be_kept_off_untainted_gpu_nodes():
    absent = {"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}
    user = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["batch"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}
    for affinity in ({}, user):
        values = with_rwx({"gpu": {"nodeLabelKeys": ["nvidia.com/gpu.present"]}, "affinity": affinity})
        pods = dict(all_pods(values))
        assert pods
        for where, pod in pods.items():
            terms = (pod["spec"].get("affinity", {}).get("nodeAffinity", {})
                     .get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", []))
            if where.endswith("worker gpu"):
                assert all(absent not in t.get("matchExpressions", []) for t in terms), where
            else:  # every term (they are ORed) must keep the pod off GPU nodes
                assert terms and all(absent in t["matchExpressions"] for t in terms), where
        if affinity:
            head = pods["RayJob/cifar100-pipeline head"]["spec"]["affinity"]["nodeAffinity"]
            first, second = head["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            assert first["matchExpressions"] == [{"key": "pool", "operator": "In", "values": ["batch"]}, absent]
            assert second["matchFields"] and second["matchExpressions"] == [absent]
    assert "affinity" not in json.dumps([p for _, p in all_pods()])  # off by default


def test_the_cpus_ray_gets_are_published_as_ray_takes_them():
    """num-cpus in rayStartParams wins over the limit, as in KubeRay; else the limit as written."""
    values = with_rwx({"ray": {"workers": {"cpu": {"rayStartParams": {"num-cpus": "2"}},
                                           "gpu": {"resources": {"limits": {"cpu": "7500m", "memory": "8Gi"}}}}}})
    head = by_kind(values)["RayJob"]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    env = {e["name"]: e.get("value") for e in head["spec"]["containers"][0]["env"]}
    assert json.loads(env["CIFAR_AUTOSCALED_WORKERS"]) == [{"cpu": "2", "gpus": 0, "max": 1}, {"cpu": "7500m", "gpus": 1, "max": 4}]


def test_both_volumes_can_share_one_claim_in_two_folders():
    """One Filestore instance (1 TiB minimum each) for both volumes: the results volume uses the data
    claim the chart makes, each mounted from its own folder."""
    values = with_rwx({"storage": {"data": {"size": "1Ti", "keep": True, "subPath": "data"},
                                   "results": {"existingClaim": "cifar100-data", "subPath": "results"}}})
    assert [o["metadata"]["name"] for o in objects(values) if o["kind"] == "PersistentVolumeClaim"] == ["cifar100-data"]
    for where, pod in all_pods(values):
        volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
        if where.endswith("submitter"):  # it mounts no volume
            continue
        assert set(volumes.values()) == {"cifar100-data"}, where
        mounts = {m["name"]: m for c in containers(pod) for m in c["volumeMounts"] if m["name"] in ("data", "results")}
        if "data" in mounts:
            assert mounts["data"]["subPath"] == "data" and mounts["data"]["mountPath"] == "/data", where
        assert mounts["results"]["subPath"] == "results" and mounts["results"]["mountPath"] == "/results", where
    for bad in ("/abs", "../up", "a/../b"):
        with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError, match="subPath"):
            chart.render(with_rwx({"storage": {"data": {"subPath": bad}}}), name=RELEASE)


# --- spot GPUs, and a long study that outlives what clusters do ---

# Nodes as each cloud labels and taints them (taints as key=value:effect); GPU nodes also carry the
# taint the docs give every GPU pool.
GPU_TAINT = "nvidia.com/gpu=present:NoSchedule"
SPOT_NODES = {
    "GKE Spot VM": ({"cloud.google.com/gke-spot": "true"}, []),
    "GKE Spot VM, tainted": ({"cloud.google.com/gke-spot": "true"}, ["cloud.google.com/gke-spot=true:NoSchedule"]),
    "GKE preemptible VM": ({"cloud.google.com/gke-preemptible": "true"}, []),
    "EKS managed group, spot": ({"eks.amazonaws.com/capacityType": "SPOT"}, []),
    "Karpenter, spot": ({"karpenter.sh/capacity-type": "spot"}, []),
    "AKS spot pool": ({"kubernetes.azure.com/scalesetpriority": "spot"}, ["kubernetes.azure.com/scalesetpriority=spot:NoSchedule"]),
}
REGULAR_NODES = {  # labels only: none of them is tainted for being regular
    "GKE standard VM": {"cloud.google.com/gke-nodepool": "pool"},
    "EKS managed group, on demand": {"eks.amazonaws.com/capacityType": "ON_DEMAND"},
    "Karpenter, on demand": {"karpenter.sh/capacity-type": "on-demand"},
    "AKS regular pool": {"kubernetes.azure.com/agentpool": "pool"},
}


def _expression_holds(expression: dict, labels: dict) -> bool:
    key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
    return {"In": lambda: labels.get(key) in values, "NotIn": lambda: labels.get(key) not in values,
            "Exists": lambda: key in labels, "DoesNotExist": lambda: key not in labels}[operator]()


def _tolerated(taint: str, tolerations: list[dict]) -> bool:
    key, rest = taint.split("=", 1)
    value, effect = rest.split(":")
    return any(t.get("effect") in (None, "", effect) and (
        (t.get("operator") == "Exists" and t.get("key") in (None, key)) or (t.get("key") == key and t.get("value") == value))
        for t in tolerations)


def fits(pod: dict, labels: dict, taints: list[str]) -> bool:
    """Whether the scheduler's node checks (nodeSelector, required node affinity, taints) admit the pod
    on a node with these labels and taints, by Kubernetes' rules (terms ORed, expressions ANDed)."""
    spec = pod["spec"]
    if any(labels.get(k) != v for k, v in spec.get("nodeSelector", {}).items()):
        return False
    terms = (spec.get("affinity", {}).get("nodeAffinity", {})
             .get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms"))
    if terms and not any(all(_expression_holds(e, labels) for e in t.get("matchExpressions", [])) for t in terms):
        return False
    return all(_tolerated(taint, spec.get("tolerations", [])) for taint in taints)


def test_spot_gpus_go_to_every_clouds_spot_nodes_and_the_head_and_submitter_stay_off_them():
    spot = dict(all_pods(SCENARIOS["spot-gpus"]))
    plain = dict(all_pods())
    gpu_worker, head, submitter = (f"RayJob/cifar100-pipeline {p}" for p in ("worker gpu", "head", "submitter"))
    for name, (labels, taints) in SPOT_NODES.items():
        assert fits(spot[gpu_worker], labels, [*taints, GPU_TAINT]), name
        for where in (head, submitter):  # a spot CPU node: never the driver's or its log's
            assert not fits(spot[where], labels, []), (where, name)
        for where in ("RayJob/cifar100-pipeline worker cpu", "Deployment/cifar100-results template"):
            assert fits(spot[where], labels, taints) == (not taints), (where, name)  # as without spot
    for name, labels in REGULAR_NODES.items():
        assert not fits(spot[gpu_worker], labels, [GPU_TAINT]), name
        assert fits(spot[head], labels, []) and fits(spot[submitter], labels, []), name
        assert fits(plain[gpu_worker], labels, [GPU_TAINT]), name
    # Without the value a GPU worker takes whatever GPU node comes (an untainted spot one too).
    assert fits(plain[gpu_worker], *SPOT_NODES["EKS managed group, spot"]) and fits(plain[head], *SPOT_NODES["GKE Spot VM"])


def test_spot_keeps_the_users_placement_and_the_gpu_label_keys():
    """The spot terms are added to each of the user's required terms (ORed), never replacing them."""
    pool = {"key": "pool", "operator": "In", "values": ["batch"]}
    values = merge(SCENARIOS["spot-gpus"], {"gpu": {"nodeLabelKeys": ["nvidia.com/gpu.present"]}, "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [pool]}]}}}})
    pods = dict(all_pods(values))
    spot_labels, _ = SPOT_NODES["Karpenter, spot"]
    gpu_worker = pods["RayJob/cifar100-pipeline worker gpu"]
    assert fits(gpu_worker, {**spot_labels, "pool": "batch"}, []) and not fits(gpu_worker, spot_labels, [])
    head = pods["RayJob/cifar100-pipeline head"]
    assert fits(head, {"pool": "batch"}, []) and not fits(head, {"pool": "batch", **spot_labels}, [])
    assert not fits(head, {"pool": "batch", "nvidia.com/gpu.present": "true"}, [])


DO_NOT_EVICT = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "karpenter.sh/do-not-disrupt": "true"}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_node_autoscalers_may_not_evict_the_head_or_the_submitter(scenario):
    """Cluster Autoscaler and Karpenter remove or replace a node by evicting its pods: never the Ray
    head (the driver, the GCS) or the submitter (the driver's log) of a study; workers may go."""
    values = SCENARIOS[scenario]
    for where, pod in all_pods(values):
        annotations = pod["metadata"].get("annotations", {})
        assert (DO_NOT_EVICT.items() <= annotations.items()) == where.endswith((" head", " submitter")), where
        assert (values.get("podAnnotations") or {}).items() <= annotations.items(), where


def test_a_long_study_is_retried_on_a_new_cluster_but_never_on_a_shared_one():
    """KubeRay 1.7.0 retries a failed RayJob (backoffLimit) on a new cluster, and the submitter Job
    (submitterConfig.backoffLimit) when `ray job logs --follow` loses its stream. A shared cluster is
    not the RayJob's to replace: there KubeRay refuses a backoffLimit, and the chart renders none."""
    spec = by_kind()["RayJob"]["spec"]
    assert spec["backoffLimit"] >= 2 and spec["submitterConfig"]["backoffLimit"] >= 10
    assert spec["submissionMode"] == "K8sJobMode"  # the driver's output stays in the submitter pod's log
    shared = by_kind(SCENARIOS["spot-gpus-shared-cluster"])["RayJob"]["spec"]
    assert "backoffLimit" not in shared and shared["submitterConfig"]["backoffLimit"] >= 10
    assert by_kind(KIND)["RayJob"]["spec"]["backoffLimit"] == 0  # a smoke run stops at its first failure
    notes = "cifar100/templates/NOTES.txt"
    assert "KubeRay runs it again on a new Ray cluster, up to 2 times" in render()[notes]
    assert "runs it again" not in render(KIND)[notes] + render(SCENARIOS["spot-gpus-shared-cluster"])[notes]


# --- kind: a smoke run that fails fast, and the Docker VM it needs ---

# What runs on kind's one node besides the chart's pods, as requested (memory also its limit where one
# is set): kubeadm's control plane (kube-apiserver 250m, kube-controller-manager 200m, kube-scheduler
# 100m, etcd 100m and 100Mi), two CoreDNS pods (100m, 70Mi; limit 170Mi), kindnet (100m, 50Mi), and the
# KubeRay operator 1.7.0 (its chart's limits: 100m, 512Mi).
KIND_SYSTEM = {"cpu": 0.25 + 0.2 + 0.1 + 0.1 + 2 * 0.1 + 0.1 + 0.1, "memory_gib": (100 + 2 * 170 + 50 + 512) / 1024}


def test_kind_runs_fail_within_ten_minutes_when_a_worker_cannot_start():
    assert 0 < KIND["pendingTimeoutSeconds"] <= 600
    words = by_kind(KIND)["RayJob"]["spec"]["entrypoint"].split()
    assert words[words.index("--pending-timeout") + 1] == str(KIND["pendingTimeoutSeconds"])


def test_the_docs_give_the_docker_vm_the_kind_smoke_run_needs():
    """Every pod of the smoke run at its largest (each worker group at maxReplicas, the autoscaler
    container, submitter, results pod) plus kind's own: the CPUs their requests add up to and the
    memory their limits do. docs/kubernetes.md must state both, rounded up."""
    objs = {o["kind"]: o for o in objects(KIND)}
    cluster = objs["RayJob"]["spec"]["rayClusterSpec"]
    pods = [(cluster["headGroupSpec"]["template"]["spec"]["containers"], 1),
            ([{"resources": cluster["autoscalerOptions"]["resources"]}], 1),
            ([{"resources": objs["RayJob"]["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["resources"]}], 1),
            (objs["Deployment"]["spec"]["template"]["spec"]["containers"], 1),
            *((g["template"]["spec"]["containers"], g["maxReplicas"]) for g in cluster["workerGroupSpecs"])]
    cpu = sum(_cores(c["resources"]["requests"]["cpu"]) * n for containers_, n in pods for c in containers_)
    memory = sum(_gib(c["resources"]["limits"]["memory"]) * n for containers_, n in pods for c in containers_)
    cpus, gib = math.ceil(cpu + KIND_SYSTEM["cpu"]), math.ceil(memory + KIND_SYSTEM["memory_gib"])
    kind_docs = (REPO / "docs" / "kubernetes.md").read_text().split("## On kind")[1].split("\n## ")[0]
    assert f"at least {cpus} CPUs and {gib} GiB of memory" in kind_docs, (cpus, gib)


def test_kuberay_install_gives_a_lost_head_half_an_hour_to_come_back():
    """KubeRay 1.7.0 fails a RayJob whose dashboard has not answered for RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS
    (300 s by default: less than a new node and an image pull) and never retries that failure."""
    import subprocess

    recipe = subprocess.run(["make", "-n", "--no-print-directory", "-f", "k8s/k8s.mk", "kuberay-install"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert "--set 'env[0].name=RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS' --set-string 'env[0].value=1800'" in recipe
