"""The Helm chart, rendered in-process with Helm's own engine (helm-python-sdk, no helm binary).

`cifar submit --dry-run` prints exactly what `helm template` would for the same values plus
`stage=STAGE`, and `cifar submit` creates exactly that. The chart is $CIFAR_CHART, the checkout's
charts/cifar100, or the copy a wheel ships under <prefix>/share.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from cifar_core.errors import CifarError
from cifar_core.pipeline import stage_names

# What `cifar submit STAGE` runs: the chart's `stage` value. Each is one RayJob (`pipeline`: the whole
# study in one driver; `check`: `cifar check` on a GPU worker, the five minutes before the study;
# the others: one command, the pipeline's stages), so several stages of one release live side by side.
STAGES = ("pipeline", "check", *stage_names())
DEFAULT_RELEASE = "cifar100"
CHART_ENV = "CIFAR_CHART"

# Creation order: what the workloads refer to first (service account, volumes, the results pod, a
# shared Ray cluster), then the RayJob.
# How Helm reports a template's `fail "..."`: "execution error at (<template>:<line>:<col>): <message>".
_CHART_FAIL = re.compile(r"execution error at \([^)]*\): (.*)$")
_KIND_ORDER = ("ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim", "Deployment", "RayCluster", "RayJob")
# A namespace is a DNS-1123 label.
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
COMPONENT_ORDER = ("storage", "results", "ray", *STAGES)


# --- chart and values ---


def find_chart() -> Path:
    """The chart directory: $CIFAR_CHART, else charts/cifar100 beside the `jobs` package (a source
    checkout or editable install), else <prefix>/share/cifar100-k8s/charts/cifar100 (a wheel that ships it)."""
    candidates = []
    if os.environ.get(CHART_ENV):
        candidates.append(Path(os.environ[CHART_ENV]))
    candidates.append(Path(__file__).resolve().parents[1] / "charts" / "cifar100")
    candidates.append(Path(sys.prefix) / "share" / "cifar100-k8s" / "charts" / "cifar100")
    for path in candidates:
        if (path / "Chart.yaml").is_file():
            return path
    raise CifarError(
        f"Helm chart not found (looked in {', '.join(str(p) for p in candidates)}); pass --chart DIR or set ${CHART_ENV}"
    )


def _helm():
    try:
        import helm_python
    except ImportError as exc:
        raise CifarError(f"rendering the chart needs helm-python-sdk ({exc}); pip install helm-python-sdk") from exc
    return helm_python


def merge_values(base: dict, override: dict) -> dict:
    """Helm's rule for -f and --set: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = value
    return out


def stage_values(stage: str) -> dict:
    """The values that select one stage's RayJob."""
    if stage not in STAGES:
        raise CifarError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    return {"stage": stage}


def user_values(values_files=(), set_values=()) -> dict:
    """Values from -f files then --set expressions, parsed by Helm itself."""
    helm = _helm()
    values: dict = {}
    for path in values_files:
        text = _values_text(path)
        try:
            values = merge_values(values, helm.values_from_yaml(text) or {})
        except helm.HelmError as exc:
            raise CifarError(f"values file {path}: {one_line(exc)}") from exc
    for expression in set_values:
        try:
            values = merge_values(values, helm.parse_set_string(expression))
        except helm.HelmError as exc:
            raise CifarError(f"--set {expression}: {one_line(exc)}") from exc
    return values


