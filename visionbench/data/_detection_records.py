"""The in-memory detection annotations every reader produces and every writer takes, the dataset
over them, and the checks the COCO, VOC and YOLO readers share.

Private to :mod:`visionbench.data.detection_formats`, which names the public API (and describes the
sample contract, the coordinates and the checks).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from visionbench.data.folder import read_image_rgb

# Boxes that move by at most this many pixels when clamped are not counted as clamped: YOLO's
# 6-decimal normalised coordinates put a border box up to ~1e-6 * W outside the image.
CLAMP_TOLERANCE = 1e-3


# --------------------------------------------------------------------------------------------
# The in-memory annotations every reader produces and every writer takes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionRecord:
    """The annotations of one image.

    Attributes:
        image_id: the image's id (COCO's, or its position for VOC/YOLO).
        file_name: the image path relative to the images folder, POSIX separators.
        path: where the image file is.
        height, width: the image size in pixels.
        boxes: ``float64 [n, 4]`` XYXY pixels, clamped to the image.
        labels: ``int64 [n]`` class indices in ``[0, K)``.
        iscrowd, difficult: ``bool [n]``.
        area: ``float64 [n]`` (COCO's ``area`` field; the box area for VOC and YOLO).
    """

    image_id: int
    file_name: str
    path: str
    height: int
    width: int
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray
    difficult: np.ndarray


@dataclass(frozen=True)
class DetectionAnnotations:
    """A whole dataset's annotations: ``records`` (one per image) and the class mapping.

    Attributes:
        classes: ``K`` class names; ``classes[label]``.
        category_ids: ``K`` ids the file uses for the classes; ``category_ids[label]``.
        records: one :class:`DetectionRecord` per image, in dataset order.
        num_clamped: boxes moved by more than ``CLAMP_TOLERANCE`` px when clamped to their image.
    """

    classes: list[str]
    category_ids: list[int]
    records: list[DetectionRecord]
    num_clamped: int = 0


class DetectionDataset(Dataset):
    """Detection samples from :class:`DetectionAnnotations`, images decoded on access.

    Args:
        annotations: from one of the readers.
        name: the data spec, for messages.

    A sample is ``(tv_tensors.Image uint8 [3, H, W], target)``; see :mod:`visionbench.data.detection_formats`.
    """

    def __init__(self, annotations: DetectionAnnotations, name: str) -> None:
        self._annotations = annotations
        self.name = name
        self.classes = list(annotations.classes)
        self.category_ids = list(annotations.category_ids)
        self.num_clamped = annotations.num_clamped
        self.ids = [r.file_name for r in annotations.records]  # stable sample ids for predictions files
        if annotations.num_clamped:
            warnings.warn(f"{annotations.num_clamped} boxes of {name} extend outside their image and were clamped "
                          "to it.", stacklevel=3)

    def __len__(self) -> int:
        return len(self._annotations.records)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
        record = self._annotations.records[index]
        image = read_image_rgb(record.path)  # (3, H, W) uint8; ValueError naming the file
        if tuple(image.shape[1:]) != (record.height, record.width):
            raise ValueError(
                f"image size must match its annotation (H, W) = {(record.height, record.width)}; got "
                f"{tuple(image.shape[1:])} in {record.path}. Fix the width/height in the annotation file or replace "
                "the image.")
        return tv_tensors.Image(image), record_target(record)

    def annotations(self) -> DetectionAnnotations:
        """Every image's boxes and the class mapping, without decoding any image."""
        return self._annotations


def record_target(record: DetectionRecord) -> dict[str, Any]:
    """The torchvision-style target dict of one record (the detection sample contract).

    Returns:
        ``{"boxes": BoundingBoxes float32 [n, 4] XYXY canvas (H, W), "labels": int64 [n],
        "iscrowd": bool [n], "area": float32 [n], "image_id": int, "difficult": bool [n]}``.
    """
    boxes = tv_tensors.BoundingBoxes(torch.as_tensor(record.boxes, dtype=torch.float32).reshape(-1, 4),
                                     format="XYXY", canvas_size=(record.height, record.width))
    return {
        "boxes": boxes,
        "labels": torch.as_tensor(record.labels, dtype=torch.int64),
        "iscrowd": torch.as_tensor(record.iscrowd, dtype=torch.bool),
        "area": torch.as_tensor(record.area, dtype=torch.float32),
        "image_id": int(record.image_id),
        "difficult": torch.as_tensor(record.difficult, dtype=torch.bool),
    }


# --------------------------------------------------------------------------------------------
# Shared checks
# --------------------------------------------------------------------------------------------


def _check_boxes(boxes: np.ndarray, where: Sequence[str], source: str, how: str) -> None:
    """Refuse non-finite boxes and ``x2 < x1`` / ``y2 < y1``; ``where[i]`` names box ``i``."""
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where[i]} must be a finite box; got {boxes[i].tolist()!r} (as x1, y1, x2, y2) in "
                         f"{source}. {how}")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where[i]} must have x2 >= x1 and y2 >= y1; got {boxes[i].tolist()!r} (as x1, y1, x2, y2) "
                         f"in {source}. {how}")


