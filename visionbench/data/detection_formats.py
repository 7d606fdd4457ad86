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
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import defusedxml
import defusedxml.ElementTree as SafeElementTree
import numpy as np
import torch
import yaml
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.ops import box_convert

from visionbench.data.folder import read_image_rgb
from visionbench.data.splits import DatasetView, TaskData, random_split_views
from visionbench.metrics.detection import _read_json, load_coco_ground_truth

Format = Literal["coco", "voc", "yolo"]
ImageMode = Literal["copy", "symlink", "none"]

# Boxes that move by at most this many pixels when clamped are not counted as clamped: YOLO's
# 6-decimal normalised coordinates put a border box up to ~1e-6 * W outside the image.
CLAMP_TOLERANCE = 1e-3
COCO_GT_DECIMALS = 6
VOC_DECIMALS = 2
YOLO_DECIMALS = 6
# Pascal VOC's 20 classes in the devkit's order (VOCinit.m), used when a VOC root has no classes.txt.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


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

    A sample is ``(tv_tensors.Image uint8 [3, H, W], target)``; see the module docstring.
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


# --------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------


class CocoDetection(DetectionDataset):
    """A COCO instances file (``images``, ``annotations``, ``categories``) and its images.

    Args:
        annotations_json: the instances JSON file.
        images_dir: folder that ``file_name`` is relative to; by default ``<json folder>/images``
            when that folder exists, else the JSON's folder.

    ``iscrowd`` (0 when absent, as visionbench's evaluator) and ``area`` (the box area when absent)
    come from the file; an extra ``difficult`` key is read when present. ``width``/``height`` are
    read from the image header when absent. Checks: see the module docstring (the JSON checks are
    :func:`visionbench.metrics.detection.load_coco_ground_truth`'s).

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


def _unique_names(names: Sequence[str], source: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(f"image [{i}] file name must be unique; got {name!r} again in {source}. List each image "
                             "once.")
        seen.add(name)


# --------------------------------------------------------------------------------------------
# Pascal VOC
# --------------------------------------------------------------------------------------------


class VocDetection(DetectionDataset):
    """A Pascal VOC layout (any year): ``root/Annotations/<id>.xml``, ``root/JPEGImages/``,
    ``root/ImageSets/Main/<split>.txt``.

    Args:
        root: the folder holding ``Annotations/`` (e.g. ``VOCdevkit/VOC2007``).
        split: the list in ``ImageSets/Main/`` (``"train"``, ``"val"``, ``"trainval"``, ``"test"``, …).
        classes: class names in label order; by default ``root/classes.txt`` (one name a line, as
            :func:`write_voc` writes) when it exists, else the 20 Pascal VOC classes.

    XML is parsed with ``defusedxml`` (entity declarations, i.e. XML bombs, are refused). The image
    is ``JPEGImages/<filename>`` (the XML's ``<filename>``), else ``JPEGImages/<id>.jpg``. ``difficult``
    is 0 when absent; ``image_id`` is the position in the split list; ``category_ids`` are
    ``1..K``.

    Example:
        >>> data = VocDetection("VOCdevkit/VOC2007", split="test")  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "trainval", *,
                 classes: Sequence[str] | None = None) -> None:
        super().__init__(_read_voc(Path(root), split, classes), f"voc:{root}")


def _read_voc(root: Path, split: str, classes: Sequence[str] | None) -> DetectionAnnotations:
    if classes is None:
        classes_file = root / "classes.txt"
        classes = _read_lines(classes_file) if classes_file.is_file() else list(VOC_CLASSES)
    classes = [str(c) for c in classes]
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"VOC classes must be distinct names, at least one; got {classes!r} for {root}. Pass "
                         "classes=[...] or fix classes.txt.")
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise ValueError(f"VOC split list must exist; got no file {split_file}. Pick an existing split (the .txt files "
                         "in ImageSets/Main) or write the list, one image id a line.")
    ids = [line.split()[0] for line in _read_lines(split_file)]
    _require_images(len(ids), str(split_file), "List one image id a line.")
    _unique_names(ids, str(split_file))
    index = {name: label for label, name in enumerate(classes)}
    records, clamped = [], 0
    for image_id, name in enumerate(ids):
        record, moved = _read_voc_xml(root, name, image_id, index)
        records.append(record)
        clamped += moved
    return DetectionAnnotations(classes, list(range(1, len(classes) + 1)), records, clamped)


