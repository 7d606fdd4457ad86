"""Classification losses on logits, as small pure functions.

Every loss takes raw model outputs ``logits`` (float ``[N, K]``: N samples, K classes) and integer
class labels ``target`` (int64 ``[N]``, values in ``[0, K)``), and returns the mean over the batch
unless ``reduction`` says otherwise. ``cross_entropy``, ``binary_cross_entropy``, ``mse`` and ``mae``
also take soft targets: float ``[N, K]`` class probabilities in ``[0, 1]`` (MixUp/CutMix). Inputs are validated once by the shared ``_check_*`` helpers,
so a wrong label or shape fails with an error naming the value and the fix instead of a CUDA
assert deep inside the kernel (in a training step on a GPU, value checks are device-side assertions
with that message instead: :mod:`visionbench.losses.device_checks`). NaN/inf in ``logits`` is *not* checked here: the engine does that.

Two families, which differ in what ``reduction="none"`` returns:

* per-sample losses (``cross_entropy``, ``multiclass_hinge``, ``focal``): one value per sample,
  ``"none"`` gives ``[N]``;
* element-wise losses (``binary_cross_entropy``, ``mse``, ``mae``): one value per (sample, class),
  ``"none"`` gives ``[N, K]`` and ``"mean"`` averages over all ``N * K`` elements, as torch does.

Example:
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> target = torch.tensor([0, 2])
    >>> cross_entropy(logits, target, label_smoothing=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from visionbench.losses.device_checks import assert_on_device, asserts_on_device
from visionbench.losses.reduction import Reduction, check_reduction

__all__ = [
    "Reduction",
    "binary_cross_entropy",
    "cross_entropy",
    "focal",
    "mae",
    "mse",
    "multiclass_hinge",
]


# --------------------------------------------------------------------------------------------
# Validation (shared by every loss)
# --------------------------------------------------------------------------------------------


def _check_logits(logits: torch.Tensor) -> None:
    """Raise unless ``logits`` is a floating-point ``[N, K]`` tensor with ``K >= 1``."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor; got {type(logits).__name__}.")
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(
            f"logits must have shape [N, K] (samples, classes); got shape {tuple(logits.shape)}. "
            "Flatten extra dimensions or check the model's output layer."
        )
    if not logits.is_floating_point():
        raise ValueError(
            f"logits must be a floating-point tensor; got dtype {logits.dtype}. "
            "Pass the model's raw outputs, not predicted labels."
        )


def _check_labels(target: torch.Tensor, logits: torch.Tensor) -> None:
    """Raise unless ``target`` is int ``[N]`` (N as in ``logits``) with every label in ``[0, K)``."""
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor; got {type(target).__name__}.")
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise ValueError(
            f"target must hold integer class labels (int64); got dtype {target.dtype}. "
            "Convert with target.long(), or use binary_cross_entropy for float multi-label targets."
        )
    if target.ndim != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target must have shape [N] = [{logits.shape[0]}] to match logits "
            f"{tuple(logits.shape)}; got shape {tuple(target.shape)}. "
            "Pass one class index per sample (not one-hot)."
        )
    num_classes = logits.shape[1]
    outside = (target < 0) | (target >= num_classes)
    if asserts_on_device(target):  # no host sync per training step (see visionbench.losses.device_checks)
        assert_on_device(~outside, f"target holds a label outside [0, {num_classes}) (the model has {num_classes} "
                         "outputs); check num_classes or the dataset labels.")
        return
    bad = target[outside]
    if bad.numel():
        raise ValueError(
            f"target contains label {int(bad[0])} but the model has {num_classes} outputs "
            f"(labels must be in [0, {num_classes})); check num_classes or the dataset labels."
        )



def _class_weight(weight: torch.Tensor | None, logits: torch.Tensor, *, name: str = "weight") -> torch.Tensor | None:
    """Check a per-class weight ``[K]`` and move it to the dtype and device of ``logits``."""
    if weight is None:
        return None
    num_classes = logits.shape[1]
    if not isinstance(weight, torch.Tensor) or weight.shape != (num_classes,):
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(
            f"{name} must be a tensor of shape [K] = [{num_classes}], one weight per class; "
            f"got {got}. Build it with one entry per model output."
        )
    return weight.to(device=logits.device, dtype=logits.dtype)  # no-op when already matching


