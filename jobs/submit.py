"""`cifar submit`, `cifar status`, `cifar logs`: parse options, call jobs.cluster, print.

`submit` renders charts/cifar100 with Helm's own engine, exactly as `helm template` would for the same
values (plus `stage=STAGE`), and creates the objects with the Kubernetes Python client; `--dry-run`
prints that YAML instead.
The kubeconfig comes from the usual places ($KUBECONFIG, ~/.kube/config, or the pod's service account).
"""

from __future__ import annotations

from pathlib import Path

import click

from jobs import chart as helm_chart
from jobs import cluster
from jobs.chart import CHART_ENV, DEFAULT_RELEASE, STAGES

release_option = click.option(
    "--release", default=DEFAULT_RELEASE, show_default=True, help="Release name: the prefix of every object's name."
)
namespace_option = click.option("--namespace", "-n", default=None, help="Namespace (default: the kubeconfig context's).")
context_option = click.option("--context", default=None, help="Kubeconfig context (default: the current one).")


@click.command("submit")
@click.argument("stage", type=click.Choice(STAGES))
@click.option("--dry-run", is_flag=True, help="Print the YAML (exactly the chart's render) instead of creating it.")
@click.option("--values", "-f", "values_files", multiple=True, type=click.Path(dir_okay=False),
              help="Helm values file (repeatable; later ones win), e.g. k8s/kind/values.yaml.")
@click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE",
              help="Helm --set expression (repeatable), e.g. pipeline.profile=smoke or pipeline.set.tune.num_samples=20.")
@namespace_option
@release_option
@context_option
@click.option("--chart", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Chart directory (default: ${CHART_ENV}, else the one shipped with the code).")
def submit_cmd(stage, dry_run, values_files, set_values, namespace, release, context, chart) -> None:
    """Render the chart for STAGE and create it on the cluster: one KubeRay RayJob.

    STAGE is pipeline (the whole study, `cifar pipeline`) or one of data, tune, retrain, gan, fid,
    report (one command, which fails at once when its input is missing). Ray places the work on the
    worker groups, which KubeRay's autoscaler grows from 0 while there is work for them. The volumes,
    the service account and the results pod come with every stage; objects that already exist are
    left alone.
    """
    values = helm_chart.values_for(stage, values_files, set_values)
    if dry_run:
        documents, _ = helm_chart.render(values, release=release, namespace=namespace or "default", chart=chart)
        click.echo(helm_chart.to_yaml(documents), nl=False)
        return
    api, namespace = cluster.connect(context, namespace)
    documents, notes = helm_chart.render(values, release=release, namespace=namespace, chart=chart)
    for line in cluster.create(documents, api, namespace):
        click.echo(line)
    if notes.strip():
        click.echo("\n" + notes.strip())


@click.command("status")
@namespace_option
@click.option("--release", default=None, help="Only this release (default: every cifar100 release).")
@context_option
def status_cmd(namespace, release, context) -> None:
    """The state of every stage on the cluster: its RayJob (and Jobs an older chart left)."""
    api, namespace = cluster.connect(context, namespace)
    rows = cluster.stage_rows(api, namespace, release)
    if not rows:
        click.echo(f"no cifar100 objects in namespace {namespace}" + (f" for release {release}" if release else ""))
        return
    click.echo(f"{'RELEASE':16} {'STAGE':9} {'OBJECT':40} STATE")
    for rel, stage, obj, state in rows:
        click.echo(f"{rel:16} {stage:9} {obj:40} {state}")


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
    click.echo(f"== pod/{pod['metadata']['name']} container {container} ==", err=True)
    for chunk in chunks:
        click.echo(chunk, nl=False)
