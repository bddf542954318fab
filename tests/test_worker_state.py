"""What the worker pods of a waiting Ray cluster are doing, read from pods and events of the shapes the
scheduler, the cluster autoscaler (GKE's, EKS's and AKS's), Karpenter and the kubelet write: progressing
(the pending clock waits), waiting (the autoscaler's newest word beside the scheduler's, with its fix)
or fatal (a start-up failure that waiting cannot fix). Then the Watch that consumes it: on its clock,
and on a real multi-node Ray cluster whose GPU work can never be placed, with the local API server
answering as the cluster would."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest
from helpers import helm_objects
from kube_fake import event, gke, ray_pod

from cifar_core.execution.resources import Resources
from cifar_core.execution.session import FATAL, PROGRESSING, WAITING, PendingTimeout, Watch, WorkerState
from jobs.cluster import SPOT_LABEL_KEYS, pod_line, pod_state, worker_state, workers_state

CLUSTER = "cifar100-pipeline-x7k2p"
WORKER = f"{CLUSTER}-gpu-worker-m2n8c"
SCHEDULER = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
GKE_GROUP = "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instanceGroups/gke-c-gpu-9c0d1e2f-grp"


def pending(**kwargs) -> dict:
    return ray_pod(WORKER, CLUSTER, "worker", "gpu", phase="Pending", **kwargs)


def at(minute: int) -> str:
    return f"2026-12-05T08:{minute:02d}:00Z"


def unscheduled(*autoscaler_events) -> list[dict]:
    """The scheduler's FailedScheduling, re-emitted last (as it is while a node is being added), after the autoscaler's events."""
    return [*autoscaler_events, event(WORKER, "FailedScheduling", SCHEDULER, at=at(30))]


# --- the cluster autoscaler's words, whatever their type -------------------------------------------
@pytest.mark.parametrize(("events", "kind", "fragments"), [
    # GKE: a scale-up triggered (Normal) and not yet done: progressing, though the scheduler still says no
    (unscheduled(event(WORKER, "TriggeredScaleUp", f"pod triggered scale-up: [{{{GKE_GROUP} 0->1 (max: 4)}}]",
                       kind="Normal", at=at(1))),
     PROGRESSING, ["FailedScheduling: 0/3 nodes", "a node is being added for it (TriggeredScaleUp: pod triggered scale-up"]),
    # GKE: the scale-up then failed on quota (Warning FailedScaleUp)
    (unscheduled(event(WORKER, "TriggeredScaleUp", "pod triggered scale-up: [...]", kind="Normal", at=at(1)),
                 event(WORKER, "FailedScaleUp", "Node scale up in zones us-central1-a associated with this pod failed: "
                       "GCE quota exceeded. Pod is at risk of not being scheduled.", at=at(3))),
     WAITING, ["FailedScheduling: 0/3 nodes", "the cluster autoscaler: FailedScaleUp: Node scale up in zones us-central1-a",
               "GCE quota exceeded", "(raise the cloud's GPU quota for the region)"]),
    # GKE: a zone without L4s now
    (unscheduled(event(WORKER, "FailedScaleUp", "Node scale up in zones us-central1-a associated with this pod failed: "
                       "GCE out of resources. Pod is at risk of not being scheduled.", at=at(3))),
     WAITING, ["GCE out of resources", "the zone has no such machine now"]),
    # EKS (kubernetes/autoscaler on an ASG): NotTriggerScaleUp is of type Normal
    (unscheduled(event(WORKER, "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max node group size reached",
                       kind="Normal", at=at(2))),
     WAITING, ["the cluster autoscaler: NotTriggerScaleUp: pod didn't trigger scale-up: 1 max node group size reached",
               "(raise the node pool's maximum size"]),
    (unscheduled(event(WORKER, "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 in backoff after failed scale-up",
                       kind="Normal", at=at(2))),
     WAITING, ["in backoff after failed scale-up", "an earlier scale-up of the pool failed"]),
    (unscheduled(event(WORKER, "NotTriggerScaleUp", "pod didn't trigger scale-up: 2 Insufficient nvidia.com/gpu, 1 node(s) "
                       "didn't match Pod's node affinity/selector", kind="Normal", at=at(2))),
     WAITING, ["no node pool's machines fit the pod: add a pool that does"]),
    (unscheduled(event(WORKER, "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max cluster nvidia.com/gpu limit reached",
                       kind="Normal", at=at(2))),
     WAITING, ["raise the cluster autoscaler's resource limits"]),
    # AKS: at its maximum first, then raised: the newest word counts
    (unscheduled(event(WORKER, "NotTriggerScaleUp", "pod didn't trigger scale-up: 2 max node group size reached",
                       kind="Normal", at=at(1)),
                 event(WORKER, "TriggeredScaleUp", "pod triggered scale-up: [{aks-gpunp-98036146-vmss 1->2 (max: 2)}]",
                       kind="Normal", at=at(4))),
     PROGRESSING, ["aks-gpunp-98036146-vmss 1->2"]),
    # Karpenter: its own FailedScheduling, then a NodeClaim nominated for the pod
    (unscheduled(event(WORKER, "FailedScheduling", 'Failed to schedule pod, incompatible with nodepool "gpu", daemonset '
                       'overhead={"cpu":"360m","memory":"670Mi","pods":"5"}, all available instance types exceed limits '
                       'for nodepool', source="karpenter", at=at(2))),
     WAITING, ["FailedScheduling: 0/3 nodes", "Karpenter: FailedScheduling: Failed to schedule pod", "NodePool's limits"]),
    (unscheduled(event(WORKER, "FailedScheduling", "Failed to schedule pod, ...", source="karpenter", at=at(2)),
                 event(WORKER, "Nominated", "Pod should schedule on: nodeclaim/gpu-x8f2k", kind="Normal",
                       source="karpenter", at=at(3))),
     PROGRESSING, ["Nominated: Pod should schedule on: nodeclaim/gpu-x8f2k"]),
    # no autoscaler at all: the scheduler's words alone
    (unscheduled(), WAITING, ["FailedScheduling: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu"]),
])
def test_an_unscheduled_worker_is_read_with_the_autoscalers_newest_word(events, kind, fragments):
    state = pod_state(pending(unschedulable=SCHEDULER), events)
    assert state.kind == kind, state
    for fragment in fragments:
        assert fragment in state.line, (fragment, state.line)
    assert pod_line(pending(), events) == f"Pending: {state.line}"  # what `cifar status` shows for it


# --- spot GPUs: a GPU worker that must go on a spot node ------------------------------------------------
CHART = Path(__file__).resolve().parents[1] / "charts" / "cifar100"


@functools.cache
def _spot_placement() -> tuple:
    """The GPU worker's placement as the chart renders it with ray.workers.gpu.spot."""
    values = {"storage": {"data": {"storageClass": "nfs-client"}, "results": {"storageClass": "nfs-client"}},
              "ray": {"workers": {"gpu": {"spot": True}}}}
    rayjob = next(o for o in helm_objects(CHART, values) if o["kind"] == "RayJob")
    spec = next(g for g in rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"] if g["groupName"] == "gpu")["template"]["spec"]
    return tuple((key, spec[key]) for key in ("affinity", "tolerations", "nodeSelector") if key in spec)


def spot_worker(**kwargs) -> dict:
    pod = pending(**kwargs)
    pod["spec"] |= dict(_spot_placement())
    return pod


NO_SPOT = ("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) "
           "didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful "
           "for scheduling.")


def test_the_spot_labels_the_reader_knows_are_the_charts():
    terms = dict(_spot_placement())["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    required = {e["key"] for term in terms for e in term["matchExpressions"] if e["operator"] == "In"}
    assert required == set(SPOT_LABEL_KEYS)


@pytest.mark.parametrize(("events", "named"), [
    # no node is a spot node, and no autoscaler acts: the pool is missing (or labelled otherwise)
    ([event(WORKER, "FailedScheduling", NO_SPOT)], True),
    # a spot GPU node exists but is full: not the pool's absence
    ([event(WORKER, "FailedScheduling", "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match "
                                        "Pod's node affinity/selector.")], False),
    # the cluster autoscaler finds no node group whose nodes would match
    (unscheduled(event(WORKER, "NotTriggerScaleUp", "pod didn't trigger scale-up: 3 node(s) didn't match Pod's node "
                       "affinity/selector", kind="Normal", at=at(2))), True),
    (unscheduled(event(WORKER, "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max node group size reached, 2 node(s) "
                       "didn't match Pod's node affinity/selector", kind="Normal", at=at(2))), False),
])
def test_a_spot_gpu_worker_no_node_matches_names_the_missing_spot_pool(events, named):
    state = pod_state(spot_worker(unschedulable=NO_SPOT), events)
    assert state.kind == WAITING, state
    said = "the spot GPU pool is missing, or its nodes carry no spot label the chart knows"
    assert (said in state.line) is named, state.line
    assert "ray.workers.gpu.spot=false" in state.line if named else "spot" not in state.line
    # the same words about a worker that asks for no spot node say nothing of spot
    assert "spot" not in pod_state(pending(unschedulable=NO_SPOT), events).line


# --- a worker on its node: progressing, waiting, or failed for good ---------------------------------
NODE = "gke-c-gpu-9c0d1e2f-0000"
STARTING = [event(WORKER, "Scheduled", f"Successfully assigned ml/{WORKER} to {NODE}", kind="Normal", at=at(5)),
            event(WORKER, "Pulling", 'Pulling image "registry.example.com/cifar100-k8s:0.1.0"', kind="Normal", at=at(6))]
NVIDIA = ("failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: "
          "unable to start container process: error during container init: error running prestart hook #0: exit status 1, "
          "stdout: , stderr: Auto-detected mode as 'legacy'\nnvidia-container-cli: requirement error: unsatisfied "
          "condition: cuda>=13.0, please update your driver to a newer version, or use an earlier cuda container: unknown")


@pytest.mark.parametrize(("waiting", "pulls", "kind", "fragment"), [
    (None, [], PROGRESSING, 'starting (Pulling: Pulling image "registry.example.com/cifar100-k8s:0.1.0")'),
    # the registry's answer is final: no such image or tag, or no right to pull it
    (("ErrImagePull", 'failed to pull and unpack image "registry.example.com/cifar100-k8s:0.1.0": failed to resolve '
                      'reference "registry.example.com/cifar100-k8s:0.1.0": registry.example.com/cifar100-k8s:0.1.0: not found'),
     [], FATAL, "not found; waiting cannot fix this: check image.repository and image.tag"),
    (("ImagePullBackOff", 'Back-off pulling image "registry.example.com/cifar100-k8s:0.1.0"'),
     ['Failed to pull image "registry.example.com/cifar100-k8s:0.1.0": rpc error: code = NotFound desc = failed to pull '
      'and unpack image: failed to resolve reference: manifest unknown: manifest unknown'], FATAL, "manifest unknown"),
    (("ImagePullBackOff", 'Back-off pulling image "europe-docker.pkg.dev/p/r/cifar100-k8s:0.1.0"'),
     ['Failed to pull image: failed to authorize: failed to fetch oauth token: unexpected status from GET request: '
      '403 Forbidden'], FATAL, "403 Forbidden"),
    (("ErrImagePull", "pull access denied for cifar100-k8s, repository does not exist or may require 'docker login': "
                      "denied: requested access to the resource is denied"), [], FATAL, "denied"),
    (("ErrImagePull", 'failed to fetch anonymous token: unexpected status: 401 Unauthorized'), [], FATAL, "401 Unauthorized"),
    # twins that a retry may fix: a slow or busy registry
    (("ImagePullBackOff", 'Back-off pulling image "registry.example.com/cifar100-k8s:0.1.0"'),
     ["Failed to pull image: rpc error: code = Unknown desc = failed to copy: read tcp 10.0.0.5:443: i/o timeout"],
     WAITING, "ImagePullBackOff"),
    (("ErrImagePull", "failed to copy: httpReadSeeker: failed open: unexpected status code 429 Too Many Requests"),
     [], WAITING, "429 Too Many Requests"),
    # the runtime refuses the container: the node's driver is older than the image's CUDA
    (("RunContainerError", NVIDIA), [], FATAL, "R580+"),
    (("StartError", "failed to start containerd task: exec: \"/bin/entrypoint\": permission denied"), [], FATAL,
     "StartError"),
    (("CreateContainerConfigError", 'configmap "cifar100-settings" not found'), [], FATAL,
     "create what the pod refers to"),
    (("CreateContainerConfigError", "couldn't find key token in Secret ml/registry"), [], FATAL, "couldn't find key"),
    (("CreateContainerError", "failed to create containerd container: error unpacking image: context deadline exceeded"),
     [], WAITING, "context deadline exceeded"),
    (("CreateContainerError", "failed to generate spec: path \"/data\" is mounted on \"/\" but it is not a shared mount"),
     [], FATAL, "not a shared mount"),
    (("InvalidImageName", 'Failed to apply default image tag "Registry/x:": couldn\'t parse image reference'), [], FATAL,
     "InvalidImageName"),
])
def test_a_worker_on_its_node_starts_waits_or_fails_for_good(waiting, pulls, kind, fragment):
    events = STARTING + [event(WORKER, "Failed", message, at=at(7)) for message in pulls]
    state = pod_state(pending(node=NODE, waiting=waiting), events)
    assert state.kind == kind, state
    assert fragment in state.line and "\n" not in state.line, state.line


def test_a_ray_container_in_a_crash_loop_fails_for_good_with_its_last_words():
    pod = ray_pod(WORKER, CLUSTER, "worker", "gpu", phase="Running", node=NODE,
                  waiting=("CrashLoopBackOff", f"back-off 2m40s restarting failed container=ray-worker pod={WORKER}"),
                  last_exit=("Error", "ConnectionError: ray client failed to connect to the GCS at 10.0.0.4:6379"))
    state = pod_state(pod, STARTING)
    assert state.kind == FATAL
    assert state.line.startswith("CrashLoopBackOff: ConnectionError: ray client failed to connect to the GCS")
    assert f"`kubectl logs --previous {WORKER}`" in state.line


@pytest.mark.parametrize(("message", "kind"), [
    ('MountVolume.SetUp failed for volume "settings" : configmap "cifar100-settings" not found', FATAL),
    ('MountVolume.SetUp failed for volume "token" : secret "registry" not found', FATAL),
    ("Unable to attach or mount volumes: unmounted volumes=[results], unattached volumes=[]: timed out waiting for the "
     "condition", WAITING),
])
def test_a_volume_that_does_not_mount(message, kind):
    state = pod_state(pending(node=NODE), [*STARTING, event(WORKER, "FailedMount", message, at=at(8))])
    assert state.kind == kind and "FailedMount" in state.line, state


def test_running_and_evicted_workers():
    assert pod_state(ray_pod(WORKER, CLUSTER, "worker", "gpu"), STARTING) is None
    evicted = pending() | {"status": {"phase": "Failed", "reason": "Evicted",
                                      "message": "The node was low on resource: memory."}}
    assert pod_state(evicted, []) == WorkerState(WAITING, "Evicted: The node was low on resource: memory.")


def test_one_verdict_over_the_workers_names_the_pod():
    other = f"{CLUSTER}-gpu-worker-q7r5t"
    scaling = pending(unschedulable=SCHEDULER)
    broken = ray_pod(other, CLUSTER, "worker", "gpu", phase="Pending", node=NODE, waiting=("RunContainerError", NVIDIA))
    triggered = {WORKER: unscheduled(event(WORKER, "TriggeredScaleUp", "pod triggered scale-up: [...]", kind="Normal",
                                           at=at(1)))}
    assert workers_state([scaling], triggered).kind == PROGRESSING
    verdict = workers_state([scaling, broken], triggered)  # one that cannot start outweighs one on its way
    assert verdict.kind == FATAL and verdict.line.startswith(f"pod {other}: RunContainerError:"), verdict
    assert workers_state([ray_pod(WORKER, CLUSTER, "worker", "gpu")], {}) is None


# --- the Watch's clock ---------------------------------------------------------------------------------
class Told:
    """explain() as the cluster would answer it, changed by the test between looks."""

    def __init__(self, state: WorkerState | None):
        self.state, self.looks = state, 0

    def __call__(self):
        self.looks += 1
        return self.state


GPU_WORK, NODES = {"CPU": 1.0, "GPU": 1.0}, [{"CPU": 4.0}]


def watch(told: Told, timeout: float = 100) -> Watch:
    w = Watch(timeout, told, explain_every_s=10, fatal_after_s=30)
    w.expect("gan", Resources(1, 1))
    return w


def test_progress_resets_the_clock_up_to_the_hard_limit():
    told = Told(WorkerState(PROGRESSING, "pod w: starting (Pulling: Pulling image)"))
    w = watch(told)
    for now in range(0, 200, 10):  # pulling for over three minutes: twice the timeout
        assert w._stalled([GPU_WORK], NODES, now) is None, now
    told.state = WorkerState(WAITING, "pod w: FailedScheduling: 0/3 nodes are available")
    assert w._stalled([GPU_WORK], NODES, 200) is None  # no progress since 190: the clock starts there
    assert w._stalled([GPU_WORK], NODES, 280) is None
    message = w._stalled([GPU_WORK], NODES, 290)
    assert message.startswith("gan asking for 1 CPUs and 1 GPUs has waited 290 s for a node that can run it, the last "
                              "100 s without progress (--pending-timeout 100 s)"), message
    assert message.endswith("; pod w: FailedScheduling: 0/3 nodes are available: add such nodes (or let the autoscaler), "
                            "lower the request, or pass --pending-timeout 0 to wait for ever")


def test_nothing_waits_for_ever_however_it_progresses():
    w = watch(Told(WorkerState(PROGRESSING, "pod w: starting (Pulling: Pulling image)")))
    assert all(w._stalled([GPU_WORK], NODES, now) is None for now in range(0, 300, 10))
    message = w._stalled([GPU_WORK], NODES, 300)
    assert "has waited 300 s for a node that can run it, 3 x --pending-timeout 100 s, although the workers were still " \
           "progressing; the cluster's nodes have 4 CPUs, 0 GPUs; pod w: starting" in message, message


def test_a_failure_that_cannot_resolve_ends_the_wait_once_confirmed_not_at_the_timeout():
    told = Told(WorkerState(FATAL, "pod w: ErrImagePull: not found; waiting cannot fix this: check image.tag"))
    w = watch(told, timeout=1800)
    assert w._stalled([GPU_WORK], NODES, 0) is None and w._stalled([GPU_WORK], NODES, 20) is None  # seen twice, 20 s
    assert w._stalled([GPU_WORK], NODES, 30) == ("gan asking for 1 CPUs and 1 GPUs cannot start: pod w: ErrImagePull: "
                                                 "not found; waiting cannot fix this: check image.tag")
    told.state = WorkerState(FATAL, "pod w: ErrImagePull: not found")  # a flicker restarts the confirmation
    w = watch(told, timeout=1800)
    w._stalled([GPU_WORK], NODES, 0)
    told.state = WorkerState(WAITING, "pod w: Pending")
    w._stalled([GPU_WORK], NODES, 10)
    told.state = WorkerState(FATAL, "pod w: ErrImagePull: not found")
    assert w._stalled([GPU_WORK], NODES, 20) is None and w._stalled([GPU_WORK], NODES, 40) is None
    assert w._stalled([GPU_WORK], NODES, 50).endswith("cannot start: pod w: ErrImagePull: not found")


def test_the_pods_are_read_now_and_then_not_every_poll():
    told = Told(WorkerState(WAITING, "pod w: FailedScheduling"))
    w = watch(told)
    for now in range(0, 60, 2):
        w._stalled([GPU_WORK], NODES, now)
    assert told.looks == 6  # every 10 s
    w._stalled([], NODES, 62)  # placed: nothing to explain
    assert told.looks == 6


# --- on a real Ray cluster, the API server answering as GKE would --------------------------------------
@pytest.fixture
def in_pod(tmp_path, monkeypatch):
    """A fake GKE whose namespace `ml` holds the Ray head and a GPU worker; this process is the head's driver."""
    kube = gke()
    kube.put("v1", "pods", "ml", ray_pod(f"{CLUSTER}-head-9wq4d", CLUSTER, "head", "headgroup"))
    with kube:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(kube.port))
        monkeypatch.setenv("RAY_CLUSTER_NAME", CLUSTER)
        account = kube.service_account_dir(tmp_path / "serviceaccount")
        yield kube, lambda: worker_state(account, timeout_s=60)


def unplaceable_gpu_work(cluster):
    import ray

    ray.init(address=cluster.address)
    return ray.remote(num_cpus=1, num_gpus=1)(lambda: None).remote()  # no node has a GPU, or ever will


def wait_for(condition, what: str, timeout_s: float = 600):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def event_reads(kube) -> int:
    return sum(1 for method, path in kube.requests if path.endswith("/events"))


@pytest.mark.slow  # a real multi-node Ray cluster
def test_a_worker_that_cannot_start_ends_the_command_at_once_on_a_real_cluster(in_pod, cluster_env, cluster):
    import ray

    from cifar_core.execution.runners import OnRay

    kube, explain = in_pod
    kube.put("v1", "pods", "ml", ray_pod(WORKER, CLUSTER, "worker", "gpu", phase="Pending", node=NODE,
                                         waiting=("RunContainerError", NVIDIA)))
    try:
        ref = unplaceable_gpu_work(cluster)
        started = time.monotonic()
        with Watch(1800, explain, explain_every_s=0.5, fatal_after_s=3).running() as watch:
            watch.expect("gan", Resources(1, 1))
            with pytest.raises(PendingTimeout) as failed:
                OnRay(watch).get(ref)  # the driver's own wait, ended by the watch
        assert time.monotonic() - started < 1800  # long before the pending timeout: at the confirmation
        assert str(failed.value).startswith(f"gan asking for 1 CPUs and 1 GPUs cannot start: pod {WORKER}: "
                                            "RunContainerError: failed to create containerd task")
        assert "unsatisfied condition: cuda>=13.0" in str(failed.value) and "R580+" in str(failed.value)
    finally:
        ray.shutdown()


@pytest.mark.slow  # a real multi-node Ray cluster
def test_a_scale_up_keeps_the_work_waiting_until_the_autoscaler_gives_up(in_pod, cluster_env, cluster):
    import ray

    kube, explain = in_pod
    kube.put("v1", "pods", "ml", pending(unschedulable=SCHEDULER))
    for e in unscheduled(event(WORKER, "TriggeredScaleUp", f"pod triggered scale-up: [{{{GKE_GROUP} 0->1 (max: 4)}}]",
                               kind="Normal", at=at(1))):
        kube.put("v1", "events", "ml", e)
    try:
        unplaceable_gpu_work(cluster)
        watching = Watch(3, explain, explain_every_s=0.5)
        watching.HARD_LIMIT_FACTOR = 100  # this test is about the clock progress resets; the limit has its own
        with watching.running() as watch:
            watch.expect("gan", Resources(1, 1))
            # The pods were read, each time as progressing, for well over the 3 s timeout: still waiting.
            first = wait_for(lambda: event_reads(kube) and time.monotonic(), "the first look at the pods")
            wait_for(lambda: event_reads(kube) >= 4 and time.monotonic() - first > 8, "looks past the timeout")
            assert watch.failure is None, watch.failure
            kube.put("v1", "events", "ml", event(WORKER, "FailedScaleUp", "Node scale up in zones us-central1-a associated "
                                                 "with this pod failed: GCE quota exceeded. Pod is at risk of not being "
                                                 "scheduled.", at=at(40)))
            failure = wait_for(lambda: watch.failure, "the wait to end once the scale-up failed")
        assert isinstance(failure, PendingTimeout)
        message = str(failure)
        assert message.startswith("gan asking for 1 CPUs and 1 GPUs has waited "), message
        assert "without progress (--pending-timeout 3 s)" in message
        assert (f"pod {WORKER}: FailedScheduling: {SCHEDULER}; the cluster autoscaler: FailedScaleUp: Node scale up in "
                "zones us-central1-a associated with this pod failed: GCE quota exceeded.") in message
        assert "(raise the cloud's GPU quota for the region)" in message
    finally:
        ray.shutdown()
