"""The one place a Ray session is opened (`work_session`), and the `Watch` that turns a stalled
driver into one line: work no node takes (--pending-timeout, counted while nothing progresses), pods
that cannot start, SIGTERM or SIGINT (exit 143, 130), a head that stops answering.
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

from cifar_core.errors import CifarError, ConfigError
from cifar_core.execution.resources import Resources
from cifar_core.execution.runners import InProcess, OnRay
from cifar_core.preempt import handling, stopped_by

FORWARDED_ENV_PREFIX = "CIFAR_"  # the driver's settings that its Ray tasks see too
# Long enough for a GPU node pool to scale up from zero and pull the image.
PENDING_TIMEOUT_ENV, DEFAULT_PENDING_TIMEOUT_S = "CIFAR_PENDING_TIMEOUT", 1800.0


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
def work_session(with_ray: bool, *, pending_timeout: float | None = None,
                 explain: Explain | None = None,
                 feasible: dict[str, Resources] | None = None) -> Iterator[InProcess | OnRay]:
    """Where a command's units of work run: Ray tasks on the cluster in RAY_ADDRESS (or a local Ray)
    watched by a `Watch`, or this process. The one place a Ray session is opened. `feasible`
    ({what: Resources}) is refused at once when no node could ever run it."""
    if not with_ray:
        with _signals_end_work():
            yield InProcess()
        return
    with _ray_session(pending_timeout, explain) as watch:
        if feasible:
            from cifar_core.execution.capacity import check_feasible

            check_feasible(feasible)
        yield OnRay(watch)


@contextmanager
def _signals_end_work() -> Iterator[None]:
    """Work in this process ends at once on SIGTERM or SIGINT (Preempted, Interrupted: exit 143, 130),
    wherever it is; a unit that must finish its step first installs its own handler meanwhile
    (cifar_core.preempt). Every write is atomic, so nothing is left torn."""
    def stop(signum, frame) -> None:
        raise stopped_by(signum)

    with handling({signal.SIGTERM: stop, signal.SIGINT: stop}):
        yield


@contextmanager
def _ray_session(pending_timeout: float | None = None, explain: Explain | None = None) -> Iterator[Watch]:
    """The cluster in RAY_ADDRESS, or a new local Ray using every core here, with a `Watch` over the
    driver's waits; shut down after. (A caller that already started Ray keeps its session.)

    A local Ray is started with address="local": without it Ray joins whatever cluster an address
    file left in its temporary directory names, and a stale one from a dead session fails the command.
    `explain()` says what the workers do (a WorkerState, from the pods' events on Kubernetes).
    """
    import ray

    timeout = pending_timeout_s(pending_timeout)
    if ray.is_initialized():  # a caller (a test, a notebook) already chose the cluster
        with Watch(timeout, explain).running() as watch:
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
            with Watch(timeout, explain).running() as watch:
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
    try:
        _connect(address, CONNECT_TIMEOUT_S)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise ConfigError(f"nothing answers at RAY_ADDRESS={address} ({reason}): start the cluster, or unset "
                          "RAY_ADDRESS to run on a local Ray") from None


def _connect(address: str, timeout_s: float) -> None:
    """Whether something listens at HOST:PORT ([::1]:6379 too; no host: this machine): OSError if not."""
    host, _, port = address.rpartition(":")
    socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s).close()


# --- watching the driver's waits ------------------------------------------------------------------
class PendingTimeout(CifarError):
    """Work waited longer than the pending timeout for a node that could run it, or the pods that
    would run it cannot start."""


PROGRESSING, WAITING, FATAL = "progressing", "waiting", "fatal"


@dataclass(frozen=True)
class WorkerState:
    """What `explain()` says of the pods that would run waiting work: PROGRESSING (a node is being
    added, an image pulled: the pending clock waits), WAITING (nothing moves) or FATAL (a start-up
    failure that waiting cannot fix); `line` says which pod and why."""

    kind: str
    line: str | None = None


Explain = Callable[[], "WorkerState | str | None"]  # a plain line is WAITING


class Watch:
    """While the driver waits for Ray work: SIGTERM and SIGINT end the wait (Preempted, Interrupted;
    a running search is stopped Tune's own way, its state saved), work that no live node could ever
    take fails once it has waited `pending_timeout_s` without progress (at most `HARD_LIMIT_FACTOR`
    times that in all) or once `explain()` has said FATAL for `fatal_after_s` (PendingTimeout), and a
    head that no longer answers ends the command with one line. `check()` raises what happened;
    waits call it every second."""

    POLL_S = 2.0
    HEAD_LOST_S = 20.0  # Ray's core worker ends the process after 60 s without its head: say why first
    HEAD_CONNECT_S = 2.0  # a dead head refuses at once; a vanished pod's address times out
    EXPLAIN_EVERY_S = 30.0  # the pods and events are read this often while work waits
    FATAL_AFTER_S = 60.0  # a failure that cannot resolve is seen this long (two looks) before the run ends
    HARD_LIMIT_FACTOR = 3  # progress resets the clock, but nothing waits longer than this x the timeout

    def __init__(self, pending_timeout_s: float, explain: Explain | None = None, *, explain_every_s: float | None = None,
                 fatal_after_s: float | None = None):
        self.pending_timeout_s = pending_timeout_s
        self.explain = explain
        self.explain_every_s = self.EXPLAIN_EVERY_S if explain_every_s is None else explain_every_s
        self.fatal_after_s = self.FATAL_AFTER_S if fatal_after_s is None else fatal_after_s
        self.failure: BaseException | None = None
        self._expected: dict[tuple[float, float], list[str]] = {}
        self._unplaceable_since: dict[tuple, float] = {}
        self._looked_at: float | None = None
        self._state: WorkerState | None = None
        self._progress_at = -math.inf
        self._fatal_since: float | None = None
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
        self.stop(stopped_by(signum))

    @contextmanager
    def running(self) -> Iterator[Watch]:
        # Ours, not Ray's: its C++ handler would dump a stack and abort on SIGTERM.
        with handling({signal.SIGTERM: self._on_signal, signal.SIGINT: self._on_signal,
                       signal.SIGUSR1: lambda *_: None}):
            thread = threading.Thread(target=self._loop, name="cifar-watch", daemon=True)
            thread.start()
            try:
                yield self
            finally:
                self._stopped.set()
                thread.join(timeout=5)

    def _loop(self) -> None:
        last_answer = time.monotonic()
        while not self._stopped.wait(self.POLL_S):
            try:
                demands, capacities = _cluster_demand(self.HEAD_CONNECT_S)
                last_answer = time.monotonic()
            except Exception as exc:  # the head is gone (or restarting)
                # Measured after the attempt: a call to a dead head can itself take half a minute.
                if time.monotonic() - last_answer > self.HEAD_LOST_S:
                    print(f"error: the Ray cluster's head stopped answering ({' '.join(str(exc).split())[:200]}); "
                          "run the same command again once it is back: finished work is kept", file=sys.stderr,
                          flush=True)
                    os._exit(2)
                continue
            now = time.monotonic()
            if self.pending_timeout_s > 0 and self.failure is None:
                stalled = self._stalled(demands, capacities, now)
                if stalled is not None:
                    self.stop(PendingTimeout(stalled))

    def _stalled(self, demands: list[dict[str, float]], capacities: list[dict[str, float]], now: float) -> str | None:
        """A message when some work no live node can run has waited the timeout without progress (or
        the hard limit in all), or when the pods that would run it cannot start."""
        unplaceable = {_shape(d): d for d in demands if not any(_fits(c, d) for c in capacities)}
        for shape in list(self._unplaceable_since):
            if shape not in unplaceable:
                del self._unplaceable_since[shape]
        if not unplaceable:
            self._looked_at, self._state, self._fatal_since = None, None, None
            return None
        for shape in unplaceable:
            self._unplaceable_since.setdefault(shape, now)
        self._look(now)
        for shape, demand in unplaceable.items():
            message = self._verdict(demand, self._unplaceable_since[shape], now, capacities)
            if message is not None:
                return message
        return None

    def _verdict(self, demand: dict[str, float], since: float, now: float, capacities) -> str | None:
        waited, idle = now - since, now - max(since, self._progress_at)
        limit = self.HARD_LIMIT_FACTOR * self.pending_timeout_s
        fatal = self._fatal_since is not None and now - self._fatal_since >= self.fatal_after_s
        if not fatal and idle < self.pending_timeout_s and waited < limit:
            return None
        if not fatal and self._looked_at != now:  # say why with what the pods show now
            self._look(now, fresh=True)
            idle = now - max(since, self._progress_at)
            if idle < self.pending_timeout_s and waited < limit:
                return None
        cpus, gpus = demand.get("CPU", 0.0), demand.get("GPU", 0.0)
        who = f"{', '.join(self._expected.get((cpus, gpus), [])) or 'work'} asking for {cpus:g} CPUs and {gpus:g} GPUs"
        why = self._state.line if self._state is not None else None
        if fatal:
            return f"{who} cannot start: {why}"
        have = "; ".join(sorted({f"{c.get('CPU', 0):g} CPUs, {c.get('GPU', 0):g} GPUs" for c in capacities})) \
            or "no nodes"
        if waited >= limit:
            how_long = (f"has waited {waited:.0f} s for a node that can run it, {self.HARD_LIMIT_FACTOR} x "
                        f"--pending-timeout {self.pending_timeout_s:g} s, although the workers were still progressing")
        else:
            how_long = (f"has waited {waited:.0f} s for a node that can run it" +
                        (f", the last {idle:.0f} s without progress" if idle < waited - 1 else "") +
                        f" (--pending-timeout {self.pending_timeout_s:g} s)")
        return (f"{who} {how_long}; the cluster's nodes have {have}" + (f"; {why}" if why else "") +
                ": add such nodes (or let the autoscaler), lower the request, or pass --pending-timeout 0 to "
                "wait for ever")

    def _look(self, now: float, *, fresh: bool = False) -> None:
        """Ask `explain()` what the pods are doing, at most every `explain_every_s` (unless `fresh`)."""
        if self.explain is None or (not fresh and self._looked_at is not None
                                    and now - self._looked_at < self.explain_every_s):
            return
        self._looked_at = now
        try:
            state = self.explain()
        except Exception:  # the diagnosis must never hide the wait it explains
            state = None
        if isinstance(state, str):
            state = WorkerState(WAITING, state)
        self._state = state
        kind = state.kind if state is not None else WAITING
        if kind == PROGRESSING:
            self._progress_at = now
        self._fatal_since = (now if self._fatal_since is None else self._fatal_since) if kind == FATAL else None


def _shape(demand: dict[str, float]) -> tuple:
    return tuple(sorted(demand.items()))


def _fits(capacity: dict[str, float], demand: dict[str, float]) -> bool:
    return all(capacity.get(key, 0.0) >= amount for key, amount in demand.items() if key in ("CPU", "GPU"))


def _cluster_demand(connect_s: float) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """(resource shapes of work waiting to be placed, total resources of every live node), from
    the head (GCS) directly: no dashboard or autoscaler needed. A head whose port does not take a
    connection within `connect_s` raises at once: Ray's own client waits half a minute for it."""
    import ray
    from ray.autoscaler.v2.sdk import get_cluster_status

    gcs_address = ray.get_runtime_context().gcs_address
    _connect(gcs_address, connect_s)
    status = get_cluster_status(gcs_address, timeout=5)
    demands = []
    for demand in [*status.resource_demands.ray_task_actor_demand, *status.resource_demands.placement_group_demand]:
        for by_count in demand.bundles_by_count:
            demands.append({k: float(v) for k, v in by_count.bundle.items()})
    capacities = [{k: float(v) for k, v in node.total_resources().items()}
                  for node in [*status.active_nodes, *status.idle_nodes]]
    return demands, capacities
