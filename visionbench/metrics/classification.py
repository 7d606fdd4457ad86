"""Classification metrics from one confusion matrix.

Functional core: :func:`confusion_matrix` (one ``bincount``) and pure functions of the matrix.
Stateful wrapper: :class:`ConfusionMatrixAccumulator` (``update`` / ``merge`` / ``compute``),
whose only state is the matrix, so N processes summing their matrices give exactly the number one
process would. Definitions follow scikit-learn's ``_classification.py`` with
``labels=range(num_classes)``: averages run over all classes, present or not.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from visionbench.metrics._confusion import count_pairs

Average = Literal["micro", "macro", "weighted", "none"]
ZeroDivision = Literal["warn", 0, 1, "nan"]


class UndefinedMetricWarning(UserWarning):
    """A metric is 0/0 for some class; the value follows ``zero_division``."""


def confusion_matrix(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts of (true class, predicted class) pairs.

    Args:
        preds: ``int [N]`` predicted class in ``[0, num_classes)``.
        target: ``int [N]`` true class in ``[0, num_classes)``.
        num_classes: K.

    Returns:
        ``int64 [K, K]``; row = true class, column = predicted class (scikit-learn's layout).

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2)
        tensor([[1, 1],
                [0, 1]])
    """
    preds, target = preds.reshape(-1).long(), target.reshape(-1).long()
    if preds.shape != target.shape:
        raise ValueError(f"preds and target must have the same length; got {preds.numel()} and {target.numel()}")
    return count_pairs(preds, target, num_classes).reshape(num_classes, num_classes)


def _divide(numer: torch.Tensor, denom: torch.Tensor, zero_division: ZeroDivision, what: str) -> torch.Tensor:
    """``numer / denom`` in float64 with 0/0 replaced as scikit-learn's ``zero_division`` says."""
    numer, denom = numer.double(), denom.double()
    undefined = denom == 0
    result = numer / torch.where(undefined, torch.ones_like(denom), denom)
    if undefined.any():
        if zero_division == "warn":
            warnings.warn(
                f"{what} is ill-defined and set to 0.0 for classes with no samples to divide by. "
                "Use the `zero_division` parameter to control this behaviour.",
                UndefinedMetricWarning, stacklevel=3,
            )
        fill = float("nan") if zero_division == "nan" else (0.0 if zero_division == "warn" else float(zero_division))
        result = torch.where(undefined, torch.full_like(result, fill), result)
    return result


def accuracy_from_confusion(cm: torch.Tensor) -> torch.Tensor:
    """Fraction of correct predictions; ``cm`` is ``[..., K, K]`` (0.0 for an empty matrix)."""
    total = cm.sum(dim=(-2, -1)).double()
    correct = cm.diagonal(dim1=-2, dim2=-1).sum(dim=-1).double()
    return correct / total.clamp_min(1)


