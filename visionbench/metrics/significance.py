"""Significance tests for comparing runs on the same test samples (pure functions, no file I/O).

- :func:`mcnemar_exact`: exact two-sided McNemar test on per-sample correctness.
- :func:`paired_bootstrap`: paired bootstrap of every confusion-matrix metric; both runs are
  resampled with the *same* sample indices, vectorised in blocks (one ``bincount`` per run per
  block, never a Python loop per resample).
- :func:`holm`: Holm–Bonferroni adjusted p-values for several comparisons.

Example:
    >>> a = torch.tensor([True, True, False, True])
    >>> b = torch.tensor([True, False, False, False])
    >>> mcnemar_exact(a, b)
    McNemarResult(b=2, c=0, p_value=0.5)
"""

from __future__ import annotations

import difflib
import math
from typing import NamedTuple

import torch

from visionbench.metrics.classification import confusion_matrix, metric_tensors_from_confusion
from visionbench.metrics.stats import bootstrap_index_blocks, percentile_interval

# Above this many discordant pairs the binomial tail is summed in floating point from lgamma
# (relative error ~1e-10) instead of exactly with integers (~0.2 s at 100k, ~10 s at 1M).
_EXACT_MAX_DISCORDANT = 100_000


class McNemarResult(NamedTuple):
    """Discordant-pair counts and the exact two-sided p-value.

    Attributes:
        b: samples run A got right and run B got wrong.
        c: samples run A got wrong and run B got right.
        p_value: exact two-sided p-value in ``[0, 1]``.
    """

    b: int
    c: int
    p_value: float


class PairedMetric(NamedTuple):
    """One metric of a paired bootstrap comparison.

    Attributes:
        value_a, value_b: the metric of each run on all samples.
        diff: ``value_b - value_a``.
        ci95: 95% percentile interval of the bootstrap differences ``(low, high)``.
        p_value: two-sided bootstrap p-value of "no difference" (see :func:`paired_bootstrap`).
    """

    value_a: float
    value_b: float
    diff: float
    ci95: tuple[float, float]
    p_value: float


