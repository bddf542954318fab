"""What the cluster could ever run: its live nodes and the node types an autoscaler may add. Work no
node could run is refused before anything starts (`check_feasible`) instead of queued for ever.
"""

from __future__ import annotations

import os

from cifar_core.errors import ConfigError
from cifar_core.execution.resources import Resources
from cifar_core.quantity import ray_cpus


def default_gpus(with_ray: bool) -> float:
    """One GPU per task where there are GPUs (the cluster's nodes, or those an autoscaler may
    start; in this process: this machine's), else none."""
    if with_ray:
        return 1.0 if any(capacity.get("GPU", 0) >= 1 for capacity in node_capacities()) else 0.0
    import torch

    return 1.0 if torch.cuda.is_available() else 0.0


# --- can the cluster run it at all? ---------------------------------------------------------------
def check_feasible(requests: dict[str, Resources]) -> None:
    """Refuse, before anything starts, work that no node of the cluster could ever run.

    A node can run a task if its total resources cover the request; counted are the nodes alive
    now and the node groups an autoscaler may start (KubeRay's autoscaler v2 publishes them), so a
    GPU worker group that scales from zero still counts. Without this, Ray would queue the task
    forever.
    """
    import ray

    if not ray.is_initialized():
        return
    capacities = node_capacities()
    for what, request in requests.items():
        if not any(_covers(capacity, request) for capacity in capacities):
            largest = max(capacities, key=lambda c: (c.get("GPU", 0), c.get("CPU", 0)), default={})
            raise ConfigError(
                f"{what} asks for {request.describe()} per task, but no node of this Ray cluster has that much "
                f"(the largest has {largest.get('CPU', 0):g} CPUs and {largest.get('GPU', 0):g} GPUs): lower it or "
                "add such nodes"
            )


# Node types an autoscaler may add but that are not up yet, as the deployment describes them: a JSON
# list like [{"cpu": "8", "gpus": 1, "max": 4}] (CPU as a Kubernetes quantity, `max` nodes of the
# type). The chart sets it from its worker groups when KubeRay's autoscaler grows them from zero.
AUTOSCALED_WORKERS_ENV = "CIFAR_AUTOSCALED_WORKERS"


def node_capacities() -> list[dict[str, float]]:
    """Total resources of every alive node and of every node type the autoscaler may add."""
    import ray
    from ray._private.state import state

    capacities = [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
    capacities += autoscaled_workers()
    try:
        config = state.get_cluster_config()
    except Exception:  # no autoscaler v2 state on this cluster
        config = None
    if config is not None:
        for group in config.node_group_configs:
            if group.max_count != 0:
                capacities.append(dict(group.resources))
    return capacities


def autoscaled_workers() -> list[dict[str, float]]:
    """The worker types of AUTOSCALED_WORKERS_ENV as one node's Ray resources and how many such
    nodes there may be: [{"CPU": 8.0, "GPU": 1.0, "max": 4}]. Read with the bounded JSON parser and
    checked as what each value becomes: a number Ray could not count is refused, naming the entry."""
    from cifar_core.atomic import parse_json
    from cifar_core.errors import CifarError

    text = os.environ.get(AUTOSCALED_WORKERS_ENV, "").strip()
    if not text:
        return []
    expected = 'expected a JSON list like [{"cpu": "8", "gpus": 1, "max": 4}]'
    try:
        types = parse_json(text, f"${AUTOSCALED_WORKERS_ENV}")
    except CifarError as exc:
        raise ConfigError(f"{exc}: {expected}") from None
    if not isinstance(types, list) or not all(isinstance(t, dict) for t in types):
        raise ConfigError(f"${AUTOSCALED_WORKERS_ENV}: {expected}")
    return [_worker_type(i, t) for i, t in enumerate(types)]


def _worker_type(index: int, entry: dict) -> dict[str, float]:
    where = f"${AUTOSCALED_WORKERS_ENV}[{index}]"
    try:
        cpus = ray_cpus(entry.get("cpu", 0))
    except ValueError:
        raise ConfigError(f"{where}.cpu = {entry.get('cpu')!r} is not a CPU quantity (e.g. \"8\" or \"7500m\")") from None
    gpus, most = entry.get("gpus", 0), entry.get("max", 1)
    if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not 0 <= gpus <= 1e6:
        raise ConfigError(f"{where}.gpus = {gpus!r}: expected a number of GPUs in [0, 1e6]")
    if isinstance(most, bool) or not isinstance(most, int) or not 0 <= most <= 1e6:
        raise ConfigError(f"{where}.max = {most!r}: expected a whole number of nodes in [0, 1e6]")
    return {"CPU": cpus, "GPU": float(gpus), "max": most}


def cluster_gpus() -> float:
    """GPUs of the cluster: those of its nodes now, or the most its autoscaler may bring up."""
    import ray
    from ray._private.state import state

    now = ray.cluster_resources().get("GPU", 0)
    try:
        most = (state.get_max_resources_from_cluster_config() or {}).get("GPU", 0)
    except Exception:  # no autoscaler v2 state on this cluster
        most = 0
    described = sum(t["GPU"] * t["max"] for t in autoscaled_workers())
    return float(max(now, most, described))


def _covers(capacity: dict[str, float], request: Resources) -> bool:
    return capacity.get("CPU", 0) >= request.cpus and capacity.get("GPU", 0) >= request.gpus
