"""COCO JSON loaders (ground truth and results) and :func:`evaluate_coco`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionbench.metrics.detection.evaluator import DetectionEvaluator
from visionbench.metrics.detection.protocol import Protocol


@dataclass(frozen=True)
class CocoGroundTruth:
    """A COCO instances file as flat arrays (one row per annotation, file order).

    Attributes:
        source: the file name (for messages).
        image_ids: ``int64 [N]`` every image of ``"images"``, file order.
        category_ids: ``int64 [K]`` every category of ``"categories"``, ascending.
        image_id, category_id, ann_id: ``int64 [G]``.
        bbox: ``float64 [G, 4]`` ``(x, y, w, h)``.
        area: ``float64 [G]`` the ``"area"`` field (``w * h`` where absent).
        iscrowd, ignore: ``bool [G]`` (False where absent).
    """

    source: str
    image_ids: np.ndarray
    category_ids: np.ndarray
    image_id: np.ndarray
    category_id: np.ndarray
    ann_id: np.ndarray
    bbox: np.ndarray
    area: np.ndarray
    iscrowd: np.ndarray
    ignore: np.ndarray


@dataclass(frozen=True)
class CocoResults:
    """COCO detection results (``[{"image_id", "category_id", "bbox", "score"}, …]``) as arrays.

    Attributes:
        source: the file name, or ``"<list>"``.
        image_id, category_id: ``int64 [D]``. bbox: ``float64 [D, 4]`` xywh. score: ``float64 [D]``.
    """

    source: str
    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    score: np.ndarray


def _read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; an empty or malformed file raises ``ValueError`` naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = "no such file" if isinstance(error, FileNotFoundError) else str(error)
        raise ValueError(f"cannot read {path}: {reason}. Check the path of the COCO JSON file.") from None
    if not text.strip():
        raise ValueError(f"{path} must be a COCO JSON file; got an empty file. Re-export the annotations or results.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} must be valid JSON; got {error.msg} at line {error.lineno} column {error.colno}. "
                         "The file is truncated or not JSON: re-export it.") from None
    except RecursionError:
        raise ValueError(f"{path} must be a COCO JSON file; got values nested too deeply to be one. Re-export the "
                         "annotations or results.") from None


def _record_name(records: Sequence[Any], i: int) -> str:
    record = records[i]
    rid = record.get("id") if isinstance(record, dict) else None
    return f"[{i}]" + (f" (id {rid!r})" if rid is not None else "")


def _column(records: Sequence[Any], key: str, source: str, section: str, *, kind: str,
            default: Any = None) -> np.ndarray:
    """One field of every record as an array, with an error naming the first bad record.

    ``kind``: ``"int"`` (integers), ``"number"`` (finite numbers), ``"bool"`` (0/1/true/false) or
    ``"box"`` (4 finite numbers with w, h >= 0).
    """
    def fail(i: int, constraint: str, how: str) -> ValueError:
        value = records[i].get(key, "<missing>") if isinstance(records[i], dict) else records[i]
        return ValueError(f"{section}{_record_name(records, i)}[{key!r}] must be {constraint}; got {value!r} in "
                          f"{source}. {how}")

    try:
        values = [r[key] if default is None else r.get(key, default) for r in records]
    except (KeyError, TypeError, AttributeError):
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                raise ValueError(f"{section}{_record_name(records, i)} must be an object; got {r!r} in {source}. "
                                 "Each record is a JSON object.") from None
            if key not in r:
                raise fail(i, "present", f"Every {section} record needs {key!r}.") from None
        raise
    if kind == "box":
        ok = [isinstance(v, list | tuple) and len(v) == 4 and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in v) for v in values]
        if not all(ok):
            raise fail(ok.index(False), "a list of 4 numbers [x, y, w, h]", "Fix the box or drop the record.")
        array = np.array(values, dtype=np.float64).reshape(-1, 4)
        bad = ~np.isfinite(array).all(axis=1) | ~(array[:, 2:] >= 0).all(axis=1)
        if bad.any():
            raise fail(int(np.argmax(bad)), "finite with w >= 0 and h >= 0", "Fix the box or drop the record.")
        return array
    if kind == "int":
        ok = [isinstance(v, int) and not isinstance(v, bool) for v in values]
        if not all(ok):
            raise fail(ok.index(False), "an integer", "COCO ids are integers.")
        fits = [-(2**63) <= v < 2**63 for v in values]  # numpy's int64 (an overflow traceback otherwise)
        if not all(fits):
            raise fail(fits.index(False), "an integer below 2**63", "Renumber the ids (pycocotools cannot read "
                       "them either).")
        return np.array(values, dtype=np.int64)
    if kind == "bool":
        ok = [v in (0, 1) for v in values]
        if not all(ok):
            raise fail(ok.index(False), "0 or 1", "Use 0/1 (or false/true).")
        return np.array(values, dtype=bool)
    ok = [isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values]
    if not all(ok):
        raise fail(ok.index(False), "a finite number", "Fix the value or drop the record.")
    return np.array(values, dtype=np.float64)


def _unique_ids(ids: np.ndarray, records: Sequence[Any], source: str, section: str) -> None:
    """Raise when an id repeats, naming the second record."""
    seen: set[int] = set()
    if np.unique(ids).size == ids.size:
        return
    for i, v in enumerate(ids.tolist()):
        if v in seen:
            raise ValueError(f"{section}{_record_name(records, i)}['id'] must be unique; got {v!r} again in {source}. "
                             "Give every record its own id.")
        seen.add(v)


def _check_known(values: np.ndarray, known: np.ndarray, records: Sequence[Any], source: str, section: str, key: str,
                 what: str, how: str) -> None:
    bad = ~np.isin(values, known)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{section}{_record_name(records, i)}[{key!r}] must be {what}; got {int(values[i])!r} in "
                         f"{source}. {how}")


def load_coco_ground_truth(path: str | os.PathLike[str] | Mapping[str, Any]) -> CocoGroundTruth:
    """Read a COCO instances JSON file (or its parsed dict) into :class:`CocoGroundTruth`.

    Checked (``ValueError`` naming the file and the record): valid JSON, the three lists, integer
    unique ids, 4-number boxes with ``w, h >= 0``, finite areas, annotations referring to listed
    images and categories. Defaults for pycocotools' required-but-often-missing fields:
    ``iscrowd = 0`` (pycocotools raises ``KeyError``), ``area = w * h``, ``ignore = 0``.

    Args:
        path: the file, or a dict with ``"images"``, ``"annotations"``, ``"categories"``.
    """
    source = "<dict>" if isinstance(path, Mapping) else str(path)
    data = path if isinstance(path, Mapping) else _read_json(path)
    if not isinstance(data, Mapping):
        raise ValueError(f"{source} must hold a JSON object with 'images', 'annotations' and 'categories'; got "
                         f"{type(data).__name__}. Is this a results file? Pass it as the results.")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{source}[{key!r}] must be a list; got {type(data.get(key)).__name__}. "
                             "A COCO instances file has 'images', 'annotations' and 'categories' lists.")
    images, anns, cats = data["images"], data["annotations"], data["categories"]
    image_ids = _column(images, "id", source, "images", kind="int")
    _unique_ids(image_ids, images, source, "images")
    category_ids = _column(cats, "id", source, "categories", kind="int")
    _unique_ids(category_ids, cats, source, "categories")
    ann_id = _column(anns, "id", source, "annotations", kind="int")
    _unique_ids(ann_id, anns, source, "annotations")
    image_id = _column(anns, "image_id", source, "annotations", kind="int")
    category_id = _column(anns, "category_id", source, "annotations", kind="int")
    _check_known(image_id, image_ids, anns, source, "annotations", "image_id", "the id of an entry of 'images'",
                 "Add the image to 'images' or drop the annotation.")
    _check_known(category_id, category_ids, anns, source, "annotations", "category_id",
                 "the id of an entry of 'categories'", "Add the category or drop the annotation.")
    if (category_ids < 0).any():
        raise ValueError(f"categories ids must be non-negative; got {int(category_ids.min())} in {source}. "
                         "Renumber the categories.")
    bbox = _column(anns, "bbox", source, "annotations", kind="box")
    area = _column(anns, "area", source, "annotations", kind="number", default=0.0)
    has_area = np.array([isinstance(a, dict) and "area" in a for a in anns], dtype=bool)
    area = np.where(has_area, area, bbox[:, 2] * bbox[:, 3])
    if (area < 0).any():
        i = int(np.argmax(area < 0))
        raise ValueError(f"annotations{_record_name(anns, i)}['area'] must be >= 0; got {area[i]!r} in {source}. "
                         "Fix the area.")
    iscrowd = _column(anns, "iscrowd", source, "annotations", kind="bool", default=0)
    ignore = _column(anns, "ignore", source, "annotations", kind="bool", default=0)
    return CocoGroundTruth(source, image_ids, np.sort(category_ids), image_id, category_id, ann_id, bbox, area,
                           iscrowd, ignore)


def load_coco_results(source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
                      ground_truth: CocoGroundTruth) -> CocoResults:
    """Read COCO detection results (a JSON list of ``{"image_id", "category_id", "bbox", "score"}``).

    Checked (``ValueError`` naming the file and record index): a list of objects, integer ids,
    4-number boxes with ``w, h >= 0``, finite scores, image ids present in the ground truth
    (pycocotools asserts "Results do not correspond to current coco set") and category ids
    present in it (pycocotools silently drops those). An empty list is valid (no detections).
    Result ids are assigned 1, 2, … as ``COCO.loadRes`` does, so none is 0.

    Args:
        source: the file, or the already parsed list.
        ground_truth: from :func:`load_coco_ground_truth`.
    """
    name = "<list>" if not isinstance(source, str | os.PathLike) else str(source)
    records = _read_json(source) if isinstance(source, str | os.PathLike) else source
    if not isinstance(records, list):
        raise ValueError(f"{name} must hold a JSON list of detections; got {type(records).__name__}. Is this a "
                         "ground-truth file? COCO results are [{'image_id', 'category_id', 'bbox', 'score'}, ...].")
    image_id = _column(records, "image_id", name, "results", kind="int")
    category_id = _column(records, "category_id", name, "results", kind="int")
    bbox = _column(records, "bbox", name, "results", kind="box")
    score = _column(records, "score", name, "results", kind="number")
    _check_known(image_id, ground_truth.image_ids, records, name, "results", "image_id",
                 f"an image id of {ground_truth.source}", "Evaluate against the ground truth the results were made "
                 "for, or drop those records.")
    _check_known(category_id, ground_truth.category_ids, records, name, "results", "category_id",
                 f"a category id of {ground_truth.source}", "Map the model's labels to the dataset's category ids.")
    return CocoResults(name, image_id, category_id, bbox.reshape(-1, 4), score)


def evaluate_coco(ground_truth: str | os.PathLike[str] | CocoGroundTruth,
                  results: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | CocoResults, *,
                  protocol: Protocol = "pycocotools", score_threshold: float = 0.5) -> DetectionEvaluator:
    """Evaluate a COCO results file against a COCO ground-truth file.

    Args:
        ground_truth: instances JSON path (or a loaded :class:`CocoGroundTruth`).
        results: results JSON path, parsed list, or :class:`CocoResults`.
        protocol, score_threshold: as :class:`DetectionEvaluator`.

    Returns:
        The evaluator holding every image of the ground truth; call ``compute()`` for the numbers,
        or pass it to :func:`detection_intervals`.

    Example:
        >>> evaluate_coco("instances_val.json", "detections.json").compute()["AP"]  # doctest: +SKIP
    """
    gt = ground_truth if isinstance(ground_truth, CocoGroundTruth) else load_coco_ground_truth(ground_truth)
    res = results if isinstance(results, CocoResults) else load_coco_results(results, gt)
    evaluator = DetectionEvaluator(protocol=protocol, box_format="xywh", class_ids=gt.category_ids.tolist(),
                                   score_threshold=score_threshold)
    evaluator.add_coco(gt, res)
    return evaluator
