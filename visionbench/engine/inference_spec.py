"""A run's inference spec: what its model needs to predict new images without the training data.

Training writes it to the run's ``inference.json`` (classes, input size, normalisation, whether
the classifier is multi-label, and for detection the dataset's category ids), and
``visionbench predict`` reads it back, so a run predicts on another machine or after its data
has moved. It sits below the training loop and the prediction code, which both import it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from visionbench.config import TASKS
from visionbench.data.multilabel import is_multilabel
from visionbench.engine import rundir
from visionbench.engine.loaders import DataBundle


@dataclass(frozen=True)
class InferenceSpec:
    """What a run's model needs to predict a new image, without the training data.

    Attributes:
        task: ``"classify"``, ``"detect"`` or ``"segment"``.
        classes: class names, by class index.
        in_channels: 1 (grey) or 3 (RGB) model input channels.
        image_size: ``(H, W)`` the model was built for, or ``None`` (images keep their own size).
        native_size: classification: the stored size of every training image when they all
            share one (inputs of that size are not resized).
        mean, std: per-channel normalisation of ``[0, 1]`` images, or ``None`` where the model
            normalises its own input (torchvision's detectors).
        category_ids: detection: the dataset's id of each class index (COCO category ids, VOC
            ``1..K``, YOLO class numbers; :func:`category_ids`), as the run's ``metrics.json``,
            ``ground_truth.json`` and ``predictions.json`` show them; ``None`` for the other tasks,
            and where a run's ids are unknown (readers then use ``index + 1``).
        resize_size: classification on pretrained weights: the short side images are resized to
            before the centre crop to ``image_size`` (the weights' own preprocessing, with their
            ``mean``/``std``); ``None`` otherwise.
        multilabel: classification with several labels per image (one sigmoid per label), so
            ``predict`` reads the model's outputs as label sets; files written before the field
            lack it and read as ``False`` (``predict`` then follows the run's ``config.yaml``).
    """

    task: str
    classes: tuple[str, ...]
    in_channels: int
    image_size: tuple[int, int] | None
    native_size: tuple[int, int] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    category_ids: tuple[int, ...] | None = None  # optional: inference.json files written before it lack it
    resize_size: int | None = None  # optional, as category_ids
    multilabel: bool = False  # optional, as category_ids

    @property
    def num_classes(self) -> int:
        """The number of classes (what the model builders read, as of a dataset)."""
        return len(self.classes)


def category_ids(data: Any) -> list[int]:
    """The category id users read for each class index: the dataset's own (COCO category ids,
    VOC ``1..K``, YOLO class numbers), else ``index + 1`` (the embedded shapes' COCO export)."""
    for split in (data.test, data.train):
        ids = getattr(split, "category_ids", None)
        if ids is not None and len(ids) == len(data.classes):
            return [int(i) for i in ids]
    return list(range(1, len(data.classes) + 1))


def inference_spec(task: str, bundle: DataBundle) -> InferenceSpec:
    """The :class:`InferenceSpec` of a task's loaded data."""
    def pair(size: Any) -> tuple[int, int] | None:
        return None if size is None else (int(size[0]), int(size[1]))

    return InferenceSpec(task=task, classes=tuple(str(c) for c in bundle.data.classes),
                         in_channels=int(bundle.data.in_channels), image_size=pair(bundle.image_size),
                         native_size=pair(bundle.native_size),
                         mean=None if bundle.mean is None else tuple(float(v) for v in bundle.mean),
                         std=None if bundle.std is None else tuple(float(v) for v in bundle.std),
                         category_ids=tuple(category_ids(bundle.data)) if task == "detect" else None,
                         resize_size=getattr(bundle, "resize_size", None),
                         multilabel=task == "classify" and is_multilabel(bundle.data))


def write_inference_spec(run_dir: Path, spec: InferenceSpec) -> None:
    """Write ``inference.json`` atomically (a crash leaves the old file or none, never half of one)."""
    path = run_dir / rundir.INFERENCE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(spec), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _spec_problem(raw: Any) -> str | None:
    """What is wrong with a parsed ``inference.json``, or ``None``."""
    if not isinstance(raw, dict):
        return f"it holds a {type(raw).__name__}, not an object"
    if raw.get("task") not in TASKS:
        return f"'task' is {raw.get('task')!r}, not classify, detect or segment"
    classes = raw.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "'classes' must be a non-empty list of names"
    if raw.get("in_channels") not in (1, 3):
        return f"'in_channels' is {raw.get('in_channels')!r}, not 1 or 3"
    for key in ("image_size", "native_size"):
        size = raw.get(key)
        if size is not None and not (isinstance(size, list) and len(size) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            return f"'{key}' is {size!r}, not null or [height, width] in pixels"
    for key in ("mean", "std"):
        values = raw.get(key)
        if values is not None and not (isinstance(values, list) and len(values) == raw["in_channels"] and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)):
            return f"'{key}' is {values!r}, not null or one finite number per input channel"
    if raw.get("std") is not None and min(raw["std"]) <= 0:
        return f"'std' is {raw['std']!r}; every value must be positive"
    if (raw.get("mean") is None) != (raw.get("std") is None):
        return "'mean' and 'std' must both be given or both be null"
    resize = raw.get("resize_size")
    if resize is not None and not (isinstance(resize, int) and not isinstance(resize, bool) and resize > 0):
        return f"'resize_size' is {resize!r}, not null or a positive number of pixels"
    if not isinstance(raw.get("multilabel", False), bool):
        return f"'multilabel' is {raw['multilabel']!r}, not true or false"
    if raw.get("multilabel") and raw["task"] != "classify":
        return f"'multilabel' is true for task {raw['task']!r}; only classify runs are multi-label"
    ids = raw.get("category_ids")
    if ids is not None and not (isinstance(ids, list) and len(ids) == len(classes) and len(set(ids)) == len(ids) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in ids)):
        return f"'category_ids' is {ids!r}, not null or one distinct integer id per class"
    return None


