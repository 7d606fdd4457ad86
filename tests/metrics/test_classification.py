"""Tests for visionbench/metrics/classification.py.

Oracle: scikit-learn's ``confusion_matrix``, ``precision_recall_fscore_support``,
``accuracy_score`` and ``balanced_accuracy_score`` with ``labels=range(K)``, on
hypothesis-generated labels (K from 1 to 12, classes absent from the predictions or from the
targets, a single class, N = 1 …). Properties: batched ``[R, K, K]`` == a loop over R,
k streamed updates == one call, merging two halves == the whole, logits == their argmax.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning as SkUndefinedMetricWarning

from visionbench.metrics import (
    ConfusionMatrixAccumulator,
    UndefinedMetricWarning,
    accuracy_from_confusion,
    balanced_accuracy_from_confusion,
    confusion_matrix,
    log_loss_terms,
    metric_tensors_from_confusion,
    metrics_from_confusion,
    precision_recall_f1_from_confusion,
)

FAST = settings(max_examples=20, deadline=None)
AVERAGES = ("micro", "macro", "weighted", "none")
METRIC_NAMES = {
    "accuracy", "balanced_accuracy",
    *(f"{m}_{a}" for m in ("precision", "recall", "f1") for a in ("macro", "micro", "weighted")),
    "cohen_kappa", "matthews_corrcoef", "specificity_macro",
}


# --------------------------------------------------------------------------------------------
# Inputs and helpers
# --------------------------------------------------------------------------------------------


@st.composite
def labelled(draw: st.DrawFn, min_n: int = 1, max_n: int = 40) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(preds [N], target [N], K)``: each side drawn from its own subset of the K classes (so
    some classes are absent from preds, target or both), preds often equal to the target."""
    k = draw(st.integers(1, 12))
    n = draw(st.integers(min_n, max_n))
    target_classes = draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=k, unique=True))
    pred_classes = draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=k, unique=True))
    target = draw(st.lists(st.sampled_from(target_classes), min_size=n, max_size=n))
    guesses = draw(st.lists(st.sampled_from(pred_classes), min_size=n, max_size=n))
    correct = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    preds = [t if c else g for t, g, c in zip(target, guesses, correct, strict=True)]
    return torch.tensor(preds, dtype=torch.int64), torch.tensor(target, dtype=torch.int64), k


def sk_zero_division(zero_division: object) -> object:
    """visionbench spells NaN as the string ``"nan"``; scikit-learn takes ``np.nan``."""
    return np.nan if zero_division == "nan" else zero_division


def sk_prf(preds: torch.Tensor, target: torch.Tensor, k: int, average: str, zero_division: object) -> tuple:
    p, r, f, _ = skm.precision_recall_fscore_support(
        target.numpy(), preds.numpy(), labels=list(range(k)),
        average=None if average == "none" else average, zero_division=sk_zero_division(zero_division),
    )
    return p, r, f


def assert_close(actual: object, expected: object, what: str) -> None:
    """Equal to 1e-12 relative, NaN == NaN, shapes equal."""
    a = np.asarray(actual.numpy() if isinstance(actual, torch.Tensor) else actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} vs scikit-learn {e.shape}"
    assert np.allclose(a, e, rtol=1e-12, atol=0.0, equal_nan=True), f"{what}: {a} vs scikit-learn {e}"


