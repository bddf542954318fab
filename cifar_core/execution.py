"""Where a stage's work runs (Ray tasks, or this process), and the one way to run it: `submit_stage`.

On Ray each unit is a task with the CPUs and GPUs it declares, started only once the work it needs
(by name) exists, so nothing holds a GPU while it waits; a task whose node dies runs again elsewhere
and resumes from its last checkpoint. A `Watch` turns a stalled driver into one line: work no node
takes (--pending-timeout), SIGTERM or SIGINT (exit 143, 130), a head that stops answering.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cifar_core.device import pick_device
from cifar_core.errors import CifarError, ConfigError, Interrupted, Preempted
from cifar_core.fields import above, at_least, check_fields, setting

# Runs of a task after its node died or its process was preempted; each resumes from the run's last
# checkpoint. A user error (CifarError) or a bug is never retried: it would only fail again.
NODE_LOSS_RETRIES = 3
FORWARDED_ENV_PREFIX = "CIFAR_"  # the driver's settings that its Ray tasks see too
# How long a Ray task waits for its run directory's lock. A retried task may find the lock of its
# dead predecessor still held: on NFS, until the dead node's lease expires (typically 90 s).
LOCK_WAIT_IN_TASK_S = 120.0
# Long enough for a GPU node pool to scale up from zero and pull the image.
PENDING_TIMEOUT_ENV, DEFAULT_PENDING_TIMEOUT_S = "CIFAR_PENDING_TIMEOUT", 1800.0


def _whole_above_one(value: float, key: str) -> None:
    if value > 1 and value != int(value):
        raise ConfigError(f"{key} = {value:g}: a share above 1 GPU must be a whole number")


@dataclass(frozen=True)
class Resources:
    """What one task of a stage reserves: CPU cores and a GPU share (fractions share a GPU)."""

    cpus: float = setting(1.0, "CPU cores each task reserves (and the torch threads it uses).", range=above(0))
    gpus: float = setting(0.0, "GPU share of each task (fractions share a GPU).", range=at_least(0),
                          check=_whole_above_one)

    def checked(self, what: str = "resources") -> Resources:
        check_fields(self, f"{what}.")
        return self

    def ray_options(self) -> dict[str, float]:
        return {"num_cpus": self.cpus, "num_gpus": self.gpus}

    def device(self, requested: str) -> str:
        """The device a task with these resources trains on (cifar_core.device.pick_device)."""
        return pick_device(requested, self.gpus)

    def describe(self) -> str:
        return f"{self.cpus:g} CPUs and {self.gpus:g} GPUs"


# --- where work ran -------------------------------------------------------------------------------
def ran_on(device: str, since: float | None = None) -> dict[str, Any]:
    """The Ray node, host and device of the calling process (node_id None outside Ray); with `since`
    (a time.time() reading), when the work started and ended and its seconds."""
    from cifar_core.device import device_name

    node_id = None
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        node_id = sys.modules["ray"].get_runtime_context().get_node_id()
    place = {"node_id": node_id, "hostname": socket.gethostname(), "device": device, "device_name": device_name(device)}
    if since is not None:
        now = time.time()
        place.update(started_at=round(since, 3), ended_at=round(now, 3), work_s=round(now - since, 3))
    return place


def work_span_s(places: list[dict[str, Any]] | None) -> float | None:
    """A stage's own time: from its first unit's start to its last unit's end (None if unknown)."""
    timed = [p for p in places or [] if "started_at" in p and "ended_at" in p]
    if not timed:
        return None
    return round(max(p["ended_at"] for p in timed) - min(p["started_at"] for p in timed), 3)


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

    def submit(self, fn: Callable, resources: Resources, *args: Any, name: str = "", **kwargs: Any) -> Done:
        try:
            return Done(value=fn(*(_value(a) for a in args), **{k: _value(v) for k, v in kwargs.items()}))
        except Exception as exc:  # kept for `get`, as Ray keeps a task's exception
            return Done(error=exc)

    def ready(self, handle: Done) -> bool:
        return True

    def get(self, handle: Done) -> Any:
        return _value(handle)


