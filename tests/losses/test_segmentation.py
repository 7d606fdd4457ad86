"""Tests for visionbench/losses/segmentation.py.

Cross entropy is checked against :func:`torch.nn.functional.cross_entropy` (values and gradients,
class weights, ``ignore_index``, every reduction); every loss against a slow per-pixel loop
oracle written from its formula (Dice: segmentation_models_pytorch's multiclass ``DiceLoss``);
``gradcheck`` in float64; ignored pixels have no influence; an all-ignored batch gives 0, no NaN.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from visionbench.losses.segmentation import (
    SEGMENTATION_LOSSES,
    ce_dice_loss,
    dice_loss,
    pixel_cross_entropy,
    pixel_focal_loss,
)

REDUCTIONS = ("mean", "sum", "none")
IGNORE = 255
FAST = settings(max_examples=25, deadline=None)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@st.composite
def problems(draw, *, max_classes: int = 5):
    """(logits float64 [N, K, H, W], target int64 [N, H, W] with some 255, weight [K] or None)."""
    n, k = draw(st.integers(1, 3)), draw(st.integers(1, max_classes))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    scale = draw(st.sampled_from([1e-3, 1.0, 5.0, 30.0]))
    ignored = draw(st.sampled_from([0.0, 0.3, 0.8, 1.0]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    logits = torch.randn(n, k, h, w, generator=gen, dtype=torch.float64) * scale
    target = torch.randint(0, k, (n, h, w), generator=gen)
    target[torch.rand(n, h, w, generator=gen) < ignored] = IGNORE
    weight = torch.rand(k, generator=gen, dtype=torch.float64) * 2 if draw(st.booleans()) else None
    return logits, target, weight


def value_and_grad(fn, logits, *args, **kwargs):
    """``fn``'s output and the gradient of its sum with respect to ``logits``."""
    x = logits.detach().clone().requires_grad_(True)
    out = fn(x, *args, **kwargs)
    (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    return out.detach(), torch.zeros_like(x) if grad is None else grad


def assert_same(fn, oracle, logits, *args, rtol=1e-9, atol=1e-12, **kwargs):
    got, got_grad = value_and_grad(fn, logits, *args, **kwargs)
    want, want_grad = value_and_grad(oracle, logits, *args, **kwargs)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
    torch.testing.assert_close(got_grad, want_grad, rtol=rtol, atol=atol)


def _pixels(target):
    n, h, w = target.shape
    return [(i, y, x) for i in range(n) for y in range(h) for x in range(w)]


# --------------------------------------------------------------------------------------------
# Slow loop oracles, one pixel (and class) at a time
# --------------------------------------------------------------------------------------------


def cross_entropy_oracle(logits, target, *, weight, reduction):
    """``-w_y log softmax(x)_y`` per labelled pixel; mean divides by the summed weights."""
    out = torch.zeros(target.shape, dtype=logits.dtype) + 0 * logits.sum()  # in the graph even if all ignored
    total_weight = logits.new_zeros(())
    for i, y, x in _pixels(target):
        label = int(target[i, y, x])
        if label == IGNORE:
            continue
        w = 1.0 if weight is None else weight[label]
        out[i, y, x] = -w * (logits[i, label, y, x] - torch.logsumexp(logits[i, :, y, x], dim=0))
        total_weight = total_weight + w
    if reduction == "mean":
        return out.sum() / total_weight if total_weight > 0 else out.sum() * 0
    return out.sum() if reduction == "sum" else out


def focal_oracle(logits, target, *, gamma, alpha, reduction):
    """``-alpha_y (1 - q)**gamma log q`` per labelled pixel; mean divides by the labelled count."""
    out = torch.zeros(target.shape, dtype=logits.dtype) + 0 * logits.sum()  # in the graph even if all ignored
    count = 0
    for i, y, x in _pixels(target):
        label = int(target[i, y, x])
        if label == IGNORE:
            continue
        log_q = logits[i, label, y, x] - torch.logsumexp(logits[i, :, y, x], dim=0)
        a = 1.0 if alpha is None else alpha[label]
        one_minus_q = 1 - torch.exp(log_q)
        # At q == 1 (e.g. K = 1) the loss is 0 near q, so its gradient is 0; autograd of
        # (1 - q)**gamma would give 0**(gamma - 1) = inf there for gamma < 1.
        modulator = one_minus_q**gamma if one_minus_q > 0 else 0 * one_minus_q
        out[i, y, x] = -a * modulator * log_q
        count += 1
    if reduction == "mean":
        return out.sum() / count if count else out.sum() * 0
    return out.sum() if reduction == "sum" else out


def dice_oracle(logits, target, *, smooth, eps=1e-7, reduction):
    """segmentation_models_pytorch DiceLoss(mode="multiclass", from_logits=True), per class over the batch."""
    num_classes = logits.shape[1]
    probs = torch.softmax(logits, dim=1)
    losses = []
    for k in range(num_classes):
        intersection = 0 * probs.sum()  # a zero in the graph, even if every pixel is ignored
        cardinality = 0 * probs.sum()
        present = False
        for i, y, x in _pixels(target):
            label = int(target[i, y, x])
            if label == IGNORE:
                continue
            g = 1.0 if label == k else 0.0
            present = present or label == k
            intersection = intersection + probs[i, k, y, x] * g
            cardinality = cardinality + probs[i, k, y, x] + g
        dice = (2 * intersection + smooth) / max(cardinality + smooth, torch.tensor(eps, dtype=logits.dtype))
        losses.append((1 - dice) if present else 0 * dice)
    stacked = torch.stack(losses)
    if reduction == "mean":
        return stacked.mean()
    return stacked.sum() if reduction == "sum" else stacked


# --------------------------------------------------------------------------------------------
# Cross entropy
# --------------------------------------------------------------------------------------------


@FAST
@given(problem=problems(), reduction=st.sampled_from(REDUCTIONS))
def test_cross_entropy_matches_torch(problem, reduction):
    logits, target, weight = problem

    def theirs(x, t, **kw):
        return F.cross_entropy(x, t, ignore_index=IGNORE, **kw)

    if reduction == "mean" and (target == IGNORE).all():  # torch: 0/0 = NaN, ours: 0
        assert pixel_cross_entropy(logits, target, weight=weight).item() == 0.0
        return
    assert_same(pixel_cross_entropy, theirs, logits, target, weight=weight, reduction=reduction)


@FAST
@given(problem=problems(), reduction=st.sampled_from(REDUCTIONS))
def test_cross_entropy_matches_loop_oracle(problem, reduction):
    logits, target, weight = problem
    assert_same(pixel_cross_entropy, cross_entropy_oracle, logits, target, weight=weight, reduction=reduction)


def test_cross_entropy_float32_matches_torch_exactly_enough():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 16, 16, generator=gen) * 4
    target = torch.randint(0, 4, (2, 16, 16), generator=gen)
    target[:, :3] = IGNORE
    weight = torch.tensor([0.5, 1.0, 2.0, 0.1])
    got = pixel_cross_entropy(logits, target, weight=weight)
    want = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


