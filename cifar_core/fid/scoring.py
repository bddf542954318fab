"""What `cifar fid` does: score generated images against a CIFAR-100 split, into RESULTS/fid/<name>/.

Two protocols for a GAN run (docs/provenance.md): report B's (one fixed snapshot, 10,000 samples, the
test set) and ours (`--select-best`: every snapshot ranked against the TRAINING split, only the chosen
one scored on the test split, with noise the selection never saw), because choosing by test score and
reporting that score would flatter it. Each summary records its `protocol` and every way it departs
from report B's (`protocol_departures`: the step, the images, the Inception weights, the data, ...).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cifar_core import protocols
from cifar_core.atomic import file_digest
from cifar_core.data import data_digest_or_none
from cifar_core.device import resolve_device
from cifar_core.errors import CifarError
from cifar_core.fid.features import FeatureExtractor, load_images, load_inception
from cifar_core.fid.inception import FEATURE_DIMS, FEATURE_LAYER
from cifar_core.fid.stats import FidStatistics, fid_of_images, reference_statistics
from cifar_core.gan.sample import generate, load_generator
from cifar_core.names import check_name
from cifar_core.progress import log
from cifar_core.protocols import REPORT_B_FID_IMAGES, REPORT_B_FID_STEP
from cifar_core.resultdir import Opened, Request, ResultDir
from cifar_core.seeds import check_seed, derive_seed
from cifar_core.snapshots import step_file, step_files, step_of
from cifar_core.summaries import ComparedScore, FidSummary

DEFAULT_N = REPORT_B_FID_IMAGES  # generated images per score (per snapshot when selecting), as report B
SELECT_ON = "train"  # the split --select-best chooses on: never the split it reports


def fid_request(fake: Path | None = None, checkpoint: Path | None = None, run_dir: Path | None = None, *,
                split: str = "test", n: int | None = None, seed: int = 0, batch_norm: str = "running") -> dict:
    """What a score measures: the input, the real split, how many generated images (None: every
    image of a folder or .npz) and, for a generator, its noise seed and BatchNorm mode. A result
    directory holds one request; measuring another way never replaces it."""
    if run_dir is not None:
        kind, path, n = "run", run_dir, n or DEFAULT_N
    elif checkpoint is not None:
        kind, path, n = "checkpoint", checkpoint, n or DEFAULT_N
    else:
        kind, path = ("npz" if Path(fake).suffix == ".npz" else "folder"), fake
    request = {"input": kind, "path": str(Path(path).resolve()), "split": split, "n": n}
    if kind == "run":
        request["select_on"] = SELECT_ON
    if kind in ("run", "checkpoint"):
        request.update(seed=seed, batch_norm=batch_norm)
    return request


def default_name(fake: Path | None = None, checkpoint: Path | None = None, run_dir: Path | None = None, *,
                 split: str = "test", n: int | None = None, seed: int = 0, batch_norm: str = "running") -> str:
    """The input's name (the folder or file stem, `<run>-<step>` for a checkpoint, `<run>-select`),
    then each setting that differs from `cifar fid`'s defaults, e.g. `dcgan-step_46000-train-n500-seed3`."""
    request = fid_request(fake, checkpoint, run_dir, split=split, n=n, seed=seed, batch_norm=batch_norm)
    path = Path(request["path"])
    if run_dir is not None:
        name = f"{path.name}-select"
    elif checkpoint is not None:
        run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        name = f"{run.name}-{path.stem}"
    else:
        name = path.stem if request["input"] == "npz" else path.name
    default_n = DEFAULT_N if request["input"] in ("run", "checkpoint") else None
    if split != "test":
        name += f"-{split}"
    if request["n"] != default_n:
        name += f"-n{request['n']}"
    if request.get("seed", 0) != 0:
        name += f"-seed{seed}"
    if request.get("batch_norm", "running") != "running":
        name += f"-bn-{batch_norm}"
    return check_name(name, "the FID result name taken from the input (pass --name to choose one):")


def snapshot_file(run_dir: Path, step: int = REPORT_B_FID_STEP) -> Path:
    """RUN_DIR/checkpoints/step_<step>.pt, where a GAN run keeps its snapshot of that step."""
    return Path(run_dir) / "checkpoints" / step_file(step, ".pt")