def _read_lines(path: Path) -> list[str]:
    """Non-blank stripped lines of a text file."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _parse_xml(path: Path) -> ElementTree.Element:
    """The root element, through defusedxml; errors name the file."""
    if not path.is_file():
        raise ValueError(f"VOC annotation must exist; got no file {path}. Add it or remove the id from the split list.")
    if path.stat().st_size == 0:
        raise ValueError(f"VOC annotation {path} must be an XML document; got an empty file. Re-export it.")
    try:
        return SafeElementTree.parse(str(path)).getroot()
    except defusedxml.DefusedXmlException as exc:
        raise ValueError(f"VOC annotation must not declare XML entities or external references; got {exc} in {path}. "
                         "Such files can be XML bombs and are refused: re-export the annotation as plain XML.") from None
    except ElementTree.ParseError as exc:
        raise ValueError(f"VOC annotation {path} must be well-formed XML; got {exc}. The file is truncated or not XML: "
                         "re-export it.") from None


def _read_voc_xml(root: Path, name: str, image_id: int, index: Mapping[str, int]) -> tuple[DetectionRecord, int]:
    path = root / "Annotations" / f"{name}.xml"
    tree = _parse_xml(path)
    source = str(path)
    file_tag = (tree.findtext("filename") or "").strip()
    candidates = ([file_tag] if file_tag else []) + [f"{name}.jpg"]
    image_dir = root / "JPEGImages"
    file_name = next((c for c in candidates if (image_dir / c).is_file()), None)
    if file_name is None:
        raise ValueError(f"image files must exist; got none of {[str(image_dir / c) for c in candidates]} for {source}. "
                         "Add the image or fix <filename>.")
    size = _voc_size(tree, source, str(image_dir / file_name))
    boxes, labels, difficult, crowd, where = [], [], [], [], []
    for k, obj in enumerate(tree.findall("object")):
        what = f"<object> {k}"
        cls = (obj.findtext("name") or "").strip()
        if cls not in index:
            raise ValueError(f"{what} <name> must be one of the classes {list(index)!r}; got {cls!r} in {source}. Pass "
                             "classes=[...] (or write root/classes.txt) listing every class.")
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{what} must have a <bndbox>; got none in {source}. Add the box or drop the object.")
        xmin, ymin, xmax, ymax = (_voc_number(box, tag, what, source) for tag in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((xmin - 1.0, ymin - 1.0, xmax, ymax))  # 1-based inclusive -> continuous (detectron2)
        labels.append(index[cls])
        difficult.append(_voc_flag(obj, "difficult", what, source))
        crowd.append(_voc_flag(obj, "iscrowd", what, source))
        where.append(f"{what} <bndbox>")
    array = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    _check_boxes(array, where, source, "VOC boxes need xmin <= xmax + 1 and ymin <= ymax + 1 (1-based pixels).")
    return _make_record(image_id, Path(file_name).as_posix(), str(image_dir / file_name), size, array, labels, crowd,
                        difficult)


def _voc_number(box: ElementTree.Element, tag: str, what: str, source: str) -> float:
    text = box.findtext(tag)
    try:
        return float((text or "").strip())
    except ValueError:
        raise ValueError(f"{what} <bndbox><{tag}> must be a number; got {text!r} in {source}. Fix the box.") from None


def _voc_flag(obj: ElementTree.Element, tag: str, what: str, source: str) -> bool:
    text = (obj.findtext(tag) or "0").strip()
    if text not in ("0", "1"):
        raise ValueError(f"{what} <{tag}> must be 0 or 1; got {text!r} in {source}. Fix the flag.")
    return text == "1"


def _voc_size(tree: ElementTree.Element, source: str, image_path: str) -> tuple[int, int]:
    """``(H, W)`` from ``<size>``; from the image header when it is absent or 0 (as in some VOC files)."""
    texts = (tree.findtext("size/height"), tree.findtext("size/width"))
    if any(t is None or not t.strip() for t in texts):
        return _image_size(image_path)
    try:
        height, width = (int(float(t)) for t in texts)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"<size> width and height must be integers; got {texts[1]!r} x {texts[0]!r} in {source}. "
                         "Fix them or remove <size>.") from None
    return _image_size(image_path) if height <= 0 or width <= 0 else (height, width)


# --------------------------------------------------------------------------------------------
# YOLO (Ultralytics layout)
# --------------------------------------------------------------------------------------------


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
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
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
# Writers
# --------------------------------------------------------------------------------------------


def _as_annotations(data: DetectionDataset | DetectionAnnotations) -> DetectionAnnotations:
    if isinstance(data, DetectionAnnotations):
        return data
    if hasattr(data, "annotations"):
        return data.annotations()
    raise TypeError(f"data must be a detection dataset or DetectionAnnotations; got {type(data).__name__}. Read it with "
                    "CocoDetection/VocDetection/YoloDetection first.")


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


def coco_spec_paths(rest: str) -> tuple[str, str | None]:
    """``(annotations JSON, images folder or None)`` of the part of a ``coco:`` spec after the
    prefix: a ``:`` inside the path is kept unless it follows ``.json``."""
    head, sep, images = rest.partition(".json:")
    return (head + ".json", images or None) if sep else (rest, None)


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
        images: ``"copy"``, ``"symlink"`` or ``"none"`` (see the module docstring).

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
    for name, record in zip(ids, ann.records, strict=True):
        _write_text(out / "Annotations" / f"{name}.xml", _voc_xml(record, ann.classes))
        _place_image(record.path, out / "JPEGImages" / record.file_name, images)
    _write_text(out / "ImageSets" / "Main" / f"{split}.txt", "".join(f"{n}\n" for n in ids))
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
    for record in ann.records:
        keep = ~(record.iscrowd | record.difficult)
        boxes, labels = record.boxes[keep], record.labels[keep]
        scale = np.array([record.width, record.height, record.width, record.height], dtype=np.float64)
        cxcywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1) / scale
        lines = "".join(f"{int(label)} " + " ".join(f"{v:.{YOLO_DECIMALS}f}" for v in row) + "\n"
                        for label, row in zip(labels.tolist(), cxcywh.tolist(), strict=True))
        _write_text((out / "labels" / split / record.file_name).with_suffix(".txt"), lines)
        _place_image(record.path, out / "images" / split / record.file_name, images)
    config.update({"path": str(out.resolve()), split: f"images/{split}", "names": list(ann.classes)})
    _write_text(yaml_path, yaml.safe_dump(config, sort_keys=False))
    return yaml_path


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
    and test (second half) unless ``data.yaml`` names a ``test`` split.

    Args:
        spec: ``"coco:ANNOTATIONS.json[:IMAGES]"``, ``"voc:ROOT"`` or ``"yolo:DATA.yaml"``.
    """
    kind, _, rest = spec.partition(":")
    if kind == "yolo":
        train = read_detection(spec, split="train")
        val = read_detection(spec, split="val")
        data_yaml = _read_yaml(Path(rest))
        if data_yaml.get("test"):
            test = read_detection(spec, split="test")
        else:
            half = len(val) // 2
            val, test = DatasetView(val, range(half)), DatasetView(val, range(half, len(val)))
    else:
        pool = read_detection(spec)
        train, val, test = random_split_views(pool, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    return TaskData(train=train, val=val, test=test, classes=list(train.classes), in_channels=3, image_size=None, name=spec,
                    task="detect")
