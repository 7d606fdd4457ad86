"""The probability metrics of a classification report, with bootstrap intervals, from one sort per class.

:func:`score_metrics` gives what ``metrics.json`` holds about the probabilities: ``log_loss``,
``roc_auc_macro``, ``average_precision_macro``, ``ece`` (15 bins) and ``top5_accuracy`` (K > 5),
each with a 95% percentile bootstrap interval (samples resampled with replacement), plus the ROC
and PR curves and the reliability bins that the report plots. Point values are those of
:mod:`visionbench.metrics.scores` (equal to scikit-learn's); each class is sorted once
(:func:`~visionbench.metrics.ranking.rank_class`) for its value, its curves and every resample.

Cost: one block of resamples (:func:`~visionbench.metrics.stats.bootstrap_count_columns`) is one
sparse product per class for AUC and AP and one dense product for ECE and log loss, so the
intervals take time proportional to ``N x K x resamples`` (about 2 s for 100k samples x 10
classes x 1,000 resamples on 2 CPU cores; ``benchmarks/ranking_metrics.py``).

Random streams (``seed``): ROC AUC, AP, ECE and log loss share the resamples of
``bootstrap_count_columns(seed=seed + 10)`` (the draws visionbench has used for AUC, AP and ECE
since their intervals were added; the log loss used its own NumPy draws before, ``seed + 1``);
``top5_accuracy`` resamples its 0/1 hits exactly through their multinomial (``seed + 2``), as before.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from visionbench.metrics.classification import UndefinedMetricWarning, _nanaverage, log_loss_terms
from visionbench.metrics.ranking import (
    RankedClass,
    Scratch,
    Segments,
    pr_from_counts,
    rank_class,
    resampled_auc_ap,
    roc_from_counts,
)
from visionbench.metrics.scores import (
    ProbabilitySumWarning,
    _ece,
    _top_k_hits,
    calibration_bins,
    validate_scores,
)
from visionbench.metrics.stats import bootstrap_count_columns, bootstrap_means, percentile_interval

# Points kept per curve in metrics.json: enough for a smooth plot, small enough for the file.
CURVE_POINTS = 200
ECE_BINS = 15
_SAMPLE_BLOCK = 1 << 15  # samples per float64 block of the dense resample sums (8 MiB at 32 resamples)


def thin_curves(values: list[torch.Tensor]) -> list[list[float]]:
    """Keep at most :data:`CURVE_POINTS` evenly spaced points (first and last kept) of each curve
    (the curves of ``values`` share their length)."""
    n = values[0].numel()
    keep = torch.unique(torch.linspace(0, n - 1, min(n, CURVE_POINTS)).round().long())
    return [v[keep].tolist() for v in values]


def score_metrics(
    probs: torch.Tensor, labels: torch.Tensor, classes: list[str], *, resamples: int = 1000, seed: int = 0
) -> tuple[dict[str, float], dict[str, tuple[float, float]], dict[str, Any]]:
    """Probability metrics, their 95% intervals, and the curves and calibration bins for the report.

    Args:
        probs: ``float [N, K]`` probabilities (rows summing to 1). labels: ``int [N]``, N >= 1.
        classes: the K class names (keys of the curves).
        resamples: bootstrap resamples (0: no intervals, every ``ci95`` is NaN).
        seed: seed of the resamples (see the module docstring for the streams).

    Returns:
        ``(values, intervals, extras)``: ``values`` and ``intervals`` by metric name;
        ``extras`` holds ``roc_curve`` and ``pr_curve`` (per class present with at least one
        other, at most :data:`CURVE_POINTS` points each) and ``reliability``.
    """
    probs, labels = validate_scores(probs, labels, num_classes=len(classes))
    with warnings.catch_warnings():
        # Classes absent from the test split make AUC/AP undefined for them; they are left out of
        # the macro average and shown as NaN per class in the curves section. Rows are validated
        # to sum to 1 within 1e-4; scikit-learn's stricter sqrt(eps) warning would fire on every
        # file of rounded probabilities.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", ProbabilitySumWarning)
        auc, ap, extras, segments = _rank_classes(probs, labels, classes)
        terms = log_loss_terms(probs, labels, renormalize=False)
        values = {
            "log_loss": float(terms.mean()),
            "roc_auc_macro": float(_macro_auc(auc)),
            "average_precision_macro": float(_nanaverage(ap, None)),
            "ece": float(_ece(probs, labels, ECE_BINS)),
        }
        hits = _top_k_hits(probs, labels, 5).double() if len(classes) > 5 else None
        if hits is not None:
            values["top5_accuracy"] = float(hits.mean())
        bins = calibration_bins(probs, labels, n_bins=ECE_BINS)
        if resamples > 0:
            intervals = _intervals(probs, labels, segments, terms, bins["bin_edges"], resamples=resamples, seed=seed)
            if hits is not None:
                intervals["top5_accuracy"] = percentile_interval(bootstrap_means(hits, resamples=resamples, seed=seed + 2))
        else:
            intervals = {name: (float("nan"), float("nan")) for name in values}
        extras["reliability"] = {key: value.tolist() for key, value in bins.items()} | {"ece": values["ece"]}
    return values, intervals, extras


def _rank_classes(
    probs: torch.Tensor, labels: torch.Tensor, classes: list[str]
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any], list[Segments]]:
    """Each class sorted once: its ROC AUC and AP (``[K]`` each), its curves, and the segments of
    its bootstrap. A class at a time, so the counts at every threshold of one class are held at once."""
    auc, ap, segments = [], [], []
    extras: dict[str, Any] = {"roc_curve": {}, "pr_curve": {}}
    for c, name in enumerate(classes):
        ranked = rank_class(probs[:, c], labels == c)
        auc.append(ranked.auc)
        ap.append(ranked.ap)
        segments.append(ranked.segments)
        _add_curves(extras, ranked, name)
    return torch.stack(auc), torch.stack(ap), extras, segments


def _macro_auc(per_class: torch.Tensor) -> torch.Tensor:
    """ROC AUC over classes ``[..., K]`` as :func:`~visionbench.metrics.scores.roc_auc` averages:
    the mean of the defined classes, or, for K = 2, class 1's (scikit-learn's binary AUC)."""
    return per_class[..., 1] if per_class.shape[-1] == 2 else _nanaverage(per_class, None)


def _intervals(
    probs: torch.Tensor, labels: torch.Tensor, segments: list[Segments], terms: torch.Tensor, edges: torch.Tensor,
    *, resamples: int, seed: int,
) -> dict[str, tuple[float, float]]:
    """Intervals of ROC AUC, AP, ECE and log loss from shared resamples, a block at a time."""
    n = labels.numel()
    bin_index, gap = _calibration_terms(probs, labels, edges)
    auc, ap, sums = [], [], []
    scratch = Scratch()
    for counts in bootstrap_count_columns(n, resamples=resamples, seed=seed + 10, prefetch=True):  # (N, R_block)
        per_class = [resampled_auc_ap(s, counts, n, scratch) for s in segments]
        auc.append(torch.stack([a for a, _ in per_class], dim=1))
        ap.append(torch.stack([p for _, p in per_class], dim=1))
        sums.append(_weighted_sums(counts, bin_index, gap, terms, edges.numel() - 1))
    weighted = torch.cat(sums)  # (R, B + 1)
    return {
        "roc_auc_macro": percentile_interval(_macro_auc(torch.cat(auc))),
        "average_precision_macro": percentile_interval(_nanaverage(torch.cat(ap), None)),
        "ece": percentile_interval(weighted[:, :-1].abs().sum(dim=1) / n),
        "log_loss": percentile_interval(weighted[:, -1] / n),
    }


def _calibration_terms(probs: torch.Tensor, labels: torch.Tensor, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's calibration bin (``int64 [N]``, right-inclusive as :func:`calibration_bins`)
    and its ``correct - confidence`` (``float64 [N]``): a resample's count-weighted sum of the
    latter over a bin is that bin's accuracy-confidence gap times N."""
    confidence = probs.double().max(dim=1).values
    correct = (probs.argmax(dim=1) == labels).double()
    index = (torch.bucketize(confidence, edges) - 1).clamp(0, edges.numel() - 2)
    return index, correct - confidence


