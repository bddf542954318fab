"""`run_pipeline`: the whole study as a list of stages, resumable stage by stage.

A stage is a name, a run function and the summary.json it leaves behind. Its config comes from
the profile (`smoke` or `full`, below). After a stage runs, the pipeline stamps its summary.json
with a hash of that config; a stage whose summary carries the same hash is skipped. So a pipeline
that was killed, run again, continues with the stage it was in (and that stage resumes itself:
Tune restores its experiment, retraining resumes its runs).

To add a stage: write `run_<name>(ctx, config) -> summary dict` and `<name>_summary(ctx, config)
-> Path`, add a `Stage` to STAGES and a section to each profile. A stage that cannot run here
(the FID stage without Inception weights, where the profile allows it) raises `StageUnavailable`:
it is reported, not stamped, and tried again on the next run. The HTML report is rebuilt at the
end of every run, so it always shows the latest results.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_core.atomic import atomic_write_json, read_json
from cifar_core.errors import CifarError, ConfigError, DataError
from cifar_core.progress import log

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # Minutes on a 2-core laptop CPU: a small synthetic set if no data is there, 4 trials of the
    # report-a space for 2 epochs, the best 2 retrained for 2 epochs.
    "smoke": {
        "data": {"if_missing": "synthesize", "n_train": 2000, "n_test": 500, "seed": 0},
        "tune": {"experiment": "smoke", "space": "report-a", "num_samples": 4, "max_concurrent": 4,
                 "max_epochs": 2, "grace_period": 1, "reduction_factor": 2, "cpus_per_trial": 1.0,
                 "batch_size": 128, "seed": 0},
        "retrain": {"experiment": "smoke", "top_k": 2, "epochs": 2},
        # Report B's DCGAN at full width for a few steps: enough to exercise sampling, snapshots
        # and FID selection, far too few for good images.
        "gan": {"run": "smoke", "steps": 150, "batch_size": 64, "log_every": 10, "sample_every": 50,
                "checkpoint_every": 50, "seed": 0},
        "fid": {"gan_run": "smoke", "n": 100, "if_no_weights": "skip"},
    },
    # Report A's protocol: 60 samples, 16 at a time, ASHA keeping the top half, 30 epochs;
    # the best 3 retrained for 100 epochs on all 50,000 training images.
    "full": {
        "data": {"if_missing": "fetch"},
        "tune": {"experiment": "report-a", "space": "report-a", "num_samples": 60, "max_concurrent": 16,
                 "max_epochs": 30, "grace_period": 1, "reduction_factor": 2, "cpus_per_trial": 1.0,
                 "batch_size": 128, "seed": 0},
        "retrain": {"experiment": "report-a", "top_k": 3, "epochs": 100},
        # Report B: ~46,000 steps, snapshots every 2,000; every snapshot scored on 10,000 samples
        # against the test set, the best one kept (report B picked step 46,000 by eye).
        "gan": {"run": "dcgan", "steps": 46000, "batch_size": 128, "log_every": 100, "sample_every": 1000,
                "checkpoint_every": 2000, "seed": 0},
        "fid": {"gan_run": "dcgan", "n": 10000, "if_no_weights": "fail"},
    },
}


@dataclass(frozen=True)
class PipelineContext:
    profile: str
    data_dir: Path
    results_dir: Path
    device: str = "auto"


class StageUnavailable(CifarError):
    """This stage cannot run on this machine (e.g. no Inception weights); the pipeline goes on."""


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[PipelineContext, dict], dict]  # does the work, returns the stage's summary
    summary_path: Callable[[PipelineContext, dict], Path]  # where that summary.json lives


# --- stages ------------------------------------------------------------------------------------
def run_data_check(ctx: PipelineContext, config: dict) -> dict:
    from cifar_core.data import fetch_cifar100, verify_dataset, write_synthetic

    generated = False
    if not (ctx.data_dir / "cifar-100-python").is_dir() and ctx.data_dir.name != "cifar-100-python":
        if config["if_missing"] == "synthesize":
            log(f"no dataset at {ctx.data_dir}: writing a SYNTHETIC stand-in ({config['n_train']} train / "
                f"{config['n_test']} test images, not CIFAR-100) for the smoke profile")
            write_synthetic(ctx.data_dir, n_train=config["n_train"], n_test=config["n_test"], seed=config["seed"])
            generated = True
        else:
            log(f"no dataset at {ctx.data_dir}: downloading CIFAR-100")
            try:
                fetch_cifar100(ctx.data_dir)
            except DataError as exc:
                raise DataError(f"the {ctx.profile} profile needs the real CIFAR-100: {exc}") from None
    report = verify_dataset(ctx.data_dir)
    summary = {"stage": "data", "generated_synthetic": generated, **report}
    atomic_write_json(data_summary(ctx, config), summary)
    return summary


def data_summary(ctx: PipelineContext, config: dict) -> Path:
    return ctx.results_dir / "pipeline" / ctx.profile / "data" / "summary.json"


def run_tune_stage(ctx: PipelineContext, config: dict) -> dict:
    from cifar_core.tune.search import TuneSettings, run_tune

    return run_tune(TuneSettings(**config, device=ctx.device), ctx.data_dir, ctx.results_dir)


def tune_summary(ctx: PipelineContext, config: dict) -> Path:
    return ctx.results_dir / "tune" / config["experiment"] / "summary.json"


def run_retrain_stage(ctx: PipelineContext, config: dict) -> dict:
    from cifar_core.retrain import retrain_from_tune

    return retrain_from_tune(config["experiment"], ctx.data_dir, ctx.results_dir, top_k=config["top_k"],
                             epochs=config["epochs"], device=ctx.device)


def retrain_summary(ctx: PipelineContext, config: dict) -> Path:
    return ctx.results_dir / "retrain" / config["experiment"] / "summary.json"


def run_gan_stage(ctx: PipelineContext, config: dict) -> dict:
    from cifar_core.gan.config import GanTrainConfig
    from cifar_core.gan.train import train_gan

    cfg = GanTrainConfig.from_dict({k: v for k, v in config.items() if k != "run"})
    return train_gan(cfg, ctx.data_dir, gan_summary(ctx, config).parent, device=ctx.device, resume=True)


def gan_summary(ctx: PipelineContext, config: dict) -> Path:
    return ctx.results_dir / "gan" / config["run"] / "summary.json"


def run_fid_stage(ctx: PipelineContext, config: dict) -> dict:
    from cifar_core.fid.inception import resolve_weights
    from cifar_core.fid.scoring import default_cache_dir, run_fid

    try:
        resolve_weights()  # downloads into the torch hub cache where the network allows
    except CifarError as exc:
        if config["if_no_weights"] == "skip":
            raise StageUnavailable(str(exc)) from None
        raise
    run_dir = ctx.results_dir / "gan" / config["gan_run"]
    return run_fid(fid_summary(ctx, config).parent, run_dir=run_dir, data_dir=ctx.data_dir, split="test",
                   n=config["n"], device=ctx.device, cache_dir=default_cache_dir(ctx.results_dir))


def fid_summary(ctx: PipelineContext, config: dict) -> Path:
    from cifar_core.fid.scoring import default_name

    # The same place `cifar fid --select-best RESULTS/gan/<run>` writes to.
    return ctx.results_dir / "fid" / default_name(None, None, ctx.results_dir / "gan" / config["gan_run"]) / "summary.json"


STAGES: list[Stage] = [
    Stage("data", run_data_check, data_summary),
    Stage("tune", run_tune_stage, tune_summary),
    Stage("retrain", run_retrain_stage, retrain_summary),
    Stage("gan", run_gan_stage, gan_summary),
    Stage("fid", run_fid_stage, fid_summary),
]


# --- the runner --------------------------------------------------------------------------------
def config_hash(stage: str, config: dict, ctx: PipelineContext) -> str:
    """What makes a stage's result: its config and the data it reads (not the device it ran on)."""
    key = {"stage": stage, "config": config, "data_dir": str(ctx.data_dir.resolve())}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def stage_done(path: Path, digest: str) -> bool:
    if not path.is_file():
        return False
    try:
        stamp = json.loads(path.read_text()).get("pipeline", {})
    except json.JSONDecodeError:
        return False  # a torn file cannot vouch for anything: run the stage again
    return stamp.get("config_hash") == digest