def test_cross_entropy_without_ignore_index():
    logits = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    target = torch.tensor([[[0, 1], [2, 0]]])
    torch.testing.assert_close(pixel_cross_entropy(logits, target, ignore_index=None), F.cross_entropy(logits, target))
    with pytest.raises(ValueError, match="target contains label 255"):
        pixel_cross_entropy(logits, torch.tensor([[[0, 1], [2, 255]]]), ignore_index=None)


# --------------------------------------------------------------------------------------------
# Dice and focal against their oracles
# --------------------------------------------------------------------------------------------


@FAST
@given(problem=problems(), smooth=st.sampled_from([0.0, 1e-5, 1.0]), reduction=st.sampled_from(REDUCTIONS))
def test_dice_matches_loop_oracle(problem, smooth, reduction):
    logits, target, _ = problem
    assert_same(dice_loss, dice_oracle, logits, target, smooth=smooth, reduction=reduction)


@FAST
@given(
    problem=problems(),
    gamma=st.sampled_from([0.0, 0.5, 2.0, 5.0]),
    use_alpha=st.booleans(),
    reduction=st.sampled_from(REDUCTIONS),
)
def test_focal_matches_loop_oracle(problem, gamma, use_alpha, reduction):
    logits, target, weight = problem
    alpha = weight if use_alpha else None
    # 1 - q from expm1 (ours) vs 1 - exp (oracle) differ in rounding when q is near 1.
    assert_same(pixel_focal_loss, focal_oracle, logits, target, gamma=gamma, alpha=alpha, reduction=reduction,
                rtol=1e-7, atol=1e-10)  # fmt: skip


