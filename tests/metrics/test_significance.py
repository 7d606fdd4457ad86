"""Tests for visionbench/metrics/significance.py: McNemar, paired bootstrap, Holm.

Oracles: ``scipy.stats.binomtest`` and an exact ``Fraction`` sum for McNemar; a slow loop from
the definition for Holm (statsmodels is not installed); a slow per-resample loop with
scikit-learn's metrics on the same generator draws for the paired bootstrap. Properties:
identical runs give no difference, swapping A and B negates differences and keeps p-values.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn import metrics as skm

from visionbench.metrics import stats
from visionbench.metrics.significance import bootstrap_p_value, holm, mcnemar_exact, paired_bootstrap

FAST = settings(max_examples=25, deadline=None)
METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro")


def correctness(b: int, c: int, both_right: int = 3, both_wrong: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Correctness vectors with ``b`` A-only and ``c`` B-only right samples, in a fixed shuffle."""
    a = [True] * b + [False] * c + [True] * both_right + [False] * both_wrong
    bb = [False] * b + [True] * c + [True] * both_right + [False] * both_wrong
    order = torch.randperm(len(a), generator=torch.Generator().manual_seed(b * 1000 + c))
    return torch.tensor(a)[order], torch.tensor(bb)[order]


def exact_mcnemar(b: int, c: int) -> float:
    """The definition with exact rationals: ``min(1, 2 * P(X <= min(b, c)))``, correctly rounded."""
    n = b + c
    if n == 0:
        return 1.0
    tail = Fraction(sum(math.comb(n, i) for i in range(min(b, c) + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))


# --------------------------------------------------------------------------------------------
# mcnemar_exact
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("b, c", [(0, 0), (1, 0), (0, 1), (5, 5), (3, 9), (10, 0), (40, 55), (17, 4), (300, 250),
                                  (1000, 1100)])
def test_mcnemar_matches_scipy_binomtest_and_exact_sum(b: int, c: int) -> None:
    correct_a, correct_b = correctness(b, c)
    result = mcnemar_exact(correct_a, correct_b)
    assert (result.b, result.c) == (b, c)
    # Bit-for-bit the correctly rounded exact value; scipy's binomtest sums in floating point
    # (pmf(k) <= pmf(x) over both tails), so it may differ in the last few ulps.
    assert result.p_value == exact_mcnemar(b, c)
    expected = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    assert result.p_value == pytest.approx(expected, rel=1e-12, abs=0)


@FAST
@given(st.integers(0, 200), st.integers(0, 200))
def test_mcnemar_property_matches_scipy(b: int, c: int) -> None:
    result = mcnemar_exact(*correctness(b, c, both_right=0, both_wrong=0))
    expected = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    assert result.p_value == exact_mcnemar(b, c)
    assert result.p_value == pytest.approx(expected, rel=1e-12, abs=0)
    assert mcnemar_exact(*correctness(c, b, 0, 0)).p_value == result.p_value  # symmetric in A and B


@pytest.mark.parametrize("b, c", [(100_300, 99_800), (100_000, 101_500)])
def test_mcnemar_float_path_for_many_discordant_pairs(b: int, c: int) -> None:
    result = mcnemar_exact(*correctness(b, c, 0, 0))
    assert result.p_value == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-8)


def test_mcnemar_no_discordant_pairs_gives_one() -> None:
    same = torch.tensor([True, False, True, True])
    assert mcnemar_exact(same, same) == (0, 0, 1.0)


def test_mcnemar_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        mcnemar_exact(torch.ones(3, dtype=torch.bool), torch.ones(4, dtype=torch.bool))


# --------------------------------------------------------------------------------------------
# holm
# --------------------------------------------------------------------------------------------


def slow_holm(p: list[float]) -> list[float]:
    """From the definition: the i-th smallest gets max_{j<=i} min(1, (m - j + 1) p_(j))."""
    m = len(p)
    ranked = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for i in range(m):
        out[ranked[i]] = max(min(1.0, (m - j) * p[ranked[j]]) for j in range(i + 1))
    return out


