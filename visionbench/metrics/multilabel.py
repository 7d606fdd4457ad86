"""Multi-label classification metrics: K independent yes/no labels per sample, equal to scikit-learn's.

Inputs are scores ``float [N, L]`` (probabilities, or any real scores) and multi-hot targets
``bool``/``{0, 1}`` ``[N, L]``. Label l of sample n is predicted present iff
``scores[n, l] >= threshold`` (0.5 by default, as :func:`~visionbench.metrics.multilabel_confusion`).

Every metric is a function of per-sample counts, so one body computes the point value
(``sample_weight=None``) and the bootstrap values (``sample_weight [R, N]``: how often each sample
was drawn in each resample) with a few matrix products and no loop over resamples:

- per label: precision, recall, F1, support and average precision (AP);
- ``precision_micro``/``recall_micro``/``f1_micro`` (counts pooled over labels),
  ``precision_macro``/``recall_macro``/``f1_macro`` (unweighted label mean), ``f1_samples`` (mean of
  each sample's F1 over its labels), as ``precision_recall_fscore_support(average=...)``;
- ``subset_accuracy``: exact-match ratio, as ``accuracy_score`` on multi-hot rows;
- ``hamming_loss``: share of wrong (sample, label) cells, as ``hamming_loss``;
- ``mAP``: mean over labels of the step-wise AP, as ``average_precision_score(average="macro")``.

Undefined values: a 0/0 precision, recall or F1 follows ``zero_division`` exactly as scikit-learn
(``"warn"``: 0 with an :class:`~visionbench.metrics.UndefinedMetricWarning`). A label with no positive
sample has AP NaN and is left out of ``mAP`` with a warning naming it, as the multiclass
:func:`~visionbench.metrics.average_precision` does (scikit-learn would count it as 0).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from visionbench.metrics.classification import UndefinedMetricWarning, ZeroDivision, _divide, _nanaverage
from visionbench.metrics.scores import _ap_from_counts, _cumulative_counts, _validate_binary, _validate_weight
from visionbench.metrics.stats import bootstrap_count_blocks, percentile_interval

# Scalar metrics of a multi-label split, and their direction (for reports and --monitor).
MULTILABEL_HIGHER_IS_BETTER: dict[str, bool] = {
    "mAP": True, "f1_micro": True, "f1_macro": True, "f1_samples": True, "precision_micro": True,
    "recall_micro": True, "precision_macro": True, "recall_macro": True, "subset_accuracy": True,
    "hamming_loss": False,
}
PER_LABEL = ("precision", "recall", "f1", "support", "ap")


def _weights(sample_weight: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
    """``[N]`` ones, or the validated ``[N]``/``[R, N]`` weights, float64."""
    weight = _validate_weight(sample_weight, n, device)
    return torch.ones(n, dtype=torch.float64, device=device) if weight is None else weight


def label_counts(
    scores: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5, sample_weight: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Weighted per-label ``tp``, ``fp``, ``fn`` and ``tn``: float64 ``[..., L]``.

    Args:
        scores: ``float [N, L]``. target: ``bool`` or ``{0, 1}`` ``[N, L]``.
        threshold: decision threshold (``score >= threshold`` is predicted present).
        sample_weight: ``None``, ``[N]`` or ``[R, N]`` (bootstrap counts; gives ``[R, L]``).

    Example:
        >>> c = label_counts(torch.tensor([[0.9, 0.1]]), torch.tensor([[1, 1]]))
        >>> c["tp"].tolist(), c["fn"].tolist()
        ([1.0, 0.0], [0.0, 1.0])
    """
    scores, target = _validate_binary(scores, target, ndim=2)
    weight = _weights(sample_weight, scores.shape[0], scores.device)
    predicted = scores >= threshold
    cells = {"tp": predicted & target, "fp": predicted & ~target, "fn": ~predicted & target, "tn": ~predicted & ~target}
    return {name: weight @ cell.double() for name, cell in cells.items()}


