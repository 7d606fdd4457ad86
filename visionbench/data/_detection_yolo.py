"""Ultralytics (YOLO) layouts: the reader (:class:`YoloDetection`), ``data.yaml`` and label files.

Private to :mod:`visionbench.data.detection_formats`, which names the public API.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torchvision.datasets.folder import IMG_EXTENSIONS

from visionbench.data._detection_records import (
    DetectionAnnotations,
    DetectionDataset,
    _image_size,
    _make_record,
    _read_lines,
    _require_files,
    _require_images,
    read_utf8_text,
)


class YoloDetection(DetectionDataset):
    """An Ultralytics dataset: ``data.yaml`` with ``path``, ``train``/``val``/``test`` and ``names``.

    Args:
        data_yaml: the dataset YAML (read with ``yaml.safe_load``).
        split: the key of the image list to read.

    ``path`` is the root (relative to the YAML's folder; the YAML's folder when absent or when an
    absolute ``path`` does not exist: Ultralytics resolves relative roots against its own datasets
    folder instead). A split is a folder of images (searched recursively), a ``.txt`` list of image
    paths (relative to the list's folder) or a list of those. Each image ``…/images/…/x.jpg`` has
    its labels in ``…/labels/…/x.txt`` (the last ``images`` folder replaced), one object a line:
    ``class cx cy w h`` normalised to ``[0, 1]``; polygon (segment) lines are refused. ``names`` is a
    list (class numbers ``0..K-1``) or a dict ``{number: name}``; ``category_ids`` are those numbers.
    ``image_id`` is the position in the sorted image list; image sizes come from the file headers.

    Example:
        >>> data = YoloDetection("coco8/data.yaml", split="val")  # doctest: +SKIP
    """

    def __init__(self, data_yaml: str | os.PathLike[str], split: str = "train") -> None:
        super().__init__(_read_yolo(Path(data_yaml), split), f"yolo:{data_yaml}")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"YOLO data.yaml must exist; got no file {path}. Pass the dataset's YAML file.")
    try:
        data = yaml.safe_load(read_utf8_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"{path} must be valid YAML; got a syntax error{where}. Fix the file.") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a YAML mapping with 'names' and the split keys; got "
                         f"{type(data).__name__ if data is not None else 'an empty file'}. Write e.g. "
                         "'path: ., train: images/train, val: images/val, names: [cat, dog]'.")
    return data


def _yolo_names(data: dict[str, Any], source: str) -> tuple[list[int], list[str]]:
    names = data.get("names")
    if isinstance(names, list):
        pairs = list(enumerate(names))
    elif isinstance(names, dict) and all(isinstance(k, int) and not isinstance(k, bool) for k in names):
        pairs = sorted(names.items())
    else:
        raise ValueError(f"'names' must be a list of class names or a mapping {{class number: name}}; got {names!r} in "
                         f"{source}. Write e.g. 'names: [cat, dog]' or 'names: {{0: cat, 1: dog}}'.")
    if not pairs:
        raise ValueError(f"'names' must list at least one class; got none in {source}. Add the class names.")
    nc = data.get("nc")
    if nc is not None and nc != len(pairs):
        raise ValueError(f"'nc' must equal the number of 'names'; got nc={nc!r} and {len(pairs)} names in {source}. "
                         "Fix nc or remove it.")
    return [int(k) for k, _ in pairs], [str(v) for _, v in pairs]


def _yolo_root(data: dict[str, Any], path: Path) -> Path:
    given = data.get("path")
    if not given:
        return path.parent
    root = Path(str(given)).expanduser()
    if root.is_absolute():
        return root if root.is_dir() else path.parent
    return path.parent / root


def _yolo_images(data: dict[str, Any], split: str, root: Path, source: str) -> list[tuple[Path, Path]]:
    """``(image path, base folder for its file name)`` of every image of ``split``, sorted by path."""
    entries = data.get(split)
    if entries is None:
        present = [k for k in ("train", "val", "test") if data.get(k)]
        raise ValueError(f"split {split!r} must be a key of {source}; got keys {present!r}. Pick one of them.")
    found: list[tuple[Path, Path]] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        target = root / str(entry)
        if target.is_dir():
            found += [(p, target) for p in sorted(target.rglob("*"))
                      if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS]
        elif target.is_file():  # a .txt list; "./x" and bare relative paths are relative to the list's folder
            found += [(target.parent / line, root) for line in _read_lines(target)]
        else:
            raise ValueError(f"split {split!r} entry must be an existing folder or .txt list; got {str(target)!r} from "
                             f"{source}. Fix the path (relative to {root}).")
    _require_images(len(found), f"{source} split {split!r}", "Put images in the split folder.")
    return sorted(found)


def _yolo_label_path(image: Path) -> Path:
    """Ultralytics' ``img2label_paths``: the last ``images`` folder becomes ``labels``, suffix ``.txt``."""
    parts = list(image.parts)
    if "images" not in parts[:-1]:
        raise ValueError(f"YOLO image must be under an 'images' folder (labels mirror it under 'labels'); got "
                         f"{str(image)!r}. Use the layout images/<split>/x.jpg, labels/<split>/x.txt.")
    at = len(parts) - 2 - parts[-2::-1].index("images")
    parts[at] = "labels"
    return Path(*parts).with_suffix(".txt")


def _read_yolo(path: Path, split: str) -> DetectionAnnotations:
    source = str(path)
    data = _read_yaml(path)
    category_ids, classes = _yolo_names(data, source)
    root = _yolo_root(data, path)
    images = _yolo_images(data, split, root, source)
    paths = [str(p) for p, _ in images]
    _require_files(paths, source)
    label_of = {k: i for i, k in enumerate(category_ids)}
    records, clamped = [], 0
    for image_id, (image, base) in enumerate(images):
        size = _image_size(str(image))
        labels, normalised = _read_yolo_labels(_yolo_label_path(image), label_of)
        height, width = size
        cx, cy, w, h = normalised.T
        boxes = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1)
        file_name = image.relative_to(base).as_posix() if image.is_relative_to(base) else str(image)
        none = np.zeros(len(labels), bool)
        record, moved = _make_record(image_id, file_name, str(image), size, boxes, labels, none, none)
        records.append(record)
        clamped += moved
    return DetectionAnnotations(classes, category_ids, records, clamped)


