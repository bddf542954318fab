"""Issue 13 item 7: kill a classifier run and a GAN run at EVERY write boundary (each atomic
rename and each append, not only at logging boundaries), resume, and compare every file with an
uninterrupted run. The kills and resumes run in tests/fault_harness.py (forked children, killed
with os._exit); this module checks what they left.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cifar_core.data import write_synthetic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_harness import KILLED  # noqa: E402

pytestmark = pytest.mark.slow  # a kill and a resume at every write boundary of two runs

TIMINGS = {"wall_time_s", "train_time_s", "epoch_time_s", "steps_per_s", "run_dir"}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fault-data")
    write_synthetic(root, n_train=300, n_test=100, seed=0)
    return root


def run_harness(mode: str, data: Path, out: Path) -> tuple[list, dict]:
    done = subprocess.run([sys.executable, str(REPO / "tests" / "fault_harness.py"), mode, str(data), str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    statuses = json.loads((out / "statuses.json").read_text())
    assert statuses.pop("ref") == 0, done.stderr[-3000:]
    boundaries = json.loads((out / "boundaries.json").read_text())
    for k in range(1, len(boundaries) + 1):
        assert statuses[f"kill{k}"] == KILLED, (k, boundaries[k - 1], done.stderr[-3000:])
        assert statuses[f"resume{k}"] == 0, (k, boundaries[k - 1], done.stderr[-3000:])
    return boundaries, statuses


def without(values, keys=TIMINGS):
    if isinstance(values, dict):
        return {k: without(v, keys) for k, v in values.items() if k not in keys}
    if isinstance(values, list):
        return [without(v, keys) for v in values]
    return values


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def tensors_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def checkpoint(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def test_classifier_killed_at_every_write_boundary_resumes_to_the_same_files(tiny_data, tmp_path):
    boundaries, _ = run_harness("train", tiny_data, tmp_path)
    names = [Path(path).name for _, path in boundaries]
    # The request (the result-directory protocol), config.yaml, then per epoch last.pt (-> best.pt) ->
    # metrics.jsonl, then summary.json and, last, the completion marker.
    assert names[:2] == ["request.json", "config.yaml"] and names[-2:] == ["summary.json", "complete.json"]
    assert names.count("last.pt") == 2
    ref = tmp_path / "ref" / "train" / "r"
    ref_last = checkpoint(ref / "last.pt")
    for k in range(1, len(boundaries) + 1):
        run = tmp_path / f"kill{k}" / "train" / "r"
        where = (k, boundaries[k - 1])
        assert files(run) == files(ref), where  # and no temporary file left behind
        assert (run / "config.yaml").read_text() == (ref / "config.yaml").read_text(), where
        assert without(jsonl(run / "metrics.jsonl")) == without(jsonl(ref / "metrics.jsonl")), where
        for name in ("last.pt", "best.pt"):
            got, want = checkpoint(run / name), checkpoint(ref / name)
            assert (got["step"], got["best_step"]) == (want["step"], want["best_step"]), (where, name)
            assert tensors_equal(got["model_state"], want["model_state"]), (where, name)
            assert without(got["history"]) == without(want["history"]), (where, name)
        got_summary = json.loads((run / "summary.json").read_text())
        assert without(got_summary) == without(json.loads((ref / "summary.json").read_text())), where
    assert ref_last["step"] == 2 * 7 and yaml.safe_load((ref / "config.yaml").read_text())["run"]["epochs"] == 2


def test_gan_killed_at_every_write_boundary_resumes_to_the_same_files(tiny_data, tmp_path):
    boundaries, _ = run_harness("gan", tiny_data, tmp_path)
    ops = {(op, Path(path).name) for op, path in boundaries}
    assert ("append", "metrics.jsonl") in ops and ("publish", "last.pt") in ops and ("publish", "step_4.png") in ops
    ref = tmp_path / "ref" / "gan" / "r"
    for k in range(1, len(boundaries) + 1):
        run = tmp_path / f"kill{k}" / "gan" / "r"
        where = (k, boundaries[k - 1])
        assert files(run) == files(ref), where
        assert jsonl(run / "metrics.jsonl") == jsonl(ref / "metrics.jsonl"), where
        for name in ("last.pt", "step_4.pt", "step_8.pt"):
            got, want = checkpoint(run / "checkpoints" / name), checkpoint(ref / "checkpoints" / name)
            assert got["step"] == want["step"], (where, name)
            assert tensors_equal(got["model_state"], want["model_state"]), (where, name)
            assert tensors_equal(got["discriminator_state"], want["discriminator_state"]), (where, name)
        for name in ("samples/step_4.png", "samples/step_8.png"):
            assert (run / name).read_bytes() == (ref / name).read_bytes(), (where, name)
        got_summary = json.loads((run / "summary.json").read_text())
        assert without(got_summary) == without(json.loads((ref / "summary.json").read_text())), where
