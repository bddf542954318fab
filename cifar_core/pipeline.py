"""`run_pipeline`: the study's stages (cifar_core.stages) scheduled over what they need, each resumable.

A profile is a `PipelineConfig` (one declared section per registered stage, changed with `--set`).
A stage is skipped when its record (RESULTS/pipeline/<profile>/stages/<stage>) completed this same
request — its settings, the data's digest, the requests of what it needs — and its summary is still
the one recorded; a failed stage blocks only the stages that need it; a signal stops every stage.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

from cifar_core import live
from cifar_core.atomic import atomic_write_json, file_digest
from cifar_core.errors import CifarError, ConfigError, Interrupted, Preempted
from cifar_core.execution.capacity import check_feasible
from cifar_core.execution.resources import Resources
from cifar_core.execution.runners import Done, machine_names, work_span_s
from cifar_core.execution.session import Explain, PendingTimeout, work_session
from cifar_core.fields import check_fields, section, to_mapping, with_overrides
from cifar_core.layout import Results
from cifar_core.progress import STANDING_FILE, log, write_standing
from cifar_core.resultdir import Request, ResultDir, regular_file
from cifar_core.stages import Context, Stage, StageUnavailable, all_stages, attribute, get_stage
from cifar_core.summaries import PipelineSummary, StageRecord, Summary

# The report, rendered last whatever the stages did; `cifar pipeline --stage report` renders it alone.
REPORT = "report"


# --- the config: one section per stage, and what each stage's units reserve --------------------------
def _config_classes() -> tuple[type, type]:
    stages = all_stages()
    resources = make_dataclass("StageResources", [
        *((attribute(s.name), Resources, section(functools.partial(dataclasses.replace, s.resources), s.name))
          for s in stages),
        (REPORT, Resources, section(lambda: Resources(1, 0), REPORT))])
    config = make_dataclass("PipelineConfig", [
        *((attribute(s.name), s.settings, section(s.settings, s.name)) for s in stages),
        ("resources", resources, field(default_factory=resources))])
    config.__doc__ = ("The full profile: both reports' protocols. Report A's search (60 trials, 16 at once, ASHA "
                      "keeping the better half, 30 epochs) and retrain (the best trial of each of the 3 best "
                      "architectures, 100 epochs on all 50,000 images), its final models as a recipe and their "
                      "augmentation ablation; report B's classifier (3 seeds), DCGAN (50,000 steps) and FID by its "
                      "protocol and ours.")
    return config, resources


PipelineConfig, StageResources = _config_classes()

_LAPTOP = {"cpus": 1, "gpus": 0}
# Changes of the full profile. smoke: minutes on a 2-core laptop CPU, a synthetic stand-in when no data
# is there; every stage for a few steps (each stage says how, as its `smoke`).
PROFILES: dict[str, dict[str, Any]] = {
    "full": {},
    "smoke": {**{s.name: dict(s.smoke) for s in all_stages() if s.smoke},
              "resources": {**{s.name: _LAPTOP for s in all_stages()}, REPORT: _LAPTOP}},
}


def resolve_profile(profile: str, overrides: Iterable[str] = (), allow_synthetic: bool = False) -> Any:
    """The profile with `--set section.key=value` overrides (YAML values), every setting checked."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown pipeline profile {profile!r}; known: {', '.join(PROFILES)}")
    config = with_overrides(PipelineConfig, PROFILES[profile], overrides)
    own = with_overrides(PipelineConfig, PROFILES[profile], ()).data.official_only
    if own and not config.data.official_only and not allow_synthetic:  # one switch turns the refusal off
        raise ConfigError(f"--set data.official_only=false: the {profile} profile refuses data that is not the "
                          "official CIFAR-100, and only --allow-synthetic runs it anyway (its results then say "
                          "SYNTHETIC): pass --allow-synthetic instead")
    if allow_synthetic:
        config.data.official_only = False
    check_fields(config)
    return config


def stage_resources(stage: str) -> Resources:
    """What each unit of `stage` reserves in the full profile: the single stages' default, so that
    `cifar gan train` asks what the pipeline's gan stage asks."""
    return getattr(StageResources(), attribute(stage), Resources())


def stage_names() -> tuple[str, ...]:
    """Every stage by name, the report last: the pipeline's, `--stage`'s and the chart's."""
    return (*(s.name for s in all_stages()), REPORT)


