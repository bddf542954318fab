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
