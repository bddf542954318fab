"""`run_tune`: report A's model selection as a resumable Ray Tune experiment (ASHA, epochs as time).

RESULTS/tune/<experiment>/ is a result directory (cifar_core.resultdir) holding Ray's experiment state
and trials/<trial id>/, each trial's own run directory, so the same command again resumes an
interrupted search from the trials' last.pt files (a finished one is only re-summarised). SIGTERM and
SIGINT stop it Tune's own way, its state saved, and exit 143 and 130.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cifar_core import live
from cifar_core.atomic import atomic_write_json
from cifar_core.config import TrainConfig
from cifar_core.data import data_digest, is_synthetic, resolve_root
from cifar_core.data.identity import require_official
from cifar_core.device import pick_device
from cifar_core.errors import CifarError
from cifar_core.execution.capacity import check_feasible, cluster_gpus
from cifar_core.execution.resources import Resources
from cifar_core.execution.session import Explain, Watch, work_session
from cifar_core.layout import Results
from cifar_core.progress import log
from cifar_core.resultdir import Opened, Request, ResultDir, settings_request
from cifar_core.summaries import SearchRecord
from cifar_core.tune.results import summarise_experiment
from cifar_core.tune.settings import SMOKE_LIMITS, TuneSettings, smoke_settings  # noqa: F401 (re-exported)
from cifar_core.tune.space import SearchSpace, load_space, space_summary
from cifar_core.tune.trainable import train_trial

if TYPE_CHECKING:
    from cifar_core.tune.feed import TrialFeed

METRIC, MODE = "val_acc", "max"
# Restarts of a trial after a fault (its node died, its worker was killed), each from the trial's
# last.pt on the results volume. A diverged trial is not a fault: it ends normally.
TRIAL_RESTARTS = 3
AIR_NEW_OUTPUT = "RAY_AIR_NEW_OUTPUT"


def experiment_dir(results_dir: str | Path, experiment: str) -> Path:
    return Results(Path(results_dir).resolve()).tune_experiment(experiment)


def run_tune(settings: TuneSettings, data_dir: str | Path, results_dir: str | Path, *, watch: Watch | None = None,
             pending_timeout: float | None = None, explain: Explain | None = None,
             allow_synthetic: bool = False) -> dict[str, Any]:
    """Run (or resume, or just re-summarise) one experiment; returns its summary (a SearchSummary) as written.

    Its trials are set beside report A's: only on the official CIFAR-100 unless `allow_synthetic`.
    `watch`: the caller's Ray session (the pipeline's); without one the search opens its own, with
    `pending_timeout` and `explain` (see execution.session.work_session)."""
    settings.validate()
    if settings.gpus_per_trial is not None:  # --device cuda without a GPU share: refused before Ray starts
        pick_device(settings.device, settings.gpus_per_trial)
    space = load_space(settings.space)  # a bad space fails here, before Ray starts
    # Absolute paths: a missing dataset fails here, and trials (whose working directory Ray
    # changes) still find the data and the results.
    data_dir, results_dir = resolve_root(data_dir).resolve().parent, Path(results_dir).resolve()
    record = experiment_record(settings, space, data_dir)  # the data's digest: read once, ~180 MB
    if not allow_synthetic:
        require_official(record["data_digest"], data_dir, "`cifar tune`")
    exp_dir = experiment_dir(results_dir, settings.experiment)
    with ResultDir(exp_dir, "search", root=results_dir) as search:
        if open_search(search, search_request(settings, record)) is Opened.DONE:
            log(f"experiment {settings.experiment} already finished: re-summarising {exp_dir}")
            ran = SearchRecord.read_in(exp_dir).to_json()  # what it ran with, not what was asked now
            return write_summary(search, {**ran, "settings": {**ran["settings"], "top_k": settings.top_k}}, None)
        atomic_write_json(SearchRecord.file_in(exp_dir), SearchRecord.parse(record).to_json())
        start = time.monotonic()
        quiet_expected_ray_messages()
        # Tune's progress tables are progress: stderr, like every log line, so stdout keeps only results.
        with redirect_stdout(sys.stderr):
            if watch is None:
                with work_session(True, pending_timeout=pending_timeout, explain=explain) as work:
                    watch = work.watch
                    _search(settings, space, record, data_dir, results_dir, watch)
            else:
                _search(settings, space, record, data_dir, results_dir, watch)
        summary = write_summary(search, record, time.monotonic() - start)
    watch.check()  # stopped by a signal or a stall: the state is saved and summarised; say so
    if summary["trials"] and summary["errored"] == summary["trials"]:
        first = next((r for r in load_trial_errors(exp_dir)), "see the trials' error.txt")
        raise CifarError(f"every trial of {settings.experiment} failed ({first}); see {exp_dir}/trials.csv")
    return summary


def _search(settings: TuneSettings, space: SearchSpace, record: dict, data_dir: Path, results_dir: Path,
            watch: Watch) -> None:
    gpus = gpus_per_trial(settings)
    pick_device(settings.device, gpus)  # --device cuda without a GPU share: refused before any trial
    check_feasible({"each trial": Resources(settings.cpus_per_trial, gpus)})
    watch.expect("a trial", Resources(settings.cpus_per_trial, gpus))
    from cifar_core.tune.feed import TrialFeed  # imports Ray Tune

    feed = TrialFeed(settings.experiment, settings.max_epochs, settings.num_samples)
    tuner = build_tuner(settings, space, record, data_dir, results_dir, feed)
    with live.showing("tune", feed.rows, title=feed.title), tune_output():  # the pipeline's view, or its own
        tuner.fit()  # errored trials are recorded, not raised; a stop request ends it with the state saved


def load_trial_errors(exp_dir: Path) -> list[str]:
    """The last line of each errored trial's traceback."""
    lines = []
    for path in sorted(exp_dir.glob("*/error.txt")):
        text = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if text:
            lines.append(text[-1])
    return lines


