"""Semantic-segmentation metrics from one dataset-level confusion matrix.

Functional core: :func:`segmentation_confusion` (one ``bincount`` of ``target * K + pred`` over
the counted pixels) and pure functions of ``[..., K, K]`` matrices. Stateful wrapper:
:class:`SegmentationAccumulator` (``update`` / ``merge`` / ``sync`` / ``compute`` /
``intervals``), whose state is the dataset matrix plus three counts per class and image, so N
processes give exactly the numbers of one.

Conventions, used by every function here:

* **Counted pixels** are those whose target is not ``ignore_index``. Predictions at ignored
  pixels are never read (any value is accepted there).
* **Matrix** ``C``: row = true class, column = predicted class (scikit-learn's layout). For a
  class ``c``: ``TP = C[c, c]``, ``T = sum_j C[c, j]`` (target pixels, "support"),
  ``P = sum_i C[i, c]`` (predicted pixels), ``FP = P - TP``, ``FN = T - TP``.
* **Dataset level.** The headline numbers come from one matrix summed over every counted pixel of
  every image (as mmsegmentation and the Cityscapes/VOC/ADE20K evaluations do), not from
  averaging per-image scores. The per-image mIoU is reported separately, labelled as such.
* **Absent classes.** A class with ``T + P = 0`` (in neither the target nor the prediction) has
  undefined per-class values (NaN), is left out of every mean, and is listed
  (:func:`absent_classes`, ``"absent_classes"``).
* **Prediction-only classes** (``T = 0 < P``): IoU 0 and Dice 0, which count in mIoU and the
  mean Dice (false positives are penalised); accuracy ``TP / T`` is undefined, so they are left
  out of the mean class accuracy; their weight in fwIoU is ``T = 0``.

Definitions (means run over the classes that are not absent; NaN when there are none, i.e. no
counted pixel):

* ``IoU_c = TP / (TP + FP + FN) = TP / (T + P - TP)``; ``mIoU = mean_c IoU_c``.
* ``fwIoU = sum_c T_c IoU_c / sum_c T_c`` (frequency-weighted IoU, Long et al. 2015, "Fully
  convolutional networks", section 5).
* ``Dice_c = 2 TP / (T + P)`` (= F1 of the class); ``dice_mean = mean_c Dice_c``.
* ``pixel_accuracy = sum_c TP_c / sum_c T_c``.
* ``accuracy_c = TP / T`` (recall); ``mean_class_accuracy`` = its mean over classes with ``T > 0``.

Every value equals scikit-learn's on the flattened counted pixels bit for bit: ``jaccard_score``
with ``labels`` = the classes that are not absent (``average=None``, ``"macro"``,
``"weighted"``), ``f1_score`` likewise, ``accuracy_score`` and ``balanced_accuracy_score``. The
means are taken in NumPy over the kept entries, as scikit-learn's ``np.average`` does.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import torch

from visionbench.metrics.classification import UndefinedMetricWarning
from visionbench.metrics.stats import bootstrap_count_blocks, percentile_interval

PerImageAverage = Literal["image", "pair"]

# Every scalar ``SegmentationAccumulator.compute`` reports, and whether larger is better.
SEGMENTATION_HIGHER_IS_BETTER = {
    "mIoU": True, "fwIoU": True, "pixel_accuracy": True, "mean_class_accuracy": True, "dice_mean": True,
    "mIoU_per_image": True,
}

# Bins of one image's (target value, prediction) histogram beyond which target values are first
# remapped (ignore -> row K): 2**16 int64 = 512 KiB; 256 rows x K fit for K <= 256.
_MAX_IMAGE_BINS = 1 << 16
# Distinct bad values an error message lists.
_SHOWN_VALUES = 10


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _check_options(num_classes: int, ignore_index: int | None) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}. Pass the number of classes K.")
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"ignore_index must be an int or None; got {ignore_index!r}. Use 255 for the usual void label.")


def _index_masks(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate shapes and dtypes; return ``preds`` and ``target`` as integer ``[N, H*W]``."""
    for name, value in (("preds", preds), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}. Wrap it with torch.as_tensor.")
    if target.is_floating_point() or target.is_complex():
        raise TypeError(
            f"target must be an integer tensor of class indices; got dtype {target.dtype}. "
            "Convert the mask with .long() (values in [0, K) or ignore_index)."
        )
    if target.ndim not in (2, 3):
        raise ValueError(
            f"target must have shape [H, W] or [N, H, W]; got {tuple(target.shape)}. Squeeze a channel axis of size 1."
        )
    if preds.is_complex():
        raise TypeError(f"preds must be integer class indices or float logits; got dtype {preds.dtype}.")
    if preds.is_floating_point():
        # Logits (or probabilities): the class axis sits just before H, W, as in [N, K, H, W].
        if preds.ndim != target.ndim + 1:
            raise TypeError(
                f"preds must be integer class indices of shape {tuple(target.shape)} or float logits with a "
                f"class axis ({'[N, K, H, W]' if target.ndim == 3 else '[K, H, W]'}); got dtype {preds.dtype} and "
                f"shape {tuple(preds.shape)}. Convert float-valued indices with .long()."
            )
        if preds.shape[-3] != num_classes:
            raise ValueError(
                f"logits must have num_classes={num_classes} channels on axis -3; got shape {tuple(preds.shape)}. "
                "Check num_classes or the model's output."
            )
        preds = preds.argmax(dim=-3)
    if preds.shape != target.shape:
        raise ValueError(
            f"preds and target must have the same shape; got preds {tuple(preds.shape)} and target "
            f"{tuple(target.shape)}. Resize the prediction to the mask's size (nearest neighbour) first."
        )
    if preds.device != target.device:
        raise ValueError(f"preds and target must be on the same device; got {preds.device} and {target.device}.")
    if preds.dtype == torch.bool:
        preds = preds.to(torch.uint8)
    if target.dtype == torch.bool:
        target = target.to(torch.uint8)
    n, pixels = (target.shape[0] if target.ndim == 3 else 1), target.shape[-2] * target.shape[-1]
    return preds.reshape(n, pixels), target.reshape(n, pixels)


