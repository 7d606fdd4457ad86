"""Metrics of other tools' outputs read from files: COCO detection results against COCO ground
truth, and predicted PNG masks against ground-truth masks. Each returns the ``metrics.json``
content (every scalar with a 95% bootstrap interval over images) for :func:`visionbench.api.evaluate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionbench.data.masks import MASK_SUFFIXES, largest_mask_value, read_mask
from visionbench.data.pairing import pair_by_relative_path
from visionbench.metrics.detection import COCO_STATS
from visionbench.metrics.segmentation import SEGMENTATION_HIGHER_IS_BETTER

DETECTION_NAMES = COCO_STATS
SEGMENTATION_NAMES = tuple(SEGMENTATION_HIGHER_IS_BETTER)


def _entry(value: float, interval: tuple[float, float] | None) -> dict[str, Any]:
    low, high = interval if interval is not None else (math.nan, math.nan)
    return {"value": value, "ci95": [low, high], "higher_is_better": True}


def evaluate_detection_files(gt: Path, pred: Path, *, protocol: str = "pycocotools", score_threshold: float = 0.5,
                             resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """COCO (or VOC-protocol) metrics of a COCO results JSON against a COCO instances JSON.

    Returns:
        ``metrics.json`` content: the 12 COCO numbers (VOC: ``AP50``) with intervals from
        resampling images, ``per_class`` (AP, AP50 per category id), ``at_threshold``
        (precision/recall/F1 at ``score_threshold``), ``confusion_matrix`` with background,
        ``protocol``, ``task`` and ``num_samples`` (images).
    """
    from visionbench.metrics.detection import evaluate_coco

    evaluator = evaluate_coco(gt, pred, protocol=protocol, score_threshold=score_threshold)  # type: ignore[arg-type]
    return detection_metrics(evaluator, _category_names(gt), resamples=resamples, seed=seed)


def detection_metrics(evaluator: Any, class_names: dict[int, str], *, resamples: int = 1000, seed: int = 0
                      ) -> dict[str, Any]:
    """``metrics.json`` content of a filled :class:`~visionbench.metrics.detection.DetectionEvaluator`
    (see :func:`evaluate_detection_files`); ``class_names`` maps class ids to names."""
    from visionbench.metrics.detection import detection_intervals

    result = evaluator.compute()
    intervals = detection_intervals(evaluator, resamples=resamples, seed=seed) if resamples > 0 else {}
    metrics: dict[str, Any] = {"task": "detect", "num_samples": result["num_images"], "protocol": result["protocol"]}
    for name in DETECTION_NAMES:
        if name in result:
            value = float(result[name])
            metrics[name] = _entry(math.nan if value == -1 else value, intervals.get(name))
    per_class = {"category_id": result["class_ids"], "AP": _listed(result["per_class_AP"])}
    if "per_class_AP50" in result:
        per_class["AP50"] = _listed(result["per_class_AP50"])
    metrics["per_class"] = per_class
    metrics["classes"] = [class_names.get(int(c), str(c)) for c in result["class_ids"]]
    if "per_class_AP50" in result:  # COCO protocols: interpolated precision at IoU 0.5, all areas, 100 detections
        recall = [float(r) for r in result["pr_curves"]["recall"]]
        metrics["pr_curve"] = {
            name: {"recall": recall, "precision": _listed(result["pr_curves"]["precision"][0, :, k]),
                   "ap": per_class["AP50"][k]}
            for k, name in enumerate(metrics["classes"])
        }
    metrics["at_threshold"] = _jsonable(result["at_threshold"])
    metrics["confusion_matrix"] = np.asarray(result["confusion_matrix"]).tolist()
    metrics["confusion_labels"] = [*metrics["classes"], "background"]
    return metrics


def _category_names(gt: Path) -> dict[int, str]:
    """Category id → name from a COCO instances file (ids as text when names are missing)."""
    import json

    try:
        categories = json.loads(gt.read_text(encoding="utf-8")).get("categories", [])
        return {int(c["id"]): str(c.get("name", c["id"])) for c in categories}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}  # the evaluator has already validated the file; names are only labels


def _listed(values: Any) -> list[float | None]:
    """A per-class array as a JSON list, ``None`` where undefined (-1 or NaN)."""
    return [None if (v == -1 or v != v) else float(v) for v in np.asarray(values, dtype=np.float64).tolist()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | list | tuple):
        return [_jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def mask_pairs(gt: Path, pred: Path) -> tuple[list[tuple[str, Path, Path]], dict[str, list[str]]]:
    """Masks of two folders paired by relative path without suffix, and the unpaired ones."""
    for folder in (gt, pred):
        if not folder.is_dir():
            raise ValueError(f"{str(folder)!r} is not a folder of masks; give --gt DIR and --pred DIR.")

    pairs, gt_only, pred_only = pair_by_relative_path(gt, pred, MASK_SUFFIXES, ignore_suffix=True)
    if not pairs:
        raise ValueError(f"no mask of {str(gt)!r} has a counterpart with the same name in {str(pred)!r}.")
    return pairs, {"ground_truth_only": gt_only, "prediction_only": pred_only}


def evaluate_segmentation_files(gt: Path, pred: Path, *, num_classes: int | None, ignore_index: int = 255,
                                resamples: int = 1000, seed: int = 0,
                                progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> dict[str, Any]:
    """Dataset-level segmentation metrics of predicted masks against ground-truth masks.

    Masks are paired by file name (relative path without suffix); ``num_classes`` defaults to
    one more than the largest class index found (``ignore_index`` excluded), stated in the result.

    Returns:
        ``metrics.json`` content: ``mIoU``, ``fwIoU``, ``pixel_accuracy``, ``mean_class_accuracy``,
        ``dice_mean`` (dataset level, one confusion matrix) and ``mIoU_per_image`` (labelled as
        such), each with an interval from resampling images; ``per_class``, ``absent_classes``,
        ``confusion_matrix``, ``unpaired``.
    """
    from visionbench.metrics.segmentation import SegmentationAccumulator

    pairs, unpaired = mask_pairs(gt, pred)
    if num_classes is None:
        paths = [path for _, gt_path, pred_path in pairs for path in (gt_path, pred_path)]
        num_classes = max(largest_mask_value(paths, ignore_index) + 1, 1)
    accumulator = SegmentationAccumulator(num_classes, ignore_index=ignore_index)
    for name, gt_path, pred_path in (progress(pairs) if progress else pairs):
        target, predicted = read_mask(gt_path), read_mask(pred_path)
        if target.shape != predicted.shape:
            raise ValueError(f"masks must have the same size; got {target.shape[1]}x{target.shape[0]} in {gt_path} and "
                             f"{predicted.shape[1]}x{predicted.shape[0]} in {pred_path}. Resize the prediction with "
                             "nearest-neighbour interpolation first.")
        try:
            accumulator.update(torch.from_numpy(predicted)[None], torch.from_numpy(target)[None])
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    metrics = segmentation_metrics(accumulator, resamples=resamples, seed=seed)
    metrics["unpaired"] = unpaired
    return metrics


def segmentation_metrics(accumulator: Any, *, classes: list[str] | None = None, resamples: int = 1000, seed: int = 0
                         ) -> dict[str, Any]:
    """``metrics.json`` content of a filled :class:`~visionbench.metrics.segmentation.SegmentationAccumulator`
    (see :func:`evaluate_segmentation_files`); ``classes`` names the mask values when known."""
    num_classes, ignore_index = accumulator.num_classes, accumulator.ignore_index
    result = accumulator.compute()
    intervals = accumulator.intervals(resamples=resamples, seed=seed) if resamples > 0 else {}
    metrics: dict[str, Any] = {"task": "segment", "num_samples": result["num_images"], "num_classes": num_classes,
                               "ignore_index": ignore_index}
    for name in SEGMENTATION_NAMES:
        metrics[name] = _entry(result[name], intervals.get(name))
    metrics["mIoU_per_image"]["definition"] = "mean over images of each image's mIoU (not the dataset-level mIoU)"
    for key in ("per_class", "absent_classes", "confusion_matrix"):
        metrics[key] = _jsonable(result[key])
    if classes is not None:
        metrics["classes"] = list(classes)
    return metrics
