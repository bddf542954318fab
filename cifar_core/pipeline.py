"""`run_pipeline`: the whole study as stages that Ray schedules, each resumable on its own.

A profile is a `PipelineConfig` (declared settings, changed with `--set`); each stage runs with
`resources.<stage>` once the stages it needs, by name, have finished. A stage whose summary carries
the same config hash (its settings, the data's digest, the hashes of what it needs) is skipped, so a
killed pipeline run again continues; a failed stage blocks only the stages that need it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifar_core import live
from cifar_core.atomic import atomic_write_json, read_json, read_jsonl
from cifar_core.errors import CifarError, ConfigError, DataError, Interrupted, Preempted
from cifar_core.execution.capacity import check_feasible
from cifar_core.execution.resources import Resources
from cifar_core.execution.runners import Done, InProcess, OnRay, machine_names, submit_stage, work_span_s
from cifar_core.execution.session import PendingTimeout, work_session
from cifar_core.fields import at_least, check_fields, setting, to_mapping, with_overrides
from cifar_core.gan.config import GanTrainConfig
from cifar_core.layout import Results
from cifar_core.names import check_name
from cifar_core.progress import STANDING_FILE, log, write_standing
from cifar_core.protocols import REPORT_B_FID_STEP, REPORT_B_GAN_STEPS
from cifar_core.retrain import RecipePlan, RecipeSettings, RetrainPlan, submit_plan
from cifar_core.runlock import RunLock
from cifar_core.seeds import check_seed
from cifar_core.tune.settings import TuneSettings

POSITIVE = at_least(1)


def _name(value: str, key: str) -> None:
    check_name(value, key)


# --- every stage's settings: the defaults are the full profile -------------------------------------
@dataclass
class DataStage:
    if_missing: str = setting("fetch", "No dataset in --data-dir: fetch CIFAR-100, synthesize a stand-in, or fail.",
                              choices=("fetch", "synthesize", "fail"))
    official_only: bool = setting(True, "Refuse data that is not the official CIFAR-100 (by its md5s): results set "
                                        "beside a report's numbers need the report's data. Turned off by "
                                        "--allow-synthetic, never by --set.")
    n_train: int = setting(2000, "Training images of a synthesized stand-in.", unit="images", range=POSITIVE)
    n_test: int = setting(500, "Test images of a synthesized stand-in.", unit="images", range=POSITIVE)
    seed: int = setting(0, "Seed of a synthesized stand-in.", check=check_seed)


@dataclass(frozen=True)
class TuneStage(TuneSettings):
    experiment: str = setting("report-a", "Experiment name: results go to RESULTS/tune/NAME/.", check=_name)


@dataclass(frozen=True)
class AblationStage:
    """recipe-a's runs (budget, seeds, precision) with another augmentation: the same models with and
    without augmentation."""

    models: tuple[str, ...] | None = setting(None, "Some of recipe-a's models.", none_means="all of them")
    augment: str = setting("none", "The augmentation preset the ablation trains with.",
                           choices=("none", "flip-crop", "report-a"))


@dataclass
class GanStage(GanTrainConfig):
    run: str = setting("dcgan", "The run's name: RESULTS/gan/<run>.", check=_name)


@dataclass
class FidStage:
    gan_run: str = setting("dcgan", "The GAN run whose snapshots are scored.", check=_name)
    n: int = setting(10_000, "Generated images per score (report B: 10,000).", unit="images", range=at_least(2))
    if_no_weights: str = setting("fail", "Without pytorch-fid's Inception weights: fail, or skip (the stage is "
                                         "then `unavailable` and tried again next run).", choices=("fail", "skip"))


@dataclass
class FidBStage(FidStage):
    step: int = setting(REPORT_B_FID_STEP, "The snapshot report B scored.", unit="steps", range=at_least(0))
    compare_steps: tuple[int, ...] | None = setting(
        (REPORT_B_GAN_STEPS,), "Snapshots scored beside it, the same way (report B compared its 46,000-step "
                               "snapshot with the 50,000-step one).", range=at_least(0), none_means="none")


def _resources(cpus: float, gpus: float) -> Any:
    return setting(Resources(cpus, gpus), "What each task of the stage reserves.")


@dataclass
class StageResources:
    """Each stage's task resources, for the pipeline and the single stages (`cifar gan train`, ...).

    They fit the chart's default GPU worker (1 GPU, 7 CPUs): a whole GPU per CNN run (they run at
    once, one per worker), while resdw, the DCGAN and Inception take half a GPU each."""

    data: Resources = _resources(1, 0)
    retrain: Resources = _resources(4, 1)
    recipe_a: Resources = _resources(4, 1)
    ablation: Resources = _resources(4, 1)
    recipe_b: Resources = _resources(2, 0.5)
    gan: Resources = _resources(2, 0.5)
    fid: Resources = _resources(2, 0.5)
    fid_b: Resources = _resources(2, 0.5)
    report: Resources = _resources(1, 0)

    def of(self, stage: str) -> Resources:
        """`resources.<stage>`; one CPU for a stage the table does not list."""
        return getattr(self, stage.replace("-", "_"), Resources())


@dataclass
class PipelineConfig:
    """The full profile: report A's search (60 trials, 16 at once, ASHA keeping the better half, 30
    epochs) and retrain (the best trial of each of the 3 best architectures, 100 epochs on all
    50,000 images), its final models as a recipe and their augmentation ablation; report B's
    classifier (3 seeds), DCGAN (50,000 steps) and FID by its protocol and ours."""

    data: DataStage = field(default_factory=DataStage)
    tune: TuneStage = field(default_factory=TuneStage)
    retrain: RetrainPlan = field(default_factory=RetrainPlan)
    recipe_a: RecipeSettings = field(default_factory=RecipeSettings)
    ablation: AblationStage = field(default_factory=AblationStage)
    recipe_b: RecipeSettings = field(default_factory=RecipeSettings)
    gan: GanStage = field(default_factory=GanStage)
    fid: FidStage = field(default_factory=FidStage)
    fid_b: FidBStage = field(default_factory=FidBStage)
    resources: StageResources = field(default_factory=StageResources)

    def section(self, stage: str) -> Any:
        return getattr(self, stage.replace("-", "_"))


_LAPTOP = {"cpus": 1, "gpus": 0}
# Changes of the full profile. smoke: minutes on a 2-core laptop CPU, a synthetic stand-in when no data
# is there; 4 trials of report A's space for 2 epochs, every other stage for a few steps.
PROFILES: dict[str, dict[str, Any]] = {
    "full": {},
    "smoke": {
        "data": {"if_missing": "synthesize", "official_only": False},
        "tune": {"experiment": "smoke", "num_samples": 4, "max_concurrent": 4, "max_epochs": 2},
        "retrain": {"experiment": "smoke", "top_k": 2, "epochs": 2, "select": "trials"},
        "recipe-a": {"steps": 4},
        "recipe-b": {"seeds": [0, 1], "steps": 10, "eval_every": 5},
        # Report B's DCGAN at full width for a few steps: enough to exercise sampling, snapshots
        # and FID selection, far too few for good images.
        "gan": {"run": "smoke", "steps": 150, "batch_size": 64, "log_every": 10, "sample_every": 50,
                "checkpoint_every": 50},
        "fid": {"gan_run": "smoke", "n": 100, "if_no_weights": "skip"},
        "fid-b": {"gan_run": "smoke", "step": 100, "compare_steps": [150], "n": 100, "if_no_weights": "skip"},
        "resources": {stage: _LAPTOP for stage in ("data", "retrain", "recipe-a", "ablation", "recipe-b", "gan",
                                                   "fid", "fid-b", "report")},
    },
}


def resolve_profile(profile: str, overrides: list[str] | tuple[str, ...] = (), allow_synthetic: bool = False
                    ) -> PipelineConfig:
    """The profile with `--set section.key=value` overrides (YAML values), every setting checked."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown pipeline profile {profile!r}; known: {', '.join(PROFILES)}")
    config = with_overrides(PipelineConfig, PROFILES[profile], overrides)
    own = PROFILES[profile].get("data", {}).get("official_only", DataStage().official_only)
    if own and not config.data.official_only and not allow_synthetic:  # one switch turns the refusal off
        raise ConfigError(f"--set data.official_only=false: the {profile} profile refuses data that is not the "
                          "official CIFAR-100, and only --allow-synthetic runs it anyway (its results then say "
                          "SYNTHETIC): pass --allow-synthetic instead")
    if allow_synthetic:
        config.data.official_only = False
    check_fields(config)
    return config


