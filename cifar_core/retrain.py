"""Retraining on every training image, then scoring the test set: the best configs of a search
(report A, section V) or a recipe's own runs without a search (report A's final models, report B's
classifier, and their augmentation ablation).

    from a search   RetrainPlan: the best trial of each of the k best architectures (report A retrained
                    three different models), or with select="trials" the k best trials; each config
                    from RESULTS/tune/<experiment>/top_k.json. Results in RESULTS/retrain/<experiment>/.
    a recipe        RecipePlan: every model of a recipe in cifar_core.protocols x every seed, with the
                    recipe's settings (each with its source in docs/provenance.md), optionally another
                    budget, augmentation preset or precision. Results in RESULTS/recipe/<name>/.

Either way each run is a normal training run (RESULTS/train/<name>/, resumable like any `cifar
train` run) and one unit of work: with Ray, one task per run, all at once, one GPU each where there
are GPUs. A last step writes summary.json, loss.png (training loss per run, report A's figure 3),
test_accuracy.png when the runs scored the test set along the way (report B's figure 2) and
table.md (the report's own table, against the reports' numbers).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cifar_core.atomic import atomic_write_json, atomic_write_text, read_json, read_jsonl
from cifar_core.config import TrainConfig
from cifar_core.data.augment import AUGMENT_PRESETS, resolve_augment
from cifar_core.errors import ConfigError
from cifar_core.execution import InProcess, OnRay, Resources, after, ran_on
from cifar_core.figures import pyplot, save_figure
from cifar_core.names import check_name
from cifar_core.progress import log
from cifar_core.protocols import RECIPES, REPORT_B_STEPS, REPORT_B_TEST_PCT, REPORT_B_TEST_SPREAD, mean_std
from cifar_core.seeds import check_seed

# Which of a search's best trials are retrained. Report A retrained three different architectures,
# the best trial of each; "trials" takes the best trials whatever their architecture.
SELECTIONS = ("architectures", "trials")


def retrain_dir(results_dir: str | Path, experiment: str) -> Path:
    return Path(results_dir) / "retrain" / check_name(experiment, "experiment name")


def recipe_dir(results_dir: str | Path, name: str) -> Path:
    return Path(results_dir) / "recipe" / check_name(name, "recipe result name")


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

    experiment: str
    top_k: int = 3
    epochs: int = 100
    select: str = "architectures"

    @property
    def size(self) -> int:
        return self.top_k

    def out_dir(self, results_dir: str | Path) -> Path:
        return retrain_dir(results_dir, self.experiment)

    def check(self, results_dir: str | Path) -> None:
        selected_configs(results_dir, self.experiment, self.top_k, self.select)

    def spec(self, results_dir: str | Path, index: int, device: str) -> RunSpec:
        """The index-th selected config (0-based): read from top_k.json when the run starts."""
        entry = selected_configs(results_dir, self.experiment, self.top_k, self.select)[index]
        config = TrainConfig.from_dict(entry["train_config"]).with_overrides(
            {"run.full_train": True, "run.epochs": self.epochs, "run.device": device})
        # Named after the trial it retrains, so the same config is one run whichever way it was selected.
        name = f"{self.experiment}-{entry['params']['model.name']}-{entry['trial_id']}"
        return RunSpec(name, config, {"rank": entry["rank"], "params": entry["params"],
                                      "tune_val_acc": entry["best_val_acc"]})

    def settings(self) -> dict[str, Any]:
        return {"kind": "tune", **asdict(self)}


@dataclass(frozen=True)
class RecipePlan:
    """A recipe's runs: its models (all, or those named) x its seeds, with its settings and budget.

    `epochs`/`steps` replace the recipe's budget, `augment` its augmentation (a preset name: the
    ablation uses "none"), `amp` its precision (bf16 autocast on CUDA), `eval_every` how often the
    test set is scored along the way. None keeps the recipe's own value.
    """

    recipe: str
    models: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    epochs: int | None = None
    steps: int | None = None
    augment: str | None = None
    amp: bool | None = None
    eval_every: int | None = None

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r} (known: {', '.join(RECIPES)})")
        for model in self.models:
            RECIPES[self.recipe].model(model)  # an unknown model is a one-line error naming the known ones
        if len(set(self.models)) != len(self.models) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"recipe {self.recipe}: models and seeds must not repeat ({self.models}, {self.seeds})")
        for seed in self.seeds:
            check_seed(seed, "recipe seed")
        for key in ("epochs", "steps", "eval_every"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"recipe {self.recipe}: {key} = {value!r} must be a whole number >= 1")
        if self.amp not in (None, True, False):
            raise ConfigError(f"recipe {self.recipe}: amp = {self.amp!r} must be true or false")
        if self.epochs is not None and self.steps is not None:
            raise ConfigError(f"recipe {self.recipe}: give epochs or steps, not both")
        if self.augment is not None and self.augment not in AUGMENT_PRESETS:
            raise ConfigError(f"unknown augmentation preset {self.augment!r} (known: {', '.join(AUGMENT_PRESETS)})")

    @classmethod
    def from_config(cls, recipe: str, config: dict[str, Any]) -> RecipePlan:
        """From a pipeline profile section, e.g. {"models": [...], "seeds": [0], "epochs": 100}."""
        fields = {"models": tuple, "seeds": tuple, "epochs": None, "steps": None, "augment": None, "amp": None,
                  "eval_every": None}
        unknown = sorted(set(config) - set(fields))
        if unknown:
            raise ConfigError(f"recipe {recipe}: unknown setting {unknown[0]!r} (known: {', '.join(fields)})")
        values = {}
        for key, value in config.items():
            if fields[key] is tuple:
                if not isinstance(value, (list, tuple)):
                    raise ConfigError(f"recipe {recipe}: {key} = {value!r} must be a list")
                value = tuple(value)
            values[key] = value
        return cls(recipe, **values)

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
        default = RecipePlan(self.recipe)._budget_tag()
        tag = self._budget_tag()
        return self._variant() + ("" if tag == default else f"-{tag}")

    def out_dir(self, results_dir: str | Path) -> Path:
        return recipe_dir(results_dir, self.name)

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
                     select: str = "architectures") -> list[dict[str, Any]]:
    """The `top_k` entries of the search's top_k.json to retrain, best first."""
    if top_k < 1:
        raise ConfigError(f"top_k = {top_k} must be >= 1")
    if select not in SELECTIONS:
        raise ConfigError(f"unknown selection {select!r} (known: {', '.join(SELECTIONS)})")
    path = Path(results_dir) / "tune" / check_name(experiment, "experiment name") / "top_k.json"
    if not path.is_file():
        raise ConfigError(f"no tune results at {path}: run `cifar tune --experiment {experiment}` first")
    listed = read_json(path)
    top = listed.get("top_architectures") if select == "architectures" else listed.get("top")
    if not isinstance(top, list):
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
             work: InProcess | OnRay | None = None, resources: Resources | None = None) -> dict[str, Any]:
    """Train (or resume) every run of `plan` and write summary.json, the figures and table.md.

    Each run is one unit of work for `work` (default: this process, one after another; on Ray, one
    task per run, all at once, each with `resources`).
    """
    work = work or InProcess()
    resources = resources or Resources()
    plan.check(results_dir)  # a missing search or a bad recipe fails here, before any task
    runs = submit_runs(work, plan, Path(data_dir), Path(results_dir), resources.device(device), resources)
    return collect(plan, Path(results_dir), *[work.get(run) for run in runs])


