"""Retraining on every training image, then scoring the test set: a search's best configs, or a recipe.

`RetrainPlan`: the best trial of each of the k best architectures of a search (report A retrained
three different models), or the k best trials. `RecipePlan`: a report's own models x seeds with the
recipe's settings, without a search. Each run is a normal, resumable training run and one unit of
work (on Ray, one task per run, all at once); a last CPU unit writes the summary, figures and table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cifar_core.atomic import atomic_write_json, atomic_write_text, read_jsonl
from cifar_core.config import TrainConfig, load_yaml_mapping
from cifar_core.data.augment_config import AUGMENT_PRESETS, resolve_augment
from cifar_core.device import BF16_AUTOCAST
from cifar_core.errors import ConfigError
from cifar_core.execution.resources import Resources
from cifar_core.execution.runners import InProcess, OnRay, submit_stage
from cifar_core.fields import at_least, check_fields, require, setting
from cifar_core.figures import pyplot, save_figure
from cifar_core.layout import Results
from cifar_core.names import check_name
from cifar_core.progress import log
from cifar_core.protocols import (
    RECIPES,
    REPORT_A_FINAL,
    REPORT_A_SEARCH,
    REPORT_B_STEPS,
    REPORT_B_TEST_PCT,
    REPORT_B_TEST_SPREAD,
    budget_settings,
    data_text,
    mean_std,
    merged_settings,
    protocol_record,
    settings_of,
)
from cifar_core.records import plain
from cifar_core.seeds import check_seed
from cifar_core.summaries import (
    PlanSummary,
    RecipeSummary,
    RetrainSummary,
    SearchSummary,
    TopTrial,
    TopTrials,
    TrainSummary,
)

# Which of a search's best trials are retrained. Report A: "the top 3 models were selected based on
# their validation accuracy"; its three are three architectures, which we read as the best trial of
# each ("architectures", our reading); "trials" takes the best trials whatever their architecture.
SELECTIONS = ("architectures", "trials")
POSITIVE = at_least(1)


def _name(value: str, key: str) -> None:
    check_name(value, key)


# --- what to retrain ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One run of a retraining: its directory name, its config and its identity in the table."""

    name: str  # RESULTS/train/<name>
    config: Any  # a TrainConfig
    row: dict[str, Any]  # what the summary says about it before it has trained


@dataclass(frozen=True)
class RetrainPlan:
    """The best configs of a search: which search, how many, chosen how, for how long."""

    SUMMARY: ClassVar[type[PlanSummary]] = RetrainSummary
    experiment: str = setting("report-a", "The search (`cifar tune --experiment`) whose best configs retrain.",
                              check=_name)
    top_k: int = setting(3, "How many of its best configs (report A: 3).", range=POSITIVE)
    epochs: int = setting(100, "Epochs on all training images (report A: 100).", unit="epochs", range=POSITIVE)
    select: str = setting("architectures", "architectures: the best trial of each of the top-k architectures "
                          "(our reading of report A's top 3); trials: the top-k trials.", choices=SELECTIONS)

    @property
    def size(self) -> int:
        return self.top_k

    def out_dir(self, results_dir: str | Path) -> Path:
        return Results(results_dir).retrain(self.experiment)

    def check(self, results_dir: str | Path) -> None:
        check_fields(self, "retrain.")
        selected_configs(results_dir, self.experiment, self.top_k, self.select)

    def spec(self, results_dir: str | Path, index: int, device: str) -> RunSpec:
        """The index-th selected config (0-based): read from top_k.json when the run starts."""
        entry = selected_configs(results_dir, self.experiment, self.top_k, self.select)[index]
        config = TrainConfig.from_dict(entry.train_config).with_overrides(
            {"run.full_train": True, "run.epochs": self.epochs, "run.device": device})
        # Named after the trial it retrains, so the same config is one run whichever way it was selected.
        name = f"{self.experiment}-{entry.params['model.name']}-{entry.trial_id}"
        return RunSpec(name, config, {"rank": entry.rank, "params": entry.params, "tune_val_acc": entry.best_val_acc})

    def settings(self) -> dict[str, Any]:
        return {"kind": "tune", **asdict(self)}


