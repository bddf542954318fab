"""`cifar check`: the five-minute check of a new cluster's GPU workers before the full study
(`cifar submit check`). Parses options and runs cifar_core.gpu_check.probe where the study's GPU work
would run: a stage's unit of work on Ray (with a GPU) when RAY_ADDRESS is set, else here."""

from __future__ import annotations

import click

from jobs.work_options import pending_timeout_option


@click.command("check")
@click.option("--device", default="cuda", show_default=True, help="cuda (fails at once without a usable GPU), auto or cpu.")
@click.option("--gpus", type=click.FloatRange(min=0), default=None,
              help="GPUs of the Ray task (default: 1, or 0 with --device cpu).")
@click.option("--ray/--no-ray", "ray_flag", default=None, help="Run as a Ray task (default: when RAY_ADDRESS is set).")
@pending_timeout_option
@click.option("--model", default="resdw", show_default=True, help="The registered model of the training step.")
def check_cmd(device, gpus, ray_flag, pending_timeout, model) -> None:
    """Show the GPU, NVIDIA driver and CUDA a worker gets, and time one real training step on it.

    On a cluster (RAY_ADDRESS set, as in a RayJob) it runs as a Ray task asking for a GPU, so
    KubeRay's autoscaler starts a GPU worker for it, exactly as for the study's GPU work. When no
    node takes it within --pending-timeout, it fails naming why (the worker pods' last scheduling
    or start-up event).
    """
    from cifar_core.execution.resources import Resources
    from cifar_core.execution.runners import run_stage
    from cifar_core.execution.session import use_ray, work_session
    from cifar_core.gpu_check import probe, report_lines
    from jobs.work_options import explain_pending

    resources = Resources(1.0, (0.0 if device == "cpu" else 1.0) if gpus is None else gpus).checked("resources")
    with work_session(use_ray(ray_flag), pending_timeout=pending_timeout, explain=explain_pending,
                      feasible={"each check task": resources}) as work:
        info = run_stage(work, probe, name="check", resources=resources, device=device, model=model)
    for line in report_lines(info):
        click.echo(line)
