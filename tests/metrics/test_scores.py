"""Tests for visionbench/metrics/scores.py.

Oracle: scikit-learn's ``top_k_accuracy_score``, ``log_loss``, ``roc_auc_score``,
``average_precision_score``, ``roc_curve``, ``precision_recall_curve``, ``precision_score`` …
and ``multilabel_confusion_matrix``, to 1e-12 relative (``==`` where scikit-learn's arithmetic is
exact: top-k, curves of unweighted or integer-weighted samples, counts), on hypothesis-generated
probabilities: N from 1, K from 2 to 8, classes absent from the target or a single class present,
many ties (probabilities on a 0.1 grid, equal across rows), float32 and float64. Calibration
against a slow loop. Properties: ``[R, N]`` weights == a loop of scikit-learn calls, streamed
updates == one call, merging halves == the whole, invariance to sample order.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from visionbench.metrics import (
    ProbabilitySumWarning,
    ScoreAccumulator,
    UndefinedMetricWarning,
    average_precision,
    binary_stats,
    calibration_bins,
    expected_calibration_error,
    log_loss,
    multilabel_confusion,
    precision_recall_curve,
    roc_auc,
    roc_curve,
    top_k_accuracy,
    validate_scores,
)

SETTINGS = settings(max_examples=60, deadline=None)
FEW = settings(max_examples=25, deadline=None)
FEWER = settings(max_examples=15, deadline=None)  # each example makes dozens of scikit-learn calls
AVERAGES = ("macro", "weighted", "micro", "none")


# --------------------------------------------------------------------------------------------
# Inputs and helpers
# --------------------------------------------------------------------------------------------


@st.composite
def scored(
    draw: st.DrawFn, min_n: int = 1, max_n: int = 40, min_k: int = 2, max_k: int = 8
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(probs [N, K], target [N], K)``.

    Probabilities are either a softmax of random logits (scale 0.1 … 20: near-uniform to
    saturated) or a point of the 0.1 grid (ten tenths shared among K classes: many exact ties
    within and across rows, and zeros); float32 or float64. The target is drawn from a subset of
    the classes, so some classes are absent and sometimes only one is present.
    """
    k = draw(st.integers(min_k, max_k))
    n = draw(st.integers(min_n, max_n))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        tenths = torch.multinomial(torch.ones(k), 10 * n, replacement=True, generator=g).reshape(n, 10)
        probs = torch.nn.functional.one_hot(tenths, k).sum(1).double() / 10  # rows of tenths
    else:
        scale = draw(st.sampled_from([0.1, 1.0, 5.0, 20.0]))
        probs = torch.softmax(scale * torch.randn(n, k, generator=g, dtype=torch.float64), dim=1)
    probs = probs.to(draw(st.sampled_from([torch.float64, torch.float32])))
    present = draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=k, unique=True))
    target = torch.tensor(present)[torch.randint(0, len(present), (n,), generator=g)]
    return probs, target, k


def as_np(values: object) -> np.ndarray:
    return np.asarray(values.numpy() if isinstance(values, torch.Tensor) else values, dtype=np.float64)


def assert_close(actual: object, expected: object, what: str, *, rtol: float = 1e-12, atol: float = 0.0) -> None:
    """Equal to 1e-12 relative, NaN == NaN, shapes equal."""
    a, e = as_np(actual), as_np(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} vs expected {e.shape}"
    assert np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True), f"{what}: {a} vs expected {e}"


def assert_equal(actual: object, expected: object, what: str) -> None:
    a, e = as_np(actual), as_np(expected)
    assert a.shape == e.shape and np.array_equal(a, e, equal_nan=True), f"{what}: {a} vs expected {e}"