def stage_resources(stage: str) -> Resources:
    """What each task of `stage` reserves on a cluster (the full profile's): the single stages'
    default, so that `cifar gan train` asks what the pipeline's gan stage asks."""
    return StageResources().of(stage)


# --- the run's context -------------------------------------------------------------------------------
@dataclass
class Context:
    profile: str
    config: PipelineConfig
    data_dir: Path
    results: Results
    device: str = "auto"
    work: InProcess | OnRay = field(default_factory=InProcess)
    stages: tuple[Stage, ...] = ()  # what this run runs (all of STAGES, unless a caller chose)

    def resources(self, stage: str) -> Resources:
        return self.config.resources.of(stage)

    def submit(self, stage: str, fn: Callable[..., Any], needs: dict[str, Any], *, uses_device: bool = True,
               summary: Path | None = None, **kwargs: Any) -> Any:
        return submit_stage(self.work, fn, resources=self.resources(stage), device=self.device if uses_device else None,
                            summary=summary, needs=needs, name=stage, **kwargs)


# --- the stages --------------------------------------------------------------------------------------
def data_summary(ctx: Context) -> Path:
    return ctx.results.pipeline(ctx.profile) / "data" / "summary.json"


def check_data(ctx: Context) -> None:
    """Before anything runs: data that will be there is what the profile's comparisons need."""
    from cifar_core.data import data_digest
    from cifar_core.data.identity import require_official

    s = ctx.config.data
    if not s.official_only:
        return
    if s.if_missing == "synthesize":
        raise ConfigError(f"the {ctx.profile} profile compares with the reports' numbers on the official CIFAR-100, "
                          "but data.if_missing=synthesize would make a stand-in: pass --allow-synthetic to run it anyway")
    try:
        digest = data_digest(ctx.data_dir)
    except DataError:
        return  # nothing there yet: the data stage fetches it (or fails)
    require_official(digest, ctx.data_dir, f"the {ctx.profile} profile")