class OnRay:
    """Submits each function as a Ray task with its resources; handles are ObjectRefs.

    An ObjectRef passed as an argument makes Ray start the task only after that input exists, and
    fail it at once, with the input's error, when the input failed.
    """

    uses_ray = True
    lock_wait_s = LOCK_WAIT_IN_TASK_S

    def __init__(self, watch: Watch | None = None):
        self.watch = watch

    def submit(self, fn: Callable, resources: Resources, *args: Any, name: str = "", **kwargs: Any):
        import ray

        task = ray.remote(_run_task).options(
            **resources.ray_options(),
            max_retries=NODE_LOSS_RETRIES,  # node or worker process died
            retry_exceptions=[Preempted],  # SIGTERM before an eviction: checkpointed, run it again
            name=name or getattr(fn, "__name__", "task"),
        )
        if self.watch is not None:  # a stall names the stage ("retrain", not "retrain:2")
            self.watch.expect((name or getattr(fn, "__name__", "task")).split(":")[0], resources)
        return task.remote(fn, resources.cpus, *(absolute(_value(a)) for a in args),
                           **{k: absolute(_value(v)) for k, v in kwargs.items()})

    def ready(self, ref) -> bool:
        import ray

        if isinstance(ref, Done):
            return True
        done, _ = ray.wait([ref], timeout=0)
        return bool(done)

    def get(self, ref) -> Any:
        import ray

        if isinstance(ref, Done):  # work done in this process (a search coordinated from here)
            return _value(ref)
        while True:  # in slices, so that the watch can end the wait
            if self.watch is not None:
                self.watch.check()
            done, _ = ray.wait([ref], timeout=1.0)
            if done:
                break
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            raise _original(exc) from None
        except ray.exceptions.RayError as exc:  # the task's node, worker or the cluster itself is gone
            raise CifarError(f"Ray lost the work ({' '.join(str(exc).split())[:300]}): run the same command again "
                             "once the cluster is back; finished work is kept") from None


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


def _run_task(fn: Callable, cpus: float, *args: Any, **kwargs: Any) -> Any:
    # A task uses the cores it reserved: torch would otherwise start a thread per core of the node.
    # Tasks that never import torch (the data check, the report) do not pay for importing it here.
    threads = max(1, int(cpus))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when the task imports it
    return fn(*args, **kwargs)


# --- the one way to run a stage -------------------------------------------------------------------
def submit_stage(work: InProcess | OnRay, fn: Callable[..., Any], *, resources: Resources, device: str | None = None,
                 summary: str | os.PathLike | None = None, needs: dict[str, Any] | None = None,
                 name: str = "", **kwargs: Any) -> Any:
    """Submit `fn(**kwargs)` as one unit of a stage's work, started once every handle in `needs`
    (named: {"gan": handle}) has finished; `needed=` passes their results when `fn` takes them.
    With `device` ("auto", "cuda", ...), `fn` gets `device=` as the task's resources allow. The
    result (a dict) gains `ran_on`: [where it ran, when, how long], also written into `summary`
    (the summary.json `fn` wrote) when given; a unit whose result lists `ran_on` itself (a table of
    other units' work) keeps that. Returns a handle for `work.get`."""
    kwargs = {key: absolute(value) for key, value in kwargs.items()}
    if device is not None:
        kwargs["device"] = resources.device(device)
    path = os.path.abspath(summary) if summary is not None else None
    return work.submit(_stage_unit, resources, fn, kwargs, path, name=name or getattr(fn, "__name__", "task"),
                       **{f"{_NEED}{key}": handle for key, handle in (needs or {}).items()})


def run_stage(work: InProcess | OnRay, fn: Callable[..., Any], **options: Any) -> Any:
    """`submit_stage` and wait for it: a single stage of the CLI."""
    return work.get(submit_stage(work, fn, **options))


_NEED = "need__"  # keyword prefix of the handles a unit waits for: Ray resolves them before it starts


def _stage_unit(fn: Callable[..., Any], kwargs: dict, summary: str | None, **needed: Any) -> Any:
    import inspect

    started = time.time()
    if needed and "needed" in inspect.signature(fn).parameters:
        kwargs = {**kwargs, "needed": {key.removeprefix(_NEED): value for key, value in needed.items()}}
    result = fn(**kwargs)
    place = ran_on(kwargs.get("device", "cpu"), since=started)
    if isinstance(result, dict) and "ran_on" not in result:  # a table of other units keeps theirs
        result = {**result, "ran_on": [place]}
    if summary is not None:
        from cifar_core.atomic import atomic_write_json, read_json

        recorded = read_json(summary)
        recorded["ran_on"] = [place]
        atomic_write_json(summary, recorded)
    return result


# --- the Ray session ------------------------------------------------------------------------------
def ray_address() -> str | None:
    return os.environ.get("RAY_ADDRESS") or None


def use_ray(requested: bool | None) -> bool:
    """--ray/--no-ray as given; unset: Ray when RAY_ADDRESS names a cluster, else this process."""
    if requested is not None:
        return requested
    return ray_address() is not None