def record(fn: object, *args: object, **kwargs: object) -> tuple[object, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, caught


def named(caught: list[warnings.WarningMessage], category: type[Warning] = UndefinedMetricWarning) -> list:
    return [w for w in caught if issubclass(w.category, category)]


def quiet(fn: object, *args: object, **kwargs: object) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def sk_per_class(metric: str, y: np.ndarray, p: np.ndarray, k: int, weight: np.ndarray | None = None) -> np.ndarray:
    """scikit-learn one-vs-rest values per class; NaN where undefined (no positive weight, or
    for ROC AUC no negative weight)."""
    onehot = np.eye(k)[y]
    out = np.full(k, np.nan)
    w = np.ones(len(y)) if weight is None else weight
    for c in range(k):
        positives, negatives = (w * onehot[:, c]).sum(), (w * (1 - onehot[:, c])).sum()
        if positives == 0 or (metric == "roc" and negatives == 0):
            continue
        fn = skm.roc_auc_score if metric == "roc" else skm.average_precision_score
        out[c] = quiet(fn, onehot[:, c], p[:, c], sample_weight=weight)
    return out


def sk_average(metric: str, y: np.ndarray, p: np.ndarray, k: int, average: str, weight: np.ndarray | None = None) -> object:
    """The value visionbench defines: scikit-learn's where scikit-learn is defined, undefined
    classes left out of macro/weighted."""
    onehot = np.eye(k)[y]
    if average == "micro":
        fn = skm.roc_auc_score if metric == "roc" else skm.average_precision_score
        return quiet(fn, onehot.ravel(), p.ravel(), sample_weight=None if weight is None else np.repeat(weight, k))
    per_class = sk_per_class(metric, y, p, k, weight)
    if average == "none":
        return per_class
    valid = ~np.isnan(per_class)
    if not valid.any():
        return np.nan
    if average == "macro":
        return per_class[valid].mean()
    support = (onehot * (np.ones(len(y)) if weight is None else weight)[:, None]).sum(0)
    return np.average(per_class[valid], weights=support[valid])


# --------------------------------------------------------------------------------------------
# validate_scores
# --------------------------------------------------------------------------------------------


GOOD = torch.tensor([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)


@pytest.mark.parametrize(
    ("probs", "target", "kwargs", "error", "message"),
    [
        (GOOD, torch.tensor([0, 1]), {}, ValueError, r"probs and target must have the same number of rows; got 3 and 2"),
        (GOOD[:, :1], torch.tensor([0, 0, 0]), {}, ValueError,
         r"probs must have at least 2 columns \(classes\); got shape \(3, 1\)\. For a binary problem"),
        (GOOD, torch.tensor([0, 2, 1]), {}, ValueError, r"target must be in \[0, 2\); got 2 at row 1\. Check num_classes"),
        (GOOD, torch.tensor([0, -1, 1]), {}, ValueError, r"target must be in \[0, 2\); got -1 at row 1"),
        (torch.tensor([[0.2, 0.8], [float("nan"), 0.5], [0.5, float("inf")]]), torch.tensor([0, 1, 1]), {}, ValueError,
         r"probs must be finite; got NaN or inf in 2 row\(s\), the first at row 1\. Check the model outputs"),
        (torch.tensor([[0.2, 0.8], [0.3, 0.3], [0.6, 0.6]]), torch.tensor([0, 1, 1]), {}, ValueError,
         r"probs rows must sum to 1 \(within 0\.0001\); got 2 row\(s\) that do not, the first row 1 summing to "
         r"0\.6.*torch\.softmax\(logits, dim=1\)"),
        (torch.tensor([[0.2, 0.8], [0.5, 0.5004]]), torch.tensor([0, 1]), {"sum_tolerance": 1e-3}, None, None),
        (torch.tensor([[0.2, 0.8], [0.5, 0.5004]]), torch.tensor([0, 1]), {}, ValueError, r"within 0\.0001\); got 1 row"),
        (torch.tensor([[1.5, -0.5]]), torch.tensor([0]), {}, ValueError, r"probs must be in \[0, 1\]; got 1\.5 at row 0, column 0"),
        (GOOD, torch.tensor([0, 1, 1]), {"num_classes": 3}, ValueError, r"probs must have num_classes=3 columns; got 2"),
        (GOOD[0], torch.tensor([0]), {}, ValueError, r"probs must be 2-D \[N, K\]; got shape \(2,\)"),
        (GOOD, torch.tensor([[0, 1, 1]]), {}, ValueError, r"target must be 1-D \[N\]; got shape \(1, 3\)"),
        (GOOD[:0], torch.zeros(0, dtype=torch.int64), {}, ValueError, r"probs must have at least one row; got 0"),
        (GOOD.long(), torch.tensor([0, 1, 1]), {}, TypeError, r"probs must be floating point; got dtype torch\.int64"),
        (GOOD, torch.tensor([0.0, 1.0, 1.0]), {}, TypeError, r"target must be an integer tensor.*Use target\.long\(\)"),
        (GOOD.numpy(), torch.tensor([0, 1, 1]), {}, TypeError, r"probs must be a torch\.Tensor; got ndarray"),
    ],
)
def test_validate_scores_errors(probs: object, target: torch.Tensor, kwargs: dict, error: type | None, message: str | None) -> None:
    if error is None:
        validate_scores(probs, target, **kwargs)
        return
    with pytest.raises(error, match=message):
        validate_scores(probs, target, **kwargs)
    if kwargs:
        return
    # Every public function taking probabilities says the same (roc_auc and average_precision
    # read 1-D input as binary scores instead).
    functions = [top_k_accuracy, log_loss, expected_calibration_error]
    functions += [roc_auc, average_precision] if getattr(probs, "ndim", 2) != 1 else []
    for fn in functions:
        with pytest.raises(error, match=message):
            fn(probs, target, **({"k": 1} if fn is top_k_accuracy else {}))


def test_validate_scores_returns_int64_target_and_keeps_dtype() -> None:
    probs, target = validate_scores(GOOD.float(), torch.tensor([0, 1, 1], dtype=torch.int32), num_classes=2)
    assert probs.dtype == torch.float32 and target.dtype == torch.int64
    empty, _ = validate_scores(GOOD[:0], torch.zeros(0, dtype=torch.int64), allow_empty=True)
    assert empty.shape == (0, 2)


# --------------------------------------------------------------------------------------------
# top_k_accuracy
# --------------------------------------------------------------------------------------------


def argsort_oracle(probs: torch.Tensor, target: torch.Tensor, k: int) -> float:
    """scikit-learn's rule, by hand: mergesort ascending, reversed, first k."""
    order = np.argsort(probs.numpy(), axis=1, kind="mergesort")[:, ::-1][:, :k]
    return float(np.mean([t in row for t, row in zip(target.tolist(), order.tolist(), strict=True)]))


@SETTINGS
@given(scored(), st.integers(1, 8))
def test_top_k_accuracy_matches_sklearn_exactly(data: tuple, k: int) -> None:
    probs, target, num_classes = data
    got, caught = record(top_k_accuracy, probs, target, k=k)
    assert got.dtype == torch.float64 and got.shape == ()
    assert float(got) == argsort_oracle(probs, target, k)
    assert bool(named(caught)) == (k >= num_classes)
    if num_classes >= 3:  # scikit-learn takes 2-D scores only for K >= 3
        expected = quiet(skm.top_k_accuracy_score, target.numpy(), probs.numpy(), k=k, labels=list(range(num_classes)))
        assert float(got) == expected


def test_top_k_accuracy_ties_rank_higher_class_first() -> None:
    probs = torch.tensor([[0.4, 0.3, 0.3], [0.4, 0.3, 0.3], [0.2, 0.2, 0.6]])
    # Row 0: class 1 ties class 2 for 2nd place, class 2 ranks first → class 1 misses top-2.
    assert float(top_k_accuracy(probs[:1], torch.tensor([1]), k=2)) == 0.0
    assert float(top_k_accuracy(probs[1:2], torch.tensor([2]), k=2)) == 1.0
    # Row 2: classes 0 and 1 tie for 2nd: top-2 is {2, 1}.
    assert float(top_k_accuracy(probs[2:], torch.tensor([0]), k=2)) == 0.0
    expected = skm.top_k_accuracy_score([1, 2, 0], probs.numpy(), k=2, labels=[0, 1, 2])
    assert float(top_k_accuracy(probs, torch.tensor([1, 2, 0]), k=2)) == expected == 1 / 3


def test_top_k_accuracy_k_at_least_num_classes_warns_and_bad_k() -> None:
    with pytest.warns(UndefinedMetricWarning, match=r"k=3 >= the number of classes \(3\)") as caught:
        assert float(top_k_accuracy(torch.full((2, 3), 1 / 3), torch.tensor([0, 2]), k=3)) == 1.0
    assert caught[0].filename == __file__
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"k must be an integer >= 1; got"):
            top_k_accuracy(GOOD, torch.tensor([0, 1, 1]), k=k)


# --------------------------------------------------------------------------------------------
# log_loss
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(scored())
def test_log_loss_matches_sklearn(data: tuple) -> None:
    probs, target, k = data
    got, caught = record(log_loss, probs, target)
    assert got.dtype == torch.float64 and got.shape == () and float(got) >= 0
    assert not named(caught, ProbabilitySumWarning), "grid and softmax rows sum to 1 within sqrt(eps)"
    labels = list(range(k))
    if probs.dtype == torch.float64:
        assert_close(got, skm.log_loss(target.numpy(), probs.numpy(), labels=labels), "log_loss float64")
    else:
        # scikit-learn clips with float32's eps and computes in float32: equal to 1e-12 to
        # scikit-learn on those clipped values in float64, and to float32 rounding to its own.
        eps = np.finfo(np.float32).eps
        clipped = np.clip(probs.numpy(), eps, 1 - eps).astype(np.float64)
        assert_close(got, quiet(skm.log_loss, target.numpy(), clipped, labels=labels), "log_loss float32 (clipped)")
        assert float(got) == pytest.approx(skm.log_loss(target.numpy(), probs.numpy(), labels=labels), rel=1e-5, abs=1e-6)


def test_log_loss_clips_without_renormalising_and_warns() -> None:
    eps = torch.finfo(torch.float64).eps
    probs = torch.tensor([[1.0, 0.0], [0.25, 0.75]], dtype=torch.float64)
    assert float(log_loss(probs, torch.tensor([1, 1]))) == pytest.approx((-np.log(eps) - np.log(0.75)) / 2, rel=1e-15)
    off = torch.tensor([[0.3, 0.70001], [0.5, 0.5]], dtype=torch.float64)  # 1e-5 off: accepted, warned
    with pytest.warns(ProbabilitySumWarning, match=r"do not sum to one.*no renormalisation") as caught:
        got = log_loss(off, torch.tensor([1, 0]))
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_close(got, skm.log_loss([1, 0], off.numpy(), labels=[0, 1]), "unnormalised rows")
    eps32 = float(torch.finfo(torch.float32).eps)
    got32 = log_loss(torch.tensor([[1.0, 0.0]], dtype=torch.float32), torch.tensor([0]))
    assert float(got32) == pytest.approx(-np.log1p(-eps32), rel=1e-12)  # p = 1 clipped to 1 - eps32


# --------------------------------------------------------------------------------------------
# roc_auc and average_precision
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("average", AVERAGES)
@SETTINGS
@given(data=scored())
def test_roc_auc_matches_sklearn(data: tuple, average: str) -> None:
    probs, target, k = data
    got, caught = record(roc_auc, probs, target, average=average)
    assert got.dtype == torch.float64
    y, p = target.numpy(), probs.numpy()
    present = set(target.tolist())
    if k == 2 and average != "none":
        expected = quiet(skm.roc_auc_score, y, p[:, 1]) if len(present) == 2 else np.nan
        assert_close(got, expected, f"binary K=2 {average}")
        assert bool(named(caught)) == (len(present) == 1)
        return
    assert_close(got, sk_average("roc", y, p, k, average), f"roc_auc {average} K={k} present={sorted(present)}")
    if len(present) == k and average != "micro" and k >= 3:
        # All classes present: scikit-learn's own multiclass call, as is.
        sk = skm.roc_auc_score(y, p, multi_class="ovr", labels=list(range(k)), average=None if average == "none" else average)
        assert_close(got, sk, f"sklearn ovr {average}")
    if average == "micro":
        assert_close(got, skm.roc_auc_score(np.eye(k)[y], p, average="micro"), "sklearn micro")
        assert not named(caught)
    else:
        undefined = sorted(set(range(k)) - present) if len(present) > 1 else list(range(k))
        warned = named(caught)
        assert bool(warned) == bool(undefined)
        if warned:
            assert f"undefined for classes {undefined}" in str(warned[0].message)
            assert warned[0].filename == __file__


@pytest.mark.parametrize("average", AVERAGES)
@SETTINGS
@given(data=scored())
def test_average_precision_matches_sklearn(data: tuple, average: str) -> None:
    probs, target, k = data
    got, caught = record(average_precision, probs, target, average=average)
    y, p = target.numpy(), probs.numpy()
    present = set(target.tolist())
    assert_close(got, sk_average("ap", y, p, k, average), f"AP {average} K={k} present={sorted(present)}")
    if len(present) == k or average in ("weighted", "micro"):
        # scikit-learn on the one-hot target, as is (absent classes weigh 0 in "weighted").
        sk = quiet(skm.average_precision_score, np.eye(k)[y], p, average=None if average == "none" else average)
        assert_close(got, sk, f"sklearn one-hot {average}")
    absent = sorted(set(range(k)) - present)
    warned = named(caught)
    assert bool(warned) == (bool(absent) and average != "micro")
    if warned:
        assert f"undefined for classes {absent} (no positive sample)" in str(warned[0].message)


@SETTINGS
@given(scored(max_k=2, min_k=2), st.sampled_from([roc_auc, average_precision]))
def test_binary_scores_match_sklearn(data: tuple, fn: object) -> None:
    probs, target, _ = data
    scores = probs[:, 1] * 3 - 1  # any real scores
    got, caught = record(fn, scores, target)
    sk_fn = skm.roc_auc_score if fn is roc_auc else skm.average_precision_score
    defined = len(set(target.tolist())) == 2 if fn is roc_auc else bool(target.any())
    expected = quiet(sk_fn, target.numpy(), scores.numpy()) if defined else np.nan
    assert_close(got, expected, fn.__name__)
    assert bool(named(caught)) == (not defined)
    assert_close(fn(scores, target.bool()) if defined else expected, expected, "bool target")


@pytest.mark.parametrize("average", AVERAGES)
@FEWER
@given(data=scored(min_k=3), seed=st.integers(0, 2**31 - 1))
def test_ranking_sample_weight_matches_sklearn(data: tuple, average: str, seed: int) -> None:
    probs, target, k = data
    weight = torch.rand(target.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3 + 0.01
    weight[1::3] = 0.0  # zero weights drop samples (and thresholds) in scikit-learn
    y, p, w = target.numpy(), probs.numpy(), weight.numpy()
    for metric, fn in (("roc", roc_auc), ("ap", average_precision)):
        got = quiet(fn, probs, target, average=average, sample_weight=weight)
        assert_close(got, sk_average(metric, y, p, k, average, w), f"{metric} {average} weighted")


@pytest.mark.parametrize("average", AVERAGES)
@FEWER
@given(data=scored(), r=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_ranking_resample_counts_equal_loop_of_sklearn(data: tuple, average: str, r: int, seed: int) -> None:
    probs, target, k = data
    n = target.numel()
    draws = torch.randint(0, n, (r, n), generator=torch.Generator().manual_seed(seed))
    counts = torch.zeros(r, n, dtype=torch.int64).scatter_add_(1, draws, torch.ones_like(draws))  # bootstrap counts
    y, p = target.numpy(), probs.numpy()
    for metric, fn in (("roc", roc_auc), ("ap", average_precision)):
        got = quiet(fn, probs, target, average=average, sample_weight=counts)
        singles = [quiet(fn, probs, target, average=average, sample_weight=row) for row in counts]
        assert got.shape == torch.stack(singles).shape
        torch.testing.assert_close(got, torch.stack(singles), rtol=1e-12, atol=0.0, equal_nan=True)
        binary = k == 2 and average != "none" and metric == "roc"
        for row, value in zip(counts.numpy(), got, strict=True):
            if binary:
                defined = (row * (y == 1)).sum() > 0 and (row * (y == 0)).sum() > 0
                expected = quiet(skm.roc_auc_score, y, p[:, 1], sample_weight=row) if defined else np.nan
            else:
                expected = sk_average(metric, y, p, k, average, row.astype(np.float64))
            assert_close(value, expected, f"{metric} {average} resample {row.tolist()}")


@FEW
@given(scored(), st.randoms(use_true_random=False))
def test_ranking_invariant_to_sample_order(data: tuple, rnd: object) -> None:
    probs, target, _ = data
    order = list(range(target.numel()))
    rnd.shuffle(order)
    order = torch.tensor(order)
    for fn in (roc_auc, average_precision):
        for average in AVERAGES:
            a = quiet(fn, probs, target, average=average)
            b = quiet(fn, probs[order], target[order], average=average)
            torch.testing.assert_close(a, b, rtol=0.0, atol=0.0, equal_nan=True)


def test_roc_auc_ties_count_one_half() -> None:
    # One positive and one negative at the same score: AUC 1/2 (mid-rank), not 0 or 1.
    assert float(roc_auc(torch.tensor([0.3, 0.3]), torch.tensor([0, 1]))) == 0.5
    scores, target = torch.tensor([0.1, 0.4, 0.4, 0.8]), torch.tensor([0, 0, 1, 1])
    assert float(roc_auc(scores, target)) == 0.875 == skm.roc_auc_score(target.numpy(), scores.numpy())


def test_ranking_undefined_classes_and_bad_weights() -> None:
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    target = torch.tensor([0, 1, 1])  # class 2 absent
    with pytest.warns(UndefinedMetricWarning, match=r"ROC AUC is undefined for classes \[2\].*left out of the average"):
        per_class = roc_auc(probs, target, average="none")
    assert torch.isnan(per_class[2]) and not torch.isnan(per_class[:2]).any()
    with pytest.warns(UndefinedMetricWarning):
        assert float(roc_auc(probs, target)) == float(per_class[:2].mean())
    with pytest.warns(UndefinedMetricWarning, match=r"in at least one resample"):
        roc_auc(probs, torch.tensor([0, 1, 2]), sample_weight=torch.tensor([[1, 1, 1], [2, 1, 0]]))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \[N\] or \[R, N\] with N=3; got \(2,\)"):
        roc_auc(probs, target, sample_weight=torch.ones(2))
    with pytest.raises(ValueError, match=r"sample_weight must be >= 0; got -1\.0"):
        average_precision(probs, target, sample_weight=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match=r"average must be one of"):
        roc_auc(probs, target, average="samples")
    with pytest.raises(ValueError, match=r"target must be 0 or 1; got 2 at 1"):
        roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([0, 2]))


# --------------------------------------------------------------------------------------------
# roc_curve and precision_recall_curve
# --------------------------------------------------------------------------------------------


@st.composite
def binary_scores(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    n = draw(st.integers(1, 40))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scores = torch.randn(n, generator=g, dtype=torch.float64)
    if draw(st.booleans()):
        scores = torch.round(scores, decimals=1)  # many ties
    scores = scores.to(draw(st.sampled_from([torch.float64, torch.float32])))
    positive = torch.rand(n, generator=g) < draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    weight = None
    if draw(st.booleans()):
        weight = torch.randint(0, 4, (n,), generator=g).double()  # integer weights: exact cumulative sums
        weight[0] = 1.0
    return scores, positive, weight


@pytest.mark.parametrize("drop_intermediate", [True, False])
@SETTINGS
@given(data=binary_scores())
def test_curves_equal_sklearn_arrays(data: tuple, drop_intermediate: bool) -> None:
    scores, positive, weight = data
    y, s = positive.numpy(), scores.numpy()
    sw = None if weight is None else weight.numpy()
    (fpr, tpr, thr), ours = record(roc_curve, scores, positive, drop_intermediate=drop_intermediate, sample_weight=weight)
    (sfpr, stpr, sthr), theirs = record(skm.roc_curve, y, s, drop_intermediate=drop_intermediate, sample_weight=sw)
    assert fpr.dtype == tpr.dtype == thr.dtype == torch.float64
    assert_equal(fpr, sfpr, "fpr")
    assert_equal(tpr, stpr, "tpr")
    assert_equal(thr, sthr, "roc thresholds")
    assert len(named(ours)) == len([w for w in theirs if "samples in y_true" in str(w.message)])

    (prec, rec, pthr), ours = record(
        precision_recall_curve, scores, positive, drop_intermediate=drop_intermediate, sample_weight=weight
    )
    sprec, srec, spthr = quiet(skm.precision_recall_curve, y, s, drop_intermediate=drop_intermediate, sample_weight=sw)
    assert_equal(prec, sprec, "precision")
    assert_equal(rec, srec, "recall")
    assert_equal(pthr, spthr, "pr thresholds")
    assert bool(named(ours)) == (float((positive.double() * (1.0 if weight is None else weight)).sum()) == 0)


def test_curves_docstring_examples_and_undefined() -> None:
    scores, target = torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])
    fpr, tpr, thr = roc_curve(scores, target)
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0] and thr[0] == float("inf")
    precision, recall, thresholds = precision_recall_curve(scores, target)
    assert recall.tolist() == [1.0, 1.0, 0.5, 0.5, 0.0] and precision[-1] == 1.0
    assert thresholds.tolist() == sorted(thresholds.tolist())
    with pytest.warns(UndefinedMetricWarning, match=r"No negative samples.*false positive rate is undefined"):
        fpr, tpr, _ = roc_curve(scores, torch.ones(4, dtype=torch.bool))
    assert torch.isnan(fpr).all() and not torch.isnan(tpr).any()
    with pytest.warns(UndefinedMetricWarning, match=r"No positive samples.*recall is set to 1"):
        _, recall, _ = precision_recall_curve(scores, torch.zeros(4, dtype=torch.int64))
    assert recall[:-1].eq(1.0).all()


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def calibration_oracle(probs: torch.Tensor, target: torch.Tensor, n_bins: int) -> tuple[list, list, list, float]:
    """Slow loop: each sample into the bin b with edges[b] < conf <= edges[b + 1] (bin 0 also 0)."""
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64).tolist()
    members: list[list[tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for row, label in zip(probs.double().tolist(), target.tolist(), strict=True):
        conf = max(row)
        pred = row.index(conf)  # first maximal index
        b = next((i for i in range(n_bins) if edges[i] < conf <= edges[i + 1]), 0)
        members[b].append((conf, pred == label))
    n = probs.shape[0]
    conf = [sum(c for c, _ in m) / len(m) if m else float("nan") for m in members]
    acc = [sum(h for _, h in m) / len(m) if m else float("nan") for m in members]
    count = [len(m) for m in members]
    ece = sum(cnt / n * abs(a - c) for cnt, a, c in zip(count, acc, conf, strict=True) if cnt)
    return conf, acc, count, ece


@SETTINGS
@given(scored(), st.sampled_from([1, 2, 10, 15]))
def test_calibration_matches_loop_oracle(data: tuple, n_bins: int) -> None:
    probs, target, _ = data
    bins = calibration_bins(probs, target, n_bins=n_bins)
    conf, acc, count, ece = calibration_oracle(probs, target, n_bins)
    assert bins["bin_edges"].shape == (n_bins + 1,) and bins["count"].dtype == torch.int64
    assert bins["count"].tolist() == count and int(bins["count"].sum()) == target.numel()
    assert_close(bins["confidence"], conf, "confidence")
    assert_close(bins["accuracy"], acc, "accuracy")
    got = expected_calibration_error(probs, target, n_bins=n_bins)
    assert got.dtype == torch.float64 and 0.0 <= float(got) <= 1.0
    # |acc - conf| can cancel, so the oracle's order of operations shows at the 1e-15 level.
    assert_close(got, ece, "ece", atol=1e-14)


def test_calibration_bins_are_right_inclusive() -> None:
    # Confidences exactly on edges 0.5 and 1.0 (2 bins): 0.5 belongs to bin 0, 1.0 to bin 1.
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]], dtype=torch.float64)
    bins = calibration_bins(probs, torch.tensor([0, 1, 1]), n_bins=2)
    assert bins["count"].tolist() == [1, 2]
    assert bins["accuracy"].tolist() == [1.0, 0.5] and bins["confidence"].tolist() == [0.5, 0.875]
    assert float(expected_calibration_error(probs, torch.tensor([0, 1, 1]), n_bins=2)) == pytest.approx(
        1 / 3 * 0.5 + 2 / 3 * 0.375
    )
    with pytest.raises(ValueError, match=r"n_bins must be an integer >= 1; got 0"):
        calibration_bins(probs, torch.tensor([0, 1, 1]), n_bins=0)