def _values_error(name: str, bad: np.ndarray, num_classes: int, ignore_index: int | None) -> ValueError:
    """A ValueError naming the out-of-range values of ``name`` and how many pixels hold each."""
    values, counts = np.unique(bad, return_counts=True)
    pairs = zip(values[:_SHOWN_VALUES].tolist(), counts[:_SHOWN_VALUES].tolist(), strict=True)
    shown = ", ".join(f"{v} ({c:,} px)" for v, c in pairs)
    more = f" and {len(values) - _SHOWN_VALUES} more values" if len(values) > _SHOWN_VALUES else ""
    if name == "target":
        allowed = f"[0, {num_classes})" + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
        fix = "Check num_classes, or set ignore_index to the mask's void label."
    else:
        allowed = f"[0, {num_classes}) at counted pixels"
        fix = "Check num_classes; predictions at pixels whose target is ignore_index are not checked."
    return ValueError(f"{name} values must be in {allowed}; got {bad.size:,} pixels outside: {shown}{more}. {fix}")


# --------------------------------------------------------------------------------------------
# Counting: per-image confusion matrices
# --------------------------------------------------------------------------------------------


def _per_image_counts_numpy(
    preds: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int | None
) -> np.ndarray:
    """CPU kernel: ``int64 [N, K, K]`` from ``[N, H*W]`` integer arrays.

    Per image, ``code = target * K + pred`` is formed in int16 (int32 when needed) in one reused
    buffer that stays in cache, and counted with one ``bincount`` of ``rows * K`` bins, where the
    rows are the target *values* ``0 .. max``: the row of ``ignore_index`` (e.g. 255) is simply
    dropped, so ignored pixels need no masking pass, and any other row ``>= K`` is a bad label.
    NumPy's element-wise loops stay single-threaded, which on a busy 2-core machine is several
    times faster than torch's OpenMP kernels on arrays this size.
    """
    k = num_classes
    n = target.shape[0]
    if target.size == 0:
        return np.zeros((n, k, k), dtype=np.int64)
    if preds.min() < 0 or preds.max() >= k:
        bad = (preds < 0) | (preds >= k)
        if ignore_index is not None:
            bad &= target != ignore_index
        if bad.any():
            raise _values_error("preds", preds[bad], k, ignore_index)
        preds = np.where(target == ignore_index, 0, preds)  # out of range only where not counted
    ignore_row = ignore_index
    if target.min() < 0 or (int(target.max()) + 1) * k > _MAX_IMAGE_BINS:
        # Negative ignore_index (e.g. -100) or large values: map ignored pixels to row K first.
        ignored = np.zeros(target.shape, dtype=bool) if ignore_index is None else target == ignore_index
        bad = ~ignored & ((target < 0) | (target >= k))
        if bad.any():
            raise _values_error("target", target[bad], k, ignore_index)
        target, ignore_row = np.where(ignored, np.int64(k), target), k
    rows = max(int(target.max()) + 1, k)  # at least the K class rows
    bins = rows * k
    code_dtype = np.int16 if bins <= np.iinfo(np.int16).max + 1 else np.int32
    code = np.empty(target.shape[1], dtype=code_dtype)
    hist = np.empty((n, bins), dtype=np.int64)
    for i in range(n):
        # dtype= makes the loop run in code_dtype (uint8 * K would wrap); values are >= 0 and
        # below rows, so the cast of int64 masks is exact.
        np.multiply(target[i], k, out=code, dtype=code_dtype, casting="unsafe")
        np.add(code, preds[i], out=code, dtype=code_dtype, casting="unsafe")
        hist[i] = torch.bincount(torch.from_numpy(code), minlength=bins).numpy()  # no int64 copy, unlike np
    hist = hist.reshape(n, rows, k)
    extra = hist[:, k:, :].sum(axis=(0, 2))  # pixels per target value >= K
    if ignore_row is not None and k <= ignore_row < rows:
        extra[ignore_row - k] = 0
    if extra.any():
        bad = target >= k
        if ignore_index is not None:
            bad &= target != ignore_index
        raise _values_error("target", target[bad], k, ignore_index)
    matrices = np.ascontiguousarray(hist[:, :k, :])
    if ignore_row is not None and 0 <= ignore_row < k:
        matrices[:, ignore_row, :] = 0  # ignore_index is a class index: its target pixels are dropped
    return matrices


