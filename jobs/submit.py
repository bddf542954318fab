"""`cifar submit`, `cifar status`, `cifar logs`: parse options, call jobs.chart, jobs.preflight and
jobs.cluster, and print.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from cifar_core.live import progress_text
from cifar_core.progress import duration
from jobs import chart as helm_chart
from jobs import cluster, preflight
from jobs.chart import CHART_ENV, DEFAULT_RELEASE, STAGES
from jobs.kube_api import cut, printable

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
def status_cmd(namespace, release, context) -> None:
    """Where each stage's run stands: its RayJob's state, the Ray cluster's pods with why any of them
    waits or fails, and the study's progress as the driver last published it on its RayJob (each
    stage's status; for running stages, done/total and the time left)."""
    api, namespace = cluster.connect(context, namespace)
    rayjobs = cluster.rayjobs(api, namespace, release)
    if not rayjobs:
        click.echo(f"no cifar100 RayJob in namespace {namespace}" + (f" for release {release}" if release else ""))
        return
    rows = [f"{'RELEASE':16} {'STAGE':9} {'RAYJOB':40} STATE"]  # all read before any is printed: a bad answer is one line
    events = cluster.readable_pod_events(api, namespace)  # once for every RayJob: it lists the whole namespace's
    for rayjob in rayjobs:
        labels = rayjob["metadata"].get("labels") or {}
        rows.append(f"{labels.get('app.kubernetes.io/instance', '?'):16} {labels.get('app.kubernetes.io/component', '?'):9} "
                    f"{'rayjob/' + rayjob['metadata']['name']:40} {cluster.rayjob_state(rayjob)}")
        rows += [f"  {role:12} pod/{name}  {line}" for name, role, line in cluster.stage_pods(api, namespace, rayjob, events)]
        annotations = rayjob["metadata"].get("annotations") or {}
        rows += [f"  {printable(line)}" for line in standing_lines(annotations.get(cluster.STANDING_ANNOTATION))]
    for row in rows:
        click.echo(row)


# What `cifar status` prints of a standing: the annotation is anyone's to write, so every field is
# checked and bounded, and what does not fit is said in one line.
MAX_STANDING_CHARS = 4 * cluster.MAX_STANDING_BYTES
MAX_STANDING_ROWS = 40
MAX_SECONDS = 10 * 365 * 86400.0


def standing_lines(text: str | None, now: float | None = None) -> list[str]:
    """The study's standing, from the annotation the driver published on its RayJob: a line saying
    when, then one row per stage. [] without one; one line when it is not a standing."""
    from cifar_core.progress import read_standing

    if not text:
        return []
    too_long = len(text) > MAX_STANDING_CHARS
    standing = None if too_long else read_standing(text)
    if standing is None:
        what = "more than the driver ever writes" if too_long else "not a standing's JSON"
        return [f"study: the RayJob's {cluster.STANDING_ANNOTATION} annotation is not one the driver wrote "
                f"({len(text):,} characters, {what})"]
    at = _amount(standing.get("time"), limit=1e10)  # a Unix time
    when = "at its end, " if standing.get("final") is True else ""
    age = f"{when}{duration(max(0.0, (now or time.time()) - at))} ago" if at is not None else f"{when}at an unknown time"
    lines = [f"study, as the driver reported {age}:"]
    stages = standing["stages"]
    for stage in stages[:MAX_STANDING_ROWS]:
        row = _stage_row(stage)
        lines.append(f"  {row['stage']:10} {row['status']:11} {progress_text(row)}".rstrip())
    omitted = _amount(standing.get("omitted")) or 0
    more = max(0, len(stages) - MAX_STANDING_ROWS) + int(omitted)
    if more:
        lines.append(f"  ... and {more:,} more")
    return lines


def _stage_row(stage) -> dict:
    """A stage's row with only the fields `progress_text` reads, each of the type it expects."""
    if not isinstance(stage, dict):
        return {"stage": "?", "status": "?"}
    hosts = stage.get("hosts") if isinstance(stage.get("hosts"), list) else []
    return {"stage": _text(stage.get("stage"), 28) or "?", "status": _text(stage.get("status"), 12) or "?",
            "done": _amount(stage.get("done")), "total": _amount(stage.get("total")),
            "unit": _text(stage.get("unit"), 12), "eta_s": _amount(stage.get("eta_s")),
            "work_s": _amount(stage.get("work_s")), "note": _text(stage.get("note"), 160),
            "hosts": [h for h in (_text(h, 63) for h in hosts[:4]) if h]}


def _text(value, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return cut(" ".join(printable(value).split()), limit)


def _amount(value, limit: float = MAX_SECONDS) -> float | None:
    """A non-negative finite number (seconds or a count) up to `limit`, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= limit:
        return None
    return value


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