# --------------------------------------------------------------------------------------------
# binary_stats and multilabel_confusion
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(data=binary_scores(), threshold=st.sampled_from([0.0, 0.5, 0.3]), zero_division=st.sampled_from([0, 1, "nan"]))
def test_binary_stats_match_sklearn(data: tuple, threshold: float, zero_division: object) -> None:
    scores, positive, _ = data
    stats, caught = record(binary_stats, scores, positive.long(), threshold=threshold, zero_division=zero_division)
    assert not named(caught)
    y, pred = positive.numpy().astype(int), (scores.numpy() >= threshold).astype(int)  # positive iff >= threshold
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert [int(stats[name]) for name in ("tn", "fp", "fn", "tp")] == [tn, fp, fn, tp]
    zd = np.nan if zero_division == "nan" else zero_division
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert_close(stats[name], fn(y, pred, labels=[0, 1], zero_division=zd), name)
    assert_close(stats["accuracy"], skm.accuracy_score(y, pred), "accuracy")


def test_binary_stats_zero_division_warns() -> None:
    with pytest.warns(UndefinedMetricWarning, match=r"^Precision is ill-defined") as caught:
        stats = binary_stats(torch.tensor([0.1, 0.2]), torch.tensor([1, 0]))
    assert float(stats["precision"]) == 0.0 and caught[0].filename == __file__
    with pytest.raises(ValueError, match=r"scores and target must have the same shape; got \(2,\) and \(3,\)"):
        binary_stats(torch.tensor([0.1, 0.2]), torch.tensor([1, 0, 1]))
    with pytest.raises(ValueError, match=r"scores must be finite; got NaN or inf in 1 row\(s\), the first at row 1"):
        binary_stats(torch.tensor([0.1, float("nan")]), torch.tensor([1, 0]))