def _read_yolo_labels(path: Path, label_of: Mapping[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(labels int64 [n], cx cy w h float64 [n, 4])``; a missing or empty file is no objects."""
    if not path.is_file():
        return np.zeros(0, np.int64), np.zeros((0, 4))
    labels, values = [], []
    for number, line in enumerate(read_utf8_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number} of {path}"
        if len(fields) != 5:
            raise ValueError(f"YOLO label lines must be 'class cx cy w h' (5 fields); got {line.strip()!r} at {where}. "
                             "Polygon (segment) labels are not read: convert them to boxes.")
        try:
            cls = float(fields[0])
            box = [float(v) for v in fields[1:]]
        except ValueError:
            raise ValueError(f"YOLO label fields must be numbers; got {line.strip()!r} at {where}. Fix the line.") from None
        if not cls.is_integer() or int(cls) not in label_of:
            raise ValueError(f"YOLO class must be a class number of 'names' {sorted(label_of)!r}; got {fields[0]!r} at "
                             f"{where}. Fix the label or add the class to data.yaml.")
        if not all(math.isfinite(v) for v in box):
            raise ValueError(f"YOLO box must be finite; got {line.strip()!r} at {where}. Fix the box.")
        if not all(0.0 <= v <= 1.0 for v in box):
            # Ultralytics' verify_image_label refuses these too ("non-normalized or out of bounds coordinates").
            raise ValueError(f"YOLO cx cy w h must be normalised to [0, 1] (w, h >= 0); got {line.strip()!r} at "
                             f"{where}. Divide x and w by the image width, y and h by its height.")
        labels.append(label_of[int(cls)])
        values.append(box)
    return np.array(labels, dtype=np.int64), np.array(values, dtype=np.float64).reshape(-1, 4)
