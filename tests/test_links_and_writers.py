"""Issue 29, items 1-2: nothing under a results or data directory is followed out of it through a
symbolic link (a lock, a run's folder, a figure, a summary), and every kind of result has one writer
(FID scores, sample sets, data sets, reports, as training runs): the second fails at once naming the
holder, and nothing already written changes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, cifar
from PIL import Image

from cifar_core.data import write_synthetic
from cifar_core.runlock import RunLock

TRAIN = ["--model", "tinycnn", "--steps", "2", "--batch-size", "50", "--device", "cpu", "--no-amp"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic(root, n_train=200, n_test=100, seed=0)
    return root


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not yours\n")
    return path


def train(data: Path, results: Path, *extra) -> tuple:
    return cifar("train", *TRAIN, "--run-name", "r", "--data-dir", data, "--results-dir", results, *extra)


@pytest.mark.parametrize("planted", ["lock", "request", "run folder", "results folder"])
def test_a_link_planted_in_a_results_tree_is_refused_and_its_target_untouched(tmp_path, data, planted):
    results, target = tmp_path / "results", victim(tmp_path)
    assert train(data, results).status == 0
    run = results / "train" / "r"
    if planted == "lock":
        (run / ".lock").unlink()
        (run / ".lock").symlink_to(target)
    elif planted == "request":
        (run / "request.json").unlink()
        (run / "request.json").symlink_to(target)
    elif planted == "run folder":  # the whole run's folder a link to somewhere else
        shutil.move(run, tmp_path / "moved")
        run.symlink_to(tmp_path / "moved")
    else:
        shutil.move(results / "train", tmp_path / "moved-train")
        (results / "train").symlink_to(tmp_path / "moved-train")
    result = train(data, results, "--resume", "--steps", "4")
    assert_one_line_error(result, "link")
    assert target.read_text() == "not yours\n"
    for command in (["evaluate", "--checkpoint", run / "last.pt", "--data-dir", data, "--device", "cpu"],):
        outcome = cifar(*command)
        assert target.read_text() == "not yours\n", outcome  # scored or refused, never written through


def test_a_report_never_embeds_or_reads_what_a_link_points_to(tmp_path, data):
    results, secret = tmp_path / "results", tmp_path / "outside" / "secret.png"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"\x89PNG\r\n\x1a\n-- a private picture --")
    assert cifar("gan", "train", "--run-name", "g", "--steps", "2", "--batch-size", "32", "--ngf", "8", "--ndf", "8",
                 "--log-every", "2", "--sample-every", "2", "--checkpoint-every", "2", "--device", "cpu",
                 "--data-dir", data, "--results-dir", results, "--no-ray").status == 0
    run = results / "gan" / "g"
    (run / "losses.png").unlink()
    (run / "losses.png").symlink_to(secret)  # a figure
    (run / "samples" / "step_2.png").unlink()
    (run / "samples" / "step_2.png").symlink_to(secret)
    other = tmp_path / "outside" / "run"
    shutil.copytree(run, other, symlinks=True)
    (results / "gan" / "linked").symlink_to(other)  # a whole result, read from outside
    assert cifar("report", "--results-dir", results).status == 0
    page = (results / "report" / "index.html").read_text()
    import base64

    assert base64.b64encode(secret.read_bytes()).decode() not in page
    collected = json.loads((results / "report" / "report.json").read_text())
    assert [e["name"] for e in collected["stages"]["gan"]] == ["g"]  # the linked result is not read
    (linked,) = [e for e in collected["incomplete"] if e["name"] == "linked"]
    assert "symbolic link" in linked["reason"]
    # the page says why it is not reported, not that it has no summary yet
    assert "Not read: gan/linked (a symbolic link on the way into the results tree: not read)." in page
    assert "not reported: gan/linked" not in page


def test_two_writers_of_one_result_never_both_write(tmp_path, data):
    """While one command holds a result directory, a second of the same kind fails at once naming the
    holder: samples, data sets, FID scores and reports, as training runs."""
    results = tmp_path / "results"
    assert cifar("gan", "train", "--run-name", "g", "--steps", "2", "--batch-size", "32", "--ngf", "8", "--ndf", "8",
                 "--log-every", "2", "--sample-every", "2", "--checkpoint-every", "2", "--device", "cpu",
                 "--data-dir", data, "--results-dir", results, "--no-ray").status == 0
    checkpoint = results / "gan" / "g" / "checkpoints" / "last.pt"
    cases = {
        tmp_path / "samples": ["gan", "sample", "--checkpoint", checkpoint, "--n", "4", "--out", tmp_path / "samples",
                               "--device", "cpu"],
        tmp_path / "synth": ["data", "synth", "--out", tmp_path / "synth", "--train", "100", "--test", "50"],
        results / "fid" / "mine": ["fid", "--fake", tmp_path / "synth-images", "--name", "mine", "--data-dir", data,
                                   "--results-dir", results, "--device", "cpu", "--no-ray"],
        results / "report": ["report", "--results-dir", results],
    }
    (tmp_path / "synth-images").mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(tmp_path / "synth-images" / f"{i}.png")
    for folder, command in cases.items():
        with RunLock(folder, what="holder"):
            assert_one_line_error(cifar(*command), f"{folder} is in use by another", f"pid {os.getpid()}")
        assert sorted(p.name for p in folder.iterdir()) == [".lock"], folder  # nothing else written


@pytest.mark.parametrize("planted", ["metrics.jsonl", "best.pt", "summary.json", "config.yaml"])
def test_a_link_in_place_of_a_runs_file_is_replaced_never_written_through(tmp_path, data, planted):
    """Files a run rewrites are replaced whole (a new file renamed over the link), and appends never
    follow one: the link goes, its target stays as it was."""
    results, target = tmp_path / "results", victim(tmp_path)
    assert train(data, results).status == 0
    path = results / "train" / "r" / planted
    path.unlink()
    path.symlink_to(target)
    assert train(data, results, "--resume", "--steps", "4").status == 0
    assert target.read_text() == "not yours\n" and not path.is_symlink() and path.is_file()
