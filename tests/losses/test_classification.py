"""Tests for visionbench/losses/classification.py and the loss registry.

Each loss is checked against torch's own implementation where one exists and against a slow
per-element Python loop (the ``*_oracle`` functions) everywhere: values and gradients, every
reduction, with and without class weights, on hypothesis-generated shapes and scales.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from visionbench.losses import (
    LOSSES,
    binary_cross_entropy,
    create_loss,
    cross_entropy,
    focal,
    list_losses,
    mae,
    mse,
    multiclass_hinge,
)

REDUCTIONS = ("mean", "sum", "none")
ALL_FNS = [cross_entropy, binary_cross_entropy, multiclass_hinge, focal, mse, mae]
FAST = settings(max_examples=50, deadline=None)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@st.composite
def problems(draw, *, min_classes: int = 1, max_classes: int = 6):
    """(logits float64 [N, K], target int64 [N], weight float64 [K] or None, reduction)."""
    n = draw(st.integers(1, 8))
    k = draw(st.integers(min_classes, max_classes))
    scale = draw(st.sampled_from([1e-3, 1.0, 5.0, 30.0]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    logits = torch.randn(n, k, generator=gen, dtype=torch.float64) * scale
    target = torch.randint(0, k, (n,), generator=gen)
    weight = torch.rand(k, generator=gen, dtype=torch.float64) * 2 if draw(st.booleans()) else None
    return logits, target, weight, draw(st.sampled_from(REDUCTIONS))


def value_and_grad(fn, logits, *args, **kwargs):
    """``fn``'s output and the gradient of its sum with respect to ``logits``."""
    x = logits.detach().clone().requires_grad_(True)
    out = fn(x, *args, **kwargs)
    (grad,) = torch.autograd.grad(out.sum(), x)
    return out.detach(), grad


def assert_same_value_and_grad(fn, oracle, logits, *args, **kwargs):
    got, got_grad = value_and_grad(fn, logits, *args, **kwargs)
    want, want_grad = value_and_grad(oracle, logits, *args, **kwargs)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-7, atol=1e-9)


def reduce_list(values: list, reduction: str):
    """Reduce a list of 0-d tensors like torch: mean, sum, or stacked."""
    stacked = torch.stack(values)
    if reduction == "mean":
        return stacked.mean()
    return stacked.sum() if reduction == "sum" else stacked


# --------------------------------------------------------------------------------------------
# Slow loop oracles, one sample (and class) at a time, straight from the formulas
# --------------------------------------------------------------------------------------------


def log_softmax_row(row):
    return row - torch.log(torch.exp(row).sum())


def cross_entropy_oracle(logits, target, *, label_smoothing=0.0, weight=None, reduction="mean"):
    n, k = logits.shape
    w = torch.ones(k, dtype=logits.dtype) if weight is None else weight
    losses, norm = [], 0.0
    for i in range(n):
        logp = log_softmax_row(logits[i])
        y = int(target[i])
        loss = 0.0
        for c in range(k):
            q = (1 - label_smoothing) * (c == y) + label_smoothing / k
            loss = loss - w[c] * q * logp[c]
        losses.append(loss)
        norm = norm + w[y]
    if reduction == "mean":  # torch: weighted mean divides by the targets' summed weights
        return torch.stack(losses).sum() / norm
    return reduce_list(losses, reduction)


def hinge_oracle(logits, target, *, margin=1.0, p=1, weight=None, reduction="mean"):
    n, k = logits.shape
    losses = []
    for i in range(n):
        y = int(target[i])
        loss = logits[i].sum() * 0  # zero, but part of the graph (K = 1 has no other class)
        for c in range(k):
            if c != y:
                loss = loss + torch.clamp(margin - logits[i, y] + logits[i, c], min=0) ** p
        loss = loss / k
        losses.append(loss if weight is None else weight[y] * loss)
    return reduce_list(losses, reduction)


def focal_oracle(logits, target, *, gamma=2.0, alpha=None, reduction="mean"):
    losses = []
    for i in range(logits.shape[0]):
        y = int(target[i])
        p = softmax_row(logits[i])[y]
        loss = -((1 - p) ** gamma) * torch.log(p)
        losses.append(loss if alpha is None else alpha[y] * loss)
    return reduce_list(losses, reduction)


def softmax_row(row):
    e = torch.exp(row - row.max())
    return e / e.sum()