def _per_image_counts_torch(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None
) -> torch.Tensor:
    """Accelerator kernel: ``int64 [N, K, K]`` from ``[N, H*W]``; one masked pass and one
    ``bincount`` over the whole batch (ignored pixels go to a spare last bin)."""
    k, n = num_classes, target.shape[0]
    counted = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    bad_target = counted & ((target < 0) | (target >= k))
    bad_preds = counted & ((preds < 0) | (preds >= k))
    if bool((bad_target | bad_preds).any()):
        name, values, bad = ("target", target, bad_target) if bool(bad_target.any()) else ("preds", preds, bad_preds)
        raise _values_error(name, values[bad].cpu().numpy(), k, ignore_index)
    image = torch.arange(n, device=target.device).unsqueeze(1)  # (N, 1)
    code = (image * k + target.long()) * k + preds.long()  # (N, H*W)
    code = torch.where(counted, code, torch.full_like(code, n * k * k))
    return torch.bincount(code.reshape(-1), minlength=n * k * k + 1)[:-1].reshape(n, k, k)


def per_image_confusion(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, *, ignore_index: int | None = 255
) -> torch.Tensor:
    """One confusion matrix per image, over its counted pixels.

    Args:
        preds: predicted classes, integer ``[N, H, W]`` (or ``[H, W]``) in ``[0, K)`` at counted
            pixels, or float logits/probabilities ``[N, K, H, W]`` (``[K, H, W]``), reduced by argmax.
        target: true classes, integer (or bool) ``[N, H, W]`` (or ``[H, W]``) in ``[0, K)`` or
            ``ignore_index``.
        num_classes: K.
        ignore_index: target value of pixels left out (void); ``None`` counts every pixel.

    Returns:
        ``int64 [N, K, K]`` on the inputs' device (``N = 1`` for ``[H, W]``); row = true class.

    Raises:
        ValueError: values outside ``[0, K)`` (other than ``ignore_index``), with each bad value
            and its pixel count; shapes that differ; logits without K channels.
        TypeError: float targets, float predictions without a class axis.
    """
    _check_options(num_classes, ignore_index)
    preds, target = _index_masks(preds, target, num_classes)
    if target.device.type != "cpu":
        return _per_image_counts_torch(preds, target, num_classes, ignore_index)
    matrices = _per_image_counts_numpy(preds.detach().numpy(), target.detach().numpy(), num_classes, ignore_index)
    return torch.from_numpy(matrices)


