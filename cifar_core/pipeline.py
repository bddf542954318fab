"""`run_pipeline`: the whole study as stages that Ray schedules, each resumable on its own.

A stage is a name, the stages it needs, the work it does and the summary.json it leaves behind;
its config comes from the profile (`smoke` or `full`, below, changed key by key with `--set`).
With Ray (RAY_ADDRESS, or a local Ray the pipeline starts) every stage runs as Ray tasks with the
CPUs and GPUs of `resources.<stage>`, and Ray starts each one when the stages it needs have
finished: the GAN, report A's and report B's recipes and the augmentation ablation train beside the
search, the top-k retrains run at once, both FID protocols start when the GAN has finished, the
report comes last on a CPU. The search itself is coordinated from this process (its trials are the
Ray work). Without Ray (`--no-ray`) the same stages run one after another here.

The stages (docs/provenance.md says where each value of their protocols comes from):
    data       the dataset is there (fetched, or a synthetic stand-in in the smoke profile) and sound
    tune       report A's search: Ray Tune + ASHA over its 8 CNNs and 4 optimizers
    retrain    the best trial of each of the top-k architectures, on all training images
    recipe-a   report A's three final models with its own settings (section IV), without a search
    ablation   the same runs without augmentation (report A credits augmentation with ~10 points)
    recipe-b   report B's classifier: resdw, Adam, flips and crops, 10,000 steps, several seeds
    gan        report B's DCGAN
    fid        our FID protocol: the snapshot chosen on the training split, scored on the test split
    fid-b      report B's FID protocol: its step-46,000 snapshot, 10,000 samples, the test split
    report     the HTML and Markdown report

After a stage runs, its summary.json is stamped with a hash of its config and of the data's
identity, and with where it ran; a stage whose summary carries the same hash is skipped. So a
pipeline that was killed, run again, continues with the stages it had not finished (and those
resume themselves: Tune restores its experiment, training runs resume from their checkpoints).
A failed stage fails the stages that need it at once, with its message; the others go on, and the
pipeline exits with the first failure after the report is written. A stage that cannot run here
(FID without Inception weights, where the profile allows it) is reported `unavailable`, not
stamped, and tried again on the next run.

To add a stage: write `run_<name>(ctx, config, *needed_summaries) -> summary dict` and a summary
path function, add a `Stage` to STAGES (after the stages it needs) and a section to each profile.
STAGE_NAMES (also the chart's stages) and RESULT_FOLDERS (what the report reads) follow from STAGES.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cifar_core.atomic import atomic_write_json, read_json
from cifar_core.errors import CifarError, ConfigError, DataError
from cifar_core.execution import (
    Done,
    InProcess,
    OnRay,
    Resources,
    check_feasible,
    ran_on,
    ray_session,
    runner,
)
from cifar_core.progress import log

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # Minutes on a 2-core laptop CPU: a small synthetic set if no data is there, 4 trials of the
    # report-a space for 2 epochs, the best 2 architectures retrained for 2 epochs.
    "smoke": {
        "data": {"if_missing": "synthesize", "n_train": 2000, "n_test": 500, "seed": 0},
        "tune": {"experiment": "smoke", "space": "report-a", "num_samples": 4, "max_concurrent": 4,
                 "max_epochs": 2, "grace_period": 1, "reduction_factor": 2, "cpus_per_trial": 1.0,
                 "gpus_per_trial": None, "batch_size": 128, "seed": 0},
        "retrain": {"experiment": "smoke", "top_k": 2, "epochs": 2, "select": "trials"},
        # The recipes for a few steps: report A's three models (and without augmentation), report
        # B's classifier on two seeds.
        "recipe-a": {"models": ["cnn6", "cnn7", "cnn2"], "seeds": [0], "epochs": None, "steps": 4, "amp": False},
        "ablation": {"models": ["cnn6", "cnn7", "cnn2"], "augment": "none"},
        "recipe-b": {"seeds": [0, 1], "steps": 10, "eval_every": 5, "amp": False},
        # Report B's DCGAN at full width for a few steps: enough to exercise sampling, snapshots
        # and FID selection, far too few for good images.
        "gan": {"run": "smoke", "steps": 150, "batch_size": 64, "log_every": 10, "sample_every": 50,
                "checkpoint_every": 50, "hflip": False, "amp": False, "seed": 0},
        "fid": {"gan_run": "smoke", "n": 100, "if_no_weights": "skip"},
        "fid-b": {"gan_run": "smoke", "step": 150, "n": 100, "if_no_weights": "skip"},
        # One CPU per task and no GPU: a laptop's local Ray.
        "resources": {stage: {"cpus": 1, "gpus": 0} for stage in ("data", "retrain", "recipe-a", "ablation",
                                                                   "recipe-b", "gan", "fid", "fid-b", "report")},
    },
    # Report A's protocol: 60 samples, 16 at a time, ASHA keeping the top half, 30 epochs;
    # the best trial of each of the 3 best architectures retrained for 100 epochs on all 50,000
    # training images. Then report B's DCGAN and FID.
    "full": {
        "data": {"if_missing": "fetch", "n_train": 50000, "n_test": 10000, "seed": 0},
        "tune": {"experiment": "report-a", "space": "report-a", "num_samples": 60, "max_concurrent": 16,
                 "max_epochs": 30, "grace_period": 1, "reduction_factor": 2, "cpus_per_trial": 1.0,
                 "gpus_per_trial": None, "batch_size": 128, "seed": 0},
        "retrain": {"experiment": "report-a", "top_k": 3, "epochs": 100, "select": "architectures"},
        # Report A's final models without a search, in float32, and the same without augmentation.
        "recipe-a": {"models": ["cnn6", "cnn7", "cnn2"], "seeds": [0], "epochs": 100, "steps": None, "amp": False},
        "ablation": {"models": ["cnn6", "cnn7", "cnn2"], "augment": "none"},
        # Report B's classifier: 10,000 steps, the test set scored every 500, three seeds.
        "recipe-b": {"seeds": [0, 1, 2], "steps": 10000, "eval_every": 500, "amp": False},
        # Report B: 46,000 steps, snapshots every 2,000.
        "gan": {"run": "dcgan", "steps": 46000, "batch_size": 128, "log_every": 100, "sample_every": 1000,
                "checkpoint_every": 2000, "hflip": False, "amp": False, "seed": 0},
        # Ours: the snapshot chosen on the training split (10,000 samples each), scored on the test set.
        "fid": {"gan_run": "dcgan", "n": 10000, "if_no_weights": "fail"},
        # Report B's: the step-46,000 snapshot on 10,000 samples against the test set.
        "fid-b": {"gan_run": "dcgan", "step": 46000, "n": 10000, "if_no_weights": "fail"},
        # A whole GPU per CNN run (they run at once); resdw, the small DCGAN and Inception share one.
        "resources": {"data": {"cpus": 1, "gpus": 0}, "retrain": {"cpus": 4, "gpus": 1},
                      "recipe-a": {"cpus": 4, "gpus": 1}, "ablation": {"cpus": 4, "gpus": 1},
                      "recipe-b": {"cpus": 2, "gpus": 0.5}, "gan": {"cpus": 2, "gpus": 0.5},
                      "fid": {"cpus": 2, "gpus": 0.5}, "fid-b": {"cpus": 2, "gpus": 0.5},
                      "report": {"cpus": 1, "gpus": 0}},
    },
}


def resolve_profile(profile: str, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """The profile's sections with `--set section.key=value` overrides applied (YAML values).

    Only keys the profile has can be set, with a value of the same type (an int where a float is,
    anything where the default is null, and null to unset a value); the stages check their settings
