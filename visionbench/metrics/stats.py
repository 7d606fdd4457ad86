"""Bootstrap confidence intervals, vectorised: all resamples in one ``bincount``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from visionbench.metrics.classification import metric_tensors_from_confusion


def bootstrap_confusion_matrices(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, *, resamples: int = 1000, seed: int = 0
) -> torch.Tensor:
    """Confusion matrices of ``resamples`` bootstrap resamples of the samples.

    Each resample draws N samples with replacement; all matrices come from a single
    ``bincount`` over ``resample * K² + true * K + pred`` (no Python loop per resample).

    Returns:
        ``int64 [resamples, K, K]``.
    """
    n, k = target.numel(), num_classes
    generator = torch.Generator().manual_seed(seed)
    pair = target.long() * k + preds.long()  # (N,)
    draws = torch.randint(0, max(n, 1), (resamples, n), generator=generator)  # (R, N)
    offsets = torch.arange(resamples).unsqueeze(1) * (k * k)  # (R, 1)
    flat = (pair[draws] + offsets).reshape(-1) if n else torch.zeros(0, dtype=torch.int64)
    return torch.bincount(flat, minlength=resamples * k * k).reshape(resamples, k, k)


def percentile_interval(values: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap values (NaNs ignored)."""
    finite = values[~torch.isnan(values)].double()
    if finite.numel() == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2
    low, high = torch.quantile(finite, torch.tensor([tail, 1.0 - tail], dtype=torch.float64))
    return float(low), float(high)


def classification_intervals(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, *, resamples: int = 1000, seed: int = 0,
    metric_fn: Callable[[torch.Tensor], dict[str, torch.Tensor]] = metric_tensors_from_confusion,
) -> dict[str, tuple[float, float]]:
    """95% bootstrap interval of every scalar ``metric_fn`` computes from a confusion matrix.

    ``metric_fn`` takes ``[R, K, K]`` and returns ``[R]`` tensors, so all resamples are computed
    at once.
    """
    matrices = bootstrap_confusion_matrices(preds, target, num_classes, resamples=resamples, seed=seed)
    return {name: percentile_interval(values) for name, values in metric_fn(matrices).items()}