def _ground_truth_ids(run_dir: Path, classes: list[str]) -> tuple[int, ...] | None:
    """The category ids of a detection run's ``ground_truth.json`` (what its metrics and outputs
    show), for runs whose ``inference.json`` predates ``category_ids``; ``None`` when that file is
    missing, unreadable or names other classes."""
    try:
        categories = json.loads((run_dir / rundir.GROUND_TRUTH).read_text(encoding="utf-8"))["categories"]
        ids = tuple(c["id"] for c in categories)
        names = [c["name"] for c in categories]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    if names != classes or not all(isinstance(v, int) and not isinstance(v, bool) for v in ids):
        return None
    return ids


def read_inference_spec(run_dir: Path) -> InferenceSpec | None:
    """The run's ``inference.json``, or ``None`` when the run predates it.

    Raises:
        ValueError: the file is not valid JSON or not a valid spec; the message names the file and
            the field, and how to recover.
    """
    path = run_dir / rundir.INFERENCE
    if not path.is_file():
        return None
    fix = (f"Restore it from a copy of the run, or delete it to rebuild it from the training data "
           f"(`visionbench predict` then loads the dataset named in {rundir.CONFIG}).")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}). {fix}") from None
    problem = _spec_problem(raw)
    if problem:
        raise ValueError(f"{str(path)!r} is not a valid inference spec: {problem}. {fix}")

    def optional_tuple(value: Any, kind: type) -> Any:
        return None if value is None else tuple(kind(v) for v in value)

    ids = optional_tuple(raw.get("category_ids"), int)
    if "category_ids" not in raw and raw["task"] == "detect":  # a run from before the field: its files' ids
        ids = _ground_truth_ids(run_dir, raw["classes"])
    return InferenceSpec(task=raw["task"], classes=tuple(raw["classes"]), in_channels=raw["in_channels"],
                         image_size=optional_tuple(raw.get("image_size"), int),
                         native_size=optional_tuple(raw.get("native_size"), int),
                         mean=optional_tuple(raw.get("mean"), float), std=optional_tuple(raw.get("std"), float),
                         category_ids=ids, resize_size=raw.get("resize_size"),
                         multilabel=raw.get("multilabel", False))


__all__ = ["InferenceSpec", "category_ids", "inference_spec", "read_inference_spec", "write_inference_spec"]