before anything runs.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown pipeline profile {profile!r}; known: {', '.join(PROFILES)}")
    config = copy.deepcopy(PROFILES[profile])
    for override in overrides:
        dotted, sep, text = override.partition("=")
        *path, key = dotted.strip().split(".")
        if not sep or not path:
            raise ConfigError(f"--set {override!r}: expected SECTION.KEY=VALUE, e.g. tune.num_samples=20")
        section = config
        for part in path:
            section = section.get(part) if isinstance(section, dict) else None
        if not isinstance(section, dict) or key not in section or isinstance(section[key], dict):
            known = ", ".join(sorted(_dotted_keys(config)))
            raise ConfigError(f"--set {dotted}: the {profile} profile has no such key (known: {known})")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {override!r}: {text!r} is not a YAML value") from None
        section[key] = _same_type(dotted, section[key], value)
    return config


def _dotted_keys(config: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in config.items():
        keys += _dotted_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


def _same_type(key: str, default: Any, value: Any) -> Any:
    # null unsets (recipe-a.steps=null to train by epochs), and a null default takes any value
    # (tune.gpus_per_trial): the stages check those values before anything runs.
    if default is None or value is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
        value = float(value) if ok else value
    else:
        ok = type(value) is type(default)
    if not ok:
        raise ConfigError(f"--set {key}={value!r}: expected a {type(default).__name__} like the default {default!r}")
    return value


@dataclass(frozen=True)
class PipelineContext:
    profile: str
    data_dir: Path
    results_dir: Path
    device: str = "auto"
    config: dict[str, Any] = field(default_factory=dict, compare=False)  # the resolved profile
    lock_wait_s: float = 0.0  # how long a stage waits for a run's lock (Ray tasks: see execution)

    def resources(self, stage: str) -> Resources:
        """What each task of `stage` reserves (one CPU where the profile says nothing)."""
        values = self.config.get("resources", {}).get(stage)
        return Resources() if values is None else Resources.from_dict(values, f"resources.{stage}")


class StageUnavailable(CifarError):
    """This stage cannot run on this machine (e.g. no Inception weights); the pipeline goes on."""


# --- stages: each runs as one Ray task (unless it says otherwise) -------------------------------
def run_data_check(ctx: PipelineContext, config: dict, *needed: dict) -> dict:
    from cifar_core.data import fetch_cifar100, verify_dataset, write_synthetic

    generated = False
    if not (ctx.data_dir / "cifar-100-python").is_dir() and ctx.data_dir.name != "cifar-100-python":
        if config["if_missing"] == "synthesize":
            log(f"no dataset at {ctx.data_dir}: writing a SYNTHETIC stand-in ({config['n_train']} train / "
                f"{config['n_test']} test images, not CIFAR-100) for the {ctx.profile} profile")
            write_synthetic(ctx.data_dir, n_train=config["n_train"], n_test=config["n_test"], seed=config["seed"])
            generated = True
        elif config["if_missing"] == "fetch":
            log(f"no dataset at {ctx.data_dir}: downloading CIFAR-100")
            try:
                fetch_cifar100(ctx.data_dir)
            except DataError as exc:
                raise DataError(f"the {ctx.profile} profile needs the real CIFAR-100: {exc}") from None
        else:
            raise DataError(f"no dataset at {ctx.data_dir} (data.if_missing={config['if_missing']!r})")
    report = verify_dataset(ctx.data_dir)
    summary = {"stage": "data", "generated_synthetic": generated, **report}
    atomic_write_json(data_summary(ctx, config), summary)
    return summary


def data_summary(ctx: PipelineContext, config: dict) -> Path:
    return ctx.results_dir / "pipeline" / ctx.profile / "data" / "summary.json"


def run_tune_stage(ctx: PipelineContext, config: dict, *needed: dict) -> dict:
    from cifar_core.tune.search import run_tune

    summary = run_tune(tune_settings(ctx, config), ctx.data_dir, ctx.results_dir)
    return {**summary, "ran_on": [{"node_id": node, "work": "trials"} for node in summary["nodes"]]}


def tune_summary(ctx: PipelineContext, config: dict) -> Path:
    return ctx.results_dir / "tune" / config["experiment"] / "summary.json"


def submit_plan(work: InProcess | OnRay, ctx: PipelineContext, stage: str, plan, *needed: Any):
    """A retraining plan's runs as tasks at once (`resources.<stage>` each), then one CPU task that
    tables them. Each run task takes the results of the stages it needs only to wait for them."""
    from cifar_core.retrain import collect, submit_runs

    resources = ctx.resources(stage)
    runs = submit_runs(work, plan, ctx.data_dir, ctx.results_dir, resources.device(ctx.device), resources, *needed)
    return work.submit(collect, Resources(cpus=1), plan, ctx.results_dir, *runs)


def submit_retrain(work: InProcess | OnRay, ctx: PipelineContext, config: dict, *needed: Any):
    """The top-k runs as k tasks at once, then one CPU task that tables them."""
    from cifar_core.retrain import RetrainPlan

    plan = RetrainPlan(config["experiment"], config["top_k"], config["epochs"], config["select"])
    return submit_plan(work, ctx, "retrain", plan, *needed)


def retrain_summary(ctx: PipelineContext, config: dict) -> Path:
    return ctx.results_dir / "retrain" / config["experiment"] / "summary.json"


def recipe_a_plan(ctx: PipelineContext, config: dict):
    from cifar_core.retrain import RecipePlan

    return RecipePlan.from_config("report-a", config)


def ablation_plan(ctx: PipelineContext, config: dict):
    """recipe-a's runs (its budget, seeds and precision) with another augmentation, for the models
    named here: the same model and budget, with and without augmentation."""
    from cifar_core.retrain import RecipePlan

    recipe = {k: v for k, v in ctx.config["recipe-a"].items() if k != "models"}
    return RecipePlan.from_config("report-a", {**recipe, **config})


def recipe_b_plan(ctx: PipelineContext, config: dict):
    from cifar_core.retrain import RecipePlan

    return RecipePlan.from_config("report-b", config)


def recipe_stage(name: str, plan_of: Callable[[PipelineContext, dict], Any]) -> tuple[Callable, Callable]:
    """(submit, summary path) of a stage that runs a recipe plan."""

    def submit(work: InProcess | OnRay, ctx: PipelineContext, config: dict, *needed: Any):
        return submit_plan(work, ctx, name, plan_of(ctx, config), *needed)

    def summary_path(ctx: PipelineContext, config: dict) -> Path:
        return plan_of(ctx, config).out_dir(ctx.results_dir) / "summary.json"

    return submit, summary_path


def gan_config(ctx: PipelineContext, config: dict):
    """The section as a checked GanTrainConfig (`run` names the results folder)."""
    from cifar_core.gan.config import GanTrainConfig

    return GanTrainConfig.from_dict({k: v for k, v in config.items() if k != "run"})


def tune_settings(ctx: PipelineContext, config: dict):
    from cifar_core.tune.settings import TuneSettings

    settings = TuneSettings(**config, device=ctx.device)
    settings.validate()
    return settings


def run_gan_stage(ctx: PipelineContext, config: dict, *needed: dict) -> dict:
    from cifar_core.gan.train import train_gan

    cfg = gan_config(ctx, config)
    device = ctx.resources("gan").device(ctx.device)
    return train_gan(cfg, ctx.data_dir, gan_summary(ctx, config).parent, device=device, resume=True,
                     wait_s=ctx.lock_wait_s)


def gan_summary(ctx: PipelineContext, config: dict) -> Path:
    return ctx.results_dir / "gan" / config["run"] / "summary.json"


def require_inception(config: dict) -> None:
    """The Inception weights, downloaded into the torch hub cache where the network allows; without
    them the stage is unavailable (reported, tried again next run) or fails, as the profile says."""
    from cifar_core.fid.inception import resolve_weights

    try:
        resolve_weights()
    except CifarError as exc:
        if config["if_no_weights"] == "skip":
            raise StageUnavailable(str(exc)) from None
        raise


def run_fid_stage(ctx: PipelineContext, config: dict, *needed: dict) -> dict:
    from cifar_core.fid.scoring import default_cache_dir, run_fid

    require_inception(config)
    run_dir = ctx.results_dir / "gan" / config["gan_run"]
    device = ctx.resources("fid").device(ctx.device)
    return run_fid(fid_summary(ctx, config).parent, run_dir=run_dir, data_dir=ctx.data_dir, split="test",
                   n=config["n"], device=device, cache_dir=default_cache_dir(ctx.results_dir))


def fid_summary(ctx: PipelineContext, config: dict) -> Path:
    from cifar_core.fid.scoring import default_name

    # The same place `cifar fid --select-best RESULTS/gan/<run>` writes to.
    return ctx.results_dir / "fid" / default_name(None, None, ctx.results_dir / "gan" / config["gan_run"],
                                                  n=config["n"]) / "summary.json"


def run_fid_b_stage(ctx: PipelineContext, config: dict, *needed: dict) -> dict:
    """Report B's protocol: one fixed snapshot (step 46,000) on `n` samples against the test split."""
    from cifar_core.fid.scoring import default_cache_dir, run_fid, snapshot_path

    checkpoint = snapshot_path(ctx.results_dir / "gan" / config["gan_run"], config["step"])
    require_inception(config)
    device = ctx.resources("fid-b").device(ctx.device)
    return run_fid(fid_b_summary(ctx, config).parent, checkpoint=checkpoint, data_dir=ctx.data_dir, split="test",
                   n=config["n"], device=device, cache_dir=default_cache_dir(ctx.results_dir))


def fid_b_summary(ctx: PipelineContext, config: dict) -> Path:
    from cifar_core.fid.scoring import default_name, snapshot_file

    # The same place `cifar fid --checkpoint RESULTS/gan/<run>/checkpoints/step_<N>.pt` writes to.
    checkpoint = snapshot_file(ctx.results_dir / "gan" / config["gan_run"], config["step"])
    return ctx.results_dir / "fid" / default_name(None, checkpoint, n=config["n"]) / "summary.json"


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[..., dict]  # run(ctx, config, *summaries of `needs`) -> the stage's summary
    summary_path: Callable[[PipelineContext, dict], Path]  # where that summary.json lives
    needs: tuple[str, ...] = ()
    # Runs here instead of as a task: the search coordinates its trials (the Ray work) from here.
    in_driver: bool = False
    # Submits its own tasks (fan-out) instead of one: submit(work, ctx, config, *needed handles).
    submit: Callable | None = None
    # Trains or scores on a device (--device applies); the data check only reads files.
    uses_device: bool = True
    # Other profile sections its work reads (ablation: recipe-a's budget); part of its config hash.
    reads: tuple[str, ...] = ()
    # The folder under RESULTS where its summaries live, as the report reads them.
    results: str | None = None
    # Checks the section's settings (raises ConfigError) before any stage runs; the recipe stages'
    # summary paths already build, and so check, their plans.
    check: Callable[[PipelineContext, dict], Any] | None = None


_recipe_a = recipe_stage("recipe-a", recipe_a_plan)
_ablation = recipe_stage("ablation", ablation_plan)
_recipe_b = recipe_stage("recipe-b", recipe_b_plan)
# In an order that respects `needs` and starts the long independent work (the GAN, the recipes)
# before the search, which blocks this process while its trials run.
STAGES: list[Stage] = [
    Stage("data", run_data_check, data_summary, uses_device=False),
    Stage("gan", run_gan_stage, gan_summary, needs=("data",), results="gan", check=gan_config),
    Stage("fid", run_fid_stage, fid_summary, needs=("gan",), results="fid"),
    Stage("fid-b", run_fid_b_stage, fid_b_summary, needs=("gan",), results="fid"),
    Stage("recipe-a", None, _recipe_a[1], needs=("data",), submit=_recipe_a[0], results="recipe"),
    Stage("ablation", None, _ablation[1], needs=("data",), submit=_ablation[0], reads=("recipe-a",),
          results="recipe"),
    Stage("recipe-b", None, _recipe_b[1], needs=("data",), submit=_recipe_b[0], results="recipe"),
    Stage("tune", run_tune_stage, tune_summary, needs=("data",), in_driver=True, results="tune", check=tune_settings),
    Stage("retrain", None, retrain_summary, needs=("tune",), submit=submit_retrain, results="retrain"),
]
# Every stage by name, the report last: the pipeline's, the chart's (`cifar submit STAGE`) and the report's.
STAGE_NAMES = tuple(stage.name for stage in STAGES) + ("report",)
# The folders under RESULTS the report reads: the stages' own, and the training runs they make.
RESULT_FOLDERS = (*dict.fromkeys(stage.results for stage in STAGES if stage.results), "train")


# --- the runner -------------------------------------------------------------------------------
def config_hash(stage: str, config: dict, data_identity: str | None, needs: tuple[str, ...] = ()) -> str:
    """What makes a stage's result: its config, the data's contents and the results it reads (the
    hashes of the stages it needs), not the device it ran on."""
    key = {"stage": stage, "config": config, "data": data_identity, "needs": list(needs)}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def stage_done(path: Path, digest: str) -> bool:
    if not path.is_file():
        return False
    try:
        stamp = json.loads(path.read_text()).get("pipeline", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False  # a torn file cannot vouch for anything: run the stage again
    return stamp.get("config_hash") == digest


def run_pipeline(profile: str, data_dir: str | Path, results_dir: str | Path, device: str = "auto",
                 stages: list[Stage] | None = None, overrides: tuple[str, ...] = (),
                 with_ray: bool = True) -> dict[str, Any]:
    """Run every stage not already done for this profile's config; returns the pipeline summary."""
    config = resolve_profile(profile, overrides)
    stages = STAGES if stages is None else stages
    for stage in stages:
        if stage.name not in config:
            raise ConfigError(f"profile {profile!r} has no section for stage {stage.name!r}")
    work = runner(with_ray)
    # Absolute paths: a task runs in its worker's working directory, not this one.
    ctx = PipelineContext(profile, Path(data_dir).absolute(), Path(results_dir).absolute(), device, config,
                          work.lock_wait_s)
    started = time.monotonic()
    if not with_ray:
        return _run(ctx, stages, work, started)
    with ray_session():
        return _run(ctx, stages, work, started)


@dataclass
class _StageRun:
    stage: Stage
    digest: str | None = None
    handle: Any = None
    record: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    error: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self.record.get("status") in ("failed", "blocked")


def _run(ctx: PipelineContext, stages: list[Stage], work: InProcess | OnRay, started: float) -> dict[str, Any]:
    ray_start_s = time.monotonic() - started  # joining (or starting) Ray
    out = ctx.results_dir / "pipeline" / ctx.profile / "summary.json"
    for stage in stages:  # each stage's settings and --device against its GPU share, before anything runs
        stage.summary_path(ctx, ctx.config[stage.name])
        if stage.check is not None:
            stage.check(ctx, ctx.config[stage.name])
        if stage.uses_device and not stage.in_driver:
            ctx.resources(stage.name).device(ctx.device)
    check_feasible({f"stage {s.name}": ctx.resources(s.name) for s in stages if not s.in_driver})
    runs: dict[str, _StageRun] = {}
    data_identity: str | None = None
    for stage in stages:
        run = runs[stage.name] = _StageRun(stage)
        config = ctx.config[stage.name]
        upstream = [runs[name] for name in stage.needs if name in runs]
        if _blocked(run, upstream):
            continue
        if stage.name != "data" and data_identity is None:
            data_identity = _data_identity(ctx)
        hashed = {"self": config, **{name: ctx.config[name] for name in stage.reads}} if stage.reads else config
        run.digest = config_hash(stage.name, hashed, data_identity if stage.name != "data" else None,
                                 tuple(u.digest for u in upstream))
        path = stage.summary_path(ctx, config)
        if stage.name != "data" and stage_done(path, run.digest):
            log(f"[pipeline] {stage.name}: done before with this config, skipping ({path})")
            summary = read_json(path)
            run.record = {"stage": stage.name, "status": "skipped", "summary": str(path), "config_hash": run.digest,
                          "ran_on": summary["pipeline"].get("ran_on")}
            run.handle = Done(value=summary)
            continue
        log(f"[pipeline] {stage.name}: {'running' if stage.in_driver or not work.uses_ray else 'submitted'}")
        run.started = time.monotonic()
        needed = [u.handle for u in upstream]
        if stage.in_driver:
            run.handle = _done_or_error(lambda s=stage, c=config, n=needed: s.run(ctx, c, *map(work.get, n)))
            if data_identity is None:
                data_identity = _data_identity(ctx)
        elif stage.submit is not None:
            run.handle = stage.submit(work, ctx, config, *needed)
        else:
            resources = ctx.resources(stage.name)
            device = resources.device(ctx.device) if stage.uses_device else "cpu"
            run.handle = work.submit(_stage_task, resources, stage, ctx, config, device, *needed)
        if stage.name == "data" or stage.in_driver:
            _finish(run, ctx, work)  # everything after the data needs its identity; a search blocks here
    for run in runs.values():
        if run.handle is not None and not run.record:
            if not _blocked(run, [runs[name] for name in run.stage.needs if name in runs]):
                _finish(run, ctx, work)
        atomic_write_json(out, {"profile": ctx.profile, "complete": False, "stages": _records(runs)})

    report = _build_report(ctx, work) or {}
    records = _records(runs)
    failures = [r for r in records if r["status"] in ("failed", "blocked")]
    summary = {"profile": ctx.profile, "complete": not failures, "stages": records, "report": report.get("html"),
               "report_ran_on": report.get("ran_on"), "results_dir": str(ctx.results_dir.resolve()),
               "config": ctx.config, "wall_time_s": round(time.monotonic() - started, 2),
               "ray_start_s": round(ray_start_s, 2) if work.uses_ray else None}
    atomic_write_json(out, summary)
    first = next((runs[r["stage"]] for r in records if r["status"] == "failed"), None)
    if first is not None:
        raise first.error
    return summary


def _blocked(run: _StageRun, upstream: list[_StageRun]) -> bool:
    """Record `run` as blocked when a stage it needs failed (Ray fails its tasks at once anyway)."""
    failed = next((u for u in upstream if u.failed), None)
    if failed is None:
        return False
    run.record = {"stage": run.stage.name, "status": "blocked",
                  "reason": f"needs {failed.stage.name}, which failed: {failed.record['reason']}"}
    log(f"[pipeline] {run.stage.name}: not run: {run.record['reason']}")
    return True


def _finish(run: _StageRun, ctx: PipelineContext, work: InProcess | OnRay) -> None:
    """Wait for a stage's work; record it (ran, unavailable or failed) and stamp its summary."""
    name = run.stage.name
    try:
        result = work.get(run.handle)
    except StageUnavailable as exc:
        log(f"[pipeline] {name}: not run here: {exc}")
        run.record = {"stage": name, "status": "unavailable", "reason": str(exc)}
        return
    except Exception as exc:
        run.error = exc
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log(f"[pipeline] {name}: failed: {reason}")
        run.record = {"stage": name, "status": "failed", "reason": reason}
        return
    wall = time.monotonic() - run.started
    path = run.stage.summary_path(ctx, ctx.config[name])
    where = result.get("ran_on")
    _stamp(path, {"profile": ctx.profile, "stage": name, "config_hash": run.digest, "config": ctx.config[name],
                  "ran_on": where})
    log(f"[pipeline] {name}: finished in {wall:.0f} s ({path})")
    run.record = {"stage": name, "status": "ran", "summary": str(path), "config_hash": run.digest,
                  "wall_time_s": round(wall, 2), "ran_on": where}


def _stage_task(stage: Stage, ctx: PipelineContext, config: dict, device: str, *needed: dict) -> dict:
    """One stage's work inside its task; records where it ran (and how long) for the pipeline's stamp."""
    start = time.monotonic()
    summary = stage.run(ctx, config, *needed)
    return {**summary, "ran_on": [ran_on(device, since=start)]}


def _data_identity(ctx: PipelineContext) -> str | None:
    """The data's digest (a skipped stage must have read the same images); None with no data."""
    from cifar_core.data import data_digest

    try:
        return data_digest(ctx.data_dir)
    except DataError:
        return None


def _done_or_error(fn: Callable[[], Any]) -> Done:
    try:
        return Done(value=fn())
    except Exception as exc:  # recorded as the stage's failure, like a Ray task's
        return Done(error=exc)


def _records(runs: dict[str, _StageRun]) -> list[dict[str, Any]]:
    return [run.record or {"stage": name, "status": "running"} for name, run in runs.items()]


def _build_report(ctx: PipelineContext, work: InProcess | OnRay) -> dict[str, Any] | None:
    """The report, last, as a CPU task: it shows whatever the stages left, failures included."""
    log("[pipeline] report: rendering")
    try:
        return work.get(work.submit(build_report_task, ctx.resources("report"), ctx.results_dir))
    except CifarError as exc:
        log(f"[pipeline] report: failed: {exc}")
        return None


def build_report_task(results_dir: Path) -> dict[str, Any]:
    from cifar_core.report import build_report

    start = time.monotonic()
    html = build_report(results_dir)["html"]
    return {"html": str(html), "ran_on": [ran_on("cpu", since=start)]}


def _stamp(path: Path, stamp: dict[str, Any]) -> None:
    """The pipeline's stamp, and where the stage ran, into the summary the stage wrote."""
    if not path.is_file():
        raise CifarError(f"stage {stamp['stage']} finished without writing its summary {path}")
    summary = read_json(path)
    summary["pipeline"] = stamp
    summary["ran_on"] = stamp["ran_on"]
    atomic_write_json(path, summary)
