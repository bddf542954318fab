"""The collapse detector on synthetic loss/diversity sequences, and the diversity measure."""

from __future__ import annotations

import torch

from cifar_core.gan.collapse import DISCRIMINATOR_WINS, DIVERSITY_COLLAPSE, CollapseDetector, image_diversity
from cifar_core.gan.config import CollapseConfig

HEALTHY = (1.2, 1.5, 0.30)  # D loss, G loss, diversity (real images: 0.35)


def detector(**overrides) -> CollapseDetector:
    config = CollapseConfig(**{"warmup_steps": 100, "window_steps": 300, **overrides})
    return CollapseDetector(config, reference_diversity=0.35)


def run(d: CollapseDetector, sequence, every=100):
    """Feed (d_loss, g_loss, diversity) checks at steps every, 2*every, ...; return the first collapse."""
    for i, values in enumerate(sequence, start=1):
        found = d.observe(i * every, *values)
        if found is not None:
            return found
    return None


def test_healthy_sequence_never_fires():
    d = detector()
    noisy = [(1.2 + 0.3 * (i % 3), 1.0 + 2.0 * (i % 2), 0.25 + 0.02 * (i % 4)) for i in range(200)]
    assert run(d, noisy) is None
    assert d.is_healthy(200 * 100)


def test_discriminator_winning_for_the_window_fires():
    d = detector()
    collapse = run(d, [HEALTHY] * 5 + [(0.01, 9.0, 0.3)] * 10)
    assert collapse is not None and collapse.reason == DISCRIMINATOR_WINS
    assert collapse.step == 600 + 300  # symptom from step 600, persisted 300 steps
    assert "D loss 0.01" in collapse.detail and "300 steps" in collapse.detail


def test_short_spike_does_not_fire_but_marks_state_unhealthy():
    d = detector()
    assert run(d, [HEALTHY] * 3 + [(0.01, 9.0, 0.3)] * 2 + [HEALTHY] * 2) is None
    assert not d.is_healthy(700)  # symptom seen at step 500, within the 300-step window
    d.observe(800, *HEALTHY)
    assert d.is_healthy(900)  # last symptom at 500 < 900 - 300


def test_low_d_loss_alone_is_not_collapse():
    # D confident but G still close: a normal phase of GAN training.
    assert run(detector(), [(0.01, 2.0, 0.3)] * 20) is None


def test_diversity_collapse_fires():
    collapse = run(detector(), [HEALTHY] * 3 + [(1.0, 1.0, 0.01)] * 10)
    assert collapse is not None and collapse.reason == DIVERSITY_COLLAPSE
    assert collapse.step == 400 + 300


def test_warmup_is_not_judged():
    d = detector(warmup_steps=1000)
    assert run(d, [(0.0, 20.0, 0.0)] * 9) is None  # steps 100..900
    assert d.last_symptom_step is None


def test_zero_window_fires_at_once():
    assert run(detector(window_steps=0), [HEALTHY, (1.0, 1.0, 0.0)]).step == 200


def test_state_round_trip_continues_identically():
    a = detector()
    run(a, [HEALTHY] * 3 + [(0.01, 9.0, 0.3)] * 2)
    b = detector()
    b.load_state_dict(a.state_dict())
    assert a.observe(600, 0.01, 9.0, 0.3) == b.observe(600, 0.01, 9.0, 0.3)
    assert a.observe(800, 0.01, 9.0, 0.3) == b.observe(800, 0.01, 9.0, 0.3) is not None


def test_image_diversity():
    generator = torch.Generator().manual_seed(0)
    varied = torch.rand(16, 3, 32, 32, generator=generator) * 2 - 1
    same = varied[:1].repeat(16, 1, 1, 1)
    assert image_diversity(same) == 0.0
    assert image_diversity(varied) > 0
    # Pixel noise mostly averages out at 8x8: it must not pass for diversity.
    noise_only = same + 0.5 * torch.randn(16, 3, 32, 32, generator=generator)
    full_resolution_spread = 0.5 * 2**0.5  # RMS difference of two independent noise draws
    assert image_diversity(noise_only) < 0.3 * full_resolution_spread


def test_diversity_still_rising_from_faint_early_samples_is_healthy():
    # Early samples are faint (tiny spread) and grow: judged against the run's own best, not real images'.
    rising = [(1.3, 0.8, 0.0003 * 1.5**i) for i in range(20)]
    assert run(detector(), rising) is None


def test_diversity_level_is_capped_by_real_images():
    d = detector(window_steps=0)
    d.observe(100, 1.2, 1.5, 5.0)  # noisier than real images: the level stays the real 0.35
    assert d.healthy_diversity() == 0.35
    assert d.observe(200, 1.2, 1.5, 0.06).reason == DIVERSITY_COLLAPSE  # 0.06 < 0.2 x 0.35
