"""Detection losses: box regression (Smooth L1, IoU, GIoU, DIoU, CIoU) and sigmoid focal loss.

Pure functions on tensors. Boxes are ``[N, 4]`` in XYXY, ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and
``y1 <= y2`` (torchvision's convention), one predicted box per target box, row by row.

The IoU family reproduces :mod:`torchvision.ops` (``generalized_box_iou_loss``,
``distance_box_iou_loss``, ``complete_box_iou_loss``, torchvision 0.29) value for value and
gradient for gradient, including its ``eps`` convention:

* ``IoU = I / (U + eps)``, where the intersection ``I`` is 0 unless the boxes overlap with a
  *strictly* positive width and height (torchvision's ``_loss_inter_union`` mask, so a touching
  edge gives no gradient through the intersection);
* GIoU divides by ``area(C) + eps``; DIoU divides by ``diag(C)**2 + eps``; CIoU's trade-off weight
  is ``alpha = v / (1 - IoU + v + eps)``, held constant for the gradient (computed under
  ``no_grad``, as torchvision and detectron2 do);
* integer and half-precision boxes are computed in float32 (torchvision's ``_upcast_non_float``).

Differences from torchvision, all where torchvision gives NaN or ignores an argument:

* ``reduction="mean"`` of an empty batch is 0 for every loss here (torchvision does this for the
  IoU family; ``sigmoid_focal_loss`` and ``torch.nn.functional.smooth_l1_loss`` return NaN). A
  detector batch without positive boxes then adds 0, not NaN;
* CIoU's aspect term uses ``atan2(w, h)`` instead of ``atan(w / h)``: equal for ``h > 0``, but
  finite (value and gradient) for boxes of zero height, where torchvision gives NaN;
* CIoU uses ``eps`` everywhere; torchvision's ``complete_box_iou_loss`` passes a non-default
  ``eps`` only to ``alpha`` (its IoU/DIoU part keeps 1e-7). With the default they are identical.

Example:
    >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    >>> gt = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    >>> giou_loss(pred, gt)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from visionbench.losses.device_checks import assert_on_device, asserts_on_device
from visionbench.losses.reduction import Reduction, check_reduction

__all__ = [
    "DETECTION_LOSSES",
    "ciou_loss",
    "diou_loss",
    "giou_loss",
    "iou_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
]


# --------------------------------------------------------------------------------------------
# Validation and reduction
# --------------------------------------------------------------------------------------------


def _check_eps(eps: float) -> None:
    if not eps >= 0.0:
        raise ValueError(f"eps must be >= 0; got {eps!r}. The default 1e-7 matches torchvision.")


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """float32/float64 stay; anything else (int, float16, bfloat16) becomes float32, as torchvision does."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _check_boxes(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raise unless both are ``[N, 4]`` XYXY with ``x1 <= x2`` and ``y1 <= y2``; return them upcast."""
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(boxes, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(boxes).__name__}.")
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(
                f"{name} must have shape [N, 4] (x1, y1, x2, y2); got shape {tuple(boxes.shape)}. "
                "Use boxes[None] for a single box."
            )
    if boxes1.shape != boxes2.shape:
        raise ValueError(
            f"boxes1 and boxes2 must have the same shape (one predicted box per target box); got "
            f"{tuple(boxes1.shape)} and {tuple(boxes2.shape)}. Match predictions to targets first."
        )
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    if boxes1.dtype != boxes2.dtype:
        raise TypeError(
            f"boxes1 and boxes2 must have the same dtype; got {boxes1.dtype} and {boxes2.dtype}. "
            "Convert one with .to(other.dtype)."
        )
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if asserts_on_device(boxes):  # no host sync per training step (see visionbench.losses.device_checks)
            assert_on_device(~inverted, f"{name} must be XYXY with x1 <= x2 and y1 <= y2.")
            continue
        bad = inverted.nonzero()  # one device sync for the whole check
        if bad.numel():
            row = int(bad[0, 0])
            raise ValueError(
                f"{name} must be XYXY with x1 <= x2 and y1 <= y2; got {boxes[row].tolist()!r} at row {row}. "
                "Convert XYWH/CXCYWH boxes with torchvision.ops.box_convert, or decode predictions so that "
                "x2 >= x1 and y2 >= y1."
            )
    return boxes1, boxes2


