"""Tests of visionbench/engine/optim.py: optimizers, LR schedules with warmup, EMA of weights."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from visionbench.engine.optim import ModelEMA, build_optimizer, lr_factor_fn

SCHEDULES = ("constant", "cosine", "step", "onecycle")


# ----------------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_warmup_rises_linearly_to_one(schedule):
    warmup = 10
    factor = lr_factor_fn(schedule, total_steps=100, warmup_steps=warmup, step_every=30, gamma=0.5)
    values = [factor(s) for s in range(warmup + 1)]
    assert 0 < values[0] < 0.2
    steps = [b - a for a, b in zip(values[:-1], values[1:], strict=True)]
    assert all(d == pytest.approx(steps[0]) for d in steps), values  # linear, no jump at the end
    assert values[warmup] == pytest.approx(1.0)
    assert max(factor(s) for s in range(100)) == pytest.approx(1.0)


def test_constant_stays_one():
    factor = lr_factor_fn("constant", total_steps=50, warmup_steps=0)
    assert all(factor(s) == 1.0 for s in range(60))
    factor = lr_factor_fn("constant", total_steps=50, warmup_steps=5)
    assert all(factor(s) == 1.0 for s in range(5, 60))


def test_cosine_follows_the_cosine_and_ends_near_zero():
    total, warmup = 100, 10
    factor = lr_factor_fn("cosine", total_steps=total, warmup_steps=warmup)
    for s in range(warmup, total + 1):
        expected = 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))
        assert factor(s) == pytest.approx(expected, abs=1e-12)
    assert factor(total) == pytest.approx(0.0, abs=1e-12)
    assert factor(total - 1) < 1e-3
    values = [factor(s) for s in range(warmup, total + 1)]
    assert all(b <= a for a, b in zip(values[:-1], values[1:], strict=True))  # never rises after the warmup
    assert factor(total + 20) == pytest.approx(0.0, abs=1e-12)  # clamped past the end


def test_cosine_without_warmup_starts_at_one():
    factor = lr_factor_fn("cosine", total_steps=40, warmup_steps=0)
    assert factor(0) == 1.0
    assert factor(20) == pytest.approx(0.5)
    assert factor(40) == pytest.approx(0.0, abs=1e-12)


def test_step_drops_by_gamma_every_step_every_after_warmup():
    warmup, every, gamma = 5, 10, 0.1
    factor = lr_factor_fn("step", total_steps=100, warmup_steps=warmup, step_every=every, gamma=gamma)
    for s in range(warmup, 100):
        assert factor(s) == pytest.approx(gamma ** ((s - warmup) // every)), s
    assert factor(warmup) == 1.0
    assert factor(warmup + every - 1) == 1.0
    assert factor(warmup + every) == pytest.approx(gamma)
    assert factor(warmup + 2 * every) == pytest.approx(gamma**2)


def test_onecycle_peaks_at_one_and_ends_at_a_thousandth():
    total, warmup = 100, 20
    factor = lr_factor_fn("onecycle", total_steps=total, warmup_steps=warmup)
    assert factor(warmup) == pytest.approx(1.0)
    assert factor(total) == pytest.approx(1e-3, rel=1e-9)
    assert 1e-3 <= factor(total - 1) < 2e-3
    assert min(factor(s) for s in range(total + 1)) == pytest.approx(1e-3)


def test_onecycle_always_warms_up():
    factor = lr_factor_fn("onecycle", total_steps=50, warmup_steps=0)
    assert factor(0) < 1.0
    assert max(factor(s) for s in range(50)) == pytest.approx(1.0)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_warmup_longer_than_the_run_is_clipped(schedule):
    factor = lr_factor_fn(schedule, total_steps=10, warmup_steps=100)
    values = [factor(s) for s in range(10)]
    assert all(0 < v <= 1 for v in values)
    assert values[-1] == pytest.approx(1.0)  # the peak is still reached, on the last step


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedule_with_lambda_lr(schedule):
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.5)
    factor = lr_factor_fn(schedule, total_steps=20, warmup_steps=3, step_every=5, gamma=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    for s in range(20):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * factor(s))
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("name", ["linear", "Cosine", "", "one_cycle"])
def test_invalid_schedule_is_an_error_listing_the_schedules(name):
    with pytest.raises(ValueError) as info:
        lr_factor_fn(name, total_steps=10, warmup_steps=0)
    message = str(info.value)
    assert repr(name) in message
    for schedule in SCHEDULES:
        assert schedule in message


# ----------------------------------------------------------------------------------- optimizers


def params() -> list[nn.Parameter]:
    return list(nn.Linear(3, 2).parameters())


def test_build_sgd_with_momentum_nesterov_and_weight_decay():
    optimizer = build_optimizer("sgd", params(), lr=0.1, momentum=0.8, nesterov=True, weight_decay=1e-4)
    assert type(optimizer) is torch.optim.SGD
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.1, 0.8, True, 1e-4)
    plain = build_optimizer("sgd", params(), lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0)
    assert plain.param_groups[0]["nesterov"] is False and plain.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_build_adam_family(name, cls):
    optimizer = build_optimizer(name, params(), lr=3e-3, momentum=0.9, nesterov=False, weight_decay=5e-4)
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 3e-3 and group["weight_decay"] == 5e-4


def test_build_optimizer_takes_a_generator_of_parameters():
    model = nn.Linear(3, 2)
    optimizer = build_optimizer("adamw", model.parameters(), lr=1e-3, momentum=0.9, nesterov=False, weight_decay=0.0)
    assert len(optimizer.param_groups[0]["params"]) == 2


@pytest.mark.parametrize("name", ["adamm", "SGD", "rmsprop", ""])
def test_unknown_optimizer_is_an_error_naming_it(name):
    with pytest.raises(ValueError) as info:
        build_optimizer(name, params(), lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0)
    message = str(info.value)
    assert repr(name) in message
    for known in ("sgd", "adam", "adamw"):
        assert known in message


def test_optimizers_step():
    for name in ("sgd", "adam", "adamw"):
        model = nn.Linear(3, 1)
        before = copy.deepcopy(model.state_dict())
        optimizer = build_optimizer(name, model.parameters(), lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0)
        model(torch.ones(4, 3)).sum().backward()
        optimizer.step()
        assert not torch.equal(before["weight"], model.weight.detach()), name


# ----------------------------------------------------------------------------------- EMA


class Net(nn.Module):
    """Parameters, a float buffer and an integer buffer (BatchNorm's ``num_batches_tracked``)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.norm = nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x))


def perturb(model: nn.Module, generator: torch.Generator) -> None:
    """A training step's worth of change, and one forward pass in train mode for the BN buffers."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype))
    model.train()
    model(torch.randn(8, 4, generator=generator))


@pytest.mark.parametrize("decay", [0.999, 0.5, 0.0])
def test_ema_matches_a_slow_manual_average(decay):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = Net()
    ema = ModelEMA(model, decay=decay)
    expected = {k: v.detach().clone().double() for k, v in model.state_dict().items()}
    for n in range(1, 13):
        perturb(model, generator)
        ema.update(model)
        d = min(decay, (1 + n) / (10 + n))  # the documented warmup of the decay
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                expected[name] = d * expected[name] + (1 - d) * value.double()
            else:
                expected[name] = value.clone().double()
    assert ema.updates == 12
    for name, value in ema.shadow.items():
        assert value.dtype == model.state_dict()[name].dtype, name
        torch.testing.assert_close(value.double(), expected[name], rtol=1e-5, atol=1e-6, msg=name)


def test_ema_first_update_uses_the_warmed_up_decay():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    d = 2 / 11  # min(0.999, (1 + 1) / (10 + 1))
    torch.testing.assert_close(ema.shadow["weight"], torch.full((1, 2), 1 - d))


def test_ema_copies_integer_buffers():
    torch.manual_seed(0)
    model = Net()
    ema = ModelEMA(model, decay=0.999)
    for _ in range(3):
        model.train()
        model(torch.randn(8, 4))
    assert int(model.norm.num_batches_tracked) == 3
    ema.update(model)
    shadow = ema.shadow["norm.num_batches_tracked"]
    assert shadow.dtype == torch.long
    assert int(shadow) == 3


def test_ema_shadow_is_independent_of_the_model():
    model = Net()
    ema = ModelEMA(model)
    before = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    for name, value in ema.shadow.items():
        assert torch.equal(value, before[name]), name  # no update yet: the shadow has not moved


def test_ema_state_dict_round_trips(tmp_path):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(3)
    model = Net()
    ema = ModelEMA(model, decay=0.9)
    for _ in range(4):
        perturb(model, generator)
        ema.update(model)
    path = tmp_path / "ema.pt"
    torch.save(ema.state_dict(), path)

    restored = ModelEMA(Net(), decay=0.5)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored.decay == 0.9 and restored.updates == 4
    for name, value in ema.shadow.items():
        assert torch.equal(restored.shadow[name], value), name

    # Continuing from the restored state is the same as never stopping.
    perturb(model, generator)
    ema.update(model)
    restored.update(model)
    assert restored.updates == ema.updates == 5
    for name, value in ema.shadow.items():
        assert torch.equal(restored.shadow[name], value), name