def pending_timeout_s(given: float | None = None) -> float:
    """--pending-timeout as given, else $CIFAR_PENDING_TIMEOUT, else 30 minutes; 0 waits for ever."""
    if given is not None:
        return given
    text = os.environ.get(PENDING_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_PENDING_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"${PENDING_TIMEOUT_ENV} = {text!r}: expected seconds >= 0 (0 waits for ever)")
    return value


@contextmanager
def ray_session(pending_timeout: float | None = None, explain: Callable[[], str | None] | None = None,
                standing: Callable[[], None] | None = None) -> Iterator[Watch]:
    """The cluster in RAY_ADDRESS, or a new local Ray using every core here, with a `Watch` over the
    driver's waits; shut down after. (A caller that already started Ray keeps its session.)

    A local Ray is started with address="local": without it Ray joins whatever cluster an address
    file left in its temporary directory names, and a stale one from a dead session fails the command.
    `explain()` says why workers wait (the pods' events, on Kubernetes); `standing()` is called now
    and then while work runs (the pipeline prints where it stands).
    """
    import ray

    timeout = pending_timeout_s(pending_timeout)
    if ray.is_initialized():  # a caller (a test, a notebook) already chose the cluster
        with Watch(timeout, explain, standing).running() as watch:
            yield watch
        return
    address = ray_address()
    # Tasks run in worker processes the nodes started, not in this one: they get this command's
    # own settings (CIFAR_FID_WEIGHTS, ...) through the job's runtime environment.
    runtime_env = {"env_vars": {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}}
    # Tune's own SIGINT handler would end a search quietly; the Watch handles SIGINT (and SIGTERM).
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    from cifar_core import reaper

    keeper = None if address else reaper.watch()  # a local Ray's processes die with this one, even by SIGKILL
    try:
        try:
            if address:
                _require_answer(address)
                ray.init(address=address, include_dashboard=False, runtime_env=runtime_env)
            else:
                ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, runtime_env=runtime_env)
        except (ConnectionError, TimeoutError) as exc:
            where = f"RAY_ADDRESS={address}" if address else "a local Ray"
            raise ConfigError(f"cannot start or reach {where}: {str(exc).splitlines()[0]}") from None
        try:
            with Watch(timeout, explain, standing).running() as watch:
                yield watch
        finally:
            ray.shutdown()
    finally:
        reaper.release(keeper)


CONNECT_TIMEOUT_S = 10.0


