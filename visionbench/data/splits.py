"""Split views shared by the detection and segmentation readers: a dataset seen through a list of
indices (ids kept), seeded random train/val/test splits, and the three-split bundle of a task."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Subset

from visionbench.data.folder import _check_fractions


class DatasetView(Subset):
    """Items ``indices`` of ``base`` (a ``torch.utils.data.Subset``), renumbered ``0..len-1``;
    ``ids`` follow the items, and ``classes`` and ``category_ids`` are the base's when it has them.

    Args:
        base: any dataset with an ``ids`` list (one stable string per item).
        indices: positions in ``base``.
    """

    def __init__(self, base: Dataset, indices: Sequence[int]) -> None:
        super().__init__(base, [int(i) for i in indices])
        self.ids = [base.ids[i] for i in self.indices]  # type: ignore[attr-defined]
        if hasattr(base, "classes"):
            self.classes = list(base.classes)
        if hasattr(base, "category_ids"):  # detection files: the ids users read, kept for the outputs
            self.category_ids = list(base.category_ids)


def random_split_indices(count: int, *, val_fraction: float, test_fraction: float,
                         seed: int) -> tuple[list[int], list[int], list[int]]:
    """Seeded random train/val/test positions of ``count`` items.

    A permutation from ``torch.randperm`` with a ``torch.Generator`` seeded by ``seed``: its first
    ``round(count * test_fraction)`` positions are test, the next ``round(count * val_fraction)`` val,
    the rest train (rounding half up); each part is sorted, so items keep their file order.

    Args:
        count: number of items, ``>= 0``.
        val_fraction, test_fraction: shares in ``[0, 1)`` with a sum below 1.
        seed: seed of the permutation.

    Returns:
        ``(train, val, test)`` lists of ``int`` positions, disjoint, together ``range(count)``.

    Example:
        >>> train, val, test = random_split_indices(10, val_fraction=0.1, test_fraction=0.2, seed=0)
        >>> len(train), len(val), len(test)
        (7, 1, 2)
    """
    _check_fractions(val_fraction, test_fraction)
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(count, generator=generator).tolist()
    num_test = math.floor(count * test_fraction + 0.5)
    num_val = min(math.floor(count * val_fraction + 0.5), count - num_test)
    test, val = order[:num_test], order[num_test:num_test + num_val]
    return sorted(order[num_test + num_val:]), sorted(val), sorted(test)


def random_split_views(
    dataset: Dataset, *, seed: int, val_fraction: float, test_fraction: float
) -> tuple[DatasetView, DatasetView, DatasetView]:
    """:func:`random_split_indices` of ``dataset`` as three :class:`DatasetView`."""
    parts = random_split_indices(len(dataset), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)  # type: ignore[arg-type]
    wanted = {"train": 1.0, "val": val_fraction, "test": test_fraction}
    for name, part in zip(("train", "val", "test"), parts, strict=True):
        if not part and wanted[name] > 0:
            raise ValueError(f"the {name} split of {len(dataset)} items is empty with val_fraction={val_fraction} and "  # type: ignore[arg-type]
                             f"test_fraction={test_fraction}. Add images or change the fractions.")
    return tuple(DatasetView(dataset, part) for part in parts)  # type: ignore[return-value]


@dataclass(frozen=True)
class TaskData:
    """Three splits of detection or segmentation samples and what the model needs to know.

    Attributes:
        train, val, test: datasets of ``(image, target)`` (detection) or ``(image, mask)``
            (segmentation) samples, each with ``ids``.
        classes: class names (detection: label = index; segmentation: mask value = index).
        in_channels: 3.
        image_size: ``(H, W)`` when every image has it, else ``None``.
        name: the data spec.
        task: ``"detect"`` or ``"segment"``.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]
    in_channels: int
    image_size: tuple[int, int] | None
    name: str
    task: str

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)
