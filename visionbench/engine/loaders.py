"""The data side of the loop: a task's splits as batch datasets, and their loaders.

Every split dataset is indexed by a whole batch key ``(epoch, batch_number, indices)`` from
:mod:`visionbench.engine.sampling` and returns the loaded batch, so loaders use ``batch_size=None``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from visionbench.data.transforms import identity_collate
from visionbench.engine.runtime import Runtime
from visionbench.engine.sampling import EpochBatchSampler, ShardBatchSampler


@dataclass(frozen=True)
class DataBundle:
    """A task's dataset with its train and eval views, and the model input size.

    Attributes:
        data: the raw splits and class names (``ClassificationData`` or ``TaskData``).
        train, val, test: batch datasets (indexed by batch keys).
        image_size: ``(H, W)`` the model gets, or ``None`` when images keep their own sizes.
        augment: the resolved augmentation preset.
        mean, std: the per-channel normalisation of ``[0, 1]`` images (``None``: the model
            normalises its own input, as torchvision's detectors do).
        native_size: classification: ``(H, W)`` of every stored image when all share one size
            (in-memory datasets), so equal-sized inputs are not resized.
        resize_size: classification on pretrained weights: the short side images are resized to
            before the centre crop to ``image_size`` (the weights' own preprocessing), else ``None``.
    """

    data: Any
    train: Dataset
    val: Dataset
    test: Dataset
    image_size: tuple[int, int] | None
    augment: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    native_size: tuple[int, int] | None = None
    resize_size: int | None = None


def loader_workers(runtime: Runtime, dataset: Any) -> int:
    """Loader workers: as asked, else 0 for in-memory data (workers cost more than they save),
    else up to 4 for files."""
    if runtime.workers is not None:
        return runtime.workers
    if isinstance(getattr(getattr(dataset, "base", None), "images", None), torch.Tensor):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _loader(dataset: Dataset, sampler: Any, runtime: Runtime) -> DataLoader:
    return DataLoader(
        dataset, sampler=sampler, batch_size=None, collate_fn=identity_collate,
        num_workers=loader_workers(runtime, dataset), pin_memory=runtime.device.type == "cuda",
        # A private generator: creating the loader must not consume the global RNG, which the
        # checkpoint captures for dropout.
        generator=torch.Generator().manual_seed(0),
    )


def train_loader(bundle: DataBundle, config: Any, runtime: Runtime, *, epoch: int, start_batch: int,
                 sample_weights: torch.Tensor | None = None) -> DataLoader:
    """Loader over this epoch's shuffled (or weighted) batches, skipping ``start_batch``."""
    sampler = EpochBatchSampler(
        len(bundle.train), config.batch_size, seed=config.seed, epoch=epoch, start_batch=start_batch,
        rank=runtime.dist.rank, world_size=runtime.dist.world_size, sample_weights=sample_weights,
    )
    return _loader(bundle.train, sampler, runtime)


def eval_loader(dataset: Dataset, config: Any, runtime: Runtime) -> DataLoader:
    """Loader over this rank's shard of ``dataset``, in order, each sample once."""
    sampler = ShardBatchSampler(len(dataset), config.eval_batch_size, rank=runtime.dist.rank,  # type: ignore[arg-type]
                                world_size=runtime.dist.world_size)
    return _loader(dataset, sampler, runtime)
