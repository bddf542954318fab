"""Stage `data`: the dataset every other stage reads, fetched, synthesized or checked where it is.

It runs first and every time (a check of files already there takes seconds); the profile decides what
a missing dataset becomes, and whether data other than the official CIFAR-100 is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_core.errors import ConfigError, DataError
from cifar_core.execution.resources import Resources
from cifar_core.fields import at_least, setting
from cifar_core.layout import Results
from cifar_core.progress import log
from cifar_core.resultdir import ResultDir, settings_request
from cifar_core.seeds import check_seed
from cifar_core.stages.registry import Context, Stage, register_stage
from cifar_core.summaries import DataSummary


@dataclass
class DataStage:
    if_missing: str = setting("fetch", "No dataset in --data-dir: fetch CIFAR-100, synthesize a stand-in, or fail.",
                              choices=("fetch", "synthesize", "fail"))
    official_only: bool = setting(True, "Refuse data that is not the official CIFAR-100 (by its md5s): results set "
                                        "beside a report's numbers need the report's data (--allow-synthetic).")
    n_train: int = setting(2000, "Training images of a synthesized stand-in.", unit="images", range=at_least(1))
    n_test: int = setting(500, "Test images of a synthesized stand-in.", unit="images", range=at_least(1))
    seed: int = setting(0, "Seed of a synthesized stand-in.", check=check_seed)


def summary_path(ctx: Context) -> Path:
    return DataSummary.file_in(ctx.results.pipeline(ctx.profile) / "data")


def check(ctx: Context) -> None:
    """Before anything runs: data that will be there is what the profile's comparisons need."""
    from cifar_core.data import data_digest_or_none
    from cifar_core.data.identity import require_official

    s = ctx.section("data")
    if not s.official_only:
        return
    if s.if_missing == "synthesize":
        raise ConfigError(f"the {ctx.profile} profile compares with the reports' numbers on the official CIFAR-100, "
                          "but data.if_missing=synthesize would make a stand-in: pass --allow-synthetic to run it anyway")
    digest = data_digest_or_none(ctx.data_dir)
    if digest is not None:  # None: nothing there yet, and the data stage fetches it (or fails)
        require_official(digest, ctx.data_dir, f"the {ctx.profile} profile")


def prepare_data(profile: str, settings: DataStage, data_dir: Path, results_dir: Path) -> dict[str, Any]:
    """Make the dataset if it is missing (as `settings` say), verify it, and record what is there (a
    DataSummary, returned as written)."""
    from cifar_core.data import data_digest, fetch_cifar100, verify_dataset, write_synthetic
    from cifar_core.data.identity import require_official

    generated = False
    if not (data_dir / "cifar-100-python").is_dir() and data_dir.name != "cifar-100-python":
        if settings.if_missing == "synthesize":
            log(f"no dataset at {data_dir}: writing a SYNTHETIC stand-in ({settings.n_train} train / "
                f"{settings.n_test} test images, not CIFAR-100) for the {profile} profile")
            write_synthetic(data_dir, n_train=settings.n_train, n_test=settings.n_test, seed=settings.seed)
            generated = True
        elif settings.if_missing == "fetch":
            log(f"no dataset at {data_dir}: downloading CIFAR-100")
            try:
                fetch_cifar100(data_dir)
            except DataError as exc:
                raise DataError(f"the {profile} profile needs the real CIFAR-100: {exc}") from None
        else:
            raise DataError(f"no dataset at {data_dir} (data.if_missing=fail)")
    report = verify_dataset(data_dir)
    digest = data_digest(data_dir)
    if settings.official_only:
        require_official(digest, data_dir, f"the {profile} profile")
    folder = Results(results_dir).pipeline(profile) / "data"
    with ResultDir(folder, "data check", root=results_dir) as result:
        result.open(settings_request("data check", settings, data=digest))
        return result.complete(DataSummary.parse({"stage": "data", "generated_synthetic": generated, **report}).to_json())


def run(ctx: Context, needs: dict[str, Any]) -> Any:
    return ctx.submit("data", prepare_data, needs, uses_device=False, profile=ctx.profile,
                      settings=ctx.section("data"), data_dir=ctx.data_dir, results_dir=ctx.results.root)


STAGE = register_stage(Stage(
    "data", DataStage, Resources(1, 0), summary_path, run, check=check, uses_device=False, makes_data=True,
    help="the dataset: fetched, synthesized or checked where it is",
    smoke={"if_missing": "synthesize", "official_only": False},
))
