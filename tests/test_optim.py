"""The optimizer factory maps report A's names and hyper-parameters onto torch.optim."""

import pytest
import torch

from cifar_core.config import OptimConfig
from cifar_core.optim import build_loss, build_optimizer, build_scheduler


def _params():
    return [torch.nn.Parameter(torch.zeros(3))]


def test_sgd_takes_its_hyper_parameters():
    opt = build_optimizer(_params(), OptimConfig(name="sgd", lr=0.0498, momentum=0.0867, dampening=0.0415, weight_decay=1e-4))
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["dampening"], group["weight_decay"]) == (0.0498, 0.0867, 0.0415, 1e-4)


def test_adam_betas():
    opt = build_optimizer(_params(), OptimConfig(name="adam", lr=1e-3, beta1=0.85, beta2=0.9999))
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["betas"] == (0.85, 0.9999)


def test_rmsprop_alpha_momentum():
    opt = build_optimizer(_params(), OptimConfig(name="rmsprop", lr=1e-3, alpha=0.9, momentum=0.3))
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.RMSprop) and (group["alpha"], group["momentum"]) == (0.9, 0.3)


def test_adagrad_decay_and_accumulator():
    opt = build_optimizer(_params(), OptimConfig(name="adagrad", lr=0.01, lr_decay=0.05, initial_accumulator_value=0.2))
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.Adagrad)
    assert (group["lr_decay"], group["initial_accumulator_value"]) == (0.05, 0.2)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_schedules_move_the_learning_rate(schedule):
    cfg = OptimConfig(name="sgd", lr=0.1, schedule=schedule)
    opt = build_optimizer(_params(), cfg)
    sched = build_scheduler(opt, cfg, total_steps=10)
    seen = []
    for _ in range(10):
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert max(seen) <= 0.1 + 1e-12 and seen[-1] < 0.01


def test_no_schedule_is_none():
    assert build_scheduler(build_optimizer(_params(), OptimConfig()), OptimConfig(), 10) is None


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_loss_is_cross_entropy_with_the_configured_label_smoothing(smoothing):
    logits, labels = torch.randn(5, 100, generator=torch.Generator().manual_seed(0)), torch.arange(5)
    log_p = logits.log_softmax(1)
    # Label smoothing mixes the one-hot target with the uniform distribution over the 100 classes.
    expected = ((1 - smoothing) * -log_p[torch.arange(5), labels] + smoothing * -log_p.mean(1)).mean()
    assert torch.allclose(build_loss(OptimConfig(label_smoothing=smoothing))(logits, labels), expected, atol=1e-6)
