"""Kill a training process at every write boundary, resume it, and leave each run behind.

    python tests/fault_harness.py train|gan DATA_ROOT OUT_DIR

Every write of a run ends in `cifar_core.atomic._publish` (the rename of a written temp file) or
`_append` (a JSON line). One uninterrupted run in OUT/ref records those calls in boundaries.json.
Then for each K: a run in OUT/kill<K> dies with os._exit at the K-th call (a publish: after the
temp file is written, before the rename; an append: half the line written, a torn line), and a
second run with no kill resumes it. statuses.json records the exit status of each. The test
(test_fault_injection.py) compares every run with OUT/ref.

Runs are forked from this process, which imported torch but ran nothing on it (no threads to
lose in a fork), so each costs a fork instead of a new Python and a torch import.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

KILLED = 97  # the exit status of a run killed on purpose
TRAIN = {
    "model": {"name": "tinycnn"},
    "optim": {"name": "adam", "lr": 0.003},
    "augment": {"hflip": True, "crop_padding": 2, "brightness": 0.2},
    "run": {"epochs": 2, "batch_size": 32, "eval_batch_size": 100, "device": "cpu", "seed": 1},
}
GAN = {"steps": 8, "batch_size": 16, "ngf": 8, "ndf": 8, "nz": 16, "log_every": 2, "sample_every": 4,
       "checkpoint_every": 4, "collapse": {"warmup_steps": 2, "window_steps": 2}}


def run(mode: str, data: Path, results: Path) -> None:
    if mode == "train":
        from cifar_core.config import TrainConfig
        from cifar_core.runs import train_run

        train_run(TrainConfig.from_dict(TRAIN), data, results, run_name="r", resume=True)
    else:
        from cifar_core.gan.config import GanTrainConfig
        from cifar_core.gan.train import train_gan

        train_gan(GanTrainConfig.from_dict(GAN), data, results / "gan" / "r", device="cpu")


def hook_writes(on_write) -> None:
    """Route every publish and append through `on_write(op, path, do_it)`."""
    from cifar_core import atomic

    publish, append = atomic._publish, atomic._append
    atomic._publish = lambda tmp, path: on_write("publish", path, lambda: publish(tmp, path))
    atomic._append = lambda path, text: on_write("append", path, lambda: append(path, text), text)


def count_into(record: list):
    def on_write(op, path, do_it, text=None):
        record.append([op, str(path)])
        do_it()

    return on_write


def kill_at(k: int):
    calls = [0]

    def on_write(op, path, do_it, text=None):
        calls[0] += 1
        if calls[0] == k:
            if op == "append":
                with open(path, "a", encoding="utf-8") as f:
                    f.write(text[: len(text) // 2])
            os._exit(KILLED)
        do_it()

    return on_write


def in_child(body) -> int:
    """Run `body()` in a forked child; its exit status (1 and a traceback on an exception)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            import torch

            torch.set_num_threads(1)
            body()
        except BaseException:  # noqa: BLE001 - reported through the exit status
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def main(mode: str, data: str, out: str) -> None:
    # Imported once here, before the forks: torch, torchvision (the GAN's sample grid) and
    # matplotlib (its loss plot) would cost every child seconds.
    import cifar_core.gan.train
    import cifar_core.runs  # noqa: F401
    from cifar_core.figures import pyplot

    pyplot()

    data_root, out_dir = Path(data), Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    boundaries_file = out_dir / "boundaries.json"

    def reference():
        record = []
        hook_writes(count_into(record))
        run(mode, data_root, out_dir / "ref")
        boundaries_file.write_text(json.dumps(record))

    statuses = {"ref": in_child(reference)}
    boundaries = json.loads(boundaries_file.read_text())
    for k in range(1, len(boundaries) + 1):
        target = out_dir / f"kill{k}"
        statuses[f"kill{k}"] = in_child(lambda k=k, target=target: (hook_writes(kill_at(k)), run(mode, data_root, target)))
        statuses[f"resume{k}"] = in_child(lambda target=target: run(mode, data_root, target))
    (out_dir / "statuses.json").write_text(json.dumps(statuses))


if __name__ == "__main__":
    main(*sys.argv[1:])