def base_train_config(space: SearchSpace, settings: TuneSettings) -> TrainConfig:
    """TrainConfig defaults, then the space's fixed values, then what the tune command sets."""
    return TrainConfig().with_overrides({"model.name": space.architectures[0], **space.fixed}).with_overrides({
        "run.epochs": settings.max_epochs,
        "run.batch_size": settings.batch_size,  # None keeps the space's or the default value
        "run.seed": settings.seed,
        "run.device": settings.device,
    })


def experiment_record(settings: TuneSettings, space: SearchSpace, data_dir: Path) -> dict[str, Any]:
    return {
        "experiment": settings.experiment,
        "settings": dataclasses.asdict(settings),
        "space": space_summary(space),
        "space_file": space.raw,
        "base_config": base_train_config(space, settings).to_dict(),
        "data_dir": str(data_dir),
        "data_digest": data_digest(data_dir),
        "synthetic_data": is_synthetic(data_dir),
        "metric": METRIC,
        "mode": MODE,
    }


def search_request(settings: TuneSettings, record: dict[str, Any]) -> Request:
    """What the search is: its settings but those declared resumable (resources and top_k, its budget),
    with the space by its contents' digest and the batch size as resolved; the data by its digest
    (trials resumed on other images would mix two searches)."""
    return settings_request("search", settings, data=record["data_digest"], extra={
        "space": record["space"]["digest"], "batch_size": record["base_config"]["run"]["batch_size"]})


def open_search(search: ResultDir, request: Request) -> Opened:
    """Fresh, resume or done, by the protocol; a finished search is done whatever its budget now (it is
    only re-summarised, re-ranked by the new top_k), and keeps the budget it ran with on record."""
    recorded = search.recorded()
    remedy = "rerun with the settings it was started with to resume it, or choose another name"
    if recorded is not None:
        as_ran = dataclasses.replace(request, budget=recorded.get("budget") or {})
        if search.open(as_ran, remedy=remedy) is Opened.DONE:
            return Opened.DONE
    return search.open(request, remedy=remedy)


def write_summary(search: ResultDir, record: dict[str, Any], wall_time_s: float | None) -> dict[str, Any]:
    """The result files, then the summary; the completion marker when every trial has finished."""
    summary = summarise_experiment(search.path, record, wall_time_s)
    if summary.complete:
        return search.complete(summary.to_json())
    atomic_write_json(search.summary_path, summary.to_json())
    return summary.to_json()


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


def quiet_expected_ray_messages() -> None:
    """Drop a message that fires again and again in a healthy search and would bury the rest: the
    TensorBoard logger listing the nested-choice ranges it cannot log as hyper-parameters."""
    logger = logging.getLogger("ray.tune.logger.tensorboardx")
    if not any(isinstance(f, _DropMessages) for f in logger.filters):  # once per process
        logger.addFilter(_DropMessages("Removed the following hyperparameter values"))