def run_pipeline(profile: str, data_dir: str | Path, results_dir: str | Path, device: str = "auto",
                 stages: list[Stage] | None = None) -> dict[str, Any]:
    """Run every stage not already done for this profile's config; returns the pipeline summary."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown pipeline profile {profile!r}; known: {', '.join(PROFILES)}")
    ctx = PipelineContext(profile, Path(data_dir), Path(results_dir), device)
    out = ctx.results_dir / "pipeline" / profile / "summary.json"
    records = []
    for stage in stages if stages is not None else STAGES:
        config = PROFILES[profile].get(stage.name)
        if config is None:
            raise ConfigError(f"profile {profile!r} has no section for stage {stage.name!r}")
        records.append(_run_stage(stage, config, ctx))
        atomic_write_json(out, {"profile": profile, "complete": False, "stages": records})
    summary = {"profile": profile, "complete": True, "stages": records, "results_dir": str(ctx.results_dir.resolve())}
    atomic_write_json(out, summary)
    summary["report"] = str(_build_report(ctx))
    atomic_write_json(out, summary)
    return summary


def _build_report(ctx: PipelineContext) -> Path:
    from cifar_core.report import build_report

    log("[pipeline] report: rendering")
    return build_report(ctx.results_dir)["html"]


def _run_stage(stage: Stage, config: dict, ctx: PipelineContext) -> dict[str, Any]:
    digest = config_hash(stage.name, config, ctx)
    path = stage.summary_path(ctx, config)
    if stage_done(path, digest):
        log(f"[pipeline] {stage.name}: done before with this config, skipping ({path})")
        return {"stage": stage.name, "status": "skipped", "summary": str(path), "config_hash": digest}
    log(f"[pipeline] {stage.name}: running")
    start = time.monotonic()
    try:
        stage.run(ctx, config)
    except StageUnavailable as exc:
        log(f"[pipeline] {stage.name}: not run here: {exc}")
        return {"stage": stage.name, "status": "unavailable", "summary": str(path), "reason": str(exc)}
    wall = time.monotonic() - start
    _stamp(path, {"profile": ctx.profile, "stage": stage.name, "config_hash": digest, "config": config})
    log(f"[pipeline] {stage.name}: finished in {wall:.0f} s ({path})")
    return {"stage": stage.name, "status": "ran", "summary": str(path), "config_hash": digest, "wall_time_s": round(wall, 2)}


def _stamp(path: Path, stamp: dict[str, Any]) -> None:
    if not path.is_file():
        raise CifarError(f"stage {stamp['stage']} finished without writing its summary {path}")
    summary = read_json(path)
    summary["pipeline"] = stamp
    atomic_write_json(path, summary)