def segmentation_confusion(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, *, ignore_index: int | None = 255
) -> torch.Tensor:
    """Dataset-level confusion matrix of segmentation masks (ignored pixels excluded).

    Args: as :func:`per_image_confusion`.

    Returns:
        ``int64 [K, K]``, row = true class, column = predicted class; equal to scikit-learn's
        ``confusion_matrix(target[kept], preds[kept], labels=range(K))``.

    Example:
        >>> target = torch.tensor([[0, 1], [255, 1]])
        >>> segmentation_confusion(torch.tensor([[0, 0], [1, 1]]), target, 2)
        tensor([[1, 0],
                [1, 1]])
    """
    return per_image_confusion(preds, target, num_classes, ignore_index=ignore_index).sum(dim=0)


# --------------------------------------------------------------------------------------------
# Metrics of [..., K, K] matrices (through the per-class counts TP, T, P)
# --------------------------------------------------------------------------------------------


def _class_counts(cm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(TP, T, P)``, each ``[..., K]``: diagonal, row sums (target pixels), column sums."""
    return cm.diagonal(dim1=-2, dim2=-1), cm.sum(dim=-1), cm.sum(dim=-2)


def _ratio(numer: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    """``numer / denom`` in float64, NaN where ``denom == 0``."""
    numer, denom = numer.double(), denom.double()
    return torch.where(denom > 0, numer / torch.where(denom > 0, denom, 1.0), float("nan"))


def _mean_where(values: torch.Tensor, keep: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(Weighted) mean of ``values[..., keep]`` over the last axis; NaN where nothing is kept.

    Computed in NumPy on the kept entries only, grouped by keep-pattern, with scikit-learn's
    operations (``np.mean``; ``np.multiply(a, w).sum() / w.sum()`` as ``np.average``), so a
    mean equals scikit-learn's bit for bit and a batched row equals the same matrix alone.
    """
    size = values.shape[-1]
    if size == 0:
        return torch.full(values.shape[:-1], float("nan"), dtype=torch.float64, device=values.device)
    a = values.detach().cpu().double().numpy().reshape(-1, size)
    mask = keep.detach().cpu().numpy().reshape(-1, size)
    w = None if weights is None else weights.detach().cpu().double().numpy().reshape(-1, size)
    out = np.full(a.shape[0], np.nan)
    if a.shape[0]:
        patterns, inverse = np.unique(mask, axis=0, return_inverse=True)
        for j, pattern in enumerate(patterns):
            if not pattern.any():
                continue
            rows, cols = np.flatnonzero(inverse.reshape(-1) == j), np.flatnonzero(pattern)
            kept = a[np.ix_(rows, cols)]  # (rows, kept classes), C-contiguous
            if w is None:
                out[rows] = kept.mean(axis=1)
            else:
                kept_w = w[np.ix_(rows, cols)]
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[rows] = np.multiply(kept, kept_w).sum(axis=1) / kept_w.sum(axis=1)
    return torch.from_numpy(out.reshape(values.shape[:-1])).to(values.device)


def _present(tp: torch.Tensor, support: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    return (support + predicted) > 0


def _iou(tp: torch.Tensor, support: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    return _ratio(tp, support + predicted - tp)


def _scalars_from_counts(tp: torch.Tensor, support: torch.Tensor, predicted: torch.Tensor) -> dict[str, torch.Tensor]:
    """The five dataset-level scalars from per-class counts ``[..., K]`` (int or integer-valued float)."""
    present = _present(tp, support, predicted)
    iou = _iou(tp, support, predicted)
    return {
        "mIoU": _mean_where(iou, present),
        "fwIoU": _mean_where(iou, present, weights=support),
        "pixel_accuracy": _ratio(tp.sum(-1), support.sum(-1)),
        "mean_class_accuracy": _mean_where(_ratio(tp, support), support > 0),
        "dice_mean": _mean_where(_ratio(2 * tp, support + predicted), present),
    }


def per_class_iou(cm: torch.Tensor) -> torch.Tensor:
    """``IoU_c = TP / (TP + FP + FN)`` per class; NaN for absent classes, 0 for prediction-only ones.

    Args:
        cm: ``[..., K, K]`` confusion matrices (rows true, columns predicted).

    Returns:
        float64 ``[..., K]`` in ``[0, 1]`` or NaN.
    """
    return _iou(*_class_counts(cm))


def mean_iou(cm: torch.Tensor) -> torch.Tensor:
    """mIoU: mean of :func:`per_class_iou` over the classes that are not absent.

    Equal to scikit-learn's ``jaccard_score(..., labels=present, average="macro")``.

    Args:
        cm: ``[..., K, K]``.

    Returns:
        float64 ``[...]`` in ``[0, 1]``; NaN for a matrix without counted pixels.

    Example:
        >>> float(mean_iou(torch.tensor([[2, 1, 0], [0, 1, 0], [0, 0, 0]])))  # class 2 absent
        0.5833333333333333
    """
    tp, support, predicted = _class_counts(cm)
    return _mean_where(_iou(tp, support, predicted), _present(tp, support, predicted))


def frequency_weighted_iou(cm: torch.Tensor) -> torch.Tensor:
    """fwIoU: ``sum_c T_c IoU_c / sum_c T_c``, IoU weighted by the class's target pixels.

    Equal to ``jaccard_score(..., labels=present, average="weighted")``.

    Args:
        cm: ``[..., K, K]``.

    Returns:
        float64 ``[...]`` in ``[0, 1]``; NaN without counted pixels.
    """
    tp, support, predicted = _class_counts(cm)
    return _mean_where(_iou(tp, support, predicted), _present(tp, support, predicted), weights=support)


def per_class_dice(cm: torch.Tensor) -> torch.Tensor:
    """``Dice_c = 2 TP / (T + P)`` (the class's F1); NaN for absent classes.

    Args:
        cm: ``[..., K, K]``.

    Returns:
        float64 ``[..., K]`` in ``[0, 1]`` or NaN.
    """
    tp, support, predicted = _class_counts(cm)
    return _ratio(2 * tp, support + predicted)


def mean_dice(cm: torch.Tensor) -> torch.Tensor:
    """Mean of :func:`per_class_dice` over the classes that are not absent
    (``f1_score(..., labels=present, average="macro")``).

    Args:
        cm: ``[..., K, K]``.

    Returns:
        float64 ``[...]``; NaN without counted pixels.
    """
    tp, support, predicted = _class_counts(cm)
    return _mean_where(_ratio(2 * tp, support + predicted), _present(tp, support, predicted))


def pixel_accuracy(cm: torch.Tensor) -> torch.Tensor:
    """Fraction of counted pixels predicted correctly, ``sum TP / sum T`` (``accuracy_score``).

    Args:
        cm: ``[..., K, K]``.

    Returns:
        float64 ``[...]``; NaN without counted pixels.
    """
    tp, support, _ = _class_counts(cm)
    return _ratio(tp.sum(-1), support.sum(-1))


def per_class_accuracy(cm: torch.Tensor) -> torch.Tensor:
    """``accuracy_c = TP / T`` (recall); NaN for classes without target pixels.

    Args:
        cm: ``[..., K, K]``.

    Returns:
        float64 ``[..., K]``.
    """
    tp, support, _ = _class_counts(cm)
    return _ratio(tp, support)


def mean_class_accuracy(cm: torch.Tensor) -> torch.Tensor:
    """Mean of :func:`per_class_accuracy` over classes with target pixels (``balanced_accuracy_score``).

    Args:
        cm: ``[..., K, K]``.

    Returns:
        float64 ``[...]``; NaN without counted pixels.
    """
    tp, support, _ = _class_counts(cm)
    return _mean_where(_ratio(tp, support), support > 0)


def absent_classes(cm: torch.Tensor) -> list[int]:
    """Classes in neither the target nor the prediction of a ``[K, K]`` matrix (``T + P = 0``)."""
    if cm.ndim != 2:
        raise ValueError(f"cm must be one [K, K] matrix; got shape {tuple(cm.shape)}. Index a batch first.")
    tp, support, predicted = _class_counts(cm)
    return torch.nonzero(~_present(tp, support, predicted)).flatten().tolist()


def segmentation_metric_tensors(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """``mIoU``, ``fwIoU``, ``pixel_accuracy``, ``mean_class_accuracy``, ``dice_mean`` of ``[..., K, K]``
    matrices, each float64 ``[...]``."""
    return _scalars_from_counts(*_class_counts(cm))


def _per_image_terms(stats: torch.Tensor, average: PerImageAverage) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the numerator and denominator whose sums over images give the per-image mIoU.

    ``"image"``: (image mIoU, 1), both 0 for an image without counted pixels. ``"pair"``: (sum of
    the image's class IoUs, number of its classes that are not absent). ``stats`` is
    ``[N, 3, K]`` = (TP, T, P) per image.
    """
    tp, support, predicted = stats.unbind(dim=1)
    present = _present(tp, support, predicted)
    iou = _iou(tp, support, predicted)
    if average == "pair":
        return torch.where(present, iou, 0.0).sum(-1), present.sum(-1).double()
    miou = _mean_where(iou, present)
    valid = present.any(-1)
    return torch.where(valid, miou, 0.0), valid.double()


def _per_image_miou_from_stats(stats: torch.Tensor, average: PerImageAverage) -> torch.Tensor:
    tp, support, predicted = stats.unbind(dim=1)
    present = _present(tp, support, predicted)
    iou = _iou(tp, support, predicted)
    if average == "pair":  # all (image, class) pairs pooled: one mean over the kept IoUs
        return _mean_where(iou.reshape(1, -1), present.reshape(1, -1))[0]
    miou = _mean_where(iou, present)  # (N,)
    return _mean_where(miou.unsqueeze(0), ~torch.isnan(miou).unsqueeze(0))[0]


def _check_average(average: str) -> None:
    if average not in ("image", "pair"):
        raise ValueError(
            f"average must be 'image' or 'pair'; got {average!r}. 'pair' reproduces torchmetrics' MeanIoU."
        )


def per_image_mean_iou(matrices: torch.Tensor, *, average: PerImageAverage = "image") -> torch.Tensor:
    """Per-image mIoU: each image's mIoU (same absent-class rule, within the image), then averaged.

    ``"image"``: the mean over images of each image's mIoU; images without counted pixels
    (all ignored) have no mIoU and are left out. Equals ``nanmean`` over images of torchmetrics'
    functional ``mean_iou(..., input_format="index")``, which returns one value per image.

    ``"pair"``: the mean of ``IoU_{i,c}`` over all (image, class) pairs where class c is not absent
    in image i, i.e. per-image mIoUs weighted by their number of classes:
    ``sum_i n_i mIoU_i / sum_i n_i``. This is exactly what torchmetrics' ``MeanIoU(per_class=False)``
    accumulates (``score += sum of valid IoUs``, ``num_batches += number of valid pairs``, in
    torchmetrics 1.9 ``segmentation/mean_iou.py``), up to its float32 arithmetic. Neither equals the
    dataset-level :func:`mean_iou`.

    Args:
        matrices: ``int [N, K, K]`` per-image confusion matrices (:func:`per_image_confusion`).
        average: ``"image"`` or ``"pair"`` (see above).

    Returns:
        float64 scalar tensor; NaN when no image has a counted pixel.
    """
    _check_average(average)
    if matrices.ndim != 3:
        raise ValueError(f"matrices must have shape [N, K, K]; got {tuple(matrices.shape)}. Use per_image_confusion.")
    return _per_image_miou_from_stats(torch.stack(_class_counts(matrices), dim=1), average)


# --------------------------------------------------------------------------------------------
# Streaming accumulator
# --------------------------------------------------------------------------------------------


def _none_for_nan(values: torch.Tensor) -> list[Any]:
    return [None if v != v else v for v in values.tolist()]


class SegmentationAccumulator:
    """Streaming segmentation metrics: ``update`` with batches of masks, ``merge``/``sync`` across
    processes, ``compute`` and bootstrap ``intervals`` (resampling images).

    State: the dataset confusion matrix (``int64 [K, K]``) and, per image, ``(TP, T, P)`` per class
    (``int64 [3, K]``, 24·K bytes: 504 B for K = 21, 3.6 KB for K = 150), enough for the per-image
    mIoU and for the image bootstrap, since every scalar is a function of those counts.

    Args:
        num_classes: K.
        ignore_index: target value of void pixels (``None``: count every pixel).
        per_image_average: how ``mIoU_per_image`` averages (see :func:`per_image_mean_iou`):
            ``"image"`` (mean of image mIoUs) or ``"pair"`` (torchmetrics' ``MeanIoU``).

    Example:
        >>> acc = SegmentationAccumulator(2)
        >>> acc.update(torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1], [255, 0]]]))
        >>> acc.compute()["pixel_accuracy"]
        0.6666666666666666
    """

    def __init__(
        self, num_classes: int, *, ignore_index: int | None = 255, per_image_average: PerImageAverage = "image"
    ) -> None:
        _check_options(num_classes, ignore_index)
        _check_average(per_image_average)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.per_image_average = per_image_average
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self._image_stats: list[torch.Tensor] = []  # [n, 3, K] blocks, in update order

    @property
    def image_stats(self) -> torch.Tensor:
        """``int64 [N, 3, K]``: (TP, target pixels, predicted pixels) per image and class, in order."""
        if len(self._image_stats) != 1:
            joined = torch.cat(self._image_stats) if self._image_stats else torch.zeros(0, 3, self.num_classes)
            self._image_stats = [joined.long()]
        return self._image_stats[0]

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``preds`` integer ``[N, H, W]`` or logits ``[N, K, H, W]``, ``target``
        ``[N, H, W]`` (``[H, W]`` / ``[K, H, W]`` for one image). See :func:`per_image_confusion`."""
        self.update_confusions(per_image_confusion(preds, target, self.num_classes, ignore_index=self.ignore_index))

    def update_confusions(self, matrices: torch.Tensor) -> None:
        """Add images given by their confusion matrices, integer ``[N, K, K]`` (rows: target), as
        :func:`per_image_confusion` returns them: for a caller that needs the matrices too."""
        k = self.num_classes
        if matrices.ndim != 3 or tuple(matrices.shape[1:]) != (k, k) or matrices.is_floating_point():
            raise ValueError(f"matrices must be integer [N, {k}, {k}] per-image confusion matrices; got "
                             f"{matrices.dtype} {tuple(matrices.shape)}. Use per_image_confusion to make them.")
        matrices = matrices.long()
        self.matrix += matrices.sum(dim=0).cpu()
        self._image_stats.append(torch.stack(_class_counts(matrices), dim=1).cpu())

    def merge(self, other: SegmentationAccumulator) -> SegmentationAccumulator:
        """Add another accumulator's data (its images after ours); returns ``self``."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"accumulators must have the same num_classes and ignore_index to merge; got "
                f"({self.num_classes}, {self.ignore_index}) and ({other.num_classes}, {other.ignore_index})."
            )
        self.matrix += other.matrix
        self._image_stats.append(other.image_stats.clone())
        return self

    def sync(self, group: object | None = None) -> SegmentationAccumulator:
        """Combine the data of every process of ``group`` (DDP) into each one; returns ``self``.

        The matrices are summed (``all_reduce``) and the per-image counts gathered
        (``all_gather``, padded to the longest), images ordered by rank. Works with gloo (CPU
        tensors) and NCCL (through the current CUDA device). A no-op outside ``torch.distributed``.
        Call it once, after the last ``update``.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else None
        matrix = self.matrix.to(device)
        dist.all_reduce(matrix, op=dist.ReduceOp.SUM, group=group)
        stats = self.image_stats.to(device)
        size = torch.tensor([stats.shape[0]], dtype=torch.int64, device=device)
        sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size(group))]
        dist.all_gather(sizes, size, group=group)
        padded = torch.zeros(max(int(s) for s in sizes), 3, self.num_classes, dtype=torch.int64, device=device)
        padded[: stats.shape[0]] = stats
        gathered = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(gathered, padded, group=group)
        self.matrix = matrix.cpu()
        self._image_stats = [torch.cat([g[: int(s)] for g, s in zip(gathered, sizes, strict=True)]).cpu()]
        return self

    def compute(self) -> dict[str, Any]:
        """Metrics of everything seen so far.

        Returns:
            ``mIoU``, ``fwIoU``, ``pixel_accuracy``, ``mean_class_accuracy``, ``dice_mean`` (dataset
            level) and ``mIoU_per_image`` as floats (NaN when undefined, with an
            :class:`UndefinedMetricWarning` when no pixel was counted); ``per_class``
            (``iou``, ``dice``, ``accuracy`` with ``None`` where undefined, ``support`` and
            ``predicted`` pixel counts; lists of K); ``absent_classes``; ``confusion_matrix``
            (K lists of K ints); ``num_images``.
        """
        cm = self.matrix
        if int(cm.sum()) == 0:
            warnings.warn(
                "No counted pixel (no image, or every target pixel is ignore_index): the segmentation metrics "
                "are undefined and set to NaN.", UndefinedMetricWarning, stacklevel=2,
            )
        out: dict[str, Any] = {name: float(v) for name, v in segmentation_metric_tensors(cm).items()}
        out["mIoU_per_image"] = float(_per_image_miou_from_stats(self.image_stats, self.per_image_average))
        tp, support, predicted = _class_counts(cm)
        out["per_class"] = {
            "iou": _none_for_nan(per_class_iou(cm)), "dice": _none_for_nan(per_class_dice(cm)),
            "accuracy": _none_for_nan(per_class_accuracy(cm)), "support": support.tolist(),
            "predicted": predicted.tolist(),
        }
        out["absent_classes"] = absent_classes(cm)
        out["confusion_matrix"] = cm.tolist()
        out["num_images"] = int(self.image_stats.shape[0])
        return out

    def intervals(
        self, *, resamples: int = 1000, seed: int = 0, level: float = 0.95
    ) -> dict[str, tuple[float, float]]:
        """Bootstrap percentile intervals of the scalars of :meth:`compute`, resampling images.

        A resample draws N images with replacement (:func:`~visionbench.metrics.stats.bootstrap_count_blocks`,
        counts ``[R, N]``); its per-class counts are ``counts @ image_stats`` (exact integers in
        float64), so all R resamples cost one matrix product. Every scalar uses the same resamples.

        Args:
            resamples: number of bootstrap resamples R.
            seed: seed of the draws (same seed, same intervals).
            level: central coverage of the interval.

        Returns:
            ``(low, high)`` per scalar name; ``(nan, nan)`` without images.
        """
        stats = self.image_stats
        n, k = stats.shape[0], self.num_classes
        if n == 0:
            return {name: (float("nan"), float("nan")) for name in SEGMENTATION_HIGHER_IS_BETTER}
        flat = stats.reshape(n, 3 * k).double()  # (N, 3K)
        numer, denom = _per_image_terms(stats, self.per_image_average)  # (N,), (N,)
        values: dict[str, list[torch.Tensor]] = {name: [] for name in SEGMENTATION_HIGHER_IS_BETTER}
        for counts in bootstrap_count_blocks(n, resamples=resamples, seed=seed):  # (R_block, N)
            for name, value in _resampled_scalars(counts, flat, k).items():
                values[name].append(value)
            values["mIoU_per_image"].append(_ratio(counts @ numer, counts @ denom))
        return {name: percentile_interval(torch.cat(parts), level) for name, parts in values.items()}