def record(fn: object, *args: object, **kwargs: object) -> tuple[object, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, caught


# --------------------------------------------------------------------------------------------
# confusion_matrix
# --------------------------------------------------------------------------------------------


@FAST
@given(labelled())
def test_confusion_matrix_matches_sklearn(data: tuple[torch.Tensor, torch.Tensor, int]) -> None:
    preds, target, k = data
    cm = confusion_matrix(preds, target, k)
    assert cm.dtype == torch.int64 and cm.shape == (k, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "A single label was found …" for K = 1
        expected = skm.confusion_matrix(target.numpy(), preds.numpy(), labels=list(range(k)))
    assert (cm.numpy() == expected).all(), f"{cm} vs {expected}"


@FAST
@given(labelled(), st.randoms(use_true_random=False))
def test_confusion_matrix_invariant_to_sample_order(data: tuple, rnd: object) -> None:
    preds, target, k = data
    order = list(range(preds.numel()))
    rnd.shuffle(order)
    order = torch.tensor(order, dtype=torch.int64)
    assert torch.equal(confusion_matrix(preds[order], target[order], k), confusion_matrix(preds, target, k))


@pytest.mark.parametrize("k", [1, 3, 12])
def test_confusion_matrix_empty_is_zeros(k: int) -> None:
    empty = torch.zeros(0, dtype=torch.int64)
    cm = confusion_matrix(empty, empty, k)
    assert cm.shape == (k, k) and cm.dtype == torch.int64 and int(cm.sum()) == 0


def test_confusion_matrix_docstring_example_and_layout() -> None:
    # Row = true class, column = predicted class (scikit-learn's layout).
    cm = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2)
    assert cm.tolist() == [[1, 1], [0, 1]]
    cm = confusion_matrix(torch.tensor([2]), torch.tensor([0]), 3)
    assert cm[0, 2] == 1 and int(cm.sum()) == 1


def test_confusion_matrix_flattens_any_shape() -> None:
    preds = torch.tensor([[0, 1], [2, 2]])
    target = torch.tensor([[0, 2], [2, 1]])
    assert torch.equal(confusion_matrix(preds, target, 3), confusion_matrix(preds.flatten(), target.flatten(), 3))


@pytest.mark.parametrize(
    ("preds", "target", "message"),
    [
        ([0, 1, 3], [0, 1, 2], r"preds must be in \[0, 3\); got 3\. Check num_classes"),
        ([0, -1, 2], [0, 1, 2], r"preds must be in \[0, 3\); got -1"),
        ([0, 1, 2], [0, 7, 2], r"target must be in \[0, 3\); got 7\. Check num_classes"),
        ([0, 1, 2], [-2, 1, 2], r"target must be in \[0, 3\); got -2"),
    ],
)
def test_confusion_matrix_out_of_range_labels(preds: list[int], target: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        confusion_matrix(torch.tensor(preds), torch.tensor(target), 3)
    acc = ConfusionMatrixAccumulator(3)
    with pytest.raises(ValueError, match=message):
        acc.update(torch.tensor(preds), torch.tensor(target))
    assert int(acc.matrix.sum()) == 0  # a rejected batch adds nothing


def test_confusion_matrix_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match=r"preds and target must have the same length; got 3 and 2"):
        confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match=r"same length; got 0 and 1"):
        confusion_matrix(torch.zeros(0, dtype=torch.int64), torch.tensor([1]), 2)
    with pytest.raises(ValueError, match=r"same length; got 2 and 3"):
        ConfusionMatrixAccumulator(2).update(torch.tensor([0, 1]), torch.tensor([0, 1, 1]))


# --------------------------------------------------------------------------------------------
# precision / recall / F1
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_division", [0, 1, "nan"])
@pytest.mark.parametrize("average", AVERAGES)
@FAST
@given(data=labelled())
def test_precision_recall_f1_match_sklearn(data: tuple, average: str, zero_division: object) -> None:
    preds, target, k = data
    cm = confusion_matrix(preds, target, k)
    (p, r, f), caught = record(precision_recall_f1_from_confusion, cm, average=average, zero_division=zero_division)
    assert not [w for w in caught if issubclass(w.category, UndefinedMetricWarning)], (
        "zero_division other than 'warn' must not warn"
    )
    assert p.dtype == r.dtype == f.dtype == torch.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp, sr, sf = sk_prf(preds, target, k, average, zero_division)
    where = f"average={average!r} zero_division={zero_division!r} K={k} cm={cm.tolist()}"
    assert_close(p, sp, f"precision {where}")
    assert_close(r, sr, f"recall {where}")
    assert_close(f, sf, f"f1 {where}")


