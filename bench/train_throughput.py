"""Training throughput: our device-resident loader + engine step vs the torchvision DataLoader + PIL
baseline, same model, batch size, augmentations and batch layout, interleaved in one process.
Prints JSON with the median and spread of each side and of the speedup.

    python bench/train_throughput.py --models resdw,cnn6 --batch-size 256 --steps 8 --repeats 3

One measurement is one whole epoch of `--steps` batches (the synthetic training set holds exactly
that many), after `--warmup` untimed steps: ours pays for building the epoch's augmented buffer
inside it, the baseline for its workers' PIL work and the copy to the device. Repeats alternate
which side goes first, so a machine that gets busier or quieter affects both alike.
Without --data-dir it writes a synthetic set in the official format to a temp dir (the speed of
either pipeline does not depend on what the pixels show).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch

from cifar_core.config import TrainConfig
from cifar_core.data import AUGMENT_PRESETS, make_torchvision_loader, write_synthetic
from cifar_core.device import resolve_device
from cifar_core.engine import build_model, make_train_step, precision_of
from cifar_core.models import parameter_count
from cifar_core.optim import build_optimizer
from cifar_core.runs import data_for


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_s(cfg: TrainConfig, epoch_of_batches, warmup: int, device: torch.device) -> float:
    """Images per second over one epoch of engine training steps, after `warmup` untimed ones.

    `epoch_of_batches(e)` iterates epoch e's batches.
    """
    precision = precision_of(cfg)
    model = build_model(cfg, precision)
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    train_step = make_train_step(cfg, model, optimizer, None, precision)
    for i, (x, y) in enumerate(epoch_of_batches(0)):
        if i == warmup:
            break
        train_step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    sync(device)
    start, seen = time.perf_counter(), 0
    for x, y in epoch_of_batches(1):
        # The baseline's batches arrive on the host; ours are already on the device.
        train_step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        seen += y.shape[0]
    sync(device)
    return seen / (time.perf_counter() - start)


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "all": [round(v, 2) for v in values]}


def bench_model(name: str, root, args, device: torch.device) -> dict:
    cfg = TrainConfig().with_overrides({
        "model.name": name, "run.device": str(device), "run.batch_size": args.batch_size,
        "run.full_train": True,  # the whole synthetic set is one epoch of --steps batches
    })
    cfg = cfg.with_overrides({f"augment.{k}": v for k, v in AUGMENT_PRESETS[args.augment].to_dict().items()})
    ours_loader = data_for(cfg, root, precision_of(cfg)).train  # the training layout: channels_last, bf16 under CUDA autocast
    baseline = make_torchvision_loader(root, "train", batch_size=args.batch_size, augment=cfg.augment,
                                       num_workers=args.workers, drop_last=True, pin_memory=device.type == "cuda")

    def baseline_epoch(epoch: int):
        return iter(baseline)

    # The ceiling: the same steps on an epoch of batches made before the clock starts (no input
    # pipeline at all). Distinct batches, not one batch repeated: a repeated one trains differently.
    prebuilt = [(x.clone(), y.clone()) for x, y in ours_loader.epoch(1)] if args.model_only else []

    def model_only_epoch(epoch: int):
        return iter(prebuilt)

    sides = {"ours": ours_loader.epoch, "baseline": baseline_epoch}
    if args.model_only:
        sides["model_only"] = model_only_epoch
    measured = {side: [] for side in sides}
    for repeat in range(args.repeats):
        order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
        for side in order:
            measured[side].append(images_per_s(cfg, sides[side], args.warmup, device))
    ratios = [o / b for o, b in zip(measured["ours"], measured["baseline"], strict=True)]
    result = {
        "model": name,
        "parameters": parameter_count(name),
        **{f"{side}_images_per_s": spread(values) for side, values in measured.items()},
        "speedup": spread(ratios),  # per repeat: ours / baseline of the same round
    }
    if args.model_only:
        # What any input pipeline could gain at most: the model's own speed over the baseline's.
        result["ceiling"] = spread([m / b for m, b in zip(measured["model_only"], measured["baseline"], strict=True)])
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tinycnn,resdw,cnn6,cnn7", help="comma-separated registered models")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per measurement (one epoch)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements per side (>= 3)")
    parser.add_argument("--augment", default="report-a", choices=sorted(AUGMENT_PRESETS))
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the baseline")
    parser.add_argument("--data-dir", default=None, help="dataset root; default: a temporary synthetic set")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model-only", action="store_true",
                        help="also time the steps on one fixed batch: the ceiling of any input pipeline")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.steps <= args.warmup:
        parser.error("need --repeats >= 1 and --steps > --warmup")

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_dir or write_synthetic(tmp, n_train=args.steps * args.batch_size, n_test=100, seed=0)
        results = [bench_model(name, root, args, device) for name in args.models.split(",")]
    report = {
        "benchmark": "train_throughput",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "cpu_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "augment": args.augment,
        "steps_per_measurement": args.steps,
        "repeats": args.repeats,
        "baseline_workers": args.workers,
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return report


if __name__ == "__main__":
    main()
