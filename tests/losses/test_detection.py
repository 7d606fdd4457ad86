"""Tests for visionbench/losses/detection.py.

Each loss is checked against torchvision's / torch's own implementation (values and autograd
gradients, every reduction) on hypothesis-generated box pairs that mix random, identical,
disjoint, touching, contained and degenerate (zero width/height, point) boxes; against a slow
per-box loop oracle written from the papers' formulas; and with ``gradcheck`` in float64.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

from visionbench.losses.detection import (
    DETECTION_LOSSES,
    ciou_loss,
    diou_loss,
    giou_loss,
    iou_loss,
    sigmoid_focal_loss,
    smooth_l1_loss,
)

REDUCTIONS = ("mean", "sum", "none")
FAST = settings(max_examples=25, deadline=None)
EPS = 1e-7  # torchvision's default, and ours

# Kinds of (boxes1, boxes2) rows. "generic" kinds have no ties between coordinates, so every
# loss is differentiable there; the others sit on kinks or degenerate geometry.
GENERIC_KINDS = ("random", "disjoint", "contained")
EDGE_KINDS = ("identical", "touching", "zero_width", "zero_height", "point", "zero_width_pair")
ALL_KINDS = GENERIC_KINDS + EDGE_KINDS
ZERO_HEIGHT_KINDS = ("zero_height", "point")  # torchvision's CIoU: atan(w / 0) → NaN gradients


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _box(gen: torch.Generator, scale: float) -> list[float]:
    x1, y1 = (torch.rand(2, generator=gen, dtype=torch.float64) * scale).tolist()
    w, h = ((torch.rand(2, generator=gen, dtype=torch.float64) + 0.05) * scale).tolist()
    return [x1, y1, x1 + w, y1 + h]


def make_pair(gen: torch.Generator, kind: str, scale: float) -> tuple[list[float], list[float]]:
    """One (box1, box2) row of the given kind, XYXY floats."""
    b2 = _box(gen, scale)
    x1, y1, x2, y2 = b2
    w, h = x2 - x1, y2 - y1
    u = torch.rand(4, generator=gen, dtype=torch.float64).tolist()
    if kind == "random":
        return _box(gen, scale), b2
    if kind == "identical":
        return list(b2), b2
    if kind == "disjoint":
        gap = (0.1 + u[0]) * scale
        return [x2 + gap, y1 + u[1] * h, x2 + gap + w * (0.5 + u[2]), y2 + u[3] * scale], b2
    if kind == "contained":
        return [x1 + (0.1 + 0.3 * u[0]) * w, y1 + (0.1 + 0.3 * u[1]) * h,
                x2 - (0.1 + 0.3 * u[2]) * w, y2 - (0.1 + 0.3 * u[3]) * h], b2  # fmt: skip
    if kind == "touching":
        return [x2, y1 + 0.2 * h, x2 + w * (0.5 + u[0]), y2 - 0.2 * h], b2
    if kind == "zero_width":
        x = x1 + u[0] * w
        return [x, y1 - u[1] * h, x, y2 + u[2] * h], b2
    if kind == "zero_height":
        y = y1 + u[0] * h
        return [x1 - u[1] * w, y, x2 + u[2] * w, y], b2
    if kind == "point":
        x, y = x1 + u[0] * w, y1 + u[1] * h
        return [x, y, x, y], b2
    if kind == "zero_width_pair":
        x = x1 + u[0] * w
        return [x, y1, x, y2], [x, y1 + u[1] * h, x, y2 + u[2] * h]
    raise AssertionError(kind)


@st.composite
def box_pairs(draw, kinds: tuple[str, ...] = ALL_KINDS, max_n: int = 12):
    """(boxes1 float64 [N, 4], boxes2 float64 [N, 4], kinds of the N rows)."""
    n = draw(st.integers(1, max_n))
    scale = draw(st.sampled_from([1e-2, 1.0, 50.0, 1000.0]))
    row_kinds = draw(st.lists(st.sampled_from(kinds), min_size=n, max_size=n))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    rows = [make_pair(gen, kind, scale) for kind in row_kinds]
    boxes1 = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    boxes2 = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    return boxes1, boxes2, row_kinds


def value_and_grads(fn, *inputs, **kwargs):
    """``fn``'s output and the gradients of its sum with respect to every input."""
    xs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*xs, **kwargs)
    grads = torch.autograd.grad(out.sum(), xs, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(xs, grads, strict=True)]
    return out.detach(), grads