def run_data_stage(profile: str, settings: DataStage, data_dir: Path, summary_path: Path) -> dict:
    from cifar_core.data import data_digest, fetch_cifar100, verify_dataset, write_synthetic
    from cifar_core.data.identity import require_official

    generated = False
    if not (data_dir / "cifar-100-python").is_dir() and data_dir.name != "cifar-100-python":
        if settings.if_missing == "synthesize":
            log(f"no dataset at {data_dir}: writing a SYNTHETIC stand-in ({settings.n_train} train / "
                f"{settings.n_test} test images, not CIFAR-100) for the {profile} profile")
            write_synthetic(data_dir, n_train=settings.n_train, n_test=settings.n_test, seed=settings.seed)
            generated = True
        elif settings.if_missing == "fetch":
            log(f"no dataset at {data_dir}: downloading CIFAR-100")
            try:
                fetch_cifar100(data_dir)
            except DataError as exc:
                raise DataError(f"the {profile} profile needs the real CIFAR-100: {exc}") from None
        else:
            raise DataError(f"no dataset at {data_dir} (data.if_missing=fail)")
    report = verify_dataset(data_dir)
    if settings.official_only:
        require_official(data_digest(data_dir), data_dir, f"the {profile} profile")
    result = {"stage": "data", "generated_synthetic": generated, **report}
    atomic_write_json(summary_path, result)
    return result


def submit_data(ctx: Context, needs: dict) -> Any:
    return ctx.submit("data", run_data_stage, needs, uses_device=False, summary=data_summary(ctx), profile=ctx.profile,
                      settings=ctx.config.data, data_dir=ctx.data_dir, summary_path=data_summary(ctx))


def tune_summary(ctx: Context) -> Path:
    return ctx.results.tune_experiment(ctx.config.tune.experiment) / "summary.json"


def tune_settings(ctx: Context) -> TuneSettings:
    """The section as the search runs it: `--device` applies unless the section sets its own."""
    s = ctx.config.tune
    fields = {f.name: getattr(s, f.name) for f in dataclasses.fields(TuneSettings)}
    if fields["device"] == "auto":
        fields["device"] = ctx.device
    return TuneSettings(**fields)


def run_tune_stage(ctx: Context, watch) -> dict:
    from cifar_core.tune.search import run_tune

    return run_tune(tune_settings(ctx), ctx.data_dir, ctx.results.root, watch=watch)  # ran_on: its trials' nodes


def retrain_summary(ctx: Context) -> Path:
    return ctx.config.retrain.out_dir(ctx.results.root) / "summary.json"


