"""One checkpoint shape for every classifier run: a plain dict, written atomically, read with clear errors.

`partial` (the sums of the epoch in progress) and `rng` (the global torch generator, which dropout
draws from) let a run resume mid-epoch exactly; data order and augmentation need no state, as they
come from their own (seed, epoch) streams. The keys are those engine.py's `_checkpoint` writes.
Every field a resume or an evaluation reads is checked for type and range when the file is loaded
(`FIELDS`), and the weights and optimiser moments against the model they go into (`load_weights`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cifar_core.atomic import atomic_torch_save, copy_file_atomically
from cifar_core.errors import CheckpointError, os_error_line

CHECKPOINT_FORMAT = "cifar100-k8s/classifier/v1"
# What scoring or resuming reads; a file without one of these is refused with its name.
REQUIRED = {"model_name": str, "model_kwargs": dict, "model_state": dict, "epoch": int, "step": int, "config": dict}


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write atomically: on any failure the previous file at `path` is untouched."""
    try:
        return atomic_torch_save(checkpoint, path)
    except OSError as exc:
        raise CheckpointError(_write_failed(path, exc)) from None


def copy_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a written checkpoint file (e.g. last.pt to best.pt) atomically, without re-serialising."""
    try:
        return copy_file_atomically(source, target)
    except OSError as exc:
        raise CheckpointError(_write_failed(target, exc)) from None


def _write_failed(path: str | Path, exc: OSError) -> str:
    """The path, and the one at fault when it is another (a file where a folder must be)."""
    return f"could not write checkpoint {path}: {os_error_line(exc).removeprefix(f'{path}: ')}"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, resume: bool = False) -> dict[str, Any]:
    """A classifier checkpoint whose every field is of its type and range (`FIELDS`); `resume`: also
    holding what a resume reads (`RESUME`). Anything else is a CheckpointError naming file and field."""
    checkpoint = read_checkpoint_file(path, CHECKPOINT_FORMAT, "cifar100-k8s classifier", map_location)
    require_keys(checkpoint, REQUIRED, path)
    check_checkpoint(checkpoint, FIELDS, path, required=RESUME if resume else ())
    step = checkpoint["step"]
    for key, steps in (("best_step", [checkpoint.get("best_step") or 0]),
                       ("history", [row["step"] for row in checkpoint.get("history") or []]),
                       ("test_curve", [point["step"] for point in checkpoint.get("test_curve") or []])):
        if any(later <= earlier for earlier, later in zip(steps, steps[1:], strict=False)) or max(steps, default=0) > step:
            raise CheckpointError(f"{path}: {key} names steps {_shown(steps)}, not rising and at most step {step}")
    return checkpoint


def read_checkpoint_file(path: str | Path, expected_format: str, kind: str,
                         map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict and check its format; every failure is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # weights_only: checkpoints are tensors and plain containers, so refuse arbitrary pickles.
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a torn or foreign file
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}): file is corrupt or not a checkpoint") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != expected_format:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path} is not a {kind} checkpoint (format {found!r}, expected {expected_format!r})")
    return checkpoint


def require_keys(checkpoint: dict[str, Any], required: dict[str, type], path: str | Path) -> None:
    for key, kind in required.items():
        if key not in checkpoint:
            raise CheckpointError(f"{path} is incomplete: it has no {key!r}")
        value = checkpoint[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(f"{path}: {key!r} should be a {kind.__name__}, found {type(value).__name__}")


def load_error_summary(exc: BaseException) -> str:
    """One line out of torch's multi-line load_state_dict error: what was missing, extra or mis-sized."""
    lines = [line.strip().rstrip(".") for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    # torch's first line is only a heading ("Error(s) in loading state_dict for TinyCNN:").
    details = lines[1:] if len(lines) > 1 and lines[0].endswith(":") else lines
    text = "; ".join(details)
    return text if len(text) <= 400 else text[:397] + "..."


# --- checked before use --------------------------------------------------------------------------
class Invalid(Exception):
    """A field is not what its reader needs: `where` (the key path inside it) and the problem."""

    def __init__(self, problem: str, where: str = ""):
        super().__init__(problem)
        self.problem, self.where = problem, where


Check = Callable[[Any], None]  # raises Invalid


def check_checkpoint(checkpoint: dict[str, Any], spec: dict[str, Check], path: str | Path,
                     required: tuple[str, ...] = ()) -> None:
    """Each field of `spec` present in `checkpoint` (and each of `required`, which must be) checked;
    the first wrong one is a CheckpointError naming the file and the field's key path."""
    for key, check in spec.items():
        if key not in checkpoint:
            if key in required:
                raise CheckpointError(f"{path} is incomplete: it has no {key!r}")
            continue
        try:
            check(checkpoint[key])
        except Invalid as exc:
            raise CheckpointError(f"{path}: {key}{exc.where} {exc.problem}") from None


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, torch.Tensor) else f"a {value.dtype} tensor of shape {list(value.shape)}"
    return text if len(text) <= 60 else f"{text[:40]}... ({type(value).__name__})"