def assert_same(got_fn, want_fn, *inputs, rtol=1e-9, atol=1e-12, **kwargs):
    got, got_grads = value_and_grads(got_fn, *inputs, **kwargs)
    want, want_grads = value_and_grads(want_fn, *inputs, **kwargs)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------------
# Slow loop oracles, one box pair at a time, from the papers (with torchvision's eps placement)
# --------------------------------------------------------------------------------------------


def _row_geometry(b1, b2):
    """IoU, union, enclosing box area, squared diagonal and squared centre distance of one pair."""
    x1, y1, x2, y2 = b1
    x1g, y1g, x2g, y2g = b2
    iw = min(x2, x2g) - max(x1, x1g)
    ih = min(y2, y2g) - max(y1, y1g)
    inter = iw * ih if (iw > 0 and ih > 0) else 0.0 * iw  # keep a tensor (and the graph)
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + EPS)
    cw = max(x2, x2g) - min(x1, x1g)
    ch = max(y2, y2g) - min(y1, y1g)
    rho_sq = ((x1 + x2) / 2 - (x1g + x2g) / 2) ** 2 + ((y1 + y2) / 2 - (y1g + y2g) / 2) ** 2
    return iou, union, cw * ch, cw**2 + ch**2, rho_sq


def _loop(row_fn, boxes1, boxes2, reduction):
    rows = [row_fn(list(boxes1[i]), list(boxes2[i])) for i in range(boxes1.shape[0])]
    stacked = torch.stack(rows) if rows else boxes1.new_zeros(0)
    if reduction == "mean":
        return stacked.mean() if rows else boxes1.new_zeros(())
    return stacked.sum() if reduction == "sum" else stacked


def iou_oracle(boxes1, boxes2, *, reduction):
    return _loop(lambda a, b: 1 - _row_geometry(a, b)[0], boxes1, boxes2, reduction)


def giou_oracle(boxes1, boxes2, *, reduction):
    def row(a, b):  # Rezatofighi et al. 2019, Algorithm 1: GIoU = IoU - (|C| - U) / |C|
        iou, union, area_c, _, _ = _row_geometry(a, b)
        return 1 - (iou - (area_c - union) / (area_c + EPS))

    return _loop(row, boxes1, boxes2, reduction)


def diou_oracle(boxes1, boxes2, *, reduction):
    def row(a, b):  # Zheng et al. 2020, eq. (6): 1 - IoU + rho^2 / c^2
        iou, _, _, c_sq, rho_sq = _row_geometry(a, b)
        return 1 - iou + rho_sq / (c_sq + EPS)

    return _loop(row, boxes1, boxes2, reduction)


def ciou_oracle(boxes1, boxes2, *, reduction):
    def row(a, b):  # Zheng et al. 2020, eqs. (9)-(11); alpha is not differentiated through
        iou, _, _, c_sq, rho_sq = _row_geometry(a, b)
        w1, h1, w2, h2 = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
        v = 4 / math.pi**2 * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
        alpha = (v / (1 - iou + v + EPS)).detach()
        return 1 - iou + rho_sq / (c_sq + EPS) + alpha * v

    return _loop(row, boxes1, boxes2, reduction)


def smooth_l1_oracle(input, target, *, beta, reduction):
    out = torch.zeros_like(input)
    flat_in, flat_t, flat_out = input.reshape(-1), target.reshape(-1), out.view(-1)
    for i in range(flat_in.numel()):  # Girshick 2015, eq. (3), threshold beta
        d = abs(flat_in[i] - flat_t[i])
        flat_out[i] = 0.5 * d**2 / beta if d < beta else d - 0.5 * beta
    if reduction == "mean":
        return out.mean()
    return out.sum() if reduction == "sum" else out