def recipe_plan(ctx: Context, stage: str) -> RecipePlan:
    """The runs of stage recipe-a, ablation or recipe-b. The ablation is recipe-a's runs (budget,
    seeds, precision) with another augmentation, for the models it names."""
    if stage == "ablation":
        base, ablation = ctx.config.recipe_a, ctx.config.ablation
        values = {**dataclasses.asdict(base), "models": ablation.models or base.models, "augment": ablation.augment}
        return RecipePlan(recipe="report-a", **values)
    settings = ctx.config.section(stage)
    return RecipePlan(recipe="report-a" if stage == "recipe-a" else "report-b", **dataclasses.asdict(settings))


def plan_of(ctx: Context, stage: str):
    return ctx.config.retrain if stage == "retrain" else recipe_plan(ctx, stage)


def plan_summary(stage: str) -> Callable[[Context], Path]:
    return lambda ctx: plan_of(ctx, stage).out_dir(ctx.results.root) / "summary.json"


def submit_plan_stage(stage: str) -> Callable[[Context, dict], Any]:
    def submit(ctx: Context, needs: dict) -> Any:
        resources = ctx.resources(stage)
        return submit_plan(ctx.work, plan_of(ctx, stage), ctx.data_dir, ctx.results.root, ctx.device, resources,
                           needs=needs, name=stage)

    return submit


def gan_summary(ctx: Context) -> Path:
    return ctx.results.gan_run(ctx.config.gan.run) / "summary.json"


def gan_config(settings: GanStage) -> GanTrainConfig:
    return GanTrainConfig.from_dict({k: v for k, v in dataclasses.asdict(settings).items() if k != "run"})


def submit_gan(ctx: Context, needs: dict) -> Any:
    from cifar_core.gan.train import train_gan

    return ctx.submit("gan", train_gan, needs, summary=gan_summary(ctx), cfg=gan_config(ctx.config.gan),
                      data_dir=ctx.data_dir, run_dir=ctx.results.gan_run(ctx.config.gan.run), resume=True,
                      wait_s=ctx.work.lock_wait_s)


def require_inception(if_no_weights: str) -> None:
    """The Inception weights, downloaded into the torch hub cache where the network allows; without
    them the stage is unavailable (reported, tried again next run) or fails, as the profile says."""
    from cifar_core.fid.inception import resolve_weights

    try:
        resolve_weights()
    except CifarError as exc:
        if if_no_weights == "skip":
            raise StageUnavailable(str(exc)) from None
        raise


def fid_summary(ctx: Context) -> Path:
    from cifar_core.fid.scoring import default_name

    # Where `cifar fid --select-best RESULTS/gan/<run>` writes: one directory, whichever way it was started.
    run_dir = ctx.results.gan_run(ctx.config.fid.gan_run)
    return ctx.results.fid(default_name(run_dir=run_dir, n=ctx.config.fid.n)) / "summary.json"


def score_fid(if_no_weights: str, **options: Any) -> dict:
    from cifar_core.fid.scoring import run_fid

    require_inception(if_no_weights)
    return run_fid(**options)


def submit_fid(ctx: Context, needs: dict) -> Any:
    s = ctx.config.fid
    return ctx.submit("fid", score_fid, needs, summary=fid_summary(ctx), if_no_weights=s.if_no_weights,
                      out_dir=fid_summary(ctx).parent, run_dir=ctx.results.gan_run(s.gan_run), data_dir=ctx.data_dir,
                      split="test", n=s.n, cache_dir=ctx.results.fid_cache())


def fid_b_summary(ctx: Context) -> Path:
    return fid_b_dir(ctx, ctx.config.fid_b.step) / "summary.json"


def fid_b_dir(ctx: Context, step: int) -> Path:
    from cifar_core.fid.scoring import default_name, snapshot_file

    # Where `cifar fid --snapshot RESULTS/gan/<run> --step N` writes.
    s = ctx.config.fid_b
    return ctx.results.fid(default_name(checkpoint=snapshot_file(ctx.results.gan_run(s.gan_run), step), n=s.n))