def elementwise_oracle(element, logits, target, weight, reduction):
    """Apply ``element(logits_row, c, y)`` to every (sample, class); reduce over N*K."""
    n, k = logits.shape
    rows = []
    for i in range(n):
        row = [element(logits[i], c, int(target[i])) for c in range(k)]
        rows.append(torch.stack([v if weight is None else weight[c] * v for c, v in enumerate(row)]))
    out = torch.stack(rows)
    if reduction == "mean":
        return out.mean()
    return out.sum() if reduction == "sum" else out


def mse_oracle(logits, target, *, weight=None, reduction="mean"):
    def element(probs, c, y):
        return (probs[c] - float(c == y)) ** 2

    probs = torch.stack([softmax_row(row) for row in logits])
    return elementwise_oracle(element, probs, target, weight, reduction)


def mae_oracle(logits, target, *, weight=None, reduction="mean"):
    def element(probs, c, y):
        return torch.abs(probs[c] - float(c == y))

    probs = torch.stack([softmax_row(row) for row in logits])
    return elementwise_oracle(element, probs, target, weight, reduction)


def bce_oracle(logits, target, *, weight=None, reduction="mean"):
    def element(row, c, y):
        t = float(c == y)
        s = torch.sigmoid(row[c])
        return -(t * torch.log(s) + (1 - t) * torch.log(1 - s))

    return elementwise_oracle(element, logits, target, weight, reduction)


# --------------------------------------------------------------------------------------------
# Values and gradients against torch and the oracles
# --------------------------------------------------------------------------------------------


@FAST
@given(problems(), st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_cross_entropy_matches_torch_and_oracle(problem, smoothing):
    logits, target, weight, reduction = problem
    kw = dict(label_smoothing=smoothing, weight=weight, reduction=reduction)
    assert_same_value_and_grad(cross_entropy, F.cross_entropy, logits, target, **kw)
    if logits.abs().max() < 10:  # the naive oracle's log(softmax) loses precision beyond
        assert_same_value_and_grad(cross_entropy, cross_entropy_oracle, logits, target, **kw)


@FAST
@given(problems(), st.sampled_from([1, 2]), st.sampled_from([1.0, 0.5, 2.0]))
def test_multiclass_hinge_matches_torch_and_oracle(problem, p, margin):
    logits, target, weight, reduction = problem
    module = nn.MultiMarginLoss(p=p, margin=margin, weight=weight, reduction=reduction)
    kw = dict(p=p, margin=margin, weight=weight, reduction=reduction)
    assert_same_value_and_grad(multiclass_hinge, lambda x, y, **_: module(x, y), logits, target, **kw)
    assert_same_value_and_grad(multiclass_hinge, hinge_oracle, logits, target, **kw)


@FAST
@given(problems())
def test_binary_cross_entropy_matches_torch_and_oracle(problem):
    logits, target, weight, reduction = problem
    onehot = F.one_hot(target, logits.shape[1]).double()

    def torch_bce(x, y, *, weight, reduction):
        return F.binary_cross_entropy_with_logits(x, onehot, weight=weight, reduction=reduction)

    kw = dict(weight=weight, reduction=reduction)
    assert_same_value_and_grad(binary_cross_entropy, torch_bce, logits, target, **kw)
    if logits.abs().max() < 10:  # the naive oracle's log(sigmoid) loses precision beyond
        assert_same_value_and_grad(binary_cross_entropy, bce_oracle, logits, target, **kw)


@FAST
@given(problems())
def test_binary_cross_entropy_float_multilabel_targets(problem):
    logits, _, weight, reduction = problem
    probs = torch.rand(logits.shape, generator=torch.Generator().manual_seed(0), dtype=logits.dtype)
    multi_hot = (probs > 0.5).double()
    for target in (probs, multi_hot):
        got, got_grad = value_and_grad(binary_cross_entropy, logits, target, weight=weight, reduction=reduction)
        want, want_grad = value_and_grad(
            F.binary_cross_entropy_with_logits, logits, target, weight=weight, reduction=reduction
        )
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(got_grad, want_grad)


@FAST
@given(problems())
def test_mse_is_brier_score_over_k(problem):
    logits, target, weight, reduction = problem
    kw = dict(weight=weight, reduction=reduction)
    assert_same_value_and_grad(mse, mse_oracle, logits, target, **kw)
    if weight is None and reduction == "sum":  # sum / N is the multi-class Brier score
        probs = logits.softmax(1)
        brier = ((probs - F.one_hot(target, logits.shape[1])) ** 2).sum(1).mean()
        torch.testing.assert_close(mse(logits, target, reduction="sum") / len(target), brier)


@FAST
@given(problems())
def test_mae_matches_oracle(problem):
    logits, target, weight, reduction = problem
    assert_same_value_and_grad(mae, mae_oracle, logits, target, weight=weight, reduction=reduction)
    if weight is None:  # per sample, L1 on probabilities is 2 (1 - p_y)
        p_y = logits.softmax(1).gather(1, target[:, None]).squeeze(1)
        per_sample = mae(logits, target, reduction="none").sum(1)
        torch.testing.assert_close(per_sample, 2 * (1 - p_y))


@FAST
@given(problems(min_classes=2), st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0]))
def test_focal_matches_oracle(problem, gamma):
    logits, target, alpha, reduction = problem
    if logits.abs().max() >= 10:  # keep the naive oracle's log(softmax) accurate
        logits = logits / 10
    kw = dict(gamma=gamma, alpha=alpha, reduction=reduction)
    assert_same_value_and_grad(focal, focal_oracle, logits, target, **kw)