@FAST
@given(st.lists(st.floats(0.0, 1.0), max_size=12))
def test_holm_matches_slow_loop(p: list[float]) -> None:
    adjusted = holm(p)
    assert adjusted == slow_holm(p)
    assert all(a >= raw and a <= 1.0 for a, raw in zip(adjusted, p, strict=True))
    ranked = sorted(range(len(p)), key=lambda i: p[i])
    assert all(adjusted[ranked[i]] <= adjusted[ranked[i + 1]] for i in range(len(p) - 1))  # monotone


def test_holm_known_values_and_edges() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2]) == [0.2]
    assert holm([]) == []
    assert holm([0.5, 0.6]) == [1.0, 1.0]


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_holm_rejects_values_outside_unit_interval(bad: float) -> None:
    with pytest.raises(ValueError, match=r"p-value must be in \[0, 1\].*holm:1"):
        holm([0.1, bad])


# --------------------------------------------------------------------------------------------
# paired_bootstrap
# --------------------------------------------------------------------------------------------


def random_runs(seed: int, n: int = 40, k: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k, (n,), generator=g)
    noise_a, noise_b = torch.randint(0, k, (n,), generator=g), torch.randint(0, k, (n,), generator=g)
    preds_a = torch.where(torch.rand(n, generator=g) < 0.6, target, noise_a)
    preds_b = torch.where(torch.rand(n, generator=g) < 0.7, target, noise_b)
    return preds_a, preds_b, target, k