def precision_recall_f1_from_confusion(
    cm: torch.Tensor, *, average: Average = "macro", zero_division: ZeroDivision = "warn"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision, recall and F1 as scikit-learn's ``precision_recall_fscore_support``.

    Args:
        cm: ``[..., K, K]`` confusion matrices (rows true, columns predicted); leading dimensions
            (e.g. bootstrap resamples) are kept.
        average: ``"micro"`` (global counts), ``"macro"`` (unweighted class mean),
            ``"weighted"`` (mean weighted by class support) or ``"none"`` (per class, ``[..., K]``).
        zero_division: value for 0/0 (``"warn"`` = 0 with an :class:`UndefinedMetricWarning`).

    Returns:
        Three float64 tensors of shape ``[...]`` (or ``[..., K]`` for ``average="none"``).
    """
    tp = cm.diagonal(dim1=-2, dim2=-1).double()  # (..., K)
    predicted, support = cm.sum(dim=-2).double(), cm.sum(dim=-1).double()
    if average == "micro":
        tp, predicted, support = tp.sum(-1), predicted.sum(-1), support.sum(-1)
    precision = _divide(tp, predicted, zero_division, "Precision")
    recall = _divide(tp, support, zero_division, "Recall")
    # F1 from counts, as scikit-learn >= 1.3 does: 2tp / (2tp + fp + fn).
    f1 = _divide(2 * tp, predicted + support, zero_division, "F-score")
    if average in ("micro", "none"):
        return precision, recall, f1
    weights = support if average == "weighted" else None
    return _nanaverage(precision, weights), _nanaverage(recall, weights), _nanaverage(f1, weights)


def _nanaverage(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean over the last axis ignoring NaN entries (scikit-learn's ``_nanaverage``): NaN only
    when every entry is NaN; weights that sum to zero fall back to the plain mean."""
    valid = ~torch.isnan(values)
    filled = torch.where(valid, values, torch.zeros_like(values))
    count = valid.sum(-1)
    plain = filled.sum(-1) / count.clamp_min(1)
    if weights is not None:
        w = torch.where(valid, weights.double(), torch.zeros_like(filled))
        total = w.sum(-1)
        plain = torch.where(total > 0, (filled * w).sum(-1) / total.clamp_min(1e-300), plain)
    return torch.where(count > 0, plain, torch.full_like(plain, float("nan")))


def balanced_accuracy_from_confusion(cm: torch.Tensor) -> torch.Tensor:
    """Mean recall over the classes that have samples (scikit-learn's definition); ``[..., K, K]``."""
    support = cm.sum(dim=-1).double()
    present = support > 0
    recall = cm.diagonal(dim1=-2, dim2=-1).double() / support.clamp_min(1)
    return (recall * present).sum(-1) / present.sum(-1).clamp_min(1)


def metric_tensors_from_confusion(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """The scalar metrics visionbench reports, by stable name, for ``[..., K, K]`` matrices."""
    out = {"accuracy": accuracy_from_confusion(cm), "balanced_accuracy": balanced_accuracy_from_confusion(cm)}
    with warnings.catch_warnings():
        # Reported metrics use zero_division=0 silently; classes without samples are visible in
        # the per-class table and the confusion matrix.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for average in ("macro", "micro", "weighted"):
            p, r, f = precision_recall_f1_from_confusion(cm, average=average, zero_division=0)
            out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = p, r, f
    return out


def metrics_from_confusion(cm: torch.Tensor) -> dict[str, float]:
    """:func:`metric_tensors_from_confusion` of one ``[K, K]`` matrix, as Python floats."""
    return {name: float(value) for name, value in metric_tensors_from_confusion(cm).items()}


def log_loss_terms(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample negative log-likelihood ``-log p[y]``, whose mean is scikit-learn's ``log_loss``.

    Probabilities are clipped to ``[eps, 1 - eps]`` with ``eps`` the machine epsilon of
    ``probs``' dtype (scikit-learn's rule), so a confident wrong prediction costs a large finite
    amount rather than infinity. Rows are renormalised to sum to 1 first, which changes nothing
    for softmax outputs.

    Args:
        probs: ``float [N, K]`` class probabilities. target: ``int [N]``.

    Returns:
        ``float64 [N]``.
    """
    eps = torch.finfo(probs.dtype).eps
    p = probs.double()
    p = (p / p.sum(dim=1, keepdim=True)).clamp(eps, 1 - eps)
    return -torch.log(p.gather(1, target.long().reshape(-1, 1)).squeeze(1))


class ConfusionMatrixAccumulator:
    """Streaming confusion matrix: ``update`` with batches, ``merge`` across processes.

    Example:
        >>> acc = ConfusionMatrixAccumulator(3)
        >>> acc.update(torch.tensor([0, 2]), torch.tensor([0, 1]))
        >>> acc.compute()["accuracy"]
        0.5
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted classes ``[N]`` (or logits ``[N, K]``) and targets ``[N]``."""
        if preds.ndim == 2:
            preds = preds.argmax(dim=1)
        self.matrix += confusion_matrix(preds.cpu(), target.cpu(), self.num_classes)

    def merge(self, other: ConfusionMatrixAccumulator) -> ConfusionMatrixAccumulator:
        """Add another accumulator's counts into this one (returns ``self``)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge accumulators of {self.num_classes} and {other.num_classes} classes")
        self.matrix += other.matrix
        return self

    def compute(self) -> dict[str, float]:
        """Scalar metrics of everything seen so far."""
        return metrics_from_confusion(self.matrix)