@pytest.mark.parametrize("average", AVERAGES)
@FAST
@given(data=labelled())
def test_zero_division_warn_matches_sklearn_values_and_warnings(data: tuple, average: str) -> None:
    preds, target, k = data
    cm = confusion_matrix(preds, target, k)
    (p, r, f), ours = record(precision_recall_f1_from_confusion, cm, average=average, zero_division="warn")
    (sp, sr, sf), theirs = record(sk_prf, preds, target, k, average, "warn")
    where = f"average={average!r} K={k} cm={cm.tolist()}"
    # "warn" gives scikit-learn's values, i.e. those of zero_division=0.
    assert_close(p, sp, f"precision {where}")
    assert_close(r, sr, f"recall {where}")
    assert_close(f, sf, f"f1 {where}")
    zero = precision_recall_f1_from_confusion(cm, average=average, zero_division=0)
    for got, want in zip((p, r, f), zero, strict=True):
        assert torch.equal(got, want)

    our_warnings = [w for w in ours if issubclass(w.category, UndefinedMetricWarning)]
    sk_warned = any(issubclass(w.category, SkUndefinedMetricWarning) for w in theirs)
    assert bool(our_warnings) == sk_warned, f"warned {bool(our_warnings)} vs scikit-learn {sk_warned}: {where}"
    for w in our_warnings:
        # stacklevel points at the caller of the public function, not into visionbench.
        assert w.filename == __file__, w.filename
        assert "zero_division" in str(w.message)
        assert not issubclass(w.category, SkUndefinedMetricWarning)  # visionbench's own class
    # Which metric warns matches too (scikit-learn: "Precision is", "Recall is", "F-score is").
    for name, sk_name in (("Precision", "Precision is"), ("Recall", "Recall is"), ("F-score", "F-score is")):
        ours_named = any(str(w.message).startswith(name) for w in our_warnings)
        theirs_named = any(sk_name in str(w.message) for w in theirs if issubclass(w.category, SkUndefinedMetricWarning))
        assert ours_named == theirs_named, f"{name}: ours {ours_named} vs scikit-learn {theirs_named}: {where}"


def test_zero_division_warn_is_the_default() -> None:
    cm = confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 1]), 3)  # class 2 never seen
    with pytest.warns(UndefinedMetricWarning, match="zero_division"):
        precision_recall_f1_from_confusion(cm)


def test_precision_recall_f1_hand_computed() -> None:
    # target 0 0 1 1 2 ; preds 0 1 1 1 0
    cm = confusion_matrix(torch.tensor([0, 1, 1, 1, 0]), torch.tensor([0, 0, 1, 1, 2]), 3)
    p, r, f = precision_recall_f1_from_confusion(cm, average="none", zero_division=0)
    assert p.tolist() == pytest.approx([1 / 2, 2 / 3, 0.0])
    assert r.tolist() == pytest.approx([1 / 2, 1.0, 0.0])
    assert f.tolist() == pytest.approx([1 / 2, 4 / 5, 0.0])
    p, r, f = precision_recall_f1_from_confusion(cm, average="micro", zero_division=0)
    assert float(p) == float(r) == float(f) == pytest.approx(3 / 5)


# --------------------------------------------------------------------------------------------
# accuracy and balanced accuracy
# --------------------------------------------------------------------------------------------


@FAST
@given(labelled())
def test_accuracy_matches_sklearn(data: tuple) -> None:
    preds, target, k = data
    got = accuracy_from_confusion(confusion_matrix(preds, target, k))
    assert got.dtype == torch.float64 and got.shape == ()
    assert_close(got, skm.accuracy_score(target.numpy(), preds.numpy()), "accuracy")


@FAST
@given(labelled())
def test_balanced_accuracy_matches_sklearn(data: tuple) -> None:
    preds, target, k = data
    cm = confusion_matrix(preds, target, k)
    got = balanced_accuracy_from_confusion(cm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        expected = skm.balanced_accuracy_score(target.numpy(), preds.numpy())
    assert_close(got, expected, f"balanced accuracy cm={cm.tolist()}")
    # Definition: mean recall over the classes present in the target only.
    present = sorted(set(target.tolist()))
    recalls = [float((preds[target == c] == c).double().mean()) for c in present]
    assert float(got) == pytest.approx(sum(recalls) / len(recalls), rel=1e-12)


def test_balanced_accuracy_ignores_classes_absent_from_target() -> None:
    # Class 2 is predicted but never true: sklearn drops it; averaging over all K would give 2/3.
    cm = confusion_matrix(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]), 3)
    assert float(balanced_accuracy_from_confusion(cm)) == pytest.approx((1 + 0.5) / 2)


