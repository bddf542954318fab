"""Every kind of result's summary as a typed record (cifar_core.records): written once by its owner
through its class, read back by the report and the other stages through the same class, so writer and
reader agree on every key and its type; a file whose value has another type is refused naming the
file and the key. No torch here: the report reads these in a pod without the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from cifar_core.records import Record, optional


# --- shared rows ------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class Place(Record):
    """Where a unit of work ran (`ran_on`, cifar_core.execution.runners.ran_on): its Ray node (None
    outside Ray), host, device and times; a search's says, per node, the span of its trials (`work`)."""

    node_id: str | None = optional()
    hostname: str | None = optional()
    device: str | None = optional()
    device_name: str | None = optional()
    work: str | None = optional()
    started_at: float | None = optional()
    ended_at: float | None = optional()
    work_s: float | None = optional()


@dataclass(kw_only=True)
class Summary(Record):
    """A result directory's summary.json; ResultDir.complete adds the stage whose unit made it
    (`made_by`) and where that unit ran (`ran_on`), unless it lists its units' places itself."""

    FILE: ClassVar[str] = "summary.json"
    made_by: str | None = optional()
    ran_on: list[Place] | None = optional()


@dataclass(kw_only=True)
class CurvePoint(Record):
    """A test-set score during training (`run.eval_test_every`)."""

    step: int
    loss: float
    top1: float
    top5: float


# --- training runs: RESULTS/train/<run> ---------------------------------------------------------------
@dataclass(kw_only=True)
class Score(CurvePoint):
    """The test set scored once (`--evaluate-test`): at which step, on how many images."""

    n: int


@dataclass(kw_only=True)
class TrainSummary(Summary):
    """cifar_core.runs.train_run: the engine's result, where the run lives and what it trained on;
    `test` with --evaluate-test; `evaluations` keyed "split@step<N>" by `cifar evaluate`."""

    model: str
    optimizer: str
    parameters: int
    epochs: int
    steps: int
    device: str
    run_dir: str
    device_name: str | None = optional()
    precision: str | None = optional()  # bf16 autocast or float32, where the run records what it computed in
    best_val_acc: float | None = optional()
    best_step: int | None = optional()
    final_val_acc: float | None = optional()
    final_train_loss: float | None = optional()
    data_digest: str | None = optional()
    train_time_s: float | None = optional()  # every epoch, across resumes
    wall_time_s: float | None = optional()  # the last call only
    test_curve: list[CurvePoint] | None = optional()
    synthetic_data: bool | None = optional()
    full_train: bool | None = optional()
    test: Score | None = optional()
    evaluations: dict[str, Any] | None = optional()


# --- GAN runs: RESULTS/gan/<run> ------------------------------------------------------------------------
@dataclass(kw_only=True)
class GanFailure(Record):
    event: str
    step: int
    reason: str


@dataclass(kw_only=True)
class GanParameters(Record):
    generator: int
    discriminator: int
    total: int


@dataclass(kw_only=True)
class GanRow(Record):
    """A row of the run's metrics.jsonl: its means since the last row."""

    step: int
    d_loss: float | None = optional()
    g_loss: float | None = optional()
    d_x: float | None = optional()
    d_g_z: float | None = optional()
    diversity: float | None = optional()
    lr: float | None = optional()
    optimizer_steps: int | None = optional()
    recoveries: int | None = optional()


@dataclass(kw_only=True)
class CollapseEvent(Record):
    """A detected mode collapse and what recovery did (`action`: rollback, restart or none, and `why`)."""

    step: int
    event: str | None = optional()
    reason: str | None = optional()
    detail: str | None = optional()
    optimizer_steps: int | None = optional()
    action: str | None = optional()
    why: str | None = optional()
    lr_after: float | None = optional()
    rolled_back_to: int | None = optional()
    new_seed: int | None = optional()
    recovery: int | None = optional()


