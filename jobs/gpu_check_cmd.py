"""`cifar check`: the five-minute check of a new cluster's GPU workers before the full study
(`cifar submit check`). Parses options, runs cifar_core.gpu_check.probe where the study's GPU work
would run (a Ray task with a GPU when RAY_ADDRESS is set), prints what it found."""

from __future__ import annotations

import os

import click

from cifar_core.errors import CifarError


@click.command("check")
@click.option("--device", default="cuda", show_default=True, help="cuda (fails at once without a usable GPU), auto or cpu.")
@click.option("--gpus", type=click.FloatRange(min=0), default=None,
              help="GPUs of the Ray task (default: 1, or 0 with --device cpu).")
@click.option("--ray/--no-ray", "with_ray", default=None, help="Run as a Ray task (default: when RAY_ADDRESS is set).")
@click.option("--pending-timeout", type=click.IntRange(min=0), envvar="CIFAR_PENDING_TIMEOUT", default=1800, show_default=True,
              help="Seconds to wait for a node that can run the check (a GPU node pool scaling from zero); 0: for ever.")
@click.option("--model", default="resdw", show_default=True, help="The registered model of the training step.")
def check_cmd(device, gpus, with_ray, pending_timeout, model) -> None:
    """Show the GPU, NVIDIA driver and CUDA a worker gets, and time one real training step on it.

    On a cluster (RAY_ADDRESS set, as in a RayJob) it runs as a Ray task asking for a GPU, so
    KubeRay's autoscaler starts a GPU worker for it, exactly as for the study's GPU work. When no
    node takes it within --pending-timeout, it fails naming why (the worker pods' last scheduling
    or start-up event).
    """
    from cifar_core.gpu_check import probe, report_lines

    if gpus is None:
        gpus = 0.0 if device == "cpu" else 1.0
    if with_ray is None:
        with_ray = bool(os.environ.get("RAY_ADDRESS"))
    info = _on_ray(device, model, gpus, pending_timeout) if with_ray else probe(device, model)
    for line in report_lines(info):
        click.echo(line)


def _on_ray(device: str, model: str, gpus: float, pending_timeout: int) -> dict:
    import ray

    from cifar_core.gpu_check import probe

    ray.init(address=os.environ.get("RAY_ADDRESS") or None, logging_level="ERROR", log_to_driver=True)
    try:
        ref = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(probe).remote(device, model)
        ready, _ = ray.wait([ref], timeout=pending_timeout or None)
        if not ready:
            from jobs.cluster import pending_pods_reason

            ray.cancel(ref, force=True)
            reason = pending_pods_reason() or "no Kubernetes pod to ask why"
            raise CifarError(f"the GPU check (1 CPU, {gpus:g} GPU) waited {pending_timeout} s and no node took it; "
                             f"the cluster has {ray.cluster_resources().get('GPU', 0):g} GPU(s) now: {reason}")
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, CifarError):  # a device that cannot be used: its one line
                raise CifarError(str(cause)) from None
            raise
    finally:
        ray.shutdown()
