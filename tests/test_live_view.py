"""Output for people: one live view of a pipeline or a search (a block redrawn in place on a terminal,
a line now and then in a log), the standing for `cifar status` in a file beside the results and not
in either, and machines named one way. The real CLI runs under a pseudo-terminal and into a pipe."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import yaml

from cifar_core import live
from cifar_core.execution.runners import machine_names
from cifar_core.live import LiveView, block_lines, log_line
from cifar_core.progress import read_standing, write_standing

REPO = Path(__file__).resolve().parents[1]
BOX = re.compile("[╭╮╰╯│├┤─]")
ROWS = [
    {"stage": "data", "status": "ran", "work_s": 0.4, "hosts": ["vm"]},
    {"stage": "gan", "status": "running", "done": 50, "total": 150, "unit": "steps", "eta_s": 80},
    {"stage": "fid", "status": "waiting", "note": "for gan"},
    {"stage": "tune", "status": "running", "done": 3, "total": 8, "unit": "trial epochs", "eta_s": None},
]


def screen(raw: str) -> list[str]:
    """What a terminal shows after `raw`: the text, carriage returns, newlines, cursor up (ESC[nA) and
    erase below (ESC[J) the view uses; colours and other sequences are dropped."""
    lines, y, x = [""], 0, 0
    for token in re.findall(r"\x1b\[\d*[A-Za-z]|\r|\n|[^\x1b\r\n]+|\x1b", raw):
        if token.startswith("\x1b["):
            if token.endswith("A"):
                y = max(0, y - int(token[2:-1] or 1))
            elif token.endswith("J"):
                lines[y] = lines[y][:x]
                del lines[y + 1:]
        elif token == "\r":
            x = 0
        elif token == "\n":
            y, x = y + 1, 0
            lines += [""] * (y + 1 - len(lines))
        elif token != "\x1b":
            lines[y] = lines[y][:x].ljust(x) + token + lines[y][x + len(token):]
            x += len(token)
    return [line for line in lines if line.strip()]


# --- the block and the log line ------------------------------------------------------------------------
def test_the_block_says_each_stages_progress_and_time_left():
    lines = block_lines("pipeline smoke", ROWS, elapsed_s=75)
    assert lines[0] == "pipeline smoke · 1:15"
    assert lines[1] == "  data  ran         0 s of work · on vm"
    assert lines[2] == "  gan   running     [####--------] 50/150 steps · about 1 min left"
    assert lines[3] == "  fid   waiting     for gan"
    assert lines[4] == "  tune  running     [####--------] 3/8 trial epochs"
    # a block taller than the terminal is cut, saying how much it left out
    many = [{"stage": f"t{i}", "status": "pending"} for i in range(40)]
    cut = block_lines("search s", many, 5, height=10)
    assert len(cut) == 10 and cut[-1] == "  ... and 32 more"


def test_a_log_gets_one_line_of_what_runs():
    assert log_line("pipeline smoke", ROWS) == ("[pipeline smoke] running: gan 50/150 steps (about 1 min left); "
                                                "tune 3/8 trial epochs · 1 of 4 done")
    assert log_line("pipeline smoke", [{"stage": "data", "status": "ran"}]) is None


def test_a_searchs_log_line_counts_trials_not_rows():
    """The search's view shows its running and best trials and one row counting the rest: "done"
    counts each trial that row stands for (and the row itself is none of them)."""
    from types import SimpleNamespace

    from cifar_core.tune.feed import TrialFeed

    def trial(i, status, epoch, acc=None):
        result = {"epoch": epoch, "time_this_iter_s": 10.0, **({"val_acc": acc} if acc is not None else {})}
        return SimpleNamespace(trial_id=f"t{i}", status=status, last_result=result, config={})

    feed = TrialFeed("s", max_epochs=4, num_samples=12)
    trials = [trial(0, "RUNNING", 1, 0.1), *(trial(i, "TERMINATED", 4, 0.5 + i / 100) for i in (1, 2, 3, 4)),
              *(trial(i, "TERMINATED", 2, 0.2) for i in (5, 6)), *(trial(i, "PENDING", 0) for i in (7, 8, 9, 10, 11))]
    feed.on_experiment_end(trials)
    rows = feed.rows()
    assert len(rows) == 5 and rows[-1]["stage"] == "8 more trials"  # 1 running, the 3 best finished, the rest
    # finished: 4 ran every epoch, 2 stopped by ASHA; 5 pending and 1 running are not done
    assert log_line("search s", rows).endswith(" · 6 of 12 done")


# --- the view on a terminal ------------------------------------------------------------------------------
def test_on_a_terminal_the_block_is_redrawn_in_place_and_other_output_goes_above_it(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("LINES", "30")
    terminal = io.StringIO()
    handler = logging.StreamHandler(terminal)  # as Ray's own logger writes to the terminal
    logger = logging.getLogger("cifar-test-live")
    logger.addHandler(handler)
    rows = [dict(row) for row in ROWS]
    try:
        with LiveView("pipeline t", lambda: rows, stream=terminal, terminal=True) as view:
            assert live.active() is view and not sys.stderr.isatty()  # nothing else draws (tqdm)
            view.redraw()
            print("(gan pid=1) a worker's line", file=sys.stderr)
            logger.warning("a logged line")
            rows[1]["done"] = 100
            view.redraw()
            sys.stdout.write("half a ")
            sys.stdout.write("line\n")
            shown = screen(terminal.getvalue())
            assert shown[:3] == ["(gan pid=1) a worker's line", "a logged line", "half a line"]
            assert shown[3].startswith("pipeline t · ")
            assert shown[5] == "  gan   running     [########----] 100/150 steps · about 1 min left"
            assert len(shown) == 3 + 5  # one block, however often it was drawn
    finally:
        logger.removeHandler(handler)
    assert screen(terminal.getvalue()) == ["(gan pid=1) a worker's line", "a logged line", "half a line"]
    assert live.active() is None and handler.stream is terminal and sys.stderr is not None
    assert terminal.getvalue().count("\x1b[J") >= 2


def test_in_a_log_the_view_draws_nothing_and_publishes_the_standing_at_the_end(tmp_path, capsys):
    out, published, stderr = io.StringIO(), [], sys.stderr
    with LiveView("pipeline t", lambda: ROWS, stream=out, terminal=False,
                  publish=lambda rows, final: published.append((rows, final))):
        assert sys.stderr is stderr  # the process's own streams: nothing is drawn over
        live.note("[pipeline] gan: submitted")  # a log gets the stages' changes
    assert capsys.readouterr().err == "[pipeline] gan: submitted\n"
    # nothing drawn; one line at the end, however short it ran: where the work stands, under its title
    assert re.fullmatch(r"\[pipeline t\] \d+ of \d+ done · \d+:\d\d\n", out.getvalue()), out.getvalue()
    assert published == [(ROWS, True)]
    written = write_standing(tmp_path / "standing.json", ROWS, profile="smoke", final=True)
    standing = read_standing((tmp_path / "standing.json").read_text())
    assert standing == written  # what the driver then hands on (to its RayJob, for `cifar status`)
    assert standing["stages"] == ROWS and standing["profile"] == "smoke" and standing["final"] is True


def test_the_standing_is_read_by_one_function():
    assert read_standing("") is None and read_standing('{"stages": [') is None and read_standing("[1]") is None
    assert read_standing("[" * 10_000 + "]" * 10_000) is None  # nested past what json reads


def test_machines_are_named_by_host_and_by_node_only_where_one_host_has_several():
    one = [{"node_id": "21a4376f0c", "hostname": "vm"}, {"node_id": "21a4376f0c", "hostname": "vm"}]
    assert machine_names(one) == ["vm"]
    two = [{"node_id": "21a4376f0c", "hostname": "vm"}, {"node_id": "c5de2f5d11", "hostname": "vm"},
           {"node_id": "aa", "hostname": "gpu-1"}]
    assert machine_names(two) == ["gpu-1", "vm (21a4376f)", "vm (c5de2f5d)"]
    assert machine_names(two[:1], among=two) == ["vm (21a4376f)"]  # as the rest of its table names it
    assert machine_names([{"node_id": "c5de2f5d11"}]) == ["c5de2f5d"]  # a search recorded before hosts were
    here = [{"node_id": None, "hostname": "vm"}, {"node_id": "88d26f98aa", "hostname": "vm"}]  # --no-ray's stages
    assert machine_names(here) == ["vm"]  # and its search's one local Ray node: one machine
    assert machine_names(None) == []


# --- the real CLI ---------------------------------------------------------------------------------------
def smoke_args(tmp_path: Path, results: str) -> list[str]:
    """`cifar pipeline --profile smoke`, every stage shrunk to seconds (a two-trial search of a tiny model)."""
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"models": [{"names": ["tinycnn"]}], "fixed": {"run.eval_batch_size": 500},
                                     "optimizers": {"sgd": {"lr": {"loguniform": [0.01, 0.1]}, "momentum": 0.9}}}))
    overrides = ["data.n_train=64", "data.n_test=16", f"tune.space={space}", "tune.num_samples=2", "tune.max_epochs=2",
                 "tune.grace_period=2", "tune.batch_size=32", "retrain.epochs=1", "gan.steps=4", "gan.batch_size=16",
                 "gan.log_every=2", "gan.sample_every=2", "gan.checkpoint_every=2", "fid-b.step=2",
                 "fid-b.compare_steps=[4]", "recipe-a.models=[cnn6]", "recipe-a.steps=2", "ablation.models=[cnn6]",
                 "recipe-b.seeds=[0]", "recipe-b.steps=2", "recipe-b.eval_every=1"]
    return ["pipeline", "--profile", "smoke", "--device", "cpu", "--data-dir", str(tmp_path / "data"),
            "--results-dir", str(tmp_path / results), *(arg for o in overrides for arg in ("--set", o))]


def run_in_a_terminal(args: list[str], columns: int = 160, lines: int = 40, timeout_s: float = 1500) -> tuple[int, str]:
    """`cifar ARGS` with a pseudo-terminal as its stdin, stdout and stderr (as in a shell); its output."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], stdin=follower, stdout=follower,
                               stderr=follower, cwd=REPO, start_new_session=True)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if select.select([leader], [], [], 1.0)[0]:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: every process on it ended
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    else:
        process.kill()
    os.close(leader)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_pipeline_in_a_log_is_short_and_readable_and_on_a_terminal_is_one_live_view(tmp_path, ray_env,
                                                                                       monkeypatch):
    monkeypatch.setenv("CIFAR_FID_WEIGHTS", str(tmp_path / "absent.pth"))  # FID: unavailable, whatever the network
    started = time.monotonic()
    logged = subprocess.run([sys.executable, "-m", "jobs.cli", *smoke_args(tmp_path, "logged")], cwd=REPO,
                            capture_output=True, text=True, timeout=1500)
    minutes = (time.monotonic() - started) / 60
    assert logged.returncode == 0, logged.stderr[-4000:]
    lines = (logged.stderr + logged.stdout).splitlines()
    assert not [line for line in lines if BOX.search(line) or "[cifar-standing]" in line or '{"' in line], lines
    progress = [line for line in lines if line.startswith("[pipeline smoke")]
    assert len(progress) <= 2 * minutes + 1, progress  # at most two a minute
    assert len(lines) <= 60, "\n".join(lines)
    assert "SYNTHETIC data, not CIFAR-100" in logged.stderr and "note: the data is the SYNTHETIC stand-in" in logged.stdout
    host = socket.gethostname()
    table = logged.stdout.splitlines()
    ran = [line for line in table if " ran " in line]
    assert len(ran) == 7 and all(line.endswith(f" on {host}") for line in ran), table  # fid, fid-b: unavailable
    summary = json.loads((tmp_path / "logged" / "pipeline" / "smoke" / "summary.json").read_text())
    standing = read_standing((tmp_path / "logged" / "pipeline" / "smoke" / "standing.json").read_text())
    assert standing["final"] is True and standing["profile"] == "smoke"
    assert [(s["stage"], s["status"]) for s in standing["stages"]] == [(s["stage"], s["status"])
                                                                       for s in summary["stages"]]

    status, raw = run_in_a_terminal(smoke_args(tmp_path, "shown"))
    assert status == 0, screen(raw)[-40:]
    frames = [frame.split("\x1b[")[0] for frame in raw.split("\x1b[J")[1:]]
    blocks = [frame.replace("\r", "").splitlines() for frame in frames if frame.startswith("pipeline smoke ·")]
    assert len(blocks) >= 2  # redrawn in place
    names = {line.split()[0] for block in blocks for line in block[1:] if not line.startswith("    ")}
    assert names == {"data", "gan", "fid", "fid-b", "recipe-a", "ablation", "recipe-b", "tune", "retrain"}
    trials = {line.split()[0] for block in blocks for line in block if re.match(r"    \w+_\d{5} tinycnn/sgd ", line)}
    assert len(trials) == 2  # the search's trials under its row
    assert any("[" in line and "] " in line and "/" in line for block in blocks for line in block)  # a progress bar
    shown = screen(raw)
    assert not [line for line in shown if BOX.search(line) or "[cifar-standing]" in line
                or line.startswith("pipeline smoke ·") or ": submitted" in line], shown  # the block erased at the end
    assert any(line.startswith("stage     status") for line in shown)  # the table stays
    assert any(line.startswith("retrain ") and line.endswith(f" on {host}") for line in shown)
    assert "note: the data is the SYNTHETIC stand-in, not real CIFAR-100" in shown[-3]


@pytest.mark.slow
def test_verbose_brings_ray_tunes_own_tables_back(tmp_path, ray_env, synth_root):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"models": [{"names": ["tinycnn"]}],
                                     "optimizers": {"sgd": {"lr": {"loguniform": [0.01, 0.1]}}}}))
    args = [sys.executable, "-m", "jobs.cli", "tune", "--experiment", "v", "--space", str(space), "--num-samples", "1",
            "--max-epochs", "1", "--batch-size", "100", "--allow-synthetic", "--data-dir", str(synth_root),
            "--results-dir", str(tmp_path)]
    quiet = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert not BOX.search(quiet.stderr) and "Trial status" not in quiet.stderr
    verbose = subprocess.run([*args[:5], "w", *args[6:], "--verbose"], cwd=REPO, capture_output=True, text=True,
                             timeout=900)
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "Trial status" in verbose.stderr and BOX.search(verbose.stderr)
