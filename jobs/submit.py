"""`cifar submit`, `cifar status`, `cifar logs`: parse options, call jobs.chart, jobs.preflight and
jobs.cluster, and print.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from jobs import chart as helm_chart
from jobs import cluster, preflight
from jobs.chart import CHART_ENV, DEFAULT_RELEASE, STAGES
from jobs.kube_api import printable

release_option = click.option(
    "--release", default=DEFAULT_RELEASE, show_default=True, help="Release name: the prefix of every object's name."
)
namespace_option = click.option("--namespace", "-n", default=None, help="Namespace (default: the kubeconfig context's).")
context_option = click.option("--context", default=None, help="Kubeconfig context (default: the current one).")


@click.command("submit")
@click.argument("stage", type=click.Choice(STAGES))
@click.option("--dry-run", is_flag=True, help="Print the YAML (exactly the chart's render) instead of creating it.")
@click.option("--check", "check_only", is_flag=True, help="Only check the cluster (KubeRay, namespace, storage, rights, nodes); create nothing.")
@click.option("--replace", is_flag=True, help="Delete the stage's RayJob if it exists (and wait until it is gone), then create it again.")
@click.option("--values", "-f", "values_files", multiple=True, type=click.Path(dir_okay=False),
              help="Helm values file (repeatable; later ones win), e.g. k8s/kind/values.yaml.")
@click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE",
              help="Helm --set expression (repeatable), e.g. pipeline.profile=smoke or pipeline.set.tune.num_samples=20.")
@namespace_option
@release_option
@context_option
@click.option("--chart", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Chart directory (default: ${CHART_ENV}, else the one shipped with the code).")
def submit_cmd(stage, dry_run, check_only, replace, values_files, set_values, namespace, release, context, chart) -> None:
    """Render the chart for STAGE, check the cluster, and create it: one KubeRay RayJob.

    STAGE is pipeline (the whole study, `cifar pipeline`) or one of the pipeline's stages (one
    command, which fails at once when its input is missing). Ray places the work on the worker
    groups, which KubeRay's autoscaler grows from 0 while there is work for them.

    Before creating anything it checks that the cluster serves KubeRay's kinds, that the namespace
    and the storage classes exist, that you may create what it creates, the nodes (GPUs, device
    plugin, sizes, NVIDIA driver), and that the stage's RayJob does not exist yet (`--replace`
    deletes it first). Volumes, the service account, its Role and the results pod that exist are
    reused, so stages of one release run side by side on the same volumes.
    """
    values = helm_chart.values_for(stage, values_files, set_values)
    if dry_run:
        documents, _ = helm_chart.render(values, release=release, namespace=namespace or "default", chart=chart)
        click.echo(helm_chart.to_yaml(documents), nl=False)
        return
    if namespace is not None:
        helm_chart.check_namespace(namespace)  # before reading any kubeconfig
    api, namespace = cluster.connect(context, namespace)
    documents, notes = helm_chart.render(values, release=release, namespace=namespace, chart=chart)
    gpu_resource = (values.get("gpu") or {}).get("resourceName") or "nvidia.com/gpu"
    report = preflight.check(api, namespace, documents, replace=replace, gpu_resource=gpu_resource)
    for line in report.notes:
        click.echo(f"note: {line}", err=True)
    if check_only:
        for line in report.ok:
            click.echo(f"ok: {line}")
        click.echo("every check passed; nothing was created (drop --check to submit)")
        return
    rayjob = next(obj for _, _, obj in documents if obj["kind"] == "RayJob")["metadata"]["name"]
    if replace and cluster.read_rayjob(api, namespace, rayjob) is not None:
        click.echo(f"deleting rayjob/{rayjob} and its Ray cluster ...")
        cluster.delete_rayjob(api, namespace, rayjob)
        click.echo(f"deleted rayjob/{rayjob}")
    for line in cluster.create(documents, api, namespace, release):
        click.echo(line)
    if notes.strip():
        click.echo("\n" + notes.strip())


@click.command("status")
@namespace_option
@click.option("--release", default=None, help="Only this release (default: every cifar100 release).")
@context_option
@click.option("--log-lines", type=click.IntRange(min=1), default=2000, show_default=True,
              help="How much of each driver's log to read for the study's standing.")
def status_cmd(namespace, release, context, log_lines) -> None:
    """Where each stage's run stands: its RayJob's state, the Ray cluster's pods with why any of them
    waits or fails, and the study's progress as the driver last reported it (each stage's status;
    for running stages, done/total and the time left)."""
    api, namespace = cluster.connect(context, namespace)
    rayjobs = cluster.rayjobs(api, namespace, release)
    if not rayjobs:
        click.echo(f"no cifar100 RayJob in namespace {namespace}" + (f" for release {release}" if release else ""))
        return
    rows = [f"{'RELEASE':16} {'STAGE':9} {'RAYJOB':40} STATE"]  # all read before any is printed: a bad answer is one line
    for rayjob in rayjobs:
        labels = rayjob["metadata"].get("labels") or {}
        rows.append(f"{labels.get('app.kubernetes.io/instance', '?'):16} {labels.get('app.kubernetes.io/component', '?'):9} "
                    f"{'rayjob/' + rayjob['metadata']['name']:40} {cluster.rayjob_state(rayjob)}")
        rows += [f"  {role:12} pod/{name}  {line}" for name, role, line in cluster.stage_pods(api, namespace, rayjob)]
        rows += [f"  {line}" for line in stage_standing(api, namespace, rayjob, log_lines)]
    for row in rows:
        click.echo(row)


def stage_standing(api, namespace: str, rayjob: dict, log_lines: int) -> list[str]:
    """The study's standing for `cifar status`, as the RayJob's driver last reported it: the one place
    status reads it (today from the driver's log, as its submitter pod relays it)."""
    return [printable(line) for line in standing_lines(cluster.driver_log_tail(api, namespace, rayjob, lines=log_lines))]


def standing_lines(log: str | None, now: float | None = None) -> list[str]:
    """The study's standing from the driver's last standing line: one row per stage."""
    from cifar_core.progress import last_standing

    standing = last_standing(log or "")
    if standing is None:
        return [] if not log else ["study: the driver's log has no standing line yet"]
    age = max(0.0, (now or time.time()) - float(standing.get("time") or 0))
    rows = [f"study, as the driver reported {duration(age)} ago:"]
    for stage in standing["stages"]:
        status = stage.get("status") or "?"
        row = f"  {stage.get('stage', '?'):10} {status:11}"
        if status == "running":
            done, total, unit = stage.get("done"), stage.get("total"), stage.get("unit") or ""
            if done is not None and total:
                row += f" {done}/{total} {unit}".rstrip()
            if stage.get("eta_s") is not None:
                row += f", about {duration(float(stage['eta_s']))} left"
        elif stage.get("work_s") is not None and status in ("ran", "failed"):
            row += f" in {duration(float(stage['work_s']))}"
        rows.append(row.rstrip())
    return rows


def duration(seconds: float) -> str:
    """45 s, 12 min, 1 h 20 min, 2 d 3 h."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@click.command("logs")
@click.argument("stage", type=click.Choice(STAGES))
@namespace_option
@release_option
@context_option
@click.option("--follow", "-f", is_flag=True, help="Keep streaming new lines.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines.")
def logs_cmd(stage, namespace, release, context, follow, tail) -> None:
    """Print the log of STAGE's driver: its RayJob's submitter pod, which relays the driver's output
    (else the Ray head). While a pod is still in an init container, that container's log is shown.
    """
    api, namespace = cluster.connect(context, namespace)
    pod = cluster.newest_pod(api, namespace, release, stage)
    container = cluster.running_container(pod)
    chunks = cluster.pod_log(api, namespace, pod, container, follow=follow, tail=tail)
    click.echo(f"== pod/{pod['metadata']['name']} container {printable(container)} ==", err=True)
    for chunk in chunks:
        click.echo(chunk, nl=False)
