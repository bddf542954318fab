"""Mode-collapse detection (report B lost whole runs to collapse and restarted them by hand).

Judged on each logging interval's means: `discriminator_wins` (D loss near 0 while G loss stays
high: G's gradients have vanished) and `diversity_collapse` (the fixed-noise samples' spread below a
fraction of the lower of the real images' and the run's best). A symptom that persists
`window_steps` is a collapse; `collapse.mode` says what the trainer does then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cifar_core.gan.config import CollapseConfig

DISCRIMINATOR_WINS = "discriminator_wins"
DIVERSITY_COLLAPSE = "diversity_collapse"
SYMPTOMS = (DISCRIMINATOR_WINS, DIVERSITY_COLLAPSE)


def image_diversity(images: torch.Tensor) -> float:
    """Mean pairwise distance of images in [-1, 1], as an RMS per-value difference.

    Images are first average-pooled to 8x8: collapse is about layout and colour, and at full
    resolution high-frequency noise alone could make identical-looking samples seem diverse.
    """
    pooled = F.adaptive_avg_pool2d(images.float(), 8).flatten(1)
    distances = torch.pdist(pooled)
    return float(distances.mean() / pooled.shape[1] ** 0.5)


@dataclass(frozen=True)
class Collapse:
    step: int
    reason: str  # one of SYMPTOMS
    detail: str  # human-readable: the values against the thresholds


class CollapseDetector:
    def __init__(self, config: CollapseConfig, reference_diversity: float):
        self.config = config
        self.reference_diversity = reference_diversity  # real images' spread
        self.best_diversity: float | None = None  # best seen since warmup, at checks without collapse
        self.reset()

    def start_over(self) -> None:
        """A run started over from step 0: nothing it has seen counts any more."""
        self.best_diversity = None
        self.reset()

    def reset(self) -> None:
        """Forget symptoms seen so far (the diversity level reached is kept)."""
        self.symptom_since: dict[str, int | None] = dict.fromkeys(SYMPTOMS)
        self.last_symptom_step: int | None = None

    def healthy_diversity(self) -> float | None:
        """The diversity level a healthy run has reached (None before the first judged check)."""
        if self.best_diversity is None:
            return None
        return min(self.reference_diversity, self.best_diversity)

    def symptoms(self, d_loss: float, g_loss: float, diversity: float) -> dict[str, str]:
        """The symptoms these interval means show, each with a note of values vs thresholds."""
        c = self.config
        found = {}
        if d_loss < c.d_loss_floor and g_loss > c.g_loss_ceiling:
            found[DISCRIMINATOR_WINS] = (
                f"D loss {d_loss:.4g} < {c.d_loss_floor:g} and G loss {g_loss:.4g} > {c.g_loss_ceiling:g}"
            )
        level = self.healthy_diversity()
        if level is not None and diversity < c.diversity_fraction * level:
            found[DIVERSITY_COLLAPSE] = (
                f"sample diversity {diversity:.4g} < {c.diversity_fraction:g} x healthy level {level:.4g}"
            )
        return found

    def observe(self, step: int, d_loss: float, g_loss: float, diversity: float) -> Collapse | None:
        """Record one check; return a Collapse once a symptom has persisted for the window."""
        if step < self.config.warmup_steps:
            return None
        found = self.symptoms(d_loss, g_loss, diversity)
        for name in SYMPTOMS:
            if name not in found:
                self.symptom_since[name] = None
            elif self.symptom_since[name] is None:
                self.symptom_since[name] = step
        if found:
            self.last_symptom_step = step
        if DIVERSITY_COLLAPSE not in found:
            self.best_diversity = max(self.best_diversity or 0.0, diversity)
        for name, note in found.items():
            held_for = step - self.symptom_since[name]
            if held_for >= self.config.window_steps:
                return Collapse(step, name, f"{note} for {held_for} steps")
        return None

    def is_healthy(self, step: int) -> bool:
        """True when no symptom was seen at any check in [step - window, step]."""
        return self.last_symptom_step is None or self.last_symptom_step < step - self.config.window_steps

    def state_dict(self) -> dict[str, Any]:
        return {
            "symptom_since": dict(self.symptom_since),
            "last_symptom_step": self.last_symptom_step,
            "best_diversity": self.best_diversity,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.symptom_since = dict(state["symptom_since"])
        self.last_symptom_step = state["last_symptom_step"]
        self.best_diversity = state["best_diversity"]