@dataclass(kw_only=True)
class GanSummary(Summary):
    """cifar_core.gan.train.train_gan; a run that diverged says `status` failed and its `failure`."""

    run_dir: str
    status: str
    steps: int
    collapse_mode: str
    failure: GanFailure | None = optional()
    optimizer_steps: int | None = optional()
    parameters: GanParameters | None = optional()
    wall_time_s: float | None = optional()
    steps_per_s: float | None = optional()
    device: str | None = optional()
    device_name: str | None = optional()
    precision: str | None = optional()  # bf16 autocast or float32, where the run records what it computed in
    synthetic_data: bool | None = optional()
    data_digest: str | None = optional()
    collapse_events: list[CollapseEvent] | None = optional()
    protocol_settings: dict[str, Any] | None = optional()
    protocol_departures: list[str] | None = optional()  # None: made before departures were recorded
    recoveries: int | None = optional()
    final_lr: float | None = optional()
    final: GanRow | None = optional()
    checkpoints: list[str] | None = optional()
    config: dict[str, Any] | None = optional()


# --- FID scores: RESULTS/fid/<name> ---------------------------------------------------------------------
@dataclass(kw_only=True)
class FakeImages(Record):
    """What was scored: a GAN run's chosen snapshot (`run`), one `checkpoint`, a `folder` or an `npz`."""

    kind: str
    path: str
    seed: int | None = optional()
    batch_norm: str | None = optional()


@dataclass(kw_only=True)
class RealImages(Record):
    dataset: str | None = optional()
    split: str | None = optional()
    data_sha256: str | None = optional()
    stats_cache: str | None = optional()
    from_cache: bool | None = optional()


@dataclass(kw_only=True)
class SelectionSplit(Record):
    """The split a select-best ranking scored every snapshot against."""

    split: str
    n_real: int | None = optional()
    seed: int | None = optional()
    stats_cache: str | None = optional()


@dataclass(kw_only=True)
class SnapshotScore(Record):
    """A snapshot's FID in a select-best ranking (`best` adds the seed it was scored with then)."""

    step: int
    fid: float
    checkpoint: str | None = optional()
    n_fake: int | None = optional()
    seconds: float | None = optional()
    scored_seed: int | None = optional()


@dataclass(kw_only=True)
class InceptionWeights(Record):
    path: str | None = optional()
    sha256: str | None = optional()


@dataclass(kw_only=True)
class ComparedScore(Record):
    """A snapshot stage fid-b scored the same way (the first: this score itself)."""

    step: int
    fid: float
    summary: str


@dataclass(kw_only=True)
class FidSummary(Summary):
    """cifar_core.fid.scoring.run_fid; a select-best score adds `selection`, `best` and `ranking`;
    stage fid-b's first score adds what it was `compared` with."""

    fid: float
    n_fake: int
    fake: FakeImages
    request: dict[str, Any] | None = optional()
    protocol: str | None = optional()  # report-b, select-best, checkpoint or images
    protocol_settings: dict[str, Any] | None = optional()
    protocol_departures: list[str] | None = optional()
    n_real: int | None = optional()
    real: RealImages | None = optional()
    weights: InceptionWeights | None = optional()
    weights_standard: bool | None = optional()  # pytorch-fid's released file, by its sha256
    feature_layer: str | None = optional()
    feature_dims: int | None = optional()
    device: str | None = optional()
    batch_size: int | None = optional()
    seconds: dict[str, float] | None = optional()
    torch: str | None = optional()
    numpy: str | None = optional()
    created: str | None = optional()
    selection: SelectionSplit | None = optional()
    best: SnapshotScore | None = optional()
    ranking: list[SnapshotScore] | None = optional()
    compared: list[ComparedScore] | None = optional()


# --- searches: RESULTS/tune/<experiment> ----------------------------------------------------------------
@dataclass(kw_only=True)
class SpaceSummary(Record):
    name: str
    digest: str | None = optional()
    description: str | None = optional()
    architectures: list[str] | None = optional()
    optimizers: list[str] | None = optional()


