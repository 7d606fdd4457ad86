"""Properties every reported metric shares (as scikit-learn's tests/test_common.py does): for
every name in ``HIGHER_IS_BETTER``, k streamed updates equal one call, merging halves equals the
whole, and the value does not depend on the order of the samples."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visionbench.metrics import HIGHER_IS_BETTER, ConfusionMatrixAccumulator
from visionbench.metrics.scores import ScoreAccumulator

K = 7


def _accumulators() -> tuple[ConfusionMatrixAccumulator, ScoreAccumulator]:
    return ConfusionMatrixAccumulator(K), ScoreAccumulator(K)


def _values(cm: ConfusionMatrixAccumulator, sc: ScoreAccumulator) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {**cm.compute(), **sc.compute()}


def _update(cm: ConfusionMatrixAccumulator, sc: ScoreAccumulator, probs: torch.Tensor, target: torch.Tensor) -> None:
    cm.update(probs.argmax(dim=1), target)
    sc.update(probs, target)


@st.composite
def samples(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    n = draw(st.integers(4, 60))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, K, (n,), generator=g)
    target[:2] = torch.tensor([0, 1])  # at least two classes present, so the AUC is defined
    logits = torch.randn(n, K, generator=g, dtype=torch.float64).round(decimals=1)  # ties in scores
    cuts = sorted(draw(st.lists(st.integers(0, n), min_size=1, max_size=4)))
    return torch.softmax(logits, dim=1), target, cuts


def test_every_reported_metric_is_covered_by_an_accumulator() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(50, K, generator=g, dtype=torch.float64), dim=1)
    target = torch.arange(50) % K
    cm, sc = _accumulators()
    _update(cm, sc, probs, target)
    assert set(HIGHER_IS_BETTER) <= set(_values(cm, sc))


@settings(max_examples=25, deadline=None)
@given(samples())
def test_streamed_updates_equal_one_call_and_merge_equals_whole(data: tuple) -> None:
    probs, target, cuts = data
    whole = _accumulators()
    _update(*whole, probs, target)
    streamed = _accumulators()
    bounds = [0, *cuts, len(target)]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        _update(*streamed, probs[start:stop], target[start:stop])
    first, second = _accumulators(), _accumulators()
    half = len(target) // 2
    _update(*first, probs[:half], target[:half])
    _update(*second, probs[half:], target[half:])
    merged = (first[0].merge(second[0]), first[1].merge(second[1]))
    expected = _values(*whole)
    for name in HIGHER_IS_BETTER:
        for other in (_values(*streamed), _values(*merged)):
            assert other[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-15, nan_ok=True), name


@settings(max_examples=15, deadline=None)
@given(samples(), st.integers(0, 2**31 - 1))
def test_metrics_do_not_depend_on_sample_order(data: tuple, seed: int) -> None:
    probs, target, _ = data
    order = torch.randperm(len(target), generator=torch.Generator().manual_seed(seed))
    a, b = _accumulators(), _accumulators()
    _update(*a, probs, target)
    _update(*b, probs[order], target[order])
    expected, shuffled = _values(*a), _values(*b)
    for name in HIGHER_IS_BETTER:
        assert shuffled[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-15, nan_ok=True), name