def sigmoid_focal_oracle(logits, target, *, alpha, gamma, reduction):
    out = torch.zeros_like(logits)
    flat_x, flat_t, flat_out = logits.reshape(-1), target.reshape(-1), out.view(-1)
    for i in range(flat_x.numel()):  # Lin et al. 2017, eq. (5), for soft targets t in [0, 1]
        p, t = torch.sigmoid(flat_x[i]), flat_t[i]
        log_p, log_1mp = F.logsigmoid(flat_x[i]), F.logsigmoid(-flat_x[i])
        ce = -(t * log_p + (1 - t) * log_1mp)
        p_t = p * t + (1 - p) * (1 - t)
        a_t = 1.0 if alpha is None else alpha * t + (1 - alpha) * (1 - t)
        flat_out[i] = a_t * (1 - p_t) ** gamma * ce
    if reduction == "mean":
        return out.mean()
    return out.sum() if reduction == "sum" else out


# --------------------------------------------------------------------------------------------
# IoU family against torchvision
# --------------------------------------------------------------------------------------------

TORCHVISION_IOU = [
    (giou_loss, tvo.generalized_box_iou_loss),
    (diou_loss, tvo.distance_box_iou_loss),
    (ciou_loss, tvo.complete_box_iou_loss),
]


@pytest.mark.parametrize(("ours", "theirs"), TORCHVISION_IOU, ids=["giou", "diou", "ciou"])
@FAST
@given(pairs=box_pairs(), reduction=st.sampled_from(REDUCTIONS))
def test_iou_family_matches_torchvision_values_and_grads(ours, theirs, pairs, reduction):
    boxes1, boxes2, kinds = pairs
    if ours is ciou_loss:
        # torchvision's atan(w / h) has NaN gradients (and NaN values for points) at h = 0;
        # those rows are checked against the oracle in test_ciou_zero_height_is_finite.
        keep = torch.tensor([k not in ZERO_HEIGHT_KINDS for k in kinds])
        boxes1, boxes2 = boxes1[keep], boxes2[keep]
    assert_same(ours, lambda a, b, reduction: theirs(a, b, reduction=reduction), boxes1, boxes2, reduction=reduction)


@pytest.mark.parametrize(("ours", "theirs"), TORCHVISION_IOU, ids=["giou", "diou", "ciou"])
def test_iou_family_matches_torchvision_in_float32(ours, theirs):
    gen = torch.Generator().manual_seed(0)
    rows = [make_pair(gen, kind, 100.0) for kind in GENERIC_KINDS * 20 + ("identical", "touching", "zero_width")]
    boxes1 = torch.tensor([r[0] for r in rows], dtype=torch.float32)
    boxes2 = torch.tensor([r[1] for r in rows], dtype=torch.float32)
    assert_same(ours, lambda a, b, reduction: theirs(a, b, reduction=reduction), boxes1, boxes2,
                reduction="none", rtol=1e-5, atol=1e-6)  # fmt: skip


