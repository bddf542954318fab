"""charts/cifar100 rendered by Helm's own engine (helm-python-sdk) and checked with real schemas:
Kubernetes 1.30 and 1.33 (kubernetes-validate, strict), the KubeRay v1.7.0 CRDs, and the chart's
values.schema.json. No cluster, no helm binary."""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cifar100"
CRDS = REPO.parent / "shared" / "kuberay-crds" / "v1.7.0"
KUBE_VERSIONS = ("1.30.0", "1.33.0")
RELEASE = "cifar100"

ALL_OFF = {name: {"enabled": False} for name in ("data", "tune", "retrain", "gan", "fid", "pipeline")}

# Value sets every check runs over: the defaults, each profile, and the switches.
SCENARIOS = {
    "default": {},
    "full": {"profile": "full"},
    "smoke": {"profile": "smoke"},
    "shared-cluster": {"ray": {"sharedCluster": {"enabled": True}, "job": {"backoffLimit": 0}}},
    "all-in-one": {
        "stages": {**ALL_OFF, "data": {"enabled": True}, "pipeline": {"enabled": True}},
        "profile": "smoke",
        "kueue": {"queueName": "team-a"},
        "priorityClassName": "batch-low",
        "storage": {"data": {"existingClaim": "my-data"}, "results": {"existingClaim": "my-results"}},
        "jobs": {"ttlSecondsAfterFinished": 3600},
        "ray": {"authMode": "disabled"},
        "extraEnv": [{"name": "CUBLAS_WORKSPACE_CONFIG", "value": ":4096:8"}],
        "podAnnotations": {"example.com/team": "vision"},
        "podLabels": {"team": "vision"},
        "imagePullSecrets": [{"name": "regcred"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["batch"]}]}}]}},
        "serviceAccount": {"create": False, "name": "existing-sa"},
    },
    "kind": yaml.safe_load((REPO / "k8s" / "kind" / "values.yaml").read_text()),
}


@functools.cache
def _render_cached(values_json: str, release: str) -> tuple:
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(json.loads(values_json), name=release, namespace="ml")
    return tuple(sorted(manifests.items()))


def render(values: dict | None = None, release: str = RELEASE) -> dict[str, str]:
    return dict(_render_cached(json.dumps(values or {}, sort_keys=True), release))


def objects(values: dict | None = None, release: str = RELEASE) -> list[dict]:
    out = []
    for source, text in render(values, release).items():
        if source.endswith(".yaml"):
            out.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return out


def pod_templates(obj: dict):
    """(where, PodTemplateSpec) for every pod the object will create."""
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind == "Job":
        yield "template", spec["template"]
    cluster = spec.get("rayClusterSpec") if kind == "RayJob" else spec if kind == "RayCluster" else None
    if kind == "RayJob" and "submitterPodTemplate" in spec:
        yield "submitter", spec["submitterPodTemplate"]
    if cluster:
        yield "head", cluster["headGroupSpec"]["template"]
        for group in cluster["workerGroupSpecs"]:
            yield f"worker {group['groupName']}", group["template"]


def all_pods(values: dict | None = None):
    for obj in objects(values):
        for where, template in pod_templates(obj):
            yield f"{obj['kind']}/{obj['metadata']['name']} {where}", template


def containers(pod: dict):
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


# --- lint and render ---


def test_lint_is_clean():
    report = helm.lint(str(CHART), strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_with_each_scenario_and_kube_version(scenario, version):
    report = helm.lint(str(CHART), SCENARIOS[scenario], strict=True, kube_version=f"v{version}")
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2], report


def test_default_render_has_every_stage():
    kinds = sorted((o["kind"], o["metadata"]["labels"]["app.kubernetes.io/component"]) for o in objects()
                   if "app.kubernetes.io/component" in o["metadata"]["labels"])
    assert kinds == sorted([
        ("PersistentVolumeClaim", "storage"), ("PersistentVolumeClaim", "storage"),
        ("Job", "data"), ("RayJob", "tune"), ("Job", "retrain"), ("Job", "gan"), ("Job", "fid"),
    ])
    assert [o["kind"] for o in objects()].count("ServiceAccount") == 1


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_one_resource_per_template(scenario):
    for source, text in render(SCENARIOS[scenario]).items():
        if source.endswith(".yaml"):
            assert len([d for d in yaml.safe_load_all(text) if d]) <= 1, source