@SETTINGS
@given(st.integers(1, 30), st.integers(1, 6), st.integers(0, 2**31 - 1), st.sampled_from([0.5, 0.2]))
def test_multilabel_confusion_matches_sklearn(n: int, labels: int, seed: int, threshold: float) -> None:
    g = torch.Generator().manual_seed(seed)
    scores = torch.round(torch.rand(n, labels, generator=g, dtype=torch.float64), decimals=1)  # scores on the threshold
    target = torch.rand(n, labels, generator=g) < 0.4
    got = multilabel_confusion(scores, target, threshold=threshold)
    assert got.dtype == torch.int64 and got.shape == (labels, 2, 2)
    y, pred = target.numpy().astype(int), (scores.numpy() >= threshold).astype(int)
    if labels == 1:  # scikit-learn reads an [N, 1] indicator as a binary column vector
        expected = skm.multilabel_confusion_matrix(y.ravel(), pred.ravel(), labels=[1])
    else:
        expected = skm.multilabel_confusion_matrix(y, pred)
    assert (got.numpy() == expected).all()


def test_multilabel_confusion_bad_target() -> None:
    with pytest.raises(ValueError, match=r"target must be 0 or 1; got 3 at \(1, 0\)"):
        multilabel_confusion(torch.zeros(2, 2), torch.tensor([[0, 1], [3, 0]]))
    with pytest.raises(TypeError, match=r"target must be bool or integer 0/1; got dtype torch\.float32"):
        multilabel_confusion(torch.zeros(2, 2), torch.zeros(2, 2))


