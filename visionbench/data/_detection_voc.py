"""Pascal VOC layouts: the reader (:class:`VocDetection`), its safe XML parsing and VOC's 20 classes.

Private to :mod:`visionbench.data.detection_formats`, which names the public API.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as SafeElementTree
import numpy as np

from visionbench.data._detection_records import (
    DetectionAnnotations,
    DetectionDataset,
    DetectionRecord,
    _check_boxes,
    _image_size,
    _make_record,
    _read_lines,
    _require_images,
    _unique_names,
)

# Pascal VOC's 20 classes in the devkit's order (VOCinit.m), used when a VOC root has no classes.txt.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


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
    if height <= 0 or width <= 0:
        return _image_size(image_path)
    if os.path.isfile(image_path):  # <size> scales YOLO boxes and COCO areas: it must be the image's
        actual = _image_size(image_path)
        if actual != (height, width):
            raise ValueError(f"<size> must be the image's size; got width {width} x height {height} in {source}, but "
                             f"{image_path} is {actual[1]} x {actual[0]}. Fix <size> (or remove it to read the "
                             "size from the image).")
    return height, width
