"""Bootstrap intervals of the detection numbers (percentile, re-centred on the estimate) and the
paired comparison of two runs."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from visionbench.metrics.detection.evaluator import DetectionEvaluator
from visionbench.metrics.significance import PairedMetric, paired_metric
from visionbench.metrics.stats import bootstrap_count_blocks

# --------------------------------------------------------------------------------------------
# Bootstrap intervals and paired comparison
# --------------------------------------------------------------------------------------------


def _resampled_stats(evaluators: Sequence[DetectionEvaluator], resamples: int, seed: int
                     ) -> Iterator[list[dict[str, float]]]:
    """For each bootstrap resample of the images (the same draw for every evaluator), their stats."""
    n = evaluators[0].image_ids.size
    for block in bootstrap_count_blocks(n, resamples=resamples, seed=seed):
        for counts in block.numpy().astype(np.int64):
            yield [e.stats(image_weights=counts) for e in evaluators]


def recentred_interval(values: torch.Tensor, point: float, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap ``values`` moved so that their median is ``point``.

    The plain percentile interval assumes the resamples centre on the point estimate. AP's do not:
    a resample repeats images, the copies of a true positive form a run of tied scores that raises
    the precision envelope (a running maximum), and with many classes of few objects every
    resample can lie above the estimate, so the percentile interval excluded its own point. (That
    upward shift is AP's small-sample bias, which the bootstrap reproduces; it is not a tie-order
    artefact: the resample orders ties exactly as pycocotools would order the resampled set.)
    Moving the resamples by ``point - median(values)`` keeps their spread and removes the shift, so
    the interval always contains the estimate; with no shift it is the percentile interval.
    NaNs (undefined resamples) are left out; all-NaN or a NaN point gives ``(nan, nan)``.
    """
    finite = values[~torch.isnan(values)].double()
    if finite.numel() == 0 or math.isnan(point):
        return math.nan, math.nan
    tail = (1.0 - level) / 2
    low, median, high = torch.quantile(finite, torch.tensor([tail, 0.5, 1.0 - tail], dtype=torch.float64))
    shift = point - float(median)
    return float(low) + shift, float(high) + shift


def detection_intervals(evaluator: DetectionEvaluator, *, resamples: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of the headline numbers, resampling images, centred on the estimates.

    Each resample counts every image as often as it was drawn (:func:`bootstrap_count_blocks`)
    and re-accumulates the stored matches (no re-matching; matching is per image). The copies of
    an image take its place in the score order (ties across images are broken by image id, as in
    the point estimate, so a resample orders its detections exactly as pycocotools would order the
    resampled set with each copy's id next to the original's). Resamples in which a number is
    undefined (``-1``: no GT) are left out of its interval. The interval is
    :func:`recentred_interval`, not the plain percentile one: AP's resamples are shifted upward
    (see there), and the plain interval could exclude its own point estimate.

    Args:
        evaluator: an evaluator with every image added.
        resamples, seed: number of resamples and the seed of the draws.
        level: central coverage of the interval.

    Returns:
        ``{name: (low, high)}`` for the names of :meth:`DetectionEvaluator.stats`.
    """
    point = evaluator.stats()
    if evaluator.image_ids.size == 0:
        return {name: (math.nan, math.nan) for name in point}
    values: dict[str, list[float]] = {name: [] for name in point}
    for (stats,) in _resampled_stats([evaluator], resamples, seed):
        for name, value in stats.items():
            values[name].append(math.nan if value == -1 else value)
    return {name: recentred_interval(torch.tensor(v, dtype=torch.float64),
                                     math.nan if point[name] == -1 else point[name], level)
            for name, v in values.items()}


def compare_detection(run_a: DetectionEvaluator, run_b: DetectionEvaluator, *, resamples: int = 1000, seed: int = 0
                      ) -> dict[str, PairedMetric]:
    """Paired bootstrap comparison of two detection runs on the same images.

    Both runs are resampled with the *same* image counts; the difference is ``b - a`` and the
    p-value :func:`visionbench.metrics.significance.bootstrap_p_value`.

    Returns:
        ``{name: PairedMetric}`` for each headline number (``AP``, ``AP50``, … or VOC's ``AP50``).
    """
    if run_a.protocol != run_b.protocol or not np.array_equal(run_a.image_ids, run_b.image_ids):
        raise ValueError(f"runs must use the same protocol and images to compare; got {run_a.protocol!r} on "
                         f"{run_a.image_ids.size} images and {run_b.protocol!r} on {run_b.image_ids.size}. "
                         "Evaluate both on the same test set.")
    value_a, value_b = run_a.stats(), run_b.stats()
    diffs: dict[str, list[float]] = {name: [] for name in value_a}
    for stats_a, stats_b in _resampled_stats([run_a, run_b], resamples, seed):
        for name in diffs:
            undefined = stats_a[name] == -1 or stats_b[name] == -1
            diffs[name].append(math.nan if undefined else stats_b[name] - stats_a[name])
    out = {}
    for name, values in diffs.items():
        d = torch.tensor(values, dtype=torch.float64)
        out[name] = paired_metric(value_a[name], value_b[name], d)
    return out