def score_snapshots(if_no_weights: str, run_dir: Path, steps: tuple[int, ...], out_dirs: tuple[Path, ...],
                    **options: Any) -> dict:
    """Report B's protocol: each snapshot of `steps` (its 46,000-step one first, then those compared
    with it) scored on `n` samples against the test split; returns the first one's summary."""
    from cifar_core.fid.scoring import run_fid, snapshot_path

    checkpoints = [snapshot_path(run_dir, step) for step in steps]  # every snapshot there, before any work
    require_inception(if_no_weights)
    summaries = [run_fid(out_dir, checkpoint=checkpoint, **options) for checkpoint, out_dir in zip(checkpoints, out_dirs,
                                                                                                 strict=True)]
    compared = [{"step": step, "fid": s["fid"], "summary": str(d / "summary.json")}
                for step, s, d in zip(steps, summaries, out_dirs, strict=True)]
    first = read_json(out_dirs[0] / "summary.json")  # report B's snapshot: its summary says what it was set beside
    atomic_write_json(out_dirs[0] / "summary.json", {**first, "compared": compared})
    return {**summaries[0], "compared": compared}


def submit_fid_b(ctx: Context, needs: dict) -> Any:
    s = ctx.config.fid_b
    steps = (s.step, *(step for step in s.compare_steps or () if step != s.step))
    return ctx.submit("fid-b", score_snapshots, needs, summary=fid_b_summary(ctx), if_no_weights=s.if_no_weights,
                      run_dir=ctx.results.gan_run(s.gan_run), steps=steps,
                      out_dirs=tuple(fid_b_dir(ctx, step) for step in steps), data_dir=ctx.data_dir, split="test",
                      n=s.n, cache_dir=ctx.results.fid_cache())


class StageUnavailable(CifarError):
    """This stage cannot run on this machine (e.g. no Inception weights); the pipeline goes on."""


# --- where a running stage stands (read from its files, for the standing line) ----------------------
def gan_progress(ctx: Context) -> tuple[int, int, str] | None:
    rows = [r for r in read_jsonl(ctx.results.gan_run(ctx.config.gan.run) / "metrics.jsonl") if "step" in r]
    return (rows[-1]["step"], ctx.config.gan.steps, "steps") if rows else None


def plan_progress(stage: str) -> Callable[[Context], tuple[int, int, str] | None]:
    def progress(ctx: Context) -> tuple[int, int, str] | None:
        plan = plan_of(ctx, stage)
        try:
            specs = [plan.spec(ctx.results.root, index, "cpu") for index in range(plan.size)]
        except CifarError:
            return None
        unit = "steps" if specs and specs[0].config.run.steps else "epochs"
        done = total = 0
        for spec in specs:
            rows = read_jsonl(ctx.results.train_run(spec.name) / "metrics.jsonl")
            done += (rows[-1]["step"] if unit == "steps" else rows[-1]["epoch"]) if rows else 0
            total += spec.config.run.steps if unit == "steps" else spec.config.run.epochs
        return done, total, unit

    return progress


def tune_progress(ctx: Context) -> tuple[int, int, str] | None:
    s = ctx.config.tune
    folder = ctx.results.tune_experiment(s.experiment)
    done = sum(len(read_jsonl(path)) for path in folder.glob("*/result.json"))
    return done, s.num_samples * s.max_epochs, "trial epochs (at most)"


# --- the stages, in an order that respects `needs` and starts the long independent work (the GAN,
# the recipes) before the search, which blocks this process while its trials run.
@dataclass(frozen=True)
class Stage:
    name: str
    summary: Callable[[Context], Path]  # where its summary.json lives
    submit: Callable[[Context, dict[str, Any]], Any] | None = None  # (ctx, {need: handle}) -> handle
    needs: tuple[str, ...] = ()
    run_here: Callable[..., dict] | None = None  # runs in this process instead (the search coordinates its trials)
    reads: tuple[str, ...] = ()  # other sections its work reads (the ablation: recipe-a's budget)
    check: Callable[[Context], Any] | None = None  # settings checks that need the others (before anything runs)
    progress: Callable[[Context], tuple[int, int, str] | None] | None = None
    uses_device: bool = True


