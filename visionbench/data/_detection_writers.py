"""Writers of detection annotations: COCO instances and results JSON, Pascal VOC and YOLO layouts.

Private to :mod:`visionbench.data.detection_formats`, which names the public API (and says what
each format cannot hold and how precisely each writer writes).
"""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from torchvision import tv_tensors
from torchvision.ops import box_convert

from visionbench.data._detection_records import (
    DetectionAnnotations,
    DetectionDataset,
    DetectionRecord,
    _check_boxes,
    _read_lines,
    _unique_names,
)
from visionbench.data._detection_yolo import _read_yaml
from visionbench.data.safe_paths import inside

ImageMode = Literal["copy", "symlink", "none"]
COCO_GT_DECIMALS = 6
VOC_DECIMALS = 2
YOLO_DECIMALS = 6


def _as_annotations(data: DetectionDataset | DetectionAnnotations) -> DetectionAnnotations:
    if isinstance(data, DetectionAnnotations):
        return data
    if hasattr(data, "annotations"):
        return data.annotations()
    raise TypeError(f"data must be a detection dataset or DetectionAnnotations; got {type(data).__name__}. Read it with "
                    "CocoDetection/VocDetection/YoloDetection first.")


def _record_name(record: DetectionRecord) -> str:
    """How an error names a record: its image id and file name."""
    return f"image {record.image_id} ({record.file_name!r})"