@dataclass(kw_only=True)
class SearchRecord(Record):
    """experiment.json: what a search runs with, written before its first trial."""

    FILE: ClassVar[str] = "experiment.json"
    experiment: str
    settings: dict[str, Any]  # the TuneSettings it ran with
    space: SpaceSummary
    base_config: dict[str, Any]  # the TrainConfig its trials override
    metric: str
    mode: str
    space_file: Any = optional()
    data_dir: str | None = optional()
    data_digest: str | None = optional()
    synthetic_data: bool | None = optional()


@dataclass(kw_only=True)
class TopTrial(Record):
    rank: int
    trial_id: str
    best_val_acc: float
    params: dict[str, Any]  # the searched settings, by dotted key
    train_config: dict[str, Any]
    best_epoch: int | None = optional()
    epochs: int | None = optional()
    parameters: int | None = optional()


@dataclass(kw_only=True)
class TopTrials(Record):
    """top_k.json: the k best trials, and the best trial of each of the k best architectures."""

    FILE: ClassVar[str] = "top_k.json"
    experiment: str
    metric: str | None = optional()
    top: list[TopTrial] | None = optional()
    top_architectures: list[TopTrial] | None = optional()


@dataclass(kw_only=True)
class Rung(Record):
    epoch: int
    trials_reached: int
    stopped_here: int


@dataclass(kw_only=True)
class Concurrency(Record):
    max: int
    mean: float | None = optional()
    busy_s: float | None = optional()


@dataclass(kw_only=True)
class SearchBest(Record):
    trial_id: str
    val_acc: float
    params: dict[str, Any]
    epoch: int | None = optional()
    parameters: int | None = optional()


@dataclass(kw_only=True)
class SearchSummary(Summary):
    """cifar_core.tune.results.build_summary: its trials counted; `ran_on` per node, from Tune's clock."""

    complete: bool
    experiment: str | None = optional()
    trials: int | None = optional()
    synthetic_data: bool | None = optional()
    space: SpaceSummary | None = optional()
    settings: dict[str, Any] | None = optional()  # the TuneSettings it ran with
    status_counts: dict[str, int] | None = optional()
    errored: int | None = optional()
    diverged: int | None = optional()
    nodes: list[str] | None = optional()
    stopped_early: int | None = optional()
    epochs_histogram: dict[str, int] | None = optional()
    rungs: list[Rung] | None = optional()
    epochs_run: int | None = optional()
    epochs_without_early_stopping: int | None = optional()
    train_time_s: float | None = optional()
    trial_time_s: float | None = optional()
    wall_time_s: float | None = optional()
    concurrency: Concurrency | None = optional()
    best: SearchBest | None = optional()
    files: dict[str, str] | None = optional()


# --- retraining tables: RESULTS/retrain/<experiment>, RESULTS/recipe/<name> ------------------------------
@dataclass(kw_only=True)
class PlanRow(Record):
    """One retrained run, from its training run's summary (cifar_core.retrain.run_row)."""

    model: str
    run_dir: str
    test_top1: float
    device: str
    precision: str  # float32, or bf16 autocast where it applied
    run: str | None = optional()  # its training run's name (RESULTS/train/<run>)
    optimizer: str | None = optional()
    test_top5: float | None = optional()
    test_loss: float | None = optional()
    train_acc: float | None = optional()
    final_train_loss: float | None = optional()
    parameters: int | None = optional()
    epochs: int | None = optional()
    steps: int | None = optional()
    test_curve: list[CurvePoint] | None = optional()
    train_time_s: float | None = optional()
    wall_time_s: float | None = optional()
    synthetic_data: bool | None = optional()
    data_digest: str | None = optional()
    protocol_settings: dict[str, Any] | None = optional()
    protocol_departures: list[str] | None = optional()
    ran_on: list[Place] | None = optional()


@dataclass(kw_only=True)
class RetrainRow(PlanRow):
    rank: int  # of its trial in the search
    params: dict[str, Any] | None = optional()
    tune_val_acc: float | None = optional()


@dataclass(kw_only=True)
class RecipeRow(PlanRow):
    label: str  # the report's name of the model
    seed: int


