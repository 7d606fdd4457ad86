"""Tests for visionbench/metrics/multilabel.py.

Oracle: scikit-learn's ``precision_recall_fscore_support`` (per label, micro, macro, samples),
``accuracy_score`` and ``hamming_loss`` on multi-hot rows, and ``average_precision_score``
(per label; mAP = mean over labels with a positive), to 1e-12, on hypothesis-generated scores:
N from 1, L from 2 to 6, labels never positive or always positive, many ties (scores on a 0.1
grid, including exactly the threshold). Properties: ``[R, N]`` weights == one call per resample
on repeated rows; sample order does not matter.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from visionbench.metrics import UndefinedMetricWarning
from visionbench.metrics.multilabel import (
    MULTILABEL_HIGHER_IS_BETTER,
    multilabel_intervals,
    multilabel_metric_tensors,
    multilabel_report,
    per_label_average_precision,
)

SETTINGS = settings(max_examples=60, deadline=None)
FEW = settings(max_examples=15, deadline=None)


@st.composite
def multilabel(draw: st.DrawFn, max_n: int = 30, max_l: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores [N, L], target [N, L])``: scores uniform or on a 0.1 grid (ties, exact 0.5);
    each label column is random, never positive or always positive."""
    n = draw(st.integers(1, max_n))
    num_labels = draw(st.integers(2, max_l))  # scikit-learn reads one column as binary, not multi-label
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scores = rng.random((n, num_labels))
    if draw(st.booleans()):
        scores = np.round(scores * 10) / 10  # ties across rows, and scores exactly at the threshold
    target = (rng.random((n, num_labels)) < draw(st.sampled_from([0.2, 0.5, 0.8]))).astype(np.int64)
    for column in range(num_labels):
        kind = draw(st.sampled_from(["random", "random", "never", "always"]))
        if kind != "random":
            target[:, column] = int(kind == "always")
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return torch.tensor(scores, dtype=dtype), torch.tensor(target)


def _close(got: torch.Tensor | float, expected: object) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               rtol=1e-12, atol=1e-12)


def _quiet(fn, *args, **kwargs):  # noqa: ANN001, ANN202 - a tiny wrapper for oracle calls
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@SETTINGS
@given(multilabel(), st.sampled_from([0, 1, "warn"]))
def test_thresholded_metrics_match_sklearn(data: tuple, zero_division: object) -> None:
    scores, target = data
    y, pred = target.numpy(), (scores >= 0.5).numpy().astype(np.int64)
    got = _quiet(multilabel_metric_tensors, scores, target, zero_division=zero_division)
    p, r, f, s = _quiet(skm.precision_recall_fscore_support, y, pred, average=None, zero_division=zero_division)
    _close(got["precision"], p)
    _close(got["recall"], r)
    _close(got["f1"], f)
    _close(got["support"], s)
    for average in ("micro", "macro"):
        p, r, f, _ = _quiet(skm.precision_recall_fscore_support, y, pred, average=average, zero_division=zero_division)
        _close(got[f"precision_{average}"], p)
        _close(got[f"recall_{average}"], r)
        _close(got[f"f1_{average}"], f)
    _close(got["f1_samples"], _quiet(skm.f1_score, y, pred, average="samples", zero_division=zero_division))
    _close(got["subset_accuracy"], skm.accuracy_score(y, pred))
    _close(got["hamming_loss"], skm.hamming_loss(y, pred))


@SETTINGS
@given(multilabel())
def test_average_precision_matches_sklearn(data: tuple) -> None:
    scores, target = data
    y, s = target.numpy(), scores.double().numpy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = multilabel_metric_tensors(scores, target, zero_division=0)
    has_positive = y.sum(0) > 0
    expected = [skm.average_precision_score(y[:, l], s[:, l]) if has_positive[l] else np.nan
                for l in range(y.shape[1])]  # noqa: E741
    _close(got["ap"], expected)
    _close(per_label_average_precision(scores, target), expected)
    _close(got["mAP"], np.mean(np.asarray(expected)[has_positive]) if has_positive.any() else np.nan)
    undefined = [w for w in caught if issubclass(w.category, UndefinedMetricWarning)]
    assert bool(undefined) == (not has_positive.all())
    if has_positive.all():
        _close(got["mAP"], skm.average_precision_score(y, s, average="macro"))


