"""Tests for visionbench/metrics/stats.py: vectorised bootstrap and percentile intervals.

``bootstrap_confusion_matrices`` draws each resample's cell counts from their exact multinomial
distribution; it is checked against a slow per-resample loop that resamples the samples
themselves, in distribution (means, variances and covariances of the cells over many resamples,
within Monte Carlo error) and in the intervals it gives. ``bootstrap_means`` is checked against
a slow loop drawing the same indices; ``percentile_interval`` against ``numpy.percentile`` and
``torch.quantile`` (linear interpolation).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visionbench.metrics import (
    bootstrap_confusion_matrices,
    classification_intervals,
    metric_tensors_from_confusion,
    metrics_from_confusion,
    percentile_interval,
    stats,
)
from visionbench.metrics.classification import confusion_matrix

FAST = settings(max_examples=25, deadline=None)


@st.composite
def labelled(draw: st.DrawFn, min_n: int = 1, max_n: int = 30) -> tuple[torch.Tensor, torch.Tensor, int]:
    k = draw(st.integers(1, 6))
    n = draw(st.integers(min_n, max_n))
    preds = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    target = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    return torch.tensor(preds, dtype=torch.int64), torch.tensor(target, dtype=torch.int64), k


def slow_bootstrap(preds: torch.Tensor, target: torch.Tensor, k: int, resamples: int, seed: int) -> torch.Tensor:
    """One resample at a time, counting pair by pair, from the same indices."""
    n = target.numel()
    g = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, n, (resamples, n), generator=g)
    out = torch.zeros(resamples, k, k, dtype=torch.int64)
    for r in range(resamples):
        for i in draws[r].tolist():
            out[r, int(target[i]), int(preds[i])] += 1
    return out


# --------------------------------------------------------------------------------------------
# bootstrap_confusion_matrices
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_matches_resampling_samples_in_distribution(seed: int) -> None:
    # Cell counts of resampled samples are Multinomial(N, p): compare the first two moments of
    # 20,000 fast resamples with the exact ones and with the slow sample-resampling loop.
    g = torch.Generator().manual_seed(seed)
    n, k, resamples = 40, 3, 20_000
    target = torch.randint(0, k, (n,), generator=g)
    preds = torch.where(torch.rand(n, generator=g) < 0.6, target, torch.randint(0, k, (n,), generator=g))
    fast = bootstrap_confusion_matrices(preds, target, k, resamples=resamples, seed=seed).double().reshape(resamples, -1)
    p = confusion_matrix(preds, target, k).double().reshape(-1) / n
    exact_cov = n * (torch.diag(p) - torch.outer(p, p))
    assert torch.allclose(fast.mean(0), n * p, atol=4 * (exact_cov.diagonal().sqrt().max() / resamples**0.5) + 1e-9)
    assert torch.allclose(torch.cov(fast.T), exact_cov, atol=0.08 * float(exact_cov.abs().max()))
    slow = slow_bootstrap(preds, target, k, 2000, seed).double().reshape(2000, -1)
    assert torch.allclose(slow.mean(0), fast.mean(0), atol=0.25)
    fast_acc = fast[:, [0, 4, 8]].sum(1) / n
    slow_acc = slow[:, [0, 4, 8]].sum(1) / n
    for a, b in zip(percentile_interval(fast_acc), percentile_interval(slow_acc), strict=True):
        assert abs(a - b) <= 0.04


@FAST
@given(labelled(), st.integers(1, 50), st.integers(0, 2**31 - 1))
def test_bootstrap_each_resample_sums_to_n_and_is_reproducible(data: tuple, resamples: int, seed: int) -> None:
    preds, target, k = data
    first = bootstrap_confusion_matrices(preds, target, k, resamples=resamples, seed=seed)
    assert (first.sum(dim=(1, 2)) == target.numel()).all()
    assert (first >= 0).all()
    again = bootstrap_confusion_matrices(preds, target, k, resamples=resamples, seed=seed)
    assert torch.equal(first, again)
    # Resampled counts only land where the data has pairs.
    support = confusion_matrix(preds, target, k) > 0
    assert (first[:, ~support] == 0).all()


def test_bootstrap_seed_changes_resamples_and_global_rng_untouched() -> None:
    preds = torch.arange(50) % 5
    target = (torch.arange(50) * 7) % 5
    state = torch.get_rng_state()
    a = bootstrap_confusion_matrices(preds, target, 5, resamples=30, seed=1)
    b = bootstrap_confusion_matrices(preds, target, 5, resamples=30, seed=2)
    assert not torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state), "the bootstrap must use its own generator"


def test_bootstrap_means_of_few_distinct_values_follow_the_multinomial() -> None:
    # 0/1 values (e.g. top-5 hits) are resampled through their two counts: exact in distribution.
    hits = (torch.arange(200) % 10 != 0).double()  # 90% ones
    means = stats.bootstrap_means(hits, resamples=20_000, seed=3)
    assert abs(float(means.mean()) - 0.9) < 1e-3
    assert abs(float(means.std()) - (0.9 * 0.1 / 200) ** 0.5) < 1e-3


@pytest.mark.parametrize("max_drawn", [1, 250, 1000])
def test_bootstrap_means_in_blocks_equal_a_slow_loop(monkeypatch: pytest.MonkeyPatch, max_drawn: int) -> None:
    # Per-sample means are resampled in blocks to bound memory; whatever the block size, each
    # resample's mean equals a slow loop over the indices the same generator draws block by block.
    # 100 distinct values: more than the multinomial shortcut takes, so indices are drawn.
    n = 100
    values = torch.arange(n, dtype=torch.float64).square() / 7
    rng, rows, draws = np.random.default_rng(5), max(1, max_drawn // n), []
    for start in range(0, 23, rows):
        draws += np.array_split(rng.integers(0, n, size=min(rows, 23 - start) * n), min(rows, 23 - start))
    expected = torch.tensor([sum(float(values[i]) for i in row.tolist()) / n for row in draws], dtype=torch.float64)
    monkeypatch.setattr(stats, "_BLOCK_ELEMENTS", max_drawn)
    got = stats.bootstrap_means(values, resamples=23, seed=5)
    assert torch.allclose(got, expected, rtol=1e-12, atol=0)


def test_bootstrap_default_resamples() -> None:
    preds, target = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0])
    got = bootstrap_confusion_matrices(preds, target, 2)
    assert got.shape == (1000, 2, 2)
    assert torch.equal(got, bootstrap_confusion_matrices(preds, target, 2, resamples=1000, seed=0))


@pytest.mark.parametrize("k", [1, 3])
def test_bootstrap_of_empty_inputs_is_zero_matrices(k: int) -> None:
    empty = torch.zeros(0, dtype=torch.int64)
    got = bootstrap_confusion_matrices(empty, empty, k, resamples=7)
    assert got.shape == (7, k, k) and got.dtype == torch.int64
    assert int(got.abs().sum()) == 0


# --------------------------------------------------------------------------------------------
# percentile_interval
# --------------------------------------------------------------------------------------------


@FAST
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]),
)
def test_percentile_interval_matches_numpy_and_torch(values: list[float], level: float) -> None:
    low, high = percentile_interval(torch.tensor(values, dtype=torch.float64), level)
    assert type(low) is float and type(high) is float
    tail = (1 - level) / 2
    atol = 1e-12 * max(abs(v) for v in values)
    np_low, np_high = np.percentile(np.array(values), [100 * tail, 100 * (1 - tail)], method="linear")
    assert low == pytest.approx(np_low, rel=1e-12, abs=atol)
    assert high == pytest.approx(np_high, rel=1e-12, abs=atol)
    t_low, t_high = torch.quantile(torch.tensor(values, dtype=torch.float64), torch.tensor([tail, 1 - tail], dtype=torch.float64))
    assert low == pytest.approx(float(t_low), rel=1e-12, abs=atol)
    assert high == pytest.approx(float(t_high), rel=1e-12, abs=atol)
    assert low <= high
    assert min(values) <= low and high <= max(values)


@FAST
@given(st.lists(st.floats(0, 1), min_size=1, max_size=50), st.lists(st.integers(0, 60), max_size=10))
def test_percentile_interval_ignores_nans(values: list[float], nan_positions: list[int]) -> None:
    with_nans = list(values)
    for p in nan_positions:
        with_nans.insert(min(p, len(with_nans)), math.nan)
    assert percentile_interval(torch.tensor(with_nans)) == percentile_interval(torch.tensor(values))


def test_percentile_interval_default_level_is_95() -> None:
    values = torch.arange(101, dtype=torch.float64)  # percentiles are the values themselves
    assert percentile_interval(values) == pytest.approx((2.5, 97.5), rel=1e-12)
    assert percentile_interval(values, 0.9) == pytest.approx((5.0, 95.0), rel=1e-12)


def test_percentile_interval_float32_input_is_computed_in_float64() -> None:
    values = torch.rand(999, generator=torch.Generator().manual_seed(0))
    low, high = percentile_interval(values)
    np_low, np_high = np.percentile(values.double().numpy(), [2.5, 97.5])
    assert low == pytest.approx(np_low, rel=1e-12) and high == pytest.approx(np_high, rel=1e-12)


@pytest.mark.parametrize("values", [torch.zeros(0), torch.full((5,), math.nan)], ids=["empty", "all-nan"])
def test_percentile_interval_without_finite_values_is_nan(values: torch.Tensor) -> None:
    low, high = percentile_interval(values)
    assert math.isnan(low) and math.isnan(high)


# --------------------------------------------------------------------------------------------
# classification_intervals
# --------------------------------------------------------------------------------------------


def reasonable_data(n: int = 300, k: int = 4, accuracy: float = 0.8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k, (n,), generator=g)
    wrong = torch.rand(n, generator=g) > accuracy
    preds = torch.where(wrong, torch.randint(0, k, (n,), generator=g), target)
    return preds, target


def test_classification_intervals_contain_point_estimates() -> None:
    preds, target = reasonable_data()
    intervals = classification_intervals(preds, target, 4, seed=3)
    point = metrics_from_confusion(confusion_matrix(preds, target, 4))
    assert set(intervals) == set(point)
    for name, (low, high) in intervals.items():
        assert low <= point[name] <= high, f"{name}: {point[name]} not in [{low}, {high}]"
        assert 0.0 <= low < high <= 1.0, f"{name}: [{low}, {high}]"
        # A 95% interval of ~300 samples is a few points wide, not degenerate or the whole range.
        assert 0.01 < high - low < 0.3, f"{name}: [{low}, {high}]"


def test_classification_intervals_reproducible_and_consistent() -> None:
    preds, target = reasonable_data(n=120, k=3, seed=5)
    a = classification_intervals(preds, target, 3, resamples=200, seed=11)
    assert a == classification_intervals(preds, target, 3, resamples=200, seed=11)
    assert a != classification_intervals(preds, target, 3, resamples=200, seed=12)
    # Same as composing the public pieces by hand.
    matrices = bootstrap_confusion_matrices(preds, target, 3, resamples=200, seed=11)
    by_hand = {name: percentile_interval(v) for name, v in metric_tensors_from_confusion(matrices).items()}
    assert a == by_hand


def test_classification_intervals_custom_metric_fn() -> None:
    preds, target = reasonable_data(n=80, k=2, seed=1)

    def error_count(cm: torch.Tensor) -> dict[str, torch.Tensor]:
        assert cm.shape == (50, 2, 2)  # all resamples at once
        return {"errors": (cm.sum(dim=(-2, -1)) - cm.diagonal(dim1=-2, dim2=-1).sum(-1)).double()}

    intervals = classification_intervals(preds, target, 2, resamples=50, metric_fn=error_count)
    assert set(intervals) == {"errors"}
    low, high = intervals["errors"]
    errors = int((preds != target).sum())
    assert 0 <= low <= errors <= high <= 80


@settings(max_examples=15, deadline=None)
@given(labelled(), st.integers(0, 2**31 - 1))
def test_classification_intervals_low_le_high(data: tuple, seed: int) -> None:
    preds, target, k = data
    intervals = classification_intervals(preds, target, k, resamples=40, seed=seed)
    point = metrics_from_confusion(confusion_matrix(preds, target, k))
    assert set(intervals) == set(point)
    signed = {"cohen_kappa", "matthews_corrcoef"}  # correlations: in [-1, 1]
    for name, (low, high) in intervals.items():
        if math.isnan(low) or math.isnan(high):
            # Only a metric undefined on the data itself (kappa of one-class data) may have
            # resamples that are all undefined.
            assert name == "cohen_kappa" and math.isnan(point[name]), name
            continue
        floor = -1.0 if name in signed else 0.0
        assert floor <= low <= high <= 1.0, f"{name}: [{low}, {high}]"


@pytest.mark.parametrize("k", [1, 5])
def test_classification_intervals_of_empty_inputs(k: int) -> None:
    # No samples: no crash, every metric (and every per-sample mean) is present with the
    # undefined interval (nan, nan) rather than a made-up (0, 0).
    empty = torch.zeros(0, dtype=torch.int64)
    intervals = classification_intervals(empty, empty, k, resamples=20)
    assert set(intervals) == set(metrics_from_confusion(torch.zeros(k, k, dtype=torch.int64)))
    for name, (low, high) in intervals.items():
        assert math.isnan(low) and math.isnan(high), name
    with_terms = classification_intervals(empty, empty, k, per_sample={"log_loss": torch.zeros(0)}, resamples=20)
    assert set(with_terms) == set(intervals) | {"log_loss"}
    assert all(math.isnan(v) for v in with_terms["log_loss"])


def test_classification_intervals_per_sample_means_are_bootstrap_means() -> None:
    preds, target = reasonable_data(n=90, k=3, seed=2)
    terms = torch.rand(90, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    got = classification_intervals(preds, target, 3, per_sample={"loss": terms}, resamples=100, seed=4)
    # The matrix metrics are unchanged by adding per-sample values.
    plain = classification_intervals(preds, target, 3, resamples=100, seed=4)
    assert {k: v for k, v in got.items() if k != "loss"} == plain
    # Each per-sample mean is resampled on its own stream (seed + its position), see the docs.
    draws = torch.from_numpy(np.random.default_rng(5).integers(0, 90, size=100 * 90)).view(100, 90)
    low, high = got["loss"]
    expected = percentile_interval(terms[draws].mean(dim=1))
    assert low == pytest.approx(expected[0], rel=1e-12) and high == pytest.approx(expected[1], rel=1e-12)
    assert low <= float(terms.mean()) <= high


def test_classification_intervals_single_sample() -> None:
    # One sample: every resample repeats it, so the interval collapses onto the point estimate.
    intervals = classification_intervals(torch.tensor([1]), torch.tensor([1]), 3, resamples=20)
    assert intervals["accuracy"] == (1.0, 1.0)
    assert intervals["balanced_accuracy"] == (1.0, 1.0)
    wrong = classification_intervals(torch.tensor([2]), torch.tensor([1]), 3, resamples=20)
    assert wrong["accuracy"] == (0.0, 0.0)