def sklearn_metrics(preds: np.ndarray, target: np.ndarray, k: int) -> dict[str, float]:
    labels = list(range(k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balanced_accuracy: "y_pred contains classes not in y_true"
        return {
            "accuracy": skm.accuracy_score(target, preds),
            "balanced_accuracy": skm.balanced_accuracy_score(target, preds),
            "f1_macro": skm.f1_score(target, preds, labels=labels, average="macro", zero_division=0),
            "precision_macro": skm.precision_score(target, preds, labels=labels, average="macro", zero_division=0),
            "recall_macro": skm.recall_score(target, preds, labels=labels, average="macro", zero_division=0),
        }


def slow_paired_bootstrap(preds_a, preds_b, target, k, resamples, seed, block):
    """One resample at a time with scikit-learn, on the same draws (same generator, same blocks)."""
    n = target.numel()
    g = torch.Generator().manual_seed(seed)
    draws = torch.cat([torch.randint(0, n, (min(block, resamples - s), n), generator=g)
                       for s in range(0, resamples, block)])
    a, b, t = preds_a.numpy(), preds_b.numpy(), target.numpy()
    diffs = {name: [] for name in METRICS}
    for r in range(resamples):
        idx = draws[r].numpy()
        ma, mb = sklearn_metrics(a[idx], t[idx], k), sklearn_metrics(b[idx], t[idx], k)
        for name in METRICS:
            diffs[name].append(mb[name] - ma[name])
    full_a, full_b = sklearn_metrics(a, t, k), sklearn_metrics(b, t, k)
    out = {}
    for name in METRICS:
        d = np.array(diffs[name])
        low, high = np.percentile(d, [2.5, 97.5])  # linear interpolation, as torch.quantile
        below, above = (np.sum(d <= 0) + 1) / (resamples + 1), (np.sum(d >= 0) + 1) / (resamples + 1)
        out[name] = (full_a[name], full_b[name], full_b[name] - full_a[name], (low, high), min(1.0, 2 * min(below, above)))
    return out


@pytest.mark.parametrize("seed, block", [(0, None), (2, 7)])
def test_paired_bootstrap_matches_slow_sklearn_loop(seed: int, block: int | None, monkeypatch) -> None:
    preds_a, preds_b, target, k = random_runs(seed)
    resamples = 25
    if block is not None:  # several blocks: the draws continue on one generator
        monkeypatch.setattr(stats, "_MAX_DRAWN", block * target.numel())
    fast = paired_bootstrap(preds_a, preds_b, target, k, resamples=resamples, seed=seed, metrics=METRICS)
    slow = slow_paired_bootstrap(preds_a, preds_b, target, k, resamples, seed, block or resamples)
    assert list(fast) == list(METRICS)
    for name in METRICS:
        va, vb, diff, (low, high), p = slow[name]
        got = fast[name]
        assert got.value_a == pytest.approx(va, abs=1e-12) and got.value_b == pytest.approx(vb, abs=1e-12)
        assert got.diff == pytest.approx(diff, abs=1e-12)
        assert got.ci95 == pytest.approx((low, high), abs=1e-12)
        assert got.p_value == pytest.approx(p, abs=1e-12)


@st.composite
def paired_runs(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    k = draw(st.integers(1, 5))
    n = draw(st.integers(1, 25))
    classes = st.lists(st.integers(0, k - 1), min_size=n, max_size=n)
    return (torch.tensor(draw(classes)), torch.tensor(draw(classes)), torch.tensor(draw(classes)), k)


@FAST
@given(paired_runs(), st.integers(0, 3))
def test_identical_runs_show_no_difference(runs, seed: int) -> None:
    preds, _, target, k = runs
    out = paired_bootstrap(preds, preds.clone(), target, k, resamples=50, seed=seed)
    for m in out.values():
        assert m.diff == 0.0 and m.ci95 == (0.0, 0.0) and m.p_value == 1.0
    assert mcnemar_exact(preds == target, preds == target).p_value == 1.0


@FAST
@given(paired_runs(), st.integers(0, 3))
def test_swapping_runs_negates_differences_and_keeps_p_values(runs, seed: int) -> None:
    preds_a, preds_b, target, k = runs
    ab = paired_bootstrap(preds_a, preds_b, target, k, resamples=50, seed=seed)
    ba = paired_bootstrap(preds_b, preds_a, target, k, resamples=50, seed=seed)
    for name in ab:
        assert (ba[name].value_a, ba[name].value_b) == (ab[name].value_b, ab[name].value_a)
        assert ba[name].diff == -ab[name].diff
        assert ba[name].ci95 == pytest.approx((-ab[name].ci95[1], -ab[name].ci95[0]), abs=1e-12)
        assert ba[name].p_value == ab[name].p_value
    m_ab, m_ba = mcnemar_exact(preds_a == target, preds_b == target), mcnemar_exact(preds_b == target, preds_a == target)
    assert (m_ab.b, m_ab.c, m_ab.p_value) == (m_ba.c, m_ba.b, m_ba.p_value)


def test_paired_bootstrap_is_deterministic_given_seed() -> None:
    preds_a, preds_b, target, k = random_runs(5)
    first = paired_bootstrap(preds_a, preds_b, target, k, resamples=100, seed=3)
    assert first == paired_bootstrap(preds_a, preds_b, target, k, resamples=100, seed=3)
    assert first != paired_bootstrap(preds_a, preds_b, target, k, resamples=100, seed=4)


def test_clearly_better_run_is_significant() -> None:
    target = torch.arange(200) % 4
    worse = torch.where(torch.arange(200) % 2 == 0, target, (target + 1) % 4)  # 50% right
    out = paired_bootstrap(worse, target, target, 4, resamples=500, seed=0)
    acc = out["accuracy"]
    assert acc.diff == pytest.approx(0.5) and acc.ci95[0] > 0.3
    assert acc.p_value == pytest.approx(2 / 501)  # no resample on the far side: (0 + 1) / (R + 1), doubled


def test_bootstrap_p_value_definition() -> None:
    diffs = torch.tensor([-0.1, 0.0, 0.2, 0.3, 0.4, float("nan")])  # 5 finite: 2 <= 0, 4 >= 0
    assert bootstrap_p_value(diffs) == pytest.approx(2 * 3 / 6)
    assert math.isnan(bootstrap_p_value(torch.tensor([float("nan")])))


def test_paired_bootstrap_errors_name_the_problem() -> None:
    preds_a, preds_b, target, k = random_runs(0)
    with pytest.raises(ValueError, match="Did you mean f1_macro"):
        paired_bootstrap(preds_a, preds_b, target, k, metrics=["f1_marco"])
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap(preds_a[:-1], preds_b, target, k)
    with pytest.raises(ValueError, match="resamples must be >= 1"):
        paired_bootstrap(preds_a, preds_b, target, k, resamples=0)
    with pytest.raises(ValueError, match="at least one sample"):
        paired_bootstrap(preds_a[:0], preds_b[:0], target[:0], k)
    with pytest.raises(ValueError, match=r"must be in \[0, 4\)"):
        paired_bootstrap(preds_a, preds_b + 4, target, k)