def _checked_boxes(
    boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float, reduction: Reduction
) -> tuple[torch.Tensor, torch.Tensor]:
    """The IoU family's checks: ``reduction``, ``eps``, then the boxes; return the boxes upcast."""
    check_reduction(reduction, "box")
    _check_eps(eps)
    return _check_boxes(boxes1, boxes2)


def _reduce(loss: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """Mean/sum/none; the mean of an empty tensor is 0 (torchvision's IoU losses), kept in the graph."""
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


# --------------------------------------------------------------------------------------------
# Box geometry shared by the IoU family
# --------------------------------------------------------------------------------------------


def _inter_union(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Intersection and union areas, ``[N]`` each."""
    x1, y1, x2, y2 = boxes1.unbind(dim=1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=1)
    inter_w = torch.minimum(x2, x2g) - torch.maximum(x1, x1g)
    inter_h = torch.minimum(y2, y2g) - torch.maximum(y1, y1g)
    # Strict '>' on both sides, as torchvision's _loss_inter_union mask: touching or disjoint boxes
    # have I = 0 with a zero gradient (a clamp(min=0) would pass a gradient at exactly 0).
    overlaps = (inter_w > 0) & (inter_h > 0)
    inter = torch.where(overlaps, inter_w * inter_h, torch.zeros_like(inter_w))
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def _enclosing_wh(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Width and height of the smallest box C enclosing both, ``[N]`` each."""
    width = torch.maximum(boxes1[:, 2], boxes2[:, 2]) - torch.minimum(boxes1[:, 0], boxes2[:, 0])
    height = torch.maximum(boxes1[:, 3], boxes2[:, 3]) - torch.minimum(boxes1[:, 1], boxes2[:, 1])
    return width, height


def _iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``IoU = I / (U + eps)`` and the union ``U``, ``[N]`` each."""
    inter, union = _inter_union(boxes1, boxes2)
    return inter / (union + eps), union


def _diou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DIoU loss ``1 - IoU + rho**2 / (c**2 + eps)`` and the IoU, ``[N]`` each."""
    iou, _ = _iou(boxes1, boxes2, eps)
    enclosing_w, enclosing_h = _enclosing_wh(boxes1, boxes2)
    diagonal_sq = enclosing_w**2 + enclosing_h**2 + eps  # c**2, Zheng et al. 2020 eq. (6)
    # Box centres are (x1 + x2) / 2; their squared distance is rho**2.
    dx = (boxes1[:, 0] + boxes1[:, 2]) / 2 - (boxes2[:, 0] + boxes2[:, 2]) / 2
    dy = (boxes1[:, 1] + boxes1[:, 3]) / 2 - (boxes2[:, 1] + boxes2[:, 3]) / 2
    return 1 - iou + (dx**2 + dy**2) / diagonal_sq, iou


def _aspect_angle(boxes: torch.Tensor) -> torch.Tensor:
    """``arctan(w / h)`` per box, ``[N]``, written as ``atan2(w, h)`` so that ``h = 0`` stays finite.

    A point box (``w = h = 0``) gets angle 0 through a safe denominator: ``atan2``'s gradient is
    0/0 there.
    """
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    point = (width == 0) & (height == 0)
    return torch.atan2(width, torch.where(point, torch.ones_like(height), height))


# --------------------------------------------------------------------------------------------
# Public losses
# --------------------------------------------------------------------------------------------


def smooth_l1_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    beta: float = 1.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Smooth L1 (Huber-like) loss, element-wise, as :func:`torch.nn.functional.smooth_l1_loss`.

    ``loss = 0.5 * d**2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 * beta``, with ``d = input - target``
    (Girshick 2015, "Fast R-CNN", eq. 3, which uses ``beta = 1``). ``beta = 0`` is the L1 loss.
    ``"mean"`` averages over all elements (torch's convention; 0 for an empty tensor, where torch
    gives NaN).

    Args:
        input: float ``[N, 4]`` (box coordinates or encoded regression deltas; any shape works).
        target: float, the shape of ``input``.
        beta: the threshold ``>= 0`` where the loss turns from quadratic to linear.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (the shape of ``input``).

    Returns:
        The loss: a scalar, or a tensor shaped like ``input`` for ``reduction="none"``.

    Example:
        >>> smooth_l1_loss(torch.tensor([[0.5, 2.0]]), torch.zeros(1, 2), reduction="none")
        tensor([[0.1250, 1.5000]])
    """
    check_reduction(reduction, "box")
    for name, t in (("input", input), ("target", target)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(f"{name} must be a floating-point torch.Tensor; got {got}. Convert with .float().")
    if input.shape != target.shape:
        raise ValueError(
            f"input and target must have the same shape; got {tuple(input.shape)} and "
            f"{tuple(target.shape)}. Match each prediction to its target first."
        )
    if not beta >= 0.0:
        raise ValueError(f"beta must be >= 0; got {beta!r}. Fast R-CNN uses 1.0; 0 gives the L1 loss.")
    diff = (input - target).abs()
    if beta == 0.0:
        # torch special-cases beta == 0 as L1; the quadratic branch would divide by zero
        # (and poison the gradient with 0 * inf even when torch.where does not select it).
        return _reduce(diff, reduction)
    loss = torch.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta)
    return _reduce(loss, reduction)


def iou_loss(
    boxes1: torch.Tensor,
    boxes2: torch.Tensor,
    *,
    eps: float = 1e-7,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """IoU loss, ``1 - IoU`` per box pair (the linear IoU loss; Yu et al. 2016 use ``-ln IoU``).

    ``IoU = I / (U + eps)``, with torchvision's eps convention (see the module docstring). Its
    gradient is 0 for boxes that do not overlap: use :func:`giou_loss` or :func:`diou_loss` then.
    Symmetric in ``boxes1`` and ``boxes2``.

    Args:
        boxes1: float ``[N, 4]`` XYXY, e.g. predicted boxes.
        boxes2: float ``[N, 4]`` XYXY, e.g. the matched target boxes.
        eps: added to the union; 0 gives the plain IoU of :func:`torchvision.ops.box_iou`.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N]``).

    Returns:
        The loss in ``[0, 1]``: a scalar, or ``[N]`` for ``reduction="none"``.
    """
    boxes1, boxes2 = _checked_boxes(boxes1, boxes2, eps, reduction)
    iou, _ = _iou(boxes1, boxes2, eps)
    return _reduce(1 - iou, reduction)


def giou_loss(
    boxes1: torch.Tensor,
    boxes2: torch.Tensor,
    *,
    eps: float = 1e-7,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Generalized IoU loss, as :func:`torchvision.ops.generalized_box_iou_loss`.

    ``loss = 1 - IoU + (|C| - U) / (|C| + eps)`` with C the smallest box enclosing both
    (Rezatofighi et al. 2019, "Generalized Intersection over Union", Algorithm 1/2), IoU with the
    eps convention of the module docstring. Symmetric in ``boxes1`` and ``boxes2``.

    Args:
        boxes1: float ``[N, 4]`` XYXY, e.g. predicted boxes.
        boxes2: float ``[N, 4]`` XYXY, e.g. the matched target boxes.
        eps: guards the divisions by ``U`` and ``|C|``; 1e-7 as torchvision.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N]``).

    Returns:
        The loss in ``[0, 2]``: a scalar, or ``[N]`` for ``reduction="none"``.
    """
    boxes1, boxes2 = _checked_boxes(boxes1, boxes2, eps, reduction)
    iou, union = _iou(boxes1, boxes2, eps)
    enclosing_w, enclosing_h = _enclosing_wh(boxes1, boxes2)
    area_c = enclosing_w * enclosing_h
    giou = iou - (area_c - union) / (area_c + eps)  # 1 - giou, in torchvision's order of operations
    return _reduce(1 - giou, reduction)