@pytest.mark.parametrize("k", [1, 4])
def test_empty_confusion_matrix_gives_defined_zeros(k: int) -> None:
    cm = torch.zeros(k, k, dtype=torch.int64)
    assert float(accuracy_from_confusion(cm)) == 0.0
    assert float(balanced_accuracy_from_confusion(cm)) == 0.0
    for average in AVERAGES:
        for value in precision_recall_f1_from_confusion(cm, average=average, zero_division=0):
            assert torch.all(value == 0.0)
    for average in AVERAGES:
        # Weighted: all weights are 0, so the plain mean (scikit-learn's _nanaverage fallback).
        for value in precision_recall_f1_from_confusion(cm, average=average, zero_division=1):
            assert torch.all(value == 1.0)
    for average in AVERAGES:
        for value in precision_recall_f1_from_confusion(cm, average=average, zero_division="nan"):
            assert torch.all(torch.isnan(value))
    values, caught = record(metrics_from_confusion, cm)
    assert values == {name: 0.0 for name in METRIC_NAMES}
    assert not [w for w in caught if issubclass(w.category, UndefinedMetricWarning)]


# --------------------------------------------------------------------------------------------
# Batched [R, K, K] == loop over R
# --------------------------------------------------------------------------------------------


@st.composite
def batched_matrices(draw: st.DrawFn) -> torch.Tensor:
    r = draw(st.integers(1, 6))
    k = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    cm = torch.randint(0, 4, (r, k, k), generator=g)
    cm = cm * (torch.rand(r, k, k, generator=g) < 0.5)  # many zero rows and columns
    if draw(st.booleans()):
        cm[0] = 0  # an empty resample
    return cm


@settings(max_examples=15, deadline=None)
@given(batched_matrices())
def test_batched_equals_loop(cm: torch.Tensor) -> None:
    def same(batched: torch.Tensor, singles: list[torch.Tensor], what: str) -> None:
        torch.testing.assert_close(batched, torch.stack(singles), rtol=1e-12, atol=0.0, equal_nan=True, msg=what)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        same(accuracy_from_confusion(cm), [accuracy_from_confusion(m) for m in cm], "accuracy")
        same(balanced_accuracy_from_confusion(cm), [balanced_accuracy_from_confusion(m) for m in cm], "balanced")
        for average in AVERAGES:
            for zero_division in ("warn", 0, 1, "nan"):
                batched = precision_recall_f1_from_confusion(cm, average=average, zero_division=zero_division)
                singles = [precision_recall_f1_from_confusion(m, average=average, zero_division=zero_division) for m in cm]
                expected_shape = (cm.shape[0], cm.shape[1]) if average == "none" else (cm.shape[0],)
                for i, name in enumerate(("precision", "recall", "f1")):
                    assert batched[i].shape == expected_shape
                    same(batched[i], [s[i] for s in singles], f"{name} {average} {zero_division}")
        tensors = metric_tensors_from_confusion(cm)
        assert set(tensors) == METRIC_NAMES
        singles = [metrics_from_confusion(m) for m in cm]
        for name, values in tensors.items():
            assert values.shape == (cm.shape[0],)
            same(values, [torch.tensor(s[name], dtype=torch.float64) for s in singles], name)


# --------------------------------------------------------------------------------------------
# metrics_from_confusion
# --------------------------------------------------------------------------------------------


@FAST
@given(labelled())
def test_metrics_from_confusion_keys_and_values(data: tuple) -> None:
    preds, target, k = data
    cm = confusion_matrix(preds, target, k)
    values, caught = record(metrics_from_confusion, cm)
    assert set(values) == METRIC_NAMES
    assert all(type(v) is float for v in values.values())
    assert not [w for w in caught if issubclass(w.category, UndefinedMetricWarning)], "reported metrics are silent"
    y_true, y_pred = target.numpy(), preds.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_close(values["accuracy"], skm.accuracy_score(y_true, y_pred), "accuracy")
        assert_close(values["balanced_accuracy"], skm.balanced_accuracy_score(y_true, y_pred), "balanced_accuracy")
        for average in ("macro", "micro", "weighted"):
            sp, sr, sf = sk_prf(preds, target, k, average, 0)
            assert_close(values[f"precision_{average}"], sp, f"precision_{average}")
            assert_close(values[f"recall_{average}"], sr, f"recall_{average}")
            assert_close(values[f"f1_{average}"], sf, f"f1_{average}")