def _require_answer(address: str) -> None:
    """Nothing listening at RAY_ADDRESS is one line in seconds, not minutes of Ray's retries."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise ConfigError(f"nothing answers at RAY_ADDRESS={address} ({reason}): start the cluster, or unset "
                          "RAY_ADDRESS to run on a local Ray") from None


def runner(with_ray: bool, watch: Watch | None = None) -> InProcess | OnRay:
    return OnRay(watch) if with_ray else InProcess()


# --- watching the driver's waits ------------------------------------------------------------------
class PendingTimeout(CifarError):
    """Work waited longer than the pending timeout for a node that could run it."""


class Watch:
    """While the driver waits for Ray work: SIGTERM and SIGINT end the wait (Preempted, Interrupted;
    a running search is stopped Tune's own way, its state saved), work that no live node could ever
    take fails after `pending_timeout_s` (PendingTimeout), and a head that no longer answers ends the
    command with one line. `check()` raises what happened; waits call it every second."""

    POLL_S = 2.0
    HEAD_LOST_S = 20.0  # Ray's core worker ends the process after 60 s without its head: say why first
    STANDING_EVERY_S = 60.0

    def __init__(self, pending_timeout_s: float, explain: Callable[[], str | None] | None = None,
                 standing: Callable[[], None] | None = None):
        self.pending_timeout_s = pending_timeout_s
        self.explain = explain
        self.standing = standing
        self.failure: BaseException | None = None
        self._expected: dict[tuple[float, float], list[str]] = {}
        self._unplaceable_since: dict[tuple, float] = {}
        self._stopped = threading.Event()

    def expect(self, name: str, resources: Resources) -> None:
        """Work of these resources is `name`'s: a stall then names what waits."""
        names = self._expected.setdefault((float(resources.cpus), float(resources.gpus)), [])
        if name not in names:
            names.append(name)

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure

    # -- signals --
    def stop(self, failure: BaseException) -> None:
        """End the driver's waits with `failure`; a search in progress stops Tune's own way (the
        handler Tune installs for SIGUSR1 saves the experiment and returns from `fit`)."""
        if self.failure is None:
            self.failure = failure
        if signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            os.kill(os.getpid(), signal.SIGUSR1)

    def _on_signal(self, signum, frame) -> None:
        if signum == signal.SIGTERM:
            self.stop(Preempted("stopped by SIGTERM; every finished step is checkpointed: run the same command "
                                "again to continue"))
        else:
            self.stop(Interrupted("stopped by SIGINT (Ctrl-C); every finished step is checkpointed: run the same "
                                  "command again to continue"))

    @contextmanager
    def running(self) -> Iterator[Watch]:
        in_main = threading.current_thread() is threading.main_thread()
        previous = {}
        if in_main:  # Ray's C++ handler would dump a stack and abort on SIGTERM
            for signum, handler in ((signal.SIGTERM, self._on_signal), (signal.SIGINT, self._on_signal),
                                    (signal.SIGUSR1, lambda *_: None)):
                previous[signum] = signal.signal(signum, handler)
        thread = threading.Thread(target=self._loop, name="cifar-watch", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stopped.set()
            thread.join(timeout=5)
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _loop(self) -> None:
        last_answer = last_standing = time.monotonic()
        while not self._stopped.wait(self.POLL_S):
            now = time.monotonic()
            try:
                demands, capacities = _cluster_demand()
                last_answer = now
            except Exception as exc:  # the head is gone (or restarting)
                if now - last_answer > self.HEAD_LOST_S:
                    print(f"error: the Ray cluster's head stopped answering ({' '.join(str(exc).split())[:200]}); "
                          "run the same command again once it is back: finished work is kept", file=sys.stderr,
                          flush=True)
                    os._exit(2)
                continue
            if self.pending_timeout_s > 0 and self.failure is None:
                stalled = self._stalled(demands, capacities, now)
                if stalled is not None:
                    self.stop(PendingTimeout(stalled))
            if self.standing is not None and now - last_standing >= self.STANDING_EVERY_S:
                last_standing = now
                try:
                    self.standing()
                except Exception:  # a standing line is a courtesy: never let it end the run
                    pass

    def _stalled(self, demands: list[dict[str, float]], capacities: list[dict[str, float]], now: float) -> str | None:
        """A message when some work has waited longer than the timeout for a node able to run it."""
        unplaceable = {_shape(d): d for d in demands if not any(_fits(c, d) for c in capacities)}
        for shape in list(self._unplaceable_since):
            if shape not in unplaceable:
                del self._unplaceable_since[shape]
        for shape, demand in unplaceable.items():
            since = self._unplaceable_since.setdefault(shape, now)
            if now - since >= self.pending_timeout_s:
                cpus, gpus = demand.get("CPU", 0.0), demand.get("GPU", 0.0)
                who = ", ".join(self._expected.get((cpus, gpus), [])) or "work"
                have = "; ".join(sorted({f"{c.get('CPU', 0):g} CPUs, {c.get('GPU', 0):g} GPUs" for c in capacities})) \
                    or "no nodes"
                why = None
                if self.explain is not None:
                    try:
                        why = self.explain()
                    except Exception:
                        why = None
                return (f"{who} asking for {cpus:g} CPUs and {gpus:g} GPUs has waited {now - since:.0f} s for a "
                        f"node that can run it (--pending-timeout {self.pending_timeout_s:g} s); the cluster's nodes "
                        f"have {have}" + (f"; {why}" if why else "") +
                        ": add such nodes (or let the autoscaler), lower the request, or pass --pending-timeout 0 to "
                        "wait for ever")
        return None


def _shape(demand: dict[str, float]) -> tuple:
    return tuple(sorted(demand.items()))


def _fits(capacity: dict[str, float], demand: dict[str, float]) -> bool:
    return all(capacity.get(key, 0.0) >= amount for key, amount in demand.items() if key in ("CPU", "GPU"))


def _cluster_demand() -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """(resource shapes of work waiting to be placed, total resources of every live node), from
    the head (GCS) directly: no dashboard or autoscaler needed."""
    import ray
    from ray.autoscaler.v2.sdk import get_cluster_status

    status = get_cluster_status(ray.get_runtime_context().gcs_address, timeout=5)
    demands = []
    for demand in [*status.resource_demands.ray_task_actor_demand, *status.resource_demands.placement_group_demand]:
        for by_count in demand.bundles_by_count:
            demands.append({k: float(v) for k, v in by_count.bundle.items()})
    capacities = [{k: float(v) for k, v in node.total_resources().items()}
                  for node in [*status.active_nodes, *status.idle_nodes]]
    return demands, capacities


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
    """A Kubernetes CPU quantity ("4", "500m", 2) as cores, rounded up to whole cores as KubeRay and
    Ray's autoscaler count a pod's limit ("7500m" is 8 CPUs for Ray)."""
    text = str(value)
    cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return float(math.ceil(cores))


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