def _weighted_sums(
    counts: torch.Tensor, bin_index: torch.Tensor, gap: torch.Tensor, terms: torch.Tensor, bins: int
) -> torch.Tensor:
    """``float64 [R, B + 1]``: per resample (column of ``counts``, ``float32 [N, R]``), the
    count-weighted sum of ``gap`` in each calibration bin and of the log-loss ``terms``: one
    float64 matrix product per block of samples (values and converted counts built per block)."""
    out = torch.zeros(counts.shape[1], bins + 1, dtype=torch.float64)
    for start in range(0, counts.shape[0], _SAMPLE_BLOCK):
        stop = min(start + _SAMPLE_BLOCK, counts.shape[0])
        values = torch.zeros(stop - start, bins + 1, dtype=torch.float64)  # (B, bins + 1)
        values[torch.arange(stop - start), bin_index[start:stop]] = gap[start:stop]
        values[:, bins] = terms[start:stop]
        out.addmm_(counts[start:stop].double().t(), values)
    return out


def _add_curves(extras: dict[str, Any], ranked: RankedClass, name: str) -> None:
    """Add the class's ROC and PR curves (thinned) to ``extras``, unless it lacks positives or negatives."""
    if ranked.tps[-1] == 0 or ranked.fps[-1] == 0:
        return  # undefined curve: the class is absent (or alone)
    fpr, tpr, _ = roc_from_counts(ranked.tps, ranked.fps, ranked.thresholds)
    precision, recall, _ = pr_from_counts(ranked.tps, ranked.fps, ranked.thresholds)
    fpr_l, tpr_l = thin_curves([fpr, tpr])
    precision_l, recall_l = thin_curves([precision, recall])
    extras["roc_curve"][name] = {"fpr": fpr_l, "tpr": tpr_l, "auc": float(torch.trapezoid(tpr, fpr))}
    extras["pr_curve"][name] = {"recall": recall_l, "precision": precision_l, "ap": float(ranked.ap)}