def _resampled_scalars(counts: torch.Tensor, flat: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """The dataset-level scalars of each resample: ``counts`` ``[R, N]`` draws of the images whose
    per-image ``(TP, T, P)`` class counts are ``flat`` ``float64 [N, 3K]`` (exact integers)."""
    tp, support, predicted = (counts @ flat).reshape(-1, 3, k).unbind(dim=1)  # (R, K) each
    return _scalars_from_counts(tp, support, predicted)


def compare_segmentation(confusions_a: torch.Tensor, confusions_b: torch.Tensor, *, resamples: int = 1000,
                         seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap comparison of two segmentation runs on the same images.

    Both runs are resampled with the *same* image counts; each resample sums the drawn images'
    confusion matrices into one dataset-level matrix per run, so the compared numbers are the
    dataset-level metrics (not per-image means). The difference is ``b - a``.

    Args:
        confusions_a, confusions_b: per-image confusion matrices ``int [N, K, K]`` (rows: target),
            image ``i`` the same image in both, e.g. from :func:`per_image_confusion`.

    Returns:
        ``{name: PairedMetric}`` for ``mIoU``, ``fwIoU``, ``pixel_accuracy``,
        ``mean_class_accuracy`` and ``dice_mean``.
    """
    from visionbench.metrics.significance import paired_metric

    if confusions_a.shape != confusions_b.shape or confusions_a.ndim != 3:
        raise ValueError(f"per-image confusion matrices must both be [N, K, K] for the same images; got "
                         f"{tuple(confusions_a.shape)} and {tuple(confusions_b.shape)}. Evaluate both runs on one test set.")
    n, k = confusions_a.shape[0], confusions_a.shape[-1]
    # Every scalar depends on the per-class (TP, T, P) counts only: [N, 3K] per run, not [N, K, K].
    flat_a, flat_b = (torch.stack(_class_counts(c), dim=1).reshape(n, 3 * k).double() for c in (confusions_a, confusions_b))
    value_a, value_b = segmentation_metric_tensors(confusions_a.sum(0)), segmentation_metric_tensors(confusions_b.sum(0))
    diffs: dict[str, list[torch.Tensor]] = {name: [] for name in value_a}
    for counts in bootstrap_count_blocks(n, resamples=resamples, seed=seed):  # (R_block, N)
        metrics_a, metrics_b = _resampled_scalars(counts, flat_a, k), _resampled_scalars(counts, flat_b, k)
        for name in diffs:
            diffs[name].append(metrics_b[name] - metrics_a[name])
    return {name: paired_metric(float(value_a[name]), float(value_b[name]), torch.cat(parts))
            for name, parts in diffs.items()}