def _reduce(loss: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _one_hot(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``[N]`` labels → ``[N, K]`` one-hot in the dtype of ``logits``."""
    return F.one_hot(target, logits.shape[1]).to(logits.dtype)


# --------------------------------------------------------------------------------------------
# Per-sample losses: reduction="none" gives [N]
# --------------------------------------------------------------------------------------------


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Softmax cross entropy, exactly as :func:`torch.nn.functional.cross_entropy`.

    ``loss_n = -sum_k w_k q_nk log softmax(x_n)_k`` with ``q_n = (1 - ε) onehot(y_n) + ε / K``
    (label smoothing ε, Szegedy et al. 2016). With ``weight``, ``"mean"`` divides by the summed
    weights of the targets, ``sum_n w_{y_n}``, not by N (torch's convention).

    Soft targets ``p`` (float ``[N, K]``, rows summing to 1, e.g. from MixUp/CutMix) replace
    ``onehot(y_n)``: ``q_n = (1 - ε) p_n + ε / K``. Smoothing is linear, so smoothing then mixing
    equals mixing then smoothing (timm's order). ``"mean"`` then divides by N, also with ``weight``.

    Args:
        logits: float ``[N, K]``, unnormalised scores.
        target: int64 ``[N]``, class labels in ``[0, K)``; or float ``[N, K]`` class probabilities.
        label_smoothing: ε in ``[0, 1]``; 0 is plain cross entropy.
        weight: optional float ``[K]``, one weight per class (e.g. inverse class frequency).
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N]``).

    Returns:
        The loss: a scalar, or ``[N]`` for ``reduction="none"``.

    Example:
        >>> cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3]))  # log(4)
        tensor(1.3863)
    """
    _check_logits(logits)
    target = _labels_or_probabilities(target, logits)
    check_reduction(reduction, "sample")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing!r}. Typical values are 0.1.")
    weight = _class_weight(weight, logits)
    return F.cross_entropy(logits, target, weight=weight, label_smoothing=label_smoothing, reduction=reduction)


def multiclass_hinge(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    margin: float = 1.0,
    p: Literal[1, 2] = 1,
    weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Multi-class hinge loss, exactly as :class:`torch.nn.MultiMarginLoss`.

    ``loss_n = w_{y_n} / K * sum_{k != y_n} max(0, margin - x_{n,y_n} + x_{n,k}) ** p``
    (Weston & Watkins 1999 style, averaged over the K classes). ``"mean"`` divides by N, also
    with ``weight``.

    Args:
        logits: float ``[N, K]``, unnormalised scores.
        target: int64 ``[N]``, class labels in ``[0, K)``.
        margin: the margin the true class must win by.
        p: 1 (hinge) or 2 (squared hinge).
        weight: optional float ``[K]``, one weight per class, applied by the target's class.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N]``).

    Returns:
        The loss: a scalar, or ``[N]`` for ``reduction="none"``.
    """
    _check_logits(logits)
    _check_labels(target, logits)
    check_reduction(reduction, "sample")
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2; got {p!r}. Use p=2 for the squared hinge.")
    weight = _class_weight(weight, logits)
    return F.multi_margin_loss(logits, target, p=p, margin=margin, weight=weight, reduction=reduction)


def focal(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Multi-class softmax focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection").

    ``loss_n = -alpha_{y_n} (1 - p_n) ** gamma * log p_n`` with ``p_n = softmax(x_n)_{y_n}``.
    ``log p_n`` comes from ``log_softmax`` and ``1 - p_n`` from ``-expm1(log p_n)``, so the loss
    stays accurate when ``p_n`` is close to 1. ``gamma=0`` and ``alpha=None`` is cross entropy.
    ``"mean"`` divides by N, also with ``alpha`` (the paper's normalisation; note that
    :func:`cross_entropy` with ``weight`` divides by the summed weights instead).

    Args:
        logits: float ``[N, K]``, unnormalised scores.
        target: int64 ``[N]``, class labels in ``[0, K)``.
        gamma: focusing parameter ``>= 0``; larger values down-weight easy samples more.
        alpha: optional float ``[K]``, one weight per class.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N]``).

    Returns:
        The loss: a scalar, or ``[N]`` for ``reduction="none"``.
    """
    _check_logits(logits)
    _check_labels(target, logits)
    check_reduction(reduction, "sample")
    if not gamma >= 0.0:
        raise ValueError(f"gamma must be >= 0; got {gamma!r}. The paper uses gamma=2.")
    alpha = _class_weight(alpha, logits, name="alpha")
    return _reduce(_softmax_focal(logits, target, gamma, alpha), reduction)


def _softmax_focal(
    logits: torch.Tensor, target: torch.Tensor, gamma: float, alpha: torch.Tensor | None
) -> torch.Tensor:
    """Unreduced ``-alpha_y (1 - p)**gamma log p`` with ``p = softmax(logits, dim=1)`` at ``target``.

    Shared by :func:`focal` (``[N, K]`` logits, ``[N]`` labels) and the segmentation focal loss
    (``[N, K, H, W]`` logits, ``[N, H, W]`` labels); returns the shape of ``target``. Inputs are
    already checked: every label indexes a class.
    """
    log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    loss = -log_p
    if gamma != 0.0:
        # 1 - p from expm1 stays accurate as p -> 1; the clamp keeps the gradient of
        # (1 - p)**gamma finite for gamma < 1 when p rounds to 1.
        one_minus_p = (-torch.expm1(log_p)).clamp(min=torch.finfo(log_p.dtype).tiny)
        loss = one_minus_p.pow(gamma) * loss
    if alpha is not None:
        loss = alpha[target] * loss
    return loss


# --------------------------------------------------------------------------------------------
# Element-wise losses: reduction="none" gives [N, K]
# --------------------------------------------------------------------------------------------


def binary_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """One-vs-rest binary cross entropy on logits (sigmoid per class).

    Each of the K outputs is an independent binary classifier, as in
    :func:`torch.nn.functional.binary_cross_entropy_with_logits` (computed stably from logits).
    Integer labels ``[N]`` become one-hot targets; float targets ``[N, K]`` in ``[0, 1]``
    (multi-label or soft labels) are used as they are. ``"mean"`` averages over all ``N * K``
    elements, also with ``weight``.

    Args:
        logits: float ``[N, K]``, unnormalised scores.
        target: int64 ``[N]`` class labels in ``[0, K)``, or float ``[N, K]`` in ``[0, 1]``.
        weight: optional float ``[K]``; ``weight[k]`` scales the loss of class column k.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N, K]``).

    Returns:
        The loss: a scalar, or ``[N, K]`` for ``reduction="none"``.
    """
    _check_logits(logits)
    check_reduction(reduction, "sample")
    target = _binary_targets(target, logits)
    weight = _class_weight(weight, logits)
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction=reduction)


def _binary_targets(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Labels ``[N]`` → one-hot; float ``[N, K]`` checked to lie in ``[0, 1]`` and returned."""
    if not (isinstance(target, torch.Tensor) and target.is_floating_point()):
        _check_labels(target, logits)
        return _one_hot(target, logits)
    return _check_probabilities(target, logits)


def _labels_or_probabilities(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Int labels ``[N]`` checked and returned; float ``[N, K]`` soft targets checked and returned
    in the dtype of ``logits``. Float ``[N]`` still fails as a label error (a likely mistake)."""
    if isinstance(target, torch.Tensor) and target.is_floating_point() and target.ndim == 2:
        return _check_probabilities(target, logits)
    _check_labels(target, logits)
    return target


def _check_probabilities(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Raise unless float ``target`` has the shape of ``logits`` and lies in ``[0, 1]``."""
    if target.shape != logits.shape:
        raise ValueError(
            f"float target must have the shape of logits {tuple(logits.shape)} (multi-label "
            f"or soft targets [N, K]); got {tuple(target.shape)}. Pass int64 labels [N] for single-label data."
        )
    invalid = (target < 0) | (target > 1) | target.isnan()
    if asserts_on_device(target):
        assert_on_device(~invalid, "float target must hold probabilities in [0, 1]; check the multi-label or "
                         "soft-target encoding.")
        return target.to(logits.dtype)
    outside = target[invalid]
    if outside.numel():
        raise ValueError(
            f"float target must hold probabilities in [0, 1]; got {float(outside[0])!r}. "
            "Check the multi-label (1 = class present, 0 = absent) or soft-target encoding."
        )
    return target.to(logits.dtype)


def mse(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Squared error between softmax probabilities and the one-hot target (Brier score).

    ``loss_nk = w_k (softmax(x_n)_k - onehot(y_n)_k) ** 2``. ``"mean"`` averages over all
    ``N * K`` elements, so it is the multi-class Brier score (Brier 1950) divided by K;
    ``"sum"`` divided by N is the Brier score itself.

    Args:
        logits: float ``[N, K]``, unnormalised scores.
        target: int64 ``[N]``, class labels in ``[0, K)``.
        weight: optional float ``[K]``; ``weight[k]`` scales the loss of class column k.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N, K]``).

    Returns:
        The loss: a scalar, or ``[N, K]`` for ``reduction="none"``.
    """
    diff = _probability_error(logits, target, reduction)
    return _weighted_reduce(diff.square(), weight, logits, reduction)


def mae(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Absolute error between softmax probabilities and the one-hot target.

    ``loss_nk = w_k |softmax(x_n)_k - onehot(y_n)_k|``. ``"mean"`` averages over all ``N * K``
    elements; per sample the L1 error equals ``2 (1 - p_{y_n})``, a loss known to be robust to
    label noise (Ghosh et al. 2017).

    Args:
        logits: float ``[N, K]``, unnormalised scores.
        target: int64 ``[N]``, class labels in ``[0, K)``.
        weight: optional float ``[K]``; ``weight[k]`` scales the loss of class column k.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``[N, K]``).

    Returns:
        The loss: a scalar, or ``[N, K]`` for ``reduction="none"``.
    """
    diff = _probability_error(logits, target, reduction)
    return _weighted_reduce(diff.abs(), weight, logits, reduction)


def _probability_error(logits: torch.Tensor, target: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """Validate, then ``softmax(logits) - onehot(target)`` (or minus soft targets), ``[N, K]``."""
    _check_logits(logits)
    target = _labels_or_probabilities(target, logits)
    check_reduction(reduction, "sample")
    return logits.softmax(dim=1) - (target if target.is_floating_point() else _one_hot(target, logits))


def _weighted_reduce(
    loss: torch.Tensor, weight: torch.Tensor | None, logits: torch.Tensor, reduction: Reduction
) -> torch.Tensor:
    """Scale the columns of ``loss`` ``[N, K]`` by ``weight`` ``[K]``, then reduce."""
    weight = _class_weight(weight, logits)
    if weight is not None:
        loss = loss * weight  # [N, K] * [K]
    return _reduce(loss, reduction)
