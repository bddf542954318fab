"""A peer's scanner: checkov (PyPI) on the rendered chart (framework kubernetes; the pod templates
inside RayJob and RayCluster, which checkov does not know, are also written out as the Pods KubeRay
makes of them) and on images/Dockerfile. Every failed check is fixed or skipped, with its reason,
in the one file .checkov.yaml.

checkov pins packaging<24 and Ray 2.60 needs packaging>=24.2, so checkov cannot live in the
project's virtual environment: it gets its own under build/ (made on first use, pinned), or
$CHECKOV names an installed one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import helm_objects

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cifar100"
CONFIG = REPO / ".checkov.yaml"
CHECKOV_VERSION = "3.3.30"
RWX = {"storage": {"data": {"storageClass": "nfs-client"}, "results": {"storageClass": "nfs-client"}}}

# What users install: the defaults (plus the storage class they must choose), kind, and the
# switches that change which objects and pods exist. storage.fixOwnership is left out on purpose:
# it is the one opt-in root container, and tests/test_chart.py pins its security context.
SCENARIOS = {
    "default": RWX,
    "kind": yaml.safe_load((REPO / "k8s" / "kind" / "values.yaml").read_text()),
    "kueue-shared-cluster": {**RWX, "kueue": {"queueName": "q", "elasticJobs": True}, "ray": {"sharedCluster": {"enabled": True}}},
    "retrain-fixed-size": {**RWX, "stage": "retrain", "ray": {"autoscaling": {"enabled": False}}},
    "spot-gpus": {**RWX, "ray": {"workers": {"gpu": {"spot": True}}}},
}


@pytest.fixture(scope="session")
def checkov() -> Path:
    if os.environ.get("CHECKOV"):
        return Path(os.environ["CHECKOV"])
    venv = REPO / "build" / f"checkov-{CHECKOV_VERSION}"
    done = venv / ".installed"
    if not done.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        install = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"checkov=={CHECKOV_VERSION}"], capture_output=True, text=True, timeout=900)
        if install.returncode:
            pytest.fail(f"installing checkov {CHECKOV_VERSION} into {venv} failed (PyPI unreachable?):\n{install.stderr[-2000:]}")
        done.write_text(CHECKOV_VERSION + "\n")
    return venv / "bin" / "checkov"


def scan(checkov: Path, args: list[str]) -> list[dict]:
    """checkov's JSON report: one entry per framework that found something to check."""
    result = subprocess.run([str(checkov), "--config-file", str(CONFIG), "--output", "json", "--compact",
                             "--skip-download", *args], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: some check failed
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]


def failures(reports: list[dict]) -> list[str]:
    return [f"{c['check_id']} {c['check_name']}: {c['resource']}"
            for r in reports for c in r["results"]["failed_checks"]]


def rendered_manifests(values: dict) -> list[dict]:
    """The chart's objects, then every RayJob/RayCluster pod template as the Pod it becomes."""
    docs = helm_objects(CHART, values)
    pods = []
    for obj in docs:
        spec = obj.get("spec", {})  # a ServiceAccount has none
        templates = []
        if obj["kind"] == "RayJob":
            templates.append(("submitter", spec["submitterPodTemplate"]))
        cluster = spec.get("rayClusterSpec") if obj["kind"] == "RayJob" else spec if obj["kind"] == "RayCluster" else None
        if cluster:
            templates.append(("head", cluster["headGroupSpec"]["template"]))
            templates += [(f"worker-{g['groupName']}", g["template"]) for g in cluster["workerGroupSpecs"]]
        for where, template in templates:
            pods.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {**template["metadata"], "name": f"{obj['metadata']['name']}-{where}", "namespace": "ml"},
                         "spec": template["spec"]})
    return docs + pods


CARELESS = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "careless", "namespace": "ml"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}]}}


@pytest.fixture(scope="module")
def scanned(checkov, tmp_path_factory) -> tuple[dict[str, list[dict]], list[dict]]:
    """One checkov run (seconds each: one, not six) over every scenario, the Dockerfile and a careless
    pod as a negative control, each in its own folder; returns (manifests by folder, reports)."""
    root = tmp_path_factory.mktemp("checkov")
    written = {scenario: rendered_manifests(values) for scenario, values in SCENARIOS.items()}
    written["careless"] = [CARELESS]
    for folder, manifests in written.items():
        (root / folder).mkdir()
        (root / folder / "chart.yaml").write_text(yaml.safe_dump_all(manifests))
    (root / "image").mkdir()
    (root / "image" / "Dockerfile").write_text((REPO / "images" / "Dockerfile").read_text())
    return written, scan(checkov, ["--directory", str(root), "--framework", "kubernetes", "dockerfile"])


def results_in(reports: list[dict], framework: str, folder: str, kind: str) -> list[dict]:
    (report,) = [r for r in reports if r["check_type"] == framework]
    return [c for c in report["results"][kind] if c["file_path"].lstrip("/").split("/")[0] == folder]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_chart_passes_checkov(scanned, scenario):
    written, reports = scanned
    (kubernetes,) = [r for r in reports if r["check_type"] == "kubernetes"]
    assert kubernetes["summary"]["parsing_errors"] == 0
    # every object and pod was scanned (checkov adds one more Pod for a Deployment's template)
    expected = sum(len(m) + sum(o["kind"] == "Deployment" for o in m) for m in written.values())
    assert kubernetes["summary"]["resource_count"] == expected
    assert results_in(reports, "kubernetes", scenario, "passed_checks")
    failed = results_in(reports, "kubernetes", scenario, "failed_checks")
    assert not failed, "\n".join(f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in failed)


def test_dockerfile_passes_checkov(scanned):
    _, reports = scanned
    assert results_in(reports, "dockerfile", "image", "passed_checks")
    failed = results_in(reports, "dockerfile", "image", "failed_checks")
    assert not failed, "\n".join(f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in failed)


def test_checkov_still_fails_what_is_not_skipped(scanned):
    """Negative control: with the same skip file, a careless pod fails (the scan can fail)."""
    _, reports = scanned
    failed = {c["check_id"] for c in results_in(reports, "kubernetes", "careless", "failed_checks")}
    assert {"CKV_K8S_16", "CKV_K8S_11", "CKV_K8S_22"} <= failed  # privileged, no CPU limit, writable root


def test_every_skip_has_its_reason():
    lines = CONFIG.read_text().splitlines()
    skipped = [i for i, line in enumerate(lines) if re.match(r"^\s*-\s*CKV", line)]
    assert skipped
    for i in skipped:
        j = i - 1
        while re.match(r"^\s*-\s*CKV", lines[j]):  # several checks may share one reason
            j -= 1
        assert lines[j].strip().startswith("#") and len(lines[j].strip()) > 10, f".checkov.yaml:{i + 1} has no reason"
    assert len(yaml.safe_load(CONFIG.read_text())["skip-check"]) == len(skipped)
