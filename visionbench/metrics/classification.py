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

import numpy as np
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
    when every entry is NaN; weights that sum to zero fall back to the plain mean.

    The sums run in NumPy (pairwise summation along the contiguous last axis, as scikit-learn's
    ``np.nanmean``/``np.average`` do), so averages equal scikit-learn's bit for bit; K is small,
    so the round trip costs nothing.
    """
    a = values.detach().cpu().double().numpy()
    valid = ~np.isnan(a)
    filled = np.where(valid, a, 0.0)
    count = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.sum(filled, axis=-1) / count
        if weights is not None:
            w = np.where(valid, np.broadcast_to(weights.detach().cpu().double().numpy(), a.shape), 0.0)
            total = np.sum(w, axis=-1)
            result = np.where(total > 0, np.sum(filled * w, axis=-1) / total, result)
    result = np.where(count > 0, result, np.nan)
    return torch.from_numpy(np.array(result, dtype=np.float64)).to(values.device)  # keeps 0-d shapes


def balanced_accuracy_from_confusion(cm: torch.Tensor) -> torch.Tensor:
    """Mean recall over the classes that have samples (scikit-learn's definition); ``[..., K, K]``."""
    support = cm.sum(dim=-1).double()
    present = support > 0
    recall = cm.diagonal(dim1=-2, dim2=-1).double() / support.clamp_min(1)
    return (recall * present).sum(-1) / present.sum(-1).clamp_min(1)


def fbeta_from_confusion(
    cm: torch.Tensor, *, beta: float, average: Average = "macro", zero_division: ZeroDivision = "warn"
) -> torch.Tensor:
    """F-beta score as scikit-learn's ``fbeta_score`` with ``labels=range(K)``.

    ``(1 + beta²) tp / ((1 + beta²) tp + beta² fn + fp)`` per class, from counts (scikit-learn
    >= 1.3); ``beta = 0`` is precision and ``beta = inf`` recall.

    Args:
        cm: ``[..., K, K]`` confusion matrices (rows true, columns predicted).
        beta: weight of recall relative to precision, ``>= 0`` (``float("inf")`` allowed).
        average: ``"micro"``, ``"macro"``, ``"weighted"`` (by support) or ``"none"`` (``[..., K]``).
        zero_division: value of a 0/0 class (``"warn"`` = 0 with an :class:`UndefinedMetricWarning`).

    Returns:
        float64 ``[...]`` (``[..., K]`` for ``average="none"``).

    Example:
        >>> cm = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2)
        >>> fbeta_from_confusion(cm, beta=1.0, average="micro")
        tensor(0.6667, dtype=torch.float64)
    """
    if not beta >= 0:  # also rejects NaN
        raise ValueError(f"beta must be >= 0; got {beta!r}. Use beta=1 for F1, beta<1 to favour precision.")
    tp = cm.diagonal(dim1=-2, dim2=-1).double()  # (..., K)
    predicted, support = cm.sum(dim=-2).double(), cm.sum(dim=-1).double()
    if average == "micro":
        tp, predicted, support = tp.sum(-1), predicted.sum(-1), support.sum(-1)
    if beta == float("inf"):
        score = _divide(tp, support, zero_division, "F-score")
    elif beta == 0:
        score = _divide(tp, predicted, zero_division, "F-score")
    else:
        beta2 = float(beta) ** 2
        # Same operations as scikit-learn, so the values agree to the last bit.
        score = _divide((1 + beta2) * tp, beta2 * support + predicted, zero_division, "F-score")
    if average in ("micro", "none"):
        return score
    return _nanaverage(score, support if average == "weighted" else None)


def specificity_from_confusion(
    cm: torch.Tensor, *, average: Average = "macro", zero_division: ZeroDivision = "warn"
) -> torch.Tensor:
    """Specificity (true-negative rate) ``TN / (TN + FP)`` of each class against the rest.

    For class ``c``: negatives are the samples whose true class is not ``c``; ``FP`` are those
    predicted ``c``. Equal to scikit-learn's ``multilabel_confusion_matrix`` entries
    ``tn / (tn + fp)``. 0/0 (every sample is of class ``c``, or no samples) follows
    ``zero_division``.

    Args:
        cm: ``[..., K, K]`` confusion matrices.
        average: ``"macro"`` (mean over all K classes), ``"weighted"`` (by class support, as
            scikit-learn weights precision and recall), ``"micro"`` (summed TN over summed
            TN + FP) or ``"none"`` (``[..., K]``).
        zero_division: value of a 0/0 class (``"warn"`` = 0 with an :class:`UndefinedMetricWarning`).

    Returns:
        float64 ``[...]`` (``[..., K]`` for ``average="none"``).
    """
    tp = cm.diagonal(dim1=-2, dim2=-1).double()  # (..., K)
    predicted, support = cm.sum(dim=-2).double(), cm.sum(dim=-1).double()
    total = cm.sum(dim=(-2, -1)).double().unsqueeze(-1)  # (..., 1)
    fp = predicted - tp
    negatives = total - support  # TN + FP
    tn = negatives - fp
    if average == "micro":
        tn, negatives = tn.sum(-1), negatives.sum(-1)
    score = _divide(tn, negatives, zero_division, "Specificity")
    if average in ("micro", "none"):
        return score
    return _nanaverage(score, support if average == "weighted" else None)


def _numpy_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis in NumPy (pairwise summation), so that a sum scikit-learn takes with
    ``np.sum`` is reproduced to the last bit."""
    return torch.from_numpy(np.array(np.sum(values.detach().cpu().double().numpy(), axis=-1))).to(values.device)


def cohen_kappa_from_confusion(cm: torch.Tensor, *, replace_undefined_by: float = float("nan")) -> torch.Tensor:
    """Cohen's kappa (unweighted) as scikit-learn's ``cohen_kappa_score`` with ``labels=range(K)``.

    ``kappa = 1 - sum_{i != j} C_ij / sum_{i != j} E_ij`` with ``E = outer(col sums, row sums) / n``,
    computed in scikit-learn's order of operations (bit-for-bit equal). Undefined when there are
    no samples or when both raters use one and the same single class (the expected disagreement
    is 0): the value is ``replace_undefined_by`` (scikit-learn 1.9's default: NaN) with an
    :class:`UndefinedMetricWarning`.

    Args:
        cm: ``[..., K, K]`` confusion matrices.
        replace_undefined_by: value of an undefined kappa.

    Returns:
        float64 ``[...]`` in ``[-1, 1]``.

    Example:
        >>> cm = confusion_matrix(torch.tensor([0, 1, 0, 2, 0]), torch.tensor([0, 1, 0, 2, 1]), 3)
        >>> float(cohen_kappa_from_confusion(cm))
        0.6875
    """
    c = cm.double()
    k = c.shape[-1]
    off_diagonal = 1.0 - torch.eye(k, dtype=torch.float64, device=c.device)  # (K, K)
    predicted, true = c.sum(dim=-2), c.sum(dim=-1)  # (..., K): scikit-learn's sum0, sum1
    total = predicted.sum(-1)  # (...)
    safe_total = torch.where(total == 0, torch.ones_like(total), total)
    expected = predicted.unsqueeze(-1) * true.unsqueeze(-2) / safe_total[..., None, None]  # (..., K, K)
    observed_disagreement = (off_diagonal * c).flatten(-2).sum(-1)  # integers: exact in any order
    expected_disagreement = _numpy_sum((off_diagonal * expected).flatten(-2))
    undefined = expected_disagreement == 0  # includes total == 0
    kappa = 1 - observed_disagreement / torch.where(undefined, torch.ones_like(total), expected_disagreement)
    if undefined.any():
        warnings.warn(
            "Cohen's kappa is undefined (no samples, or both raters use a single common class) and set "
            f"to {replace_undefined_by}. Use the `replace_undefined_by` parameter to control this value.",
            UndefinedMetricWarning, stacklevel=2,
        )
        kappa = torch.where(undefined, torch.full_like(kappa, float(replace_undefined_by)), kappa)
    return kappa


def matthews_corrcoef_from_confusion(cm: torch.Tensor) -> torch.Tensor:
    """Matthews correlation coefficient (multiclass R_K) as scikit-learn's ``matthews_corrcoef``.

    ``(c s - t.p) / sqrt((s² - p.p)(s² - t.t))`` with ``t``/``p`` the true/predicted class counts,
    ``c`` the correct count and ``s`` the total; every intermediate is an integer-valued float64,
    so the value equals scikit-learn's bit for bit (up to 2**53). When the denominator is 0 (no
    samples, or a single class on either side) the value is 0.0, as in scikit-learn, with an
    :class:`UndefinedMetricWarning` (scikit-learn does not warn).

    Args:
        cm: ``[..., K, K]`` confusion matrices.

    Returns:
        float64 ``[...]`` in ``[-1, 1]``.
    """
    c = cm.double()
    true, predicted = c.sum(dim=-1), c.sum(dim=-2)  # (..., K)
    correct = c.diagonal(dim1=-2, dim2=-1).sum(-1)
    total = predicted.sum(-1)
    cov_true_pred = correct * total - (true * predicted).sum(-1)
    cov_pred_pred = total**2 - (predicted * predicted).sum(-1)
    cov_true_true = total**2 - (true * true).sum(-1)
    denominator = cov_pred_pred * cov_true_true
    undefined = denominator == 0
    if undefined.any():
        warnings.warn(
            "Matthews correlation coefficient is undefined (no samples, or a single class in the "
            "target or in the predictions) and set to 0.0, as scikit-learn does.",
            UndefinedMetricWarning, stacklevel=2,
        )
    safe = torch.where(undefined, torch.ones_like(denominator), denominator)
    # NumPy's sqrt is correctly rounded; torch's CPU kernel can be one ulp off.
    root = torch.from_numpy(np.array(np.sqrt(safe.detach().cpu().numpy()))).to(safe.device)
    return torch.where(undefined, torch.zeros_like(denominator), cov_true_pred / root)


def metric_tensors_from_confusion(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """The scalar metrics visionbench reports, by stable name, for ``[..., K, K]`` matrices.

    Undefined values are reported silently: 0 for precision/recall/F1/specificity (``zero_division=0``),
    0.0 for Cohen's kappa and Matthews' coefficient.
    """
    out = {"accuracy": accuracy_from_confusion(cm), "balanced_accuracy": balanced_accuracy_from_confusion(cm)}
    with warnings.catch_warnings():
        # Reported metrics use zero_division=0 silently; classes without samples are visible in
        # the per-class table and the confusion matrix.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for average in ("macro", "micro", "weighted"):
            p, r, f = precision_recall_f1_from_confusion(cm, average=average, zero_division=0)
            out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = p, r, f
        # Undefined agreement measures are reported as 0.0 (no agreement beyond chance measurable),
        # like the zero_division=0 of the others.
        out["cohen_kappa"] = cohen_kappa_from_confusion(cm, replace_undefined_by=0.0)
        out["matthews_corrcoef"] = matthews_corrcoef_from_confusion(cm)
        out["specificity_macro"] = specificity_from_confusion(cm, average="macro", zero_division=0)
    return out


def metrics_from_confusion(cm: torch.Tensor) -> dict[str, float]:
    """:func:`metric_tensors_from_confusion` of one ``[K, K]`` matrix, as Python floats."""
    return {name: float(value) for name, value in metric_tensors_from_confusion(cm).items()}


def log_loss_terms(probs: torch.Tensor, target: torch.Tensor, *, renormalize: bool = True) -> torch.Tensor:
    """Per-sample negative log-likelihood ``-log p[y]``, whose mean is scikit-learn's ``log_loss``.

    Probabilities are clipped to ``[eps, 1 - eps]`` with ``eps`` the machine epsilon of
    ``probs``' dtype (scikit-learn's rule), so a confident wrong prediction costs a large finite
    amount rather than infinity. The log is taken in float64 (of the clipped values).

    Args:
        probs: ``float [N, K]`` class probabilities. target: ``int [N]``.
        renormalize: divide each row by its sum first (changes values only at rounding level for
            softmax outputs). scikit-learn >= 1.5 does not renormalise: pass ``False`` for its
            numbers exactly (:func:`visionbench.metrics.scores.log_loss` does).

    Returns:
        ``float64 [N]``.
    """
    eps = torch.finfo(probs.dtype).eps
    p = probs.double()
    if renormalize:
        p = p / p.sum(dim=1, keepdim=True)
    # eps and 1 - eps of float32/float16 are exact in float64, so clipping after the cast equals
    # clipping in the input dtype.
    p = p.clamp(eps, 1 - eps)
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

    def sync(self, group: object | None = None) -> ConfusionMatrixAccumulator:
        """Sum the matrices of every process of ``group`` (DDP) into each one; returns ``self``.

        A no-op outside ``torch.distributed``. Counts are integers, so the result is exactly the
        matrix one process would have built from all the data.
        """
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM, group=group)
        return self

    def compute(self) -> dict[str, float]:
        """Scalar metrics of everything seen so far."""
        return metrics_from_confusion(self.matrix)
