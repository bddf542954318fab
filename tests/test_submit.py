"""`cifar submit --dry-run` prints exactly the chart's render (one RayJob per stage); bad values,
namespaces, charts and kubeconfigs, and no cluster at all, stop submit/status/logs with one clear line."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from click.testing import CliRunner
from helpers import helm_objects

from jobs import chart, cluster
from jobs.cli import cli

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cifar100"
KIND_VALUES = REPO / "k8s" / "kind" / "values.yaml"
STAGES = chart.STAGES  # every stage the chart runs (the pipeline's, in jobs/chart.py)
# What every install must add to the defaults: a storage class that provides ReadWriteMany.
RWX_SET = ("--set", "storage.data.storageClass=nfs-client,storage.results.storageClass=nfs-client")
RWX = {"storage": {"data": {"storageClass": "nfs-client"}, "results": {"storageClass": "nfs-client"}}}


def helm_render(values: dict, release: str = "cifar100", namespace: str = "default") -> list[dict]:
    """The chart rendered directly by Helm's engine: the reference the dry run must equal."""
    return helm_objects(CHART, values, release, namespace)


def _key(obj: dict) -> tuple:
    return obj["kind"], obj["metadata"]["name"]


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def dry_run(*args) -> list[dict]:
    result = run("submit", *args, "--dry-run")
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.load_all(result.stdout, Loader=yaml.CSafeLoader) if doc]


@pytest.mark.parametrize("stage", STAGES)
def test_dry_run_equals_the_chart_render(stage):
    printed = sorted(dry_run(stage, *RWX_SET), key=_key)
    assert printed == sorted(helm_render({**RWX, "stage": stage}), key=_key)
    assert sorted(o["kind"] for o in printed) == ["Deployment", "PersistentVolumeClaim", "PersistentVolumeClaim",
                                                 "RayJob", "Role", "RoleBinding", "ServiceAccount"]
    (rayjob,) = [o for o in printed if o["kind"] == "RayJob"]
    assert rayjob["metadata"]["name"] == f"cifar100-{stage}"


def test_dry_run_prints_in_creation_order():
    result = run("submit", "gan", "--dry-run", *RWX_SET, "--set", "ray.sharedCluster.enabled=true")
    kinds = [doc["kind"] for doc in yaml.load_all(result.stdout, Loader=yaml.CSafeLoader) if doc]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim", "PersistentVolumeClaim", "Deployment",
                     "RayCluster", "RayJob"]


def test_dry_run_text_is_the_templates_text():
    result = run("submit", "gan", "--dry-run", "--release", "exp7", "--namespace", "team", *RWX_SET)
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render({**RWX, "stage": "gan"}, name="exp7", namespace="team")
    for source, text in manifests.items():
        if source.endswith(".yaml") and text.strip():
            assert f"# Source: {source}\n{text.strip()}\n" in result.stdout, source


