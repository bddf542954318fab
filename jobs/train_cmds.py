"""`cifar train` and `cifar evaluate`: parse options into a TrainConfig and call cifar_core.runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cifar_core.config import TrainConfig, resolve_config
from cifar_core.data.augment_config import AUGMENT_PRESETS
from jobs.options import data_dir_option, device_option, json_option, results_dir_option, setting_options

# Every TrainConfig setting as an option defaulting to None (None = not given: the file's or the
# dataclass's value stands); --help shows the dataclass's defaults.
train_options = setting_options(TrainConfig())


def _epoch_row(out):
    header = f"{'epoch':>5} {'step':>7} {'train_loss':>10} {'train_acc':>9} {'val_loss':>8} {'val_acc':>7} {'lr':>9} {'time_s':>7}"
    printed = []

    def on_epoch(m: dict, _checkpoint: dict) -> None:
        if not printed:
            click.echo(header, file=out)
            printed.append(True)
        val_loss = "-" if m["val_loss"] is None else f"{m['val_loss']:.4f}"
        val_acc = "-" if m["val_acc"] is None else f"{m['val_acc']:.4f}"
        click.echo(
            f"{m['epoch']:>5} {m['step']:>7} {m['train_loss']:>10.4f} {m['train_acc']:>9.4f} {val_loss:>8} "
            f"{val_acc:>7} {m['lr']:>9.2e} {m['epoch_time_s']:>7.1f}",
            file=out,
        )

    return on_epoch


@click.command("train")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML file whose keys mirror these options (or a saved config.yaml).")
@click.option("--augment", type=click.Choice(sorted(AUGMENT_PRESETS)), default=None,
              help="Augmentation preset; the augmentation options below refine it.  [default: report-a]")
@train_options
@click.option("--run-name", default=None, help="Run directory name under RESULTS/train/.  [default: MODEL-OPTIMIZER-seedN]")
@click.option("--resume", is_flag=True,
              help="Continue the run from its last checkpoint, at the step it reached (start it if there is none).")
@click.option("--evaluate-test", is_flag=True, help="Score the test set at the end (into summary.json).")
@data_dir_option
@results_dir_option
@json_option
def train_cmd(config_file, augment, run_name, resume, evaluate_test, data_dir, results_dir, as_json, **options):
    """Train one model on CIFAR-100 (40,000/10,000 train/validation split, or --full-train).

    One process per run directory (a second one fails at once, naming the holder). On SIGTERM the
    run checkpoints the step it is on and exits with status 143; --resume continues from there.
    """
    from cifar_core.runs import train_run

    cfg = resolve_config(config_file, augment, options)
    table_out = sys.stderr if as_json else sys.stdout
    # SIGTERM raises Preempted after a checkpoint; jobs/cli.py turns it into exit status 143.
    summary = train_run(cfg, data_dir, results_dir, run_name, resume, _epoch_row(table_out), evaluate_test)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    best = summary["best_val_acc"]
    click.echo(f"model {summary['model']} ({summary['parameters']:,} parameters) on {summary['device']}")
    if best is not None:
        click.echo(f"best validation accuracy {best:.4f}, final {summary['final_val_acc']:.4f}")
    if "test" in summary:
        click.echo(f"test top-1 {summary['test']['top1']:.4f}, top-5 {summary['test']['top5']:.4f}")
    if summary["synthetic_data"]:
        click.echo("note: trained on the SYNTHETIC stand-in dataset, not real CIFAR-100")
    click.echo(f"results: {summary['run_dir']}")


@click.command("evaluate")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="A checkpoint (last.pt or best.pt) from `cifar train`.")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@data_dir_option
@device_option
@json_option
def evaluate_cmd(checkpoint, split, data_dir, device, as_json):
    """Score a checkpoint: top-1, top-5 and per-class accuracy.

    The scores are recorded in the run's summary.json (under "evaluations") only for the run's own
    last.pt or best.pt on the data it trained on; otherwise the output says why not.
    """
    from cifar_core.runs import evaluate_checkpoint

    scores = evaluate_checkpoint(checkpoint, data_dir, device, split)
    if as_json:
        per_class = dict(zip(scores.pop("class_names"), scores.pop("per_class"), strict=True))
        click.echo(json.dumps({**scores, "per_class": per_class}, indent=2, sort_keys=True))
        return
    click.echo(f"{scores['model']} epoch {scores['epoch']} on {split} ({scores['n']} images)")
    click.echo(f"top-1 {scores['top1']:.4f}  top-5 {scores['top5']:.4f}  loss {scores['loss']:.4f}")
    ranked = sorted(zip(scores["per_class"], scores["class_names"], strict=True))
    click.echo("worst classes: " + ", ".join(f"{n} {a:.2f}" for a, n in ranked[:5]))
    click.echo("best classes:  " + ", ".join(f"{n} {a:.2f}" for a, n in ranked[-5:][::-1]))
    if scores["recorded_in"]:
        click.echo(f"recorded in {scores['recorded_in']}")
    else:
        click.echo(f"not recorded: {scores['not_recorded']}")
