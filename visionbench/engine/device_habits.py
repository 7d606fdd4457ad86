"""The GPU habits of a training run, as options (issue 13): channels-last memory, ``torch.compile``,
cuDNN autotuning, fused optimizers (in :func:`visionbench.engine.optim.build_optimizer`).

* ``--channels-last``: the model's 4-D weights in NHWC memory order; convolutions then take and
  give NHWC tensors (a NCHW input is converted by the first one), which tensor cores prefer.
  Off by default: it has not been measured on a GPU here, and on the 2-core CPU it was mixed: a
  training step 1.45x faster for ``cnn-small`` at 32 px, 10% slower for ``resnet18`` at 32 px
  (``benchmarks/RESULTS.md``, issue 13).
* ``--compile``: the training forward and backward through ``torch.compile`` (default inductor
  backend), compiled at the first step of the run (minutes for a large model); evaluation runs
  the plain model. Off by default. A resumed run recompiles; weights are not bitwise the same
  across ``--compile`` on and off (other kernels), so resume with the setting the run was
  started with (``config.yaml`` keeps it).
* cuDNN autotuning (``torch.backends.cudnn.benchmark``) follows ``--no-deterministic``: the
  deterministic default keeps cuDNN's fixed algorithms.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def prepare_model(model: nn.Module, config: Any) -> nn.Module:
    """``model`` in channels-last memory order when ``config.channels_last`` (in place: the
    parameters stay the same objects, so an optimizer built on them is unaffected)."""
    if getattr(config, "channels_last", False):
        model.to(memory_format=torch.channels_last)
    return model


def configure_backends(config: Any, device: torch.device) -> None:
    """Turn cuDNN's autotuner on for runs that are not asked to be deterministic, on a GPU (it
    picks the fastest convolution algorithm per input shape, which may differ between runs)."""
    if device.type == "cuda" and not config.deterministic:
        torch.backends.cudnn.benchmark = True


def compiled(model: nn.Module, config: Any) -> nn.Module:
    """``model`` through ``torch.compile`` when ``config.compile`` (once: an already compiled
    model is returned as is), else ``model``."""
    if not getattr(config, "compile", False) or hasattr(model, "_orig_mod"):
        return model
    return torch.compile(model)  # type: ignore[return-value]