def test_edge_cases_never_positive_all_positive_and_ties() -> None:
    scores = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.2], [0.5, 0.1, 0.9]])
    target = torch.tensor([[0, 1, 1], [0, 1, 0], [0, 1, 1]])
    with pytest.warns(UndefinedMetricWarning):
        got = multilabel_metric_tensors(scores, target)
    # Label 0 is never positive but predicted: precision 0, recall 0/0 -> 0 (warn), AP NaN.
    assert got["precision"].tolist() == [0.0, 1.0, 1.0]
    assert got["recall"].tolist() == [0.0, 2 / 3, 1.0]
    assert torch.isnan(got["ap"][0]) and got["ap"][1] == 1.0
    _close(got["mAP"], (1.0 + 1.0) / 2)
    _close(got["hamming_loss"], skm.hamming_loss(target.numpy(), (scores >= 0.5).long().numpy()))


def test_zero_division_nan_leaves_labels_out_of_macro() -> None:
    scores = torch.tensor([[0.1, 0.9], [0.2, 0.8]])
    target = torch.tensor([[0, 1], [0, 0]])
    with pytest.warns(UndefinedMetricWarning, match="labels \\[0\\]"):  # label 0 has no positive: AP undefined
        got = multilabel_metric_tensors(scores, target, zero_division="nan")
    p, r, f, _ = skm.precision_recall_fscore_support(target.numpy(), (scores >= 0.5).long().numpy(),
                                                     average="macro", zero_division=np.nan)
    _close(got["precision_macro"], p)
    _close(got["recall_macro"], r)
    _close(got["f1_macro"], f)


@FEW
@given(multilabel(max_n=12, max_l=4), st.integers(0, 1000))
def test_resample_weights_equal_repeated_rows(data: tuple, seed: int) -> None:
    scores, target = data
    counts = torch.tensor(np.random.default_rng(seed).multinomial(len(scores), np.ones(len(scores)) / len(scores),
                                                                  size=3), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        batched = multilabel_metric_tensors(scores, target, zero_division=0, sample_weight=counts)
        for r in range(3):
            rows = torch.repeat_interleave(torch.arange(len(scores)), counts[r].long())
            one = multilabel_metric_tensors(scores[rows], target[rows], zero_division=0)
            for name in (*MULTILABEL_HIGHER_IS_BETTER, "f1", "ap"):
                np.testing.assert_allclose(batched[name][r].numpy(), one[name].numpy(), rtol=1e-12, atol=1e-12)


@FEW
@given(multilabel(), st.integers(0, 1000))
def test_sample_order_does_not_matter(data: tuple, seed: int) -> None:
    scores, target = data
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(scores)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        a = multilabel_metric_tensors(scores, target, zero_division=0)
        b = multilabel_metric_tensors(scores[order], target[order], zero_division=0)
    for name in MULTILABEL_HIGHER_IS_BETTER:
        np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), rtol=1e-12, atol=1e-12)


def test_report_values_and_intervals() -> None:
    rng = np.random.default_rng(0)
    target = torch.tensor(rng.random((80, 3)) < 0.4).long()
    scores = (target * 0.6 + torch.tensor(rng.random((80, 3))) * 0.5).float()
    report = multilabel_report(scores, target, ["a", "b", "c"], resamples=200, seed=1)
    assert report["multilabel"] is True and report["classes"] == ["a", "b", "c"]
    for name, higher in MULTILABEL_HIGHER_IS_BETTER.items():
        entry = report[name]
        low, high = entry["ci95"]
        assert entry["higher_is_better"] == higher
        assert low <= entry["value"] + 1e-12 and entry["value"] <= high + 1e-12, name
    assert sorted(report["per_class"]) == ["ap", "f1", "precision", "recall", "support"]
    assert report["per_class"]["support"] == target.sum(0).tolist()
    # Seeded: the same intervals twice.
    assert multilabel_intervals(scores, target, resamples=50, seed=3) == multilabel_intervals(scores, target,
                                                                                              resamples=50, seed=3)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        multilabel_metric_tensors(torch.zeros(2, 2), torch.tensor([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match="same shape"):
        multilabel_metric_tensors(torch.zeros(2, 2), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="bool or integer"):
        multilabel_metric_tensors(torch.zeros(2, 2), torch.zeros(2, 2))
