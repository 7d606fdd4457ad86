"""Classification metrics on probabilities and scores, equal to scikit-learn's.

Functional core, float64 internally, in small steps: validate (:func:`validate_scores`), count
(one stable descending sort per binary problem, then cumulative sums of sample weights at each
distinct score; :mod:`visionbench.metrics.ranking`), reduce (trapezoid / step-wise sums, class averages). Public functions:

- multiclass probabilities ``[N, K]``: :func:`top_k_accuracy`, :func:`log_loss`, :func:`roc_auc`,
  :func:`average_precision`, :func:`calibration_bins`, :func:`expected_calibration_error`;
- one binary problem: :func:`roc_curve`, :func:`precision_recall_curve`, :func:`binary_stats`;
- multilabel scores ``[N, L]``: :func:`multilabel_confusion`;
- streaming: :class:`ScoreAccumulator`.

Conventions (each stated again where it applies):

- **Ties.** ROC AUC and AP treat equal scores as one threshold (scikit-learn's
  ``_binary_clf_curve``): ROC AUC is the trapezoid area, i.e. a tied positive/negative pair counts
  one half (Mann-Whitney mid-rank); AP is step-wise (not interpolated) over distinct thresholds.
  Top-k accuracy breaks ties as scikit-learn's ``argsort(kind="mergesort")[:, ::-1]``: among equal
  scores the *higher* class index ranks first. Calibration uses ``argmax`` (first maximal index).
- **Undefined values.** A class whose one-vs-rest problem has no positive (absent from the target)
  or no negative sample (the only class present) has ROC AUC NaN; a class with no positive has
  AP NaN. NaN classes are left out of the macro and weighted averages, with an
  :class:`~visionbench.metrics.UndefinedMetricWarning` naming them. (scikit-learn's ``roc_auc_score``
  returns NaN for the whole average there, and ``average_precision_score`` counts such a class
  as 0.) ``roc_curve`` gives NaN rates and ``precision_recall_curve`` recall 1, as scikit-learn.
- **Resampling.** ``roc_auc`` and ``average_precision`` take ``sample_weight`` ``[N]`` or
  ``[R, N]`` (e.g. bootstrap counts); ``[R, N]`` gives ``[R]`` values from one sort per class and
  cumulative sums along N, without a loop over R.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Literal

import torch

from visionbench.metrics.classification import (
    UndefinedMetricWarning,
    ZeroDivision,
    _divide,
    _nanaverage,
    log_loss_terms,
)
from visionbench.metrics.ranking import ap_from_counts as _ap_from_counts
from visionbench.metrics.ranking import auc_from_counts as _auc_from_counts
from visionbench.metrics.ranking import cumulative_counts as _cumulative_counts
from visionbench.metrics.ranking import pr_from_counts, roc_from_counts

ScoreAverage = Literal["macro", "weighted", "micro", "none"]
_AVERAGES = ("macro", "weighted", "micro", "none")


class ProbabilitySumWarning(UserWarning):
    """Probability rows do not sum to one within ``sqrt(eps)`` of their dtype (scikit-learn's
    ``log_loss`` check); the log loss uses them as given, without renormalising."""


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _is_integer(t: torch.Tensor) -> bool:
    return not t.dtype.is_floating_point and not t.dtype.is_complex and t.dtype != torch.bool


def _require_tensor(value: object, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor; got {type(value).__name__}. Use torch.as_tensor(...).")
    return value


def _check_finite_rows(values: torch.Tensor, what: str) -> None:
    """Raise naming how many rows (elements for 1-D) hold NaN/inf and the first of them."""
    bad = ~torch.isfinite(values)
    if values.ndim > 1:
        bad = bad.flatten(1).any(dim=1)
    if bad.any():
        rows = torch.nonzero(bad).flatten()
        raise ValueError(
            f"{what} must be finite; got NaN or inf in {rows.numel()} row(s), the first at row {int(rows[0])}. "
            "Check the model outputs (a diverged run gives NaN) and drop or fix those rows."
        )


def validate_scores(
    probs: torch.Tensor, target: torch.Tensor, *, num_classes: int | None = None, sum_tolerance: float = 1e-4,
    allow_empty: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check class probabilities and targets; return them ready for the metrics.

    Args:
        probs: ``float [N, K]`` class probabilities, each row in ``[0, 1]`` summing to 1.
        target: ``int [N]`` true class in ``[0, K)``.
        num_classes: expected K (``None``: taken from ``probs``).
        sum_tolerance: largest accepted ``|row sum - 1|``.
        allow_empty: accept ``N = 0`` (streaming updates); metrics need ``N >= 1``.

    Returns:
        ``(probs, target)``: ``probs`` unchanged (its dtype decides the log-loss clipping),
        ``target`` as int64.

    Raises:
        TypeError: not tensors, ``probs`` not floating point, ``target`` not integer.
        ValueError: wrong shapes, K < 2, mismatched N, NaN/inf, values outside [0, 1], rows not
            summing to 1, labels outside ``[0, K)``.

    Example:
        >>> p, t = validate_scores(torch.tensor([[0.2, 0.8]]), torch.tensor([1]))
    """
    probs, target = _require_tensor(probs, "probs"), _require_tensor(target, "target")
    if not probs.dtype.is_floating_point:
        raise TypeError(f"probs must be floating point; got dtype {probs.dtype}. Pass probabilities, e.g. "
                        "torch.softmax(logits.float(), dim=1).")
    if not _is_integer(target):
        raise TypeError(
            f"target must be an integer tensor of class indices; got dtype {target.dtype}. Use target.long()."
        )
    if probs.ndim != 2:
        raise ValueError(f"probs must be 2-D [N, K]; got shape {tuple(probs.shape)}. For one binary score per sample "
                         "use the binary functions (roc_curve, binary_stats) or stack [1 - p, p].")
    if target.ndim != 1:
        raise ValueError(f"target must be 1-D [N]; got shape {tuple(target.shape)}. Use target.reshape(-1).")
    n, k = probs.shape
    if k < 2:
        raise ValueError(f"probs must have at least 2 columns (classes); got shape {tuple(probs.shape)}. "
                         "For a binary problem pass [N, 2] probabilities or scores [N] to the binary functions.")
    if num_classes is not None and k != num_classes:
        raise ValueError(f"probs must have num_classes={num_classes} columns; got {k}. Check the model's output "
                         "layer or num_classes.")
    if target.shape[0] != n:
        raise ValueError(f"probs and target must have the same number of rows; got {n} and {target.shape[0]}.")
    if n == 0 and not allow_empty:
        raise ValueError("probs must have at least one row; got 0. The metric is undefined without samples.")
    if n == 0:
        return probs, target.long()
    _check_finite_rows(probs, "probs")
    outside = (probs < 0) | (probs > 1)
    if outside.any():
        row, col = (int(i) for i in torch.nonzero(outside)[0])
        raise ValueError(f"probs must be in [0, 1]; got {float(probs[row, col])!r} at row {row}, column {col}. "
                         "Apply torch.softmax(logits, dim=1) to logits first.")
    sums = probs.double().sum(dim=1)
    off = (sums - 1).abs() > sum_tolerance
    if off.any():
        rows = torch.nonzero(off).flatten()
        row = int(rows[0])
        raise ValueError(
            f"probs rows must sum to 1 (within {sum_tolerance:g}); got {rows.numel()} row(s) that do not, the first "
            f"row {row} summing to {float(sums[row])!r}. Apply torch.softmax(logits, dim=1) to logits first."
        )
    target = target.long()
    out_of_range = (target < 0) | (target >= k)
    if out_of_range.any():
        row = int(torch.nonzero(out_of_range)[0])
        raise ValueError(
            f"target must be in [0, {k}); got {int(target[row])} at row {row}. Check num_classes or the labels."
        )
    return probs, target