def test_focal_with_gamma_zero_is_cross_entropy():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 4, 5), generator=gen)
    target[0, 0] = IGNORE
    for reduction in REDUCTIONS:
        torch.testing.assert_close(
            pixel_focal_loss(logits, target, gamma=0.0, reduction=reduction),
            F.cross_entropy(logits, target, ignore_index=IGNORE, reduction=reduction),
        )
    alpha = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(
        pixel_focal_loss(logits, target, gamma=0.0, alpha=alpha, reduction="sum"),
        F.cross_entropy(logits, target, weight=alpha, ignore_index=IGNORE, reduction="sum"),
    )


def test_dice_known_values_and_absent_classes():
    # Two pixels, K = 3, uniform predictions (p = 1/3); labels 0 and 1, class 2 absent.
    logits = torch.zeros(1, 3, 1, 2, dtype=torch.float64)
    target = torch.tensor([[[0, 1]]])
    per_class = dice_loss(logits, target, reduction="none")
    # class 0: I = 1/3, |p| + |g| = 2/3 + 1 → dice = (2/3) / (5/3) = 0.4; class 2: absent → 0
    torch.testing.assert_close(per_class, torch.tensor([0.6, 0.6, 0.0], dtype=torch.float64))
    assert dice_loss(logits, target).item() == pytest.approx(1.2 / 3)  # absent class counts in the mean
    # Confident, correct prediction: loss → 0, also for a class absent from target and prediction.
    perfect = torch.tensor([[[[50.0, -50.0]], [[-50.0, 50.0]], [[-50.0, -50.0]]]], dtype=torch.float64)
    assert dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-12)
    # A class absent from the target is not penalised even when predicted (smp's convention).
    wrong = torch.tensor([[[[-50.0, -50.0]], [[-50.0, -50.0]], [[50.0, 50.0]]]], dtype=torch.float64)
    torch.testing.assert_close(dice_loss(wrong, target, reduction="none")[2], torch.tensor(0.0, dtype=torch.float64))
    assert dice_loss(wrong, target).item() == pytest.approx(2 / 3, abs=1e-12)
    # smooth: (2 I + s) / (card + s)
    got = dice_loss(logits, target, smooth=1.0, reduction="none")[0]
    assert got.item() == pytest.approx(1 - (2 / 3 + 1) / (5 / 3 + 1))


def test_ce_dice_is_the_weighted_sum():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 3, 3, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 3, 3), generator=gen)
    target[1, 1] = IGNORE
    weight = torch.rand(4, generator=gen, dtype=torch.float64)
    ce = pixel_cross_entropy(logits, target, weight=weight)
    dice = dice_loss(logits, target, smooth=0.5)
    got = ce_dice_loss(logits, target, ce_weight=0.3, dice_weight=2.0, class_weights=weight, smooth=0.5)
    torch.testing.assert_close(got, 0.3 * ce + 2.0 * dice, rtol=1e-14, atol=0)
    torch.testing.assert_close(
        ce_dice_loss(logits, target), pixel_cross_entropy(logits, target) + dice_loss(logits, target)
    )
    assert_same(lambda x, t: ce_dice_loss(x, t, ce_weight=0.0), lambda x, t: dice_loss(x, t), logits, target)


# --------------------------------------------------------------------------------------------
# Ignored pixels, all-ignored batches, gradcheck
# --------------------------------------------------------------------------------------------

ALL_LOSSES = {
    "cross_entropy": lambda x, t: pixel_cross_entropy(x, t, weight=torch.tensor([0.5, 2.0, 1.0], dtype=x.dtype)),
    "dice": lambda x, t: dice_loss(x, t, smooth=0.1),
    "focal": lambda x, t: pixel_focal_loss(x, t, gamma=2.0, alpha=torch.tensor([0.5, 2.0, 1.0], dtype=x.dtype)),
    "ce_dice": lambda x, t: ce_dice_loss(x, t, ce_weight=0.7, dice_weight=1.3),
}


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_ignored_pixels_have_no_influence(name):
    fn = ALL_LOSSES[name]
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 4, 4), generator=gen)
    ignored = torch.rand(2, 4, 4, generator=gen) < 0.4
    target[ignored] = IGNORE
    changed = logits.clone()
    changed.permute(0, 2, 3, 1)[ignored] = torch.randn(int(ignored.sum()), 3, generator=gen, dtype=torch.float64) * 100
    loss_a, grad_a = value_and_grad(fn, logits, target)
    loss_b, grad_b = value_and_grad(fn, changed, target)
    assert loss_a.item() == loss_b.item()  # bit-identical
    assert torch.equal(grad_a, grad_b)
    assert (grad_a.permute(0, 2, 3, 1)[ignored] == 0).all()
    assert (grad_a.permute(0, 2, 3, 1)[~ignored] != 0).any()


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_all_ignored_batch_is_zero_without_nan(name):
    fn = ALL_LOSSES[name]
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64) * 10
    target = torch.full((2, 4, 4), IGNORE)
    loss, grad = value_and_grad(fn, logits, target)
    assert loss.item() == 0.0
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("fn", [pixel_cross_entropy, dice_loss, pixel_focal_loss])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_ignored_every_reduction_is_zero(fn, reduction):
    out = fn(torch.randn(1, 2, 3, 3), torch.full((1, 3, 3), IGNORE), reduction=reduction)
    assert not out.isnan().any() and (out == 0).all()


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_gradcheck(name):
    fn = ALL_LOSSES[name]
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[[0, 1, 255], [2, 2, 0]], [[1, 255, 0], [0, 1, 1]]])
    assert torch.autograd.gradcheck(lambda x: fn(x, target), (logits,))


