"""Losses: pure functions in :mod:`visionbench.losses.classification`, and a registry of builders.

The engine builds its loss by name through :func:`create_loss`; ``visionbench list losses`` shows
:func:`list_losses`. Every builder has the same signature
``(*, num_classes, label_smoothing=0.0, class_weights=None) -> nn.Module`` and returns a
:class:`ClassificationLoss`, whose ``forward(logits, target)`` calls the functional loss. Class
weights live in a buffer, so ``loss.to(device)`` moves them with the model. Segmentation and
detection losses have registries of their own (:data:`SEGMENTATION_LOSSES`,
:func:`create_segmentation_loss`; :data:`DETECTION_LOSSES`, :func:`create_detection_loss`, whose
box losses a detector such as ``tiny_fcos`` takes as ``--box-loss``).

Example:
    >>> loss_fn = create_loss("cross_entropy", num_classes=10, label_smoothing=0.1)
    >>> loss = loss_fn(torch.randn(4, 10), torch.tensor([0, 3, 9, 1]))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from visionbench._registry import Registry
from visionbench.losses.classification import (
    binary_cross_entropy,
    cross_entropy,
    focal,
    mae,
    mse,
    multiclass_hinge,
)

__all__ = [
    "DETECTION_LOSSES",
    "LOSSES",
    "SEGMENTATION_LOSSES",
    "BoxLoss",
    "ClassificationLoss",
    "DenseClassificationLoss",
    "SegmentationLoss",
    "create_detection_loss",
    "create_segmentation_loss",
    "detection_loss_names",
    "binary_cross_entropy",
    "create_loss",
    "cross_entropy",
    "focal",
    "list_losses",
    "mae",
    "mse",
    "multiclass_hinge",
]

LOSSES = Registry("loss", plural="losses")


class ClassificationLoss(nn.Module):
    """A functional classification loss bound to its options, as an ``nn.Module``.

    Args:
        fn: the functional loss, ``fn(logits, target, **options) -> Tensor``.
        num_classes: K, the number of model outputs the loss expects.
        class_weights: optional float ``[K]``; stored as the buffer ``class_weights``.
        weight_arg: the keyword ``fn`` takes the class weights under (``"weight"``/``"alpha"``).
        **options: other keyword options of ``fn`` (e.g. ``label_smoothing``).
    """

    class_weights: torch.Tensor | None

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        *,
        num_classes: int,
        class_weights: torch.Tensor | None = None,
        weight_arg: str = "weight",
        **options: Any,
    ) -> None:
        super().__init__()
        self.fn = fn
        self.num_classes = num_classes
        self.weight_arg = weight_arg
        self.options = options
        self.register_buffer("class_weights", class_weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The mean loss of ``logits`` ``[N, K]`` against labels ``target`` ``[N]`` (or soft
        targets ``[N, K]`` for the losses registered with ``soft_targets``)."""
        if logits.ndim == 2 and logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits must have {self.num_classes} columns (num_classes of the loss); got "
                f"shape {tuple(logits.shape)}. Build the loss with the model's num_classes."
            )
        options = dict(self.options)
        if self.class_weights is not None:
            options[self.weight_arg] = self.class_weights
        return self.fn(logits, target, **options)

    def extra_repr(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        weighted = ", class_weights=..." if self.class_weights is not None else ""
        return f"{self.fn.__name__}, num_classes={self.num_classes}{weighted}" + (f", {options}" if options else "")


def _smoothing_names() -> list[str]:
    return [n for n in LOSSES.names() if LOSSES.info(n).get("label_smoothing", False)]


def _build(
    name: str,
    fn: Callable[..., torch.Tensor],
    *,
    num_classes: int,
    label_smoothing: float,
    class_weights: torch.Tensor | None,
    weight_arg: str = "weight",
    **options: Any,
) -> ClassificationLoss:
    """Validate the shared builder arguments and wrap ``fn`` in a :class:`ClassificationLoss`."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            f"num_classes must be a positive int; got {num_classes!r}. Use the dataset's number of classes."
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing!r}. Typical values are 0.1.")
    if label_smoothing != 0.0 and not LOSSES.info(name).get("label_smoothing", False):
        raise ValueError(
            f"label_smoothing must be 0 for loss {name!r}; got {label_smoothing!r}. "
            f"Losses that support label smoothing: {', '.join(map(repr, _smoothing_names()))}."
        )
    if label_smoothing != 0.0:
        options["label_smoothing"] = label_smoothing
    weights = _check_class_weights(class_weights, num_classes)
    return ClassificationLoss(fn, num_classes=num_classes, class_weights=weights, weight_arg=weight_arg, **options)


def _check_class_weights(class_weights: torch.Tensor | None, num_classes: int) -> torch.Tensor | None:
    """Raise unless ``class_weights`` is ``[num_classes]``, finite and ``>= 0``; return float."""
    if class_weights is None:
        return None
    if not isinstance(class_weights, torch.Tensor) or class_weights.shape != (num_classes,):
        got = tuple(class_weights.shape) if isinstance(class_weights, torch.Tensor) else type(class_weights).__name__
        raise ValueError(
            f"class_weights must be a tensor of shape [num_classes] = [{num_classes}]; got "
            f"{got}. Give one weight per class."
        )
    weights = class_weights.detach().clone()
    if not weights.is_floating_point():
        weights = weights.to(torch.get_default_dtype())
    if not (torch.isfinite(weights).all() and (weights >= 0).all()):
        raise ValueError(
            f"class_weights must be finite and >= 0; got {weights.tolist()!r}. "
            "Check for empty classes when computing inverse-frequency weights."
        )
    return weights


# name → (functional loss, keyword its class weights go to, one-line description, label smoothing?)
_TABLE: list[tuple[str, Callable[..., torch.Tensor], str, str, bool]] = [
    ("cross_entropy", cross_entropy, "weight",
     "Softmax cross entropy, with optional label smoothing and class weights.", True),
    ("bce", binary_cross_entropy, "weight", "One-vs-rest binary cross entropy on logits (sigmoid per class).", False),
    ("hinge", multiclass_hinge, "weight", "Multi-class hinge loss (torch's MultiMarginLoss, margin 1).", False),
    ("mse", mse, "weight", "Squared error of softmax probabilities vs one-hot (Brier score / K).", False),
    ("mae", mae, "weight", "Absolute error of softmax probabilities vs one-hot (robust to label noise).", False),
    ("focal", focal, "alpha", "Softmax focal loss (Lin et al. 2017), gamma=2; class weights as alpha.", False),
]


def _builder(name: str, fn: Callable[..., torch.Tensor], weight_arg: str) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None) -> nn.Module:
        return _build(name, fn, num_classes=num_classes, label_smoothing=label_smoothing,
                      class_weights=class_weights, weight_arg=weight_arg)

    build.__doc__ = f"Build the ``{name}`` loss (see :func:`create_loss`)."
    return build


# Losses that also take soft targets (float [N, K] class probabilities), as MixUp/CutMix produce.
_SOFT_TARGETS = frozenset({"cross_entropy", "bce", "mse", "mae"})

for _name, _fn, _weight_arg, _description, _smoothing in _TABLE:
    LOSSES.register(_name, description=_description, label_smoothing=_smoothing,
                    soft_targets=_name in _SOFT_TARGETS)(_builder(_name, _fn, _weight_arg))


def create_loss(
    name: str,
    *,
    num_classes: int,
    label_smoothing: float = 0.0,
    class_weights: torch.Tensor | None = None,
) -> nn.Module:
    """Build the registered loss ``name`` as an ``nn.Module`` called as ``loss(logits, target)``.

    Args:
        name: a registered name (see :func:`list_losses`), e.g. ``"cross_entropy"``.
        num_classes: K, the number of model outputs.
        label_smoothing: ε in ``[0, 1]``; only ``"cross_entropy"`` supports ``ε != 0``.
        class_weights: optional float ``[K]``, finite and ``>= 0`` (e.g. inverse frequency).

    Returns:
        The loss module; its class weights are a buffer, so ``.to(device)`` moves them.

    Raises:
        ValueError: for an unknown name (with close matches suggested) or invalid options.
    """
    builder = LOSSES.get(name)
    return builder(num_classes=num_classes, label_smoothing=label_smoothing, class_weights=class_weights)


def list_losses(pattern: str = "*") -> list[str]:
    """Sorted names of the registered losses matching the shell-style ``pattern``."""
    return LOSSES.names(pattern)


# --------------------------------------------------------------------------------------------
# Segmentation losses: a registry of their own (they take [N, K, H, W] logits and [N, H, W] masks)
# --------------------------------------------------------------------------------------------

SEGMENTATION_LOSSES = Registry("segmentation loss", plural="losses")


class SegmentationLoss(nn.Module):
    """A functional pixel loss as a module: ``forward(logits [N,K,H,W], mask [N,H,W])``.

    Class weights live in a buffer (``.to(device)`` moves them); ``ignore_index`` pixels do not count.
    """

    def __init__(self, name: str, fn: Callable[..., torch.Tensor], weight_arg: str | None, *,
                 class_weights: torch.Tensor | None, ignore_index: int | None) -> None:
        super().__init__()
        self.name, self.fn, self.weight_arg, self.ignore_index = name, fn, weight_arg, ignore_index
        if class_weights is not None and weight_arg is None:
            raise ValueError(f"loss {name!r} takes no class weights; use --class-weights none or another loss.")
        self.register_buffer("class_weights", None if class_weights is None else class_weights.float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        options: dict[str, Any] = {"ignore_index": self.ignore_index}
        if self.weight_arg is not None and self.class_weights is not None:
            options[self.weight_arg] = self.class_weights
        return self.fn(logits, target, **options)

    def extra_repr(self) -> str:
        return f"{self.name}, ignore_index={self.ignore_index}"


def _register_segmentation_losses() -> None:
    from visionbench.losses.segmentation import SEGMENTATION_LOSSES as functions

    # name -> (the functional loss's class-weight argument, description)
    table = {
        "cross_entropy": ("weight", "Pixel cross entropy, class weights, ignore_index."),
        "dice": (None, "Soft multi-class Dice (segmentation_models_pytorch's convention)."),
        "focal": ("alpha", "Pixel softmax focal loss, gamma=2; class weights as alpha."),
        "ce_dice": ("class_weights", "Cross entropy + soft Dice, weights 1 and 1 (nnU-Net, MONAI)."),
    }
    for name, fn in functions.items():
        weight_arg, description = table[name]
        def build(*, class_weights: torch.Tensor | None = None, ignore_index: int | None = 255,
                  _name: str = name, _fn: Callable[..., torch.Tensor] = fn, _arg: str | None = weight_arg
                  ) -> nn.Module:
            return SegmentationLoss(_name, _fn, _arg, class_weights=class_weights, ignore_index=ignore_index)

        SEGMENTATION_LOSSES.register(name, description=description, task="segment")(build)


_register_segmentation_losses()


def create_segmentation_loss(name: str, *, class_weights: torch.Tensor | None = None, ignore_index: int | None = 255
                             ) -> nn.Module:
    """Build the segmentation loss ``name`` (see ``visionbench list losses``) as a module.

    Example:
        >>> loss_fn = create_segmentation_loss("ce_dice")
        >>> loss = loss_fn(torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8)))  # doctest: +SKIP
    """
    return SEGMENTATION_LOSSES.get(name)(class_weights=class_weights, ignore_index=ignore_index)


# --------------------------------------------------------------------------------------------
# Detection losses: the box regression and the per-class classification losses of detectors
# --------------------------------------------------------------------------------------------

DETECTION_LOSSES = Registry("detection loss", plural="losses")

DetectionLossKind = Literal["box", "classification"]


class BoxLoss(nn.Module):
    """A box regression loss of matched pairs as a module: ``forward(pred [N, 4], target [N, 4])``
    gives ``[N]``, one loss per pair (the detector weights and normalises them).

    Attributes:
        name: the registered name.
        on: what the pairs are: ``"boxes"``, XYXY boxes in pixels (the IoU family, scale-invariant),
            or ``"encoded"``, the detector's regression targets (Smooth L1: per-coordinate errors in
            pixels would weigh large boxes more, so detectors regress encoded offsets, e.g.
            Fast R-CNN's deltas or FCOS' log-distances).
    """

    def __init__(self, name: str, fn: Callable[..., torch.Tensor], *, on: str, **options: Any) -> None:
        super().__init__()
        self.name, self.fn, self.on, self.options = name, fn, on, options

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of each row's pair, ``[N]``."""
        loss = self.fn(pred, target, reduction="none", **self.options)
        return loss.sum(dim=1) if loss.ndim == 2 else loss  # Smooth L1 is per coordinate: one box is 4

    def extra_repr(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{self.name}, on={self.on!r}{options}"


class DenseClassificationLoss(nn.Module):
    """A detector's per-class classification loss as a module: ``forward(logits, target)`` with
    ``target`` the one-hot of ``logits``' shape (background: all zeros) gives the element-wise
    loss; the detector sums it and divides by its number of positives (RetinaNet, FCOS)."""

    def __init__(self, name: str, fn: Callable[..., torch.Tensor], **options: Any) -> None:
        super().__init__()
        self.name, self.fn, self.options = name, fn, options

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of every element, the shape of ``logits``."""
        return self.fn(logits, target, reduction="none", **self.options)

    def extra_repr(self) -> str:
        return self.name + "".join(f", {k}={v!r}" for k, v in self.options.items())


def _register_detection_losses() -> None:
    from visionbench.losses.detection import DETECTION_LOSSES as functions

    # name -> (kind, what a box loss compares, fixed options, description)
    table: dict[str, tuple[DetectionLossKind, str | None, dict[str, float], str]] = {
        "giou": ("box", "boxes", {}, "Generalized IoU loss (Rezatofighi et al. 2019); tiny_fcos' default."),
        "diou": ("box", "boxes", {}, "Distance IoU loss: 1 - IoU + centre distance² / enclosing diagonal² "
                 "(Zheng et al. 2020)."),
        "ciou": ("box", "boxes", {}, "Complete IoU loss: DIoU + an aspect-ratio term (Zheng et al. 2020)."),
        "iou": ("box", "boxes", {}, "1 - IoU; no gradient while a box misses its target."),
        # beta 1/9: Detectron's RetinaNet and Faster R-CNN; on log-distances (FCOS' regression).
        "smooth_l1": ("box", "encoded", {"beta": 1 / 9}, "Smooth L1 (beta 1/9) on the detector's encoded "
                      "regression targets (tiny_fcos: log distances to the box sides)."),
        "sigmoid_focal": ("classification", None, {"alpha": 0.25, "gamma": 2.0},
                          "Per-class sigmoid focal loss, alpha 0.25, gamma 2 (RetinaNet, FCOS)."),
    }
    for name, fn in functions.items():
        kind, on, options, description = table[name]

        def build(*, _name: str = name, _fn: Callable[..., torch.Tensor] = fn, _on: str | None = on,
                  _options: dict[str, float] = options) -> nn.Module:
            if _on is None:
                return DenseClassificationLoss(_name, _fn, **_options)
            return BoxLoss(_name, _fn, on=_on, **_options)

        DETECTION_LOSSES.register(name, description=description, task="detect", kind=kind)(build)


_register_detection_losses()


def detection_loss_names(kind: DetectionLossKind) -> list[str]:
    """Sorted names of the registered detection losses of one ``kind`` (``"box"`` or ``"classification"``)."""
    return [name for name in DETECTION_LOSSES.names() if DETECTION_LOSSES.info(name)["kind"] == kind]


def create_detection_loss(name: str, *, kind: DetectionLossKind) -> nn.Module:
    """Build the detection loss ``name`` of ``kind`` (see ``visionbench list losses``) as a module.

    Args:
        name: a registered name, e.g. ``"giou"`` or ``"sigmoid_focal"``.
        kind: ``"box"`` (a :class:`BoxLoss`, one loss per matched pair) or ``"classification"``
            (a :class:`DenseClassificationLoss`, element-wise).

    Raises:
        ValueError: for an unknown name (close matches suggested) or a loss of the other kind.

    Example:
        >>> loss_fn = create_detection_loss("diou", kind="box")
        >>> loss_fn(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 3.0, 3.0]]))  # doctest: +SKIP
    """
    builder = DETECTION_LOSSES.get(name)
    actual = DETECTION_LOSSES.info(name)["kind"]
    if actual != kind:
        raise ValueError(f"{kind} loss must be one of {detection_loss_names(kind)}; got {name!r}, a {actual} loss. "
                         "See `visionbench list losses`.")
    return builder()
