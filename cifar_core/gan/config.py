"""Settings of a DCGAN run, declared once (`cifar_core.fields`) for `cifar gan train` and `gan.*`.

Defaults: report B's network sizes (635,812 and 344,264 parameters: ngf = ndf = 46) and, as we read
it, 50,000 steps (it kept its 46,000-step snapshot over "the samples taken at 50,000 steps"). Report
B took its code from the PyTorch DCGAN tutorial and states no optimiser settings, so batch 128, Adam
(2e-4, betas 0.5 and 0.999) and the 100-d noise are the tutorial's (docs/provenance.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cifar_core.fields import above, at_least, between, check_fields, from_mapping, setting
from cifar_core.protocols import REPORT_B_GAN_STEPS
from cifar_core.seeds import check_seed

POSITIVE = at_least(1)
KEY_PREFIX = "gan."  # how errors name a setting: gan.lr, gan.collapse.window_steps (the pipeline's keys)


COLLAPSE_MODES = ("rollback", "restart", "off")


@dataclass
class CollapseConfig:
    """When a run counts as collapsed and what recovery does. Checked once per logging interval."""

    # rollback is ours; restart is report B's own way ("the entire process would have to be restarted");
    # off detects and logs only.
    mode: str = setting("rollback", "On collapse: rollback (to the last healthy state, new seed, learning rate x "
                                    "recovery factor), restart (from step 0 with a new seed, as report B did), "
                                    "or off (log only).", choices=COLLAPSE_MODES, flag="collapse")
    warmup_steps: int = setting(1000, "Steps before collapse is judged (early losses swing, BN statistics settle).",
                                unit="steps", range=at_least(0), flag="collapse_warmup")
    window_steps: int = setting(1000, "Steps a symptom must persist to count as collapse.", unit="steps",
                                range=at_least(0), flag="collapse_window")
    d_loss_floor: float = setting(0.05, "'Discriminator wins': D loss (real + fake BCE) below this ...",
                                  range=at_least(0))
    g_loss_ceiling: float = setting(5.0, "... while G loss stays above this (D(G(z)) < e^-5, about 0.7%).",
                                    range=above(0))
    diversity_fraction: float = setting(0.2, "Diversity collapse: the samples' spread below this fraction of "
                                             "its healthy level.", range=between(0, 1, high_open=True))
    max_recoveries: int = setting(3, "Recoveries allowed per run; then a collapse is only logged.", range=at_least(0))
    lr_factor: float = setting(0.5, "Each rollback multiplies both learning rates by this (a restart keeps them).",
                               range=between(0, 1, low_open=True), flag="recovery_lr_factor")


@dataclass
class GanTrainConfig:
    steps: int = setting(REPORT_B_GAN_STEPS, "Optimisation steps, one D and one G update each (our reading of report "
                         "B: to 50,000, its 46,000-step snapshot kept).", unit="steps", range=POSITIVE, resumable=True)
    batch_size: int = setting(128, "Real images per step (the DCGAN tutorial's 128).", unit="images",
                              range=POSITIVE)
    lr: float = setting(2e-4, "Adam learning rate of both networks (the DCGAN tutorial's).", range=above(0))
    # DCGAN's momentum: the usual 0.9 makes GAN training oscillate.
    beta1: float = setting(0.5, "Adam beta1 (the DCGAN tutorial's 0.5).", range=between(0, 1, high_open=True))
    beta2: float = setting(0.999, "Adam beta2 (the DCGAN tutorial's, Adam's default).",
                           range=between(0, 1, high_open=True))
    nz: int = setting(100, "Noise dimension (the DCGAN tutorial's).", range=POSITIVE)
    ngf: int = setting(46, "Generator width: channels of its last hidden layer (46: report B's 635,812 "
                           "parameters).", range=POSITIVE)
    ndf: int = setting(46, "Discriminator width: channels of its first layer (46: report B's 344,264 "
                           "parameters).", range=POSITIVE)
    conditional: bool = setting(False, "Class-conditional generator and discriminator.")
    # Off by default: neither report B nor the PyTorch DCGAN tutorial it follows flips the real
    # images, and the generator then learns the images as they are.
    hflip: bool = setting(False, "Flip half of the real images left-right.")
    # Off by default: the tutorial report B took its code from trains in float32 (report B says nothing
    # of precision), and a DCGAN this small
    # gains little from bf16.
    amp: bool = setting(False, "bf16 autocast on CUDA (the losses stay float32); ignored on the CPU.")
    seed: int = setting(0, "Seed of the initial weights, noise, data order and flips.", check=check_seed)
    log_every: int = setting(100, "Steps per metrics row and collapse check.", unit="steps", range=POSITIVE)
    sample_every: int = setting(1000, "Steps per fixed-noise sample grid PNG.", unit="steps", range=POSITIVE,
                                resumable=True)
    checkpoint_every: int = setting(2000, "Steps per kept snapshot checkpoints/step_<N>.pt (and last.pt).",
                                    unit="steps", range=POSITIVE, resumable=True)
    collapse: CollapseConfig = field(default_factory=CollapseConfig)

    def validate(self) -> GanTrainConfig:
        check_fields(self, KEY_PREFIX)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GanTrainConfig:
        """From plain values (the pipeline's `gan` section, a saved summary): unknown keys and wrong
        types are ConfigErrors naming the key; `collapse` is a nested mapping."""
        return from_mapping(cls, values, KEY_PREFIX).validate()