def test_iou_loss_with_zero_eps_is_one_minus_box_iou():
    gen = torch.Generator().manual_seed(1)
    kinds = ALL_KINDS[:-1] * 10  # a zero_width_pair has U = 0, where box_iou's 0/0 is NaN
    rows = [make_pair(gen, kind, 10.0) for kind in kinds]
    boxes1 = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    boxes2 = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    want = 1 - tvo.box_iou(boxes1, boxes2).diagonal()
    torch.testing.assert_close(iou_loss(boxes1, boxes2, eps=0.0, reduction="none"), want, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------
# IoU family against the loop oracles
# --------------------------------------------------------------------------------------------

ORACLES = [(iou_loss, iou_oracle), (giou_loss, giou_oracle), (diou_loss, diou_oracle), (ciou_loss, ciou_oracle)]
ORACLE_IDS = ["iou", "giou", "diou", "ciou"]


@pytest.mark.parametrize(("ours", "oracle"), ORACLES, ids=ORACLE_IDS)
@FAST
@given(pairs=box_pairs(kinds=GENERIC_KINDS), reduction=st.sampled_from(REDUCTIONS))
def test_iou_family_matches_loop_oracle_values_and_grads(ours, oracle, pairs, reduction):
    boxes1, boxes2, _ = pairs
    assert_same(ours, oracle, boxes1, boxes2, reduction=reduction)


@pytest.mark.parametrize(("ours", "oracle"), ORACLES, ids=ORACLE_IDS)
@FAST
@given(pairs=box_pairs(kinds=ALL_KINDS))
def test_iou_family_matches_loop_oracle_values_on_edge_cases(ours, oracle, pairs):
    boxes1, boxes2, kinds = pairs
    if oracle is ciou_oracle:  # the paper's atan(w / h) is undefined at h = 0
        keep = torch.tensor([k not in ZERO_HEIGHT_KINDS for k in kinds])
        boxes1, boxes2 = boxes1[keep], boxes2[keep]
    got = ours(boxes1, boxes2, reduction="none")
    torch.testing.assert_close(got, oracle(boxes1, boxes2, reduction="none"), rtol=1e-9, atol=1e-12)


def test_iou_family_known_values():
    unit = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    far = torch.tensor([[2.0, 0.0, 3.0, 1.0]])  # disjoint: IoU 0, |C| = 3, U = 2, rho = 2, c^2 = 10
    half = torch.tensor([[0.5, 0.0, 1.5, 1.0]])  # I = 0.5, U = 1.5
    for fn in (iou_loss, giou_loss, diou_loss, ciou_loss):
        assert fn(unit, unit).item() == pytest.approx(0.0, abs=1e-6)  # identical boxes: no loss
    assert iou_loss(unit, far).item() == pytest.approx(1.0)
    assert giou_loss(unit, far).item() == pytest.approx(1 + 1 / 3, rel=1e-6)
    assert diou_loss(unit, far).item() == pytest.approx(1 + 4 / 10, rel=1e-6)
    assert iou_loss(unit, half).item() == pytest.approx(1 - 1 / 3, rel=1e-6)
    assert giou_loss(unit, half).item() == pytest.approx(1 - 1 / 3, rel=1e-6)  # C = U
    wide = torch.tensor([[0.0, 0.0, 2.0, 1.0]])  # same centre row, different aspect ratio
    v = 4 / math.pi**2 * (math.atan(2.0) - math.atan(1.0)) ** 2
    iou = 0.5
    rho_sq, c_sq = 0.25, 5.0
    want = 1 - iou + rho_sq / c_sq + v / (1 - iou + v) * v
    assert ciou_loss(unit, wide).item() == pytest.approx(want, rel=1e-6)


def test_ciou_zero_height_is_finite():
    gen = torch.Generator().manual_seed(2)
    rows = [make_pair(gen, kind, 5.0) for kind in ZERO_HEIGHT_KINDS * 5]
    boxes1 = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    boxes2 = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    loss, (g1, g2) = value_and_grads(ciou_loss, boxes1, boxes2, reduction="none")
    assert loss.isfinite().all() and g1.isfinite().all() and g2.isfinite().all()
    theirs = tvo.complete_box_iou_loss(boxes1, boxes2)
    finite = theirs.isfinite()  # zero-height lines: atan(w / 0) = pi / 2 in torchvision too
    assert finite.any()
    torch.testing.assert_close(loss[finite], theirs[finite], rtol=1e-9, atol=1e-12)
    # A point box has angle 0 (our convention): v compares the target's angle with 0.
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    box = torch.tensor([[0.0, 0.0, 2.0, 3.0]], dtype=torch.float64)
    v = 4 / math.pi**2 * math.atan(2 / 3) ** 2
    want = 1 - 0 + ((1 - 1) ** 2 + (1 - 1.5) ** 2) / (4 + 9 + EPS) + v / (1 + v + EPS) * v
    assert ciou_loss(point, box).item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("fn", [iou_loss, giou_loss, diou_loss, ciou_loss])
def test_iou_family_is_symmetric_and_in_range(fn):
    gen = torch.Generator().manual_seed(3)
    rows = [make_pair(gen, kind, 10.0) for kind in ALL_KINDS * 5]
    boxes1 = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    boxes2 = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    loss = fn(boxes1, boxes2, reduction="none")
    torch.testing.assert_close(loss, fn(boxes2, boxes1, reduction="none"), rtol=1e-12, atol=1e-15)
    assert (loss >= -1e-12).all() and (loss <= 3).all()


# --------------------------------------------------------------------------------------------
# gradcheck (float64, small inputs away from kinks)
# --------------------------------------------------------------------------------------------


def _gradcheck_boxes():
    boxes1 = torch.tensor(
        [[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 4.0, 2.5], [0.2, 0.3, 0.9, 0.8], [5.0, 5.0, 6.0, 7.5]], dtype=torch.float64
    )
    # partial overlap, contains the first, contained, disjoint
    boxes2 = torch.tensor(
        [[1.0, 0.5, 3.0, 2.0], [0.5, 0.7, 4.5, 3.0], [0.1, 0.1, 1.3, 1.1], [1.0, 2.0, 2.5, 3.0]], dtype=torch.float64
    )
    return boxes1.requires_grad_(True), boxes2.requires_grad_(True)


@pytest.mark.parametrize("fn", [iou_loss, giou_loss, diou_loss])
def test_iou_family_gradcheck(fn):
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, reduction="none"), _gradcheck_boxes())


