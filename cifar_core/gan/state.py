"""Everything a DCGAN run changes as it trains: networks, optimisers, RNG and counters.

`train_step` is one DCGAN update (discriminator, then generator). `snapshot`/`restore` copy the
state a rollback needs; `training_state`/`load_training_state` are what last.pt adds for resuming.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from cifar_core.checkpoint import check_optimizer_state, load_error_summary, load_weights
from cifar_core.device import Precision
from cifar_core.errors import CheckpointError
from cifar_core.gan.checkpoint import DISCRIMINATOR_NAME, GENERATOR_NAME, models_payload
from cifar_core.gan.collapse import CollapseDetector
from cifar_core.gan.config import GanTrainConfig
from cifar_core.models import create_model
from cifar_core.seeds import derive_seed, generator

# d_x = mean D(real images); d_g_z = mean D(generated images), before D's update.
METRIC_NAMES = ("d_loss", "g_loss", "d_x", "d_g_z")


def recovery_seed(seed: int, recovery: int) -> int:
    """A fresh, reproducible seed for the n-th recovery: different noise and a different data order."""
    return derive_seed(seed, "gan-recovery", recovery)


def noise_generator(seed: int, device: torch.device) -> torch.Generator:
    return generator(seed, "gan-noise", device=device)


class GanTraining:
    def __init__(self, cfg: GanTrainConfig, precision: Precision, num_classes: int = 100):
        """`precision`: the unit's device and arithmetic (bf16 autocast only when cfg.amp asks and the
        device takes it; the losses stay float32), decided once by the caller."""
        self.cfg = cfg
        self.precision = precision
        self.device = device = precision.device
        self.generator_kwargs = {
            "nz": cfg.nz,
            "ngf": cfg.ngf,
            "conditional": cfg.conditional,
            "num_classes": num_classes,
        }
        self.discriminator_kwargs = {
            "ndf": cfg.ndf,
            "conditional": cfg.conditional,
            "num_classes": num_classes,
        }
        self._initialise(cfg.seed)
        self.optimizer_steps = 0  # all updates made, including work later rolled back or started over
        self.recoveries = 0
        # Metrics are summed on the device and read once per logging interval: no sync per step.
        self.interval_sums = torch.zeros(len(METRIC_NAMES), device=device)
        self.interval_steps = 0

    def _initialise(self, seed: int) -> None:
        """Fresh networks and optimisers from `seed` at step 0, the configured learning rate."""
        # The same initial weights for the same seed, without touching the global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "init"))
            self.generator = create_model(GENERATOR_NAME, **self.generator_kwargs).to(self.device)
            self.discriminator = create_model(DISCRIMINATOR_NAME, **self.discriminator_kwargs).to(self.device)
        betas = (self.cfg.beta1, self.cfg.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.cfg.lr, betas=betas)
        self.rng = noise_generator(seed, self.device)  # the generator's input noise
        self.data_seed = seed  # the real images' order and flips (the loader's seed)
        self.lr = self.cfg.lr
        self.step = 0

    def start_over(self, seed: int) -> None:
        """Report B's way out of a collapse: everything from scratch with a new seed."""
        self._initialise(seed)
        self.interval_sums.zero_()
        self.interval_steps = 0

    def train_step(self, real: torch.Tensor, labels: torch.Tensor) -> None:
        batch = real.shape[0]
        noise = torch.randn(batch, self.cfg.nz, generator=self.rng, device=self.device)
        ones = torch.ones(batch, device=self.device)
        zeros = torch.zeros(batch, device=self.device)

        # Discriminator: real images towards 1, generated ones towards 0. Report B's sigmoid + BCE,
        # computed as BCE-with-logits for numerical safety.
        with self.precision.autocast():
            fake = self.generator(noise, labels)
            real_logits = self.discriminator.logits(real, labels).float()
            fake_logits = self.discriminator.logits(fake.detach(), labels).float()
        d_loss = F.binary_cross_entropy_with_logits(real_logits, ones) + F.binary_cross_entropy_with_logits(
            fake_logits, zeros
        )
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        # Generator: make the just-updated discriminator call its images real (non-saturating loss).
        with self.precision.autocast():
            fooled_logits = self.discriminator.logits(fake, labels).float()
        g_loss = F.binary_cross_entropy_with_logits(fooled_logits, ones)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()

        with torch.no_grad():
            self.interval_sums += torch.stack(
                [d_loss, g_loss, torch.sigmoid(real_logits).mean(), torch.sigmoid(fake_logits).mean()]
            )
        self.interval_steps += 1
        self.step += 1
        self.optimizer_steps += 1

    def take_interval_means(self) -> dict[str, float]:
        """Mean metrics since the last call (one device sync), then start a new interval."""
        means = (self.interval_sums / max(self.interval_steps, 1)).tolist()
        self.interval_sums.zero_()
        self.interval_steps = 0
        return dict(zip(METRIC_NAMES, means, strict=True))

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Generator output for fixed noise, in eval mode as `cifar gan sample` will run it."""
        self.generator.eval()
        images = self.generator(noise, labels)
        self.generator.train()
        return images

    def reseed(self, seed: int) -> None:
        self.rng = noise_generator(seed, self.device)
        self.data_seed = seed

    def interval_is_finite(self) -> bool:
        """No NaN or infinite loss since the last logged row (one device sync)."""
        return bool(torch.isfinite(self.interval_sums).all())

    def weights_are_finite(self) -> bool:
        """No NaN or infinite weight in either network (an update can break them before any loss shows it)."""
        params = [*self.generator.parameters(), *self.discriminator.parameters()]
        return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())

    def set_lr(self, lr: float) -> None:
        self.lr = lr
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups:
                group["lr"] = lr

    def models_payload(self) -> dict[str, Any]:
        return models_payload(
            self.generator, self.generator_kwargs, self.discriminator, self.discriminator_kwargs
        )

    def snapshot(self, detector: CollapseDetector) -> dict[str, Any]:
        """A copy of the weights, optimiser moments and detector state at this (interval-boundary) step."""
        return copy.deepcopy(
            {
                "step": self.step,
                "generator": self.generator.state_dict(),
                "discriminator": self.discriminator.state_dict(),
                "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(),
                "detector": detector.state_dict(),
            }
        )

    def restore(self, snapshot: dict[str, Any], detector: CollapseDetector) -> None:
        """Return to a snapshot's weights and step; lr, seeds and counters are the caller's to set."""
        self.generator.load_state_dict(snapshot["generator"])
        self.discriminator.load_state_dict(snapshot["discriminator"])
        self.opt_g.load_state_dict(snapshot["opt_g"])
        self.opt_d.load_state_dict(snapshot["opt_d"])
        detector.load_state_dict(snapshot["detector"])
        self.set_lr(self.lr)  # loading optimiser state brought back the snapshot's learning rate
        self.step = snapshot["step"]
        self.interval_sums.zero_()
        self.interval_steps = 0

    def training_state(self) -> dict[str, Any]:
        return {
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.get_state(),
            "data_seed": self.data_seed,
            "lr": self.lr,
            "optimizer_steps": self.optimizer_steps,
            "recoveries": self.recoveries,
            "interval_sums": self.interval_sums.cpu(),
            "interval_steps": self.interval_steps,
        }

    def load_training_state(self, checkpoint: dict[str, Any], source: str = "last.pt") -> None:
        """What last.pt holds (its fields checked by `read_gan_checkpoint`) into these networks,
        optimisers and generator; what still does not fit them is a CheckpointError naming it."""
        if "training" not in checkpoint:
            raise CheckpointError(f"{source} has no 'training': it is a snapshot, not a run's last.pt")
        state = checkpoint["training"]
        load_weights(self.generator, checkpoint["model_state"], f"{source}: model_state", GENERATOR_NAME)
        load_weights(self.discriminator, checkpoint["discriminator_state"], f"{source}: discriminator_state",
                     DISCRIMINATOR_NAME)
        for name, optimizer in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            check_optimizer_state(state[name], optimizer, f"{source}: training.{name}")
            try:
                optimizer.load_state_dict(state[name])
            except (RuntimeError, ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{source}: training.{name} does not fit the optimiser "
                                      f"({load_error_summary(exc)})") from None
        try:
            self.rng.set_state(state["rng"])
        except (RuntimeError, TypeError, ValueError):  # another size: a generator of another device
            raise CheckpointError(f"{source}: training.rng is not a state of this run's {self.device.type} noise "
                                  "generator (was the run moved between CPU and GPU?)") from None
        self.data_seed = state["data_seed"]
        self.lr = state["lr"]
        self.step = checkpoint["step"]
        self.optimizer_steps = state["optimizer_steps"]
        self.recoveries = state["recoveries"]
        self.interval_sums.copy_(state["interval_sums"])
        self.interval_steps = state["interval_steps"]