@FAST
@given(problems())
def test_focal_with_gamma_zero_is_cross_entropy(problem):
    logits, target, weight, reduction = problem
    got = focal(logits, target, gamma=0.0, reduction=reduction)
    torch.testing.assert_close(got, F.cross_entropy(logits, target, reduction=reduction))
    if reduction != "mean":  # with weights, CE's mean divides by the summed target weights
        got = focal(logits, target, gamma=0.0, alpha=weight, reduction=reduction)
        want = F.cross_entropy(logits, target, weight=weight, reduction=reduction)
        torch.testing.assert_close(got, want)


def test_focal_down_weights_easy_samples():
    logits = torch.tensor([[4.0, 0.0], [0.2, 0.0]])  # sample 0 easy, sample 1 hard
    target = torch.tensor([0, 0])
    ce = cross_entropy(logits, target, reduction="none")
    fl = focal(logits, target, gamma=2.0, reduction="none")
    assert torch.all(fl < ce)
    assert fl[0] / ce[0] < fl[1] / ce[1]  # the easy sample loses a larger share


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_focal_is_stable_on_saturated_logits(gamma, dtype):
    # p_t rounds to exactly 1 (right) or 0 (wrong): the naive formula gives nan/inf gradients.
    logits = torch.tensor([[200.0, -200.0, 0.0], [-200.0, 200.0, 0.0]], dtype=dtype)
    target = torch.tensor([0, 0])
    loss, grad = value_and_grad(focal, logits, target, gamma=gamma, reduction="none")
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert loss[0] == 0
    torch.testing.assert_close(loss[1], torch.tensor(400.0, dtype=dtype))  # -log p = 400
    # one class: p_t is exactly 1, so loss and gradient are exactly 0 (no 0 ** -0.5 * 0 = nan)
    loss, grad = value_and_grad(focal, torch.randn(3, 1, dtype=dtype), target.new_zeros(3), gamma=gamma)
    assert loss == 0 and torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("fn", ALL_FNS)
@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_float64(fn, weighted):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 2, 1, 2])
    weight = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64) if weighted else None
    kw = {"alpha" if fn is focal else "weight": weight}
    if fn is cross_entropy:
        kw["label_smoothing"] = 0.1
    # the full Jacobian of the per-sample losses; a random projection for the reductions
    for reduction in REDUCTIONS:
        assert torch.autograd.gradcheck(
            lambda x, reduction=reduction: fn(x, target, reduction=reduction, **kw),
            (logits,),
            fast_mode=reduction != "none",
        )


@pytest.mark.parametrize("fn", ALL_FNS)
def test_reductions_agree(fn):
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 4, generator=gen)
    target = torch.randint(0, 4, (6,), generator=gen)
    none = fn(logits, target, reduction="none")
    elementwise = fn in (binary_cross_entropy, mse, mae)
    assert none.shape == ((6, 4) if elementwise else (6,))
    assert fn(logits, target).ndim == 0  # "mean" is the default
    torch.testing.assert_close(fn(logits, target, reduction="sum"), none.sum())
    torch.testing.assert_close(fn(logits, target, reduction="mean"), none.mean())


def test_losses_are_small_for_confident_correct_predictions():
    logits = torch.tensor([[20.0, -20.0, -20.0], [-20.0, -20.0, 20.0]])
    target = torch.tensor([0, 2])
    for fn in ALL_FNS:
        assert fn(logits, target) < 1e-6, fn.__name__
        assert fn(logits, target.flip(0)) > 0.1, fn.__name__