def _validate_binary(scores: torch.Tensor, target: torch.Tensor, *, ndim: int, what: str = "scores") -> tuple:
    """Scores ``[N]`` (or ``[N, L]``) float, finite; target of the same shape in {0, 1} → bool."""
    scores, target = _require_tensor(scores, what), _require_tensor(target, "target")
    shape = "[N]" if ndim == 1 else "[N, L]"
    if not scores.dtype.is_floating_point:
        raise TypeError(f"{what} must be floating point; got dtype {scores.dtype}. Use {what}.float().")
    if scores.ndim != ndim:
        raise ValueError(f"{what} must be {ndim}-D {shape}; got shape {tuple(scores.shape)}.")
    if target.shape != scores.shape:
        raise ValueError(
            f"{what} and target must have the same shape; got {tuple(scores.shape)} and {tuple(target.shape)}."
        )
    if scores.shape[0] == 0:
        raise ValueError(f"{what} must have at least one row; got 0. The metric is undefined without samples.")
    if target.dtype.is_floating_point or target.dtype.is_complex:
        raise TypeError(f"target must be bool or integer 0/1; got dtype {target.dtype}. Use target.long().")
    _check_finite_rows(scores, what)
    if target.dtype != torch.bool:
        bad = (target != 0) & (target != 1)
        if bad.any():
            index = tuple(int(i) for i in torch.nonzero(bad)[0])
            where = index[0] if ndim == 1 else index
            raise ValueError(f"target must be 0 or 1; got {int(target[index])} at {where}. "
                             "For class indices use the multiclass functions with probs [N, K].")
    return scores, target.bool()