def whole(low: int = 0, high: int = 2**63 - 1) -> Check:
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"is {_shown(value)}, expected a whole number in [{low}, {high}]")
    return check


def real(low: float = 0.0, high: float = math.inf) -> Check:
    """A finite number in [low, high] (NaN and infinity never are)."""
    def check(value: Any) -> None:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not (isinstance(value, int) or math.isfinite(value)) or not low <= value <= high:
            raise Invalid(f"is {_shown(value)}, expected a finite number in [{low:g}, {high:g}]")
    return check


def optional(check: Check) -> Check:
    def either(value: Any) -> None:
        if value is not None:
            check(value)
    return either


def kind(*types: type) -> Check:
    def check(value: Any) -> None:
        if not isinstance(value, types):
            raise Invalid(f"is {_shown(value)}, expected {' or '.join(t.__name__ for t in types)}")
    return check


def items(check: Check) -> Check:
    """A list whose every item passes `check`."""
    def each(value: Any) -> None:
        kind(list, tuple)(value)
        for i, item in enumerate(value):
            try:
                check(item)
            except Invalid as exc:
                raise Invalid(exc.problem, f"[{i}]{exc.where}") from None
    return each


def fields(spec: dict[str, Check], optional_keys: tuple[str, ...] = ()) -> Check:
    """A dict holding each key of `spec` (but `optional_keys`), each passing its check."""
    def check(value: Any) -> None:
        kind(dict)(value)
        for key, inner in spec.items():
            if key not in value:
                if key in optional_keys:
                    continue
                raise Invalid(f"has no {key!r}")
            try:
                inner(value[key])
            except Invalid as exc:
                raise Invalid(exc.problem, f".{key}{exc.where}") from None
    return check


def tensor(dtype: torch.dtype | None = None, shape: tuple[int, ...] | None = None, floating: bool = False) -> Check:
    def check(value: Any) -> None:
        if not isinstance(value, torch.Tensor) or (dtype is not None and value.dtype != dtype) \
                or (shape is not None and tuple(value.shape) != shape) or (floating and not value.is_floating_point()):
            want = f"{dtype or ('floating' if floating else 'any')} tensor" + (f" of shape {list(shape)}" if shape else "")
            raise Invalid(f"is {_shown(value)}, expected a {want}")
    return check