# --------------------------------------------------------------------------------------------
# log_loss_terms
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@FAST
@given(
    k=st.integers(2, 8),
    n=st.integers(1, 30),
    scale=st.sampled_from([0.1, 1.0, 10.0, 100.0]),  # 100: probabilities underflow to the clip
    seed=st.integers(0, 2**31 - 1),
)
def test_log_loss_terms_mean_matches_sklearn(dtype: torch.dtype, k: int, n: int, scale: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(scale * torch.randn(n, k, generator=g, dtype=torch.float64), dim=1).to(dtype)
    target = torch.randint(0, k, (n,), generator=g)
    terms = log_loss_terms(probs, target)
    assert terms.shape == (n,) and terms.dtype == torch.float64
    assert torch.isfinite(terms).all() and (terms >= 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float32 rows may not sum to 1 within sqrt(eps)
        expected = skm.log_loss(target.numpy(), probs.numpy(), labels=list(range(k)))
    # scikit-learn computes the log in the probabilities' dtype, visionbench in float64: for
    # float32, -log(p) near p = 1 carries float32's absolute rounding (~1e-7) on sklearn's side.
    rel, abs_ = (1e-9, 1e-12) if dtype == torch.float64 else (1e-5, 1e-6)
    assert float(terms.mean()) == pytest.approx(expected, rel=rel, abs=abs_)


def test_log_loss_terms_values_and_clipping() -> None:
    probs = torch.tensor([[0.25, 0.75], [1.0, 0.0], [2.0, 6.0]], dtype=torch.float64)
    terms = log_loss_terms(probs, torch.tensor([1, 1, 0]))
    eps = torch.finfo(torch.float64).eps
    assert terms[0].item() == pytest.approx(-np.log(0.75), rel=1e-15)
    assert terms[1].item() == pytest.approx(-np.log(eps), rel=1e-12)  # a confident mistake: large, finite
    assert terms[2].item() == pytest.approx(-np.log(0.25), rel=1e-15)  # rows are renormalised


# --------------------------------------------------------------------------------------------
# ConfusionMatrixAccumulator
# --------------------------------------------------------------------------------------------


@FAST
@given(labelled(min_n=0), st.lists(st.integers(0, 60), max_size=5))
def test_accumulator_streamed_updates_equal_one_call(data: tuple, cuts: list[int]) -> None:
    preds, target, k = data
    n = preds.numel()
    bounds = [0, *sorted(min(c, n) for c in cuts), n]
    streamed = ConfusionMatrixAccumulator(k)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        streamed.update(preds[start:stop], target[start:stop])  # includes empty batches
    whole = ConfusionMatrixAccumulator(k)
    whole.update(preds, target)
    assert torch.equal(streamed.matrix, whole.matrix)
    assert torch.equal(whole.matrix, confusion_matrix(preds, target, k))
    assert streamed.compute() == whole.compute() == metrics_from_confusion(whole.matrix)


@FAST
@given(labelled(min_n=0), st.integers(0, 60))
def test_accumulator_merge_of_halves_equals_whole(data: tuple, cut: int) -> None:
    preds, target, k = data
    cut = min(cut, preds.numel())
    first, second = ConfusionMatrixAccumulator(k), ConfusionMatrixAccumulator(k)
    first.update(preds[:cut], target[:cut])
    second.update(preds[cut:], target[cut:])
    second_before = second.matrix.clone()
    merged = first.merge(second)
    assert merged is first
    assert torch.equal(merged.matrix, confusion_matrix(preds, target, k))
    assert torch.equal(second.matrix, second_before)  # the other side is left alone
    assert merged.compute() == metrics_from_confusion(confusion_matrix(preds, target, k))


@FAST
@given(labelled(), st.integers(0, 2**31 - 1))
def test_accumulator_logits_equal_argmax(data: tuple, seed: int) -> None:
    _, target, k = data
    logits = torch.randn(target.numel(), k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    from_logits, from_classes = ConfusionMatrixAccumulator(k), ConfusionMatrixAccumulator(k)
    from_logits.update(logits, target)
    from_classes.update(logits.argmax(dim=1), target)
    assert torch.equal(from_logits.matrix, from_classes.matrix)
    assert int(from_logits.matrix.sum()) == target.numel()


def test_accumulator_starts_empty_and_computes_zeros() -> None:
    acc = ConfusionMatrixAccumulator(4)
    assert acc.matrix.shape == (4, 4) and acc.matrix.dtype == torch.int64 and int(acc.matrix.sum()) == 0
    assert acc.compute() == {name: 0.0 for name in METRIC_NAMES}


def test_accumulator_docstring_example() -> None:
    acc = ConfusionMatrixAccumulator(3)
    acc.update(torch.tensor([0, 2]), torch.tensor([0, 1]))
    assert acc.compute()["accuracy"] == 0.5


def test_accumulator_merge_different_num_classes_raises() -> None:
    with pytest.raises(ValueError, match=r"cannot merge accumulators of 3 and 4 classes"):
        ConfusionMatrixAccumulator(3).merge(ConfusionMatrixAccumulator(4))


def test_accumulator_logits_with_wrong_width_raise() -> None:
    # Logits of 5 classes into a 3-class accumulator: argmax can reach 3 or 4.
    logits = torch.zeros(2, 5)
    logits[:, 4] = 1.0
    with pytest.raises(ValueError, match=r"preds must be in \[0, 3\); got 4"):
        ConfusionMatrixAccumulator(3).update(logits, torch.tensor([0, 1]))


# --------------------------------------------------------------------------------------------
# F-beta, specificity, Cohen's kappa, Matthews' coefficient
# --------------------------------------------------------------------------------------------

BETAS = (0.0, 0.5, 1.0, 2.0, float("inf"))


@pytest.mark.parametrize("average", AVERAGES)
@FAST
@given(data=labelled(), drawn_beta=st.sampled_from(BETAS), zero_division=st.sampled_from([0, 1, "nan"]))
def test_fbeta_matches_sklearn(data: tuple, average: str, drawn_beta: float, zero_division: object) -> None:
    from visionbench.metrics import fbeta_from_confusion

    preds, target, k = data
    cm = confusion_matrix(preds, target, k)
    for beta in (drawn_beta, 1.0):
        got, caught = record(fbeta_from_confusion, cm, beta=beta, average=average, zero_division=zero_division)
        assert not [w for w in caught if issubclass(w.category, UndefinedMetricWarning)]
        assert got.dtype == torch.float64
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = skm.fbeta_score(
                target.numpy(), preds.numpy(), beta=beta, labels=list(range(k)),
                average=None if average == "none" else average, zero_division=sk_zero_division(zero_division),
            )
        assert_close(got, expected, f"fbeta beta={beta} average={average!r} zd={zero_division!r} cm={cm.tolist()}")


def test_fbeta_one_is_f1_and_warns_and_rejects_bad_beta() -> None:
    from visionbench.metrics import fbeta_from_confusion

    cm = confusion_matrix(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 0, 1, 1]), 3)  # class 2 unseen
    with pytest.warns(UndefinedMetricWarning, match=r"^F-score is ill-defined.*zero_division"):
        f = fbeta_from_confusion(cm, beta=1.0, average="none")
    assert torch.equal(f, precision_recall_f1_from_confusion(cm, average="none", zero_division=0)[2])
    for beta in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=r"beta must be >= 0; got"):
            fbeta_from_confusion(cm, beta=beta)


