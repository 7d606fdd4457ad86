"""PyTorch DDP helpers: ``torchrun`` sets the environment, we read it.

gloo on CPU, NCCL on CUDA. Rank 0 alone reads and writes the run directory (no shared filesystem
is assumed: what the others need of it is broadcast, :func:`main_then_broadcast`). Without
``torchrun`` everything degrades to a single process (rank 0 of 1) and no process group is created.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the one process that writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when running under a process group of more than one process."""
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1), or stay single."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    warning = shared_store_restart_warning(os.environ)
    if warning and info.is_main:
        print(f"warning: {warning}", file=sys.stderr)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return info


def shared_store_restart_warning(env: Mapping[str, str]) -> str | None:
    """Why a restart of this multi-machine run may hang, or ``None``.

    torchrun's agents share their rendezvous store with the workers by default, and each agent
    counts its restarts itself: after a restart the workers of two machines can read each other's
    previous addresses from it and wait forever (pytorch/pytorch#135712). With
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` every restart gets a fresh store.
    """
    restarts = int(env.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0)
    machines = int(env.get("GROUP_WORLD_SIZE", "1") or 1)
    if restarts > 0 and machines > 1 and env.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        return (f"torchrun --max-restarts {restarts} on {machines} machines shares its rendezvous store with the "
                "workers, and a restart can then hang (pytorch/pytorch#135712); start every torchrun with "
                "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment")
    return None


def shutdown_distributed() -> None:
    """Leave the process group, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op when single)."""
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over processes, in place; returns it."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(obj: Any, info: DistInfo) -> list[Any] | None:
    """Every process's ``obj`` in rank order on rank 0 (``None`` on the others): what only rank 0
    needs (the test report's inputs) is not copied to every process."""
    if not info.enabled:
        return [obj]
    out: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def main_then_broadcast(read: Callable[[], T], info: DistInfo) -> T:
    """``read()`` on rank 0 only, its result on every process.

    This is how a run reads its own files (config, resume state, best weights) with no shared
    filesystem: only rank 0 touches the run directory. A ``ValueError`` or ``OSError`` raised on
    rank 0 is raised on every process with the same message (the others would otherwise wait at
    the broadcast forever).
    """
    outcome: tuple[str, Any] | None = None
    if info.is_main:
        try:
            outcome = ("ok", read())
        except (ValueError, OSError) as error:
            if not info.enabled:
                raise
            outcome = ("error", f"{error}")
    outcome = broadcast_object(outcome, info)
    if outcome[0] == "error":
        raise ValueError(outcome[1])
    return outcome[1]
