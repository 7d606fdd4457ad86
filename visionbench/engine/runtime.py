"""How a job runs (not what it computes): the device, loader workers, verbosity, process group."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from visionbench.engine.distributed import DistInfo


@dataclass(frozen=True)
class Runtime:
    """How to run (not what to compute): device, loader workers, verbosity, process group."""

    device: torch.device
    workers: int | None = None
    quiet: bool = False
    dist: DistInfo = field(default_factory=DistInfo)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available (this process's local rank under torchrun), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu or auto.")
        if name == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {name!r}.")
    return torch.device(name)


def autocast_dtype(amp: bool, device: torch.device) -> torch.dtype | None:
    """bfloat16 where the GPU has it, else float16 (with a GradScaler); ``None`` (off) on CPU."""
    if not (amp and device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