@dataclass(frozen=True)
class RecipeSettings:
    """How a recipe's runs differ from the recipe (cifar_core.protocols): None keeps its own."""

    models: tuple[str, ...] | None = setting(None, "Some of the recipe's models (e.g. cnn7).",
                                             none_means="all the recipe's models")
    seeds: tuple[int, ...] | None = setting(None, "Seeds; each model trains once per seed.", check=check_seed,
                                            none_means="the recipe's: report-a 0, report-b 0, 1, 2")
    epochs: int | None = setting(None, "Epochs on all training images.", unit="epochs", range=POSITIVE,
                                 none_means="the recipe's budget; a search's retrain: 100")
    steps: int | None = setting(None, "Optimisation steps instead of epochs.", unit="steps", range=POSITIVE,
                                none_means="the recipe's budget")
    augment: str | None = setting(None, "Another augmentation preset (`none`: the ablation).",
                                  choices=tuple(AUGMENT_PRESETS), none_means="the recipe's")
    amp: bool | None = setting(None, "bf16 autocast on GPUs.", none_means="the recipe's: float32")
    eval_every: int | None = setting(None, "Score the test set every N steps (a curve over training).",
                                     unit="steps", range=POSITIVE, none_means="the recipe's: report-b 500")


@dataclass(frozen=True)
class RecipePlan(RecipeSettings):
    """A recipe's runs: its models (all, or those named) x its seeds, with its settings and budget."""

    SUMMARY: ClassVar[type[PlanSummary]] = RecipeSummary
    recipe: str = setting("report-a", "A report's recipe.", choices=tuple(RECIPES))

    def __post_init__(self) -> None:
        check_fields(self, f"recipe {self.recipe}: " if self.recipe in RECIPES else "")
        for model in self.models or ():
            RECIPES[self.recipe].model(model)  # an unknown model is a one-line error naming the known ones
        require(self.epochs is None or self.steps is None, "steps", self.steps, "unset when epochs is given")

    @property
    def definition(self):
        return RECIPES[self.recipe]

    @property
    def model_names(self) -> tuple[str, ...]:
        models = self.models or tuple(m.overrides["model.name"] for m in self.definition.models)
        return tuple(self.definition.model(m).overrides["model.name"] for m in models)

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds or self.definition.seeds

    @property
    def size(self) -> int:
        return len(self.model_names) * len(self.seed_list)

    def budget(self) -> dict[str, int]:
        """{"epochs": E} or {"steps": S}: what each run trains for."""
        if self.epochs is not None:
            return {"epochs": self.epochs}
        if self.steps is not None:
            return {"steps": self.steps}
        return self.definition.budget

    def _budget_tag(self) -> str:
        return "".join(f"{'e' if key == 'epochs' else 's'}{value}" for key, value in self.budget().items())

    def _variant(self) -> str:
        parts = [self.recipe]
        if self.augment is not None:
            parts.append(f"augment-{self.augment}")
        if self.amp is not None and self.amp != self.definition.shared["run.amp"]:
            parts.append("bf16" if self.amp else "fp32")
        return "-".join(parts)

    @property
    def name(self) -> str:
        """The summary's directory: the recipe, its variant and, when it is not the recipe's own,
        the budget (`report-a`, `report-a-augment-none`, `report-b-s20`)."""
        default = RecipePlan(recipe=self.recipe)._budget_tag()
        tag = self._budget_tag()
        return self._variant() + ("" if tag == default else f"-{tag}")

    def out_dir(self, results_dir: str | Path) -> Path:
        return Results(results_dir).recipe(self.name)

    def check(self, results_dir: str | Path) -> None:
        self.spec(results_dir, 0, "cpu")  # builds (and so validates) a config before any task

    def spec(self, results_dir: str | Path, index: int, device: str) -> RunSpec:
        model = self.definition.model(self.model_names[index // len(self.seed_list)])
        seed = self.seed_list[index % len(self.seed_list)]
        overrides = {**self.definition.shared, **model.overrides, "run.seed": seed, "run.device": device}
        budget = self.budget()
        overrides.update({"run.epochs": budget.get("epochs"), "run.steps": budget.get("steps")})
        if self.augment is not None:
            overrides.update({f"augment.{k}": v for k, v in resolve_augment(self.augment).to_dict().items()})
        if self.amp is not None:
            overrides["run.amp"] = self.amp
        if self.eval_every is not None:
            overrides["run.eval_test_every"] = self.eval_every
        config = TrainConfig().with_overrides(overrides, none_clears=True)
        # The budget is in the name: a run of another length is another run, never an extension of this one.
        name = f"{self._variant()}-{model.overrides['model.name']}-{self._budget_tag()}-seed{seed}"
        return RunSpec(name, config, {"label": model.label, "seed": seed})

    def settings(self) -> dict[str, Any]:
        return {"kind": "recipe", "recipe": self.recipe, "name": self.name, "protocol": self.definition.protocol.key,
                "seeds": list(self.seed_list), "budget": self.budget(),
                "augment": self.augment, "amp": self.definition.shared["run.amp"] if self.amp is None else self.amp}


Plan = RetrainPlan | RecipePlan


def selected_configs(results_dir: str | Path, experiment: str, top_k: int,
                     select: str = "architectures") -> list[TopTrial]:
    """The `top_k` entries of the search's top_k.json to retrain, best first; only a search that
    finished (an interrupted one would retrain whatever had run so far)."""
    if select not in SELECTIONS:
        raise ConfigError(f"unknown selection {select!r} (known: {', '.join(SELECTIONS)})")
    folder = Results(results_dir).tune_experiment(experiment)
    path = TopTrials.file_in(folder)
    if not path.is_file():
        raise ConfigError(f"no tune results at {path}: run `cifar tune --experiment {experiment}` first")
    summary = SearchSummary.read_in(folder) if SearchSummary.file_in(folder).is_file() else None
    if summary is None or not summary.complete:
        counts = ", ".join(f"{n} {status}" for status, n in ((summary and summary.status_counts) or {}).items())
        raise ConfigError(f"the search {experiment} has not finished ({counts or 'unknown'}): run `cifar tune "
                          f"--experiment {experiment}` again to complete it before retraining its best configs")
    listed = TopTrials.read(path)
    top = listed.top_architectures if select == "architectures" else listed.top
    if top is None:
        raise ConfigError(f"{path} has no {'top_architectures' if select == 'architectures' else 'top'} list: "
                          f"rerun `cifar tune --experiment {experiment}` to re-summarise the search")
    if top_k > len(top):
        what = "architectures" if select == "architectures" else "configs"
        raise ConfigError(
            f"{path} lists {len(top)} {what}, fewer than --top-k {top_k}: rerun "
            f"`cifar tune --experiment {experiment} --top-k {top_k}` (a finished search is only re-ranked)"
            + (", or retrain the best trials whatever their architecture (--select trials)" if select == "architectures" else "")
        )
    return top[:top_k]


# --- running it -----------------------------------------------------------------------------------
def retrain_from_tune(experiment: str, data_dir: str | Path, results_dir: str | Path, top_k: int = 3,
                      epochs: int = 100, device: str = "auto", select: str = "architectures",
                      work: InProcess | OnRay | None = None, resources: Resources | None = None) -> dict[str, Any]:
    """Retrain (or resume) the top configs of a search; see `run_plan`."""
    return run_plan(RetrainPlan(experiment, top_k, epochs, select), data_dir, results_dir, device, work, resources)


def run_plan(plan: Plan, data_dir: str | Path, results_dir: str | Path, device: str = "auto",
             work: InProcess | OnRay | None = None, resources: Resources | None = None,
             name: str = "retrain") -> dict[str, Any]:
    """Train (or resume) every run of `plan` and write its summary, the figures and table.md.

    Each run is one unit of work for `work` (default: this process, one after another; on Ray, one
    task per run, all at once, each with `resources`).
    """
    work = work or InProcess()
    plan.check(results_dir)  # a missing search or a bad recipe fails here, before any task
    return work.get(submit_plan(work, plan, Path(data_dir), Path(results_dir), device, resources or Resources(),
                                name=name))


def submit_plan(work: InProcess | OnRay, plan: Plan, data_dir: Path, results_dir: Path, device: str,
                resources: Resources, needs: dict[str, Any] | None = None, name: str = "retrain") -> Any:
    """Every run of `plan` as one unit of work with `resources`, all at once, each started once
    `needs` exist; then one CPU unit that tables them. Returns the table's handle."""
    runs = {f"run{index}": submit_stage(work, train_one, resources=resources, device=device, needs=needs,
                                        name=f"{name}:{index}", plan=plan, index=index, data_dir=data_dir,
                                        results_dir=results_dir, lock_wait_s=work.lock_wait_s)
            for index in range(plan.size)}
    return submit_stage(work, collect, resources=Resources(cpus=1), needs=runs, name=f"{name}:table", plan=plan,
                        results_dir=results_dir)


def train_one(plan: Plan, index: int, data_dir: Path, results_dir: Path, device: str,
              lock_wait_s: float = 0.0) -> dict[str, Any]:
    """Train the plan's index-th run (0-based) as a normal training run; its row of the summary."""
    from cifar_core.runs import train_run

    spec = plan.spec(results_dir, index, device)
    budget = f"{spec.config.run.steps} steps" if spec.config.run.steps else f"{spec.config.run.epochs} epochs"
    log(f"retraining {spec.config.model.name} for {budget} on all training images ({spec.name})")
    run = train_run(spec.config, data_dir, results_dir, run_name=spec.name, resume=True, evaluate_test=True,
                    wait_s=lock_wait_s)
    return {**spec.row, **run_row(TrainSummary.parse(run)), "run": spec.name}


def run_row(run: TrainSummary) -> dict[str, Any]:
    """What the summary keeps of a finished training run's summary (and of its last metrics row and
    config): its scores, how it computed them, to be set beside the reports' numbers, and where it ran."""
    run_dir = Path(run.run_dir)
    final = read_jsonl(run_dir / "metrics.jsonl")[-1]
    return {
        "model": run.model,
        "optimizer": run.optimizer,
        "test_top1": run.test.top1,
        "test_top5": run.test.top5,
        "test_loss": run.test.loss,
        "train_acc": final["train_acc"],  # the running accuracy of the last epoch's (augmented) batches
        "final_train_loss": run.final_train_loss,
        "parameters": run.parameters,
        "epochs": run.epochs,
        "steps": run.steps,
        "test_curve": plain(run.test_curve or []),
        "train_time_s": run.train_time_s,  # all epochs, across resumes
        "wall_time_s": run.wall_time_s,  # this invocation
        "synthetic_data": run.synthetic_data,
        "data_digest": run.data_digest,
        "device": run.device,
        "precision": run.precision,  # what the run computed in, as it recorded it
        "run_dir": run.run_dir,
        "ran_on": plain(run.ran_on),  # the run's unit, as its summary recorded it
    }


def collect(plan: Plan, results_dir: Path, needed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The summary (the plan's PlanSummary), the figures and table.md from the runs' rows (`needed`:
    {"run<i>": row}); returns the summary as written."""
    from cifar_core.report.classify_sections import SYNTHETIC_NOTE, plan_table
    from cifar_core.report.markdown import render_table

    out = plan.out_dir(results_dir)
    runs = [needed[f"run{index}"] for index in range(plan.size)]
    title = plan.experiment if isinstance(plan, RetrainPlan) else plan.name
    files = {"loss": plot_training_loss(out / "loss.png", runs, title).name}
    if any(r["test_curve"] for r in runs):
        files["test_accuracy"] = plot_test_curve(out / "test_accuracy.png", runs, title).name
    summary = plan.SUMMARY.parse({
        **plan.settings(), "complete": True, "models": runs, "files": files, **protocol_fields(plan, runs),
        **({"by_model": by_model(runs)} if isinstance(plan, RecipePlan) else {}),
        "best": max(runs, key=lambda m: m["test_top1"])["model"] if runs else None,
        "ran_on": [place for r in runs for place in r["ran_on"] or []]})  # one task per run
    lines = [f"# Test accuracy after training on all training images: {out.parent.name}/{out.name}", "",
             render_table(plan_table(out.name, summary))]
    if any(r["synthetic_data"] for r in runs):
        lines += ["", f"**{SYNTHETIC_NOTE}**"]
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    summary.files["table"] = "table.md"
    atomic_write_json(summary.file_in(out), summary.to_json())
    return summary.to_json()


def protocol_fields(plan: Plan, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each run beside the protocol it is set beside (a recipe's own; report A's final models for a
    search's best configs, whose searched values are the search's finding): its settings as compared and
    its departures, into its row; the summary's:
    the settings of each model, or each retrained trial ("a / b" where they differ), and every departure
    of any run."""
    recipe = isinstance(plan, RecipePlan)
    compared = (plan.definition.protocol,) if recipe else (REPORT_A_FINAL, REPORT_A_SEARCH)
    shared = {**budget_settings(plan.budget()), "seeds": plan.seed_list} if recipe else \
        {**budget_settings({"epochs": plan.epochs}), "top_k": plan.top_k, "select": plan.select}
    each = {}
    for r in runs:
        config = TrainConfig.from_dict(load_yaml_mapping(Path(r["run_dir"]) / "config.yaml"))
        searched = r.get("params") or {}  # what the search chose for a trial is its finding, not a departure
        actual = {**{k: v for k, v in settings_of(config.to_dict()).items() if k not in searched}, **shared,
                  "run.amp": r["precision"] == BF16_AUTOCAST, "data": data_text(r["data_digest"])}
        r.update(protocol_record(actual, *compared, model=r["model"] if recipe else None))
        each.setdefault(r["model"] if recipe else r["run"], r["protocol_settings"])  # a recipe's seeds share one
    return {"protocol": compared[0].key, "protocol_settings": merged_settings(each.values()),
            "protocol_departures": list(dict.fromkeys(line for r in runs for line in r["protocol_departures"]))}


@dataclass
class _Group:
    label: str
    model: str
    rows: list[dict[str, Any]] = field(default_factory=list)


def by_model(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model of a recipe: mean and standard deviation over its seeds."""
    groups: dict[str, _Group] = {}
    for r in runs:
        groups.setdefault(r["model"], _Group(r["label"], r["model"])).rows.append(r)
    out = []
    for g in groups.values():
        entry = {"label": g.label, "model": g.model, "seeds": [r["seed"] for r in g.rows],
                 "parameters": g.rows[0]["parameters"]}
        for key in ("test_top1", "test_top5", "train_acc", "final_train_loss"):
            entry[f"{key}_mean"], entry[f"{key}_std"] = mean_std(r[key] for r in g.rows)
        out.append(entry)
    return out


def _label(m: dict[str, Any]) -> str:
    who = f"rank {m['rank']}: {m['model']}" if "rank" in m else f"{m['label']} seed {m['seed']}"
    return f"{who} ({m['test_top1'] * 100:.1f}% test)"


def plot_training_loss(path: Path, runs: list[dict[str, Any]], title: str) -> Path:
    """Training loss per epoch of each run (no validation: all images train); report A's figure 3."""
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for m in runs:
        history = read_jsonl(Path(m["run_dir"]) / "metrics.jsonl")
        ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], marker="o", ms=3, label=_label(m))
    ax.set(xlabel="epoch", ylabel="training cross-entropy loss", title=f"{title}: training on all images")
    if runs:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_test_curve(path: Path, runs: list[dict[str, Any]], title: str) -> Path:
    """Test accuracy over the optimisation steps, each run, with report B's 56.9 ± 4.6 at its
    10,000 steps (report B's figure 2)."""
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for m in runs:
        curve = m["test_curve"]
        ax.plot([p["step"] for p in curve], [100 * p["top1"] for p in curve], marker="o", ms=2, label=_label(m))
    ax.errorbar([REPORT_B_STEPS], [REPORT_B_TEST_PCT], yerr=[REPORT_B_TEST_SPREAD], fmt="*", ms=10, color="tab:red",
                capsize=4, label=f"report B: {REPORT_B_TEST_PCT} ± {REPORT_B_TEST_SPREAD}% at {REPORT_B_STEPS:,} steps")
    ax.set(xlabel="optimisation step", ylabel="test top-1 accuracy (%)", title=f"{title}: test accuracy over training")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
