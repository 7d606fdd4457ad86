"""Streaming accumulators under DDP: two gloo processes, each with half the data, all-reduce to
exactly the matrix of one process over everything."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from visionbench.metrics import ConfusionMatrixAccumulator, confusion_matrix

K = 7


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, K, (1001,), generator=g), torch.randint(0, K, (1001,), generator=g)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)  # forked: no OpenMP pool inherited from the parent is touched
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    preds, target = _data()
    shard = slice(0, 500) if rank == 0 else slice(500, None)  # unequal shards, each sample once
    accumulator = ConfusionMatrixAccumulator(K)
    accumulator.update(preds[shard], target[shard])
    accumulator.sync()
    torch.save(accumulator.matrix, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_sync_over_two_processes_equals_one_process(tmp_path: Path) -> None:
    # Forked, not spawned: a spawned process imports torch and this module again (seconds each).
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="fork")
    preds, target = _data()
    expected = confusion_matrix(preds, target, K)
    for rank in range(2):
        assert torch.equal(torch.load(tmp_path / f"rank{rank}.pt", weights_only=True), expected)


def test_sync_without_process_group_is_a_no_op() -> None:
    accumulator = ConfusionMatrixAccumulator(3)
    accumulator.update(torch.tensor([0, 1]), torch.tensor([0, 2]))
    before = accumulator.matrix.clone()
    assert torch.equal(accumulator.sync().matrix, before)