def test_ciou_gradient_is_derivative_with_alpha_held_constant():
    # gradcheck on ciou itself must fail by design (alpha is detached); check instead that our
    # gradient is exactly the derivative of DIoU + alpha0 * v with alpha0 frozen at the point.
    boxes1, boxes2 = _gradcheck_boxes()
    with torch.no_grad():
        alpha0 = (ciou_loss(boxes1, boxes2, reduction="none") - diou_loss(boxes1, boxes2, reduction="none")) / _v(
            boxes1, boxes2
        )

    def frozen(a, b):
        return diou_loss(a, b, reduction="none") + alpha0 * _v(a, b)

    assert torch.autograd.gradcheck(frozen, (boxes1, boxes2))
    got = torch.autograd.grad(ciou_loss(boxes1, boxes2, reduction="sum"), (boxes1, boxes2))
    want = torch.autograd.grad(frozen(boxes1, boxes2).sum(), (boxes1, boxes2))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    assert not torch.autograd.gradcheck(
        lambda a, b: ciou_loss(a, b, reduction="none"), (boxes1, boxes2), raise_exception=False
    )


def _v(a, b):
    w1, h1, w2, h2 = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return 4 / math.pi**2 * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2


def test_smooth_l1_and_focal_gradcheck():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: smooth_l1_loss(a, t, beta=0.7, reduction="none"), (x,))
    soft = torch.rand(5, 4, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: sigmoid_focal_loss(a, soft, reduction="none"), (x,))
    assert torch.autograd.gradcheck(lambda a: sigmoid_focal_loss(a, soft, alpha=None, gamma=0.5), (x,))


# --------------------------------------------------------------------------------------------
# Smooth L1 and sigmoid focal against torch / torchvision and the oracles
# --------------------------------------------------------------------------------------------


@st.composite
def regressions(draw):
    n = draw(st.integers(1, 10))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randn(n, 4, generator=gen, dtype=torch.float64) * scale
    t = torch.randn(n, 4, generator=gen, dtype=torch.float64) * scale
    if draw(st.booleans()):
        t[0] = x[0]  # d = 0 exactly: the kink of L1 when beta = 0
    return x, t


@FAST
@given(xt=regressions(), beta=st.sampled_from([0.0, 1 / 9, 0.5, 1.0, 3.0]), reduction=st.sampled_from(REDUCTIONS))
def test_smooth_l1_matches_torch_and_oracle(xt, beta, reduction):
    x, t = xt

    def torch_fn(a, b, *, beta, reduction):
        return F.smooth_l1_loss(a, b, beta=beta, reduction=reduction)

    assert_same(lambda a, b, **kw: smooth_l1_loss(a, b, **kw), torch_fn, x, t, beta=beta, reduction=reduction)
    if beta > 0:  # the oracle's d**2 / beta is the formula for beta > 0 only
        assert_same(lambda a, b, **kw: smooth_l1_loss(a, b, **kw), smooth_l1_oracle, x, t, beta=beta,
                    reduction=reduction)  # fmt: skip


