"""Where a stage's work runs: as Ray tasks, or in this process.

With Ray (the cluster named by RAY_ADDRESS, or a local Ray the command starts) every unit of work
is a Ray task that declares its CPUs and GPUs. Ray places it on a node that has them, starts it
only once the tasks it takes as arguments have finished (so nothing holds a GPU while it waits for
an input), and runs it again on another node when its node dies or the task is preempted; the
work itself resumes from its last checkpoint on the shared results directory. Without Ray the same
functions run one after another in this process, in the order they were submitted.

Either way a caller submits work and gets handles, and reads a handle's result with `get`; an
error comes back as the original exception (a one-line CifarError stays one line).
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cifar_core.errors import ConfigError

# Runs of a task after its node died or its process was preempted; each resumes from the run's last
# checkpoint. A user error (CifarError) or a bug is never retried: it would only fail again.
NODE_LOSS_RETRIES = 3
FORWARDED_ENV_PREFIX = "CIFAR_"  # the driver's settings that its Ray tasks see too
# How long a Ray task waits for its run directory's lock. A retried task may find the lock of its
# dead predecessor still held: on NFS, until the dead node's lease expires (typically 90 s).
LOCK_WAIT_IN_TASK_S = 120.0


@dataclass(frozen=True)
class Resources:
    """What one task of a stage reserves: CPU cores and a GPU share (fractions share a GPU)."""

    cpus: float = 1.0
    gpus: float = 0.0

    @classmethod
    def from_dict(cls, values: dict[str, Any], what: str) -> Resources:
        unknown = set(values) - {"cpus", "gpus"}
        if unknown:
            raise ConfigError(f"{what}: unknown key {sorted(unknown)[0]!r} (known: cpus, gpus)")
        resources = cls(**values)
        resources.validate(what)
        return resources

    def validate(self, what: str) -> None:
        for name in ("cpus", "gpus"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{what}.{name} = {value!r}: expected a finite number >= 0")
        if self.gpus > 1 and self.gpus != int(self.gpus):
            raise ConfigError(f"{what}.gpus = {self.gpus}: a share above 1 GPU must be a whole number")

    def ray_options(self) -> dict[str, float]:
        return {"num_cpus": self.cpus, "num_gpus": self.gpus}

    def device(self, requested: str) -> str:
        """The device a task with these resources trains on.

        `auto` follows what the task was given (a GPU share: cuda; none: cpu), never torch's own
        guess, so a task never silently trains on the CPU while holding a GPU, nor grabs a GPU Ray
        gave to another task. Asking for cuda without a GPU share is refused here, before any work.
        """
        if requested == "auto":
            return "cuda" if self.gpus > 0 else "cpu"
        if requested.startswith("cuda") and self.gpus == 0:
            raise ConfigError(f"--device {requested} needs a GPU share for the task: give it --gpus (or resources.*.gpus)")
        return requested


# --- where work ran -------------------------------------------------------------------------------
def ran_on(device: str, since: float | None = None) -> dict[str, Any]:
    """The Ray node, host and device of the calling process (node_id None outside Ray), and the
    seconds of work since `since` (a time.monotonic() reading) when given."""
    node_id = None
    try:
        import ray

        if ray.is_initialized():
            node_id = ray.get_runtime_context().get_node_id()
    except ImportError:  # pragma: no cover - Ray is a dependency
        pass
    place = {"node_id": node_id, "hostname": socket.gethostname(), "device": device, "device_name": device_name(device)}
    if since is not None:
        place["work_s"] = round(time.monotonic() - since, 3)
    return place


def run_stage(work: InProcess | OnRay, resources: Resources, fn: Callable[..., dict], summary_path: str | os.PathLike,
              device: str, **kwargs: Any) -> dict:
    """`fn(device=..., **kwargs)` as one unit of work (a Ray task, or here); the summary it writes
    at `summary_path` (and returns) gains `ran_on`: where it ran and for how long."""
    kwargs = {key: absolute(value) for key, value in kwargs.items()}
    return work.get(work.submit(_recorded, resources, fn, os.path.abspath(summary_path), resources.device(device),
                                kwargs))


def _recorded(fn: Callable[..., dict], summary_path: str, device: str, kwargs: dict) -> dict:
    from cifar_core.atomic import atomic_write_json, read_json

    start = time.monotonic()
    fn(device=device, **kwargs)
    summary = read_json(summary_path)
    summary["ran_on"] = [ran_on(device, since=start)]
    atomic_write_json(summary_path, summary)
    return summary


def device_name(device: str) -> str:
    """cifar_core.device.device_name, without importing torch for a CPU task (the data check and
    the report never need it)."""
    if not device.startswith("cuda"):
        return "cpu"
    from cifar_core.device import device_name as gpu_name

    return gpu_name(device)


# --- running work ---------------------------------------------------------------------------------
@dataclass
class Done:
    """The outcome of work already run in this process: its value, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


class InProcess:
    """Runs each submitted function at once, in this process; arguments are plain values."""

    uses_ray = False
    lock_wait_s = 0.0  # a second writer of a run fails at once

    def submit(self, fn: Callable, resources: Resources, *args: Any) -> Done:
        try:
            return Done(value=fn(*(_value(a) for a in args)))
        except Exception as exc:  # kept for `get`, as Ray keeps a task's exception
            return Done(error=exc)

    def get(self, handle: Done) -> Any:
        return _value(handle)