def _sample_f1(predicted: torch.Tensor, target: torch.Tensor, zero_division: ZeroDivision) -> torch.Tensor:
    """Each sample's F1 over its labels, ``float64 [N]`` (scikit-learn's ``average="samples"`` terms)."""
    tp = (predicted & target).sum(1)
    wrong = (predicted ^ target).sum(1)
    return _divide(2 * tp, 2 * tp + wrong, zero_division, "F-score")


def per_label_average_precision(
    scores: torch.Tensor, target: torch.Tensor, *, sample_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Step-wise average precision of each label, ``float64 [..., L]``; NaN for a label without positives.

    Equal to scikit-learn's ``average_precision_score(target, scores, average=None)`` on labels
    that have a positive sample (ties between scores form one threshold).
    """
    scores, target = _validate_binary(scores, target, ndim=2)
    weight = _validate_weight(sample_weight, scores.shape[0], scores.device)
    per_label = [_ap_from_counts(*_cumulative_counts(scores[:, l], target[:, l], weight)[:2])
                 for l in range(scores.shape[1])]  # noqa: E741 - l is the label index, as in the docs
    return torch.stack(per_label, dim=-1)


def _mean_ap(ap: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Mean over labels ignoring NaN (labels without positives), and those labels."""
    undefined = torch.isnan(ap).reshape(-1, ap.shape[-1]).any(dim=0)
    return _nanaverage(ap, None), torch.nonzero(undefined).flatten().tolist()


def multilabel_metric_tensors(
    scores: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5, zero_division: ZeroDivision = "warn",
    sample_weight: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every multi-label metric (see the module docstring) as float64 tensors.

    Args:
        scores: ``float [N, L]`` probabilities or scores. target: ``bool`` or ``{0, 1}`` ``[N, L]``.
        threshold: decision threshold.
        zero_division: value of a 0/0 precision/recall/F1 (``"warn"``: 0 with a warning), as
            scikit-learn's.
        sample_weight: ``None``, ``[N]``, or ``[R, N]`` counts of R bootstrap resamples.

    Returns:
        The scalar metrics (:data:`MULTILABEL_HIGHER_IS_BETTER`), ``[]`` (``[R]`` with ``[R, N]``
        weights), and ``"precision"``, ``"recall"``, ``"f1"``, ``"support"``, ``"ap"`` per label,
        ``[L]`` (``[R, L]``).

    Example:
        >>> m = multilabel_metric_tensors(torch.tensor([[0.9, 0.2], [0.3, 0.8]]), torch.tensor([[1, 0], [1, 1]]))
        >>> float(m["subset_accuracy"]), float(m["hamming_loss"])
        (0.5, 0.25)
    """
    scores, target = _validate_binary(scores, target, ndim=2)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or threshold != threshold:
        raise ValueError(f"threshold must be a number; got {threshold!r}. Pass e.g. 0.5.")
    weight = _weights(sample_weight, scores.shape[0], scores.device)
    total = weight.sum(-1).clamp_min(1e-300)
    c = label_counts(scores, target, threshold=threshold, sample_weight=weight)
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    out = {
        "precision": _divide(tp, tp + fp, zero_division, "Precision"),
        "recall": _divide(tp, tp + fn, zero_division, "Recall"),
        "f1": _divide(2 * tp, 2 * tp + fp + fn, zero_division, "F-score"),
        "support": tp + fn,
    }
    pooled = {name: value.sum(-1) for name, value in c.items()}
    out["precision_micro"] = _divide(pooled["tp"], pooled["tp"] + pooled["fp"], zero_division, "Precision")
    out["recall_micro"] = _divide(pooled["tp"], pooled["tp"] + pooled["fn"], zero_division, "Recall")
    out["f1_micro"] = _divide(2 * pooled["tp"], 2 * pooled["tp"] + pooled["fp"] + pooled["fn"], zero_division, "F-score")
    for name in ("precision", "recall", "f1"):
        out[f"{name}_macro"] = _nanaverage(out[name], None)
    predicted = scores >= threshold
    out["f1_samples"] = _nanaverage_weighted(_sample_f1(predicted, target, zero_division), weight)
    out["subset_accuracy"] = weight @ (predicted == target).all(1).double() / total
    out["hamming_loss"] = weight @ (predicted != target).double().mean(1) / total
    out["ap"] = per_label_average_precision(scores, target, sample_weight=sample_weight)
    out["mAP"], undefined = _mean_ap(out["ap"])
    if undefined:
        where = " in at least one resample" if out["ap"].ndim > 1 else ""
        warnings.warn(f"average precision is undefined for labels {undefined} (no positive sample{where}); their AP "
                      "is NaN and they are left out of mAP.", UndefinedMetricWarning, stacklevel=2)
    return out


def _nanaverage_weighted(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``weight @ values / weight.sum`` over samples, NaN values (``zero_division="nan"``) left out."""
    valid = ~torch.isnan(values)
    kept = weight * valid.double()
    return torch.where(kept.sum(-1) > 0, kept @ torch.nan_to_num(values) / kept.sum(-1).clamp_min(1e-300),
                       torch.full_like(kept.sum(-1), float("nan")))


def multilabel_intervals(
    scores: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5, resamples: int = 1000, seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """95% percentile bootstrap intervals of the scalar metrics (samples resampled with replacement).

    Resamples are drawn as per-sample counts (:func:`~visionbench.metrics.stats.bootstrap_count_blocks`)
    and evaluated a block at a time; 0/0 values count as 0 and labels without positives in a
    resample are left out of its mAP, silently (the point values already warned).
    """
    found: dict[str, list[torch.Tensor]] = {name: [] for name in MULTILABEL_HIGHER_IS_BETTER}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for counts in bootstrap_count_blocks(scores.shape[0], resamples=resamples, seed=seed):
            values = multilabel_metric_tensors(scores, target, threshold=threshold, zero_division=0,
                                               sample_weight=counts)
            for name in found:
                found[name].append(values[name])
    return {name: percentile_interval(torch.cat(parts)) for name, parts in found.items()}


def multilabel_report(
    scores: torch.Tensor, target: torch.Tensor, labels: list[str], *, threshold: float = 0.5, resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """``metrics.json`` content of a multi-label test split.

    Args:
        scores: ``float [N, L]`` probabilities. target: ``{0, 1}`` ``[N, L]``. labels: the L names.
        threshold, resamples, seed: decision threshold; bootstrap resamples (0: no intervals) and seed.

    Returns:
        ``{"task": "classify", "multilabel": True, "threshold", "num_samples", <metric>: {"value",
        "ci95", "higher_is_better"}, "classes", "per_class": {"precision", "recall", "f1",
        "support", "ap"}}`` (per-label 0/0 values are 0, AP of a label without positives ``None``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # per-label table: 0/0 shown as 0, AP as None
        values = multilabel_metric_tensors(scores, target, threshold=threshold, zero_division=0)
    if resamples > 0:
        intervals = multilabel_intervals(scores, target, threshold=threshold, resamples=resamples, seed=seed)
    else:  # --resamples 0: no intervals
        intervals = {name: (float("nan"), float("nan")) for name in MULTILABEL_HIGHER_IS_BETTER}
    report: dict[str, Any] = {"task": "classify", "multilabel": True, "threshold": threshold,
                              "num_samples": int(scores.shape[0])}
    for name, higher in MULTILABEL_HIGHER_IS_BETTER.items():
        report[name] = {"value": float(values[name]), "ci95": list(intervals[name]), "higher_is_better": higher}
    report["classes"] = list(labels)
    report["per_class"] = {  # per label; named as the other tasks' tables, which the report reads
        name: [None if v != v else (int(v) if name == "support" else float(v)) for v in values[name].tolist()]
        for name in PER_LABEL
    }
    return report


__all__ = [
    "MULTILABEL_HIGHER_IS_BETTER", "label_counts", "multilabel_intervals", "multilabel_metric_tensors",
    "multilabel_report", "per_label_average_precision",
]