def test_smooth_l1_at_beta_boundary():
    # |d| == beta is on the linear branch in torch (|d| < beta is quadratic); both have slope 1.
    x = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    assert_same(
        lambda a, **kw: smooth_l1_loss(a, torch.zeros(3, dtype=torch.float64), **kw),
        lambda a, **kw: F.smooth_l1_loss(a, torch.zeros(3, dtype=torch.float64), **kw),
        x,
        beta=1.0,
        reduction="none",
    )


@st.composite
def focal_problems(draw):
    shape = draw(st.sampled_from([(7,), (3, 5), (2, 3, 4)]))
    scale = draw(st.sampled_from([1e-2, 1.0, 8.0, 40.0]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    logits = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
    if draw(st.booleans()):
        target = (torch.rand(shape, generator=gen) < 0.3).to(torch.float64)
    else:
        target = torch.rand(shape, generator=gen, dtype=torch.float64)  # soft targets
    return logits, target


@FAST
@given(
    problem=focal_problems(),
    alpha=st.sampled_from([None, 0.0, 0.25, 0.9]),
    gamma=st.sampled_from([0.0, 1.0, 2.0, 3.5]),
    reduction=st.sampled_from(REDUCTIONS),
)
def test_sigmoid_focal_matches_torchvision_and_oracle(problem, alpha, gamma, reduction):
    logits, target = problem

    def theirs(x, *, alpha, gamma, reduction):
        return tvo.sigmoid_focal_loss(x, target, alpha=-1 if alpha is None else alpha, gamma=gamma, reduction=reduction)

    def ours(x, **kw):
        return sigmoid_focal_loss(x, target, **kw)

    assert_same(ours, theirs, logits, alpha=alpha, gamma=gamma, reduction=reduction)
    # The oracle's log-sigmoid form differs in rounding from BCE-with-logits at large |x|.
    assert_same(ours, lambda x, **kw: sigmoid_focal_oracle(x, target, **kw), logits, alpha=alpha, gamma=gamma,
                reduction=reduction, rtol=1e-7, atol=1e-10)  # fmt: skip


def test_sigmoid_focal_with_gamma_zero_and_no_alpha_is_bce():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    t = (torch.rand(6, 3, generator=gen) < 0.5).to(torch.float64)
    want = F.binary_cross_entropy_with_logits(x, t)
    torch.testing.assert_close(sigmoid_focal_loss(x, t, alpha=None, gamma=0.0), want, rtol=1e-14, atol=0)


# --------------------------------------------------------------------------------------------
# Empty batches, dtypes, registry, bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [iou_loss, giou_loss, diou_loss, ciou_loss, smooth_l1_loss])
def test_empty_batch_mean_is_zero_with_grad(fn):
    a = torch.zeros(0, 4, requires_grad=True)
    b = torch.zeros(0, 4)
    loss = fn(a, b, reduction="mean")
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert a.grad.shape == (0, 4)
    assert fn(a, b, reduction="sum").item() == 0.0
    assert fn(a, b, reduction="none").shape[0] == 0


def test_sigmoid_focal_empty_mean_is_zero():
    assert sigmoid_focal_loss(torch.zeros(0, 3), torch.zeros(0, 3)).item() == 0.0


@pytest.mark.parametrize("fn", [iou_loss, giou_loss, diou_loss, ciou_loss])
def test_integer_and_half_boxes_are_upcast_to_float32(fn):
    a = torch.tensor([[0, 0, 4, 4], [1, 1, 3, 5]])
    b = torch.tensor([[1, 1, 5, 3], [0, 0, 2, 2]])
    got = fn(a, b, reduction="none")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, fn(a.float(), b.float(), reduction="none"))
    assert fn(a.half(), b.half(), reduction="none").dtype == torch.float32


def test_registry_table():
    assert DETECTION_LOSSES == {
        "smooth_l1": smooth_l1_loss,
        "iou": iou_loss,
        "giou": giou_loss,
        "diou": diou_loss,
        "ciou": ciou_loss,
        "sigmoid_focal": sigmoid_focal_loss,
    }


@pytest.mark.parametrize("fn", [iou_loss, giou_loss, diou_loss, ciou_loss])
def test_bad_boxes_raise(fn):
    good = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r"boxes1 must be XYXY with x1 <= x2.*row 0.*box_convert"):
        fn(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), good)
    with pytest.raises(ValueError, match=r"boxes2 must be XYXY"):
        fn(good, torch.tensor([[0.0, 1.0, 1.0, 0.5]]))
    with pytest.raises(ValueError, match=r"must have shape \[N, 4\]"):
        fn(good[0], good[0])
    with pytest.raises(ValueError, match="same shape"):
        fn(good, good.repeat(2, 1))
    with pytest.raises(TypeError, match="same dtype"):
        fn(good, good.double())
    with pytest.raises(TypeError, match="boxes2 must be a torch.Tensor"):
        fn(good, [[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="reduction must be one of"):
        fn(good, good, reduction="avg")
    with pytest.raises(ValueError, match="eps must be >= 0"):
        fn(good, good, eps=-1.0)


def test_bad_options_raise():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match="same shape"):
        smooth_l1_loss(x, x[:1])
    with pytest.raises(TypeError, match="input must be a floating-point"):
        smooth_l1_loss(x.long(), x)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\] or None"):
        sigmoid_focal_loss(x, x, alpha=-1)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        sigmoid_focal_loss(x, x, gamma=-0.5)
    with pytest.raises(ValueError, match=r"target must hold values in \[0, 1\]"):
        sigmoid_focal_loss(x, x + 2)
    with pytest.raises(ValueError, match="target must be a tensor of the shape of logits"):
        sigmoid_focal_loss(x, x[0])