STAGES: list[Stage] = [
    Stage("data", data_summary, submit_data, check=check_data, uses_device=False),
    Stage("gan", gan_summary, submit_gan, needs=("data",), check=lambda ctx: gan_config(ctx.config.gan),
          progress=gan_progress),
    Stage("fid", fid_summary, submit_fid, needs=("gan",)),
    Stage("fid-b", fid_b_summary, submit_fid_b, needs=("gan",)),
    *(Stage(name, plan_summary(name), submit_plan_stage(name), needs=("data",), check=lambda ctx, n=name: plan_of(ctx, n),
            reads=("recipe-a",) if name == "ablation" else (), progress=plan_progress(name))
      for name in ("recipe-a", "ablation", "recipe-b")),
    Stage("tune", tune_summary, needs=("data",), run_here=run_tune_stage, check=tune_settings, progress=tune_progress),
    Stage("retrain", retrain_summary, submit_plan_stage("retrain"), needs=("tune",), progress=plan_progress("retrain")),
]
# Every stage by name, the report last: the pipeline's, the chart's (`cifar submit STAGE`) and the report's.
STAGE_NAMES = tuple(stage.name for stage in STAGES) + ("report",)


# --- the runner -------------------------------------------------------------------------------------
def config_hash(stage: str, config: Any, data_identity: str | None, needs: tuple[str, ...] = ()) -> str:
    """What makes a stage's result: its settings, the data's contents and the results it reads (the
    hashes of the stages it needs), not the device it ran on."""
    key = {"stage": stage, "config": config, "data": data_identity, "needs": list(needs)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()[:16]


def stage_done(path: Path, digest: str) -> bool:
    if not path.is_file():
        return False
    try:
        stamp = json.loads(path.read_text()).get("pipeline", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False  # a torn file cannot vouch for anything: run the stage again
    return stamp.get("config_hash") == digest


def run_pipeline(profile: str, data_dir: str | Path, results_dir: str | Path, device: str = "auto",
                 stages: list[Stage] | None = None, overrides: tuple[str, ...] = (), with_ray: bool = True,
                 allow_synthetic: bool = False, pending_timeout: float | None = None,
                 explain: Callable[[], str | None] | None = None) -> dict[str, Any]:
    """Run every stage not already done for this profile's config; returns the pipeline summary.

    One pipeline at a time per profile and results directory (the pipeline's lock)."""
    config = resolve_profile(profile, overrides, allow_synthetic)
    # Absolute paths: a task runs in its worker's working directory, not this one.
    stages = STAGES if stages is None else stages
    ctx = Context(profile, config, Path(data_dir).absolute(), Results(Path(results_dir).absolute()), device,
                  stages=tuple(stages))
    for stage in stages:  # every setting and --device against each GPU share, before anything runs
        if stage.check is not None:
            stage.check(ctx)
        if stage.uses_device and stage.run_here is None:
            ctx.resources(stage.name).device(device)
    started = time.monotonic()
    with RunLock(ctx.results.pipeline(profile), what="pipeline"):
        runs: dict[str, _StageRun] = {}
        with work_session(with_ray, pending_timeout=pending_timeout, explain=explain) as work, _live_view(ctx, runs):
            ctx.work = work
            return _run(ctx, stages, getattr(work, "watch", None), started, runs)


@dataclass
class _StageRun:
    stage: Stage
    digest: str | None = None
    handle: Any = None
    record: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    seen: tuple[float, int] | None = None  # (when, done) the first time progress was seen: for the ETA

    @property
    def failed(self) -> bool:
        return self.record.get("status") in ("failed", "blocked")


def _run(ctx: Context, stages: list[Stage], watch, started: float, runs: dict[str, _StageRun] | None = None
         ) -> dict[str, Any]:
    ray_start_s = time.monotonic() - started  # joining (or starting) Ray
    if ctx.work.uses_ray:
        check_feasible({f"stage {s.name}": ctx.resources(s.name) for s in stages if s.run_here is None})
    out = ctx.results.pipeline(ctx.profile) / "summary.json"
    runs = {} if runs is None else runs
    data_identity: str | None = None
    for stage in stages:
        run = runs[stage.name] = _StageRun(stage)
        upstream = [runs[name] for name in stage.needs if name in runs]
        if _blocked(run, upstream):
            continue
        if stage.name != "data" and data_identity is None:
            data_identity = _data_identity(ctx)
        run.digest = config_hash(stage.name, _hashed(ctx, stage), data_identity if stage.name != "data" else None,
                                 tuple(u.digest for u in upstream))
        path = stage.summary(ctx)
        if stage.name != "data" and stage_done(path, run.digest):
            live.note(f"[pipeline] {stage.name}: done before with this config, skipping ({path})")
            summary = read_json(path)
            run.record = {"stage": stage.name, "status": "skipped", "summary": str(path), "config_hash": run.digest,
                          "ran_on": summary.get("ran_on"), "work_s": work_span_s(summary.get("ran_on"))}
            run.handle = Done(value=summary)
            continue
        live.note(f"[pipeline] {stage.name}: {'running' if stage.run_here or not ctx.work.uses_ray else 'submitted'}")
        needs = {name: runs[name].handle for name in stage.needs if name in runs}
        if stage.run_here is not None:
            for handle in needs.values():
                ctx.work.get(handle)
            run.handle = _here(lambda s=stage: s.run_here(ctx, watch))
        else:
            run.handle = stage.submit(ctx, needs)
        if stage.name == "data" or stage.run_here is not None:
            _finish(run, ctx)  # everything after the data needs its identity; a search blocks here
            if data_identity is None and stage.name != "data":
                data_identity = _data_identity(ctx)
    for run in runs.values():
        if run.handle is not None and not run.record:
            if not _blocked(run, [runs[name] for name in run.stage.needs if name in runs]):
                _finish(run, ctx)
        atomic_write_json(out, {"profile": ctx.profile, "complete": False, "stages": _records(runs)})

    report = _build_report(ctx) or {}
    records = _records(runs)
    failures = [r for r in records if r["status"] in ("failed", "blocked")]
    summary = {"profile": ctx.profile, "complete": not failures, "stages": records, "report": report.get("html"),
               "report_ran_on": report.get("ran_on"), "results_dir": str(ctx.results.root.resolve()),
               "config": to_mapping(ctx.config), "wall_time_s": round(time.monotonic() - started, 2),
               "ray_start_s": round(ray_start_s, 2) if ctx.work.uses_ray else None}
    atomic_write_json(out, summary)
    first = next((runs[r["stage"]] for r in records if r["status"] == "failed"), None)
    if first is not None:
        raise first.error
    return summary


def _hashed(ctx: Context, stage: Stage) -> Any:
    own = to_mapping(ctx.config.section(stage.name))
    return {"self": own, **{name: to_mapping(ctx.config.section(name)) for name in stage.reads}} if stage.reads else own


def _here(fn: Callable[[], Any]) -> Done:
    try:
        return Done(value=fn())
    except Exception as exc:  # recorded as the stage's failure, like a Ray task's
        return Done(error=exc)


def _blocked(run: _StageRun, upstream: list[_StageRun]) -> bool:
    """Record `run` as blocked when a stage it needs failed (Ray fails its tasks at once anyway)."""
    failed = next((u for u in upstream if u.failed), None)
    if failed is None:
        return False
    run.record = {"stage": run.stage.name, "status": "blocked",
                  "reason": f"needs {failed.stage.name}, which failed: {failed.record['reason']}"}
    log(f"[pipeline] {run.stage.name}: not run: {run.record['reason']}")
    return True


def _finish(run: _StageRun, ctx: Context) -> None:
    """Wait for a stage's work; record it (ran, unavailable or failed) and stamp its summary."""
    name = run.stage.name
    try:
        result = ctx.work.get(run.handle)
    except StageUnavailable as exc:
        log(f"[pipeline] {name}: not run here: {exc}")
        run.record = {"stage": name, "status": "unavailable", "reason": str(exc)}
        return
    except (Preempted, Interrupted, PendingTimeout):
        raise  # the whole pipeline stops: nothing else will finish either
    except Exception as exc:  # recorded, and raised once the report is written
        run.error = exc
        _failed(run, exc)
        return
    path = run.stage.summary(ctx)
    where = result.get("ran_on")
    _stamp(path, {"profile": ctx.profile, "stage": name, "config_hash": run.digest,
                  "config": _hashed(ctx, run.stage), "ran_on": where})
    took = work_span_s(where)
    live.note(f"[pipeline] {name}: finished" + (f", {took:.0f} s of work" if took is not None else "") + f" ({path})")
    run.record = {"stage": name, "status": "ran", "summary": str(path), "config_hash": run.digest,
                  "work_s": took, "ran_on": where}


def _failed(run: _StageRun, exc: BaseException) -> None:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    log(f"[pipeline] {run.stage.name}: failed: {reason}")
    run.record = {"stage": run.stage.name, "status": "failed", "reason": reason}


def _data_identity(ctx: Context) -> str | None:
    """The data's digest (a skipped stage must have read the same images); None with no data."""
    from cifar_core.data import data_digest

    try:
        return data_digest(ctx.data_dir)
    except DataError:
        return None


def _records(runs: dict[str, _StageRun]) -> list[dict[str, Any]]:
    return [run.record or {"stage": name, "status": "running" if run.handle is not None else "waiting"}
            for name, run in runs.items()]


def _live_view(ctx: Context, runs: dict[str, _StageRun]) -> Any:
    """What a person sees while the stages run (a block redrawn on a terminal, a line now and then in
    a log), and the standing `cifar status` reads: RESULTS/pipeline/<profile>/standing.json."""
    path = ctx.results.pipeline(ctx.profile) / STANDING_FILE
    return live.LiveView(_view_title(ctx, runs), lambda: _standing(ctx, runs),
                    publish=lambda rows, final: write_standing(path, rows, profile=ctx.profile, final=final))


def _view_title(ctx: Context, runs: dict[str, _StageRun]) -> Callable[[], str]:
    known: list[str] = []  # what the data is, once the data stage has made sure of it

    def title() -> str:
        if not known and runs.get("data") is not None and runs["data"].record.get("status") == "ran":
            digest = _data_identity(ctx) or ""
            known.append("" if digest.startswith("official:") else " · SYNTHETIC data, not CIFAR-100"
                         if digest.startswith("synthetic:") else " · data that is not the official CIFAR-100")
        return f"pipeline {ctx.profile}" + (known[0] if known else "")

    return title


def _standing(ctx: Context, runs: dict[str, _StageRun]) -> list[dict[str, Any]]:
    """Each stage's status and, while it runs, its progress read from its files and an ETA from the
    rate the driver has seen."""
    rows = []
    everywhere = [place for run in list(runs.values()) for place in run.record.get("ran_on") or []]
    for stage in ctx.stages:
        run = runs.get(stage.name)
        row = {"stage": stage.name, "status": "waiting", "done": None, "total": None, "unit": None, "eta_s": None,
               "work_s": None, "hosts": None, "note": None}
        if run is not None:
            waits_for = [name for name in stage.needs if name in runs and _live_status(runs[name]) == "running"]
            row["status"] = _live_status(run)
            if row["status"] == "running" and waits_for:  # submitted: Ray starts it once they finish
                row["status"] = "waiting"
            row["work_s"] = run.record.get("work_s")
            row["hosts"] = machine_names(run.record.get("ran_on"), among=everywhere) or None
            row["note"] = run.record.get("reason") or (f"for {', '.join(waits_for)}" if waits_for else None)
        if row["status"] == "running" and stage.progress is not None:
            try:
                measured = stage.progress(ctx)
            except Exception:  # files half written: next time
                measured = None
            if measured is not None:
                done, total, unit = measured
                row.update(done=done, total=total, unit=unit)
                now = time.monotonic()
                if run.seen is None:
                    run.seen = (now, done)
                elif done > run.seen[1]:
                    rate = (done - run.seen[1]) / (now - run.seen[0])
                    row["eta_s"] = round(max(total - done, 0) / rate)
        rows.append(row)
    return rows


def _live_status(run: _StageRun) -> str:
    """As recorded; work done in this process (--no-ray) is done before it is recorded; a stage being
    submitted, or run here (the search, a stage without Ray), has no handle yet."""
    if run.record:
        return run.record["status"]
    if isinstance(run.handle, Done):
        error = run.handle.error
        return "ran" if error is None else "unavailable" if isinstance(error, StageUnavailable) else "failed"
    return "running"


def _build_report(ctx: Context) -> dict[str, Any] | None:
    """The report, last, as a CPU task: it shows whatever the stages left, failures included."""
    live.note("[pipeline] report: rendering")
    try:
        return ctx.work.get(ctx.submit("report", build_report_task, {}, uses_device=False, results_dir=ctx.results.root))
    except CifarError as exc:
        log(f"[pipeline] report: failed: {exc}")
        return None


def build_report_task(results_dir: Path) -> dict[str, Any]:
    from cifar_core.report import build_report

    return {"html": str(build_report(results_dir)["html"])}


def _stamp(path: Path, stamp: dict[str, Any]) -> None:
    """The pipeline's stamp, and where the stage ran, into the summary the stage wrote."""
    if not path.is_file():
        raise CifarError(f"stage {stamp['stage']} finished without writing its summary {path}")
    summary = read_json(path)
    summary["pipeline"] = stamp
    summary["ran_on"] = stamp["ran_on"]
    atomic_write_json(path, summary)
