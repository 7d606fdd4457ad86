"""Metrics of other tools' outputs read from files: COCO detection results against COCO ground
truth, and predicted PNG masks against ground-truth masks. Each returns the ``metrics.json``
content (every scalar with a 95% bootstrap interval over images) for :func:`visionbench.api.evaluate`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionbench.data.masks import MASK_SUFFIXES, MAX_MASK_CLASSES, largest_mask_value, read_mask
from visionbench.data.pairing import pair_by_relative_path
from visionbench.metrics.detection import COCO_STATS
from visionbench.metrics.segmentation import SEGMENTATION_HIGHER_IS_BETTER

DETECTION_NAMES = COCO_STATS
SEGMENTATION_NAMES = tuple(SEGMENTATION_HIGHER_IS_BETTER)
NAMES_SHOWN = 3  # unpaired file names quoted in a message


def _some(names: list[str]) -> str:
    """The first few of ``names`` for a message: ``'a', 'b', 'c', …``."""
    return ", ".join(repr(n) for n in names[:NAMES_SHOWN]) + (", …" if len(names) > NAMES_SHOWN else "")


# Why a COCO number is undefined (pycocotools' -1): no true object of the sizes it averages over.
_AREA_RANGES = {"s": "no small objects (area below 32² px)", "m": "no medium objects (area 32² to 96² px)",
                "l": "no large objects (area above 96² px)"}


def undefined_reason(name: str) -> str:
    """Why detection metric ``name`` is undefined, for the console and the report, e.g. ``APl``:
    ``"no large objects (area above 96² px) in the test set"``."""
    size = name[-1] if name[:2] in ("AP", "AR") else ""
    return f"{_AREA_RANGES.get(size, 'no objects')} in the test set"


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
    from visionbench.metrics.detection import evaluate_coco, load_coco_ground_truth, load_coco_results

    truth = load_coco_ground_truth(gt)  # read once: the evaluation and the coverage check share them
    results = load_coco_results(pred, truth)
    evaluator = evaluate_coco(truth, results, protocol=protocol, score_threshold=score_threshold)  # type: ignore[arg-type]
    metrics = detection_metrics(evaluator, _category_names(gt), resamples=resamples, seed=seed)
    missing, with_objects = images_without_results(truth.image_id, results.image_id)
    metrics["images_without_results"] = len(missing)
    if missing:  # legal in COCO results (nothing detected), but a cut-off file looks the same: say so
        shown = ", ".join(str(i) for i in missing[:5]) + (" …" if len(missing) > 5 else "")
        metrics.setdefault("warnings", []).append(
            f"{len(missing)} of {with_objects} ground-truth images with objects have no detection in {pred.name} "
            f"(image_id {shown}); they are scored as all missed. If the results file is incomplete, regenerate it.")
    return metrics


def images_without_results(annotated: np.ndarray, detected: np.ndarray) -> tuple[list[int], int]:
    """``(ids, n)``: the ids of the images that hold objects (``annotated``: each annotation's image
    id) but have no detection (``detected``: each result's image id), sorted, and ``n`` the number
    of images holding objects."""
    with_objects = np.unique(annotated)
    return np.setdiff1d(with_objects, detected).tolist(), int(with_objects.size)


def detection_metrics(evaluator: Any, class_names: dict[int, str], *, category_ids: Sequence[int] | None = None,
                      resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``metrics.json`` content of a filled :class:`~visionbench.metrics.detection.DetectionEvaluator`
    (see :func:`evaluate_detection_files`); ``class_names`` maps the evaluator's class ids to names.

    ``category_ids`` maps the evaluator's class ids, when they are contiguous indices ``0..K-1``
    (a training run), to the dataset's own category ids, which ``per_class["category_id"]`` shows
    (as the run's ``ground_truth.json`` and ``predictions.json`` do); ``None``: the evaluator's ids
    are the dataset's already (COCO files)."""
    from visionbench.metrics.detection import detection_intervals

    result = evaluator.compute()
    intervals = detection_intervals(evaluator, resamples=resamples, seed=seed) if resamples > 0 else {}
    metrics: dict[str, Any] = {"task": "detect", "num_samples": result["num_images"], "protocol": result["protocol"]}
    for name in DETECTION_NAMES:
        if name in result:
            value = float(result[name])
            metrics[name] = _entry(math.nan if value == -1 else value, intervals.get(name))
            if math.isnan(metrics[name]["value"]):
                metrics[name]["undefined"] = undefined_reason(name)
    shown_ids = [int(c) if category_ids is None else int(category_ids[int(c)]) for c in result["class_ids"]]
    per_class = {"category_id": shown_ids, "AP": _listed(result["per_class_AP"])}
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


def mask_pairs(gt: Path, pred: Path, *, allow_partial: bool = False
               ) -> tuple[list[tuple[str, Path, Path]], dict[str, list[str]], list[str]]:
    """Masks of two folders paired by relative path without suffix, the unpaired ones, and warnings.

    A ground-truth mask without a prediction is an error unless ``allow_partial``: leaving it out
    would score the predictions on a subset chosen by whoever made them (detection counts an
    image without detections as all misses; a missing mask has no such neutral reading). With
    ``allow_partial``, and for predictions without ground truth, a warning says what was left out.
    """
    for folder in (gt, pred):
        if not folder.is_dir():
            raise ValueError(f"{str(folder)!r} is not a folder of masks; give --gt DIR and --pred DIR.")

    pairs, gt_only, pred_only = pair_by_relative_path(gt, pred, MASK_SUFFIXES, ignore_suffix=True)
    if not pairs:
        raise ValueError(f"no mask of {str(gt)!r} has a counterpart with the same name in {str(pred)!r}.")
    total = len(pairs) + len(gt_only)
    if gt_only and not allow_partial:
        raise ValueError(f"every ground-truth mask must have a predicted mask of the same name; got {len(gt_only)} of "
                         f"{total} in {str(gt)!r} without one in {str(pred)!r} ({_some(gt_only)}). Predict every "
                         "image, fix the file names (paired by relative path, suffix ignored), or pass "
                         "--allow-partial to score only the pairs.")
    warnings = []
    if gt_only:
        warnings.append(f"scored {len(pairs)} of {total} ground-truth masks: {len(gt_only)} in {gt} have no predicted "
                        f"mask in {pred} ({_some(gt_only)}) and are left out (--allow-partial).")
    if pred_only:
        warnings.append(f"{len(pred_only)} predicted masks in {pred} have no ground truth in {gt} ({_some(pred_only)}) "
                        "and are not scored; check the file names.")
    return pairs, {"ground_truth_only": gt_only, "prediction_only": pred_only}, warnings


def evaluate_segmentation_files(gt: Path, pred: Path, *, num_classes: int | None, ignore_index: int = 255,
                                allow_partial: bool = False, resamples: int = 1000, seed: int = 0,
                                progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> dict[str, Any]:
    """Dataset-level segmentation metrics of predicted masks against ground-truth masks.

    Masks are paired by file name (relative path without suffix); ``num_classes`` defaults to
    one more than the largest class index found (``ignore_index`` excluded), stated in the result.
    A ground-truth mask without a prediction is an error unless ``allow_partial`` (see :func:`mask_pairs`).

    Returns:
        ``metrics.json`` content: ``mIoU``, ``fwIoU``, ``pixel_accuracy``, ``mean_class_accuracy``,
        ``dice_mean`` (dataset level, one confusion matrix) and ``mIoU_per_image`` (labelled as
        such), each with an interval from resampling images; ``per_class``, ``absent_classes``,
        ``confusion_matrix``, ``unpaired``, and ``warnings`` when some masks were not paired.
    """
    from visionbench.metrics.segmentation import SegmentationAccumulator

    pairs, unpaired, warnings = mask_pairs(gt, pred, allow_partial=allow_partial)
    if num_classes is None:
        paths = [path for _, gt_path, pred_path in pairs for path in (gt_path, pred_path)]
        num_classes = max(largest_mask_value(paths, ignore_index, limit=MAX_MASK_CLASSES) + 1, 1)
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
    metrics["num_ground_truth"] = len(pairs) + len(unpaired["ground_truth_only"])
    if warnings:
        metrics["warnings"] = warnings
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
