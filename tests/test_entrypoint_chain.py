"""Every value the chart accepts reaches `cifar` unchanged through the chain a RayJob's entrypoint
really takes, run here end to end:

1. KubeRay v1.7.0 (K8sJobMode) pastes the entrypoint into one bash script for the submitter:
   `/bin/bash -ce -- "<wait loop> ; if ! ray job status ... ; then ray job submit --address A
   --no-wait --submission-id ID -- <entrypoint> ; fi ; ray job logs --address A --follow ID"`
   (`-cel` when the operator runs with ENABLE_LOGIN_SHELL=true) — ray-operator/controllers/ray/
   common/job.go BuildJobSubmitCommand and utils.GetContainerCommand. bash splits it into words.
2. The real `ray job submit` of this environment (Ray 2.60, as in the image) re-joins those words
   into one string (shlex.join on POSIX since ray-project/ray#63797; subprocess.list2cmdline
   before) and POSTs it to the dashboard. Here the dashboard is a small aiohttp server.
3. Ray's job supervisor runs that string with `subprocess.Popen(entrypoint, shell=True)`, i.e.
   `/bin/sh -c` (dash on Ubuntu and Debian). The server here does exactly that, with a `cifar` on
   PATH that writes the argv it receives as JSON.

The test compares that argv with the words the chart meant, for hostile values. It also runs what
the RayJob's retries rest on: a submitter pod whose log stream drops fails, and the next pod of its
Job follows the same job without submitting it again; a restarted head (a dashboard that knows no
job) gets it submitted again; and a request no retry can fix is refused by the real `cifar` in the
driver's first second, before it contacts Ray.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cifar100"
RAY_CLI = Path(sys.executable).with_name("ray")
RWX = {"storage": {"data": {"storageClass": "nfs-client"}, "results": {"storageClass": "nfs-client"}}}
JOB_ID = "cifar100-gan-4mx8q"

# Values no shell may touch on their way to `cifar`.
HOSTILE = {
    "amp": "a&b", "semi": "x; touch /tmp/pwned-by-semi", "single": "it's", "double": 'say "hi"', "spaces": "two  spaces ",
    "dollar": "$HOME and ${PATH}", "backtick": "`id`", "subshell": "$(echo pwned)", "newline": "line1\nline2",
    "backslash": "back\\slash\\", "empty": "", "tab": "tab\there", "glob": "* ? [a-z]", "bang": "!bang !!",
    "dash": "--not-a-flag", "tilde": "~root", "hash": "# not a comment", "unicode": "ünïcode €", "mixed": "\\\"'$`",
    "redirect": "> /tmp/pwned-by-redirect 2>&1 | cat", "fi": "fi", "list": ["one", "two words", "th'ree"],
}


def entrypoint(values: dict) -> str:
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name="cifar100", namespace="ml")
    return yaml.safe_load(manifests["cifar100/templates/rayjob.yaml"])["spec"]["entrypoint"]


def kuberay_submitter_script(address: str, job_id: str, entrypoint: str) -> str:
    """The submitter's bash script as KubeRay v1.7.0 builds it in K8sJobMode (no runtime env,
    metadata or entrypoint resources, which the chart never sets): the words joined by spaces."""
    url = f"{address}/api/gcs_healthz"  # KubeRay's BasePythonHealthCommand with its 10 s timeout
    health = (f'python -c "import urllib.request; r=urllib.request.urlopen(\'{url}\', timeout=10); '
              "exit(0 if b'success' in r.read() else 1)\"")
    words = ["until", health, ">/dev/null", "2>&1", ";",
             "do", "echo", json.dumps(f"Waiting for Ray Dashboard GCS to become healthy at {address} ..."), ";",
             "sleep", "2", ";", "done", ";",
             "if", "!", "ray", "job", "status", "--address", address, job_id, ">/dev/null", "2>&1", ";", "then",
             "ray", "job", "submit", "--address", address, "--no-wait", "--submission-id", job_id,
             "--", entrypoint.strip(), ";", "fi", ";",
             "ray", "job", "logs", "--address", address, "--follow", job_id]
    return " ".join(words)


class Dashboard:
    """The few endpoints of Ray's dashboard the job CLI uses; a submitted job runs as Ray's job
    supervisor runs it: Popen(entrypoint, shell=True)."""

    def __init__(self, env: dict, drop_streams: int = 0):
        self.env = env
        self.drop_streams = drop_streams  # how many log streams to cut without a close frame
        self.jobs: dict[str, dict] = {}
        self.port = _free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _app(self):
        from aiohttp import web

        async def healthz(request):
            return web.Response(text="success")

        async def version(request):
            return web.json_response({"version": "4", "ray_version": "2.60.0", "ray_commit": "test", "session_name": "s"})

        async def submit(request):
            body = await request.json()
            job_id = body.get("submission_id")
            done = await asyncio.to_thread(subprocess.run, body["entrypoint"], shell=True, env=self.env,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.jobs[job_id] = {"entrypoint": body["entrypoint"], "output": done.stdout, "rc": done.returncode}
            return web.json_response({"job_id": job_id, "submission_id": job_id})

        async def info(request):
            job = self.jobs.get(request.match_info["job_id"])
            if job is None:
                return web.Response(status=404, text="Job does not exist")
            return web.json_response({"type": "SUBMISSION", "job_id": None, "submission_id": request.match_info["job_id"],
                                      "driver_info": None, "status": "SUCCEEDED" if job["rc"] == 0 else "FAILED",
                                      "entrypoint": job["entrypoint"], "message": None, "error_type": None,
                                      "start_time": 1, "end_time": 2, "metadata": {}, "runtime_env": {}})

        async def tail(request):
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_str(self.jobs[request.match_info["job_id"]]["output"])
            if self.drop_streams:  # the connection lost, as when the head is busy or a network hiccups
                self.drop_streams -= 1
                request.transport.abort()
                return ws
            await ws.close()
            return ws

        app = web.Application()
        app.add_routes([web.get("/api/gcs_healthz", healthz), web.get("/api/version", version), web.post("/api/jobs/", submit),
                        web.get("/api/jobs/{job_id}", info), web.get("/api/jobs/{job_id}/logs/tail", tail)])
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    def __enter__(self) -> Dashboard:
        def serve():
            asyncio.set_event_loop(self._loop)
            self._runner = self._loop.run_until_complete(self._app())
            self._ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chain:
    """KubeRay's submitter script, the real `ray job submit`/`ray job logs` and a stand-in dashboard
    whose jobs run a `cifar` that records each argv it is run with (one JSON line per run)."""

    def __init__(self, folder: Path):
        bin_dir, home = folder / "bin", folder / "home"
        bin_dir.mkdir()
        home.mkdir()
        (bin_dir / "ray").symlink_to(RAY_CLI)
        (bin_dir / "python").symlink_to(sys.executable)
        cifar = bin_dir / "cifar"
        cifar.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                         "open(os.environ['ARGV_OUT'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
        cifar.chmod(0o755)
        # A login shell (-l) reads the profiles; the image's put Ray's Python on PATH the same way.
        (home / ".bash_profile").write_text(f'export PATH="{bin_dir}:$PATH"\n')
        self.out = folder / "argv.jsonl"
        self.env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "ARGV_OUT": str(self.out), "LANG": "C.UTF-8",
                    "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        # The project's own `cifar`, as the image runs it, with a RAY_ADDRESS where nothing answers.
        real_bin = folder / "real-bin"
        real_bin.mkdir()
        (real_bin / "cifar").write_text(f"#!{sys.executable}\nimport sys\nfrom jobs.cli import main\nsys.exit(main())\n")
        (real_bin / "cifar").chmod(0o755)
        self.real_env = {**self.env, "PATH": f"{real_bin}:{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(REPO),
                         "RAY_ADDRESS": f"127.0.0.1:{_free_port()}"}

    def runs(self) -> list[list[str]]:
        """Every argv `cifar` was run with since the last reset."""
        return [json.loads(line) for line in self.out.read_text().splitlines()] if self.out.exists() else []

    def submitter_pod(self, dashboard: Dashboard, entrypoint_text: str, login_shell: bool = False) -> tuple[int, str]:
        """One pod of the submitter Job: the script's exit status and output."""
        script = kuberay_submitter_script(dashboard.address, JOB_ID, entrypoint_text)
        done = subprocess.run(["/bin/bash", "-cel" if login_shell else "-ce", "--", script], env=self.env,
                              capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout + done.stderr

    def __call__(self, entrypoint_text: str, login_shell: bool = False) -> tuple[list[str] | None, int, str]:
        """One submission on a fresh head: the argv `cifar` received (None if it never ran), the
        script's exit status and output."""
        self.out.unlink(missing_ok=True)
        with Dashboard(self.env) as dashboard:
            status, output = self.submitter_pod(dashboard, entrypoint_text, login_shell)
        runs = self.runs()
        assert len(runs) <= 1, runs
        return (runs[0] if runs else None), status, output


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    if not RAY_CLI.exists() or not shutil.which("bash"):
        pytest.skip("needs Ray's CLI beside this Python and bash")
    pytest.importorskip("aiohttp")  # Ray's dashboard dependency, for the stand-in dashboard
    return Chain(tmp_path_factory.mktemp("chain"))


def intended(args: dict) -> list[str]:
    """The words the chart means for `stage: check` with these args (flags sorted by name, lists repeated)."""
    words = ["check", "--device", "cuda", "--pending-timeout", "1800"]
    for key in sorted(args):
        for value in args[key] if isinstance(args[key], list) else [args[key]]:
            words += [f"--{key}", value]
    return words


@pytest.mark.parametrize("login_shell", [False, True], ids=["bash -ce", "bash -cel"])
def test_hostile_values_reach_cifar_unchanged(chain, login_shell):
    text = entrypoint({**RWX, "stage": "check", "check": {"args": HOSTILE}})
    argv, status, output = chain(text, login_shell)
    assert (argv, status) == (intended(HOSTILE), 0), output
    assert not Path("/tmp/pwned-by-semi").exists() and not Path("/tmp/pwned-by-redirect").exists()


def test_pipeline_settings_reach_cifar_unchanged(chain):
    settings = {"gan": {"run": "a&b c"}, "tune": {"space": "$(id)'\"", "seeds": [0, "1 2"]}}
    argv, status, output = chain(entrypoint({**RWX, "pipeline": {"set": settings}}))
    assert status == 0, output
    assert argv == ["pipeline", "--profile", "full", "--device", "cuda", "--pending-timeout", "1800",
                    "--set", "gan.run=a&b c", "--set", 'tune.seeds=[0,"1 2"]', "--set", "tune.space=$(id)'\""], output


def test_the_chain_catches_an_entrypoint_quoted_for_no_shell(chain):
    """Negative control: the words joined as they are (no quoting) do not survive, so the test can fail.
    It is issue 17's report: bash runs `ray job submit ... a` in the background, then `b`."""
    words = ["cifar", "gan", "train", "--run-name", "a&b"]
    argv, status, output = chain(" ".join(words))
    assert argv != words[1:] and status != 0
    assert "b: command not found" in output


def test_a_nul_is_refused_by_the_chart():
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmRenderError, match="NUL character"):
        chart.render({**RWX, "stage": "gan", "pipeline": {"set": {"gan": {"run": "a\x00b"}}}}, name="cifar100")


