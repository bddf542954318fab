"""Where a unit of work runs: Ray tasks (`OnRay`) or this process (`InProcess`), and `submit_stage`,
the one way to run a stage's unit. On Ray each unit is a task with the CPUs and GPUs it declares,
started only once the work it needs (by name) exists, so nothing holds a GPU while it waits; a task
whose node dies runs again elsewhere and resumes from its last checkpoint.
"""

from __future__ import annotations

import contextvars
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cifar_core.errors import CifarError, Interrupted, Preempted
from cifar_core.execution.resources import Resources

if TYPE_CHECKING:
    from cifar_core.execution.session import Watch

# Runs of a task after its node died or its process was preempted; each resumes from the run's last
# checkpoint. A user error (CifarError) or a bug is never retried: it would only fail again.
NODE_LOSS_RETRIES = 3
# How long a Ray task waits for its run directory's lock. A retried task may find the lock of its
# dead predecessor still held: on NFS, until the dead node's lease expires (typically 90 s).
LOCK_WAIT_IN_TASK_S = 120.0


def this_node() -> dict[str, Any]:
    """The Ray node id (None outside Ray) and the host name of the calling process."""
    node_id = None
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        node_id = sys.modules["ray"].get_runtime_context().get_node_id()
    return {"node_id": node_id, "hostname": socket.gethostname()}


def ran_on(device: str, since: float | None = None) -> dict[str, Any]:
    """The Ray node, host and device of the calling process (node_id None outside Ray); with `since`
    (a time.time() reading), when the work started and ended and its seconds."""
    from cifar_core.device import device_name

    place = {**this_node(), "device": device, "device_name": device_name(device)}
    if since is not None:
        now = time.time()
        place.update(started_at=round(since, 3), ended_at=round(now, 3), work_s=round(now - since, 3))
    return place


def machine_names(places: list[dict[str, Any]] | None, among: list[dict[str, Any]] | None = None) -> list[str]:
    """Where work ran, named one way everywhere: by host name; the Ray node id's first 8 characters
    join it only where one host carries several nodes (a local multi-node Ray) among `among` (all
    the places of a table; default `places`), or stand alone when the host was not recorded."""
    places = places or []
    nodes_of: dict[str, set[str]] = {}
    for place in [*places, *(among or [])]:
        if place.get("hostname") and place.get("node_id"):  # work outside Ray has no node: it is the host
            nodes_of.setdefault(place["hostname"], set()).add(place["node_id"])
    names = []
    for place in places:
        host, node = place.get("hostname"), (place.get("node_id") or "")[:8]
        name = host if host and (len(nodes_of.get(host, ())) < 2 or not node) else f"{host} ({node})" if host else node
        if name and name not in names:
            names.append(name)
    return sorted(names)


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
        except (Preempted, Interrupted):
            raise  # a signal ends the command at once: nothing after this unit may start
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
                 needs: dict[str, Any] | None = None, name: str = "", **kwargs: Any) -> Any:
    """Submit `fn(**kwargs)` as one unit of a stage's work, started once every handle in `needs`
    (named: {"gan": handle}) has finished; `needed=` passes their results when `fn` takes them.
    With `device` ("auto", "cuda", ...), `fn` gets `device=` as the task's resources allow. While it
    runs, `current_place()` says where and since when: the summary its result directory completes
    records it (cifar_core.resultdir), and the result (a dict) gains `ran_on` too unless it lists
    other units' work itself (a table). Returns a handle for `work.get`."""
    kwargs = {key: absolute(value) for key, value in kwargs.items()}
    if device is not None:
        kwargs["device"] = resources.device(device)
    name = name or getattr(fn, "__name__", "task")
    return work.submit(_stage_unit, resources, fn, kwargs, name, name=name,
                       **{f"{_NEED}{key}": handle for key, handle in (needs or {}).items()})


def run_stage(work: InProcess | OnRay, fn: Callable[..., Any], **options: Any) -> Any:
    """`submit_stage` and wait for it: a single stage of the CLI."""
    return work.get(submit_stage(work, fn, **options))


_NEED = "need__"  # keyword prefix of the handles a unit waits for: Ray resolves them before it starts


def _stage_unit(fn: Callable[..., Any], kwargs: dict, unit_name: str, **needed: Any) -> Any:
    import inspect

    if needed and "needed" in inspect.signature(fn).parameters:
        kwargs = {**kwargs, "needed": {key.removeprefix(_NEED): value for key, value in needed.items()}}
    token = _UNIT.set((kwargs.get("device", "cpu"), time.time(), unit_name.split(":")[0]))
    try:
        result = fn(**kwargs)
        if isinstance(result, dict) and "ran_on" not in result:  # a table of other units keeps theirs
            result = {**result, "ran_on": [current_place()]}
        return result
    finally:
        _UNIT.reset(token)


# (device, time.time() at its start, its stage) of the unit of work running in this process, if any.
_UNIT: contextvars.ContextVar[tuple[str, float, str] | None] = contextvars.ContextVar("cifar_unit", default=None)


def current_place() -> dict[str, Any] | None:
    """Where the unit of work running here runs, and since when (`ran_on`); None outside a unit."""
    unit = _UNIT.get()
    return None if unit is None else ran_on(unit[0], since=unit[1])


def current_stage() -> str | None:
    """The stage whose unit of work runs here ("fid-b"), None outside a unit."""
    unit = _UNIT.get()
    return None if unit is None else unit[2]
