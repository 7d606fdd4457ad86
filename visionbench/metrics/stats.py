"""Bootstrap confidence intervals, vectorised: resamples are processed in blocks, each block with
one gather and one ``bincount``, never a Python loop per resample."""

from __future__ import annotations

from collections.abc import Callable

import torch

from visionbench.metrics.classification import metric_tensors_from_confusion

# Upper bound on indices drawn at once (R_block * N), so memory stays bounded for large N:
# 2**24 int64 indices are 128 MiB.
_MAX_DRAWN = 2**24


def bootstrap_statistics(
    num_samples: int, statistic: Callable[[torch.Tensor], dict[str, torch.Tensor]], *, resamples: int = 1000,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Values of ``statistic`` on ``resamples`` bootstrap resamples of ``num_samples`` samples.

    Args:
        num_samples: N; each resample draws N sample indices with replacement.
        statistic: maps a block of index draws ``int64 [R_block, N]`` to named values
            ``[R_block]``.
        resamples: R. seed: seed of the draws (same seed, same resamples).

    Returns:
        Each name's values over all resamples, ``[R]``.
    """
    generator = torch.Generator().manual_seed(seed)
    block = max(1, _MAX_DRAWN // max(num_samples, 1))
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        draws = torch.randint(0, max(num_samples, 1), (count, num_samples), generator=generator)  # (R_block, N)
        for name, values in statistic(draws).items():
            parts.setdefault(name, []).append(values)
    return {name: torch.cat(values) for name, values in parts.items()}


def confusion_matrices_of_draws(pair: torch.Tensor, draws: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion matrices ``[R, K, K]`` of the resamples ``draws`` ``[R, N]``.

    ``pair`` is ``true * K + pred`` per sample; all R matrices come from one ``bincount`` over
    ``resample * K² + pair``.
    """
    r, k2 = draws.shape[0], num_classes * num_classes
    offsets = torch.arange(r).unsqueeze(1) * k2  # (R, 1)
    flat = (pair[draws] + offsets).reshape(-1)
    return torch.bincount(flat, minlength=r * k2).reshape(r, num_classes, num_classes)


def bootstrap_confusion_matrices(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, *, resamples: int = 1000, seed: int = 0
) -> torch.Tensor:
    """Confusion matrices ``int64 [R, K, K]`` of ``resamples`` bootstrap resamples of the samples."""
    pair = target.long() * num_classes + preds.long()
    values = bootstrap_statistics(
        pair.numel(), lambda d: {"cm": confusion_matrices_of_draws(pair, d, num_classes)}, resamples=resamples, seed=seed
    )
    return values["cm"]


def percentile_interval(values: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap values (NaNs ignored)."""
    finite = values[~torch.isnan(values)].double()
    if finite.numel() == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2
    low, high = torch.quantile(finite, torch.tensor([tail, 1.0 - tail], dtype=torch.float64))
    return float(low), float(high)


def classification_intervals(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, *, per_sample: dict[str, torch.Tensor] | None = None,
    resamples: int = 1000, seed: int = 0,
    metric_fn: Callable[[torch.Tensor], dict[str, torch.Tensor]] = metric_tensors_from_confusion,
) -> dict[str, tuple[float, float]]:
    """95% bootstrap intervals of the confusion-matrix metrics and of per-sample means.

    Args:
        preds, target: ``int [N]``.
        per_sample: optional named per-sample values ``[N]`` (e.g. ``log_loss`` terms) whose mean
            is a reported metric; resampled with the same draws as the matrix.
        metric_fn: maps ``[R, K, K]`` matrices to named ``[R]`` values.
    """
    if target.numel() == 0:
        return {name: (float("nan"), float("nan")) for name in [*metric_fn(torch.zeros(1, num_classes, num_classes, dtype=torch.int64)), *(per_sample or {})]}
    pair = target.long() * num_classes + preds.long()

    def statistic(draws: torch.Tensor) -> dict[str, torch.Tensor]:
        values = metric_fn(confusion_matrices_of_draws(pair, draws, num_classes))
        for name, terms in (per_sample or {}).items():
            values[name] = terms.double()[draws].mean(dim=1)
        return values

    values = bootstrap_statistics(pair.numel(), statistic, resamples=resamples, seed=seed)
    return {name: percentile_interval(v) for name, v in values.items()}
