"""How a job runs (not what it computes): the device, loader workers, verbosity, process group."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from visionbench.engine.distributed import DistInfo

EVAL_SPLITS = ("test", "val")


@dataclass(frozen=True)
class Runtime:
    """How to run (not what to compute): device, loader workers, verbosity, process group.

    Attributes:
        eval_split: the split a finished run's best checkpoint is evaluated on and written as
            ``metrics.json``: ``"test"`` (``visionbench train``), or ``"val"`` for the trials of a
            hyperparameter search, which must never see the test split (visionbench/sweep/).
        on_epoch: called with each epoch's ``history.jsonl`` record once the epoch's checkpoint is
            written, on every rank (the record is the same on all); an exception it raises stops the
            run there (a search's pruner ends a trial this way, and the trial can still be resumed).
    """

    device: torch.device
    workers: int | None = None
    quiet: bool = False
    dist: DistInfo = field(default_factory=DistInfo)
    eval_split: str = "test"
    on_epoch: Callable[[dict[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        if self.eval_split not in EVAL_SPLITS:
            raise ValueError(f"eval_split must be one of {EVAL_SPLITS}; got {self.eval_split!r}.")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available (this process's local rank under torchrun), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu or auto.")
        if name == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        index = name.partition(":")[2]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise ValueError(f"device must be cuda or cuda:N with N < {torch.cuda.device_count()} (the GPUs visible "
                             f"here); got {name!r}.")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {name!r}.")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but Apple's MPS backend is not available here; use --device cpu "
                         "or auto.")
    return torch.device(name)


def autocast_dtype(amp: bool, device: torch.device) -> torch.dtype | None:
    """bfloat16 where the GPU has it, else float16 (with a GradScaler); ``None`` (off) on CPU."""
    if not (amp and device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