def test_shared_cluster_switch_renders_a_raycluster_the_rayjob_selects():
    objs = {o["kind"]: o for o in objects(SCENARIOS["shared-cluster"])}
    cluster, rayjob = objs["RayCluster"], objs["RayJob"]
    assert rayjob["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert "rayClusterSpec" not in rayjob["spec"]
    assert "shutdownAfterJobFinishes" not in rayjob["spec"] and "backoffLimit" not in rayjob["spec"]


def test_rayjob_settings_come_from_values():
    rayjob = next(o for o in objects() if o["kind"] == "RayJob")
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] == 600
    assert spec["activeDeadlineSeconds"] == 259200
    assert spec["backoffLimit"] == 0
    assert spec["submitterConfig"] == {"backoffLimit": 2}
    assert spec["submissionMode"] == "K8sJobMode"
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["headGroupSpec"]["rayStartParams"] == {"dashboard-host": "0.0.0.0", "num-cpus": "0"}
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 4
    # KubeRay fills the submitter's command in; a command here would replace `ray job submit`.
    assert "command" not in spec["submitterPodTemplate"]["spec"]["containers"][0]
    for pod in (cluster["headGroupSpec"]["template"], workers["template"]):
        assert "command" not in pod["spec"]["containers"][0]


def test_head_and_workers_share_one_pod_template():
    cluster = next(o for o in objects() if o["kind"] == "RayJob")["spec"]["rayClusterSpec"]
    head = copy.deepcopy(cluster["headGroupSpec"]["template"]["spec"])
    worker = copy.deepcopy(cluster["workerGroupSpecs"][0]["template"]["spec"])
    for spec in (head, worker):  # the parts that differ by design
        spec.pop("initContainers", None)
        spec.pop("nodeSelector", None)
        spec.pop("tolerations", None)
        for c in spec["containers"]:
            c.pop("name"), c.pop("resources"), c.pop("ports", None)
    assert head == worker


# --- Kubernetes schemas ---


def _core_objects():
    for scenario in sorted(SCENARIOS):
        for obj in objects(SCENARIOS[scenario]):
            if not obj["apiVersion"].startswith("ray.io/"):
                yield scenario, obj


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
    assert checked


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
    for obj in ray_objects:
        assert obj["apiVersion"] == "ray.io/v1"
        errors = sorted(_crd_validator(obj["kind"]).iter_errors(obj), key=str)
        assert not errors, [f"{obj['kind']} at {list(e.absolute_path)}: {e.message}" for e in errors]
    if scenario != "all-in-one":
        assert ray_objects


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
            cluster = spec.get("rayClusterSpec")
            assert bool(cluster) != bool(spec.get("clusterSelector")), "exactly one of rayClusterSpec, clusterSelector"
            if spec.get("clusterSelector"):
                assert spec["clusterSelector"].get("ray.io/cluster")
                assert spec.get("backoffLimit", 0) == 0
            if not spec.get("shutdownAfterJobFinishes"):
                assert spec.get("ttlSecondsAfterFinished", 0) == 0
            assert spec.get("activeDeadlineSeconds", 1) > 0
        else:
            cluster = spec
        if cluster:
            for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
                assert group["template"]["spec"]["containers"]
                params = group.get("rayStartParams", {})
                assert "labels" not in params
                assert not (set(params) & {"num-cpus", "num-gpus", "memory", "resources"} and group.get("resources"))
            for group in cluster["workerGroupSpecs"]:
                assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


# --- values.schema.json and the validate helper ---


def test_values_schema_is_valid_and_accepts_the_defaults():
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    for scenario, values in SCENARIOS.items():
        with helm.Chart.load(str(CHART)) as chart:
            merged = chart.merge_values(values)
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(merged))
        assert not errors, (scenario, [e.message for e in errors])


BAD_VALUES = {
    "negative GPU count": ({"profiles": {"full": {"gpusPerPod": -1}}}, "/profiles/full/gpusPerPod"),
    "negative smoke GPU count": ({"profiles": {"smoke": {"gpusPerPod": -2}}}, "/profiles/smoke/gpusPerPod"),
    "unknown profile": ({"profile": "huge"}, "/profile"),
    "missing image": ({"image": {"repository": ""}}, "/image/repository"),
    "image removed": ({"image": None}, "image"),
    "unknown key": ({"gpus": 8}, "gpus"),
    "fractional trial count": ({"profiles": {"full": {"tune": {"numSamples": 2.5}}}}, "/profiles/full/tune/numSamples"),
    "shell in experiment name": ({"experiment": "x; rm -rf /"}, "/experiment"),
    "unknown data source": ({"profiles": {"full": {"data": {"source": "s3"}}}}, "/profiles/full/data/source"),
    "bad pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "relative mount path": ({"storage": {"data": {"mountPath": "data"}}}, "/storage/data/mountPath"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(case):
    values, where = BAD_VALUES[case]
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError) as caught:
        chart.render(values, name=RELEASE)
    assert where in str(caught.value)


