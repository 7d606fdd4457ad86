"""Batch samplers whose order is a pure function of (seed, epoch): resumable and DDP-aware.

The training sampler keeps no hidden state: the batches of an epoch are recomputed from the seed
and the epoch number, and a resumed run simply skips the batches already done. Every rank computes
the same global permutation and takes its own interleaved share.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

BatchKey = tuple[int, int, list[int]]


class EpochBatchSampler(Sampler[BatchKey]):
    """Shuffled training batches for one epoch, yielded as ``(epoch, batch_number, indices)``.

    Args:
        num_samples: dataset length N.
        batch_size: per-process batch size B.
        seed, epoch: the permutation is drawn from ``torch.Generator`` seeded by both.
        start_batch: batches of this epoch already done (resume); they are skipped.
        rank, world_size: DDP position; each global batch of ``B * world_size`` indices is split
            across ranks.
        sample_weights: optional ``[N]`` weights for class-balanced sampling (with replacement).

    The permutation is padded by wrapping around so every batch is full: BatchNorm never sees a
    batch of one, and all ranks run the same number of steps.
    """

    def __init__(
        self, num_samples: int, batch_size: int, *, seed: int, epoch: int, start_batch: int = 0,
        rank: int = 0, world_size: int = 1, sample_weights: torch.Tensor | None = None,
    ) -> None:
        self.num_samples, self.batch_size = num_samples, batch_size
        self.seed, self.epoch, self.start_batch = seed, epoch, start_batch
        self.rank, self.world_size = rank, world_size
        self.sample_weights = sample_weights

    @staticmethod
    def batches_per_epoch(num_samples: int, batch_size: int, world_size: int = 1) -> int:
        """Steps in one epoch on each process."""
        return math.ceil(num_samples / (batch_size * world_size))

    def __len__(self) -> int:
        return self.batches_per_epoch(self.num_samples, self.batch_size, self.world_size) - self.start_batch

    def _global_order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        if self.sample_weights is not None:
            return torch.multinomial(self.sample_weights, self.num_samples, replacement=True, generator=generator)
        return torch.randperm(self.num_samples, generator=generator)

    def __iter__(self) -> Iterator[BatchKey]:
        order = self._global_order()
        steps = self.batches_per_epoch(self.num_samples, self.batch_size, self.world_size)
        total = steps * self.batch_size * self.world_size
        order = order.repeat(math.ceil(total / len(order)))[:total]  # wrap-around padding
        mine = order[self.rank :: self.world_size]  # (steps * B,)
        for batch_number in range(self.start_batch, steps):
            chunk = mine[batch_number * self.batch_size : (batch_number + 1) * self.batch_size]
            yield self.epoch, batch_number, chunk.tolist()


class ShardBatchSampler(Sampler[BatchKey]):
    """Evaluation batches over this rank's contiguous shard, in order, with no padding.

    Shards of ``ceil(N / world_size)`` cover every sample exactly once, unlike
    ``DistributedSampler``, which pads with duplicates and biases metrics.
    """

    def __init__(self, num_samples: int, batch_size: int, *, rank: int = 0, world_size: int = 1) -> None:
        per_rank = math.ceil(num_samples / world_size)
        self.start, self.stop = min(rank * per_rank, num_samples), min((rank + 1) * per_rank, num_samples)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil((self.stop - self.start) / self.batch_size)

    def __iter__(self) -> Iterator[BatchKey]:
        for number, first in enumerate(range(self.start, self.stop, self.batch_size)):
            yield 0, number, list(range(first, min(first + self.batch_size, self.stop)))
