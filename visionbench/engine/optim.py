"""Optimizers, learning-rate schedules with linear warmup, and an EMA of weights."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

# Devices whose fused optimizer kernels torch has for SGD, Adam and AdamW (one kernel for all the
# parameters instead of a few per tensor). On the 2-core CPU a fused AdamW step of resnet18 took 7 ms
# instead of 32 ms (foreach: 37 ms); benchmarks/RESULTS.md, issue 13.
FUSED_DEVICES = ("cuda", "cpu")


def build_optimizer(
    name: str, params: list[nn.Parameter] | Any, *, lr: float, momentum: float, nesterov: bool, weight_decay: float,
    device: torch.device | None = None,
) -> torch.optim.Optimizer:
    """``"sgd"`` (with momentum/Nesterov), ``"adam"`` or ``"adamw"``; with the fused implementation
    when the parameters are on ``device`` and it is one of :data:`FUSED_DEVICES` (``None``: torch's
    default implementation)."""
    fused = {"fused": True} if device is not None and device.type in FUSED_DEVICES else {}
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, **fused)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **fused)
    raise ValueError(f"optimizer must be one of 'sgd', 'adam', 'adamw'; got {name!r}")


def lr_factor_fn(
    schedule: str, *, total_steps: int, warmup_steps: int, step_every: int = 1, gamma: float = 0.1
) -> Callable[[int], float]:
    """Multiplier of the base LR at optimizer step ``s`` (for ``LambdaLR``).

    Args:
        schedule: ``"constant"``, ``"cosine"`` (to 0 at the last step), ``"step"`` (× ``gamma``
            every ``step_every`` steps) or ``"onecycle"`` (linear up over the warmup, then cosine
            down to 1/1000 of the peak, as in Smith & Topin 2017's annealing phase).
        total_steps: steps in the whole run; warmup_steps: linear warmup from ~0 to 1.
    """
    if schedule not in ("constant", "cosine", "step", "onecycle"):
        raise ValueError(f"schedule must be one of 'constant', 'cosine', 'step', 'onecycle'; got {schedule!r}")
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    if schedule == "onecycle":
        warmup_steps = max(warmup_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if schedule == "constant":
            return 1.0
        if schedule == "step":
            return gamma ** ((step - warmup_steps) // max(step_every, 1))
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        floor = 1e-3 if schedule == "onecycle" else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class ModelEMA:
    """Exponential moving average of a model's parameters and buffers.

    ``decay`` is warmed up as ``min(decay, (1 + n) / (10 + n))`` over the first updates
    (as in TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``) so early, random
    weights fade quickly.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in model.state_dict().items():
            shadow = self.shadow[name]
            if value.dtype.is_floating_point:
                shadow.mul_(d).add_(value.detach(), alpha=1 - d)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        """Shadow weights and update count, for the checkpoint."""
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.decay, self.updates = state["decay"], state["updates"]
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups with ``weight_decay`` on weight matrices and kernels only: norms' scales
    and biases (1-D parameters) are not decayed, the usual recipe of detectors and segmenters."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def scale_backbone_lr(groups: Any, model: nn.Module, scale: float, lr: float) -> list[dict[str, Any]]:
    """``groups`` (parameters, or parameter-group dicts as :func:`decay_groups` makes) with each
    group split in two: its backbone parameters at ``lr * scale``, the rest (the head) unchanged.

    ``LambdaLR`` multiplies each group's own initial ``lr`` by the schedule, so the backbone keeps
    the ratio ``scale`` through warmup and decay. Which parameters are the backbone:
    :func:`visionbench.models.parts.split_backbone`. Backbone groups come after the head groups and
    empty groups are dropped, so the group layout depends only on the model and the options.
    """
    from visionbench.models.parts import split_backbone

    backbone = {id(p) for p in split_backbone(model)[0]}
    listed = list(groups)  # a generator (model.parameters()) is read once
    if listed and not isinstance(listed[0], dict):
        listed = [{"params": listed}]
    heads, backbones = [], []
    for group in listed:
        params = list(group["params"])
        head = {**group, "params": [p for p in params if id(p) not in backbone]}
        back = {**group, "params": [p for p in params if id(p) in backbone],
                "lr": group.get("lr", lr) * scale}
        heads += [head] if head["params"] else []
        backbones += [back] if back["params"] else []
    return heads + backbones