def test_cross_entropy_known_values():
    torch.testing.assert_close(cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3])), torch.tensor(math.log(4)))
    # full smoothing makes the target uniform: the loss no longer depends on the label
    logits = torch.tensor([[3.0, -1.0, 0.5]])
    a = cross_entropy(logits, torch.tensor([0]), label_smoothing=1.0)
    b = cross_entropy(logits, torch.tensor([1]), label_smoothing=1.0)
    torch.testing.assert_close(a, b)


def test_weight_is_moved_to_logits_dtype():
    logits = torch.randn(3, 2, dtype=torch.float64)
    target = torch.tensor([0, 1, 1])
    weight = torch.tensor([1.0, 3.0])  # float32
    for fn, key in [(cross_entropy, "weight"), (focal, "alpha"), (mse, "weight")]:
        assert fn(logits, target, **{key: weight}).dtype == torch.float64


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ALL_FNS)
def test_label_out_of_range_names_the_label(fn):
    logits = torch.randn(3, 10)
    with pytest.raises(ValueError, match=r"label 12 but the model has 10 outputs.*num_classes"):
        fn(logits, torch.tensor([1, 12, 3]))
    with pytest.raises(ValueError, match=r"label -1 .*\[0, 10\)"):
        fn(logits, torch.tensor([-1, 0, 3]))


@pytest.mark.parametrize("fn", ALL_FNS)
def test_bad_shapes_and_dtypes(fn):
    target = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"logits must have shape \[N, K\].*got shape \(2,\)"):
        fn(torch.randn(2), target)
    with pytest.raises(ValueError, match=r"logits must have shape \[N, K\]"):
        fn(torch.randn(2, 3, 4), target)
    with pytest.raises(ValueError, match="logits must be a floating-point tensor; got dtype torch.int64"):
        fn(torch.ones(2, 3, dtype=torch.int64), target)
    with pytest.raises(ValueError, match=r"target must have shape \[N\] = \[3\].*got shape \(2,\)"):
        fn(torch.randn(3, 4), target)
    with pytest.raises(ValueError, match="reduction must be one of"):
        fn(torch.randn(2, 3), target, reduction="avg")
    with pytest.raises(TypeError, match="logits must be a torch.Tensor; got list"):
        fn([[0.0, 1.0]], torch.tensor([0]))
    key = "alpha" if fn is focal else "weight"
    with pytest.raises(ValueError, match=rf"{key} must be a tensor of shape \[K\] = \[3\].*got \(2,\)"):
        fn(torch.randn(2, 3), target, **{key: torch.ones(2)})


@pytest.mark.parametrize("fn", [cross_entropy, multiclass_hinge, focal, mse, mae])
def test_float_or_onehot_target_is_rejected(fn):
    with pytest.raises(ValueError, match="integer class labels.*target.long()"):
        fn(torch.randn(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="integer class labels"):
        fn(torch.randn(2, 3), torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"shape \[N\].*not one-hot"):
        fn(torch.randn(2, 3), torch.tensor([[1, 0, 0], [0, 1, 0]]))


def test_bce_float_target_errors():
    logits = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"shape of logits \(2, 3\).*got \(2, 2\)"):
        binary_cross_entropy(logits, torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]; got 2.0"):
        binary_cross_entropy(logits, torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 1.0]]))


def test_option_errors():
    logits, target = torch.randn(2, 3), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]; got 1.5"):
        cross_entropy(logits, target, label_smoothing=1.5)
    with pytest.raises(ValueError, match="p must be 1 or 2; got 3"):
        multiclass_hinge(logits, target, p=3)
    with pytest.raises(ValueError, match="gamma must be >= 0; got -1.0"):
        focal(logits, target, gamma=-1.0)


# --------------------------------------------------------------------------------------------
# Registry and builders
# --------------------------------------------------------------------------------------------

EXPECTED = {
    "cross_entropy": cross_entropy,
    "bce": binary_cross_entropy,
    "hinge": multiclass_hinge,
    "mse": mse,
    "mae": mae,
    "focal": focal,
}


def test_registry_names_and_descriptions():
    assert list_losses() == sorted(EXPECTED)
    assert list_losses("m*") == ["mae", "mse"]
    for name in list_losses():
        description = LOSSES.info(name)["description"]
        assert isinstance(description, str) and description and "\n" not in description