def build_tuner(settings: TuneSettings, space: SearchSpace, record: dict, data_dir: Path, results_dir: Path,
                feed: TrialFeed):
    from ray import tune

    exp_dir = experiment_dir(results_dir, settings.experiment)
    trainable = trial_trainable(settings, record, data_dir, results_dir)
    if tune.Tuner.can_restore(str(exp_dir)):
        log(f"resuming experiment {settings.experiment} from {exp_dir}")
        # Unfinished and errored trials (faults that outlasted their restarts) run again under their
        # own ids, so each continues from its own last.pt: a lost worker costs at most one epoch.
        return with_output(tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_unfinished=True,
                                              resume_errored=True), feed)
    scheduler = tune.schedulers.ASHAScheduler(
        time_attr="epoch", max_t=settings.max_epochs, grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )
    return tune.Tuner(
        trainable,
        param_space=space.param_space(),
        tune_config=tune.TuneConfig(
            metric=METRIC, mode=MODE, scheduler=scheduler, num_samples=settings.num_samples,
            # The default search algorithm, seeded; it limits concurrency itself (Tune's
            # max_concurrent_trials only wraps Searcher-based algorithms).
            search_alg=tune.search.BasicVariantGenerator(max_concurrent=settings.max_concurrent, random_state=settings.seed),
            reuse_actors=True,  # a reused worker keeps its loaded dataset (trainable.cached_data)
            trial_dirname_creator=lambda trial: trial.trial_id,  # short paths on the volume
        ),
        run_config=tune.RunConfig(
            name=settings.experiment, storage_path=str(exp_dir.parent),
            failure_config=tune.FailureConfig(max_failures=TRIAL_RESTARTS),
            callbacks=[feed], verbose=tune_verbosity(),
        ),
    )


def tune_verbosity() -> int:
    """Tune's own tables only with --verbose: the live view shows the trials (feed.TrialFeed)."""
    return 1 if live.verbose() else 0


@contextmanager
def tune_output() -> Iterator[None]:
    """At verbosity 0 Tune's new output engine still prints the experiment's header; its old one
    prints nothing. Without --verbose, the old one (RAY_AIR_NEW_OUTPUT is read when `fit` starts)."""
    if live.verbose():
        yield
        return
    before = os.environ.get(AIR_NEW_OUTPUT)
    os.environ[AIR_NEW_OUTPUT] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(AIR_NEW_OUTPUT, None)
        else:
            os.environ[AIR_NEW_OUTPUT] = before


def with_output(tuner, feed: TrialFeed):
    """A restored Tuner brings the run config pickled when the search began; what it prints (Tune's
    tables, our feed) is this command's choice. Tune has no public setter for it."""
    internal = tuner._local_tuner
    internal._run_config = dataclasses.replace(internal.get_run_config(), callbacks=[feed], verbose=tune_verbosity())
    return tuner


def trial_trainable(settings: TuneSettings, record: dict, data_dir: Path, results_dir: Path):
    from ray import tune

    cpus, gpus = settings.cpus_per_trial, gpus_per_trial(settings)
    base = _with_trial_device(record["base_config"], settings.device, gpus)
    bound = tune.with_parameters(train_trial, base=base, data_dir=str(data_dir), results_dir=str(results_dir),
                                 experiment=settings.experiment, digest=record["data_digest"],
                                 threads=max(1, int(cpus)))
    return tune.with_resources(bound, {"cpu": cpus, "gpu": gpus})


def gpus_per_trial(settings: TuneSettings) -> float:
    """The explicit share, or the cluster's GPUs split among the concurrent trials (at most 1 each).

    Counted are the GPUs the cluster could have, not only those up now: a GPU worker group that an
    autoscaler grows from zero has none when the search starts.
    """
    if settings.gpus_per_trial is not None:
        return settings.gpus_per_trial
    total = cluster_gpus()
    return min(1.0, total / settings.max_concurrent) if total else 0.0


def _with_trial_device(base: dict, device: str, gpus: float) -> dict:
    # "auto" inside a trial would pick up a GPU that Tune did not give it; decide here instead.
    return {**base, "run": {**base["run"], "device": pick_device(device, gpus)}}
