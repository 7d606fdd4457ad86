"""Tests for visionbench/metrics/ranking.py, metrics/score_report.py and the count columns of metrics/stats.py.

Oracle: scikit-learn's ``roc_auc_score`` / ``average_precision_score`` (per resample with
``sample_weight`` = the bootstrap counts, and unweighted for the point values), ``log_loss`` and
``top_k_accuracy_score``, on hypothesis-generated probabilities with many ties, absent classes and
a single class present (the generator of tests/metrics/test_scores.py). Intervals are checked
against a slow reference bootstrap: one scikit-learn call per resample on the same draws.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from tests.metrics.test_scores import assert_close, quiet, scored, sk_average
from visionbench.metrics.ranking import rank_class, resampled_auc_ap
from visionbench.metrics.score_report import score_metrics
from visionbench.metrics.stats import bootstrap_count_blocks, bootstrap_count_columns, percentile_interval

FEW = settings(max_examples=25, deadline=None)


def _columns(n: int, resamples: int, seed: int, prefetch: bool = False) -> torch.Tensor:
    """Every block of :func:`bootstrap_count_columns`, side by side: ``float32 [N, R]``."""
    return torch.cat([block.clone() for block in bootstrap_count_columns(n, resamples=resamples, seed=seed,
                                                                         prefetch=prefetch)], dim=1)


@given(n=st.integers(1, 300), resamples=st.integers(1, 700), seed=st.integers(0, 2**31 - 1), prefetch=st.booleans())
@settings(max_examples=30, deadline=None)
def test_count_columns_are_the_count_blocks_resamples(n: int, resamples: int, seed: int, prefetch: bool) -> None:
    columns = _columns(n, resamples, seed, prefetch)
    rows = torch.cat(list(bootstrap_count_blocks(n, resamples=resamples, seed=seed)))
    assert columns.shape == (n, resamples)
    assert torch.equal(columns.t().double(), rows)  # same seed, same resamples, same order
    assert (columns.sum(0) == n).all()  # each resample draws N samples


@FEW
@given(data=scored(max_n=30), resamples=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_resampled_auc_ap_equal_sklearn_with_counts_as_weights(data: tuple, resamples: int, seed: int) -> None:
    probs, target, k = data
    y, p = target.numpy(), probs.double().numpy()
    counts = _columns(target.numel(), resamples, seed)
    for c in range(k):
        ranked = rank_class(probs[:, c], target == c)
        assert_close(ranked.auc, sk_average("roc", (y == c).astype(int), np.stack([1 - p[:, c], p[:, c]], 1), 2,
                                            "none")[1], f"point AUC class {c}")
        auc, ap = resampled_auc_ap(ranked.segments, counts, target.numel())
        for r, weight in enumerate(counts.t().double().numpy()):
            positive, negative = (weight * (y == c)).sum(), (weight * (y != c)).sum()
            expected_auc = quiet(skm.roc_auc_score, y == c, p[:, c], sample_weight=weight) \
                if positive and negative else np.nan
            expected_ap = quiet(skm.average_precision_score, y == c, p[:, c], sample_weight=weight) \
                if positive else np.nan
            assert_close(auc[r], expected_auc, f"AUC class {c} resample {r}")
            assert_close(ap[r], expected_ap, f"AP class {c} resample {r}")


@FEW
@given(data=scored(max_n=30))
def test_rank_class_point_values_equal_sklearn_exactly(data: tuple) -> None:
    probs, target, k = data
    y, p = target.numpy(), probs.numpy()
    for c in range(k):
        ranked = rank_class(probs[:, c], target == c)
        if (y == c).any() and (y != c).any():
            assert float(ranked.auc) == pytest.approx(skm.roc_auc_score(y == c, p[:, c]), rel=1e-12, abs=0)
        if (y == c).any():
            assert float(ranked.ap) == pytest.approx(skm.average_precision_score(y == c, p[:, c]), rel=1e-12, abs=0)


def _reference_intervals(probs: torch.Tensor, target: torch.Tensor, resamples: int, seed: int) -> dict[str, tuple]:
    """The intervals by brute force: the same resamples (count rows of seed + 10), one scikit-learn
    (or NumPy) evaluation of each metric per resample."""
    y, p, k = target.numpy(), probs.double().numpy(), probs.shape[1]
    confidence, correct = p.max(1), (p.argmax(1) == y).astype(float)
    bins = np.clip(np.searchsorted(np.linspace(0, 1, 16), confidence, side="left") - 1, 0, 14)
    clipped = np.clip(p[np.arange(len(y)), y], np.finfo(probs.numpy().dtype).eps, 1 - np.finfo(probs.numpy().dtype).eps)
    found: dict[str, list[float]] = {"roc_auc_macro": [], "average_precision_macro": [], "ece": [], "log_loss": []}
    for counts in bootstrap_count_blocks(len(y), resamples=resamples, seed=seed + 10):
        for w in counts.numpy():
            if k == 2:
                defined = (w * (y == 1)).sum() > 0 and (w * (y == 0)).sum() > 0
                found["roc_auc_macro"].append(quiet(skm.roc_auc_score, y, p[:, 1], sample_weight=w) if defined else np.nan)
            else:
                found["roc_auc_macro"].append(sk_average("roc", y, p, k, "macro", w))
            found["average_precision_macro"].append(sk_average("ap", y, p, k, "macro", w))
            gaps = np.bincount(bins, weights=w * (correct - confidence), minlength=15)
            found["ece"].append(np.abs(gaps).sum() / len(y))
            found["log_loss"].append((w * -np.log(clipped)).sum() / len(y))
    return {name: percentile_interval(torch.tensor(values, dtype=torch.float64)) for name, values in found.items()}


@settings(max_examples=12, deadline=None)
@given(data=scored(min_n=2, max_n=25), resamples=st.integers(1, 40), seed=st.integers(0, 1000))
def test_intervals_equal_a_brute_force_bootstrap_and_values_equal_sklearn(data: tuple, resamples: int, seed: int) -> None:
    probs, target, k = data
    y, p = target.numpy(), probs.numpy()
    if not np.allclose(p.sum(1), 1, atol=1e-4):
        return  # float32 rows of tenths may not pass the sum check; validate_scores has its own tests
    values, intervals, _ = quiet(score_metrics, probs, target, [str(c) for c in range(k)], resamples=resamples, seed=seed)
    expected = _reference_intervals(probs, target, resamples, seed)
    for name, (low, high) in expected.items():
        assert_close(intervals[name], (low, high), name, rtol=1e-11)
    roc = quiet(skm.roc_auc_score, y, p[:, 1]) if k == 2 and len(set(y)) == 2 else sk_average("roc", y, p, k, "macro")
    assert_close(values["roc_auc_macro"], roc if k != 2 or len(set(y)) == 2 else np.nan, "roc_auc_macro")
    assert_close(values["average_precision_macro"], sk_average("ap", y, p, k, "macro"), "average_precision_macro")
    tolerance = 1e-12 if probs.dtype == torch.float64 else 1e-6  # scikit-learn takes the log of float32 in float32
    assert values["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=range(k)), rel=tolerance)
    if k > 5:
        assert values["top5_accuracy"] == skm.top_k_accuracy_score(y, p, k=5, labels=range(k))


def test_no_resamples_gives_undefined_intervals_and_the_same_values() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 7, (500,), generator=g)
    probs = torch.softmax(torch.randn(500, 7, generator=g, dtype=torch.float64) + 2 * torch.eye(7)[target], 1)
    classes = [str(c) for c in range(7)]
    values, intervals, extras = score_metrics(probs, target, classes, resamples=0)
    again, with_intervals, more = score_metrics(probs, target, classes, resamples=50)
    assert values == again and json.dumps(extras) == json.dumps(more)  # NaN (empty bins) compare as text
    assert all(np.isnan(low) and np.isnan(high) for low, high in intervals.values())
    assert set(intervals) == set(with_intervals) == set(values)
    for name, (low, high) in with_intervals.items():
        assert low <= values[name] <= high, name
