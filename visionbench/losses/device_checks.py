"""Value checks of loss inputs that need not make a GPU training step wait.

A check such as ``bad = target[target >= K]; if bad.numel(): raise`` reads a GPU result on the
host, so the step waits there for the GPU to finish its queue. Inside :func:`device_asserts` (the
training step, :func:`visionbench.engine.train.train_step`) the losses check the values of CUDA
tensors with a device-side assertion instead (:func:`assert_on_device`): nothing waits, and a bad
value stops the process at its next synchronisation with the assertion's message. Everywhere else,
and always on the CPU where the host check is free, the losses raise their ``ValueError`` naming
the value at once. The engine's datasets check labels, masks and boxes when they read them, so in
training the assertion is a last guard.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch

_DEVICE_ASSERTS: ContextVar[bool] = ContextVar("visionbench_device_asserts", default=False)


@contextlib.contextmanager
def device_asserts() -> Iterator[None]:
    """Within the block, value checks of CUDA tensors are device-side assertions (no host sync)."""
    token = _DEVICE_ASSERTS.set(True)
    try:
        yield
    finally:
        _DEVICE_ASSERTS.reset(token)


def asserts_on_device(tensor: torch.Tensor) -> bool:
    """Whether value checks of ``tensor`` are device-side assertions: a CUDA tensor inside
    :func:`device_asserts`; otherwise the caller checks on the host and raises at once."""
    return tensor.device.type == "cuda" and _DEVICE_ASSERTS.get()


def assert_on_device(ok: torch.Tensor, message: str) -> None:
    """Assert, without a host sync, that every element of the bool tensor ``ok`` is true."""
    torch._assert_async(ok.all(), message)