def test_this_environment_runs_the_ray_the_image_pins():
    """The chain above is only the image's chain when the Ray CLI here is the image's version."""
    import ray

    dockerfile = (REPO / "images" / "Dockerfile").read_text()
    chart_version = yaml.safe_load((CHART / "values.yaml").read_text())["ray"]["version"]
    assert ray.__version__ == chart_version and f"rayproject/ray:{chart_version}-" in dockerfile
    assert os.access(RAY_CLI, os.X_OK)


# --- what a RayJob's retries rest on -------------------------------------------------------------
def test_a_submitter_whose_log_stream_drops_is_retried_without_submitting_twice(chain):
    """`ray job logs --follow` exits non-zero when its stream drops: that submitter pod fails, and the
    next pod of the Job (submitterConfig.backoffLimit) finds the job and follows it again; the driver
    ran once. Then a restarted head, which knows no job, gets it submitted again (the same id): the
    driver starts over and the pipeline resumes from the volumes."""
    text = entrypoint({**RWX, "stage": "gan"})
    chain.out.unlink(missing_ok=True)
    with Dashboard(chain.env, drop_streams=1) as head:
        status, output = chain.submitter_pod(head, text)
        assert status != 0 and len(chain.runs()) == 1, output  # the pod failed, the job had been submitted
        status, output = chain.submitter_pod(head, text)
        assert status == 0 and len(chain.runs()) == 1, output  # followed, not submitted again
        assert "submitted successfully" not in output
    with Dashboard(chain.env) as restarted_head:
        status, output = chain.submitter_pod(restarted_head, text)
    assert status == 0 and len(chain.runs()) == 2 and chain.runs()[0] == chain.runs()[1], output


