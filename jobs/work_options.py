"""Options of the stage commands that say where their work runs: Ray or this process, and what
each Ray task reserves. One definition, so `retrain`, `gan train` and `fid` spell them the same."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import click

NON_NEGATIVE = click.FloatRange(min=0)


def task_options(fn):
    options = [
        click.option("--cpus", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
                     help="CPU cores each Ray task reserves (and the torch threads it uses)."),
        click.option("--gpus", type=NON_NEGATIVE, default=None,
                     help="GPU share of each Ray task (fractions share a GPU).  "
                          "[default: 1 where the cluster (or this machine) has GPUs, else 0]"),
        click.option("--ray/--no-ray", "ray_flag", default=None,
                     help="Run as Ray tasks (the cluster in RAY_ADDRESS, or a local Ray) or in this process.  "
                          "[default: Ray when RAY_ADDRESS is set]"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@contextmanager
def stage_work(ray_flag: bool | None, cpus: float, gpus: float | None) -> Iterator[tuple]:
    """(runner, Resources) for a stage command, inside a Ray session when it runs on Ray."""
    from cifar_core.execution import Resources, default_gpus, ray_session, runner, use_ray

    with_ray = use_ray(ray_flag)
    with ray_session() if with_ray else nullcontext():  # the default GPU share is the cluster's
        yield runner(with_ray), Resources(cpus, default_gpus(with_ray) if gpus is None else gpus)