def sk_specificity(preds: torch.Tensor, target: torch.Tensor, k: int, average: str, zero_division: object) -> object:
    """Oracle: TN / (TN + FP) from scikit-learn's multilabel_confusion_matrix, averaged in NumPy."""
    mcm = skm.multilabel_confusion_matrix(target.numpy(), preds.numpy(), labels=list(range(k))).astype(np.float64)
    tn, fp, support = mcm[:, 0, 0], mcm[:, 0, 1], mcm[:, 1, 0] + mcm[:, 1, 1]
    fill = np.nan if zero_division == "nan" else float(zero_division)
    if average == "micro":
        return tn.sum() / (tn + fp).sum() if (tn + fp).sum() else fill
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(tn + fp > 0, tn / (tn + fp), fill)
    if average == "none":
        return per_class
    valid = ~np.isnan(per_class)
    if not valid.any():
        return np.nan
    if average == "weighted" and support[valid].sum() > 0:
        return np.average(per_class[valid], weights=support[valid])
    return per_class[valid].mean()


@pytest.mark.parametrize("zero_division", [0, 1, "nan"])
@pytest.mark.parametrize("average", AVERAGES)
@FAST
@given(data=labelled())
def test_specificity_matches_sklearn_multilabel_confusion(data: tuple, average: str, zero_division: object) -> None:
    from visionbench.metrics import specificity_from_confusion

    preds, target, k = data
    cm = confusion_matrix(preds, target, k)
    got, caught = record(specificity_from_confusion, cm, average=average, zero_division=zero_division)
    assert not [w for w in caught if issubclass(w.category, UndefinedMetricWarning)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = sk_specificity(preds, target, k, average, zero_division)
    assert_close(got, expected, f"specificity average={average!r} zd={zero_division!r} cm={cm.tolist()}")


def test_specificity_hand_computed_and_warns() -> None:
    from visionbench.metrics import specificity_from_confusion

    # target 0 0 1 1 2 ; preds 0 1 1 1 0: class 0 has negatives {1,1,2} with one predicted 0.
    cm = confusion_matrix(torch.tensor([0, 1, 1, 1, 0]), torch.tensor([0, 0, 1, 1, 2]), 3)
    assert specificity_from_confusion(cm, average="none").tolist() == pytest.approx([2 / 3, 2 / 3, 1.0])
    only_one_class = confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 0]), 2)  # class 0: no negatives
    with pytest.warns(UndefinedMetricWarning, match=r"^Specificity is ill-defined.*zero_division"):
        values = specificity_from_confusion(only_one_class, average="none")
    assert values.tolist() == [0.0, 1.0]


