"""The device-side plateau scheduler makes torch's ReduceLROnPlateau decisions, step for step."""

from __future__ import annotations

import math

import pytest
import torch

from scripts.training import DevicePlateau


def _loss_sequence(seed: int, n: int = 400) -> list[float]:
    """Noisy, partly decreasing, with flat stretches, exact repeats and a NaN: every branch of the rule."""
    g = torch.Generator().manual_seed(seed)
    values = (1.0 / (1 + 0.02 * torch.arange(n)) + 0.05 * torch.randn(n, generator=g)).tolist()
    values[100:160] = [values[99]] * 60  # a plateau of identical values
    values[200:230] = [v * (1 + 1e-5) for v in values[170:200]]  # changes below a relative threshold
    values[300] = math.nan
    return [float(torch.tensor(v, dtype=torch.float32)) for v in values]  # losses come as float32


def _pair(lr: float = 8e-4, **kwargs):
    p, q = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    ref_opt, dev_opt = torch.optim.Adam([p], lr=lr), torch.optim.Adam([q], lr=lr)
    return (
        torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, **kwargs),
        ref_opt,
        DevicePlateau(dev_opt, **kwargs),
        dev_opt,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "min", "factor": 0.5, "patience": 50},  # the paper's setting
        {"mode": "min", "factor": 0.5, "patience": 5, "threshold": 1e-2},
        {"mode": "min", "factor": 0.3, "patience": 3, "threshold": 0.01, "threshold_mode": "abs"},
        {"mode": "max", "factor": 0.5, "patience": 4},
        {"mode": "max", "factor": 0.5, "patience": 2, "threshold": 0.02, "threshold_mode": "abs", "cooldown": 7},
        {"mode": "min", "factor": 0.5, "patience": 1, "cooldown": 3, "min_lr": 1e-4},
        {"mode": "min", "factor": 0.9, "patience": 1, "eps": 1e-4},  # eps: tiny reductions are skipped
        {"mode": "min", "factor": 0.5, "patience": 0, "min_lr": 3e-4, "eps": 1e-5},
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_same_learning_rate_as_torch_at_every_step(kwargs, seed):
    ref, ref_opt, dev, dev_opt = _pair(**kwargs)
    reductions = 0
    for i, value in enumerate(_loss_sequence(seed)):
        before = ref_opt.param_groups[0]["lr"]
        ref.step(value)
        dev.step(torch.tensor(value, dtype=torch.float32))
        expected = ref_opt.param_groups[0]["lr"]
        reductions += expected < before
        assert float(dev.lr) == expected, (i, value)
        assert float(dev_opt.param_groups[0]["lr"]) == pytest.approx(expected, rel=1e-7)  # the optimiser's float32 copy
        assert int(dev.num_bad) == ref.num_bad_epochs and int(dev.cooldown_counter) == ref.cooldown_counter, i
    assert reductions > 0 or kwargs.get("eps", 0) > 1e-6  # the sequences do exercise the reduction


def test_adam_reads_the_scheduled_rate_without_a_host_value():
    w = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.Adam([w], lr=1e-2)
    sched = DevicePlateau(opt, factor=0.5, patience=0)
    assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)
    w.grad = torch.ones(4)
    opt.step()  # Adam's first step moves each weight by lr
    first = -w.detach().clone()
    sched.step(torch.tensor(1.0))
    sched.step(torch.tensor(2.0))  # worse: halves the rate
    w.grad = torch.ones(4)
    opt.step()
    assert torch.allclose(-w.detach() - first, torch.full((4,), 5e-3), rtol=1e-5)


def test_state_round_trip():
    ref, _, dev, _ = _pair(factor=0.5, patience=2)
    for v in (3.0, 2.0, 2.5, 2.6, 2.7, 2.8):
        dev.step(torch.tensor(v))
    state = dev.state_dict()
    _, _, other, other_opt = _pair(factor=0.5, patience=2)
    other.load_state_dict(state)
    assert float(other.lr) == float(dev.lr) == 4e-4 and float(other_opt.param_groups[0]["lr"]) == pytest.approx(4e-4)
    assert float(other.best) == 2.0 and int(other.num_bad) == int(dev.num_bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"mode": "up"}, "mode"), ({"threshold_mode": "x"}, "threshold_mode"), ({"factor": 1.0}, "factor")],
)
def test_bad_settings_are_refused(kwargs, message):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    with pytest.raises(ValueError, match=message):
        DevicePlateau(opt, **kwargs)