@pytest.mark.parametrize("name", list_losses())
@pytest.mark.parametrize("weighted", [False, True])
def test_every_registered_loss_builds_and_matches_its_function(name, weighted):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 4, generator=gen, requires_grad=True)
    target = torch.randint(0, 4, (5,), generator=gen)
    weights = torch.tensor([1.0, 0.5, 2.0, 1.5]) if weighted else None
    module = create_loss(name, num_classes=4, class_weights=weights)
    assert isinstance(module, nn.Module)
    loss = module(logits, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    key = "alpha" if name == "focal" else "weight"
    want = EXPECTED[name](logits.detach(), target, **({key: weights} if weighted else {}))
    torch.testing.assert_close(loss.detach(), want)


@pytest.mark.parametrize("name", list_losses())
def test_class_weights_are_a_buffer_that_moves(name):
    weights = torch.tensor([1.0, 2.0, 3.0])
    module = create_loss(name, num_classes=3, class_weights=weights)
    assert "class_weights" in dict(module.named_buffers())
    weights[0] = 100.0  # the module keeps its own copy
    assert module.class_weights[0] == 1.0
    module = module.to(torch.float64)
    assert module.class_weights.dtype == torch.float64
    if torch.cuda.is_available():
        assert module.cuda().class_weights.is_cuda
    assert "class_weights" not in dict(create_loss(name, num_classes=3).named_buffers())


def test_label_smoothing_only_for_cross_entropy():
    logits, target = torch.randn(3, 4), torch.tensor([0, 1, 3])
    module = create_loss("cross_entropy", num_classes=4, label_smoothing=0.2)
    torch.testing.assert_close(module(logits, target), F.cross_entropy(logits, target, label_smoothing=0.2))
    for name in sorted(set(list_losses()) - {"cross_entropy"}):
        with pytest.raises(ValueError, match=rf"label_smoothing must be 0 for loss '{name}'.*'cross_entropy'"):
            create_loss(name, num_classes=4, label_smoothing=0.1)
        create_loss(name, num_classes=4, label_smoothing=0.0)  # zero is always fine
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]; got -0.1"):
        create_loss("cross_entropy", num_classes=4, label_smoothing=-0.1)


def test_unknown_loss_suggests_close_match():
    with pytest.raises(ValueError, match=r"unknown loss 'cross_entrpy'.*'cross_entropy'.*visionbench list loss"):
        create_loss("cross_entrpy", num_classes=3)
    with pytest.raises(ValueError, match=r"unknown loss 'focall'.*Did you mean 'focal'"):
        create_loss("focall", num_classes=3)


def test_builder_argument_errors():
    with pytest.raises(ValueError, match=r"num_classes must be a positive int; got 0"):
        create_loss("cross_entropy", num_classes=0)
    with pytest.raises(
        ValueError, match=r"class_weights must be a tensor of shape \[num_classes\] = \[3\]; got \(2,\)"
    ):
        create_loss("cross_entropy", num_classes=3, class_weights=torch.ones(2))
    with pytest.raises(ValueError, match=r"class_weights must be finite and >= 0; got \[1.0, -1.0, 1.0\]"):
        create_loss("focal", num_classes=3, class_weights=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="class_weights must be finite"):
        create_loss("mse", num_classes=3, class_weights=torch.tensor([1.0, float("inf"), 1.0]))
    module = create_loss("cross_entropy", num_classes=3, class_weights=torch.tensor([1, 2, 3]))
    assert module.class_weights.is_floating_point()  # integer weights are converted


def test_module_checks_num_classes_against_logits():
    module = create_loss("cross_entropy", num_classes=10)
    with pytest.raises(ValueError, match=r"logits must have 10 columns.*got shape \(2, 12\)"):
        module(torch.randn(2, 12), torch.tensor([0, 1]))
    assert "cross_entropy" in repr(module) and "num_classes=10" in repr(module)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fn", ALL_FNS)
def test_cuda_matches_cpu_and_checks_labels(fn):
    logits = torch.randn(5, 4, dtype=torch.float64)
    target = torch.tensor([0, 3, 1, 2, 3])
    key = "alpha" if fn is focal else "weight"
    weight = torch.tensor([1.0, 0.5, 2.0, 1.5])  # stays on the CPU: moved to the logits' device
    got = fn(logits.cuda(), target.cuda(), **{key: weight})
    torch.testing.assert_close(got.cpu(), fn(logits, target, **{key: weight}))
    with pytest.raises(ValueError, match="label 4 but the model has 4 outputs"):
        fn(logits.cuda(), torch.tensor([0, 4, 1, 2, 3]).cuda())