def snapshot_path(run_dir: Path, step: int = REPORT_B_FID_STEP) -> Path:
    """The snapshot report B's protocol scores (step 46,000), which must exist: a one-line error
    naming the steps the run kept when it has no such snapshot."""
    path = snapshot_file(run_dir, step)
    if not path.is_file():
        kept = ", ".join(f"{s:,}" for s, _ in step_files(path.parent, ".pt")) or "none"
        raise CifarError(f"no snapshot {path} (report B's protocol scores one fixed step); the run kept steps: {kept}")
    return path


def require_official_reference(data_dir: Path) -> None:
    """A generator's FID is set beside report B's 46.85: only against the official test set."""
    from cifar_core.data import data_digest
    from cifar_core.data.identity import require_official

    require_official(data_digest(data_dir), data_dir, "an FID of a generator")


def run_fid(out_dir: Path, *, fake: Path | None = None, checkpoint: Path | None = None,
            run_dir: Path | None = None, data_dir: Path, split: str = "test", weights=None,
            device: str = "auto", batch_size: int | None = None, n: int | None = None, seed: int = 0,
            cache_dir: Path | None = None, batch_norm: str = "running", root: Path | None = None,
            compared: list[ComparedScore] | None = None) -> dict:
    """Score one of `fake`, `checkpoint` or `run_dir` (every snapshot) and write the summary, as the
    only writer of `out_dir` (under `root`, RESULTS); a finished score of the same request on the
    same inputs is returned as it stands. `compared`: the scores of other snapshots set beside this
    one, recorded in its summary with this one first. Returns the summary (a FidSummary) as written."""
    if sum(x is not None for x in (fake, checkpoint, run_dir)) != 1:
        raise CifarError("give exactly one of fake images, a checkpoint or a run dir to select from")
    if n is not None and n < 2:
        raise CifarError(f"FID needs at least 2 generated images, got n={n}")
    if run_dir is not None and split == SELECT_ON:
        raise CifarError(f"--select-best chooses the snapshot on the {SELECT_ON} split and scores it on the test "
                         f"split; scoring it on the {SELECT_ON} split too would report the split it was chosen on")
    if fake is None:
        check_seed(seed, "seed")  # now, not after Inception and the reference statistics are ready
    request = fid_request(fake, checkpoint, run_dir, split=split, n=n, seed=seed, batch_norm=batch_norm)
    device = resolve_device(device)  # the unit's device, decided once: sampling and Inception run there
    start = time.perf_counter()
    # The generated side first: a bad folder or checkpoint fails before any directory or Inception work.
    snapshots, generated = None, None
    if run_dir is not None:
        snapshots = run_snapshots(run_dir)  # what is checked now is what select_best scores
        for _, path in snapshots:  # each one readable and finite before Inception is even loaded
            load_generator(path, "cpu")
    else:
        generated = (*load_fake(fake, checkpoint, n, seed, device, batch_norm), time.perf_counter() - start)
    digest = data_digest_or_none(data_dir)  # no data: the reference split fails to load, naming what is missing
    with ResultDir(out_dir, "FID score", root=root) as result:
        beside = {f"beside step_{c.step}": file_digest(c.summary) for c in compared or ()}
        opened = result.open(Request("FID score", request, data=digest,
                                     inputs={**fid_inputs(fake, checkpoint, run_dir, weights), **beside}),
                             remedy="pass --name (or --out) to keep both, or delete it")
        if opened is Opened.DONE:
            log(f"fid: {out_dir} already holds this score of these inputs")
            return FidSummary.read(result.summary_path).to_json()
        summary = _score(request, generated, snapshots, data_dir, digest, split, weights, device, batch_size, n,
                         seed, cache_dir, batch_norm, start)
        if compared is not None:
            summary.compared = [ComparedScore(step=step_of(checkpoint), fid=summary.fid,
                                              summary=str(result.summary_path)), *compared]
        return result.complete(summary.to_json())


def _score(request: dict, generated, snapshots, data_dir, digest, split, weights, device, batch_size, n, seed,
           cache_dir, batch_norm, start: float) -> FidSummary:
    setup = prepare(data_dir, split, weights, device, batch_size, cache_dir)
    if snapshots is not None:
        selection = FidSetup(setup.extractor, reference_statistics(data_dir, SELECT_ON, setup.extractor, cache_dir),
                             SELECT_ON, {})
        result = select_best(selection, setup, snapshots, n, seed, batch_norm)
    else:
        images, source, loaded = generated
        result = score_source(setup, images, source)
        result["seconds"]["fake_images"] = loaded
    record = protocol_record(request, result["n_fake"], setup.extractor, digest)
    return summary_of(setup, {"request": request, **result, **record}, time.perf_counter() - start)


