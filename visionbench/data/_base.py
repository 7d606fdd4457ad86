"""The classification data contract shared by every dataset reader.

A reader returns a :class:`ClassificationData`: three splits of raw samples plus what the model
needs to know (class names, channels, native size). A raw sample is ``(image, label)`` with
``image`` a ``uint8`` tensor ``[C, H, W]`` and ``label`` an ``int`` in ``[0, num_classes)``.
Transforms (augmentation, resizing, normalisation) are applied later by
:class:`visionbench.data.transforms.TransformedDataset`, so readers stay pure I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset


class TensorImageDataset(Dataset):
    """Images already in memory.

    Args:
        images: ``uint8`` tensor ``[N, C, H, W]``.
        labels: ``int64`` tensor ``[N]``.
        ids: one stable string id per sample (written to ``predictions``; used by ``compare``).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, ids: Sequence[str]) -> None:
        assert images.dtype == torch.uint8 and images.ndim == 4, images.shape
        assert len(images) == len(labels) == len(ids)
        self.images = images
        self.labels = labels.to(torch.int64)
        self.ids = list(ids)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def targets(self) -> torch.Tensor:
        """All labels as ``int64 [N]`` (used for class-balanced sampling and split checks)."""
        return self.labels

    def subset(self, index: np.ndarray | Sequence[int]) -> TensorImageDataset:
        """The samples at ``index``, as a new dataset (ids kept)."""
        rows = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return TensorImageDataset(self.images[rows], self.labels[rows], [self.ids[i] for i in rows.tolist()])


def split_off_val(
    full: TensorImageDataset, *, val_fraction: float, seed: int
) -> tuple[TensorImageDataset, TensorImageDataset]:
    """Train and val parts of ``full`` by a seeded stratified split (for datasets whose files
    hold only train and test)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction!r}. Pass e.g. 0.1.")
    train_idx, val_idx = stratified_split(full.labels.numpy(), (1.0 - val_fraction, val_fraction), seed=seed)
    return full.subset(train_idx), full.subset(val_idx)


@dataclass(frozen=True)
class ClassificationData:
    """Three splits of one classification dataset.

    Attributes:
        train, val, test: datasets of raw samples; each has ``ids`` (list of str) and
            ``targets()`` (``int64 [N]``).
        classes: class names, index = label.
        in_channels: 1 (grayscale) or 3 (RGB).
        image_size: native ``(H, W)``; for folders of mixed sizes, the size the preset resizes to.
        name: the dataset spec it came from, e.g. ``"digits"`` or ``"folder:/data/pets"``.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]
    in_channels: int
    image_size: tuple[int, int]
    name: str

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float], *, seed: int
) -> list[np.ndarray]:
    """Split sample indices into parts with (nearly) the same class proportions.

    Each class's indices are shuffled with ``seed`` and cut at the cumulative ``fractions``
    (rounded per class), so the split is fixed for a given seed and independent of the order in
    which classes appear.

    Args:
        labels: ``int [N]`` class of each sample.
        fractions: sizes of the parts, summing to 1 (e.g. ``(0.7, 0.1, 0.2)``).
        seed: seed of the shuffle.

    Returns:
        One sorted ``int64`` index array per fraction.

    Example:
        >>> train, test = stratified_split(np.array([0, 0, 1, 1]), (0.5, 0.5), seed=0)
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or any(f < 0 for f in fractions):
        raise ValueError(f"split fractions must be >= 0 and sum to 1; got {tuple(fractions)!r}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[rng.permutation(len(members))]
        cuts = np.round(bounds * len(members)).astype(int)
        start = 0
        for part, stop in zip(parts, cuts, strict=True):
            part.append(members[start:stop])
            start = stop
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
