"""Our FID against pytorch-fid's own command line on the same images, side by side.

    python bench/fid_speed.py [--n 200] [--frechet-n 2500]

Builds a synthetic test split of --n images, writes it and a noised copy as two PNG folders, and
a random weights file with pytorch-fid's keys in a private TORCH_HOME (the real file cannot be
downloaded here; both tools load the same one). Then, each as its own process, timed wall-clock:

    pytorch-fid    python -m pytorch_fid --dims 2048 REAL_PNGS FAKE_PNGS
    ours (cold)    cifar fid --fake FAKE_PNGS (the real side computed and cached)
    ours (cached)  the same again (the real side read from the cache)

and the Frechet step alone on full-rank 2048-d statistics: ours vs scipy's sqrtm as pytorch-fid
calls it. Prints one JSON object with the scores, times, speed-ups and pass/fail checks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cifar_core.data import load_split, write_synthetic  # noqa: E402
from cifar_core.fid import activation_statistics, frechet_distance, write_random_weights  # noqa: E402

TARGETS = {"fid_rel_diff": 1e-3, "speedup_both_sides": 1.5, "speedup_cached_reference": 3.0, "speedup_frechet": 5.0}


def write_pngs(folder: Path, images: np.ndarray) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    return folder


def timed_run(command: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def run_pytorch_fid(real: Path, fake: Path, env: dict) -> dict:
    seconds, out = timed_run([sys.executable, "-m", "pytorch_fid", "--dims", "2048", "--device", "cpu",
                              str(real), str(fake)], env)
    return {"fid": float(re.search(r"FID:\s*(\S+)", out).group(1)), "wall_s": seconds}


def run_ours(fake: Path, data: Path, weights: Path, results: Path, name: str, env: dict) -> dict:
    cifar = str(Path(sys.executable).with_name("cifar"))
    seconds, out = timed_run([cifar, "fid", "--fake", str(fake), "--data-dir", str(data), "--weights", str(weights),
                              "--results-dir", str(results), "--device", "cpu", "--name", name, "--json"], env)
    summary = json.loads(out)
    return {"fid": summary["fid"], "wall_s": seconds, "reference_from_cache": summary["real"]["from_cache"],
            "seconds": {k: round(v, 2) for k, v in summary["seconds"].items()}}


def frechet_step(n: int, d: int = 2048, seed: int = 0) -> dict:
    """Frechet distance alone on full-rank statistics (n > d samples), ours vs scipy sqrtm."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(seed)
    mixing = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    mu1, sigma1 = activation_statistics((rng.standard_normal((n, d)) @ mixing).astype(np.float32))
    mu2, sigma2 = activation_statistics((1.2 * rng.standard_normal((n, d)) @ mixing + 0.05).astype(np.float32))
    start = time.perf_counter()
    ours = frechet_distance(mu1, sigma1, mu2, sigma2)
    ours_s = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        theirs = float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
        theirs_s = time.perf_counter() - start
    return {"dims": d, "samples": n, "ours_s": ours_s, "scipy_sqrtm_s": theirs_s,
            "rel_diff": abs(ours - theirs) / abs(theirs), "speedup": theirs_s / ours_s}


def machine() -> dict:
    import torch

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="images on each side")
    parser.add_argument("--frechet-n", type=int, default=2500, help="samples behind the 2048-d Frechet test")
    parser.add_argument("--noise", type=int, default=40, help="uniform pixel noise of the fake copy")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fid-bench-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "TORCH_HOME": str(tmp / "torch"), "PYTHONPATH": str(REPO)}
        weights = write_random_weights(tmp / "torch" / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth")
        write_synthetic(tmp / "data", n_train=1, n_test=args.n, seed=0)
        images = load_split(tmp / "data", "test").images
        noise = np.random.default_rng(1).integers(-args.noise, args.noise + 1, images.shape)
        real = write_pngs(tmp / "real", images)
        fake = write_pngs(tmp / "fake", np.clip(images.astype(np.int64) + noise, 0, 255).astype(np.uint8))

        theirs = run_pytorch_fid(real, fake, env)
        cold = run_ours(fake, tmp / "data", weights, tmp / "results", "cold", env)
        cached = run_ours(fake, tmp / "data", weights, tmp / "results", "cached", env)
    frechet = frechet_step(args.frechet_n)

    report = {
        "machine": machine(),
        "n_images_each_side": args.n,
        "pytorch_fid": theirs,
        "ours_cold": cold,
        "ours_cached_reference": cached,
        "fid_rel_diff": abs(cold["fid"] - theirs["fid"]) / abs(theirs["fid"]),
        "speedup_both_sides": theirs["wall_s"] / cold["wall_s"],
        "speedup_cached_reference": theirs["wall_s"] / cached["wall_s"],
        "frechet": frechet,
    }
    measured = {**report, "speedup_frechet": frechet["speedup"]}
    report["checks"] = {
        key: (measured[key] <= limit if key == "fid_rel_diff" else measured[key] >= limit)
        for key, limit in TARGETS.items()
    }
    report["checks"]["frechet_rel_diff"] = frechet["rel_diff"] <= 1e-3
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