def _binomial_half_lower_tail(k: int, n: int) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, 1/2)`` and ``k < n / 2``.

    Sums ``C(n, i)`` downwards from ``i = k`` in exact integer arithmetic and stops once the
    remaining ``i`` terms (each smaller than the current one) cannot change the sum by 2**-60
    relative, so the float result is within one ulp of the exact value.
    """
    if n > _EXACT_MAX_DISCORDANT:
        return _binomial_half_lower_tail_float(k, n)
    term = math.comb(n, k)
    total, i = term, k
    while i > 0 and term * i > total >> 60:
        term = term * i // (n - i + 1)  # C(n, i-1) = C(n, i) * i / (n - i + 1), exact
        i -= 1
        total += term
    return total / (1 << n)  # int / int is correctly rounded in Python


def _binomial_half_lower_tail_float(k: int, n: int) -> float:
    """:func:`_binomial_half_lower_tail` in floating point for very large ``n``."""
    log_term = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
    ratio_sum, ratio, i = 1.0, 1.0, k
    while i > 0:
        ratio *= i / (n - i + 1)
        if ratio * i < 1e-17 * ratio_sum:
            break
        ratio_sum += ratio
        i -= 1
    return math.exp(log_term) * ratio_sum


def _check_same_length(what: str, tensors: dict[str, torch.Tensor]) -> None:
    """Raise unless every tensor is one-dimensional of the same length."""
    lengths = {name: t.numel() for name, t in tensors.items()}
    for name, t in tensors.items():
        if t.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional [N]; got shape {tuple(t.shape)} in {what}. Flatten it.")
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{', '.join(lengths)} must have the same length; got {lengths} in {what}. "
                         "Give both runs' results on the same samples, in the same order.")


def mcnemar_exact(correct_a: torch.Tensor, correct_b: torch.Tensor) -> McNemarResult:
    """Exact two-sided McNemar test of two runs' correctness on the same samples.

    Only discordant pairs carry information: ``b`` (A right, B wrong) and ``c`` (A wrong,
    B right). Under "equally accurate", ``b ~ Binomial(b + c, 1/2)``, so the test is the exact
    binomial test ``p = min(1, 2 * P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``, and
    ``p = 1`` when ``b + c = 0`` (McNemar 1947; the "exact" variant of Fagerland et al. 2013).
    Because ``Binomial(n, 1/2)`` is symmetric this equals ``scipy.stats.binomtest(b, b + c,
    0.5).pvalue`` and statsmodels' ``mcnemar(exact=True)``; ours sums the tail exactly with
    integers (floating point above 100,000 discordant pairs), so values can differ from
    scipy's in the last few ulps.

    Args:
        correct_a: ``bool [N]`` whether run A got each sample right.
        correct_b: ``bool [N]`` the same for run B, same samples in the same order.

    Returns:
        :class:`McNemarResult` ``(b, c, p_value)``.

    Example:
        >>> mcnemar_exact(torch.tensor([True, True, True]), torch.tensor([False, False, True]))
        McNemarResult(b=2, c=0, p_value=0.5)
    """
    _check_same_length("mcnemar_exact", {"correct_a": correct_a, "correct_b": correct_b})
    a, b_right = correct_a.bool(), correct_b.bool()
    b = int((a & ~b_right).sum())
    c = int((~a & b_right).sum())
    n, k = b + c, min(b, c)
    if n == 0 or 2 * k == n:  # no discordant pairs, or k is the median: the tail holds >= 1/2
        return McNemarResult(b, c, 1.0)
    return McNemarResult(b, c, min(1.0, 2.0 * _binomial_half_lower_tail(k, n)))


def bootstrap_p_value(diffs: torch.Tensor) -> float:
    """Two-sided bootstrap p-value of "no difference" from resampled differences ``[R]``.

    ``p = min(1, 2 * min((#{d <= 0} + 1) / (R + 1), (#{d >= 0} + 1) / (R + 1)))``: twice the
    share of resampled differences on the far side of zero, with the usual +1 correction so
    that a finite number of resamples never gives ``p = 0`` (Davison & Hinkley 1997, eq. 4.11).
    It agrees with the percentile interval: ``p < 0.05`` roughly when the 95% interval
    excludes 0. NaN differences are left out; with none left, ``p`` is NaN.
    """
    finite = diffs[~torch.isnan(diffs)]
    r = finite.numel()
    if r == 0:
        return float("nan")
    at_most_zero = (int((finite <= 0).sum()) + 1) / (r + 1)
    at_least_zero = (int((finite >= 0).sum()) + 1) / (r + 1)
    return min(1.0, 2.0 * min(at_most_zero, at_least_zero))


def _metric_names(metrics: list[str] | tuple[str, ...] | None, num_classes: int) -> list[str]:
    """The requested metric names, checked against :func:`metric_tensors_from_confusion`."""
    known = list(metric_tensors_from_confusion(torch.zeros(1, num_classes, num_classes, dtype=torch.int64)))
    if metrics is None:
        return known
    for name in metrics:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"Did you mean {', '.join(close)}? " if close else ""
            raise ValueError(f"metric must be one of {', '.join(known)}; got {name!r} in paired_bootstrap. {hint}"
                             "Run `visionbench list metrics` for the names.")
    return list(metrics)


def _confusion_of_draws(cells: torch.Tensor, draws: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion matrices ``int64 [R, K, K]`` of the resamples ``draws [R, N]``.

    ``cells`` is ``true * K + pred`` per sample; all R matrices come from one ``bincount`` over
    ``resample * K² + cell``.
    """
    r, k2 = draws.shape[0], num_classes * num_classes
    offsets = torch.arange(r).unsqueeze(1) * k2  # (R, 1)
    flat = (cells[draws] + offsets).reshape(-1)  # (R * N,)
    return torch.bincount(flat, minlength=r * k2).reshape(r, num_classes, num_classes)


def paired_bootstrap(
    preds_a: torch.Tensor, preds_b: torch.Tensor, target: torch.Tensor, num_classes: int, *, resamples: int = 1000,
    seed: int = 0, metrics: list[str] | tuple[str, ...] | None = None,
) -> dict[str, PairedMetric]:
    """Paired bootstrap comparison of two runs' classification metrics on the same samples.

    Each resample draws N sample indices with replacement and applies the *same* indices to both
    runs, so the difference keeps the pairing (samples both runs find hard stay together).
    Resamples are processed in blocks of ``[R_block, N]`` draws (:func:`visionbench.metrics.stats.bootstrap_index_blocks`); each
    block builds every resample's confusion matrix with one ``bincount`` per run and evaluates
    the metrics on ``[R_block, K, K]`` — no Python loop per resample. (Drawing the ``K³`` joint
    table ``(true, pred_a, pred_b)`` as a multinomial would avoid the indices but not scale to
    many classes.)

    The p-value is :func:`bootstrap_p_value` of the resampled differences ``b - a``.

    Args:
        preds_a: ``int [N]`` run A's predicted classes in ``[0, num_classes)``.
        preds_b: ``int [N]`` run B's predicted classes, same samples in the same order.
        target: ``int [N]`` true classes in ``[0, num_classes)``.
        num_classes: K.
        resamples: R, number of bootstrap resamples (>= 1).
        seed: seed of the draws (same seed, same resamples).
        metrics: names from :func:`metric_tensors_from_confusion` (default: all of them).

    Returns:
        ``{name: PairedMetric(value_a, value_b, diff, ci95, p_value)}`` with ``diff = b - a``.

    Example:
        >>> target = torch.tensor([0, 1, 1, 0])
        >>> out = paired_bootstrap(target, torch.tensor([0, 1, 0, 0]), target, 2, resamples=200)
        >>> out["accuracy"].diff
        -0.25
    """
    _check_same_length("paired_bootstrap", {"preds_a": preds_a, "preds_b": preds_b, "target": target})
    if target.numel() == 0:
        raise ValueError("target must hold at least one sample; got 0 in paired_bootstrap. "
                         "Compare runs evaluated on a non-empty test set.")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1; got {resamples!r} in paired_bootstrap. Use e.g. 1000.")
    names = _metric_names(metrics, num_classes)
    k = num_classes
    # Whole-set values; confusion_matrix also checks every class is in [0, K).
    full_a = metric_tensors_from_confusion(confusion_matrix(preds_a, target, k))
    full_b = metric_tensors_from_confusion(confusion_matrix(preds_b, target, k))
    cells_a = target.long() * k + preds_a.long()  # (N,) the confusion-matrix cell of each sample
    cells_b = target.long() * k + preds_b.long()
    blocks: list[dict[str, torch.Tensor]] = []
    for draws in bootstrap_index_blocks(target.numel(), resamples=resamples, seed=seed):  # (R_block, N)
        metric_a = metric_tensors_from_confusion(_confusion_of_draws(cells_a, draws, k))
        metric_b = metric_tensors_from_confusion(_confusion_of_draws(cells_b, draws, k))
        blocks.append({name: metric_b[name] - metric_a[name] for name in names})  # (R_block,)
    result = {}
    for name in names:
        diffs = torch.cat([block[name] for block in blocks])  # (R,)
        result[name] = paired_metric(float(full_a[name]), float(full_b[name]), diffs)
    return result


def paired_metric(value_a: float, value_b: float, diffs: torch.Tensor) -> PairedMetric:
    """A :class:`PairedMetric` from both runs' values and the bootstrap differences ``b - a`` ``[R]``
    (95% percentile interval, :func:`bootstrap_p_value`)."""
    return PairedMetric(value_a, value_b, value_b - value_a, percentile_interval(diffs), bootstrap_p_value(diffs))


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given.

    Step-down (Holm 1979): sort ascending ``p_(1) <= … <= p_(m)``; the adjusted value of the
    i-th smallest is ``max_{j <= i} min(1, (m - j + 1) * p_(j))``, so adjusted values are
    monotone in the raw ones and never exceed 1. Rejecting where the adjusted p is below
    ``alpha`` controls the family-wise error rate at ``alpha``. Same as statsmodels'
    ``multipletests(method="holm")``.

    Args:
        p_values: raw p-values, each in ``[0, 1]``.

    Returns:
        Adjusted p-values, same length and order.

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    for index, p in enumerate(p_values):
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"p-value must be in [0, 1]; got {p!r} in holm:{index}. Pass raw p-values of tests.")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
