"""`cifar submit --dry-run` prints exactly the chart's render; without a cluster, submit/status/logs
stop with one clear line; k8s/kind/stages/ are current renders of the chart."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from click.testing import CliRunner

from jobs import chart, cluster
from jobs.cli import cli

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cifar100"
KIND_VALUES = REPO / "k8s" / "kind" / "values.yaml"
STAGE_NAMES = ("data", "tune", "retrain", "gan", "fid", "pipeline")


def only(*stages: str) -> dict:
    """The stage switches, written out here rather than taken from jobs.chart."""
    return {"stages": {name: {"enabled": name in stages} for name in STAGE_NAMES}}


def helm_render(values: dict, release: str = "cifar100", namespace: str = "default") -> list[dict]:
    """The chart rendered directly by Helm's engine: the reference the dry run must equal."""
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name=release, namespace=namespace)
    return [doc for source, text in manifests.items() if source.endswith(".yaml") for doc in yaml.safe_load_all(text) if doc]


def _key(obj: dict) -> tuple:
    return obj["kind"], obj["metadata"]["name"]


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def dry_run(*args) -> list[dict]:
    result = run("submit", *args, "--dry-run")
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


EXPECTED = {
    "tune": only("data", "tune"),
    "retrain": only("data", "retrain"),
    "gan": only("data", "gan"),
    "fid": only("data", "fid"),
    "pipeline": only("data", "tune", "retrain", "gan", "fid"),
}


@pytest.mark.parametrize("stage", sorted(EXPECTED))
def test_dry_run_equals_the_chart_render(stage):
    printed = sorted(dry_run(stage), key=_key)
    assert printed == sorted(helm_render(EXPECTED[stage]), key=_key)
    kinds = {obj["kind"] for obj in printed}
    assert {"ServiceAccount", "PersistentVolumeClaim", "Job"} <= kinds
    components = {obj["metadata"]["labels"].get("app.kubernetes.io/component") for obj in printed}
    wanted = set(EXPECTED[stage]["stages"]) & {k for k, v in EXPECTED[stage]["stages"].items() if v["enabled"]}
    assert components - {None, "storage"} == wanted


def test_dry_run_text_is_the_templates_text():
    result = run("submit", "gan", "--dry-run", "--release", "exp7", "--namespace", "team")
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(only("data", "gan"), name="exp7", namespace="team")
    for source, text in manifests.items():
        if source.endswith(".yaml") and text.strip():
            assert f"# Source: {source}\n{text.strip()}\n" in result.stdout, source


def test_values_files_then_set_override_like_helm(tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text("profile: smoke\nexperiment: first\nganRun: g1\n")
    second = tmp_path / "b.yaml"
    second.write_text("experiment: second\nprofiles:\n  smoke:\n    tune:\n      numSamples: 7\n")
    printed = dry_run("tune", "-f", first, "--values", second, "--set", "ganRun=g2,profiles.smoke.tune.maxEpochs=3",
                      "--set", "kueue.queueName=q")
    values = {**only("data", "tune"), "profile": "smoke", "experiment": "second", "ganRun": "g2",
              "profiles": {"smoke": {"tune": {"numSamples": 7, "maxEpochs": 3}}}, "kueue": {"queueName": "q"}}
    assert sorted(printed, key=_key) == sorted(helm_render(values), key=_key)
    rayjob = next(o for o in printed if o["kind"] == "RayJob")
    assert "--experiment second" in rayjob["spec"]["entrypoint"] and "--num-samples 7" in rayjob["spec"]["entrypoint"]


def test_user_values_win_over_the_stage_selection():
    printed = dry_run("gan", "--set", "stages.fid.enabled=true")
    assert {o["metadata"]["name"] for o in printed if o["kind"] == "Job"} == {"cifar100-data-prep", "cifar100-gan", "cifar100-fid"}


def test_kind_values_render_without_pvcs_and_without_gpus():
    printed = dry_run("pipeline", "-f", KIND_VALUES)
    assert not [o for o in printed if o["kind"] == "PersistentVolumeClaim"]
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(printed)


@pytest.mark.parametrize("stage", ("tune", "retrain", "gan", "fid", "pipeline"))
def test_kind_manifests_are_current(stage):
    """k8s/kind/stages/<stage>.yaml is what `make k8s-manifests` writes today."""
    result = run("submit", stage, "--dry-run", "-f", KIND_VALUES)
    assert result.exit_code == 0, result.output
    committed = (REPO / "k8s" / "kind" / "stages" / f"{stage}.yaml").read_text()
    assert committed == result.stdout, f"k8s/kind/stages/{stage}.yaml is stale: run `make k8s-manifests`"


@pytest.mark.parametrize(("args", "message"), [
    (("--set", "profile=huge"), "value must be one of 'full', 'smoke'"),
    (("--set", "profiles.full.gpusPerPod=-1"), "/profiles/full/gpusPerPod"),
    (("--set", "image.repository="), "/image/repository"),
    (("--set", "profiles.smoke.tune.gpusPerTrial=1", "--set", "profile=smoke"), "no trial could ever be scheduled"),
    (("--values", "/no/such/values.yaml"), "cannot read values file /no/such/values.yaml"),
    (("--release", "Bad_Name"), "release name 'Bad_Name'"),
])
def test_bad_values_are_one_error_line(args, message):
    result = run("submit", "tune", "--dry-run", *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_chart_is_found_from_the_environment(tmp_path, monkeypatch):
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    text = (copy / "Chart.yaml").read_text().replace('appVersion: "0.1.0"', 'appVersion: "9.9.9"')
    (copy / "Chart.yaml").write_text(text)
    monkeypatch.setenv(chart.CHART_ENV, str(copy))
    assert chart.find_chart() == copy
    job = next(o for o in dry_run("gan") if o["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "cifar100-k8s:9.9.9"
    monkeypatch.delenv(chart.CHART_ENV)
    assert chart.find_chart() == CHART  # a source checkout (or an editable install) finds its own


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_cluster(tmp_path, monkeypatch):
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "nowhere",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{_closed_port()}"}}],
        "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "nowhere", "context": {"cluster": "c", "user": "u", "namespace": "ml"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))


@pytest.mark.parametrize("args", [("submit", "tune"), ("status",), ("logs", "gan")])
def test_unreachable_cluster_is_one_error_line(unreachable_cluster, args):
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no Kubernetes cluster reachable at https://127.0.0.1:"), result.stderr


def test_no_kubeconfig_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = run("status")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no Kubernetes cluster reachable: no usable kubeconfig"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_states_read_from_job_and_rayjob_status():
    assert cluster.job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == "succeeded"
    assert cluster.job_state({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}}) \
        == "failed (PodFailurePolicy)"
    assert cluster.job_state({"status": {"active": 1, "ready": 0}}) == "starting or waiting"
    assert cluster.job_state({}) == "pending"
    assert cluster.rayjob_state({"status": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}}) == "running (ray job running)"