VALIDATE_FAILURES = {
    "GPU trials without GPUs": (
        {"profiles": {"smoke": {"tune": {"gpusPerTrial": 0.5}}}, "profile": "smoke"}, RELEASE,
        "profiles.smoke.tune.gpusPerTrial is 0.5 but profiles.smoke.gpusPerPod is 0",
    ),
    "trial larger than a worker": (
        {"profiles": {"full": {"tune": {"gpusPerTrial": 2}}}}, RELEASE, "more than one worker's GPUs",
    ),
    "release name starting with a digit": ({}, "1st-run", "must start with a lowercase letter"),
    "volume without size or claim": ({"storage": {"results": {"size": ""}}}, RELEASE, "storage.results: set either existingClaim or size"),
    "same mount path twice": ({"storage": {"results": {"mountPath": "/data"}}}, RELEASE, "are both /data"),
    "retries on a shared cluster": (
        {"ray": {"sharedCluster": {"enabled": True}, "job": {"backoffLimit": 2}}}, RELEASE, "ray.job.backoffLimit must be 0",
    ),
}


@pytest.mark.parametrize("case", sorted(VALIDATE_FAILURES))
def test_validate_helper_fails_with_a_readable_message(case):
    values, release, message = VALIDATE_FAILURES[case]
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmRenderError) as caught:
        chart.render(values, name=release)
    assert message in str(caught.value)


# --- names, labels, pods ---


