"""cifar_core.atomic: errors name the file, and file digests are computed once per unchanged file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cifar_core import atomic


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_full_disk_while_appending_names_the_file():
    with pytest.raises(OSError) as error:
        atomic.append_jsonl("/dev/full", {"step": 1})
    assert error.value.filename == "/dev/full" and error.value.strerror == "No space left on device"


def test_a_failing_write_names_the_target_and_leaves_no_temporary_file(tmp_path):
    def full(f) -> None:
        raise OSError(28, os.strerror(28))  # what a write on a full volume raises: no file name

    with pytest.raises(OSError) as error:
        atomic.atomic_write(tmp_path / "summary.json", full)
    assert error.value.filename == str(tmp_path / "summary.json")
    assert list(tmp_path.iterdir()) == []


def test_a_file_is_hashed_once_while_it_is_unchanged(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"first weights")
    atomic._file_digest.cache_clear()
    first = atomic.file_digest(path)
    assert atomic.file_digest(tmp_path / "." / "weights.pth") == first  # same file, another spelling
    assert atomic._file_digest.cache_info().misses == 1 and atomic._file_digest.cache_info().hits == 1
    assert atomic.file_digest(path, "md5") != first and atomic._file_digest.cache_info().misses == 2
    path.write_bytes(b"other weights, same name")  # replaced: size and modification time change
    assert atomic.file_digest(path) != first and atomic._file_digest.cache_info().misses == 3
    os.replace(tmp_path / "weights.pth", tmp_path / "moved.pth")
    (tmp_path / "weights.pth").write_bytes(b"first weights")  # a new file (new inode) with the old bytes
    assert atomic.file_digest(path) == first


def test_only_the_temporary_files_atomic_write_makes_are_stale(tmp_path, monkeypatch):
    made = []
    publish = atomic._publish
    monkeypatch.setattr(atomic, "_publish", lambda tmp, path: (made.append(tmp.name), publish(tmp, path)))
    atomic.atomic_write_text(tmp_path / "summary.json", "{}")
    (tmp_path / made[0]).write_text("torn")  # what a kill before the rename leaves
    others = [".summary.json.ABCDEFGH.tmp", ".summary.json.a1b2c3d.tmp", "notes.tmp", ".hidden"]
    for name in others:
        (tmp_path / name).write_text("not ours")
    assert atomic.remove_stale_temps(tmp_path) == [tmp_path / made[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*others, "summary.json"])
