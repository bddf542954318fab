"""Training throughput: our device-resident loader + engine step vs the torchvision DataLoader + PIL
baseline, same model, batch size and augmentations, side by side in one process. Prints JSON.

    python bench/train_throughput.py --models resdw,cnn6 --batch-size 256 --steps 20

Without --data-dir it writes a synthetic set in the official format to a temp dir (the speed of
either pipeline does not depend on what the pixels show).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import torch

from cifar_core.config import TrainConfig
from cifar_core.data import AUGMENT_PRESETS, make_data, make_torchvision_loader, write_synthetic
from cifar_core.device import resolve_device
from cifar_core.engine import build_model, make_train_step
from cifar_core.models import parameter_count
from cifar_core.optim import build_optimizer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(cfg: TrainConfig, batches, steps: int, warmup: int, device: torch.device) -> float:
    """Images per second over `steps` engine training steps after `warmup` untimed ones."""
    model = build_model(cfg, device)
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    train_step = make_train_step(cfg, model, optimizer, None, device)
    seen, start = 0, None
    iterator = iter(batches)
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            start, seen = time.perf_counter(), 0
        try:
            x, y = next(iterator)
        except StopIteration:
            iterator = iter(batches)
            x, y = next(iterator)
        # The baseline's batches arrive on the host; ours are already on the device.
        train_step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        seen += y.shape[0]
    sync(device)
    return seen / (time.perf_counter() - start)


def bench_model(name: str, root, args, device: torch.device) -> dict:
    cfg = TrainConfig().with_overrides({"model.name": name, "run.device": str(device), "run.batch_size": args.batch_size})
    augment = AUGMENT_PRESETS[args.augment]
    ours_data = make_data(root, batch_size=args.batch_size, augment=augment, device=device, seed=0)
    baseline = make_torchvision_loader(root, "train", batch_size=args.batch_size, augment=augment,
                                       num_workers=args.workers, drop_last=True, pin_memory=device.type == "cuda")
    ours = time_steps(cfg, ours_data.train, args.steps, args.warmup, device)
    base = time_steps(cfg, baseline, args.steps, args.warmup, device)
    return {
        "model": name,
        "parameters": parameter_count(name),
        "ours_images_per_s": round(ours, 1),
        "baseline_images_per_s": round(base, 1),
        "speedup": round(ours / base, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resdw,cnn6", help="comma-separated registered models")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per pipeline")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--augment", default="report-a", choices=sorted(AUGMENT_PRESETS))
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the baseline")
    parser.add_argument("--data-dir", default=None, help="dataset root; default: a temporary synthetic set")
    parser.add_argument("--n-train", type=int, default=5000, help="synthetic training images")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_dir or write_synthetic(tmp, n_train=args.n_train, n_test=500, seed=0)
        results = [bench_model(name, root, args, device) for name in args.models.split(",")]
    print(json.dumps({
        "benchmark": "train_throughput",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "cpu_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "augment": args.augment,
        "steps": args.steps,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