def plain(value: Any, depth: int = 0) -> None:
    """JSON-like data (what metrics rows and events are written as): finite numbers, text, lists and
    string-keyed dicts, not too deep."""
    if depth > 16:
        raise Invalid("is nested too deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(f"holds {value!r}, which no JSON file may hold")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise Invalid(f"has the key {_shown(key)}, expected text")
            try:
                plain(item, depth + 1)
            except Invalid as exc:
                raise Invalid(exc.problem, f".{key}{exc.where}") from None
    elif isinstance(value, (list, tuple)):
        items(lambda item: plain(item, depth + 1))(value)
    elif not isinstance(value, (str, int, float, bool, type(None))):
        raise Invalid(f"holds {_shown(value)}, expected plain data")


def values(check: Check) -> Check:
    """A dict whose every value passes `check`."""
    def each(value: Any) -> None:
        kind(dict)(value)
        for key, item in value.items():
            try:
                check(item)
            except Invalid as exc:
                raise Invalid(exc.problem, f"[{key!r}]{exc.where}") from None
    return each


def all_of(*checks: Check) -> Check:
    def check(value: Any) -> None:
        for one in checks:
            one(value)
    return check


def record(value: Any) -> None:
    """A metrics row or an event: a dict of plain data (it is written to JSON as it is)."""
    kind(dict)(value)
    plain(value)


def state_dict(value: Any) -> None:
    """{name: tensor}: a network's weights (checked against the network by `load_weights`)."""
    kind(dict)(value)
    bad = next((key for key, item in value.items() if not isinstance(key, str) or not isinstance(item, torch.Tensor)), None)
    if bad is not None:
        raise Invalid(f"is {_shown(value[bad])}, expected a tensor", f"[{bad!r}]")


OPTIMIZER = fields({"state": kind(dict), "param_groups": items(fields({"params": items(whole())}))})
RNG_STATE = tensor(torch.uint8)
ROW = all_of(record, fields({"epoch": whole(1), "step": whole(1), "train_loss": real(), "train_acc": real(0, 1), "lr": real(),
              "epoch_time_s": real(), "val_loss": optional(real()), "val_acc": optional(real(0, 1)),
              "val_top5": optional(real(0, 1))}, optional_keys=("val_loss", "val_acc", "val_top5")))
TEST_POINT = fields({"step": whole(1), "loss": real(), "top1": real(0, 1), "top5": real(0, 1)})
# Every field of a classifier checkpoint, as its readers need it; RESUME: those a resume cannot do without.
FIELDS: dict[str, Check] = {
    "model_name": kind(str), "model_kwargs": record, "model_state": state_dict, "optimizer_state": OPTIMIZER,
    "scheduler_state": optional(kind(dict)), "epoch": whole(), "step": whole(), "best_val_acc": optional(real(0, 1)),
    "best_step": optional(whole(1)), "history": items(ROW), "test_curve": items(TEST_POINT),
    "partial": optional(fields({"loss": real(), "correct": whole(), "seen": whole(), "time_s": real()})),
    "config": kind(dict), "data_digest": optional(kind(str)),
    "rng": fields({"torch": RNG_STATE, "cuda": RNG_STATE}, optional_keys=("cuda",)),
}
RESUME = ("optimizer_state", "history", "rng")


def load_weights(module: torch.nn.Module, state: dict[str, Any], source: str, model: str) -> None:
    """`state` (from `source`, e.g. "PATH: model_state") into `module` (`model`, e.g. "model cnn1"),
    checked first: the same names and shapes, and a floating-point tensor wherever the module has
    one (integer or complex weights would be silently cast into wrong scores)."""
    own = module.state_dict()
    for key, value in state.items():
        if key in own and isinstance(value, torch.Tensor) and (value.is_floating_point() != own[key].is_floating_point()
                                                               or value.is_complex()):
            raise CheckpointError(f"{source}[{key!r}] is a {value.dtype} tensor where {model} has {own[key].dtype}: "
                                  "these are not its weights")
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: the weights do not fit {model}: {load_error_summary(exc)}") from None


def check_optimizer_state(state: dict[str, Any], optimizer: torch.optim.Optimizer, source: str) -> None:
    """The moments of each parameter have its shape (torch loads any shape and fails at the first
    step instead); group sizes are torch's own check when the state is loaded."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved = [i for group in state["param_groups"] for i in group["params"]]
    for index, param in zip(saved, params, strict=False):
        for name, value in (state["state"].get(index) or {}).items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                raise CheckpointError(f"{source}: state[{index}].{name} has shape {list(value.shape)}, its "
                                      f"parameter {list(param.shape)}")


def capture_rng(device: torch.device | None = None) -> dict[str, Any]:
    """The global RNG state(s) training draws from: the CPU's, and the training GPU's."""
    state = {"torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device | None = None, source: str = "checkpoint") -> None:
    try:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and device is not None and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], device)
    except (RuntimeError, TypeError, ValueError) as exc:  # a state of another size or generator
        raise CheckpointError(f"{source}: rng is not a generator state torch can restore "
                              f"({' '.join(str(exc).split())[:120]})") from None
