"""Segmentation losses on pixel logits: cross entropy, soft Dice, focal, and CE + Dice.

Pure functions. ``logits`` are float ``[N, K, H, W]`` (raw scores of K classes per pixel) and
``target`` is int64 ``[N, H, W]`` with labels in ``[0, K)`` or ``ignore_index`` (255 by default,
the visionbench sample contract). Ignored pixels contribute nothing: changing their logits changes
neither the loss nor the gradient of any other pixel, and their own gradient is 0.

**All pixels ignored.** Every loss here returns 0 (with a zero gradient, never NaN) when no pixel
is labelled, so a crop that falls entirely in a "void" region does not poison a training step.
:func:`torch.nn.functional.cross_entropy` returns NaN (0/0) in that case; it is the only place
where :func:`pixel_cross_entropy` differs from it.

Example:
    >>> logits = torch.randn(2, 3, 4, 4)
    >>> target = torch.randint(0, 3, (2, 4, 4))
    >>> ce_dice_loss(logits, target)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from visionbench.losses.classification import _class_weight, _softmax_focal
from visionbench.losses.device_checks import assert_on_device, asserts_on_device
from visionbench.losses.reduction import Reduction, check_reduction

__all__ = [
    "SEGMENTATION_LOSSES",
    "ce_dice_loss",
    "dice_loss",
    "pixel_cross_entropy",
    "pixel_focal_loss",
]


# --------------------------------------------------------------------------------------------
# Validation (shared by every loss)
# --------------------------------------------------------------------------------------------


def _check_inputs(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Validate ``logits`` ``[N, K, H, W]`` and ``target`` ``[N, H, W]``; return the valid-pixel mask."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor; got {type(logits).__name__}.")
    if logits.ndim != 4 or logits.shape[1] < 1:
        raise ValueError(
            f"logits must have shape [N, K, H, W] (images, classes, height, width); got shape "
            f"{tuple(logits.shape)}. Add the batch dimension with logits[None]."
        )
    if not logits.is_floating_point():
        raise TypeError(
            f"logits must be a floating-point tensor; got dtype {logits.dtype}. Pass the model's raw outputs."
        )
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor; got {type(target).__name__}.")
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise TypeError(
            f"target must hold integer class labels (int64); got dtype {target.dtype}. Convert with target.long()."
        )
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target must have shape [N, H, W] = {list(expected)} to match logits {tuple(logits.shape)}; "
            f"got shape {tuple(target.shape)}. Pass one class index per pixel (not one-hot)."
        )
    num_classes = logits.shape[1]
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    outside = valid & ((target < 0) | (target >= num_classes))
    if asserts_on_device(target):  # no host sync per training step (see visionbench.losses.device_checks)
        assert_on_device(~outside, f"target holds a label outside [0, {num_classes}) that is not ignore_index="
                         f"{ignore_index!r}; check num_classes or the mask encoding.")
        return valid
    bad = target[outside]  # one device sync for the whole check
    if bad.numel():
        raise ValueError(
            f"target contains label {int(bad[0])} but the model has {num_classes} outputs (labels must be in "
            f"[0, {num_classes}) or ignore_index={ignore_index!r}); check num_classes or the mask encoding."
        )
    return valid


def _safe_target(target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Labels with ignored pixels set to class 0, so they can index; ``valid`` masks them later."""
    return torch.where(valid, target, torch.zeros_like(target)).long()


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator`` where a zero denominator (no labelled pixel) gives 0, not NaN.

    The numerator is then 0 as well, and clamping the denominator (instead of ``torch.where``)
    keeps the gradient 0 rather than ``0 * inf``.
    """
    return numerator / denominator.clamp(min=torch.finfo(numerator.dtype).tiny)


def _check_dice_args(smooth: float, eps: float) -> None:
    """Raise unless ``smooth >= 0`` and ``eps > 0``."""
    if not smooth >= 0.0:
        raise ValueError(f"smooth must be >= 0; got {smooth!r}. Use 0 (smp's default) or 1.")
    if not eps > 0.0:
        raise ValueError(f"eps must be > 0; got {eps!r}. smp uses 1e-7.")


# --------------------------------------------------------------------------------------------
# Loss bodies on checked inputs: the public losses check, then call these, so that
# ce_dice_loss validates the mask (a full pass and a device sync) only once for both terms.
# ``valid`` is _check_inputs' mask and ``safe`` is _safe_target(target, valid).
# --------------------------------------------------------------------------------------------


def _cross_entropy_body(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    safe: torch.Tensor,
    weight: torch.Tensor | None,
    ignore_index: int | None,
    reduction: Reduction,
) -> torch.Tensor:
    """:func:`pixel_cross_entropy` on checked inputs (``weight`` already from ``_class_weight``)."""
    # torch's own kernel for the per-pixel terms; -100 is its "no ignore" default, never a label here.
    torch_ignore = -100 if ignore_index is None else ignore_index
    if reduction != "mean":
        return F.cross_entropy(logits, target, weight=weight, ignore_index=torch_ignore, reduction=reduction)
    total = F.cross_entropy(logits, target, weight=weight, ignore_index=torch_ignore, reduction="sum")
    pixel_weight = valid.to(logits.dtype) if weight is None else weight[safe] * valid
    return _safe_divide(total, pixel_weight.sum())


def _dice_body(
    logits: torch.Tensor,
    valid: torch.Tensor,
    safe: torch.Tensor,
    smooth: float,
    eps: float,
    reduction: Reduction,
) -> torch.Tensor:
    """:func:`dice_loss` on checked inputs."""
    num_classes = logits.shape[1]
    mask = valid[:, None].to(logits.dtype)  # [N, 1, H, W]
    # log_softmax().exp() as smp: the same probabilities, better behaved gradients at extremes.
    probs = logits.log_softmax(dim=1).exp() * mask  # [N, K, H, W]
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).to(logits.dtype) * mask
    dims = (0, 2, 3)  # the batch and every pixel: one Dice per class
    intersection = (probs * onehot).sum(dims)  # [K]
    cardinality = (probs + onehot).sum(dims)  # [K]
    dice = (2.0 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)
    present = onehot.sum(dims) > 0  # [K]
    loss = (1.0 - dice) * present.to(logits.dtype)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


# --------------------------------------------------------------------------------------------
# Public losses
# --------------------------------------------------------------------------------------------


def pixel_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int | None = 255,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Per-pixel softmax cross entropy, as :func:`torch.nn.functional.cross_entropy`.

    ``loss_p = -w_{y_p} log softmax(x_p)_{y_p}`` for each labelled pixel p, 0 for ignored ones.
    ``"mean"`` divides the sum by the summed weights of the labelled pixels, ``sum_p w_{y_p}``
    (torch's weighted mean; the number of labelled pixels without ``weight``). When that
    denominator is 0 (every pixel ignored, or only zero-weight classes present) the loss is 0,
    where torch gives NaN.

    Args:
        logits: float ``[N, K, H, W]``, unnormalised scores.
        target: int64 ``[N, H, W]``, labels in ``[0, K)`` or ``ignore_index``.
        weight: optional float ``[K]``, one weight per class (e.g. inverse class frequency).
        ignore_index: the label of pixels that do not count; ``None`` for none.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N, H, W]``, 0 at
            ignored pixels).

    Returns:
        The loss: a scalar, or ``[N, H, W]`` for ``reduction="none"``.

    Example:
        >>> pixel_cross_entropy(torch.zeros(1, 4, 2, 2), torch.tensor([[[0, 1], [2, 255]]]))  # log(4)
        tensor(1.3863)
    """
    check_reduction(reduction, "pixel")
    valid = _check_inputs(logits, target, ignore_index)
    weight = _class_weight(weight, logits, name="weight")
    safe = _safe_target(target, valid)
    return _cross_entropy_body(logits, target, valid, safe, weight, ignore_index, reduction)


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    smooth: float = 0.0,
    eps: float = 1e-7,
    ignore_index: int | None = 255,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Soft multi-class Dice loss, as segmentation_models_pytorch's ``DiceLoss(mode="multiclass")``.

    With ``p = softmax(x)`` and ``g`` the one-hot target, both set to 0 at ignored pixels, for
    each class k over the whole batch (all images and pixels together):

    ``dice_k = (2 * sum(p_k * g_k) + smooth) / max(sum(p_k + g_k) + smooth, eps)``

    ``loss_k = 1 - dice_k`` if class k has a labelled pixel in the batch, else 0. This is
    segmentation_models_pytorch 0.3's ``losses/dice.py`` + ``_functional.soft_dice_score``
    (``from_logits=True``, ``dims=(0, 2)``, ``log_loss=False``), after Milletari et al. 2016
    ("V-Net") and Sudre et al. 2017. **Absent classes**: a class absent from the target contributes 0
    whatever is predicted for it (smp: "Dice loss is undefined for non-empty classes"), and still
    counts in the mean over K; a class absent from target and prediction is therefore 0 too. With
    every pixel ignored, all classes are absent and the loss is 0.

    Args:
        logits: float ``[N, K, H, W]``, unnormalised scores.
        target: int64 ``[N, H, W]``, labels in ``[0, K)`` or ``ignore_index``.
        smooth: ``>= 0``, added to numerator and denominator (smp's default 0).
        eps: ``> 0``, lower bound of the denominator (smp's 1e-7).
        ignore_index: the label of pixels that do not count; ``None`` for none.
        reduction: ``"mean"`` over the K classes (scalar; smp's loss), ``"sum"`` (scalar) or
            ``"none"`` (``[K]``, the per-class losses).

    Returns:
        The loss in ``[0, 1]`` per class: a scalar, or ``[K]`` for ``reduction="none"``.
    """
    check_reduction(reduction, "pixel")
    valid = _check_inputs(logits, target, ignore_index)
    _check_dice_args(smooth, eps)
    return _dice_body(logits, valid, _safe_target(target, valid), smooth, eps, reduction)


def pixel_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: torch.Tensor | None = None,
    ignore_index: int | None = 255,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Multi-class softmax focal loss per pixel (Lin et al. 2017, "Focal Loss for Dense Object Detection").

    ``loss_p = -alpha_{y_p} (1 - q_p)**gamma log q_p`` with ``q_p = softmax(x_p)_{y_p}``, for each
    labelled pixel p; 0 at ignored pixels. ``"mean"`` divides by the number of labelled pixels,
    also with ``alpha`` (the paper's normalisation, as :func:`visionbench.losses.focal`); 0 when
    every pixel is ignored. ``gamma=0`` and ``alpha=None`` is :func:`pixel_cross_entropy`.

    Args:
        logits: float ``[N, K, H, W]``, unnormalised scores.
        target: int64 ``[N, H, W]``, labels in ``[0, K)`` or ``ignore_index``.
        gamma: focusing parameter ``>= 0``; larger values down-weight easy pixels more.
        alpha: optional float ``[K]``, one weight per class.
        ignore_index: the label of pixels that do not count; ``None`` for none.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N, H, W]``, 0 at
            ignored pixels).

    Returns:
        The loss: a scalar, or ``[N, H, W]`` for ``reduction="none"``.
    """
    check_reduction(reduction, "pixel")
    valid = _check_inputs(logits, target, ignore_index)
    if not gamma >= 0.0:
        raise ValueError(f"gamma must be >= 0; got {gamma!r}. The paper uses gamma=2.")
    alpha = _class_weight(alpha, logits, name="alpha")
    loss = _softmax_focal(logits, _safe_target(target, valid), gamma, alpha)  # [N, H, W]
    # where(), not a product: an ignored pixel's terms are finite, but a product would still
    # route 0 * its gradient; where() gives it exactly 0.
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if reduction == "mean":
        return _safe_divide(loss.sum(), valid.sum().to(loss.dtype))
    return loss.sum() if reduction == "sum" else loss


def ce_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ce_weight: float = 1.0,
    dice_weight: float = 1.0,
    class_weights: torch.Tensor | None = None,
    smooth: float = 0.0,
    ignore_index: int | None = 255,
) -> torch.Tensor:
    """Weighted sum of cross entropy and soft Dice: ``ce_weight * CE + dice_weight * Dice``.

    ``CE`` is :func:`pixel_cross_entropy` with ``reduction="mean"`` (and ``class_weights``);
    ``Dice`` is :func:`dice_loss` with ``reduction="mean"`` (and ``smooth``). The combination is
    common in medical and semantic segmentation (e.g. nnU-Net's ``DC_and_CE_loss``, MONAI's
    ``DiceCELoss``, both with weights 1). 0 when every pixel is ignored.

    Args:
        logits: float ``[N, K, H, W]``, unnormalised scores.
        target: int64 ``[N, H, W]``, labels in ``[0, K)`` or ``ignore_index``.
        ce_weight: ``>= 0``, weight of the cross entropy term.
        dice_weight: ``>= 0``, weight of the Dice term.
        class_weights: optional float ``[K]``, class weights of the cross entropy term.
        smooth: the Dice ``smooth`` term, ``>= 0``.
        ignore_index: the label of pixels that do not count; ``None`` for none.

    Returns:
        The loss, a scalar.
    """
    for name, value in (("ce_weight", ce_weight), ("dice_weight", dice_weight)):
        if not value >= 0.0:
            raise ValueError(f"{name} must be >= 0; got {value!r}. Use 1.0 for the usual equal weighting.")
    # Check once and share the mask and safe target between both terms; the checks run in the
    # order pixel_cross_entropy then dice_loss would run them, so errors are unchanged.
    valid = _check_inputs(logits, target, ignore_index)
    weight = _class_weight(class_weights, logits, name="weight")
    eps = 1e-7  # dice_loss's default
    _check_dice_args(smooth, eps)
    safe = _safe_target(target, valid)
    ce = _cross_entropy_body(logits, target, valid, safe, weight, ignore_index, "mean")
    dice = _dice_body(logits, valid, safe, smooth, eps, "mean")
    return ce_weight * ce + dice_weight * dice


SEGMENTATION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "cross_entropy": pixel_cross_entropy,
    "dice": dice_loss,
    "focal": pixel_focal_loss,
    "ce_dice": ce_dice_loss,
}
"""Name → functional segmentation loss, for registration in :mod:`visionbench.losses`."""
