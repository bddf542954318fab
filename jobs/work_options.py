"""Options of the commands that submit Ray work: where it runs (Ray or this process), what each
task reserves, and how long work may wait for a node. One definition, so `retrain`, `gan train`,
`fid`, `tune` and `pipeline` spell them the same."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from jobs.options import FiniteFloatRange

pending_timeout_option = click.option(
    "--pending-timeout", type=FiniteFloatRange(min=0), default=None, metavar="SECONDS",
    help="Fail when work has waited this long without progress for a node that can run it (a GPU pool that never "
         "scales up, a pod that cannot start). In a Kubernetes pod a worker being added, scheduled or pulling its "
         "image is progress (up to 3x this in all), and a start-up failure that cannot resolve (no such image, a "
         "refused container) fails within about a minute; elsewhere it is wall time. 0 waits for ever.  "
         "[default: $CIFAR_PENDING_TIMEOUT, else 1800]")


def task_options(fn):
    options = [
        click.option("--cpus", type=click.FloatRange(min=0, min_open=True, max=1e6), default=None,
                     help="CPU cores each Ray task reserves (and the torch threads it uses).  "
                          "[default: the pipeline's resources.<stage>]"),
        click.option("--gpus", type=click.FloatRange(min=0, max=1e6), default=None,
                     help="GPU share of each Ray task (fractions share a GPU).  "
                          "[default: the pipeline's resources.<stage> where the cluster (or this machine) has "
                          "GPUs, else 0]"),
        click.option("--ray/--no-ray", "ray_flag", default=None,
                     help="Run as Ray tasks (the cluster in RAY_ADDRESS, or a local Ray) or in this process.  "
                          "[default: Ray when RAY_ADDRESS is set]"),
        pending_timeout_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def explain_pending():
    """What Ray's worker pods are doing (progressing, waiting and why, or failed for good), read
    from the pods and their events when this driver runs in a Kubernetes pod (None elsewhere)."""
    from jobs import cluster

    return cluster.worker_state()


@contextmanager
def stage_work(stage: str, ray_flag: bool | None, cpus: float | None, gpus: float | None,
               pending_timeout: float | None) -> Iterator[tuple]:
    """(runner, Resources) for a single stage's command, inside a Ray session when it runs on Ray.
    Unset resources are the pipeline's for that stage (a GPU share only where there are GPUs)."""
    from cifar_core.execution.capacity import check_feasible, default_gpus
    from cifar_core.execution.resources import Resources
    from cifar_core.execution.session import use_ray, work_session
    from cifar_core.pipeline import stage_resources

    with_ray = use_ray(ray_flag)
    with work_session(with_ray, pending_timeout=pending_timeout, explain=explain_pending) as work:
        default = stage_resources(stage)
        if gpus is None:
            gpus = default.gpus if default_gpus(with_ray) else 0.0
        resources = Resources(default.cpus if cpus is None else cpus, gpus).checked("--cpus/--gpus")
        if with_ray:
            check_feasible({f"each {stage} task": resources})
        yield work, resources