# --- running some stages -----------------------------------------------------------------------------
def run_pipeline(profile: str, data_dir: str | Path, results_dir: str | Path, device: str = "auto",
                 only: Iterable[str] | None = None, overrides: Iterable[str] = (), with_ray: bool = True,
                 allow_synthetic: bool = False, pending_timeout: float | None = None,
                 explain: Explain | None = None, stages: Iterable[Stage] | None = None,
                 publish: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every stage (or those named in `only`: the stages they need must have run) not already done
    for this profile's settings, then the report; returns the pipeline's summary. One pipeline at a
    time per profile and results directory (its lock). `publish(standing)` gets where the study
    stands each time it is written to standing.json (on Kubernetes the CLI passes one that annotates
    the driver's RayJob, for `cifar status`)."""
    config = resolve_profile(profile, overrides, allow_synthetic)
    pool = tuple(stages) if stages is not None else all_stages()
    chosen = _chosen(pool, only)
    # Absolute paths: a unit runs in its worker's working directory, not this one.
    ctx = Context(profile, config, Path(data_dir).absolute(), Results(Path(results_dir).absolute()), device,
                  running=tuple(s.name for s in chosen))
    # Every setting, and --device against each GPU share, before anything runs; the data's checks
    # (the official data where the profile compares with the reports) whichever stages run.
    data_stages = [s for s in pool if s.makes_data]
    for stage in (*chosen, *(s for s in data_stages if s not in chosen)):
        if stage.check is not None:
            stage.check(ctx)
        if stage in chosen and stage.uses_device and not stage.in_driver:
            ctx.resources(stage.name).device(device)
    started = time.monotonic()
    with ResultDir(ctx.results.pipeline(profile), "pipeline", root=ctx.results.root):
        run = PipelineRun(ctx, chosen, started)
        with (work_session(with_ray, pending_timeout=pending_timeout, explain=explain) as work,
              run.live_view(publish)):
            ctx.work = work
            return run.run()


def _chosen(stages: tuple[Stage, ...], only: Iterable[str] | None) -> tuple[Stage, ...]:
    if only is None:
        return stages
    names = list(dict.fromkeys(only))
    for name in names:
        if name != REPORT:
            get_stage(name)  # an unknown name: one line naming the known ones
    return tuple(stage for stage in stages if stage.name in names)


@dataclass
class _StageRun:
    stage: Stage
    request: Request | None = None
    handle: Any = None
    record: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    seen: tuple[float, int] | None = None  # (when, done) the first time progress was seen: for the ETA

    @property
    def failed(self) -> bool:
        return self.record.get("status") in ("failed", "blocked")


class PipelineRun:
    """The scheduler: each chosen stage in order, once what it needs is done (or submitted: Ray starts
    it when its inputs exist), its units submitted, then every stage waited for and recorded."""

    def __init__(self, ctx: Context, stages: tuple[Stage, ...], started: float):
        self.ctx, self.stages, self.started = ctx, stages, started
        self.runs: dict[str, _StageRun] = {}
        self.requests: dict[str, Request] = {}
        self.data: str | None = None
        self.out = PipelineSummary.file_in(ctx.results.pipeline(ctx.profile))

    def run(self) -> dict[str, Any]:
        ray_start_s = time.monotonic() - self.started  # joining (or starting) Ray
        if self.ctx.work.uses_ray:
            check_feasible({f"stage {s.name}": self.ctx.resources(s.name) for s in self.stages if not s.in_driver})
        try:
            for stage in sorted(self.stages, key=lambda s: not s.makes_data):
                self._start(stage)
            for run in self.runs.values():
                if run.handle is not None and not run.record and not self._blocked(run):
                    self._finish(run)
                self._write(complete=False)
        except (Preempted, Interrupted, PendingTimeout) as exc:
            self._stopped(exc)
            raise
        report = self._report() or {}
        records = self._records()
        summary = self._write(complete=not any(r["status"] in ("failed", "blocked") for r in records),
                              report=report.get("html"), report_ran_on=report.get("ran_on"),
                              results_dir=str(self.ctx.results.root.resolve()), config=to_mapping(self.ctx.config),
                              wall_time_s=round(time.monotonic() - self.started, 2),
                              ray_start_s=round(ray_start_s, 2) if self.ctx.work.uses_ray else None)
        first = next((self.runs[r["stage"]] for r in records if r["status"] == "failed"), None)
        if first is not None:
            raise first.error
        return summary

    # -- one stage --
    def _start(self, stage: Stage) -> None:
        run = self.runs[stage.name] = _StageRun(stage)
        if self._blocked(run):
            return
        if not stage.makes_data:
            run.request = self.request(stage)
            summary = stage.summary(self.ctx)
            if self._done(stage, run.request, summary):
                live.note(f"[pipeline] {stage.name}: done before with these settings, skipping ({summary})")
                recorded = Summary.read(summary).to_json()
                run.record = {"stage": stage.name, "status": "skipped", "summary": str(summary),
                              "request": run.request.digest(), "ran_on": recorded.get("ran_on"),
                              "work_s": work_span_s(recorded.get("ran_on"))}
                run.handle = Done(value=recorded)
                return
        live.note(f"[pipeline] {stage.name}: {'running' if stage.in_driver or not self.ctx.work.uses_ray else 'submitted'}")
        needs = {name: self.runs[name].handle for name in stage.needs if name in self.runs}
        run.handle = stage.run(self.ctx, needs)
        if stage.makes_data or stage.in_driver or self.ctx.work.ready(run.handle):
            # The data's digest is everyone's input, a search blocks the driver here, and work already
            # done (in this process) is recorded now: a signal in a later stage must not lose it.
            self._finish(run)

    def request(self, stage: Stage) -> Request:
        """What makes a stage's result: its settings (and those of the sections it reads), the data's
        digest and the requests of the stages it needs; not the device it runs on."""
        if stage.name not in self.requests:
            if self.data is None:
                from cifar_core.data import data_digest_or_none  # numpy: not for --help

                self.data = data_digest_or_none(self.ctx.data_dir)  # what a skipped stage must have read
            sections = [stage.name, *stage.reads]
            settings = {name: to_mapping(self.ctx.section(name)) for name in sections}
            inputs = {name: self.request(get_stage(name)).digest() for name in stage.needs
                      if not get_stage(name).makes_data}
            self.requests[stage.name] = Request(f"stage {stage.name}", settings, data=self.data, inputs=inputs)
        return self.requests[stage.name]

    def _record_dir(self, stage: Stage) -> ResultDir:
        return ResultDir(self.ctx.results.pipeline(self.ctx.profile) / "stages" / stage.name, f"stage {stage.name}",
                         root=self.ctx.results.root, replaceable=True)

    def _done(self, stage: Stage, request: Request, summary: Path) -> bool:
        record = self._record_dir(stage)
        if not record.is_done(request) or not regular_file(summary):
            return False
        try:
            return StageRecord.read(record.summary_path).summary_sha256 == file_digest(summary)
        except CifarError:
            return False  # a record that cannot be read vouches for nothing

    def _finish(self, run: _StageRun) -> None:
        """Wait for a stage's units; record it (ran, unavailable or failed)."""
        name = run.stage.name
        try:
            result = self.ctx.work.get(run.handle)
        except StageUnavailable as exc:
            log(f"[pipeline] {name}: not run here: {exc}")
            run.record = {"stage": name, "status": "unavailable", "reason": str(exc)}
            return
        except (Preempted, Interrupted, PendingTimeout):
            raise  # the whole pipeline stops: nothing else will finish either
        except Exception as exc:  # recorded, and raised once the report is written
            run.error = exc
            reason = _first_line(exc)
            log(f"[pipeline] {name}: failed: {reason}")
            run.record = {"stage": name, "status": "failed", "reason": reason}
            return
        summary, where = run.stage.summary(self.ctx), result.get("ran_on")
        if run.request is None:  # the data: its digest is known now
            from cifar_core.data import data_digest_or_none  # numpy: not for --help

            self.data = data_digest_or_none(self.ctx.data_dir)
        else:
            self._complete(run, summary, where)
        took = work_span_s(where)
        live.note(f"[pipeline] {name}: finished" + (f", {took:.0f} s of work" if took is not None else "") + f" ({summary})")
        run.record = {"stage": name, "status": "ran", "summary": str(summary),
                      "request": run.request.digest() if run.request else None, "work_s": took, "ran_on": where}

    def _complete(self, run: _StageRun, summary: Path, where: Any) -> None:
        if not regular_file(summary):
            raise CifarError(f"stage {run.stage.name} finished without writing its summary {summary}")
        with self._record_dir(run.stage) as record:
            record.open(run.request)
            record.complete(StageRecord.parse({"stage": run.stage.name, "summary": str(summary),
                                               "summary_sha256": file_digest(summary), "ran_on": where}).to_json())

    def _blocked(self, run: _StageRun) -> bool:
        """Record `run` as blocked when a stage it needs failed (Ray fails its units at once anyway)."""
        failed = next((self.runs[n] for n in run.stage.needs if n in self.runs and self.runs[n].failed), None)
        if failed is None:
            return False
        run.record = {"stage": run.stage.name, "status": "blocked",
                      "reason": f"needs {failed.stage.name}, which failed: {failed.record['reason']}"}
        log(f"[pipeline] {run.stage.name}: not run: {run.record['reason']}")
        return True

    def _stopped(self, exc: BaseException) -> None:
        """A signal (or a stall) ends every stage: each unfinished one says so in the summary."""
        reason = _first_line(exc)
        for run in self.runs.values():
            if not run.record:
                run.record = {"stage": run.stage.name, "status": "stopped", "reason": reason}
        for stage in self.stages:
            if stage.name not in self.runs:
                self.runs[stage.name] = _StageRun(stage, record={"stage": stage.name, "status": "not started",
                                                                 "reason": reason})
        self._write(complete=False, stopped=reason)

    def _records(self) -> list[dict[str, Any]]:
        return [run.record or {"stage": name, "status": "running" if run.handle is not None else "waiting"}
                for name, run in self.runs.items()]

    def _write(self, **fields: Any) -> dict[str, Any]:
        """The pipeline's summary (a PipelineSummary): every stage's row so far, and `fields`."""
        written = PipelineSummary.parse({"profile": self.ctx.profile, **fields, "stages": self._records()}).to_json()
        atomic_write_json(self.out, written)
        return written

    def _report(self) -> dict[str, Any] | None:
        """The report, last, as a CPU unit: it shows whatever the stages left, failures included."""
        live.note("[pipeline] report: rendering")
        try:
            return self.ctx.work.get(self.ctx.submit(REPORT, build_report_task, {}, uses_device=False,
                                                     results_dir=self.ctx.results.root))
        except CifarError as exc:
            log(f"[pipeline] report: failed: {exc}")
            return None

    # -- where the study stands --
    def live_view(self, publish: Callable[[dict[str, Any]], None] | None = None) -> live.LiveView:
        """What a person sees while the stages run (a block redrawn on a terminal, a line now and then
        in a log), and the standing: RESULTS/pipeline/<profile>/standing.json, then `publish`."""
        path = self.ctx.results.pipeline(self.ctx.profile) / STANDING_FILE

        def standing(rows: list[dict[str, Any]], final: bool) -> None:
            written = write_standing(path, rows, profile=self.ctx.profile, final=final)
            if publish is not None:
                publish(written)

        return live.LiveView(self.title, self.standing, publish=standing)

    def title(self) -> str:
        from cifar_core.data.identity import is_official

        data = self.data or ""  # known once the data stage has run
        what = "" if not data or is_official(data) else " · SYNTHETIC data, not CIFAR-100" \
            if data.startswith("synthetic:") else " · data that is not the official CIFAR-100"
        return f"pipeline {self.ctx.profile}{what}"

    def standing(self) -> list[dict[str, Any]]:
        """Each stage's status and, while it runs, its progress read from its files and an ETA from
        the rate the driver has seen; where it ran; why it failed, or what it waits for."""
        rows = []
        everywhere = [place for run in list(self.runs.values()) for place in run.record.get("ran_on") or []]
        for stage in self.stages:
            run = self.runs.get(stage.name)
            row = {"stage": stage.name, "status": "waiting", "done": None, "total": None, "unit": None,
                   "eta_s": None, "work_s": None, "hosts": None, "note": None}
            if run is not None:
                waits_for = [n for n in stage.needs if n in self.runs and _live_status(self.runs[n]) == "running"]
                row["status"] = _live_status(run)
                if row["status"] == "running" and waits_for:  # submitted: Ray starts it once they finish
                    row["status"] = "waiting"
                row["work_s"] = run.record.get("work_s")
                row["hosts"] = machine_names(run.record.get("ran_on"), among=everywhere) or None
                row["note"] = run.record.get("reason") or (f"for {', '.join(waits_for)}" if waits_for else None)
            if row["status"] == "running" and stage.progress is not None:
                self._progress(stage, run, row)
            rows.append(row)
        return rows

    def _progress(self, stage: Stage, run: _StageRun, row: dict[str, Any]) -> None:
        try:
            measured = stage.progress(self.ctx)
        except Exception:  # files half written: next time
            measured = None
        if measured is None:
            return
        done, total, unit = measured
        row.update(done=done, total=total, unit=unit)
        now = time.monotonic()
        if run.seen is None:
            run.seen = (now, done)
        elif done > run.seen[1]:
            rate = (done - run.seen[1]) / (now - run.seen[0])
            row["eta_s"] = round(max(total - done, 0) / rate)


def _live_status(run: _StageRun) -> str:
    """As recorded; work done in this process (--no-ray) is done before it is recorded; a stage being
    submitted, or run here (the search, a stage without Ray), has no handle yet."""
    if run.record:
        return run.record["status"]
    if isinstance(run.handle, Done):
        error = run.handle.error
        return "ran" if error is None else "unavailable" if isinstance(error, StageUnavailable) else "failed"
    return "running"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def build_report_task(results_dir: Path) -> dict[str, Any]:
    from cifar_core.report import build_report

    return {"html": str(build_report(results_dir)["html"])}