PERMANENT = {
    "a setting": ({"pipeline": {"set": {"tune": {"num_smaples": 20}}}}, False, "error: unknown setting 'tune.num_smaples'"),
    "refused data": ({}, True, "needs the official CIFAR-100, but"),
}


@pytest.mark.parametrize("case", sorted(PERMANENT))
def test_a_failure_no_retry_can_fix_is_refused_before_the_driver_contacts_ray(chain, tmp_path, case):
    """What a RayJob retry of a bad request costs: the real `cifar pipeline` (the chart's entrypoint)
    checks every setting and the data first and exits 2 with one line, without reaching Ray (nothing
    answers at its RAY_ADDRESS) and writing nothing; the submitter ends, the Ray job FAILED."""
    from cifar_core.data import write_synthetic

    values, synthetic_data, message = PERMANENT[case]
    data, results = tmp_path / "data", tmp_path / "results"
    if synthetic_data:
        write_synthetic(data, n_train=100, n_test=50, seed=0)
    env = {**chain.real_env, "CIFAR_DATA_DIR": str(data), "CIFAR_RESULTS_DIR": str(results)}
    with Dashboard(env) as head:
        status, output = chain.submitter_pod(head, entrypoint({**RWX, **values}))
        job = head.jobs[JOB_ID]
    assert status == 0 and job["rc"] == 2, output  # KubeRay reads the job's status: AppFailed
    errors = [line for line in job["output"].splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0] and "Ray" not in errors[0], job["output"]
    assert not results.exists()
