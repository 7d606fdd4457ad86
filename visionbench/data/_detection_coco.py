"""COCO instances files: the reader (:class:`CocoDetection`) and the ``coco:`` spec's paths.

Private to :mod:`visionbench.data.detection_formats`, which names the public API.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from visionbench.data._detection_records import (
    DetectionAnnotations,
    DetectionDataset,
    _check_boxes,
    _image_size,
    _make_record,
    _require_files,
    _require_images,
    _unique_names,
)
from visionbench.metrics.detection.coco_json import _read_json, load_coco_ground_truth


class CocoDetection(DetectionDataset):
    """A COCO instances file (``images``, ``annotations``, ``categories``) and its images.

    Args:
        annotations_json: the instances JSON file.
        images_dir: folder that ``file_name`` is relative to; by default ``<json folder>/images``
            when that folder exists, else the JSON's folder.

    ``iscrowd`` (0 when absent, as visionbench's evaluator) and ``area`` (the box area when absent)
    come from the file; an extra ``difficult`` key is read when present. ``width``/``height`` are
    read from the image header when absent. Checks: see :mod:`visionbench.data.detection_formats`
    (the JSON checks are :func:`visionbench.metrics.detection.load_coco_ground_truth`'s).

    Example:
        >>> data = CocoDetection("annotations/instances_val2017.json", "val2017")  # doctest: +SKIP
        >>> image, target = data[0]  # doctest: +SKIP
    """

    def __init__(self, annotations_json: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None
                 ) -> None:
        super().__init__(_read_coco(Path(annotations_json), None if images_dir is None else Path(images_dir)),
                         f"coco:{annotations_json}" + ("" if images_dir is None else f":{images_dir}"))


def _read_coco(path: Path, images_dir: Path | None) -> DetectionAnnotations:
    source = str(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{source} must hold a JSON object with 'images', 'annotations' and 'categories'; got "
                         f"{type(data).__name__}. Is this a results file? Pass a COCO instances file.")
    try:
        gt = load_coco_ground_truth(data)
    except ValueError as exc:  # the loader names a parsed dict "<dict>": name the file instead
        raise ValueError(str(exc).replace("<dict>", source)) from None
    if images_dir is None:
        images_dir = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    images, categories = data["images"], data["categories"]
    _require_images(len(images), source, "Add entries to 'images'.")
    category_ids = gt.category_ids.tolist()  # ascending
    names = {c["id"]: str(c.get("name", c["id"])) for c in categories}
    classes = [names[i] for i in category_ids]
    labels = np.searchsorted(gt.category_ids, gt.category_id)
    file_names = [_coco_file_name(image, i, source) for i, image in enumerate(images)]
    _unique_names(file_names, source)
    paths = [str(images_dir / f) for f in file_names]
    _require_files(paths, source)
    anns = data["annotations"]
    difficult = np.array([bool(a.get("difficult", 0)) for a in anns], dtype=bool)
    where = [f"annotations[{i}] (id {a['id']!r})['bbox']" for i, a in enumerate(anns)]
    boxes = gt.bbox.copy()
    boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy; w, h >= 0 is checked by the loader
    _check_boxes(boxes, where, source, "Fix the box or drop the annotation.")
    row_of = {int(v): i for i, v in enumerate(gt.image_ids.tolist())}
    image_row = np.array([row_of[int(v)] for v in gt.image_id.tolist()], dtype=np.int64)
    order = np.argsort(image_row, kind="stable")  # annotations grouped by image, file order within
    starts = np.searchsorted(image_row[order], np.arange(len(images) + 1))
    records, clamped = [], 0
    for i, image in enumerate(images):
        rows = order[starts[i]:starts[i + 1]]
        size = _coco_size(image, i, paths[i], source)
        record, moved = _make_record(int(gt.image_ids[i]), file_names[i], paths[i], size, boxes[rows], labels[rows],
                                     gt.iscrowd[rows], difficult[rows], gt.area[rows])
        records.append(record)
        clamped += moved
    return DetectionAnnotations(classes, category_ids, records, clamped)


def _coco_file_name(image: Any, i: int, source: str) -> str:
    name = image.get("file_name") if isinstance(image, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f"images[{i}]['file_name'] must be a non-empty string; got {name!r} in {source}. Every image "
                         "needs the path of its file relative to the images folder.")
    return Path(name).as_posix()


def _coco_size(image: dict[str, Any], i: int, path: str, source: str) -> tuple[int, int]:
    if "width" not in image and "height" not in image:
        return _image_size(path)
    size = (image.get("height"), image.get("width"))
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ValueError(f"images[{i}] (id {image['id']!r}) width and height must be positive integers; got "
                         f"{size[1]!r} x {size[0]!r} in {source}. Fix them or remove both to read them from the image.")
    return int(size[0]), int(size[1])


def coco_spec_paths(rest: str) -> tuple[str, str | None]:
    """``(annotations JSON, images folder or None)`` of the part of a ``coco:`` spec after the
    prefix: a ``:`` inside the path is kept unless it follows ``.json``."""
    head, sep, images = rest.partition(".json:")
    return (head + ".json", images or None) if sep else (rest, None)