# --------------------------------------------------------------------------------------------
# ScoreAccumulator
# --------------------------------------------------------------------------------------------


def reported(probs: torch.Tensor, target: torch.Tensor, k: int) -> dict[str, float]:
    """What compute() must give: the public functions of the whole data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"top5_accuracy": float(top_k_accuracy(probs, target, k=5))} if k > 5 else {}
        out |= {
            "log_loss": float(log_loss(probs, target)),
            "roc_auc_macro": float(roc_auc(probs, target)),
            "average_precision_macro": float(average_precision(probs, target)),
            "ece": float(expected_calibration_error(probs, target)),
        }
    return out


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])) for k in a)


@FEW
@given(scored(), st.lists(st.integers(0, 40), max_size=4))
def test_accumulator_streamed_updates_equal_one_call(data: tuple, cuts: list[int]) -> None:
    probs, target, k = data
    n = target.numel()
    bounds = [0, *sorted(min(c, n) for c in cuts), n]
    streamed = ScoreAccumulator(k)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        streamed.update(probs[start:stop], target[start:stop])  # includes empty batches
    values = quiet(streamed.compute)
    assert same(values, reported(probs, target, k))
    assert ("top5_accuracy" in values) == (k > 5)


@FEW
@given(scored(), st.integers(0, 40))
def test_accumulator_merge_of_halves_equals_whole(data: tuple, cut: int) -> None:
    probs, target, k = data
    cut = min(cut, target.numel())
    first, second = ScoreAccumulator(k), ScoreAccumulator(k)
    first.update(probs[:cut], target[:cut])
    second.update(probs[cut:], target[cut:])
    second_chunks = len(second.probs)
    merged = first.merge(second)
    assert merged is first and len(second.probs) == second_chunks
    assert same(quiet(merged.compute), reported(probs, target, k))


def test_accumulator_errors_and_warnings() -> None:
    acc = ScoreAccumulator(3)
    with pytest.raises(ValueError, match=r"no samples; call update\(\)"):
        acc.compute()
    with pytest.raises(ValueError, match=r"probs must have num_classes=3 columns; got 2"):
        acc.update(GOOD, torch.tensor([0, 1, 1]))
    assert acc.probs == []  # a rejected batch adds nothing
    with pytest.raises(ValueError, match=r"cannot merge accumulators of 3 and 4 classes"):
        acc.merge(ScoreAccumulator(4))
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 2; got 1"):
        ScoreAccumulator(1)
    acc.update(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]), torch.tensor([0, 2]))
    with pytest.warns(UndefinedMetricWarning, match=r"undefined for classes \[1\]") as caught:
        values = acc.compute()
    assert all(w.filename == __file__ for w in caught)
    assert sorted(values) == ["average_precision_macro", "ece", "log_loss", "roc_auc_macro"]
    assert values["roc_auc_macro"] == 1.0