def _validate_weight(sample_weight: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor | None:
    """``None``, ``[N]`` or ``[R, N]`` finite non-negative weights → float64."""
    if sample_weight is None:
        return None
    weight = _require_tensor(sample_weight, "sample_weight")
    if weight.ndim not in (1, 2) or weight.shape[-1] != n:
        raise ValueError(f"sample_weight must have shape [N] or [R, N] with N={n}; got {tuple(weight.shape)}. "
                         "Pass one weight per sample, or one row of counts per resample.")
    weight = weight.to(device=device, dtype=torch.float64)
    _check_finite_rows(weight, "sample_weight")
    if (weight < 0).any():
        raise ValueError(f"sample_weight must be >= 0; got {float(weight.min())!r}. Weights are counts or frequencies.")
    return weight


def _emit(messages: list[tuple[str, type[Warning]]]) -> None:
    """Issue warnings collected by a private implementation at the caller of the public function."""
    for message, category in messages:
        warnings.warn(message, category, stacklevel=3)


# --------------------------------------------------------------------------------------------
# Top-k accuracy and log loss
# --------------------------------------------------------------------------------------------


def _top_k_hits(probs: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """``bool [N]``: the true class is among the k first of scikit-learn's ranking (descending
    score, equal scores ordered by descending class index)."""
    true_score = probs.gather(1, target.unsqueeze(1))  # (N, 1)
    classes = torch.arange(probs.shape[1], device=probs.device)  # (K,)
    ahead = (probs > true_score) | ((probs == true_score) & (classes > target.unsqueeze(1)))  # (N, K)
    return ahead.sum(dim=1) < k


def top_k_accuracy(probs: torch.Tensor, target: torch.Tensor, *, k: int = 5) -> torch.Tensor:
    """Fraction of samples whose true class is among the k highest scores.

    Equal to scikit-learn's ``top_k_accuracy_score(target, probs, k=k, labels=range(K))`` for
    K >= 3, tie-breaking included: scikit-learn ranks by ``argsort(kind="mergesort")[:, ::-1]``,
    so among equal scores the **higher class index** comes first (a true class 1 tied with
    class 2 at the k-th place is a miss). For K = 2 the same rule is used (scikit-learn instead
    takes 1-D scores and thresholds ``p > 0.5``; the two differ only at exact ties).

    Args:
        probs: ``float [N, K]`` probabilities (see :func:`validate_scores`).
        target: ``int [N]``.
        k: number of top classes, ``>= 1``; ``k >= K`` gives 1.0 with an
            :class:`UndefinedMetricWarning` (scikit-learn warns the same way).

    Returns:
        float64 scalar.

    Example:
        >>> top_k_accuracy(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]), torch.tensor([1, 0]), k=2)
        tensor(0.5000, dtype=torch.float64)
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1; got {k!r}. Use k=1 for plain accuracy.")
    probs, target = validate_scores(probs, target)
    if k >= probs.shape[1]:
        warnings.warn(f"top-k accuracy with k={k} >= the number of classes ({probs.shape[1]}) is always 1.0 and "
                      "therefore meaningless.", UndefinedMetricWarning, stacklevel=2)
    return _top_k_hits(probs, target, k).double().mean()


def _log_loss(probs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, list]:
    sums = probs.sum(dim=1)  # in the probabilities' dtype, as scikit-learn checks
    tolerance = math.sqrt(torch.finfo(probs.dtype).eps)
    messages = []
    if not torch.isclose(sums, torch.ones_like(sums), rtol=tolerance, atol=1e-8).all():
        messages.append((f"probability rows do not sum to one within {tolerance:.3g}; the log loss uses them as "
                         "given (no renormalisation). Make sure to pass probabilities.", ProbabilitySumWarning))
    return log_loss_terms(probs, target, renormalize=False).mean(), messages


def log_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the true class: scikit-learn's ``log_loss(labels=range(K))``.

    As scikit-learn >= 1.5: probabilities are clipped to ``[eps, 1 - eps]`` with ``eps`` the
    machine epsilon of ``probs``' dtype (float32: 1.19e-7, float64: 2.22e-16) and are *not*
    renormalised; rows that do not sum to 1 within ``sqrt(eps)`` give a
    :class:`ProbabilitySumWarning`. The log and mean are taken in float64 (scikit-learn computes
    them in the input dtype, so for float32 it agrees to float32 rounding; it agrees to 1e-12
    with scikit-learn run on the clipped values in float64).

    Args:
        probs: ``float [N, K]`` probabilities. target: ``int [N]``.

    Returns:
        float64 scalar, ``>= 0``.
    """
    probs, target = validate_scores(probs, target)
    value, messages = _log_loss(probs, target)
    _emit(messages)
    return value


# --------------------------------------------------------------------------------------------
# Ranking: cumulative counts at distinct thresholds (counted and reduced in metrics/ranking.py)
# --------------------------------------------------------------------------------------------


_BinaryFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _ranking(
    probs: torch.Tensor, target: torch.Tensor, *, average: str, sample_weight: torch.Tensor | None,
    from_counts: _BinaryFn, name: str, binary_pair: bool,
) -> tuple[torch.Tensor, list]:
    """Shared body of :func:`roc_auc` and :func:`average_precision`: validate, count, average."""
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}; got {average!r}.")
    if isinstance(probs, torch.Tensor) and probs.ndim == 1:
        scores, positive = _validate_binary(probs, target, ndim=1)
        weight = _validate_weight(sample_weight, scores.shape[0], scores.device)
        value = from_counts(*_cumulative_counts(scores, positive, weight)[:2])
        return value, _undefined_binary(value, name)
    probs, target = validate_scores(probs, target)
    n, k = probs.shape
    weight = _validate_weight(sample_weight, n, probs.device)
    if binary_pair and k == 2 and average != "none":
        # Binary, as scikit-learn's roc_auc_score(target, probs[:, 1]): class 1 is the positive one.
        value = from_counts(*_cumulative_counts(probs[:, 1], target == 1, weight)[:2])
        return value, _undefined_binary(value, name)
    if average == "micro":
        onehot = torch.nn.functional.one_hot(target, k).bool()  # (N, K)
        w = None if weight is None else weight.repeat_interleave(k, dim=-1)  # (..., N*K), row-major ravel
        value = from_counts(*_cumulative_counts(probs.reshape(-1), onehot.reshape(-1), w)[:2])
        return value, _undefined_binary(value, name)
    per_class, support = [], []
    for c in range(k):  # one sort per class; resamples share it
        tps, fps, _ = _cumulative_counts(probs[:, c], target == c, weight)
        per_class.append(from_counts(tps, fps))
        support.append(tps[..., -1])
    values, support = torch.stack(per_class, dim=-1), torch.stack(support, dim=-1)  # (..., K)
    undefined = torch.isnan(values).reshape(-1, k).any(dim=0)
    messages = []
    if undefined.any():
        classes = torch.nonzero(undefined).flatten().tolist()
        lacking = "no positive sample" if name == "average precision" else "no positive or no negative sample"
        where = " in at least one resample" if values.ndim > 1 else ""
        messages.append((
            f"{name} is undefined for classes {classes} ({lacking}{where}); their values are NaN and they are "
            "left out of the average.", UndefinedMetricWarning,
        ))
    if average == "none":
        return values, messages
    return _nanaverage(values, support if average == "weighted" else None), messages


def _undefined_binary(value: torch.Tensor, name: str) -> list:
    if torch.isnan(value).any():
        return [(f"{name} is undefined: the target has a single class (no positive or no negative sample"
                 f"{' in at least one resample' if value.ndim else ''}); the value is NaN.", UndefinedMetricWarning)]
    return []


def roc_auc(
    probs: torch.Tensor, target: torch.Tensor, *, average: ScoreAverage = "macro",
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Area under the ROC curve, one-vs-rest, exact with ties (trapezoid = mid-rank).

    - ``probs [N, K]``, K >= 3: per class c, the binary problem ``target == c`` scored by
      ``probs[:, c]``; ``"macro"``/``"weighted"`` (by class support)/``"none"`` as scikit-learn's
      ``roc_auc_score(target, probs, multi_class="ovr", labels=range(K))``; ``"micro"`` as
      ``roc_auc_score(one_hot(target), probs, average="micro")`` (all N*K pairs pooled).
    - ``probs [N, 2]``: binary, ``roc_auc_score(target, probs[:, 1])``, for every average but
      ``"none"`` (which gives both one-vs-rest values).
    - ``probs [N]`` (any real scores) with ``target`` in {0, 1}: binary.

    A class absent from the target or the only class present has value NaN and is left out of
    the average, with an :class:`UndefinedMetricWarning` naming it (scikit-learn returns NaN for
    the average).

    Args:
        probs: ``float [N, K]`` probabilities or ``float [N]`` binary scores.
        target: ``int [N]``.
        average: ``"macro"``, ``"weighted"``, ``"micro"`` or ``"none"`` (``[..., K]``).
        sample_weight: ``[N]`` weights (as scikit-learn's), or ``[R, N]`` counts of R resamples
            (bootstrap), computed together: one sort per class, cumulative sums along N.

    Returns:
        float64 ``[]`` (``[R]`` with ``[R, N]`` weights; ``[..., K]`` for ``"none"``).

    Example:
        >>> roc_auc(torch.tensor([0.1, 0.4, 0.4, 0.8]), torch.tensor([0, 0, 1, 1]))
        tensor(0.8750, dtype=torch.float64)
    """
    value, messages = _ranking(probs, target, average=average, sample_weight=sample_weight,
                               from_counts=_auc_from_counts, name="ROC AUC", binary_pair=True)
    _emit(messages)
    return value


def average_precision(
    probs: torch.Tensor, target: torch.Tensor, *, average: ScoreAverage = "macro",
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Average precision ``sum_n (R_n - R_{n-1}) P_n`` over distinct thresholds (step-wise, not
    interpolated), as scikit-learn's ``average_precision_score(one_hot(target), probs)``.

    Same inputs, averages and resampling as :func:`roc_auc`, except that ``probs [N, 2]`` is two
    one-vs-rest problems like any K (AP is not symmetric in the classes; scikit-learn on the
    one-hot target does the same); ``probs [N]`` is one binary problem. A class absent from
    the target (no positive) has AP NaN and is left out of the average with an
    :class:`UndefinedMetricWarning` (scikit-learn counts it as 0 in ``"macro"``; ``"weighted"``
    and ``"micro"`` agree with scikit-learn in every case).

    Args:
        probs: ``float [N, K]`` probabilities or ``float [N]`` binary scores.
        target: ``int [N]``.
        average: ``"macro"``, ``"weighted"``, ``"micro"`` or ``"none"``.
        sample_weight: ``None``, ``[N]`` or ``[R, N]``.

    Returns:
        float64 ``[]`` (``[R]`` with ``[R, N]`` weights; ``[..., K]`` for ``"none"``).

    Example:
        >>> average_precision(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        tensor(0.8333, dtype=torch.float64)
    """
    value, messages = _ranking(probs, target, average=average, sample_weight=sample_weight,
                               from_counts=_ap_from_counts, name="average precision", binary_pair=False)
    _emit(messages)
    return value


# --------------------------------------------------------------------------------------------
# Curves of one binary problem
# --------------------------------------------------------------------------------------------


def _curve_counts(
    scores: torch.Tensor, positive: torch.Tensor, sample_weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    scores, positive = _validate_binary(scores, positive, ndim=1)
    weight = _validate_weight(sample_weight, scores.shape[0], scores.device)
    if weight is not None:
        if weight.ndim != 1:
            raise ValueError(f"sample_weight must have shape [N] for a curve; got {tuple(weight.shape)}.")
        keep = weight != 0  # scikit-learn drops zero-weight samples, and their thresholds
        scores, positive, weight = scores[keep], positive[keep], weight[keep]
        if scores.numel() == 0:
            raise ValueError("sample_weight must have a non-zero entry; got all zeros.")
    return _cumulative_counts(scores, positive, weight)


def roc_curve(
    scores: torch.Tensor, positive: torch.Tensor, *, drop_intermediate: bool = True,
    sample_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ROC curve of one binary problem: scikit-learn's ``roc_curve`` arrays, equal element for element.

    Default ``drop_intermediate=True`` as scikit-learn: points collinear with their neighbours
    (zero second difference of both fps and tps) are dropped; the area is unchanged.

    Args:
        scores: ``float [N]``, higher = more positive.
        positive: ``bool`` or ``{0, 1}`` ``[N]``.
        drop_intermediate: drop collinear points, as scikit-learn.
        sample_weight: optional ``[N]``; zero-weight samples are dropped first, as scikit-learn.

    Returns:
        ``(fpr, tpr, thresholds)``, float64 ``[M]``: the curve starts at (0, 0) with threshold
        ``inf``; then one point per kept distinct score (descending), positive iff
        ``score >= threshold``. Without negatives (positives) ``fpr`` (``tpr``) is all NaN, with
        an :class:`UndefinedMetricWarning`, as scikit-learn.

    Example:
        >>> fpr, tpr, thr = roc_curve(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        >>> tpr.tolist()
        [0.0, 0.5, 0.5, 1.0, 1.0]
    """
    tps, fps, thresholds = _curve_counts(scores, positive, sample_weight)
    if fps[-1] <= 0:
        warnings.warn("No negative samples in the target: the false positive rate is undefined (NaN).",
                      UndefinedMetricWarning, stacklevel=2)
    if tps[-1] <= 0:
        warnings.warn("No positive samples in the target: the true positive rate is undefined (NaN).",
                      UndefinedMetricWarning, stacklevel=2)
    return roc_from_counts(tps, fps, thresholds, drop_intermediate=drop_intermediate)


def precision_recall_curve(
    scores: torch.Tensor, positive: torch.Tensor, *, drop_intermediate: bool = False,
    sample_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision-recall curve of one binary problem: scikit-learn's ``precision_recall_curve``.

    Args:
        scores: ``float [N]``. positive: ``bool`` or ``{0, 1}`` ``[N]``.
        drop_intermediate: scikit-learn's option (default ``False``, as there): keep only the
            first and last threshold of each run of equal true positives.
        sample_weight: optional ``[N]``; zero-weight samples are dropped first, as scikit-learn.

    Returns:
        ``(precision [M+1], recall [M+1], thresholds [M])`` float64, thresholds ascending;
        the last point is (precision 1, recall 0) without a threshold. Precision at a threshold
        with no predicted positive is 0; without positives recall is 1 everywhere, with an
        :class:`UndefinedMetricWarning` (scikit-learn: the same values, a plain ``UserWarning``).

    Example:
        >>> p, r, t = precision_recall_curve(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        >>> r.tolist()
        [1.0, 1.0, 0.5, 0.5, 0.0]
    """
    tps, fps, thresholds = _curve_counts(scores, positive, sample_weight)
    if tps[-1] == 0:
        warnings.warn("No positive samples in the target: recall is set to 1 for all thresholds.",
                      UndefinedMetricWarning, stacklevel=2)
    return pr_from_counts(tps, fps, thresholds, drop_intermediate=drop_intermediate)


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def calibration_bins(probs: torch.Tensor, target: torch.Tensor, *, n_bins: int = 15) -> dict[str, torch.Tensor]:
    """Reliability-diagram statistics of the top-1 prediction in equal-width confidence bins.

    Confidence is the row maximum, the prediction its ``argmax`` (first maximal index). Bins are
    right-inclusive: bin b holds confidences in ``(b/B, (b+1)/B]`` (bin 0 also holds 0), the
    edges being ``torch.linspace(0, 1, B + 1)`` in float64 (membership by ``torch.bucketize``
    against those edges, no rounding of ``conf * B``).

    Args:
        probs: ``float [N, K]`` probabilities. target: ``int [N]``.
        n_bins: B >= 1.

    Returns:
        ``{"bin_edges": float64 [B+1], "confidence": float64 [B] (mean confidence, NaN when
        empty), "accuracy": float64 [B] (fraction correct, NaN when empty), "count": int64 [B]}``.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1; got {n_bins!r}. 15 is the usual choice.")
    probs, target = validate_scores(probs, target)
    stats = _calibration_sums(probs, target, n_bins)
    count = stats["count"]
    empty = count == 0
    safe = torch.where(empty, torch.ones_like(count), count).double()
    nan = torch.full_like(safe, float("nan"))
    return {
        "bin_edges": stats["bin_edges"],
        "confidence": torch.where(empty, nan, stats["confidence_sum"] / safe),
        "accuracy": torch.where(empty, nan, stats["correct"] / safe),
        "count": count,
    }


def _calibration_sums(probs: torch.Tensor, target: torch.Tensor, n_bins: int) -> dict[str, torch.Tensor]:
    confidence = probs.double().max(dim=1).values  # (N,)
    correct = (probs.argmax(dim=1) == target).double()  # (N,)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64, device=probs.device)
    # bucketize(right=False) gives i with edges[i-1] < x <= edges[i]: bin i - 1, right-inclusive.
    bins = (torch.bucketize(confidence, edges) - 1).clamp(0, n_bins - 1)
    return {
        "bin_edges": edges,
        "count": torch.bincount(bins, minlength=n_bins),
        "confidence_sum": torch.bincount(bins, weights=confidence, minlength=n_bins),
        "correct": torch.bincount(bins, weights=correct, minlength=n_bins),
    }


def expected_calibration_error(probs: torch.Tensor, target: torch.Tensor, *, n_bins: int = 15) -> torch.Tensor:
    """ECE ``sum_b count_b / N * |accuracy_b - confidence_b|`` over the bins of :func:`calibration_bins`
    (equal-width, right-inclusive, on the max probability; the L1 / ``norm="l1"`` form).

    Computed as ``sum_b |correct_b - confidence_sum_b| / N``, the same quantity without dividing
    by each bin's count.

    Args:
        probs: ``float [N, K]``. target: ``int [N]``. n_bins: B >= 1.

    Returns:
        float64 scalar in ``[0, 1]``.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1; got {n_bins!r}. 15 is the usual choice.")
    probs, target = validate_scores(probs, target)
    return _ece(probs, target, n_bins)


def _ece(probs: torch.Tensor, target: torch.Tensor, n_bins: int) -> torch.Tensor:
    stats = _calibration_sums(probs, target, n_bins)
    return (stats["correct"] - stats["confidence_sum"]).abs().sum() / probs.shape[0]


# --------------------------------------------------------------------------------------------
# Thresholded binary and multilabel counts
# --------------------------------------------------------------------------------------------


def binary_stats(
    scores: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5, zero_division: ZeroDivision = "warn"
) -> dict[str, torch.Tensor]:
    """Confusion counts and derived metrics of one binary problem at a threshold.

    A sample is predicted positive iff ``score >= threshold``.

    Args:
        scores: ``float [N]`` (probabilities or any real scores).
        target: ``bool`` or ``{0, 1}`` ``[N]``.
        threshold: decision threshold.
        zero_division: value of 0/0 precision/recall/F1 (``"warn"`` = 0 with an
            :class:`UndefinedMetricWarning`), as scikit-learn's ``precision_score`` etc.

    Returns:
        ``{"tp", "fp", "tn", "fn"}``: int64 scalars; ``{"precision", "recall", "f1",
        "accuracy"}``: float64 scalars, equal to scikit-learn's binary ``precision_score``,
        ``recall_score``, ``f1_score`` (``2tp / (2tp + fp + fn)``) and ``accuracy_score``.

    Example:
        >>> s = binary_stats(torch.tensor([0.2, 0.5, 0.9]), torch.tensor([0, 0, 1]))
        >>> int(s["fp"]), float(s["precision"])
        (1, 0.5)
    """
    scores, target = _validate_binary(scores, target, ndim=1)
    predicted = scores >= threshold
    tp = (predicted & target).sum()
    fp = (predicted & ~target).sum()
    fn = (~predicted & target).sum()
    tn = (~predicted & ~target).sum()
    return {
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "precision": _divide(tp, tp + fp, zero_division, "Precision"),
        "recall": _divide(tp, tp + fn, zero_division, "Recall"),
        "f1": _divide(2 * tp, 2 * tp + fp + fn, zero_division, "F-score"),
        "accuracy": (tp + tn).double() / target.numel(),
    }


def multilabel_confusion(scores: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5) -> torch.Tensor:
    """Per-label 2x2 confusion matrices, as scikit-learn's ``multilabel_confusion_matrix``.

    Label l of sample n is predicted positive iff ``scores[n, l] >= threshold``.

    Args:
        scores: ``float [N, L]``. target: ``bool`` or ``{0, 1}`` ``[N, L]``.
        threshold: decision threshold.

    Returns:
        int64 ``[L, 2, 2]``: ``[[tn, fp], [fn, tp]]`` per label (scikit-learn's layout).
    """
    scores, target = _validate_binary(scores, target, ndim=2)
    predicted = scores >= threshold  # (N, L)
    tp = (predicted & target).sum(0)
    fp = (predicted & ~target).sum(0)
    fn = (~predicted & target).sum(0)
    tn = (~predicted & ~target).sum(0)
    return torch.stack([torch.stack([tn, fp], -1), torch.stack([fn, tp], -1)], -2)


# --------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------


class ScoreAccumulator:
    """Streaming score metrics: ``update`` with batches, ``merge`` across processes, ``compute``.

    Ranking metrics (ROC AUC, AP) have no sufficient statistic smaller than the scores
    themselves (any sample can move any threshold), so the accumulator keeps every
    ``(probs, target)`` chunk on the CPU, and ``compute`` concatenates them; the result does not
    depend on how the samples were split into batches or processes. Chunks keep their dtype;
    mixing float32 and float64 chunks promotes to float64 (which changes the log-loss clip).

    Example:
        >>> acc = ScoreAccumulator(3)
        >>> acc.update(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]]), torch.tensor([0, 2, 1]))
        >>> sorted(acc.compute())
        ['average_precision_macro', 'ece', 'log_loss', 'roc_auc_macro']
    """

    def __init__(self, num_classes: int) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
        self.num_classes = num_classes
        self.probs: list[torch.Tensor] = []
        self.target: list[torch.Tensor] = []

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of probabilities ``[N, K]`` and targets ``[N]`` (validated; a bad batch adds nothing)."""
        probs, target = validate_scores(probs, target, num_classes=self.num_classes, allow_empty=True)
        if probs.shape[0]:
            # A copy: the caller may reuse its buffers for the next batch.
            self.probs.append(probs.detach().to("cpu", copy=True))
            self.target.append(target.detach().to("cpu", copy=True))

    def merge(self, other: ScoreAccumulator) -> ScoreAccumulator:
        """Append another accumulator's samples to this one (returns ``self``; ``other`` is unchanged)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge accumulators of {self.num_classes} and {other.num_classes} classes")
        self.probs.extend(other.probs)
        self.target.extend(other.target)
        return self

    def compute(self) -> dict[str, float]:
        """``top5_accuracy`` (only when K > 5), ``log_loss``, ``roc_auc_macro``,
        ``average_precision_macro`` and ``ece`` (15 bins) of everything seen so far."""
        if not self.probs:
            raise ValueError("ScoreAccumulator has no samples; call update() with at least one row before compute().")
        probs, target = torch.cat(self.probs), torch.cat(self.target)
        out: dict[str, float] = {}
        if self.num_classes > 5:
            out["top5_accuracy"] = float(_top_k_hits(probs, target, 5).double().mean())
        messages: list = []
        for name, (value, more) in (
            ("log_loss", _log_loss(probs, target)),
            ("roc_auc_macro", _ranking(probs, target, average="macro", sample_weight=None,
                                       from_counts=_auc_from_counts, name="ROC AUC", binary_pair=True)),
            ("average_precision_macro", _ranking(probs, target, average="macro", sample_weight=None,
                                                 from_counts=_ap_from_counts, name="average precision",
                                                 binary_pair=False)),
        ):
            out[name] = float(value)
            messages += more
        out["ece"] = float(_ece(probs, target, 15))
        _emit(messages)
        return out