@FAST
@given(labelled())
def test_cohen_kappa_equals_sklearn_bit_for_bit(data: tuple) -> None:
    from visionbench.metrics import cohen_kappa_from_confusion

    preds, target, k = data
    cm = confusion_matrix(preds, target, k)
    got, ours = record(cohen_kappa_from_confusion, cm)
    expected, theirs = record(skm.cohen_kappa_score, target.numpy(), preds.numpy(), labels=list(range(k)))
    assert got.dtype == torch.float64 and got.shape == ()
    # Same operations in the same order (NumPy's pairwise sum for the expected disagreement): ==.
    assert float(got) == expected or (np.isnan(float(got)) and np.isnan(expected)), f"{float(got)!r} vs {expected!r} cm={cm.tolist()}"
    sk_undefined = any(issubclass(w.category, SkUndefinedMetricWarning) for w in theirs)
    our_undefined = [w for w in ours if issubclass(w.category, UndefinedMetricWarning)]
    assert bool(our_undefined) == sk_undefined
    assert all(w.filename == __file__ for w in our_undefined)
    # Cohen's kappa is symmetric in the two raters (up to the order of the sum).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        swapped = cohen_kappa_from_confusion(cm.T)
    torch.testing.assert_close(swapped, got, rtol=1e-12, atol=1e-15, equal_nan=True)


