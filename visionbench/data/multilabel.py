"""Multi-label image classification from a CSV file: several labels per image.

Spec ``csv:LABELS.csv[:IMAGES]``; ``IMAGES`` (default: the CSV's folder) is where the ``image``
paths are relative to. Two layouts of the CSV, told apart by the header (UTF-8, comma-separated)::

    image,labels                    labels of each image separated by ";" (an empty cell: none)
    cats/001.jpg,cat;sofa
    002.jpg,

    image,cat,dog,sofa              one column per label, each cell 0 or 1
    cats/001.jpg,1,0,1

Labels are the sorted label names of the ``labels`` column, or the label columns in their order.
Every listed image must exist (an error names the CSV line); images under ``IMAGES`` that the CSV
does not list are skipped with a warning. The train/val/test split is a seeded random one
(``split_seed``): a stratified split does not apply to label sets, so a rare label may miss a
split (then its AP there is undefined and it is left out of mAP).

The folder form, ``folder:ROOT`` with ``--multilabel`` (each image in every one of its label
folders), is :mod:`visionbench.data.multilabel_folder`; it builds the same
:class:`MultiLabelImageDataset`.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from visionbench.data._base import ClassificationData
from visionbench.data.folder import read_image_rgb
from visionbench.data.splits import random_split_indices

SEPARATOR = ";"
_FORMAT = ("Write the header `image,labels` with the labels of each image separated by ';' (e.g. `a.jpg,cat;sofa`), "
           "or `image,<label1>,<label2>,…` with one 0/1 cell per label.")


class MultiLabelImageDataset(Dataset):
    """Images on disk with a multi-hot target each, decoded on access.

    Args:
        paths: image files. targets: ``float32 [N, L]`` of 0/1. ids: one stable string per image
            (its path as written in the CSV). classes: the L label names.

    A sample is ``(uint8 [3, H, W], float32 [L])``.
    """

    def __init__(self, paths: Sequence[str], targets: torch.Tensor, ids: Sequence[str], classes: Sequence[str]) -> None:
        assert len(paths) == len(targets) == len(ids) and targets.ndim == 2
        self.paths = [str(p) for p in paths]
        self.multi_hot = targets.to(torch.float32)
        self.ids = list(ids)
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return read_image_rgb(self.paths[index]), self.multi_hot[index]

    def targets(self) -> torch.Tensor:
        """All targets, ``float32 [N, L]`` multi-hot."""
        return self.multi_hot

    def take(self, rows: Sequence[int]) -> MultiLabelImageDataset:
        """The images at ``rows``, as a new dataset."""
        index = torch.as_tensor(list(rows), dtype=torch.int64)
        return MultiLabelImageDataset([self.paths[i] for i in rows], self.multi_hot[index],
                                      [self.ids[i] for i in rows], self.classes)


def split_csv_spec(path: str) -> tuple[Path, Path]:
    """``"LABELS.csv[:IMAGES]"`` → the CSV file and the images folder (the CSV's folder by default)."""
    head, sep, images = path.partition(".csv:")
    csv_path = Path(head + ".csv" if sep else path).expanduser()
    return csv_path, (Path(images).expanduser() if sep and images else csv_path.parent)


def read_label_csv(csv_path: Path) -> tuple[list[str], list[str], torch.Tensor, list[int]]:
    """Parse a label CSV (either layout of the module docstring).

    Returns:
        ``(image paths as written, label names, float32 [N, L] multi-hot, CSV line of each image)``.

    Raises:
        ValueError: a missing file, a bad header, a row with the wrong number of cells, an empty
            image cell, a repeated image, a cell other than 0/1, or no labels at all; each names
            ``file:line`` and the fix.
    """
    if not csv_path.is_file():
        raise ValueError(f"label CSV must be an existing file; got {str(csv_path)!r}. Pass --data csv:LABELS.csv[:IMAGES].")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"label CSV must have a header row; got an empty file in {csv_path}. {_FORMAT}")
    header = [cell.strip() for cell in rows[0]]
    if len(header) < 2 or header[0] != "image":
        raise ValueError(f"label CSV header must start with `image` and name the label column(s); got {rows[0]!r} in "
                         f"{csv_path}:1. {_FORMAT}")
    body = [(number, row) for number, row in enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    if header == ["image", "labels"]:
        images, label_sets = _read_lists(csv_path, body)
        classes = sorted({label for labels in label_sets for label in labels})
        index = {name: i for i, name in enumerate(classes)}
        targets = torch.zeros(len(images), len(classes))
        for row, labels in enumerate(label_sets):
            targets[row, [index[label] for label in labels]] = 1.0
    else:
        classes = header[1:]
        _check_names(csv_path, classes)
        images, targets = _read_columns(csv_path, body, len(classes))
    if not images:
        raise ValueError(f"label CSV must list at least one image; got none in {csv_path}. {_FORMAT}")
    if not classes:
        raise ValueError(f"label CSV must give at least one label; every labels cell is empty in {csv_path}. {_FORMAT}")
    return images, classes, targets, [number for number, _ in body]


def _check_names(csv_path: Path, classes: list[str]) -> None:
    """Label columns must be named and distinct."""
    seen: set[str] = set()
    for name in classes:
        if not name or name in seen:
            raise ValueError(f"label column names must be non-empty and distinct; got {name!r} in {csv_path}:1. "
                             "Rename the column.")
        seen.add(name)


def _image_cell(csv_path: Path, number: int, row: list[str], width: int, seen: set[str]) -> str:
    """The ``image`` cell of a row with ``width`` cells, checked."""
    if len(row) != width:
        raise ValueError(f"a label CSV row must have {width} cells like the header; got {len(row)} ({row!r}) in "
                         f"{csv_path}:{number}. Quote cells that contain commas, or fix the row.")
    image = row[0].strip()
    if not image:
        raise ValueError(f"image cell must name an image file; got an empty cell in {csv_path}:{number}. "
                         "Fill it in or remove the row.")
    if image in seen:
        raise ValueError(f"each image must be listed once; got {image!r} again in {csv_path}:{number}. Merge its "
                         "labels into one row.")
    seen.add(image)
    return image


def _read_lists(csv_path: Path, body: list[tuple[int, list[str]]]) -> tuple[list[str], list[list[str]]]:
    """Rows ``image,label;label;…``."""
    images, label_sets, seen = [], [], set()
    for number, row in body:
        images.append(_image_cell(csv_path, number, row, 2, seen))
        labels = [label.strip() for label in row[1].split(SEPARATOR)]
        if row[1].strip() and not all(labels):
            raise ValueError(f"labels must be names separated by {SEPARATOR!r}; got an empty name in {row[1]!r} in "
                             f"{csv_path}:{number}. Remove the extra {SEPARATOR!r}.")
        label_sets.append(sorted(set(labels)) if row[1].strip() else [])
    return images, label_sets


def _read_columns(csv_path: Path, body: list[tuple[int, list[str]]], count: int) -> tuple[list[str], torch.Tensor]:
    """Rows ``image,0/1,0/1,…``."""
    images, values, seen = [], [], set()
    for number, row in body:
        images.append(_image_cell(csv_path, number, row, count + 1, seen))
        cells = [cell.strip() for cell in row[1:]]
        bad = [cell for cell in cells if cell not in ("0", "1")]
        if bad:
            raise ValueError(f"label cells must be 0 or 1; got {bad[0]!r} in {csv_path}:{number}. Write 1 where the "
                             "label applies and 0 where it does not (or use the `image,labels` layout).")
        values.append([float(cell) for cell in cells])
    return images, torch.tensor(values, dtype=torch.float32).reshape(len(images), count)


def _resolve_images(csv_path: Path, images_dir: Path, images: list[str], lines: list[int]) -> list[Path]:
    """The files of the listed images (all must exist); warns about unlisted images in the folder."""
    if not images_dir.is_dir():
        raise ValueError(f"image folder must be an existing directory; got {str(images_dir)!r} for {csv_path}. "
                         "Pass --data csv:LABELS.csv:IMAGES with the folder the `image` paths are relative to.")
    paths = [images_dir / image for image in images]
    missing = [(number, image) for number, image, path in zip(lines, images, paths, strict=True) if not path.is_file()]
    if missing:
        number, image = missing[0]
        raise ValueError(f"listed image must exist; got {image!r} not found under {images_dir} ({len(missing)} missing, "
                         f"the first listed at {csv_path}:{number}). Fix the path, add the file, or remove the row.")
    listed = {path.resolve() for path in paths}
    unlisted = [p for p in _image_files(images_dir) if p.resolve() not in listed]
    if unlisted:
        warnings.warn(f"{len(unlisted)} images under {images_dir} are not listed in {csv_path} and are skipped (the "
                      f"first: {unlisted[0].relative_to(images_dir).as_posix()}). Add rows for them to use them.",
                      UserWarning, stacklevel=3)
    return paths


def _image_files(directory: Path) -> list[Path]:
    """Image files under ``directory``, recursive, hidden entries skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames if not f.startswith(".") and f.lower().endswith(IMG_EXTENSIONS)]
    return sorted(found)


def load_multilabel_csv(path: str, *, seed: int, val_fraction: float, test_fraction: float) -> ClassificationData:
    """Read ``LABELS.csv[:IMAGES]`` (see the module docstring) and split it at random with ``seed``.

    Returns:
        :class:`~visionbench.data._base.ClassificationData` whose splits are
        :class:`MultiLabelImageDataset` (targets ``float32 [N, L]``), ``classes`` the L labels,
        ``in_channels`` 3 and ``image_size`` that of the first training image.

    Example:
        >>> data = load_multilabel_csv("photos/labels.csv", seed=0, val_fraction=0.1, test_fraction=0.2)
        >>> data.train.targets().shape[1] == data.num_classes
        True
    """
    csv_path, images_dir = split_csv_spec(path)
    images, classes, targets, lines = read_label_csv(csv_path)
    full = MultiLabelImageDataset(_resolve_images(csv_path, images_dir, images, lines), targets, images, classes)
    train, val, test = (full.take(part) for part in random_split_indices(
        len(full), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed))
    if not len(train):
        raise ValueError(f"training split must hold at least one image; got 0 of {len(full)} in {csv_path}. Add images "
                         f"or lower val_fraction/test_fraction (now {val_fraction}/{test_fraction}).")
    height, width = read_image_rgb(train.paths[0]).shape[1:]
    return ClassificationData(train=train, val=val, test=test, classes=classes, in_channels=3,
                              image_size=(int(height), int(width)), name=f"csv:{path}")


def is_multilabel(data: ClassificationData) -> bool:
    """Whether the splits hold multi-hot targets (``targets()`` of shape ``[N, L]``)."""
    return isinstance(data.train, MultiLabelImageDataset)


__all__ = ["MultiLabelImageDataset", "is_multilabel", "load_multilabel_csv", "read_label_csv", "split_csv_spec"]
