"""`helm upgrade` to a new chart version and image tag succeeds while the previous release's objects
exist: rendered twice with Helm's engine (old and new release), no field the API server refuses to
change (a Job's pod template, a Deployment's selector, a PVC's spec, ...) differs."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import helm_objects

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cifar100"
RWX = {"storage": {"data": {"storageClass": "nfs-client"}, "results": {"storageClass": "nfs-client"}}}
KIND = yaml.safe_load((REPO / "k8s" / "kind" / "values.yaml").read_text())


def _get(obj: dict, path: str):
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _pod_spec_without_mutable(spec: dict) -> dict:
    """A Pod's spec minus what an update may change (images, activeDeadlineSeconds, tolerations)."""
    spec = copy.deepcopy(spec or {})
    for key in ("containers", "initContainers"):
        for container in spec.get(key, []):
            container.pop("image", None)
    spec.pop("activeDeadlineSeconds", None)
    spec.pop("tolerations", None)
    return spec


# What the API server (or an admission webhook the chart's objects meet) refuses to change on an
# existing object: kind -> {field path or "name": function of the object}.
IMMUTABLE = {
    "Job": {p: (lambda o, p=p: _get(o, p)) for p in (
        "spec.template", "spec.selector", "spec.completionMode", "spec.podFailurePolicy", "spec.manualSelector")},
    "Deployment": {"spec.selector": lambda o: _get(o, "spec.selector")},
    "StatefulSet": {p: (lambda o, p=p: _get(o, p)) for p in (
        "spec.selector", "spec.serviceName", "spec.volumeClaimTemplates", "spec.podManagementPolicy")},
    "PersistentVolumeClaim": {"spec (but the size)": lambda o: {k: v for k, v in o["spec"].items() if k != "resources"}},
    "Pod": {"spec (but images)": lambda o: _pod_spec_without_mutable(o["spec"])},
    # CRD rule (x-kubernetes-validations) of KubeRay v1.7.0; Kueue refuses a new queue while admitted.
    "RayJob": {"spec.managedBy": lambda o: _get(o, "spec.managedBy"),
               "queue label": lambda o: o["metadata"]["labels"].get("kueue.x-k8s.io/queue-name"),
               "elastic-job annotation": lambda o: (o["metadata"].get("annotations") or {}).get("kueue.x-k8s.io/elastic-job")},
    "RayCluster": {"spec.managedBy": lambda o: _get(o, "spec.managedBy"),
                   "queue label": lambda o: o["metadata"]["labels"].get("kueue.x-k8s.io/queue-name")},
    "ServiceAccount": {},
    "Role": {},
    # The API server refuses a RoleBinding whose roleRef changes.
    "RoleBinding": {"roleRef": lambda o: o["roleRef"]},
}


def immutable_changes(old: list[dict], new: list[dict]) -> list[str]:
    """What an upgrade from `old` to `new` would try to change and the cluster would refuse."""
    before = {(o["kind"], o["metadata"]["name"]): o for o in old}
    problems = []
    for obj in new:
        key = (obj["kind"], obj["metadata"]["name"])
        if key not in before:
            continue  # created by the upgrade
        for field, read in IMMUTABLE[obj["kind"]].items():
            if read(before[key]) != read(obj):
                problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {field} changes")
    return problems


def chart_copy(tmp_path: Path, version: str, app_version: str) -> Path:
    target = tmp_path / f"cifar100-{version}"
    shutil.copytree(CHART, target)
    meta = yaml.safe_load((target / "Chart.yaml").read_text())
    meta.update(version=version, appVersion=app_version)
    (target / "Chart.yaml").write_text(yaml.safe_dump(meta))
    return target


def render(chart: Path, values: dict) -> list[dict]:
    return helm_objects(chart, values)


SCENARIOS = {
    "default": RWX,
    "kind": KIND,
    "shared-cluster": {**RWX, "ray": {"sharedCluster": {"enabled": True}}},
    "kueue": {**RWX, "kueue": {"queueName": "q"}, "ray": {"autoscaling": {"enabled": False}}},
    "retrain-stage": {**RWX, "stage": "retrain"},
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_upgrading_chart_and_image_changes_no_immutable_field(tmp_path, scenario):
    values = SCENARIOS[scenario]
    old = render(chart_copy(tmp_path, "0.2.0", "0.1.0"), values)
    new = render(chart_copy(tmp_path, "0.3.0", "0.2.0"), {**values, "image": {**values.get("image", {}), "tag": "0.2.0-rc1"}})
    assert {o["kind"] for o in new} <= set(IMMUTABLE), "a kind without immutability rules here"
    same = {(o["kind"], o["metadata"]["name"]) for o in old} & {(o["kind"], o["metadata"]["name"]) for o in new}
    assert len(same) == len(new)  # the same objects: an upgrade in place
    assert old != new  # the image and the version labels did change
    assert not immutable_changes(old, new)


def test_the_check_catches_a_versioned_job_template():
    """Negative control: the previous chart put helm.sh/chart and the version on Job pod templates."""
    def job(version: str) -> dict:
        labels = {"app.kubernetes.io/name": "cifar100", "app.kubernetes.io/version": version}
        return {"kind": "Job", "metadata": {"name": "cifar100-gan", "labels": labels},
                "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "gan", "image": f"x:{version}"}]}}}}

    assert immutable_changes([job("0.1.0")], [job("0.2.0")]) == ["Job/cifar100-gan: spec.template changes"]
    pvc = {"kind": "PersistentVolumeClaim", "metadata": {"name": "r"}, "spec": {"storageClassName": "a", "resources": {"requests": {"storage": "1Gi"}}}}
    bigger = copy.deepcopy(pvc)
    bigger["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert immutable_changes([pvc], [bigger]) == []
    other_class = copy.deepcopy(pvc)
    other_class["spec"]["storageClassName"] = "b"
    assert immutable_changes([pvc], [other_class]) == ["PersistentVolumeClaim/r: spec (but the size) changes"]