def submit_runs(work: InProcess | OnRay, plan: Plan, data_dir: Path, results_dir: Path, device: str,
                resources: Resources, *needed: Any) -> list[Any]:
    """Every run of `plan` as one unit of work with `resources`, all submitted at once; each starts
    only once `needed` (handles of earlier work, e.g. the stages it needs) have finished."""
    return [work.submit(after, resources, train_one, len(needed), *needed, plan, index, data_dir, results_dir,
                        device, work.lock_wait_s)
            for index in range(plan.size)]


def train_one(plan: Plan, index: int, data_dir: Path, results_dir: Path, device: str,
              lock_wait_s: float = 0.0) -> dict[str, Any]:
    """Train the plan's index-th run (0-based) as a normal training run; its row of the summary."""
    from cifar_core.runs import train_run

    start = time.monotonic()
    spec = plan.spec(results_dir, index, device)
    budget = f"{spec.config.run.steps} steps" if spec.config.run.steps else f"{spec.config.run.epochs} epochs"
    log(f"retraining {spec.config.model.name} for {budget} on all training images ({spec.name})")
    run = train_run(spec.config, data_dir, results_dir, run_name=spec.name, resume=True, evaluate_test=True,
                    wait_s=lock_wait_s)
    return {**spec.row, **run_row(run), "run": spec.name, "ran_on": ran_on(device, since=start)}


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """What the summary keeps of a finished training run's summary (and of its last metrics row)."""
    final = read_jsonl(Path(run["run_dir"]) / "metrics.jsonl")[-1]
    return {
        "model": run["model"],
        "optimizer": run["optimizer"],
        "test_top1": run["test"]["top1"],
        "test_top5": run["test"]["top5"],
        "test_loss": run["test"]["loss"],
        "train_acc": final["train_acc"],  # the running accuracy of the last epoch's (augmented) batches
        "final_train_loss": run["final_train_loss"],
        "parameters": run["parameters"],
        "epochs": run["epochs"],
        "steps": run["steps"],
        "test_curve": run.get("test_curve") or [],
        "train_time_s": run["train_time_s"],  # all epochs, across resumes
        "wall_time_s": run["wall_time_s"],  # this invocation
        "synthetic_data": run["synthetic_data"],
        "run_dir": run["run_dir"],
    }


def collect(plan: Plan, results_dir: Path, *rows: dict[str, Any]) -> dict[str, Any]:
    """summary.json, the figures and table.md from the runs' rows."""
    from cifar_core.report.classify_sections import SYNTHETIC_NOTE, plan_table
    from cifar_core.report.markdown import render_table

    out = plan.out_dir(results_dir)
    runs = list(rows)
    summary = {**plan.settings(), "complete": True, "models": runs, "files": {}}
    if isinstance(plan, RecipePlan):
        summary["by_model"] = by_model(runs)
    summary["best"] = max(runs, key=lambda m: m["test_top1"])["model"] if runs else None
    title = plan.experiment if isinstance(plan, RetrainPlan) else plan.name
    summary["files"]["loss"] = plot_training_loss(out / "loss.png", runs, title).name
    if any(r["test_curve"] for r in runs):
        summary["files"]["test_accuracy"] = plot_test_curve(out / "test_accuracy.png", runs, title).name
    lines = [f"# Test accuracy after training on all training images: {out.parent.name}/{out.name}", "",
             render_table(plan_table(out.name, summary))]
    if any(r["synthetic_data"] for r in runs):
        lines += ["", f"**{SYNTHETIC_NOTE}**"]
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    summary["files"]["table"] = "table.md"
    summary["ran_on"] = [r["ran_on"] for r in runs]  # one task per run
    atomic_write_json(out / "summary.json", summary)
    return summary


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
