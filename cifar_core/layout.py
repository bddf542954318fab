"""Where every result lives under RESULTS (a persistent volume on Kubernetes).

One method per kind of result, and every name goes through the one name check, whichever way it
came in (an option, a config file, `--set`, a chart value): a name is one directory, never a path.
The report reads FOLDERS; nothing else builds a path under RESULTS by hand. No torch, no Ray.
"""

from __future__ import annotations

import os
from pathlib import Path

from cifar_core.names import check_name

# The folders under RESULTS whose summaries the report reads, in the order a study makes them.
FOLDERS = ("tune", "retrain", "recipe", "gan", "fid", "train")


class Results:
    """`Results(results_dir).gan_run("dcgan")` -> RESULTS/gan/dcgan."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def train_run(self, name: str) -> Path:
        return self.root / "train" / check_name(name, "run name")

    def gan_run(self, name: str) -> Path:
        return self.root / "gan" / check_name(name, "GAN run name")

    def tune_experiment(self, name: str) -> Path:
        return self.root / "tune" / check_name(name, "experiment name")

    def tune_trial(self, experiment: str, trial_id: str) -> Path:
        """A search's trial: its own run directory, beside Ray's state of the search."""
        return self.tune_trials(experiment) / check_name(trial_id, "trial id")

    def tune_trials(self, experiment: str) -> Path:
        return self.tune_experiment(experiment) / "trials"

    def retrain(self, experiment: str) -> Path:
        return self.root / "retrain" / check_name(experiment, "experiment name")

    def recipe(self, name: str) -> Path:
        return self.root / "recipe" / check_name(name, "recipe result name")

    def fid(self, name: str) -> Path:
        return self.root / "fid" / check_name(name, "FID result name")

    def pipeline(self, profile: str) -> Path:
        return self.root / "pipeline" / check_name(profile, "pipeline profile")

    def report(self) -> Path:
        return self.root / "report"

    def fid_cache(self) -> Path:
        """Reference statistics of the real splits: beside every other result, so pods share them."""
        return self.root / "cache" / "fid"
