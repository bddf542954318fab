"""bench/gpu.sh, the one script a session lent a GPU runs, works end to end in its --tiny mode here."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_script_runs_every_part_in_tiny_mode(tmp_path):
    from cifar_core.fid import WEIGHTS_FILENAME, write_random_weights

    weights = write_random_weights(tmp_path / WEIGHTS_FILENAME, seed=0)  # the real file cannot be had here
    out = tmp_path / "bench-gpu.json"
    env = {**os.environ, "CIFAR_FID_WEIGHTS": str(weights), "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    env.pop("CIFAR_DATA_DIR", None)
    done = subprocess.run(["bash", "bench/gpu.sh", "--tiny", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["tiny"] is True and report["data"]["synthetic"] is True
    assert {name: part["exit_status"] for name, part in report["parts"].items()} == {
        "data": 0, "throughput": 0, "cnn7": 0, "gan": 0, "fid": 0}, done.stderr
    [model] = report["throughput"]["results"]
    assert model["speedup"]["median"] > 0 and len(model["ours_images_per_s"]["all"]) == 3
    assert len(report["cnn7_two_epochs"]["epoch_time_s"]) == 2 and report["gan"]["steps"] == 20
    assert report["fid"]["n"] == 4 and report["fid"]["fid"] >= 0 and report["notes"] == []
    assert not [p for p in tmp_path.glob("bench-gpu.*") if p.is_dir()]  # its working folder is removed