@pytest.mark.parametrize(
    "cm", [[[0, 0], [0, 0]], [[5, 0], [0, 0]], [[0, 0, 0], [0, 3, 0], [0, 0, 0]]], ids=["empty", "class0", "class1"]
)
def test_cohen_kappa_undefined_is_nan_with_warning(cm: list) -> None:
    from visionbench.metrics import cohen_kappa_from_confusion

    cm = torch.tensor(cm)
    with pytest.warns(UndefinedMetricWarning, match=r"kappa is undefined.*replace_undefined_by"):
        assert torch.isnan(cohen_kappa_from_confusion(cm))
    with pytest.warns(UndefinedMetricWarning):
        assert float(cohen_kappa_from_confusion(cm, replace_undefined_by=0.0)) == 0.0
    # scikit-learn 1.9 gives NaN too (for "empty" it raises on y1 = [] instead).
    if int(cm.sum()):
        labels = torch.arange(cm.shape[0])
        y1 = labels.repeat_interleave(cm.sum(1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert np.isnan(skm.cohen_kappa_score(y1.numpy(), y1.numpy(), labels=labels.tolist()))


@FAST
@given(labelled())
def test_matthews_corrcoef_equals_sklearn_bit_for_bit(data: tuple) -> None:
    from visionbench.metrics import matthews_corrcoef_from_confusion

    preds, target, k = data
    cm = confusion_matrix(preds, target, k)
    got, ours = record(matthews_corrcoef_from_confusion, cm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = skm.matthews_corrcoef(target.numpy(), preds.numpy())
    assert got.dtype == torch.float64 and got.shape == ()
    assert float(got) == expected, f"{float(got)!r} vs {expected!r} cm={cm.tolist()}"
    undefined = [w for w in ours if issubclass(w.category, UndefinedMetricWarning)]
    single_class = len(set(target.tolist())) == 1 or len(set(preds.tolist())) == 1
    assert bool(undefined) == single_class, f"warned {bool(undefined)}, cm={cm.tolist()}"
    if undefined:
        assert float(got) == 0.0 and all(w.filename == __file__ for w in undefined)


@pytest.mark.parametrize("cm", [[[0, 0], [0, 0]], [[3, 2], [0, 0]], [[3, 0], [2, 0]]], ids=["empty", "one-true", "one-pred"])
def test_matthews_corrcoef_undefined_is_zero_with_warning(cm: list) -> None:
    from visionbench.metrics import matthews_corrcoef_from_confusion

    with pytest.warns(UndefinedMetricWarning, match=r"Matthews correlation coefficient is undefined"):
        assert float(matthews_corrcoef_from_confusion(torch.tensor(cm))) == 0.0


@settings(max_examples=15, deadline=None)
@given(batched_matrices())
def test_new_metrics_batched_equal_loop(cm: torch.Tensor) -> None:
    from visionbench.metrics import (
        cohen_kappa_from_confusion,
        fbeta_from_confusion,
        matthews_corrcoef_from_confusion,
        specificity_from_confusion,
    )

    functions = {
        "kappa": cohen_kappa_from_confusion,
        "mcc": matthews_corrcoef_from_confusion,
        **{f"spec {a}": (lambda m, a=a: specificity_from_confusion(m, average=a, zero_division="nan")) for a in AVERAGES},
        **{f"f2 {a}": (lambda m, a=a: fbeta_from_confusion(m, beta=2.0, average=a, zero_division=1)) for a in AVERAGES},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for name, fn in functions.items():
            batched = fn(cm)
            assert batched.shape[0] == cm.shape[0], name
            torch.testing.assert_close(batched, torch.stack([fn(m) for m in cm]), rtol=0.0, atol=0.0, equal_nan=True, msg=name)


@FAST
@given(labelled())
def test_metric_tensors_new_keys_match_sklearn(data: tuple) -> None:
    preds, target, k = data
    values, caught = record(metrics_from_confusion, confusion_matrix(preds, target, k))
    assert not [w for w in caught if issubclass(w.category, UndefinedMetricWarning)], "reported metrics are silent"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = skm.cohen_kappa_score(target.numpy(), preds.numpy(), labels=list(range(k)))
        mcc = skm.matthews_corrcoef(target.numpy(), preds.numpy())
        specificity = sk_specificity(preds, target, k, "macro", 0)
    assert values["cohen_kappa"] == (0.0 if np.isnan(kappa) else kappa)  # undefined reported as 0.0
    assert values["matthews_corrcoef"] == mcc
    assert_close(values["specificity_macro"], specificity, "specificity_macro")


def test_higher_is_better_covers_reported_names() -> None:
    from visionbench.metrics import HIGHER_IS_BETTER

    assert METRIC_NAMES <= set(HIGHER_IS_BETTER)
    assert HIGHER_IS_BETTER["cohen_kappa"] and HIGHER_IS_BETTER["matthews_corrcoef"] and HIGHER_IS_BETTER["specificity_macro"]
