"""`cifar submit` against a cluster: the real kubernetes client talks TLS to a local API server
(tests/kube_fake.py) shaped as GKE, EKS and AKS clusters. It checks before it creates (KubeRay, the
namespace, storage classes that can give ReadWriteMany, rights, nodes with their DaemonSets, driver,
a node autoscaler), creates nothing when a check fails, refuses a re-submit unless --replace, reuses
what exists, and leaves Helm's ownership metadata on what it makes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import cifar
from kube_fake import GKE_DAEMONSETS, aks, daemonset, eks, gke, kubeconfig_fixture  # noqa: F401 (the fixture `use`)

from jobs import cluster

GKE_RWX = ("--set", "storage.data.storageClass=standard-rwx,storage.results.storageClass=standard-rwx")
EKS_RWX = ("--set", "storage.data.storageClass=efs-sc,storage.results.storageClass=efs-sc")
AKS_RWX = ("--set", "storage.data.storageClass=azurefile-nfs,storage.results.storageClass=azurefile-nfs")


def storage(name: str) -> tuple[str, str]:
    return ("--set", f"storage.data.storageClass={name},storage.results.storageClass={name}")
PIPELINE_OBJECTS = ["serviceaccount/cifar100", "role/cifar100-pod-reader", "rolebinding/cifar100-pod-reader",
                    "persistentvolumeclaim/cifar100-data", "persistentvolumeclaim/cifar100-results",
                    "deployment/cifar100-results", "rayjob/cifar100-pipeline"]


def error_line(result) -> str:
    lines = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert result.status == 2 and len(lines) == 1, result
    return lines[0]


def notes(result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("note: ")]


def test_gke_submit_checks_then_creates_everything_owned_by_the_release(use):
    kube = use(gke())
    result = cifar("submit", "pipeline", *GKE_RWX)
    assert result.status == 0, result
    assert [line.split(" ", 1)[1] for line in result.out.splitlines() if line.startswith("created ")] == PIPELINE_OBJECTS
    assert not notes(result), result.err
    # the checks ran before the first object was made, in the documented order
    paths = [f"{m} {p}" for m, p in kube.requests]
    first_post = next(i for i, r in enumerate(paths) if r.startswith("POST /api/v1/namespaces/ml/serviceaccounts"))
    checks = paths[:first_post]
    order = ["GET /version", "GET /apis", "GET /apis/ray.io/v1", "GET /api/v1/namespaces/ml", "GET /apis/storage.k8s.io/v1/storageclasses/standard-rwx",
             "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "GET /api/v1/nodes",
             "GET /apis/ray.io/v1/namespaces/ml/rayjobs/cifar100-pipeline"]
    assert [next(i for i, r in enumerate(checks) if r == want) for want in order] == sorted(
        next(i for i, r in enumerate(checks) if r == want) for want in order)
    for kind_path, name in [("v1", "serviceaccounts"), ("rbac.authorization.k8s.io/v1", "roles"), ("apps/v1", "deployments"),
                            ("ray.io/v1", "rayjobs"), ("v1", "persistentvolumeclaims")]:
        for obj in kube.objects[(kind_path, name, "ml")].values():
            meta = obj["metadata"]
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
            assert meta["annotations"]["meta.helm.sh/release-name"] == "cifar100"
            assert meta["annotations"]["meta.helm.sh/release-namespace"] == "ml"


def test_check_only_creates_nothing_and_says_what_passed(use):
    kube = use(gke())
    result = cifar("submit", "pipeline", "--check", *GKE_RWX)
    assert result.status == 0, result
    assert not kube.created()
    out = result.out
    for fragment in ("ok: Kubernetes v1.33.5-gke.1201000", "ok: the cluster serves RayJob (ray.io/v1)", "ok: namespace ml exists", "ok: storage class standard-rwx exists",
                     "ok: you may create serviceaccounts, create roles", "ok: 1 node(s) advertise nvidia.com/gpu",
                     "ok: the gpu worker (7 CPUs, 26.0 GiB, 1 GPU) fits gke-c-gpu-9c0d1e2f-0000 [g2-standard-8]",
                     "ok: the head (3.2 CPUs, 10.5 GiB) fits gke-c-cpu-5e6f7a8b-k2lm [e2-standard-4]",
                     "ok: rayjob/cifar100-pipeline does not exist yet", "nothing was created"):
        assert fragment in out, (fragment, out)


def old_eks():
    kube = eks()
    kube.git_version = "v1.29.15-eks-bc803b4"
    return kube


@pytest.mark.parametrize(("make", "args", "message"), [
    (old_eks, EKS_RWX, "the cluster runs Kubernetes v1.29.15-eks-bc803b4, older than the chart's 1.30"),
    (lambda: gke(kuberay=False), GKE_RWX,
     "the cluster does not serve RayJob (ray.io/v1): install the KubeRay operator 1.7.0 first"),
    (lambda: gke(kuberay=False), (*GKE_RWX, "--set", "ray.sharedCluster.enabled=true"),
     "the cluster does not serve RayCluster, RayJob (ray.io/v1)"),
    (lambda: gke(namespaces=["default"]), GKE_RWX, "namespace ml does not exist: create it (kubectl create namespace ml)"),
    (lambda: gke(), ("--set", "storage.data.storageClass=filestore,storage.results.storageClass=standard-rwx"),
     "storage class filestore (for PVC cifar100-data) does not exist on this cluster"),
    (lambda: eks(gpu="none"), EKS_RWX, "GPU nodes ip-192-168-56-78.ec2.internal [g6.2xlarge] advertise no nvidia.com/gpu: "
                                       "no NVIDIA device plugin runs there"),
    (lambda: eks(gfd_driver=570), EKS_RWX, "NVIDIA driver older than R580 on ip-192-168-56-78.ec2.internal [g6.2xlarge] (R570)"),
    (lambda: gke(), (*GKE_RWX, "--set", "ray.workers.gpu.resources.requests.cpu=8,ray.workers.gpu.resources.limits.cpu=8"),
     "the gpu worker (8 CPUs, 26.0 GiB, 1 GPU) fits no GPU node: the largest, gke-c-gpu-9c0d1e2f-0000 [g2-standard-8], "
     "has 7.91 CPUs, 28.3 GiB, 1 GPU allocatable"),
])
def test_a_failed_check_is_one_error_line_and_nothing_is_created(use, make, args, message):
    kube = use(make())
    result = cifar("submit", "pipeline", *args)
    assert message in error_line(result), result.err
    assert not kube.created(), kube.created()
    assert not result.out.strip()


def test_what_you_may_not_do_is_named_before_anything_is_made(use):
    kube = use(gke())
    kube.denied |= {("create", "rbac.authorization.k8s.io", "roles"), ("create", "rbac.authorization.k8s.io", "rolebindings")}
    line = error_line(cifar("submit", "pipeline", *GKE_RWX))
    assert ("you may not create roles.rbac.authorization.k8s.io, create rolebindings.rbac.authorization.k8s.io in "
            "namespace ml (SelfSubjectAccessReview)") in line
    assert not kube.created()


def test_a_gpu_pool_at_zero_is_a_note_not_a_failure(use):
    kube = use(gke(gpu_nodes=0))
    result = cifar("submit", "gan", *GKE_RWX)
    assert result.status == 0, result
    (note,) = notes(result)
    assert "no node advertises nvidia.com/gpu now: fine if a GPU node pool scales from zero" in note
    assert "created rayjob/cifar100-gan" in result.out
    assert kube.get("ray.io/v1", "rayjobs", "ml", "cifar100-gan")


def test_eks_with_gfd_and_a_current_driver_passes(use):
    use(eks(gfd_driver=580))
    result = cifar("submit", "pipeline", "--check", *EKS_RWX)
    assert result.status == 0, result
    assert "ok: NVIDIA driver R580+ on ip-192-168-56-78.ec2.internal [g6.2xlarge]" in result.out
    # EKS managed groups are untainted: the head may go to the CPU group's m6i.xlarge
    assert "ok: the head (3.2 CPUs, 10.5 GiB) fits ip-192-168-12-34.ec2.internal [m6i.xlarge]" in result.out


def test_a_new_gpu_node_without_its_plugin_yet_is_a_note(use):
    from datetime import datetime, timezone

    just_now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    use(eks(gpu="none", gpu_created=just_now))
    result = cifar("submit", "pipeline", "--check", *EKS_RWX)
    assert result.status == 0, result
    assert any("advertise no nvidia.com/gpu" in n and "may still be installing their driver" in n for n in notes(result))


def test_gke_default_driver_and_small_cpu_nodes_are_notes(use):
    use(gke(driver="default"))
    result = cifar("submit", "pipeline", "--check", *GKE_RWX, "--set", "ray.head.resources.requests.cpu=5,ray.head.resources.limits.cpu=5")
    assert result.status == 0, result
    found = notes(result)
    assert any("runs GKE's default NVIDIA driver, which may be older than R580" in n for n in found), found
    assert any("the head (5.2 CPUs, 10.5 GiB) fits no CPU-only node" in n and "scales from zero" in n for n in found), found


def test_a_caller_who_may_not_list_nodes_or_read_namespaces_gets_notes(use):
    kube = use(gke())
    kube.forbidden |= {("GET", r"^/api/v1/nodes$"), ("GET", r"^/api/v1/namespaces/ml$")}
    result = cifar("submit", "pipeline", "--check", *GKE_RWX)
    assert result.status == 0, result
    found = notes(result)
    assert any(n.startswith("note: cannot check the nodes (you may not list them)") for n in found), found
    assert any(n.startswith("note: cannot check that namespace ml exists") for n in found), found


def test_a_resubmit_says_the_rayjob_exists_and_creates_nothing(use):
    kube = use(gke())
    assert cifar("submit", "pipeline", *GKE_RWX).status == 0
    before = list(kube.created())
    line = error_line(cifar("submit", "pipeline", *GKE_RWX))
    assert "rayjob/cifar100-pipeline already exists (new): `cifar status` shows it; to run stage pipeline again, " \
           "`cifar submit pipeline --replace` deletes it first" in line
    assert kube.created() == before


def test_replace_deletes_waits_then_creates_and_reuses_the_rest(use):
    kube = use(gke())
    assert cifar("submit", "pipeline", *GKE_RWX).status == 0
    kube.requests.clear()
    result = cifar("submit", "pipeline", "--replace", *GKE_RWX)
    assert result.status == 0, result
    assert "deleted rayjob/cifar100-pipeline" in result.out
    assert "created rayjob/cifar100-pipeline" in result.out
    assert all(f"reused {name} (it exists)" in result.out for name in PIPELINE_OBJECTS[:-1]), result.out
    calls = [f"{m} {p}" for m, p in kube.requests]
    delete = calls.index("DELETE /apis/ray.io/v1/namespaces/ml/rayjobs/cifar100-pipeline")
    create = calls.index("POST /apis/ray.io/v1/namespaces/ml/rayjobs")
    # it waited: GETs until the RayJob was gone (the fake keeps it for two, as a finalizer would)
    assert calls[delete + 1:create].count("GET /apis/ray.io/v1/namespaces/ml/rayjobs/cifar100-pipeline") == 3


def test_a_rayjob_that_is_never_gone_fails_after_the_bounded_wait(use):
    kube = use(gke())
    assert cifar("submit", "gan", *GKE_RWX).status == 0
    kube.deletion_gets = None  # its finalizer never finishes
    api, namespace = cluster.connect(None)
    with pytest.raises(cluster.CifarError, match=r"rayjob/cifar100-gan is still being deleted after 1 s"):
        cluster.delete_rayjob(api, namespace, "cifar100-gan", wait_s=1, poll_s=0.2)


def test_a_stage_beside_the_pipeline_reuses_its_volumes_and_leaves_its_rayjob(use):
    kube = use(gke())
    assert cifar("submit", "pipeline", *GKE_RWX).status == 0
    result = cifar("submit", "report", *GKE_RWX)
    assert result.status == 0, result
    assert "created rayjob/cifar100-report" in result.out
    assert "reused persistentvolumeclaim/cifar100-results (it exists)" in result.out
    assert kube.get("ray.io/v1", "rayjobs", "ml", "cifar100-pipeline")  # untouched
    assert not [r for r in kube.created() if r.startswith("DELETE")]
    report = kube.get("ray.io/v1", "rayjobs", "ml", "cifar100-report")
    head = report["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert {v["persistentVolumeClaim"]["claimName"] for v in head["volumes"] if "persistentVolumeClaim" in v} == {
        "cifar100-data", "cifar100-results"}


def test_existing_claims_are_not_checked_for_a_storage_class(use):
    kube = use(gke())
    result = cifar("submit", "pipeline", "--check", "--set", "storage.data.existingClaim=d,storage.results.existingClaim=r")
    assert result.status == 0, result
    assert "ok: no PVC to create" in result.out
    assert not [p for _, p in kube.requests if "storageclasses" in p]


def test_the_kubernetes_floor_is_the_charts():
    import yaml

    from jobs.preflight import KUBERNETES_FLOOR

    chart = yaml.safe_load((Path(__file__).resolve().parents[1] / "charts" / "cifar100" / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={KUBERNETES_FLOOR[0]}.{KUBERNETES_FLOOR[1]}.0-0"


# --- storage that cannot be shared ---------------------------------------------------------------------
@pytest.mark.parametrize(("make", "name", "provisioner", "fix"), [
    (gke, "standard-rwo", "pd.csi.storage.gke.io", "GKE: standard-rwx or premium-rwx"),
    (gke, "standard", "kubernetes.io/gce-pd", "GKE: standard-rwx or premium-rwx"),
    (lambda: eks(storage_classes=["gp2", "gp3", "efs-sc"]), "gp3", "ebs.csi.aws.com", "EKS: an EFS class (efs.csi.aws.com"),
    (eks, "gp2", "kubernetes.io/aws-ebs", "EKS: an EFS class"),
    (aks, "managed-csi", "disk.csi.azure.com", "AKS: an Azure Files class with protocol nfs"),
    (aks, "default", "disk.csi.azure.com", "AKS: an Azure Files class with protocol nfs"),
])
def test_a_storage_class_that_only_gives_readwriteonce_is_refused(use, make, name, provisioner, fix):
    kube = use(make())
    line = error_line(cifar("submit", "pipeline", *storage(name)))
    assert f"storage class {name} (provisioner {provisioner}) gives block volumes, which one node mounts at a time: the " \
           "ReadWriteMany PVC cifar100-data, cifar100-results would stay Pending" in line, line
    assert fix in line and "existingClaim" in line
    assert not kube.created()


def test_each_clouds_readwritemany_class_is_accepted(use):
    for make, args, provisioner in ((gke, GKE_RWX, "filestore.csi.storage.gke.io"), (eks, EKS_RWX, "efs.csi.aws.com"),
                                    (aks, AKS_RWX, "file.csi.azure.com")):
        use(make())
        result = cifar("submit", "pipeline", "--check", *args)
        assert result.status == 0, result
        assert f"exists, provisioner {provisioner} (PVC cifar100-data, cifar100-results)" in result.out
        assert not [n for n in notes(result) if "storage class" in n], result.err


def test_azure_files_over_smb_is_a_note(use):
    use(aks())
    result = cifar("submit", "pipeline", "--check", *storage("azurefile-csi"))
    assert result.status == 0, result
    assert any("storage class azurefile-csi mounts Azure Files over SMB" in n and "protocol: nfs" in n
               for n in notes(result)), result.err


# --- DaemonSets take their share of each node ----------------------------------------------------------
GPU_77 = ("--set", "ray.workers.gpu.resources.requests.cpu=7.7,ray.workers.gpu.resources.limits.cpu=8")


def test_daemonsets_are_counted_where_they_would_run(use):
    use(gke(daemonsets=GKE_DAEMONSETS))
    result = cifar("submit", "pipeline", "--check", *GKE_RWX)
    assert result.status == 0, result
    # on the tainted L4 node: GKE's own five (the device plugin too); the user's logging agent stays off it
    assert ("ok: the gpu worker (7 CPUs, 26.0 GiB, 1 GPU) fits gke-c-gpu-9c0d1e2f-0000 [g2-standard-8] (7.91 CPUs, "
            "28.3 GiB, 1 GPU allocatable, of which its DaemonSets take 0.298 CPUs, 0.4 GiB)") in result.out, result.out
    # on the CPU node: four of GKE's (no device plugin without an accelerator) and the agent, its init container counted
    assert ("ok: the head (3.2 CPUs, 10.5 GiB) fits gke-c-cpu-5e6f7a8b-k2lm [e2-standard-4] (3.92 CPUs, 13.3 GiB "
            "allocatable, of which its DaemonSets take 0.648 CPUs, 0.9 GiB)") in result.out, result.out


def test_a_worker_that_fits_only_without_the_daemonsets_is_refused(use):
    use(gke())
    assert cifar("submit", "pipeline", "--check", *GKE_RWX, *GPU_77).status == 0  # the bare allocatable holds it
    kube = use(gke(daemonsets=GKE_DAEMONSETS))
    line = error_line(cifar("submit", "pipeline", *GKE_RWX, *GPU_77))
    assert ("the gpu worker (7.7 CPUs, 26.0 GiB, 1 GPU) fits no GPU node: the largest, gke-c-gpu-9c0d1e2f-0000 "
            "[g2-standard-8], has 7.91 CPUs, 28.3 GiB, 1 GPU allocatable, of which its DaemonSets take 0.298 CPUs, "
            "0.4 GiB") in line, line
    assert not kube.created()


def test_daemonsets_kept_off_a_node_by_selector_or_affinity_are_not_counted(use):
    elsewhere = [daemonset("arm-only", "kube-system", cpu="2", memory="1Gi", node_selector={"kubernetes.io/arch": "arm64"},
                           tolerations=[{"operator": "Exists"}]),
                 daemonset("not-on-l4", "kube-system", cpu="2", memory="1Gi", tolerations=[{"operator": "Exists"}],
                           affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                               {"matchExpressions": [{"key": "cloud.google.com/gke-accelerator", "operator": "NotIn",
                                                      "values": ["nvidia-l4"]}]}]}}})]
    use(gke(daemonsets=elsewhere))
    result = cifar("submit", "pipeline", "--check", *GKE_RWX, *GPU_77)
    assert result.status == 0, result
    assert "fits gke-c-gpu-9c0d1e2f-0000 [g2-standard-8] (7.91 CPUs, 28.3 GiB, 1 GPU allocatable)" in result.out


def test_a_caller_who_may_not_list_daemonsets_gets_a_note(use):
    kube = use(gke(daemonsets=GKE_DAEMONSETS))
    kube.forbidden.add(("GET", r"^/apis/apps/v1/daemonsets$"))
    result = cifar("submit", "pipeline", "--check", *GKE_RWX, *GPU_77)
    assert result.status == 0, result
    assert any("cannot count what DaemonSets take on each node (you may not list daemonsets" in n for n in notes(result))


# --- a GPU pool at zero needs something to grow it ----------------------------------------------------
def test_no_node_autoscaler_while_no_gpu_node_exists_is_said(use):
    use(eks(gpu="absent"))
    result = cifar("submit", "gan", "--check", *EKS_RWX)
    assert result.status == 0, result
    assert any("no node autoscaler found (no kube-system/cluster-autoscaler-status ConfigMap, no cluster-autoscaler "
               "Deployment in kube-system, no Karpenter) while no GPU node exists: nothing will add one" in n
               and "install Cluster Autoscaler or Karpenter" in n for n in notes(result)), result.err
    use(gke(gpu_nodes=0, autoscaler=False))
    assert any("no node autoscaler found" in n for n in notes(cifar("submit", "gan", "--check", *GKE_RWX)))


@pytest.mark.parametrize(("make", "args", "found"), [
    (lambda: eks(gpu="absent", autoscaler="cluster-autoscaler"), EKS_RWX,
     "deployment kube-system/cluster-autoscaler-aws-cluster-autoscaler"),
    (lambda: eks(gpu="absent", autoscaler="karpenter"), EKS_RWX, "Karpenter (karpenter.sh is served)"),
    (lambda: gke(gpu_nodes=0), GKE_RWX, "the cluster autoscaler (kube-system/cluster-autoscaler-status)"),
    (lambda: aks(gpu_nodes=0), AKS_RWX, "the cluster autoscaler (kube-system/cluster-autoscaler-status)"),
])
def test_a_node_autoscaler_that_shows_itself_is_named(use, make, args, found):
    use(make())
    result = cifar("submit", "gan", "--check", *args)
    assert result.status == 0, result
    assert f"ok: a node autoscaler may add GPU nodes: {found}" in result.out, result.out
    assert not any("no node autoscaler" in n for n in notes(result))


def test_a_caller_who_may_not_read_kube_system_is_told_it_cannot_be_known(use):
    kube = use(eks(gpu="absent"))
    kube.forbidden |= {("GET", r"^/api/v1/namespaces/kube-system/"), ("GET", r"^/apis/apps/v1/namespaces/kube-system/")}
    notes_ = notes(cifar("submit", "gan", "--check", *EKS_RWX))
    assert any("cannot tell whether a node autoscaler runs (you may not read configmap "
               "kube-system/cluster-autoscaler-status or the deployments of kube-system)" in n for n in notes_), notes_