@pytest.mark.parametrize("override", [{}, {"fullnameOverride": "f" * 63}, {"nameOverride": "n" * 63}])
def test_names_fit_kubernetes_and_kuberay_limits(override):
    release = "r" + "x" * 52  # the longest release name Helm accepts
    limits = {"RayJob": 47, "RayCluster": 53}
    for values in ({}, {"ray": {"sharedCluster": {"enabled": True}}}, {"stages": {"pipeline": {"enabled": True}}}):
        objs = objects({**values, **override}, release=release)
        names = [(o["kind"], o["metadata"]["name"]) for o in objs]
        assert len({name for _, name in names}) == len(names), names
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
        queue = labels.get("kueue.x-k8s.io/queue-name")
        if obj["kind"] in ("Job", "RayJob", "RayCluster") and values.get("kueue", {}).get("queueName"):
            assert queue == values["kueue"]["queueName"]
        else:
            assert queue is None
    for _, pod in all_pods(values):
        assert pod["metadata"]["labels"]["app.kubernetes.io/component"]
        if values.get("priorityClassName"):
            assert pod["spec"]["priorityClassName"] == values["priorityClassName"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_pod_is_locked_down(scenario):
    pods = list(all_pods(SCENARIOS[scenario]))
    assert pods
    for where, pod in pods:
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["serviceAccountName"], where
        mounts_by_volume = {v["name"]: v for v in spec["volumes"]}
        for container in containers(pod):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (where, container["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (where, container["name"])
            assert sc["readOnlyRootFilesystem"] is True, (where, container["name"])
            assert sc["runAsNonRoot"] is True, (where, container["name"])
            writable = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in mounts_by_volume[writable["/tmp"]], (where, "needs a writable /tmp")
            assert "emptyDir" in mounts_by_volume[writable["/home/ray/.cache"]], where
            assert "emptyDir" in mounts_by_volume[writable["/home/ray/.ray"]], where
            assert container["resources"]["requests"] and container["resources"]["limits"], (where, container["name"])


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_volumes_are_mounted_at_the_same_paths_everywhere(scenario):
    values = SCENARIOS[scenario]
    with helm.Chart.load(str(CHART)) as chart:
        merged = chart.merge_values(values)
    paths = {"data": merged["storage"]["data"]["mountPath"], "results": merged["storage"]["results"]["mountPath"]}
    claims = {}
    for where, pod in all_pods(values):
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        for name in ("data", "results"):
            if name in volumes:
                claims.setdefault(name, set()).add(volumes[name]["persistentVolumeClaim"]["claimName"])
        for container in containers(pod):
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["CIFAR_DATA_DIR"] == paths["data"] and env["CIFAR_RESULTS_DIR"] == paths["results"], where
            writes_data = container["name"] in ("data", "pipeline")  # the data-prep and all-in-one main containers
            for mount in container["volumeMounts"]:
                if mount["name"] in paths:
                    assert mount["mountPath"] == paths[mount["name"]], where
                if mount["name"] == "data":
                    assert mount["readOnly"] is (not writes_data), (where, container["name"])
    assert all(len(c) == 1 for c in claims.values()), claims
    if values.get("storage", {}).get("data", {}).get("existingClaim"):
        assert claims["data"] == {values["storage"]["data"]["existingClaim"]}


def test_gpu_pods_ask_for_gpus_on_gpu_nodes_and_smoke_asks_for_none():
    for where, pod in all_pods(SCENARIOS["full"]):
        main = pod["spec"]["containers"][0]
        wants_gpu = main["name"] in ("ray-worker", "retrain", "gan", "fid", "pipeline")
        assert (main["resources"]["limits"].get("nvidia.com/gpu") == 1) == wants_gpu, where
        if wants_gpu:
            assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, where
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
        else:
            assert "nodeSelector" not in pod["spec"], where
    for where, pod in all_pods(SCENARIOS["smoke"]):
        for container in containers(pod):
            assert "nvidia.com/gpu" not in json.dumps(container["resources"]), where
        assert "nodeSelector" not in pod["spec"], where


def test_stages_wait_for_their_inputs():
    waits = {}
    for where, pod in all_pods():
        waits[where] = [(c["name"], c["args"]) for c in pod["spec"].get("initContainers", [])]
    by_stage = {k.split()[0].split("/")[1].removeprefix("cifar100-") + " " + k.split()[1]: v for k, v in waits.items()}
    assert by_stage["data-prep template"] == []
    assert by_stage["tune head"] == [("wait-for-data", ["cifar", "data", "verify", "/data"])]
    assert by_stage["retrain template"][1] == ("wait-for-tune", ["test", "-s", "/results/tune/report-a/top_k.json"])
    assert by_stage["gan template"] == [("wait-for-data", ["cifar", "data", "verify", "/data"])]
    assert by_stage["fid template"][1] == ("wait-for-gan", ["test", "-s", "/results/gan/dcgan/summary.json"])


def test_jobs_fail_fast_on_user_errors_and_keep_their_pods_for_logs():
    for obj in objects():
        if obj["kind"] != "Job":
            continue
        spec = obj["spec"]
        assert spec["template"]["spec"]["restartPolicy"] == "Never"
        rule = spec["podFailurePolicy"]["rules"][0]
        assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2]
        assert rule["onExitCodes"]["containerName"] == spec["template"]["spec"]["containers"][0]["name"]
        assert "ttlSecondsAfterFinished" not in spec


def test_results_pvc_survives_uninstall_and_uses_the_storage_values():
    pvcs = {o["metadata"]["name"]: o for o in objects() if o["kind"] == "PersistentVolumeClaim"}
    assert pvcs["cifar100-results"]["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert "annotations" not in pvcs["cifar100-data"]["metadata"]
    assert pvcs["cifar100-data"]["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "2Gi"}}}
    custom = {o["metadata"]["name"]: o for o in objects({"storage": {"results": {"storageClass": "fast", "size": "1Ti"}, "data": {"storageClass": "-"}}})
              if o["kind"] == "PersistentVolumeClaim"}
    assert custom["cifar100-results"]["spec"]["storageClassName"] == "fast"
    assert custom["cifar100-results"]["spec"]["resources"]["requests"]["storage"] == "1Ti"
    assert custom["cifar100-data"]["spec"]["storageClassName"] == ""


def test_notes_say_how_to_follow_and_where_results_are():
    notes = render()["cifar100/templates/NOTES.txt"]
    for fragment in ("cifar status", "cifar logs tune", "kubectl -n ml get jobs,rayjobs",
                     "/results/tune/report-a/", "/results/gan/dcgan/", "PVC cifar100-results"):
        assert fragment in notes, fragment


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
    rayjob = copy.deepcopy(next(o for o in objects() if o["kind"] == "RayJob"))
    rayjob["spec"]["submitterConfig"]["backofLimit"] = 1
    assert list(_crd_validator("RayJob").iter_errors(rayjob))
    job = copy.deepcopy(next(o for o in objects() if o["kind"] == "Job"))
    job["spec"]["template"]["spec"]["containers"][0]["comand"] = ["cifar"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.33.0", strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("path", ["k8s/results-pod.yaml", "k8s/kind/storage.yaml"])
def test_plain_manifests_pass_strict_kubernetes_schemas(path, version):
    for obj in yaml.safe_load_all((REPO / path).read_text()):
        kubernetes_validate.validate(obj, version, strict=True)


def test_kind_storage_matches_the_kind_values():
    values = SCENARIOS["kind"]
    claims = {o["metadata"]["name"]: o for o in yaml.safe_load_all((REPO / "k8s/kind/storage.yaml").read_text())
              if o["kind"] == "PersistentVolumeClaim"}
    assert set(claims) == {values["storage"]["data"]["existingClaim"], values["storage"]["results"]["existingClaim"]}
    cluster = yaml.safe_load((REPO / "k8s/kind/cluster.yaml").read_text())
    mounts = {m["containerPath"] for node in cluster["nodes"] for m in node["extraMounts"]}
    volumes = {o["spec"]["hostPath"]["path"] for o in yaml.safe_load_all((REPO / "k8s/kind/storage.yaml").read_text())
               if o["kind"] == "PersistentVolume"}
    assert volumes == mounts
    assert values["image"]["tag"] == f"{yaml.safe_load((CHART / 'Chart.yaml').read_text())['appVersion']}-cpu"