def diou_loss(
    boxes1: torch.Tensor,
    boxes2: torch.Tensor,
    *,
    eps: float = 1e-7,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Distance IoU loss, as :func:`torchvision.ops.distance_box_iou_loss`.

    ``loss = 1 - IoU + rho**2 / (c**2 + eps)``, with rho the distance between the box centres and c
    the diagonal of the smallest enclosing box (Zheng et al. 2020, "Distance-IoU Loss", eq. 6).
    Symmetric in ``boxes1`` and ``boxes2``.

    Args:
        boxes1: float ``[N, 4]`` XYXY, e.g. predicted boxes.
        boxes2: float ``[N, 4]`` XYXY, e.g. the matched target boxes.
        eps: guards the divisions by ``U`` and ``c**2``; 1e-7 as torchvision.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N]``).

    Returns:
        The loss in ``[0, 2)``: a scalar, or ``[N]`` for ``reduction="none"``.
    """
    boxes1, boxes2 = _checked_boxes(boxes1, boxes2, eps, reduction)
    loss, _ = _diou(boxes1, boxes2, eps)
    return _reduce(loss, reduction)


def ciou_loss(
    boxes1: torch.Tensor,
    boxes2: torch.Tensor,
    *,
    eps: float = 1e-7,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Complete IoU loss, as :func:`torchvision.ops.complete_box_iou_loss`.

    ``loss = DIoU loss + alpha * v`` with ``v = 4 / pi**2 * (arctan(w2/h2) - arctan(w1/h1))**2``
    and ``alpha = v / (1 - IoU + v + eps)`` (Zheng et al. 2020, eqs. 9-11). ``alpha`` is a constant
    for the gradient, as in torchvision/detectron2, so the gradient is *not* the derivative of the
    value with respect to alpha's inputs. The arctangent is ``atan2(w, h)``: finite for zero-height
    boxes, where torchvision gives NaN. Symmetric in ``boxes1`` and ``boxes2``.

    Args:
        boxes1: float ``[N, 4]`` XYXY, e.g. predicted boxes.
        boxes2: float ``[N, 4]`` XYXY, e.g. the matched target boxes.
        eps: guards the divisions by ``U``, ``c**2`` and in ``alpha``; 1e-7 as torchvision.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N]``).

    Returns:
        The loss in ``[0, 3)``: a scalar, or ``[N]`` for ``reduction="none"``.
    """
    boxes1, boxes2 = _checked_boxes(boxes1, boxes2, eps, reduction)
    diou, iou = _diou(boxes1, boxes2, eps)
    v = (4 / math.pi**2) * (_aspect_angle(boxes2) - _aspect_angle(boxes1)) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return _reduce(diou + alpha * v, reduction)