def test_focal_gradcheck_none_reduction_and_small_gamma():
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(1, 4, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 4, (1, 3, 3), generator=gen)
    target[0, 0, 0] = IGNORE
    assert torch.autograd.gradcheck(lambda x: pixel_focal_loss(x, target, gamma=0.5, reduction="none"), (logits,))
    assert torch.autograd.gradcheck(lambda x: dice_loss(x, target, reduction="none"), (logits,))


def test_focal_confident_pixels_stay_finite():
    logits = torch.tensor([[[[60.0]], [[-60.0]]]], dtype=torch.float64)  # q rounds to 1
    loss, grad = value_and_grad(pixel_focal_loss, logits, torch.tensor([[[0]]]), gamma=0.5)
    assert loss.isfinite().all() and grad.isfinite().all()
    assert loss.item() == pytest.approx(math.exp(-120) ** 0.5 * math.exp(-120), rel=1e-6)


# --------------------------------------------------------------------------------------------
# Registry and bad input
# --------------------------------------------------------------------------------------------


def test_registry_table():
    assert SEGMENTATION_LOSSES == {
        "cross_entropy": pixel_cross_entropy,
        "dice": dice_loss,
        "focal": pixel_focal_loss,
        "ce_dice": ce_dice_loss,
    }


@pytest.mark.parametrize("fn", [pixel_cross_entropy, dice_loss, pixel_focal_loss, ce_dice_loss])
def test_bad_input_raises(fn):
    logits = torch.zeros(1, 3, 2, 2)
    target = torch.zeros(1, 2, 2, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"logits must have shape \[N, K, H, W\]"):
        fn(logits[0], target)
    with pytest.raises(TypeError, match="logits must be a floating-point"):
        fn(logits.long(), target)
    with pytest.raises(ValueError, match=r"target must have shape \[N, H, W\] = \[1, 2, 2\]"):
        fn(logits, target[0])
    with pytest.raises(TypeError, match="target must hold integer class labels"):
        fn(logits, target.float())
    with pytest.raises(ValueError, match=r"target contains label 3 .*labels must be in \[0, 3\) or ignore_index=255"):
        fn(logits, torch.tensor([[[0, 1], [3, 255]]]))
    with pytest.raises(ValueError, match="target contains label -1"):
        fn(logits, torch.tensor([[[0, 1], [-1, 255]]]))


def test_bad_options_raise():
    logits = torch.zeros(1, 3, 2, 2)
    target = torch.zeros(1, 2, 2, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"weight must be a tensor of shape \[K\] = \[3\]"):
        pixel_cross_entropy(logits, target, weight=torch.ones(2))
    with pytest.raises(ValueError, match=r"alpha must be a tensor of shape \[K\]"):
        pixel_focal_loss(logits, target, alpha=torch.ones(4))
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        pixel_focal_loss(logits, target, gamma=-1.0)
    with pytest.raises(ValueError, match="smooth must be >= 0"):
        dice_loss(logits, target, smooth=-1.0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        dice_loss(logits, target, eps=0.0)
    with pytest.raises(ValueError, match="dice_weight must be >= 0"):
        ce_dice_loss(logits, target, dice_weight=-1.0)
    for fn in (pixel_cross_entropy, dice_loss, pixel_focal_loss):
        with pytest.raises(ValueError, match="reduction must be one of"):
            fn(logits, target, reduction="avg")