def _clamp(boxes: np.ndarray, height: int, width: int) -> tuple[np.ndarray, int]:
    """Boxes clamped to ``[0, W] x [0, H]`` and how many moved by more than ``CLAMP_TOLERANCE``."""
    limit = np.array([width, height, width, height], dtype=np.float64)
    clamped = np.clip(boxes, 0.0, limit)
    moved = int((np.abs(clamped - boxes) > CLAMP_TOLERANCE).any(axis=1).sum()) if len(boxes) else 0
    return clamped, moved


def _image_size(path: str) -> tuple[int, int]:
    """``(H, W)`` from the image header (Pillow decodes no pixels here)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise ValueError(f"image must be a readable image file; got {type(exc).__name__} ({exc}) in {path}. "
                         "Remove or replace the file.") from None
    return int(height), int(width)


def _require_files(paths: Sequence[str], source: str) -> None:
    """Every image file must exist; name the first missing one."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"image files must exist; got {len(missing)} missing, first {missing[0]!r}, listed in "
                         f"{source}. Point the images folder at the right place or remove those entries.")


def _require_images(count: int, source: str, how: str) -> None:
    if count == 0:
        raise ValueError(f"a detection dataset must hold at least one image; got none in {source}. {how}")


def _make_record(image_id: int, file_name: str, path: str, size: tuple[int, int], boxes: np.ndarray,
                 labels: Sequence[int], iscrowd: Sequence[bool], difficult: Sequence[bool],
                 area: np.ndarray | None = None) -> tuple[DetectionRecord, int]:
    """A record with its boxes clamped (``area`` defaults to the clamped box area); and the clamp count."""
    height, width = size
    boxes, moved = _clamp(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), height, width)
    if area is None:
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    record = DetectionRecord(int(image_id), file_name, path, height, width, boxes,
                             np.asarray(labels, dtype=np.int64).reshape(-1), np.asarray(iscrowd, dtype=bool).reshape(-1),
                             np.asarray(area, dtype=np.float64).reshape(-1), np.asarray(difficult, dtype=bool).reshape(-1))
    return record, moved


def _unique_names(names: Sequence[str], source: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(f"image [{i}] file name must be unique; got {name!r} again in {source}. List each image "
                             "once.")
        seen.add(name)


def read_utf8_text(path: Path) -> str:
    """The text of ``path``; a file that is not UTF-8 is a ``ValueError`` naming it and the line of
    its first bad byte (a bare ``UnicodeDecodeError`` names neither)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{path} must be UTF-8 text; got byte {raw[error.start]:#04x} on line {line}. Save it as "
                         "UTF-8.") from None


def _read_lines(path: Path) -> list[str]:
    """Non-blank stripped lines of a text file."""
    return [line.strip() for line in read_utf8_text(path).splitlines() if line.strip()]