# ----------------------------------------------------------------------------------- the registry


def test_the_registry_holds_every_detection_loss_by_kind():
    from visionbench.losses import DETECTION_LOSSES as REGISTRY
    from visionbench.losses import detection_loss_names

    assert set(REGISTRY.names()) == set(DETECTION_LOSSES)
    assert detection_loss_names("box") == ["ciou", "diou", "giou", "iou", "smooth_l1"]
    assert detection_loss_names("classification") == ["sigmoid_focal"]
    assert all(REGISTRY.info(name)["task"] == "detect" and REGISTRY.info(name)["description"] for name in REGISTRY.names())


def test_the_config_choices_are_the_registered_box_losses():
    from visionbench.config import DetectConfig, config_fields
    from visionbench.losses import detection_loss_names

    field = next(f for f in config_fields(DetectConfig) if f.name == "box_loss")
    assert field.default == "auto" and sorted(field.metadata["choices"]) == sorted(["auto", *detection_loss_names("box")])


def test_registered_losses_are_their_functions_per_pair():
    from visionbench.losses import create_detection_loss, detection_loss_names

    pred = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 3.0, 5.0], [2.0, 0.5, 6.0, 2.0]])
    target = torch.tensor([[1.0, 1.0, 5.0, 3.0], [0.0, 0.0, 2.0, 2.0], [2.0, 0.5, 6.0, 2.0]])
    for name in detection_loss_names("box"):
        loss = create_detection_loss(name, kind="box")
        if name == "smooth_l1":  # per coordinate, summed per box; beta 1/9 (Detectron)
            expected = smooth_l1_loss(pred, target, beta=1 / 9, reduction="none").sum(1)
            assert loss.on == "encoded"
        else:
            expected = DETECTION_LOSSES[name](pred, target, reduction="none")
            assert loss.on == "boxes"
        assert torch.equal(loss(pred, target), expected), name
    logits, onehot = torch.randn(2, 5, 3), (torch.rand(2, 5, 3) > 0.7).float()
    focal = create_detection_loss("sigmoid_focal", kind="classification")
    assert torch.equal(focal(logits, onehot), sigmoid_focal_loss(logits, onehot, alpha=0.25, gamma=2.0, reduction="none"))


def test_a_loss_of_the_other_kind_is_refused():
    from visionbench.losses import create_detection_loss

    with pytest.raises(ValueError, match=r"classification loss must be one of \['sigmoid_focal'\]; got 'giou', a box loss"):
        create_detection_loss("giou", kind="classification")
    with pytest.raises(ValueError, match="unknown detection loss 'smoothl1'. Did you mean 'smooth_l1'"):
        create_detection_loss("smoothl1", kind="box")