def _values_text(path) -> str:
    """A values file as text, within the limits every YAML file we read keeps (size, nesting,
    aliases, numbers: cifar_core.fields), before Helm's parser sees it."""
    import yaml

    from cifar_core.atomic import read_limited
    from cifar_core.fields import YAML_MAX_BYTES, check_yaml_limits

    try:
        text = read_limited(path, YAML_MAX_BYTES, "values file").decode("utf-8")
    except OSError as exc:
        raise CifarError(f"cannot read values file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CifarError(f"values file {path} is not UTF-8 text (byte {exc.start})") from None
    try:
        check_yaml_limits(text)
    except yaml.YAMLError as exc:
        raise CifarError(f"values file {path}: {one_line(getattr(exc, 'problem', None) or exc)}") from None
    return text


def values_for(stage: str, values_files=(), set_values=()) -> dict:
    """The values `cifar submit STAGE -f ... --set ...` renders: the stage selection, then the user's on top."""
    return merge_values(stage_values(stage), user_values(values_files, set_values))


def render(values: dict, *, release: str = DEFAULT_RELEASE, namespace: str = "default", chart: Path | None = None):
    """Render the chart. Returns (source, text, object) for every object, in creation order, and the NOTES."""
    import yaml

    helm = _helm()
    chart_dir = Path(chart) if chart else find_chart()
    if not (chart_dir / "Chart.yaml").is_file():
        raise CifarError(f"{chart_dir} is not a Helm chart: it has no Chart.yaml (--chart names the chart's directory, e.g. charts/cifar100)")
    check_namespace(namespace)
    try:
        helm.validate_release_name(release)
    except helm.HelmError as exc:
        raise CifarError(f"release name {release!r}: {one_line(exc)}") from exc
    try:
        with helm.Chart.load(str(chart_dir)) as loaded:
            manifests = loaded.render(values, name=release, namespace=namespace)
    except helm.HelmError as exc:
        refusal = _CHART_FAIL.search(one_line(exc))
        if refusal:  # the chart's validate helper: its message names the value to set
            raise CifarError(refusal.group(1)) from exc
        raise CifarError(f"chart {chart_dir}: {one_line(exc)}") from exc
    notes = ""
    documents = []
    for source, text in manifests.items():
        if source.endswith("NOTES.txt"):
            notes = text
            continue
        for obj in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: 10x faster
            if obj:
                documents.append((source, text.strip(), obj))
    documents.sort(key=_creation_order)
    check_devices([obj for _, _, obj in documents], (values.get("gpu") or {}).get("resourceName") or "nvidia.com/gpu")
    return documents, notes


def check_devices(objects: list[dict], gpu_resource: str = "nvidia.com/gpu") -> None:
    """Which device the work runs on, against the workers the Ray cluster has: `--device cuda` needs a
    GPU worker group, and `--device cpu` must not have one (its work would hold GPUs and run on the
    CPU). Whether a stage's GPU share fits a worker is the driver's to refuse (execution.capacity)."""
    import shlex

    from cifar_core.quantity import quantity

    specs = [obj["spec"].get("rayClusterSpec") if obj["kind"] == "RayJob" else obj["spec"]
             for obj in objects if obj.get("kind") in ("RayJob", "RayCluster")]
    groups = [g for spec in specs if spec for g in spec.get("workerGroupSpecs") or []]
    gpus = max((quantity(((c.get("resources") or {}).get("limits") or {}).get(gpu_resource, 0))
                for g in groups for c in g["template"]["spec"]["containers"]), default=0)
    for obj in objects:
        words = shlex.split(obj["spec"].get("entrypoint", "")) if obj.get("kind") == "RayJob" else []
        device = words[words.index("--device") + 1] if "--device" in words[:-1] else None
        if device == "cuda" and gpus == 0:
            raise CifarError("device is cuda but there are no GPU workers (ray.workers.gpu.maxReplicas is 0): add GPU "
                             "workers, or set device=cpu on a cluster without GPUs")
        if device == "cpu" and gpus > 0:
            raise CifarError(f"device is cpu but the GPU workers ask for {gpus:g} GPUs each: work placed on them would "
                             "hold the GPUs and run on the CPU; set device=cuda, or ray.workers.gpu.maxReplicas=0")


def check_namespace(namespace: str) -> None:
    if not _NAMESPACE.match(namespace or ""):
        raise CifarError(f"namespace {namespace!r} is not a Kubernetes namespace name: lowercase letters, digits and '-', "
                         "at most 63, starting and ending with a letter or digit")


def _creation_order(document) -> tuple:
    _, _, obj = document
    kind = obj["kind"]
    component = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")
    kind_rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    comp_rank = COMPONENT_ORDER.index(component) if component in COMPONENT_ORDER else len(COMPONENT_ORDER)
    return kind_rank, comp_rank, obj["metadata"]["name"]


def to_yaml(documents) -> str:
    """The rendered objects as `helm template` prints them."""
    seen = set()
    parts = []
    for source, text, _ in documents:
        if source not in seen:  # one template, one document
            seen.add(source)
            parts.append(f"---\n# Source: {source}\n{text}\n")
    return "".join(parts)


def one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