class OnRay:
    """Submits each function as a Ray task with its resources; handles are ObjectRefs.

    An ObjectRef passed as an argument makes Ray start the task only after that input exists, and
    fail it at once, with the input's error, when the input failed.
    """

    uses_ray = True
    lock_wait_s = LOCK_WAIT_IN_TASK_S

    def submit(self, fn: Callable, resources: Resources, *args: Any):
        import ray

        from cifar_core.errors import Preempted

        args = tuple(absolute(_value(a)) for a in args)
        task = ray.remote(_run_task).options(
            **resources.ray_options(),
            max_retries=NODE_LOSS_RETRIES,  # node or worker process died
            retry_exceptions=[Preempted],  # SIGTERM before an eviction: checkpointed, run it again
            name=getattr(fn, "__name__", "task"),
        )
        return task.remote(fn, resources.cpus, *args)

    def get(self, ref) -> Any:
        import ray

        if isinstance(ref, Done):  # work done in this process (a search coordinated from here)
            return _value(ref)
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            raise _original(exc) from None


def after(fn: Callable, count: int, *needed_then_args: Any) -> Any:
    """`fn(*args)` in a task that takes the first `count` arguments (the results of the work it
    comes after) only so that Ray starts it once they exist; their values are not used."""
    return fn(*needed_then_args[count:])


def absolute(value: Any) -> Any:
    """A relative path made absolute against this process's working directory, as the user meant
    it: a task runs in its worker's working directory, on whichever node Ray chose."""
    if isinstance(value, os.PathLike) and not os.path.isabs(value):
        return type(value)(os.path.abspath(value))
    return value


def _value(handle: Any) -> Any:
    """A handle's value if it is work done in this process, else the handle itself."""
    if isinstance(handle, Done):
        if handle.error is not None:
            raise handle.error
        return handle.value
    return handle


def _original(exc: BaseException) -> BaseException:
    """The exception the task raised, unwrapped from Ray's (possibly nested) RayTaskError."""
    import ray

    while isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None:
        exc = exc.cause
    return exc


def _run_task(fn: Callable, cpus: float, *args: Any) -> Any:
    # A task uses the cores it reserved: torch would otherwise start a thread per core of the node.
    # Tasks that never import torch (the data check, the report) do not pay for importing it here.
    threads = max(1, int(cpus))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when the task imports it
    return fn(*args)


# --- the Ray session ------------------------------------------------------------------------------
def ray_address() -> str | None:
    return os.environ.get("RAY_ADDRESS") or None


def use_ray(requested: bool | None) -> bool:
    """--ray/--no-ray as given; unset: Ray when RAY_ADDRESS names a cluster, else this process."""
    if requested is not None:
        return requested
    return ray_address() is not None


@contextmanager
def ray_session() -> Iterator[None]:
    """The cluster in RAY_ADDRESS, or a new local Ray using every core here; shut down after.

    A local Ray is started with address="local": without it Ray joins whatever cluster an address
    file left in its temporary directory names, and a stale one from a dead session fails the command.
    """
    import ray

    if ray.is_initialized():  # a caller (a test, a notebook, the pipeline) already chose the cluster
        yield
        return
    address = ray_address()
    # Tasks run in worker processes the nodes started, not in this one: they get this command's
    # own settings (CIFAR_FID_WEIGHTS, ...) through the job's runtime environment.
    runtime_env = {"env_vars": {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}}
    try:
        if address:
            ray.init(address=address, include_dashboard=False, runtime_env=runtime_env)
        else:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, runtime_env=runtime_env)
    except (ConnectionError, TimeoutError) as exc:
        where = f"RAY_ADDRESS={address}" if address else "a local Ray"
        raise ConfigError(f"cannot start or reach {where}: {str(exc).splitlines()[0]}") from None
    try:
        yield
    finally:
        ray.shutdown()


def runner(with_ray: bool) -> InProcess | OnRay:
    return OnRay() if with_ray else InProcess()


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
                f"{what} asks for {request.cpus:g} CPUs and {request.gpus:g} GPUs per task, but no node of this "
                f"Ray cluster has that much (the largest has {largest.get('CPU', 0):g} CPUs and "
                f"{largest.get('GPU', 0):g} GPUs): lower it or add such nodes"
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
    nodes there may be: [{"CPU": 8.0, "GPU": 1.0, "max": 4}]."""
    import json

    text = os.environ.get(AUTOSCALED_WORKERS_ENV, "").strip()
    if not text:
        return []
    try:
        return [{"CPU": _cpu_quantity(t.get("cpu", 0)), "GPU": float(t.get("gpus", 0)), "max": int(t.get("max", 1))}
                for t in json.loads(text)]
    except (ValueError, TypeError, AttributeError):
        raise ConfigError(f"${AUTOSCALED_WORKERS_ENV} = {text!r}: expected a JSON list like "
                          f'[{{"cpu": "8", "gpus": 1, "max": 4}}]') from None


def _cpu_quantity(value: Any) -> float:
    """A Kubernetes CPU quantity ("4", "500m", 2) as cores; Ray counts whole cores of a pod's limit."""
    text = str(value)
    cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return float(math.floor(cores))


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
