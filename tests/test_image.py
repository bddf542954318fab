"""images/Dockerfile, parsed by BuildKit's own parser (the `dockerfile` package): pinned bases, a
non-root user, OCI labels, pinned torch pair; and a build context that holds what it copies."""

from __future__ import annotations

import re
from pathlib import Path

import dockerfile
import pytest
import yaml
from helpers import dockerignore_rules, in_build_context

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "images" / "Dockerfile"
CONSTRAINTS = REPO / "images" / "constraints.txt"


@pytest.fixture(scope="module")
def commands():
    return dockerfile.parse_file(str(DOCKERFILE))


def _arg_defaults(commands) -> dict[str, str]:
    defaults = {}
    for cmd in commands:
        if cmd.cmd == "ARG":
            for word in cmd.value:
                name, _, default = word.partition("=")
                if default:
                    defaults.setdefault(name, default.strip('"'))
    return defaults


def _stages(commands):
    """[(image reference with ARG defaults substituted, alias, [commands of the stage])]."""
    defaults = _arg_defaults(commands)
    stages = []
    for cmd in commands:
        if cmd.cmd == "FROM":
            words = cmd.value
            ref = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), words[0])
            alias = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append((ref, alias, []))
        elif stages:
            stages[-1][2].append(cmd)
    return stages


def test_every_base_is_a_pinned_ray_image(commands):
    stages = _stages(commands)
    assert len(stages) >= 2, "multi-stage: a build stage and the runtime"
    aliases = {alias for _, alias, _ in stages if alias}
    ray_pin = next(d.split("==")[1] for d in _dependencies() if d.startswith("ray[tune]=="))
    for ref, _, _ in stages:
        if ref in aliases:
            continue
        assert "$" not in ref, f"unresolved build argument in FROM {ref}"
        repository, _, tag = ref.rpartition(":")
        assert repository and tag and "/" not in tag, f"FROM {ref} has no tag"
        assert tag != "latest" and "latest" not in ref
        assert repository == "rayproject/ray", "KubeRay runs head and workers from this image: start from Ray's"
        assert tag.startswith(f"{ray_pin}-py311-"), f"{ref}: Ray version must match pyproject's ray[tune]=={ray_pin}"


def test_cpu_variant_uses_a_pinned_cpu_base_and_torch_index():
    mk = (REPO / "images" / "image.mk").read_text()
    assert re.search(r"^CPU_BASE \?= rayproject/ray:\$\(RAY_VERSION\)-py311-cpu$", mk, re.M)
    assert re.search(r"^RAY_VERSION \?= 2\.60\.0$", mk, re.M)
    assert "https://download.pytorch.org/whl/cpu" in mk
    recipe = mk.split("\nimage-cpu:")[1].split("\n\n")[0]
    assert "--build-arg BASE_IMAGE=$(CPU_BASE)" in recipe and "-t $(IMAGE_REPO):$(IMAGE_TAG)-cpu" in recipe


def test_runtime_runs_as_a_numeric_non_root_user(commands):
    _, _, runtime = _stages(commands)[-1]
    users = [cmd.value[0] for cmd in runtime if cmd.cmd == "USER"]
    assert users, "the runtime stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: numeric and not root (runAsNonRoot can then verify it)"
    values = yaml.safe_load((REPO / "charts" / "cifar100" / "values.yaml").read_text())
    assert int(uid) == values["podSecurityContext"]["runAsUser"]


def test_oci_labels(commands):
    _, _, runtime = _stages(commands)[-1]
    labels = {}
    for cmd in runtime:
        if cmd.cmd == "LABEL":
            words = list(cmd.value)
            labels.update((k, v.strip('"')) for k, v in zip(words[::2], words[1::2], strict=True))
    for key in ("title", "description", "version", "revision", "created", "licenses", "source", "base.name"):
        assert f"org.opencontainers.image.{key}" in labels, key
    assert labels["org.opencontainers.image.licenses"] == "MIT"


def test_cifar_is_installed_from_pinned_wheels_and_checked(commands):
    runs = " ".join(" ".join(cmd.value) for cmd in commands if cmd.cmd == "RUN")
    assert "--constraint images/constraints.txt" in runs
    assert "--no-index" in runs and "cifar --version" in runs
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_normalise(name)] = version
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    for dep in _dependencies():
        name = _normalise(re.split(r"[<>=\[ ;]", dep)[0])
        assert name in pins, f"{dep} is not pinned in constraints.txt"
        if "==" in dep:
            assert pins[name] == dep.split("==")[1], f"constraints.txt disagrees with pyproject on {dep}"


def _dependencies() -> list[str]:
    """[project] dependencies of pyproject.toml (tomllib needs Python 3.11; this runs on 3.10 too)."""
    block = re.search(r"^dependencies = \[(.*?)^\]", (REPO / "pyproject.toml").read_text(), re.M | re.S).group(1)
    return re.findall(r'"([^"]+)"', block)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_fid_weights_are_baked_where_the_code_looks(commands):
    env = {}
    for cmd in commands:
        if cmd.cmd == "ENV":
            words = list(cmd.value)
            env.update(zip(words[::2], words[1::2], strict=True))
    assert env["TORCH_HOME"].startswith("/opt/")  # not under $HOME or /tmp, which the pods cover with emptyDirs
    assert env["CIFAR_DATA_DIR"] == "/data" and env["CIFAR_RESULTS_DIR"] == "/results"
    args = _arg_defaults(commands)
    assert args["FETCH_FID_WEIGHTS"] == "1"
    run = next(" ".join(cmd.value) for cmd in commands if cmd.cmd == "RUN" and "FETCH_FID_WEIGHTS" in " ".join(cmd.value))
    assert "resolve_weights" in run  # the project's resolver: the same hub cache `cifar fid` reads
    from cifar_core.fid import inception

    assert inception.hub_weights_path().name == inception.WEIGHTS_FILENAME


def test_build_context_holds_what_the_dockerfile_copies(commands):
    rules = dockerignore_rules(REPO)
    for heavy in (".venv", ".git", "data", "results"):
        assert not in_build_context(heavy, rules), f"{heavy} must stay out of the build context"
    for cmd in commands:
        if cmd.cmd != "COPY" or any(flag.startswith("--from") for flag in cmd.flags):
            continue
        for source in cmd.value[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: missing from the repository"
            assert in_build_context(source.rstrip("/"), rules), f"COPY {source}: excluded by .dockerignore"
