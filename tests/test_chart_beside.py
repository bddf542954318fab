"""A single stage beside the pipeline, with helm: a second release (`storage.fromRelease`) runs one
stage on the first release's volumes, service account and results pod. Rendered with Helm's own
engine: the two releases share no object, so installing, upgrading or uninstalling one never
deletes or replaces the other's RayJob, and both mount the same claims."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import helm_objects

from jobs.chart import STAGES

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cifar100"
RWX = {"storage": {"data": {"storageClass": "nfs-client"}, "results": {"storageClass": "nfs-client"}}}


def render(values: dict, release: str) -> list[dict]:
    return helm_objects(CHART, values, release)


def keys(objs: list[dict]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objs}


def ray_pods(rayjob: dict):
    cluster = rayjob["spec"]["rayClusterSpec"]
    yield "head", cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster["workerGroupSpecs"]:
        yield group["groupName"], group["template"]["spec"]


def claims(pod_spec: dict) -> dict[str, str]:
    return {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod_spec["volumes"] if "persistentVolumeClaim" in v}


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "pipeline"])
def test_a_stage_release_beside_the_pipeline_shares_its_volumes_and_no_object(stage):
    study = render(RWX, "cifar100")  # helm install cifar100 charts/cifar100 (the pipeline)
    beside = render({"stage": stage, "storage": {"fromRelease": "cifar100"}}, "cifar100-stage")
    assert [o["kind"] for o in beside] == ["RayJob"], "volumes, account, RBAC and results pod are the first release's"
    assert not keys(study) & keys(beside), "helm would hand an object of one release to the other"
    (rayjob,) = beside
    assert rayjob["metadata"]["name"] == f"cifar100-stage-{stage}"
    study_claims = {o["metadata"]["name"] for o in study if o["kind"] == "PersistentVolumeClaim"}
    account = next(o["metadata"]["name"] for o in study if o["kind"] == "ServiceAccount")
    for where, pod in ray_pods(rayjob):
        assert claims(pod) == {"data": "cifar100-data", "results": "cifar100-results"}, where
        assert set(claims(pod).values()) == study_claims
        assert pod["serviceAccountName"] == account, where  # the Role the first release bound applies


def test_upgrading_the_stage_release_to_another_stage_leaves_the_pipeline_alone():
    """`helm upgrade` deletes what the old render had and the new one has not: only the stage release's own RayJob."""
    study = keys(render(RWX, "cifar100"))
    before = keys(render({"stage": "gan", "storage": {"fromRelease": "cifar100"}}, "cifar100-stage"))
    after = keys(render({"stage": "report", "storage": {"fromRelease": "cifar100"}}, "cifar100-stage"))
    assert before - after == {("RayJob", "cifar100-stage-gan")}
    assert not (before - after) & study


def test_upgrading_the_pipeline_release_to_a_stage_would_delete_the_pipeline():
    """Why the docs say: a second release, not `helm upgrade --set stage=...` of the first (this is what that does)."""
    pipeline = keys(render(RWX, "cifar100"))
    stage = keys(render({**RWX, "stage": "report"}, "cifar100"))
    assert pipeline - stage == {("RayJob", "cifar100-pipeline")}


def test_existing_claims_are_the_other_way_to_share_volumes():
    values = {"stage": "fid", "storage": {"data": {"existingClaim": "cifar100-data"}, "results": {"existingClaim": "cifar100-results"}},
              "serviceAccount": {"create": False, "name": "cifar100"}, "resultsPod": {"enabled": False}}
    beside = render(values, "other")
    assert [o["kind"] for o in beside] == ["RayJob"]
    for where, pod in ray_pods(beside[0]):
        assert claims(pod) == {"data": "cifar100-data", "results": "cifar100-results"}, where


def test_from_release_follows_the_chart_naming_of_that_release():
    """A release whose name lacks the chart name has the full name `<release>-cifar100`."""
    (rayjob,) = render({"stage": "report", "storage": {"fromRelease": "study"}}, "study-report")
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert claims(head) == {"data": "study-cifar100-data", "results": "study-cifar100-results"}
    assert head["serviceAccountName"] == "study-cifar100"
    assert {o["metadata"]["name"] for o in render(RWX, "study") if o["kind"] == "PersistentVolumeClaim"} == {
        "study-cifar100-data", "study-cifar100-results"}
