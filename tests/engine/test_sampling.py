"""Tests of visionbench/engine/sampling.py: resumable, DDP-aware batch samplers."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from visionbench.engine.sampling import EpochBatchSampler, ShardBatchSampler


def batches(num_samples: int, batch_size: int, **kwargs) -> list[list[int]]:
    """The index lists of one epoch (checking the ``(epoch, number, indices)`` keys on the way)."""
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("epoch", 0)
    sampler = EpochBatchSampler(num_samples, batch_size, **kwargs)
    keys = list(sampler)
    assert len(keys) == len(sampler)
    start = kwargs.get("start_batch", 0)
    for offset, (epoch, number, _) in enumerate(keys):
        assert epoch == kwargs["epoch"]
        assert number == start + offset
    return [indices for _, _, indices in keys]


# ----------------------------------------------------------------------------------- EpochBatchSampler


def test_same_seed_and_epoch_give_the_same_batches():
    assert batches(103, 8, seed=3, epoch=2) == batches(103, 8, seed=3, epoch=2)


def test_different_epochs_and_seeds_give_different_orders():
    assert batches(103, 8, seed=3, epoch=0) != batches(103, 8, seed=3, epoch=1)
    assert batches(103, 8, seed=3, epoch=0) != batches(103, 8, seed=4, epoch=0)


def test_order_is_independent_of_the_global_rng():
    torch.manual_seed(1)
    first = batches(50, 4, seed=7, epoch=1)
    torch.manual_seed(2)
    torch.rand(100)
    assert batches(50, 4, seed=7, epoch=1) == first


def test_the_order_is_shuffled():
    flat = [i for batch in batches(200, 10, seed=0, epoch=0) for i in batch]
    assert flat != list(range(200))


@pytest.mark.parametrize("num_samples, batch_size", [(100, 10), (103, 8), (7, 3), (5, 8), (1, 4), (64, 64), (65, 64)])
def test_every_sample_appears_and_every_batch_is_full(num_samples, batch_size):
    for epoch in range(3):
        result = batches(num_samples, batch_size, seed=1, epoch=epoch)
        assert len(result) == math.ceil(num_samples / batch_size)
        assert all(len(batch) == batch_size for batch in result)
        flat = [i for batch in result for i in batch]
        assert set(flat) == set(range(num_samples))
        counts = Counter(flat)
        # Padding wraps around the permutation: a sample is used at most once more than any other.
        assert max(counts.values()) - min(counts.values()) <= 1
        if batch_size <= num_samples:
            # The first N positions are one permutation; only the wrapped tail repeats.
            assert sorted(flat[:num_samples]) == list(range(num_samples))
            assert flat[num_samples:] == flat[: len(flat) - num_samples]


def test_batches_per_epoch():
    assert EpochBatchSampler.batches_per_epoch(100, 10) == 10
    assert EpochBatchSampler.batches_per_epoch(101, 10) == 11
    assert EpochBatchSampler.batches_per_epoch(101, 10, world_size=2) == 6
    assert EpochBatchSampler.batches_per_epoch(3, 10, world_size=4) == 1


@pytest.mark.parametrize("num_samples, batch_size", [(103, 8), (100, 10), (9, 4)])
def test_start_batch_yields_the_rest_of_the_uninterrupted_order(num_samples, batch_size):
    full = batches(num_samples, batch_size, seed=5, epoch=3)
    for k in range(len(full) + 1):
        sampler = EpochBatchSampler(num_samples, batch_size, seed=5, epoch=3, start_batch=k)
        assert len(sampler) == len(full) - k
        rest = batches(num_samples, batch_size, seed=5, epoch=3, start_batch=k)
        assert rest == full[k:]


@pytest.mark.parametrize("num_samples, batch_size", [(103, 8), (100, 5), (10, 4), (3, 2)])
def test_two_ranks_partition_each_global_batch(num_samples, batch_size):
    world = 2
    ranks = [batches(num_samples, batch_size, seed=2, epoch=1, rank=r, world_size=world) for r in range(world)]
    assert len(ranks[0]) == len(ranks[1]) == EpochBatchSampler.batches_per_epoch(num_samples, batch_size, world)
    # The single-process order with the global batch size B * world_size.
    global_batches = batches(num_samples, batch_size * world, seed=2, epoch=1)
    assert len(global_batches) == len(ranks[0])
    covered = []
    for step, global_batch in enumerate(global_batches):
        parts = [ranks[r][step] for r in range(world)]
        assert all(len(part) == batch_size for part in parts)
        assert Counter(parts[0]) + Counter(parts[1]) == Counter(global_batch)
        covered += parts[0] + parts[1]
    assert set(covered) == set(range(num_samples))


def test_ranks_resume_consistently():
    full = [batches(50, 4, seed=0, epoch=0, rank=r, world_size=3) for r in range(3)]
    for r in range(3):
        assert batches(50, 4, seed=0, epoch=0, rank=r, world_size=3, start_batch=2) == full[r][2:]


def imbalanced_weights() -> tuple[torch.Tensor, torch.Tensor]:
    targets = torch.cat([torch.zeros(900, dtype=torch.long), torch.ones(100, dtype=torch.long)])
    targets = targets[torch.randperm(1000, generator=torch.Generator().manual_seed(0))]
    counts = torch.bincount(targets).double()
    return targets, (1.0 / counts)[targets]


def test_class_balanced_sampling_draws_classes_roughly_equally():
    targets, weights = imbalanced_weights()
    drawn = Counter()
    for epoch in range(3):
        for batch in batches(1000, 50, seed=0, epoch=epoch, sample_weights=weights):
            drawn.update(targets[batch].tolist())
    total = drawn[0] + drawn[1]
    assert total == 3000
    # Expected 1500 each (standard deviation ≈ 27); without balancing class 1 would get ≈ 300.
    assert abs(drawn[0] - drawn[1]) < 300, drawn


def test_class_balanced_sampling_is_reproducible_and_varies_by_epoch():
    _, weights = imbalanced_weights()
    first = batches(1000, 50, seed=4, epoch=2, sample_weights=weights)
    assert first == batches(1000, 50, seed=4, epoch=2, sample_weights=weights)
    assert first != batches(1000, 50, seed=4, epoch=3, sample_weights=weights)
    assert all(len(batch) == 50 for batch in first)
    assert len(first) == 20


def test_class_balanced_resume_matches():
    _, weights = imbalanced_weights()
    full = batches(1000, 64, seed=1, epoch=0, sample_weights=weights)
    assert batches(1000, 64, seed=1, epoch=0, start_batch=5, sample_weights=weights) == full[5:]


def test_zero_weight_samples_are_never_drawn():
    weights = torch.ones(100, dtype=torch.double)
    weights[50:] = 0
    flat = [i for batch in batches(100, 10, seed=0, epoch=0, sample_weights=weights) for i in batch]
    assert all(i < 50 for i in flat)


# ----------------------------------------------------------------------------------- ShardBatchSampler


def shard(num_samples: int, batch_size: int, rank: int, world_size: int) -> list[list[int]]:
    sampler = ShardBatchSampler(num_samples, batch_size, rank=rank, world_size=world_size)
    keys = list(sampler)
    assert len(keys) == len(sampler)
    assert [number for _, number, _ in keys] == list(range(len(keys)))
    return [indices for _, _, indices in keys]


COMBOS = [
    (n, w, b) for n in (0, 1, 2, 3, 5, 7, 10, 16, 33, 100, 101) for w in (1, 2, 3, 4, 8) for b in (1, 2, 3, 7, 64)
]


@pytest.mark.parametrize("num_samples, world_size, batch_size", COMBOS)
def test_shards_cover_every_sample_exactly_once_in_order(num_samples, world_size, batch_size):
    flat = []
    for rank in range(world_size):
        for batch in shard(num_samples, batch_size, rank, world_size):
            assert 1 <= len(batch) <= batch_size
            flat += batch
    assert flat == list(range(num_samples))  # every sample once, in order, no padding


def test_fewer_samples_than_ranks():
    assert [shard(2, 4, r, 4) for r in range(4)] == [[[0]], [[1]], [], []]
    assert [shard(0, 4, r, 2) for r in range(2)] == [[], []]


def test_shard_batches_are_full_except_the_last():
    result = shard(23, 5, 0, 1)
    assert [len(b) for b in result] == [5, 5, 5, 5, 3]