def test_values_files_then_set_override_like_helm(tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text("pipeline:\n  profile: smoke\n  set:\n    tune:\n      experiment: first\n    gan:\n      run: g1\n")
    second = tmp_path / "b.yaml"
    second.write_text("pipeline:\n  set:\n    tune:\n      experiment: second\n      num_samples: 7\n")
    printed = dry_run("tune", "-f", first, "--values", second, *RWX_SET,
                      "--set", "pipeline.set.gan.run=g2,pipeline.set.tune.max_epochs=3")
    values = {**RWX, "stage": "tune", "pipeline": {"profile": "smoke", "set": {
        "tune": {"experiment": "second", "num_samples": 7, "max_epochs": 3}, "gan": {"run": "g2"}}}}
    assert sorted(printed, key=_key) == sorted(helm_render(values), key=_key)
    rayjob = next(o for o in printed if o["kind"] == "RayJob")
    assert "--set tune.experiment=second" in rayjob["spec"]["entrypoint"]
    assert "--set tune.num_samples=7" in rayjob["spec"]["entrypoint"]


def test_user_values_win_over_the_stage_selection():
    printed = dry_run("gan", *RWX_SET, "--set", "stage=fid")
    assert {o["metadata"]["name"] for o in printed if o["kind"] == "RayJob"} == {"cifar100-fid"}


def test_kind_values_render_without_pvcs_and_without_gpus():
    printed = dry_run("pipeline", "-f", KIND_VALUES)
    assert not [o for o in printed if o["kind"] == "PersistentVolumeClaim"]
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(printed)


@pytest.mark.parametrize("stage", ["pipeline", "gan"])
def test_kind_stages_render_from_the_kind_values(stage):
    """What `kubectl apply -f` takes on kind: `cifar submit STAGE --dry-run -f k8s/kind/values.yaml` (no files kept in the repo)."""
    printed = dry_run(stage, "-f", KIND_VALUES)
    (rayjob,) = [o for o in printed if o["kind"] == "RayJob"]
    assert rayjob["metadata"]["name"] == f"cifar100-{stage}" and "--device cpu" in rayjob["spec"]["entrypoint"]
    assert not (REPO / "k8s" / "kind" / "stages").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--set", "pipeline.profile=huge", *RWX_SET), "/pipeline/profile"),
    (("--set", "ray.workers.gpu.gpus=-1", *RWX_SET), "/ray/workers/gpu/gpus"),
    (("--set", "image.repository=", *RWX_SET), "/image/repository"),
    ((), "error: storage.data.storageClass is empty"),  # the chart's own words, without Helm's prefix
    (("--set", "device=cpu", *RWX_SET), "device is cpu but the GPU workers ask for 1 GPUs each"),
    (("--set", "kueue.queueName=q", *RWX_SET), "set kueue.elasticJobs=true"),
    (("--values", "/no/such/values.yaml"), "cannot read values file /no/such/values.yaml"),
    (("--release", "Bad_Name"), "release name 'Bad_Name'"),
    (("-n", "ns;id", *RWX_SET), "namespace 'ns;id' is not a Kubernetes namespace name"),
    (("--namespace", "ML", *RWX_SET), "namespace 'ML' is not a Kubernetes namespace name"),
    (("--chart", str(REPO / "k8s"), *RWX_SET), f"{REPO / 'k8s'} is not a Helm chart: it has no Chart.yaml"),
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
    rayjob = next(o for o in dry_run("gan", *RWX_SET) if o["kind"] == "RayJob")
    assert rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == "cifar100-k8s:9.9.9"
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


@pytest.mark.parametrize("args", [("submit", "tune", *RWX_SET), ("status",), ("logs", "gan")])
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


@pytest.mark.parametrize("content", ["hello world\n", "- a\n- list\n", "just: [unclosed\n"])
def test_a_kubeconfig_that_is_not_one_is_one_error_line(tmp_path, monkeypatch, content):
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    monkeypatch.setenv("KUBECONFIG", str(path))
    result = run("status")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], result.stderr
    assert "item assignment" not in result.stderr


def test_the_namespace_is_checked_before_the_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    result = run("submit", "gan", "-n", "ns;id", *RWX_SET)
    assert result.exit_code == 2 and result.stderr.startswith("error: namespace 'ns;id' is not"), result.stderr


def test_states_read_from_rayjob_status():
    failed = {"status": {"jobDeploymentStatus": "Failed", "jobStatus": "", "reason": "PreRunningDeadlineExceeded"}}
    assert cluster.rayjob_state(failed) == "failed: PreRunningDeadlineExceeded"
    assert cluster.rayjob_state({"status": {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed"}}) \
        == "failed (ray job failed): AppFailed"
    assert cluster.rayjob_state({"status": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}}) == "running (ray job running)"
    assert cluster.rayjob_state({}) == "new"
    assert not hasattr(cluster, "job_state")  # the chart has no Jobs: no legacy rows