def protocol_of(request: dict) -> str:
    """What a score measures, as its summary's `protocol` says: `report-b`, report B's (one snapshot of a
    GAN run, checkpoints/step_<N>.pt, scored against the test split; a step other than 46,000 or other
    than 10,000 images is a departure it lists), `select-best` (ours), `checkpoint` or `images`."""
    if request["input"] == "checkpoint":
        return "report-b" if step_of(request["path"], ".pt") is not None and request["split"] == "test" else "checkpoint"
    return {"run": "select-best"}.get(request["input"], "images")


def protocol_record(request: dict, n_fake: int, extractor: FeatureExtractor, data_digest: str) -> dict:
    """The score beside report B's FID protocol: its protocol, its settings as compared and each departure
    (`cifar_core.protocols.departures`)."""
    protocol = protocol_of(request)
    actual = {"n": n_fake, "split": request["split"], "data": protocols.data_text(data_digest),
              "weights": protocols.weights_text(extractor.weights_standard, extractor.weights_sha256)}
    if "seed" in request:
        actual.update(seed=request["seed"], batch_norm=request["batch_norm"])
    if protocol == "report-b":
        actual["step"] = step_of(request["path"], ".pt")
    return {"protocol": protocol, **protocols.protocol_record(actual, protocols.FID)}


def fid_inputs(fake: Path | None, checkpoint: Path | None, run_dir: Path | None, weights=None) -> dict[str, str]:
    """The digests of what a score reads: the generator's file(s) or the images, and the Inception
    weights when they can be found now (a score of other weights or a retrained generator is made
    again, never taken for this one)."""
    from cifar_core.fid.inception import resolve_weights

    if run_dir is not None:
        files = {f"step_{step}": path for step, path in step_files(Path(run_dir) / "checkpoints", ".pt")}
    elif checkpoint is not None:
        files = {"checkpoint": Path(checkpoint)}
    elif Path(fake).is_dir():
        files = {f"image {p.name}": p for p in sorted(Path(fake).iterdir()) if p.is_file()}
    else:
        files = {"images": Path(fake)}
    digests = {name: file_digest(path) for name, path in files.items() if path.is_file()}
    try:
        digests["inception"] = file_digest(resolve_weights(weights, download=False))
    except CifarError:
        pass  # not here yet: found (or downloaded) when Inception loads, and refused there if it cannot be
    return digests


@dataclass
class FidSetup:
    """What every score in one command shares: the network and the reference statistics."""

    extractor: FeatureExtractor
    reference: FidStatistics
    split: str
    seconds: dict


def prepare(data_dir, split: str, weights=None, device: str = "auto", batch_size: int | None = None,
            cache_dir: str | os.PathLike | None = None) -> FidSetup:
    start = time.perf_counter()
    extractor = load_inception(weights, device, batch_size)
    loaded = time.perf_counter()
    reference = reference_statistics(data_dir, split, extractor, cache_dir)
    done = time.perf_counter()
    source = f"cache {reference.cache_path}" if reference.from_cache else f"{reference.n} images"
    log(f"fid: reference statistics of {split} from {source}")
    seconds = {"load_inception": loaded - start, "reference_statistics": done - loaded}
    return FidSetup(extractor, reference, split, seconds)


def score_images(setup: FidSetup, images) -> dict:
    """FID of uint8 images against the reference, with counts and timings."""
    if len(images) < 2:
        raise CifarError(f"FID needs at least 2 generated images, got {len(images)}")
    start = time.perf_counter()
    fid = fid_of_images(images, setup.reference, setup.extractor)
    return {"fid": fid, "n_fake": len(images), "seconds": {"fake_features_and_frechet": time.perf_counter() - start}}