def _place_image(src: str, dst: Path, images: ImageMode) -> None:
    """Copy or link ``src`` to ``dst`` (nothing for ``"none"`` or when they are the same file)."""
    if images == "none":
        return
    if dst.exists() and os.path.samefile(src, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if images == "copy":
        shutil.copyfile(src, dst)
    elif images == "symlink":
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        os.symlink(os.path.abspath(src), dst)
    else:
        raise ValueError(f"images must be 'copy', 'symlink' or 'none'; got {images!r}. Pick one.")


def _round(value: float, decimals: int) -> float | int:
    """``value`` rounded, as an ``int`` when integral (``12`` rather than ``12.0``)."""
    rounded = round(float(value), decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    return int(rounded) if rounded.is_integer() else rounded


def _exact(value: float) -> float | int:
    """``value`` unrounded (``json`` writes the shortest text that reads back to the same float64),
    as an ``int`` when integral, and ``0`` rather than ``-0.0``."""
    value = float(value) + 0.0
    return int(value) if value.is_integer() else value


def _write_text(path: Path, text: str) -> None:
    """Write atomically (temp file + ``os.replace``), so an interrupted write loses nothing already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_coco_ground_truth(data: DetectionDataset | DetectionAnnotations, path: str | os.PathLike[str]) -> Path:
    """Write a COCO instances JSON file (``images``, ``annotations``, ``categories``).

    Args:
        data: a dataset from any reader, or its :meth:`~DetectionDataset.annotations`.
        path: the JSON file to write (folders are created). Images are not copied: ``file_name``
            is each record's, relative to wherever the images are (see :func:`convert`).

    Boxes ``[x, y, w, h]`` and ``area`` are rounded to 6 decimals; annotation ids are ``1..``
    (pycocotools treats id 0 as unmatched); categories are ``{"id": category_ids[k], "name":
    classes[k]}``; ``difficult`` is written only when some object is difficult.

    Returns:
        ``path``.
    """
    ann = _as_annotations(data)
    any_difficult = any(r.difficult.any() for r in ann.records)
    images, annotations = [], []
    for record in ann.records:
        images.append({"id": record.image_id, "file_name": record.file_name, "width": record.width,
                       "height": record.height})
        for k in range(len(record.labels)):
            x1, y1, x2, y2 = record.boxes[k].tolist()
            item = {"id": len(annotations) + 1, "image_id": record.image_id,
                    "category_id": ann.category_ids[int(record.labels[k])],
                    "bbox": [_round(v, COCO_GT_DECIMALS) for v in (x1, y1, x2 - x1, y2 - y1)],
                    "area": _round(record.area[k], COCO_GT_DECIMALS), "iscrowd": int(record.iscrowd[k])}
            if any_difficult:
                item["difficult"] = int(record.difficult[k])
            annotations.append(item)
    categories = [{"id": i, "name": n} for i, n in zip(ann.category_ids, ann.classes, strict=True)]
    out = Path(path)
    _write_text(out, json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return out


def _float32_text(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (``0.3`` for ``float32(0.3)``)."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="0"))


def _coco_result_rows(prediction: Mapping[str, Any], category_ids: Sequence[int], i: int) -> list[dict[str, Any]]:
    if not isinstance(prediction, Mapping) or not {"image_id", "boxes", "labels", "scores"} <= set(prediction):
        raise ValueError(f"predictions[{i}] must be a mapping with 'image_id', 'boxes', 'labels' and 'scores'; got "
                         f"{type(prediction).__name__} with keys {sorted(prediction) if isinstance(prediction, Mapping) else []!r}. "
                         "Add the image id to each model output dict.")
    image_id = int(prediction["image_id"])
    boxes = prediction["boxes"]
    if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
        boxes = box_convert(boxes.as_subclass(torch.Tensor), boxes.format.name.lower(), "xyxy")
    boxes = torch.as_tensor(boxes).detach().cpu().to(torch.float64).reshape(-1, 4).numpy()
    labels = torch.as_tensor(prediction["labels"]).detach().cpu().reshape(-1).numpy()
    scores = torch.as_tensor(prediction["scores"]).detach().cpu().to(torch.float32).reshape(-1).numpy()
    where = f"predictions[{i}] (image_id {image_id})"
    if not len(boxes) == len(labels) == len(scores):
        raise ValueError(f"{where} boxes, labels and scores must have the same length; got {len(boxes)}, {len(labels)} "
                         f"and {len(scores)}. Pass one label and score per box.")
    _check_boxes(boxes, [f"{where} box {k}" for k in range(len(boxes))], "the predictions",
                 "Drop or fix that detection.")
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(f"{where} score {int(np.argmax(bad))} must be finite; got {scores[bad][0]!r}. Drop or fix that "
                         "detection.")
    bad = (labels < 0) | (labels >= len(category_ids)) | (labels != np.round(labels))
    if bad.any():
        raise ValueError(f"{where} label {int(np.argmax(bad))} must be a class index in [0, {len(category_ids)}); got "
                         f"{labels[bad][0]!r}. Labels are contiguous indices into category_ids.")
    rows = []
    for box, label, score in zip(boxes.tolist(), labels.tolist(), scores.tolist(), strict=True):
        x1, y1, x2, y2 = box
        rows.append({"image_id": image_id, "category_id": int(category_ids[int(label)]),
                     "bbox": [_exact(v) for v in (x1, y1, x2 - x1, y2 - y1)],
                     "score": _float32_text(score)})
    return rows


def write_coco_results(predictions: Iterable[Mapping[str, Any]], path: str | os.PathLike[str], *,
                       category_ids: Sequence[int]) -> int:
    """Write detections as a COCO results JSON list (what pycocotools' ``COCO.loadRes`` reads).

    Args:
        predictions: one mapping per image with ``"image_id"`` (int), ``"boxes"`` (``[n, 4]`` XYXY
            pixels, or ``BoundingBoxes`` of any format), ``"labels"`` (``int [n]`` class indices in
            ``[0, K)``) and ``"scores"`` (``float [n]``), e.g. a torchvision detector's output dict
            with the target's ``image_id`` added.
        path: the JSON file to write.
        category_ids: the file's category id of each class index (``dataset.category_ids``).

    Rows are ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` in input order;
    ``bbox`` exact (float64 ``x, y, x2 - x, y2 - y`` of the given boxes, shortest round-trip
    text), ``score`` the shortest decimal of its float32 value (order and ties kept). No detections writes ``[]`` (visionbench evaluates it; ``COCO.loadRes`` raises on
    an empty list).

    Returns:
        The number of detections written.

    Raises:
        ValueError: non-finite or ``x2 < x1`` boxes, non-finite scores, labels outside
            ``[0, len(category_ids))``, mismatched lengths; the message names the image and index.
    """
    rows: list[dict[str, Any]] = []
    for i, prediction in enumerate(predictions):
        rows += _coco_result_rows(prediction, category_ids, i)
    _write_text(Path(path), json.dumps(rows))
    return len(rows)


def _voc_id(file_name: str) -> str:
    return Path(file_name).with_suffix("").as_posix()


def write_voc(data: DetectionDataset | DetectionAnnotations, root: str | os.PathLike[str], *,
              split: str = "trainval", images: ImageMode = "copy") -> Path:
    """Write a Pascal VOC layout: ``Annotations/<id>.xml``, ``JPEGImages/<file>``,
    ``ImageSets/Main/<split>.txt`` and ``classes.txt``.

    Args:
        data: a dataset from any reader, or its annotations.
        root: the output folder (created). Writing a second split into it adds its list.
        split: the name of the split list.
        images: ``"copy"``, ``"symlink"`` or ``"none"`` (see :mod:`visionbench.data.detection_formats`).

    The id of an image is its ``file_name`` without suffix (``a/b.png`` → ``a/b``). Coordinates are
    1-based inclusive (``xmin = x1 + 1``, ``xmax = x2``) rounded to 2 decimals; ``difficult`` is
    always written, ``<iscrowd>1</iscrowd>`` only for crowd objects.

    Returns:
        ``root``.

    Raises:
        ValueError: two images with the same id, or ``classes.txt`` already there with other classes.
    """
    ann = _as_annotations(data)
    out = Path(root)
    ids = [_voc_id(r.file_name) for r in ann.records]
    _unique_names(ids, f"the image ids written to {out}")
    _check_classes_file(out / "classes.txt", ann.classes)
    split_file = inside(out / "ImageSets" / "Main", f"{split}.txt", "--split")
    for name, record in zip(ids, ann.records, strict=True):
        what = _record_name(record)
        _write_text(inside(out / "Annotations", f"{name}.xml", what), _voc_xml(record, ann.classes))
        _place_image(record.path, inside(out / "JPEGImages", record.file_name, what), images)
    _write_text(split_file, "".join(f"{n}\n" for n in ids))
    _write_text(out / "classes.txt", "".join(f"{c}\n" for c in ann.classes))
    return out


def _check_classes_file(path: Path, classes: Sequence[str]) -> None:
    if path.is_file() and _read_lines(path) != list(classes):
        raise ValueError(f"classes.txt must list the same classes as the data written; got {_read_lines(path)!r} in "
                         f"{path}, writing {list(classes)!r}. Write into another folder.")


def _voc_xml(record: DetectionRecord, classes: Sequence[str]) -> str:
    top = ElementTree.Element("annotation")
    ElementTree.SubElement(top, "filename").text = Path(record.file_name).name
    size = ElementTree.SubElement(top, "size")
    for tag, value in (("width", record.width), ("height", record.height), ("depth", 3)):
        ElementTree.SubElement(size, tag).text = str(value)
    for k in range(len(record.labels)):
        obj = ElementTree.SubElement(top, "object")
        ElementTree.SubElement(obj, "name").text = classes[int(record.labels[k])]
        ElementTree.SubElement(obj, "difficult").text = str(int(record.difficult[k]))
        if record.iscrowd[k]:
            ElementTree.SubElement(obj, "iscrowd").text = "1"
        box = ElementTree.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = record.boxes[k].tolist()
        for tag, value in (("xmin", x1 + 1.0), ("ymin", y1 + 1.0), ("xmax", x2), ("ymax", y2)):
            ElementTree.SubElement(box, tag).text = str(_round(value, VOC_DECIMALS))
    ElementTree.indent(top)
    return ElementTree.tostring(top, encoding="unicode") + "\n"


def write_yolo(data: DetectionDataset | DetectionAnnotations, out_dir: str | os.PathLike[str], *,
               split: str = "train", images: ImageMode = "copy") -> Path:
    """Write an Ultralytics layout: ``images/<split>/<file>``, ``labels/<split>/<file stem>.txt``,
    ``data.yaml``.

    Args:
        data: a dataset from any reader, or its annotations.
        out_dir: the output folder (created). Writing a second split adds its key to ``data.yaml``.
        split: the split key and folder name.
        images: ``"copy"``, ``"symlink"`` or ``"none"``.

    One line ``label cx cy w h`` per object with 6 decimals (label = class index); crowd and
    difficult objects are left out (YOLO cannot mark them; Ultralytics' converters skip them too);
    an image without objects gets an empty label file. ``data.yaml`` holds the absolute ``path``
    (as Ultralytics expects), the split folder and ``names`` (a list).

    Returns:
        The ``data.yaml`` path.

    Raises:
        ValueError: ``data.yaml`` already there with other ``names``.
    """
    ann = _as_annotations(data)
    out = Path(out_dir)
    yaml_path = out / "data.yaml"
    config = _read_yaml(yaml_path) if yaml_path.is_file() else {}
    if config and config.get("names") != list(ann.classes):
        raise ValueError(f"data.yaml names must match the data written; got {config.get('names')!r} in {yaml_path}, "
                         f"writing {list(ann.classes)!r}. Write into another folder.")
    inside(out / "images", split, "--split")  # the split names a folder of the output
    for record in ann.records:
        keep = ~(record.iscrowd | record.difficult)
        boxes, labels = record.boxes[keep], record.labels[keep]
        scale = np.array([record.width, record.height, record.width, record.height], dtype=np.float64)
        cxcywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1) / scale
        lines = "".join(f"{int(label)} " + " ".join(f"{v:.{YOLO_DECIMALS}f}" for v in row) + "\n"
                        for label, row in zip(labels.tolist(), cxcywh.tolist(), strict=True))
        what = _record_name(record)
        _write_text(inside(out / "labels" / split, record.file_name, what).with_suffix(".txt"), lines)
        _place_image(record.path, inside(out / "images" / split, record.file_name, what), images)
    config.update({"path": str(out.resolve()), split: f"images/{split}", "names": list(ann.classes)})
    _write_text(yaml_path, yaml.safe_dump(config, sort_keys=False))
    return yaml_path
