"""A procedural stand-in for CIFAR-100 in the official file format, learnable by a small CNN.

Each fine class is one shape x texture x colour: the superclass picks shape and texture, the fine
class its hue; position, size, shade and noise vary per image. Same arguments, same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cifar_core.data import format as fmt
from cifar_core.errors import DataError
from cifar_core.resultdir import Opened, Request, ResultDir

NUM_SHAPES, NUM_HUES = 5, 5  # and 4 textures: 20 superclasses = 5 shapes x 4 textures
CHUNK = 2048  # images generated at once; bounds memory at about 100 MB
# A split is written from memory at about 9 KB per image: 500,000 (ten times the real training
# set) need about 4.5 GB. Larger requests are refused before anything is allocated.
MAX_IMAGES = 500_000
GENERATOR = "cifar_core.data.synth"  # recorded in the manifest: the files this module may overwrite
STRIPE_SHADE = 0.4  # dark stripes are this fraction of the foreground colour


def class_factors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shape, texture, hue index) of each fine class, each int64 [100], all 100 combinations distinct."""
    coarse = fmt.fine_to_coarse()
    # Rank of each fine class among the five classes of its superclass.
    rank_in_coarse = np.array([np.sum(coarse[:i] == coarse[i]) for i in range(fmt.NUM_FINE)])
    return coarse % NUM_SHAPES, coarse // NUM_SHAPES, rank_in_coarse


def balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Shuffled labels with every class equally often (give or take one), like the real splits."""
    return rng.permutation(np.arange(n) % fmt.NUM_FINE).astype(np.int64)


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[..., 3] RGB in [0, 1] from hue, saturation, value arrays of the same shape."""
    n = np.array([5.0, 3.0, 1.0])  # phase offsets that give R, G and B
    k = (n + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def shape_masks(shape: np.ndarray, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Boolean [B, 32, 32]: the pixels inside each image's shape (dx, dy: offsets from its centre)."""
    ax, ay, r = np.abs(dx), np.abs(dy), r[:, None, None]
    radius = np.sqrt(dx * dx + dy * dy)
    candidates = np.stack(
        [
            radius < r,  # disk
            np.maximum(ax, ay) < 0.8 * r,  # square
            (dy < 0.7 * r) & (ax < 0.6 * (dy + r)),  # triangle, apex up
            (radius < r) & (radius > 0.55 * r),  # ring
            ((ax < 0.3 * r) & (ay < r)) | ((ay < 0.3 * r) & (ax < r)),  # cross
        ],
        axis=1,
    )
    return candidates[np.arange(len(shape)), shape]


def texture_bright(texture: np.ndarray, yy: np.ndarray, xx: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Boolean [B, 32, 32]: which foreground pixels take the bright shade of the texture."""
    p = period[:, None, None]
    rows, cols = np.broadcast_arrays((yy // p) % 2 == 0, (xx // p) % 2 == 0)
    candidates = np.stack([np.ones_like(rows), rows, cols, rows ^ cols], axis=1)
    return candidates[np.arange(len(texture)), texture]


def render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [N, 32, 32, 3] images of the given fine labels."""
    shapes, textures, hues = (factor[labels] for factor in class_factors())
    images = np.empty((len(labels), 32, 32, 3), dtype=np.uint8)
    for start in range(0, len(labels), CHUNK):
        part = slice(start, start + CHUNK)
        images[part] = _render_chunk(shapes[part], textures[part], hues[part], rng)
    return images


def _render_chunk(
    shape: np.ndarray, texture: np.ndarray, hue: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    b = len(shape)
    grid = np.arange(32, dtype=np.float32)
    centre_x, centre_y = rng.uniform(10, 22, size=(2, b)).astype(np.float32)
    radius = rng.uniform(7, 12, size=b).astype(np.float32)
    dx = grid[None, None, :] - centre_x[:, None, None]
    dy = grid[None, :, None] - centre_y[:, None, None]
    inside = shape_masks(shape, dx, dy, radius)

    # Stripes are measured from the shape's corner, so they move with it.
    period = rng.integers(2, 4, size=b)
    yy = np.floor(dy + radius[:, None, None]).astype(np.int64)
    xx = np.floor(dx + radius[:, None, None]).astype(np.int64)
    bright = texture_bright(texture, yy, xx, period)

    fg_hue = (hue / NUM_HUES + rng.uniform(-0.04, 0.04, size=b)) % 1.0
    fg = hsv_to_rgb(fg_hue, rng.uniform(0.65, 1.0, size=b), rng.uniform(0.75, 1.0, size=b))
    shade = np.where(bright, np.float32(1.0), np.float32(STRIPE_SHADE))
    fg_pixels = fg.astype(np.float32)[:, None, None, :] * shade[..., None]

    # Background: a dull random colour with a gentle linear gradient in a random direction.
    bg = hsv_to_rgb(rng.uniform(0, 1, size=b), rng.uniform(0, 0.35, size=b), rng.uniform(0.1, 0.5, size=b))
    angle = rng.uniform(0, 2 * np.pi, size=b)
    cos, sin = (np.float32(1 / 64) * f(angle).astype(np.float32)[:, None, None] for f in (np.cos, np.sin))
    bg_pixels = bg.astype(np.float32)[:, None, None, :] * (1.0 + cos * dx + sin * dy)[..., None]

    image = np.where(inside[..., None], fg_pixels, bg_pixels)
    noise_scale = rng.uniform(0.02, 0.06, size=(b, 1, 1, 1)).astype(np.float32)
    image += rng.standard_normal(size=image.shape, dtype=np.float32) * noise_scale
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def synthesize_split(n: int, rng: np.random.Generator, split: str) -> fmt.CifarSplit:
    fine = balanced_labels(n, rng)
    names = fmt.official_meta().fine_label_names
    filenames = [f"{names[label]}_synthetic_{i:06d}.png" for i, label in enumerate(fine)]
    batch_label = f"{fmt.SYNTHETIC_PREFIX} {fmt.OFFICIAL_BATCH_LABELS[split]} (procedural, not CIFAR-100)"
    return fmt.CifarSplit(render(fine, rng), fine, fmt.fine_to_coarse()[fine], filenames, batch_label)


def write_synthetic(
    out_dir: str | os.PathLike, n_train: int = 5000, n_test: int = 1000, seed: int = 0
) -> Path:
    """Write a synthetic dataset under `out_dir/cifar-100-python/` and return that directory.

    `out_dir` is a data set's result directory (cifar_core.resultdir): one writer, the set complete
    only once its marker is written. A stand-in of other settings is replaced (every file of it is
    this function's, made again from its seed); any other file it would replace (a user's own
    `test`, say) makes it refuse, naming that file. The same request, complete, is left as it is.
    """
    for split, n in (("train", n_train), ("test", n_test)):
        if not 1 <= n <= MAX_IMAGES:
            raise DataError(f"synthetic {split} split of {n} images: use 1 to {MAX_IMAGES:,} "
                            "(the real set has 50,000 train / 10,000 test)")
    folder = Path(out_dir) / fmt.BASE_FOLDER
    files = (*fmt.SPLITS, "meta", fmt.MANIFEST_NAME)
    request = Request("data set", {"source": GENERATOR, "n_train": n_train, "n_test": n_test, "seed": seed})
    with ResultDir(out_dir, "data set", root=Path(os.path.abspath(out_dir)).parent, replaceable=True,
                   outputs=lambda: [folder / name for name in files], summary=f"{fmt.BASE_FOLDER}/{fmt.MANIFEST_NAME}",
                   adopt=lambda _: all(_replaceable(folder / name) for name in files)) as result:
        foreign = [name for name in files if not _replaceable(folder / name)]
        if foreign:
            raise DataError(f"{folder} already holds {', '.join(foreign)} not written by `cifar data synth`; "
                            "choose another --out or move them away")
        if result.open(request) is not Opened.DONE:
            _write(folder, n_train, n_test, seed, result)
    return folder


def _write(folder: Path, n_train: int, n_test: int, seed: int, result: ResultDir) -> None:
    # Separate streams, so the test set does not change when n_train does.
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    md5 = {}
    for split, n, rng in (("train", n_train, train_rng), ("test", n_test, test_rng)):
        data = synthesize_split(n, rng, split)
        rows = data.images.transpose(0, 3, 1, 2).reshape(n, fmt.ROW_BYTES)
        payload = fmt.batch_bytes(
            rows, data.fine_labels, data.coarse_labels, data.filenames, data.batch_label
        )
        md5[split] = fmt.write_file(folder / split, payload)
    md5["meta"] = fmt.write_file(folder / "meta", fmt.meta_bytes(fmt.official_meta()))
    manifest = {
        "synthetic": True,
        "note": "procedurally generated stand-in in the CIFAR-100 format; not CIFAR-100",
        "generator": GENERATOR,
        "seed": seed,
        "counts": {"train": n_train, "test": n_test},
        "md5": md5,
    }
    result.complete(manifest)


def _replaceable(path: Path) -> bool:
    """True when nothing is at `path`, or what is there is this module's own output: a synthetic
    split, our manifest, or a `meta` with exactly the bytes we write (the official file's)."""
    if not path.exists():
        return not path.is_symlink()  # a dangling link is someone's too
    if path.name == "meta":
        return path.is_file() and path.read_bytes() == fmt.meta_bytes(fmt.official_meta())
    if path.name == fmt.MANIFEST_NAME:
        try:
            manifest = fmt.read_manifest(path.parent)
        except DataError:  # unreadable: not ours to overwrite
            return False
        return manifest is not None and manifest.get("generator") == GENERATOR
    try:
        return fmt.load_split(path.parent, path.name).batch_label.startswith(fmt.SYNTHETIC_PREFIX)
    except DataError:
        return False