def load_fake(fake: Path | None = None, checkpoint: Path | None = None, n: int | None = None,
              seed: int = 0, device: str | torch.device = "auto",
              batch_norm: str = "running") -> tuple[torch.Tensor | np.ndarray, dict]:
    """(uint8 images, description) from a folder or .npz (`fake`, first `n` images) or from `n`
    samples of a generator `checkpoint`. Runs before any Inception work, so bad input fails fast."""
    if checkpoint is not None:
        images = sample_checkpoint(checkpoint, n or DEFAULT_N, seed, device, batch_norm)
        return images, {"kind": "checkpoint", "path": str(checkpoint), "seed": seed, "batch_norm": batch_norm}
    images = load_images(fake)[:n]
    if len(images) < 2:
        raise CifarError(f"FID needs at least 2 generated images; {fake} has {len(images)}")
    return images, {"kind": "npz" if Path(fake).suffix == ".npz" else "folder", "path": str(fake)}


def score_source(setup: FidSetup, images, source: dict) -> dict:
    return {**score_images(setup, images), "fake": source}


def sample_checkpoint(checkpoint: Path, n: int, seed: int, device: str | torch.device = "auto",
                      batch_norm: str = "running") -> torch.Tensor:
    device = resolve_device(device) if isinstance(device, str) else device
    generator = load_generator(checkpoint, device)
    return generate(generator, n, seed, device=device, batch_norm=batch_norm)


def select_best(selection: FidSetup, scoring: FidSetup, snapshots: list[tuple[int, Path]], n: int | None = None,
                seed: int = 0, batch_norm: str = "running") -> dict:
    """Rank every (step, checkpoint) snapshot by its FID against `selection`'s split (the same `n`
    noise vectors each), then score only the best one against `scoring`'s split, with other noise."""
    n = n or DEFAULT_N
    ranking = []
    for step, path in snapshots:
        log(f"fid: scoring {path.name} against the {selection.split} split")
        start = time.perf_counter()
        result = score_images(selection, sample_checkpoint(path, n, seed, selection.extractor.device, batch_norm))
        ranking.append({"step": step, "checkpoint": str(path), "fid": result["fid"], "n_fake": result["n_fake"],
                        "seconds": time.perf_counter() - start})
    ranking.sort(key=lambda r: (r["fid"], r["step"]))
    best = ranking[0]
    score_seed = derive_seed(seed, "fid", "score")  # noise the selection never saw
    log(f"fid: scoring the chosen snapshot {Path(best['checkpoint']).name} against the {scoring.split} split")
    images = sample_checkpoint(Path(best["checkpoint"]), n, score_seed, scoring.extractor.device, batch_norm)
    result = score_images(scoring, images)
    return {
        "fid": result["fid"],
        "n_fake": result["n_fake"],
        "selection": {"split": selection.split, "n_real": selection.reference.n, "seed": seed,
                      "stats_cache": str(selection.reference.cache_path) if selection.reference.cache_path else None},
        "best": {**best, "scored_seed": score_seed},
        "ranking": ranking,  # FIDs against the selection split
        "fake": {"kind": "run", "path": str(snapshots[0][1].parent.parent), "seed": score_seed,
                 "batch_norm": batch_norm},
        "seconds": result["seconds"],
    }


def run_snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of RUN_DIR/checkpoints/step_<N>.pt, in step order."""
    found = step_files(Path(run_dir) / "checkpoints", ".pt")
    if not found:
        raise CifarError(f"no generator snapshots (checkpoints/step_<N>.pt) in {run_dir}")
    return found


def summary_of(setup: FidSetup, result: dict, total_seconds: float) -> FidSummary:
    """The score(s), what was compared, the weights, the device and timings."""
    extractor, reference = setup.extractor, setup.reference
    return FidSummary.parse({
        **result,
        "n_real": reference.n,
        "real": {
            "dataset": reference.key.get("dataset"),
            "split": setup.split,
            "data_sha256": reference.key.get("data_sha256"),
            "stats_cache": str(reference.cache_path) if reference.cache_path else None,
            "from_cache": reference.from_cache,
        },
        "weights": {"path": str(extractor.weights_path), "sha256": extractor.weights_sha256},
        # By content: only pytorch-fid's released file makes scores comparable with published ones.
        "weights_standard": extractor.weights_standard,
        "feature_layer": FEATURE_LAYER,
        "feature_dims": FEATURE_DIMS,
        "device": describe_device(extractor.device),
        "batch_size": extractor.batch_size,
        "seconds": {**setup.seconds, **result.get("seconds", {}), "total": total_seconds},
        "torch": torch.__version__,
        "numpy": np.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
