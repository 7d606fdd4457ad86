"""The data side of the loop: a task's splits as batch datasets, and their loaders.

Every split dataset is indexed by a whole batch key ``(epoch, batch_number, indices)`` from
:mod:`visionbench.engine.sampling` and returns the loaded batch, so loaders use ``batch_size=None``.

The training loader (:func:`train_loader`) follows ``DESIGN.md`` ("Data on the device"):

* on a GPU, an in-memory classification split whose batches are gathered (no per-sample
  transform) is moved there once, uint8, when it takes at most :data:`DEVICE_DATA_SHARE` of the
  free GPU memory (:func:`place_train_data`); its batches are then gathered, augmented and
  normalised on the GPU, in the main process;
* otherwise on a GPU, loader workers (or the main process) do the first stage of a
  classification batch (:meth:`~visionbench.data.transforms.TransformedDataset.load`: decoding,
  per-sample transforms, uint8), the batch is pinned and copied without blocking, and the second
  stage (:meth:`~visionbench.data.transforms.TransformedDataset.finish`: normalisation, affine,
  erasing, mixing) runs on the GPU;
* on the CPU the whole batch is made where it is loaded (in the workers when there are some);
* with workers, one DataLoader serves the whole run with persistent workers (no start-up per
  epoch): its sampler is set to each epoch and the batches already done, so a resumed run still
  sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from visionbench.data.transforms import TransformedDataset, identity_collate
from visionbench.engine.runtime import Runtime
from visionbench.engine.sampling import BatchKey, EpochBatchSampler, ShardBatchSampler

# The share of free GPU memory an in-memory training split may take there (uint8, padded and mirrored
# for the crop and flip): the model, its activations and the optimizer state keep the rest.
DEVICE_DATA_SHARE = 0.25


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
    # The training loader kept across epochs (persistent workers), with the settings it was made for.
    loaders: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def loader_workers(runtime: Runtime, dataset: Any) -> int:
    """Loader workers: as asked, else 0 for in-memory data (workers cost more than they save),
    else up to 4 for files."""
    if runtime.workers is not None:
        return runtime.workers
    if isinstance(getattr(getattr(dataset, "base", None), "images", None), torch.Tensor):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _loader(dataset: Dataset, sampler: Any, runtime: Runtime, *, workers: int | None = None,
            persistent: bool = False) -> DataLoader:
    workers = loader_workers(runtime, dataset) if workers is None else workers
    on_host = getattr(getattr(dataset, "stages", dataset), "device", torch.device("cpu")).type == "cpu"
    return DataLoader(
        dataset, sampler=sampler, batch_size=None, collate_fn=identity_collate,
        # Pinned batches copy to the GPU without blocking; batches made on the GPU need no pinning.
        num_workers=workers, pin_memory=runtime.device.type == "cuda" and on_host,
        persistent_workers=persistent and workers > 0,
        # A private generator: creating the loader must not consume the global RNG, which the
        # checkpoint captures for dropout.
        generator=torch.Generator().manual_seed(0),
    )


def fits_on_device(nbytes: int, free_bytes: int) -> bool:
    """Whether data of ``nbytes`` may live on a device with ``free_bytes`` free (see
    :data:`DEVICE_DATA_SHARE`)."""
    return nbytes <= DEVICE_DATA_SHARE * free_bytes


def place_train_data(dataset: Dataset, device: torch.device, workers: int, *, free_bytes: int | None = None) -> bool:
    """Move an in-memory training split to the GPU ``device`` once, when it gathers its batches
    (:attr:`~visionbench.data.transforms.TransformedDataset.gathers`), the main process loads them
    (``workers == 0``: worker processes cannot use CUDA tensors) and it fits
    (:func:`fits_on_device`; ``free_bytes``: the device's free memory, measured when ``None``).
    Returns whether the split is on ``device``."""
    if not isinstance(dataset, TransformedDataset) or not dataset.gathers or workers > 0:
        return False
    if dataset.device == device:
        return True
    if device.type != "cuda":
        return False
    free = torch.cuda.mem_get_info(device)[0] if free_bytes is None else free_bytes
    if not fits_on_device(dataset.stored_bytes(), free):
        return False
    dataset.to_device(device)
    return True


class RunSampler(Sampler[BatchKey]):
    """The training sampler of a whole run: :class:`EpochBatchSampler` of the epoch (and the
    batches of it already done) last given to :meth:`set_epoch`, so one DataLoader with persistent
    workers serves every epoch."""

    def __init__(self, num_samples: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1,
                 sample_weights: torch.Tensor | None = None) -> None:
        self.settings = {"seed": seed, "rank": rank, "world_size": world_size, "sample_weights": sample_weights}
        self.num_samples, self.batch_size = num_samples, batch_size
        self.current = EpochBatchSampler(num_samples, batch_size, epoch=0, **self.settings)

    def set_epoch(self, epoch: int, start_batch: int) -> None:
        """The batches of ``epoch`` from ``start_batch`` on are the next to be yielded."""
        self.current = EpochBatchSampler(self.num_samples, self.batch_size, epoch=epoch, start_batch=start_batch,
                                         **self.settings)

    def __len__(self) -> int:
        return len(self.current)

    def __iter__(self) -> Iterator[BatchKey]:
        return iter(self.current)


class LoadStage(Dataset):
    """The first stage of a :class:`~visionbench.data.transforms.TransformedDataset`'s batches
    (:meth:`~visionbench.data.transforms.TransformedDataset.load`), for loaders whose batches are
    finished on the device."""

    def __init__(self, stages: TransformedDataset) -> None:
        self.stages = stages

    def __len__(self) -> int:
        return len(self.stages)

    def __getitem__(self, key: BatchKey) -> Any:
        return self.stages.load(key)


class EpochBatches:
    """One epoch of a training DataLoader, each batch finished by ``finish`` (on the device) when
    given. Iterate it through :func:`visionbench.engine.batches.loader_batches`."""

    def __init__(self, loader: DataLoader, finish: Callable[[Any], Any] | None) -> None:
        self.loader, self.finish = loader, finish
        self.persistent_workers = loader.persistent_workers

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> _FinishedIterator:
        return _FinishedIterator(self.loader, self.finish)


class _FinishedIterator:
    """The batches of a DataLoader iterator, finished; shuts the loader's workers down on request."""

    def __init__(self, loader: DataLoader, finish: Callable[[Any], Any] | None) -> None:
        self.loader, self.finish, self.inner = loader, finish, iter(loader)

    def __iter__(self) -> _FinishedIterator:
        return self

    def __next__(self) -> Any:
        batch = next(self.inner)
        return self.finish(batch) if self.finish is not None else batch

    def _shutdown_workers(self) -> None:
        """Stop the worker processes (also persistent ones: the loader then starts new ones if used again)."""
        shutdown = getattr(self.inner, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        if getattr(self.loader, "_iterator", None) is self.inner:
            self.loader._iterator = None


def train_loader(bundle: DataBundle, config: Any, runtime: Runtime, *, epoch: int, start_batch: int,
                 sample_weights: torch.Tensor | None = None) -> EpochBatches:
    """This epoch's shuffled (or weighted) batches, skipping ``start_batch``, made as the module
    docstring says (on the device where it can be); the loader and its workers are kept in
    ``bundle.loaders`` for the next epochs."""
    dataset = bundle.train
    workers = loader_workers(runtime, dataset)
    on_device = place_train_data(dataset, runtime.device, workers)
    staged = isinstance(dataset, TransformedDataset) and runtime.device.type != "cpu" and not on_device
    key = (config.batch_size, config.seed, runtime.dist.rank, runtime.dist.world_size, id(sample_weights), workers,
           str(runtime.device))
    cached = bundle.loaders.get("train")
    if cached is None or cached[0] != key:
        if isinstance(dataset, TransformedDataset):
            dataset.prepare()  # the padded store is made once, before the workers start, not in each of them
        sampler = RunSampler(len(dataset), config.batch_size, seed=config.seed, rank=runtime.dist.rank,  # type: ignore[arg-type]
                             world_size=runtime.dist.world_size, sample_weights=sample_weights)
        loader = _loader(LoadStage(dataset) if staged else dataset, sampler, runtime, workers=workers, persistent=True)
        cached = (key, loader, sampler)
        bundle.loaders["train"] = cached
    _, loader, sampler = cached
    sampler.set_epoch(epoch, start_batch)
    finish = (lambda raw: dataset.finish(raw, runtime.device)) if staged else None  # type: ignore[union-attr]
    return EpochBatches(loader, finish)


def close_train_loader(bundle: DataBundle) -> None:
    """Stop the persistent workers of ``bundle``'s training loader (after the last epoch)."""
    cached = bundle.loaders.pop("train", None)
    loader = cached[1] if cached is not None else None
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None:
        iterator._shutdown_workers()
        loader._iterator = None  # type: ignore[union-attr]


def eval_loader(dataset: Dataset, config: Any, runtime: Runtime) -> DataLoader:
    """Loader over this rank's shard of ``dataset``, in order, each sample once."""
    sampler = ShardBatchSampler(len(dataset), config.eval_batch_size, rank=runtime.dist.rank,  # type: ignore[arg-type]
                                world_size=runtime.dist.world_size)
    return _loader(dataset, sampler, runtime)
