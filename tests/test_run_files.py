"""The file layer every run stands on: one writer per run directory, atomic writes that get the
umask's mode and leave no temporary files behind, strict JSON, and the data digest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_core.atomic import (
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    remove_stale_temps,
    write_jsonl,
)
from cifar_core.data import data_digest, write_synthetic
from cifar_core.data import format as fmt
from cifar_core.runlock import RunLock, RunLocked

REPO = Path(__file__).resolve().parents[1]

HOLD = """
import sys, time
from cifar_core.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/run (killed at the end if still alive)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_second_writer_fails_at_once_naming_the_holder(tmp_path, holder):
    with pytest.raises(RunLocked) as caught:
        RunLock(tmp_path / "run").acquire()
    message = str(caught.value)
    assert f"pid {holder.pid}" in message and socket.gethostname() in message
    assert "\n" not in message


def test_a_killed_holder_never_blocks_the_next_writer(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path / "run"):
        pass  # the kernel dropped the dead process's lock


def test_waiting_writer_gets_the_lock_once_the_holder_is_gone(tmp_path, holder):
    import threading

    threading.Timer(0.5, holder.kill).start()
    with RunLock(tmp_path / "run", wait_s=30):
        pass
    with pytest.raises(RunLocked, match="waited 0.3s"):
        with RunLock(tmp_path / "run"):
            RunLock(tmp_path / "run", wait_s=0.3).acquire()  # a second open file: the same rule


def test_written_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        written = [
            atomic_write_text(tmp_path / "a.txt", "x"),
            atomic_write_json(tmp_path / "b.json", {"x": 1}),
            write_jsonl(tmp_path / "c.jsonl", [{"x": 1}]),
        ]
        os.umask(0o002)
        written.append(atomic_write_text(tmp_path / "d.txt", "x"))
    finally:
        os.umask(old)
    modes = [oct(p.stat().st_mode & 0o777) for p in written]
    assert modes == ["0o644", "0o644", "0o644", "0o664"]


def test_stale_temporary_files_are_removed_and_nothing_else(tmp_path):
    keep = [tmp_path / "last.pt", tmp_path / ".hidden", tmp_path / "notes.tmp", tmp_path / ".metrics.jsonl.x_9y8z7w.tmp"]
    stale = [tmp_path / ".last.pt.a1b2c3d4.tmp", tmp_path / ".metrics.jsonl.0f9e8d7c.tmp"]
    for path in keep + stale:
        path.write_text("x")
    assert sorted(remove_stale_temps(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)


def test_json_writers_refuse_nan_and_infinity_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"s\.json: final\.d_loss"):
        atomic_write_json(tmp_path / "s.json", {"final": {"d_loss": float("nan")}})
    with pytest.raises(ValueError, match=r"rows\[0\]"):
        atomic_write_json(tmp_path / "t.json", {"rows": [float("inf")]})
    with pytest.raises(ValueError, match="m.jsonl"):
        append_jsonl(tmp_path / "m.jsonl", {"loss": float("-inf")})
    assert not (tmp_path / "s.json").exists() and not list(tmp_path.glob(".*.tmp"))
    assert json.loads(atomic_write_json(tmp_path / "ok.json", {"missing": None}).read_text()) == {"missing": None}


def test_data_digest_names_the_kind_and_follows_the_data(tmp_path, synth_root):
    digest = data_digest(synth_root)
    assert digest.startswith("synthetic:") and digest == data_digest(synth_root / fmt.BASE_FOLDER)
    other = write_synthetic(tmp_path / "other", n_train=200, n_test=50, seed=1)
    assert data_digest(other).startswith("synthetic:") and data_digest(other) != digest

    # Without a manifest the files themselves decide; a changed file changes the digest.
    plain = tmp_path / "plain"
    shutil.copytree(synth_root, plain)
    (plain / fmt.BASE_FOLDER / fmt.MANIFEST_NAME).unlink()
    files_digest = data_digest(plain)
    assert files_digest.startswith("files:")
    test_file = plain / fmt.BASE_FOLDER / "test"
    test_file.write_bytes(test_file.read_bytes()[:-1] + b"\x00")
    assert data_digest(plain).startswith("files:") and data_digest(plain) != files_digest


def test_data_digest_recognises_the_official_md5s(tmp_path, synth_root, monkeypatch):
    plain = tmp_path / "plain"
    shutil.copytree(synth_root, plain)
    folder = plain / fmt.BASE_FOLDER
    (folder / fmt.MANIFEST_NAME).unlink()
    # Files whose md5s are the published ones are the official set (the real files are not here).
    monkeypatch.setattr(fmt, "OFFICIAL_MD5", {n: fmt.md5_of(folder / n) for n in ("train", "test", "meta")})
    assert data_digest(plain).startswith("official:")
