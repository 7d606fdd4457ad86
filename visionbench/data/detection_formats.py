"""Object-detection datasets in COCO, Pascal VOC and YOLO files: readers, writers and a converter.

Every reader gives the one detection sample contract (torchvision's)::

    image:  tv_tensors.Image uint8 [3, H, W]
    target: {"boxes": tv_tensors.BoundingBoxes float32 [n, 4] XYXY, canvas_size=(H, W),
             "labels": int64 [n] in [0, K),   "iscrowd": bool [n],   "area": float32 [n],
             "image_id": int,                 "difficult": bool [n]  (VOC; all False elsewhere)}

``labels`` are contiguous class indices; ``dataset.classes[label]`` is the name and
``dataset.category_ids[label]`` the id the file uses (COCO category ids ascending; VOC ``1..K`` in
class order; YOLO the class numbers of ``names``). Images are decoded lazily with Pillow, one per
``__getitem__``; :meth:`DetectionDataset.annotations` returns every box without decoding any image
(for evaluation and conversion).

**Coordinates.** Boxes are ``(x1, y1, x2, y2)`` in continuous pixel coordinates, ``0 <= x1 <= x2 <=
W``. COCO ``[x, y, w, h]`` gives ``x2 = x + w``. VOC ``xmin..xmax`` are 1-based inclusive pixel
indices, so ``x1 = xmin - 1``, ``x2 = xmax`` (detectron2's ``pascal_voc.py`` convention: a box over
the whole image is ``(1, W)`` in the XML and ``(0, W)`` here). YOLO ``cx cy w h`` are fractions of
the image size: ``x1 = (cx - w / 2) * W``.

**Bad input.** ``ValueError`` naming the file and the record (COCO record index and id, XML object
index, txt line number) for: malformed or empty JSON/XML/YAML/split lists, a non-finite box,
``x2 < x1`` (COCO ``w < 0``, VOC ``xmax < xmin - 1``, YOLO ``w < 0``), YOLO values outside
``[0, 1]`` (not normalised, as Ultralytics refuses them), a category id / class name / class
number that the file's category list does not hold, repeated image ids or file names, a missing
image file, an XML file that declares entities or a DTD with entities (billion laughs, external
entities: refused by defusedxml) and a dataset without images. An empty YOLO label file (or a
missing one, as in Ultralytics) means "no objects". An unreadable image, or one whose size
differs from the annotation's, raises at ``__getitem__`` naming the file.

**Boxes outside the image are clamped** to ``[0, W] x [0, H]`` (torchvision's
``clamp_bounding_boxes``), not refused: COCO and VOC files hold many boxes that overrun the border
by a pixel. ``dataset.num_clamped`` counts the boxes that moved by more than
``CLAMP_TOLERANCE`` pixels (smaller moves are the rounding of normalised YOLO coordinates), and a
warning says how many. A box wholly outside the image becomes a zero-width (or zero-height) box;
zero-size boxes are kept (COCO allows ``w = 0``), so filter them before training a torchvision
detector if needed.

**Writers** (:func:`write_coco_ground_truth`, :func:`write_coco_results`, :func:`write_voc`,
:func:`write_yolo`) and :func:`convert`. Precision of what they write:

* COCO ground truth: box and area values rounded to 6 decimals (1e-6 px; removes float noise like
  ``10.000000000000002``, exact for every box with at most 6 decimals).
* COCO results: ``bbox`` exact: ``x, y, w, h`` computed in float64 from the boxes given and
  written with Python's shortest round-trip text, so a tool that reads the file (pycocotools,
  faster-coco-eval, ``visionbench evaluate``) sees the same float64 values the in-memory
  evaluation used, and its numbers agree bit for bit; ``score`` as the shortest decimal that
  reads back to the same float32, which keeps every distinct score distinct and in order, so
  ranking (and AP) is unchanged.
* VOC: coordinates rounded to 2 decimals, written as integers when integral (the usual VOC files;
  tools that parse with ``int()`` need integral boxes).
* YOLO: ``cx cy w h`` with 6 decimals, so each corner is within ``7.5e-7 * W`` (or ``H``) pixels
  of the original (``5e-7`` on ``cx`` plus half of ``5e-7`` on ``w``): 0.0005 px on a 640 px image.

What each format cannot hold: YOLO has no crowd, difficult or area, so crowd and difficult objects
are left out when writing YOLO (as Ultralytics' COCO and VOC converters skip them) and ``area``
reads back as the box area; VOC has no area (box area on reading) and no crowd flag, which is
written as a non-standard ``<iscrowd>1</iscrowd>`` element that this reader understands and other
tools ignore; COCO has no difficult flag, written as an extra ``"difficult": 1`` annotation key (on
every annotation, only when some object is difficult) that pycocotools ignores. Image ids are kept
by COCO only; VOC and YOLO number images ``0..N-1`` in list order.

**Images** are copied (``images="copy"``, the default: the output stands alone), symbolically
linked (``"symlink"``: no extra disk, but the output breaks if the source moves) or left alone
(``"none"``: only annotation files are written), never re-encoded: a PNG stays a PNG even under
VOC's ``JPEGImages/`` (its ``<filename>`` says so; tools that assume ``<id>.jpg`` need JPEG sources).

**Layout.** This module names the public API and holds :func:`read_detection`, :func:`convert` and
:func:`load_detection_data`; the code behind it is in private modules: ``_detection_records`` (the
records, the dataset and the checks every reader shares), one reader each in ``_detection_coco``,
``_detection_voc`` and ``_detection_yolo``, and the writers in ``_detection_writers``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from visionbench.data._detection_coco import CocoDetection, coco_spec_paths
from visionbench.data._detection_records import (
    CLAMP_TOLERANCE,
    DetectionAnnotations,
    DetectionDataset,
    DetectionRecord,
    record_target,
)
from visionbench.data._detection_voc import VOC_CLASSES, VocDetection
from visionbench.data._detection_writers import COCO_GT_DECIMALS as COCO_GT_DECIMALS
from visionbench.data._detection_writers import VOC_DECIMALS as VOC_DECIMALS
from visionbench.data._detection_writers import YOLO_DECIMALS as YOLO_DECIMALS
from visionbench.data._detection_writers import (
    ImageMode,
    _place_image,
    write_coco_ground_truth,
    write_coco_results,
    write_voc,
    write_yolo,
)
from visionbench.data._detection_yolo import YoloDetection, _read_yaml
from visionbench.data.splits import DatasetView, TaskData, random_split_views

Format = Literal["coco", "voc", "yolo"]


# --------------------------------------------------------------------------------------------
# Reading a spec
# --------------------------------------------------------------------------------------------


def read_detection(spec: str, *, split: str | None = None) -> DetectionDataset:
    """Open a detection dataset named by a data spec.

    Args:
        spec: ``"coco:ANNOTATIONS.json[:IMAGES]"``, ``"voc:ROOT"`` or ``"yolo:DATA.yaml"``.
        split: VOC split (default ``"trainval"``) or YOLO split (default ``"train"``); unused by COCO.

    Example:
        >>> data = read_detection("yolo:coco8/data.yaml", split="val")  # doctest: +SKIP
    """
    kind, _, rest = spec.partition(":")
    if kind == "coco" and rest:
        return CocoDetection(*coco_spec_paths(rest))
    if kind == "voc" and rest:
        return VocDetection(rest, split or "trainval")
    if kind == "yolo" and rest:
        return YoloDetection(rest, split or "train")
    raise ValueError(f"detection data spec must be 'coco:ANNOTATIONS.json[:IMAGES]', 'voc:ROOT' or 'yolo:DATA.yaml'; "
                     f"got {spec!r}. Name the format and the path.")


# --------------------------------------------------------------------------------------------
# Converter
# --------------------------------------------------------------------------------------------


def convert(src_spec: str, dst_format: Format, out_dir: str | os.PathLike[str], *, split: str | None = None,
            images: ImageMode = "copy") -> str:
    """Convert one split of a COCO, VOC or YOLO dataset to another of the three formats.

    Args:
        src_spec: ``"coco:ANNOTATIONS.json[:IMAGES]"``, ``"voc:ROOT"`` or ``"yolo:DATA.yaml"``.
        dst_format: ``"coco"``, ``"voc"`` or ``"yolo"``.
        out_dir: output folder (created); converting several splits into it adds each one.
        split: the split read (VOC default ``"trainval"``, YOLO ``"train"``) and the name written
            (default: that split, or ``"train"`` from COCO; for VOC output ``"trainval"``).
        images: ``"copy"`` (default), ``"symlink"`` or ``"none"``: how images reach ``out_dir``.

    Output layouts: COCO ``out_dir/annotations_<split>.json`` with images in ``out_dir/images/``
    (the folder :class:`CocoDetection` looks in by default); VOC and YOLO as :func:`write_voc` /
    :func:`write_yolo`. What each format drops and its precision: see the module docstring.

    Returns:
        The spec of the written dataset (``"coco:…json"``, ``"voc:ROOT"``, ``"yolo:…data.yaml"``).

    Example:
        >>> convert("coco:instances_val2017.json:val2017", "yolo", "coco-yolo", split="val")  # doctest: +SKIP
        'yolo:coco-yolo/data.yaml'
    """
    source = read_detection(src_spec, split=split)
    out = Path(out_dir)
    name = split or ("trainval" if src_spec.startswith("voc:") else "train")
    if dst_format == "coco":
        ann = source.annotations()
        for record in ann.records:
            _place_image(record.path, out / "images" / record.file_name, images)
        return f"coco:{write_coco_ground_truth(ann, out / f'annotations_{name}.json')}"
    if dst_format == "voc":
        return f"voc:{write_voc(source, out, split=split or 'trainval', images=images)}"
    if dst_format == "yolo":
        return f"yolo:{write_yolo(source, out, split=name, images=images)}"
    raise ValueError(f"dst_format must be 'coco', 'voc' or 'yolo'; got {dst_format!r}. Pick one.")


__all__ = [
    "CLAMP_TOLERANCE", "VOC_CLASSES", "CocoDetection", "DetectionAnnotations", "DetectionDataset", "DetectionRecord",
    "VocDetection", "YoloDetection", "coco_spec_paths", "convert", "read_detection", "record_target", "write_coco_ground_truth",
    "write_coco_results", "write_voc", "write_yolo",
]


# --------------------------------------------------------------------------------------------
# Training splits
# --------------------------------------------------------------------------------------------


def load_detection_data(spec: str, *, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2
                        ) -> TaskData:
    """A detection data spec as three splits for training.

    COCO and VOC (``trainval``) files are one pool, split at random by ``seed`` and the fractions.
    YOLO's ``train`` split is the training split; its ``val`` split is halved into val (first half)
    and test (second half) unless ``data.yaml`` names a ``test`` split; a ``data.yaml`` without ``val``
    has its missing splits drawn at random from ``train`` (see :func:`_yolo_splits`).

    Args:
        spec: ``"coco:ANNOTATIONS.json[:IMAGES]"``, ``"voc:ROOT"`` or ``"yolo:DATA.yaml"``.
    """
    kind, _, rest = spec.partition(":")
    if kind == "yolo":
        train, val, test = _yolo_splits(spec, _read_yaml(Path(rest)), seed=seed, val_fraction=val_fraction,
                                        test_fraction=test_fraction)
    else:
        pool = read_detection(spec)
        train, val, test = random_split_views(pool, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    return TaskData(train=train, val=val, test=test, classes=list(train.classes), in_channels=3, image_size=None, name=spec,
                    task="detect")


def _yolo_splits(spec: str, data_yaml: Mapping[str, Any], *, seed: int, val_fraction: float, test_fraction: float
                 ) -> tuple[Dataset, Dataset, Dataset]:
    """``(train, val, test)`` of a YOLO ``data.yaml``: the splits it names, the missing ones drawn from ``train``.

    ``train`` + ``val`` (+ ``test``) are used as given, ``val`` halved into val and test when there is
    no ``test``. Without ``val`` (what ``visionbench convert --to yolo`` writes from one split) the
    train images are split at random by ``seed`` and the fractions, as for COCO and VOC files: val
    and test both, or val only when ``test`` is named.
    """
    train = read_detection(spec, split="train")
    if data_yaml.get("val"):
        val = read_detection(spec, split="val")
        if data_yaml.get("test"):
            return train, val, read_detection(spec, split="test")
        half = len(val) // 2
        return train, DatasetView(val, range(half)), DatasetView(val, range(half, len(val)))
    if data_yaml.get("test"):
        train, val, _ = random_split_views(train, seed=seed, val_fraction=val_fraction, test_fraction=0.0)
        return train, val, read_detection(spec, split="test")
    return random_split_views(train, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