def sigmoid_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Sigmoid focal loss, element-wise, as :func:`torchvision.ops.sigmoid_focal_loss`.

    ``loss = -alpha_t * (1 - p_t)**gamma * log(p_t)`` with ``p = sigmoid(x)``,
    ``p_t = p * t + (1 - p) * (1 - t)`` and ``alpha_t = alpha * t + (1 - alpha) * (1 - t)``
    (Lin et al. 2017, "Focal Loss for Dense Object Detection", eq. 5, the loss of RetinaNet). The
    log term is :func:`torch.nn.functional.binary_cross_entropy_with_logits`, stable for large
    ``|x|``. ``"mean"`` averages over all elements (0 for an empty tensor, where torchvision gives
    NaN); RetinaNet instead sums and divides by the number of positive anchors: use ``"sum"``.

    Args:
        logits: float, any shape, e.g. ``[A, K]`` (anchors, classes), unnormalised scores.
        target: float, the shape of ``logits``, in ``[0, 1]`` (1 = positive, 0 = negative).
        alpha: weight in ``[0, 1]`` of the positives (negatives get ``1 - alpha``); ``None``
            disables it (torchvision's ``alpha=-1``).
        gamma: focusing parameter ``>= 0``; 0 with ``alpha=None`` is binary cross entropy.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (the shape of ``logits``).

    Returns:
        The loss: a scalar, or a tensor shaped like ``logits`` for ``reduction="none"``.
    """
    check_reduction(reduction, "box")
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point torch.Tensor; got {got}. Pass the raw model outputs.")
    if not isinstance(target, torch.Tensor) or target.shape != logits.shape:
        got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(
            f"target must be a tensor of the shape of logits {tuple(logits.shape)}; got {got}. "
            "One-hot encode class labels first (background = all zeros)."
        )
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] or None; got {alpha!r}. RetinaNet uses 0.25.")
    if not gamma >= 0.0:
        raise ValueError(f"gamma must be >= 0; got {gamma!r}. RetinaNet uses 2.")
    target = target.to(logits.dtype)
    invalid = (target < 0) | (target > 1) | target.isnan()
    if asserts_on_device(target):  # no host sync per training step (see visionbench.losses.device_checks)
        assert_on_device(~invalid, "target must hold values in [0, 1]; use 1 for positives, 0 for negatives.")
    elif invalid.any():
        raise ValueError(
            f"target must hold values in [0, 1]; got {float(target[invalid][0])!r}. Use 1 for positives, 0 for "
            "negatives."
        )
    p = torch.sigmoid(logits)
    log_term = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = log_term * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return _reduce(loss, reduction)


DETECTION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "smooth_l1": smooth_l1_loss,
    "iou": iou_loss,
    "giou": giou_loss,
    "diou": diou_loss,
    "ciou": ciou_loss,
    "sigmoid_focal": sigmoid_focal_loss,
}
"""Name → functional detection loss, for registration in :mod:`visionbench.losses`."""
