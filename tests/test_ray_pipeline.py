"""The whole study, every stage a Ray task, on a real multi-node Ray cluster (Ray's own
`ray.cluster_utils.Cluster`: a head that runs nothing and two worker nodes, separate raylets here).
The command runs as a user runs it: `cifar pipeline` in a new process with RAY_ADDRESS set."""

from __future__ import annotations

import json

import pytest
import yaml
from ray_cluster import cifar, finish, worker_ids

pytestmark = pytest.mark.slow  # a Ray cluster of three raylets and every stage of the study

# Two minutes on a quiet 2-core machine; with two CPU-bound processes and another Ray cluster beside
# it, its first run took over 20 (the FID stage's Inception alone 10): a deadline for hangs only.
STUDY_TIMEOUT_S = 2400


@pytest.mark.timeout(2 * STUDY_TIMEOUT_S + 600)
def test_smoke_pipeline_on_the_cluster_runs_every_stage_on_worker_nodes_and_resumes(tmp_path, cluster_env, cluster):
    """Every real stage (synthetic data, the search, retraining, the recipes and the ablation, the
    DCGAN, both FID protocols with a test-made Inception weights file, the report), shrunk to
    seconds, with relative paths as `make demo` passes them; then a rerun skips what is done."""
    from helpers import assert_fixture_has_the_shape_of

    from cifar_core.fid.inception import write_random_weights
    from cifar_core.stages import all_stages

    write_random_weights(tmp_path / "inception.pth", seed=0)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({
        "models": [{"names": ["tinycnn"]}], "fixed": {"run.eval_batch_size": 500},
        "optimizers": {"sgd": {"lr": {"loguniform": [0.01, 0.1]}, "momentum": 0.9}}}))
    # Few training images (one batch of the recipes): FID's selection runs Inception over all of them.
    overrides = ["data.n_train=32", "data.n_test=8", "tune.space=space.yaml", "tune.num_samples=2",
                 "tune.max_epochs=1", "tune.batch_size=50", "retrain.epochs=1", "gan.steps=4", "gan.batch_size=16",
                 "gan.log_every=2", "gan.sample_every=2", "gan.checkpoint_every=2", "fid.n=2", "fid.if_no_weights=fail",
                 "fid-b.step=2", "fid-b.compare_steps=[4]", "fid-b.n=2", "fid-b.if_no_weights=fail", "recipe-a.models=[cnn6]",
                 "recipe-a.epochs=1", "recipe-a.steps=null", "ablation.models=[cnn6]", "recipe-b.seeds=[0,1]",
                 "recipe-b.steps=1", "recipe-b.eval_every=1"]
    args = ["pipeline", "--profile", "smoke", "--device", "cpu", "--data-dir", "data", "--results-dir", "results"]
    for override in overrides:
        args += ["--set", override]
    env = {**cluster_env, "CIFAR_FID_WEIGHTS": str(tmp_path / "inception.pth")}
    output = finish(cifar(args, env, cluster, tmp_path / "first.log", cwd=tmp_path), tmp_path / "first.log",
                    STUDY_TIMEOUT_S)
    results = tmp_path / "results"

    assert "SYNTHETIC" in output  # said plainly
    summary = json.loads((results / "pipeline" / "smoke" / "summary.json").read_text())
    assert summary["complete"] is True
    assert [(s["stage"], s["status"]) for s in summary["stages"]] == [(s.name, "ran") for s in all_stages()]
    workers = worker_ids(cluster)
    for stage in summary["stages"]:
        places = stage["ran_on"]
        assert places and {p["node_id"] for p in places} <= workers, (stage["stage"], places, workers)
    retrain = next(s for s in summary["stages"] if s["stage"] == "retrain")
    assert len(retrain["ran_on"]) == 2  # the two retrains, each its own task
    gan = json.loads((results / "gan" / "smoke" / "summary.json").read_text())
    assert gan["ran_on"][0]["device"] == "cpu" and gan["ran_on"][0]["hostname"]
    assert f"results: {results.resolve()}" in output
    assert (results / "report" / "index.html").stat().st_size > 10_000
    fid = json.loads((results / "fid" / "smoke-select-n2" / "summary.json").read_text())
    assert [entry["step"] for entry in fid["ranking"]] and fid["fid"] >= 0
    ablation = json.loads((results / "recipe" / "report-a-augment-none-e1" / "summary.json").read_text())
    assert ablation["budget"] == {"epochs": 1} and ablation["augment"] == "none"  # recipe-a's budget, no augmentation
    assert [p["step"] for p in json.loads((results / "recipe" / "report-b-s1" / "summary.json").read_text())
            ["models"][1]["test_curve"]] == [1]
    fid_b = json.loads((results / "fid" / "smoke-step_2-n2" / "summary.json").read_text())
    assert fid_b["protocol"] == "report-b" and fid_b["made_by"] == "fid-b"  # its snapshot, as report B scored one
    assert_fixture_has_the_shape_of(results)

    (results / "retrain" / "smoke" / "summary.json").unlink()  # as if killed during retraining
    finish(cifar(args, env, cluster, tmp_path / "second.log", cwd=tmp_path), tmp_path / "second.log",
           STUDY_TIMEOUT_S)
    again = json.loads((results / "pipeline" / "smoke" / "summary.json").read_text())
    assert [(s["stage"], s["status"]) for s in again["stages"]] == [
        (s.name, "ran" if s.name in ("data", "retrain") else "skipped") for s in all_stages()]