@dataclass(kw_only=True)
class ModelMeans(Record):
    """A recipe's model over its seeds: mean and standard deviation (None for one seed)."""

    label: str
    model: str
    seeds: list[int]
    test_top1_mean: float | None
    parameters: int | None = optional()
    test_top1_std: float | None = optional()
    test_top5_mean: float | None = optional()
    test_top5_std: float | None = optional()
    train_acc_mean: float | None = optional()
    train_acc_std: float | None = optional()
    final_train_loss_mean: float | None = optional()
    final_train_loss_std: float | None = optional()


@dataclass(kw_only=True)
class PlanSummary(Summary):
    """cifar_core.retrain.collect: every run's row, the protocol they are set beside and the files;
    `ran_on` lists every run's place."""

    kind: str  # tune (a search's best configs) or recipe
    complete: bool
    models: list[PlanRow]
    files: dict[str, str] | None = optional()
    best: str | None = optional()
    protocol: str | None = optional()
    protocol_settings: dict[str, Any] | None = optional()
    protocol_departures: list[str] | None = optional()


@dataclass(kw_only=True)
class RetrainSummary(PlanSummary):
    experiment: str
    select: str  # architectures or trials
    top_k: int | None = optional()
    epochs: int | None = optional()
    models: list[RetrainRow]


@dataclass(kw_only=True)
class RecipeSummary(PlanSummary):
    recipe: str
    name: str
    augment: str | None  # None: the recipe's own
    seeds: list[int] | None = optional()
    budget: dict[str, int] | None = optional()  # {"epochs": E} or {"steps": S}
    amp: bool | None = optional()
    by_model: list[ModelMeans] | None = optional()
    models: list[RecipeRow]


# --- the data check and the pipeline: RESULTS/pipeline/<profile> ----------------------------------------
@dataclass(kw_only=True)
class SplitCheck(Record):
    count: int
    fine_classes_present: int | None = optional()
    coarse_classes_present: int | None = optional()
    md5: str | None = optional()


@dataclass(kw_only=True)
class DataSummary(Summary):
    """Stage data (cifar_core.stages.data): the dataset as cifar_core.data.verify_dataset found it."""

    stage: str
    synthetic: bool
    train: SplitCheck
    test: SplitCheck
    generated_synthetic: bool | None = optional()
    root: str | None = optional()
    checksum: str | None = optional()
    fine_classes: int | None = optional()
    coarse_classes: int | None = optional()
    meta: dict[str, str] | None = optional()


@dataclass(kw_only=True)
class StageRow(Record):
    """A stage as the pipeline's last run recorded it: ran or skipped (its summary, request, where it
    ran), or unavailable, failed, blocked, stopped with the reason; running or waiting meanwhile."""

    stage: str
    status: str
    summary: str | None = optional()
    request: str | None = optional()
    work_s: float | None = optional()
    ran_on: list[Place] | None = optional()
    reason: str | None = optional()


@dataclass(kw_only=True)
class StageRecord(Summary):
    """RESULTS/pipeline/<profile>/stages/<stage>: the summary a stage completed, by its digest."""

    stage: str
    summary: str
    summary_sha256: str


@dataclass(kw_only=True)
class PipelineSummary(Summary):
    """cifar_core.pipeline: every stage's row, rewritten as they finish; the rest once all have."""

    profile: str
    complete: bool
    stages: list[StageRow]
    stopped: str | None = optional()  # why every unfinished stage stopped (a signal, a stall)
    report: str | None = optional()
    report_ran_on: list[Place] | None = optional()
    results_dir: str | None = optional()
    config: dict[str, Any] | None = optional()
    wall_time_s: float | None = optional()
    ray_start_s: float | None = optional()


# --- sample sets -----------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class SampleManifest(Summary):
    """SAMPLES.json of `cifar gan sample`: what the images are a sample of, and their files."""

    FILE: ClassVar[str] = "SAMPLES.json"
    checkpoint: str
    n: int
    seed: int
    files: list[str]
    format: str | None = optional()
    batch_norm: str | None = optional()
    batch_size: int | None = optional()
    checkpoint_sha256: str | None = optional()
