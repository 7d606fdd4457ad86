"""Ranking metrics of one binary problem from cumulative counts, and their bootstrap from one sort.

Counting (shared with :mod:`visionbench.metrics.scores`, which validates the inputs): one stable
descending sort per binary problem, then cumulative true/false positives at each distinct score
(:func:`cumulative_counts`); ROC AUC (:func:`auc_from_counts`, trapezoid: a tied positive/negative
pair counts one half) and step-wise average precision (:func:`ap_from_counts`) reduce them, and
:func:`roc_from_counts` / :func:`pr_from_counts` give scikit-learn's curves.

Bootstrap (:class:`RankedClass`, :func:`resampled_auc_ap`): a resample is a vector of per-sample
counts ``w`` (how often each sample was drawn; see
:func:`~visionbench.metrics.stats.bootstrap_count_columns`). Sorted once, a class's samples fall
into consecutive *segments*, one per distinct score holding a positive ("positive group" q): the
segment of q holds q's samples and every negative ranked between q and the positive group above
it. For a resample, with ``T_q`` the drawn positives of group q, ``A_q`` the drawn samples ranked
at or above q (a cumulative sum of segment totals), ``Tc_q`` the cumulative positives,
``P = sum T_q`` and ``F = N - P`` (every resample draws N samples):

- ``AUC = (F P - sum_q T_q A_q + (P^2 + sum_q T_q^2) / 2 + sum_q T_q Ft_q / 2) / (P F)``, ``Ft_q``
  the drawn negatives tied with group q (each positive of q is above the ``F - (A_q - Tc_q)``
  negatives ranked below q, and ties count one half; ``sum_q T_q Tc_q = (P^2 + sum T_q^2) / 2``).
  Every term is an integer or a half below 2^53, so the numerator is exact in float64 and the AUC
  is its correctly rounded ratio.
- ``AP = sum_q T_q Tc_q / A_q / P`` (precision at each positive threshold times its recall step).

All segment totals of a block of resamples come from one sparse-times-dense product (the
segments as a ``[rows, N]`` 0/1 CSR matrix times the counts ``[N, R]``): no per-resample sort
and no per-resample loop, and negatives ranked below every positive are never touched.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

# --------------------------------------------------------------------------------------------
# Cumulative counts at distinct thresholds, and what they reduce to
# --------------------------------------------------------------------------------------------


def cumulative_counts(
    scores: torch.Tensor, positive: torch.Tensor, weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted true/false positives at each distinct threshold, scores descending.

    Args:
        scores: ``float [N]``. positive: ``bool [N]``. weight: ``None``, ``[N]`` or ``[R, N]``.

    Returns:
        ``tps, fps`` float64 ``[..., G]`` (counts with ``score >= threshold``) and the thresholds
        ``[G]`` (distinct scores, descending, in the scores' dtype); as scikit-learn's
        ``confusion_matrix_at_thresholds``.
    """
    sorted_scores, order = torch.sort(scores, descending=True, stable=True)
    return _counts_of_sorted(sorted_scores, order, positive, weight)


def _counts_of_sorted(
    sorted_scores: torch.Tensor, order: torch.Tensor, positive: torch.Tensor, weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`cumulative_counts` of scores already sorted (``order``: the sorting permutation)."""
    ends = _group_ends(sorted_scores)  # (G,)
    pos = positive[order].double()  # (N,)
    w = torch.ones_like(pos) if weight is None else weight[..., order]  # (..., N)
    tps = torch.cumsum(w * pos, dim=-1)[..., ends]
    fps = torch.cumsum(w * (1 - pos), dim=-1)[..., ends]
    return tps, fps, sorted_scores[ends]


def _group_ends(sorted_scores: torch.Tensor) -> torch.Tensor:
    """Index of the last element of each run of equal values of a sorted ``[N]`` tensor."""
    ends = torch.nonzero(sorted_scores[1:] != sorted_scores[:-1]).flatten()  # last index of each run but the last
    return torch.cat([ends, ends.new_tensor([sorted_scores.shape[0] - 1])])


def prepend_zero(values: torch.Tensor) -> torch.Tensor:
    """``values [..., G]`` with a 0 put in front along the last axis: ``[..., G + 1]``."""
    return torch.cat([torch.zeros_like(values[..., :1]), values], dim=-1)


def auc_from_counts(tps: torch.Tensor, fps: torch.Tensor) -> torch.Tensor:
    """Trapezoid area under (fps/F, tps/T) from (0, 0): ties count one half. NaN when T or F is 0."""
    positives, negatives = tps[..., -1], fps[..., -1]
    t, f = prepend_zero(tps), prepend_zero(fps)
    doubled = ((f[..., 1:] - f[..., :-1]) * (t[..., 1:] + t[..., :-1])).sum(-1)  # 2 * area * T * F
    defined = (positives > 0) & (negatives > 0)
    scale = torch.where(defined, 2 * positives * negatives, torch.ones_like(positives))
    return torch.where(defined, doubled / scale, torch.full_like(doubled, float("nan")))


def ap_from_counts(tps: torch.Tensor, fps: torch.Tensor) -> torch.Tensor:
    """Step-wise AP ``sum_g (R_g - R_{g-1}) P_g`` (scikit-learn's, not interpolated). NaN when T is 0."""
    positives = tps[..., -1]
    predicted = tps + fps
    precision = torch.where(predicted > 0, tps / torch.where(predicted > 0, predicted, 1.0), 0.0)
    recall_steps = tps - prepend_zero(tps)[..., :-1]  # (..., G)
    defined = positives > 0
    total = torch.where(defined, positives, torch.ones_like(positives))
    ap = (recall_steps / total.unsqueeze(-1) * precision).sum(-1)
    return torch.where(defined, ap, torch.full_like(ap, float("nan")))


def roc_from_counts(
    tps: torch.Tensor, fps: torch.Tensor, thresholds: torch.Tensor, *, drop_intermediate: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's ``roc_curve`` arrays from :func:`cumulative_counts` of one problem (``[G]``).

    Returns ``(fpr, tpr, thresholds)`` float64, starting at (0, 0) with threshold ``inf``;
    ``fpr`` (``tpr``) is all NaN without negatives (positives). ``drop_intermediate`` drops the
    points collinear with their neighbours, as scikit-learn (the area is unchanged).
    """
    thresholds = thresholds.double()
    if drop_intermediate and fps.numel() > 2:
        # scikit-learn: np.diff(x, 2) != 0, i.e. (x2 - x1) - (x1 - x0): same operations.
        second_f = (fps[2:] - fps[1:-1]) - (fps[1:-1] - fps[:-2])
        second_t = (tps[2:] - tps[1:-1]) - (tps[1:-1] - tps[:-2])
        corner = (second_f != 0) | (second_t != 0)
        keep = torch.cat([corner.new_ones(1), corner, corner.new_ones(1)])
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    tps, fps = prepend_zero(tps), prepend_zero(fps)
    thresholds = torch.cat([thresholds.new_tensor([float("inf")]), thresholds])
    fpr = torch.full_like(fps, float("nan")) if fps[-1] <= 0 else fps / fps[-1]
    tpr = torch.full_like(tps, float("nan")) if tps[-1] <= 0 else tps / tps[-1]
    return fpr, tpr, thresholds


def pr_from_counts(
    tps: torch.Tensor, fps: torch.Tensor, thresholds: torch.Tensor, *, drop_intermediate: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's ``precision_recall_curve`` arrays from :func:`cumulative_counts` (``[G]``).

    Returns ``(precision [M+1], recall [M+1], thresholds [M])`` float64, thresholds ascending,
    ending at (precision 1, recall 0); precision with no predicted positive is 0, and recall is 1
    everywhere without positives.
    """
    thresholds = thresholds.double()
    if drop_intermediate and fps.numel() > 2:
        change = (tps[1:-1] != tps[:-2]) | (tps[2:] != tps[1:-1])
        keep = torch.cat([change.new_ones(1), change, change.new_ones(1)])
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    predicted = tps + fps
    precision = torch.where(predicted != 0, tps / torch.where(predicted != 0, predicted, 1.0), 0.0)
    recall = torch.ones_like(tps) if tps[-1] == 0 else tps / tps[-1]
    one, zero = precision.new_ones(1), precision.new_zeros(1)
    return torch.cat([precision.flip(0), one]), torch.cat([recall.flip(0), zero]), thresholds.flip(0)


# --------------------------------------------------------------------------------------------
# One class ranked once: point values, curves and the segments the bootstrap sums
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segments:
    """What a resample of one ranked problem is summed over (see the module docstring).

    Attributes:
        matrix: ``float32 [2Q + Z, N]`` 0/1 CSR matrix: rows ``0..Q-1`` select the samples of each
            positive group's segment, rows ``Q..2Q-1`` its positives, and the last Z rows the
            negatives tied with the positive groups ``tied``.
        groups: Q, the number of distinct scores holding a positive.
        tied: ``int64 [Z]`` the positive groups that also hold negatives.
    """

    matrix: torch.Tensor
    groups: int
    tied: torch.Tensor


@dataclass(frozen=True)
class RankedClass:
    """One one-vs-rest problem after one stable descending sort of its scores.

    Attributes:
        tps, fps: ``float64 [G]`` cumulative positives/negatives at each distinct score.
        thresholds: ``[G]`` the distinct scores, descending.
        segments: the problem's :class:`Segments`, for :func:`resampled_auc_ap`.
    """

    tps: torch.Tensor
    fps: torch.Tensor
    thresholds: torch.Tensor
    segments: Segments

    @property
    def auc(self) -> torch.Tensor:
        """ROC AUC of the problem (float64 scalar; NaN without positives or negatives)."""
        return auc_from_counts(self.tps, self.fps)

    @property
    def ap(self) -> torch.Tensor:
        """Average precision of the problem (float64 scalar; NaN without positives)."""
        return ap_from_counts(self.tps, self.fps)


def rank_class(scores: torch.Tensor, positive: torch.Tensor) -> RankedClass:
    """Sort one binary problem once: its counts (:func:`cumulative_counts`) and bootstrap segments.

    Args:
        scores: ``float [N]`` finite scores, higher = more positive. positive: ``bool [N]``.

    Example:
        >>> r = rank_class(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True]))
        >>> float(r.auc), r.segments.groups
        (0.75, 2)
    """
    sorted_scores, order = torch.sort(scores, descending=True, stable=True)
    tps, fps, thresholds = _counts_of_sorted(sorted_scores, order, positive, None)
    pos = positive[order]  # (N,) sorted
    group = torch.cumsum(torch.cat([pos.new_ones(1), sorted_scores[1:] != sorted_scores[:-1]]), 0) - 1  # (N,)
    has_positive = torch.zeros(int(group[-1]) + 1, dtype=torch.bool)
    has_positive[group[pos]] = True  # (G,)
    groups_up_to = torch.cumsum(has_positive, 0)  # positive groups with index <= g, (G,)
    q = groups_up_to[group]  # (N,)
    in_positive_group = has_positive[group]
    # Segment of each sorted sample: its own positive group, else the next one below it;
    # samples below the last positive group (segment Q) are not needed (F = N - P).
    segment = torch.where(in_positive_group, q - 1, q)
    count = int(groups_up_to[-1])
    tied_negative = in_positive_group & ~pos
    tied = torch.unique(segment[tied_negative])  # sorted positive groups that hold negatives
    rows = [segment[segment < count], count + segment[pos], 2 * count + torch.searchsorted(tied, segment[tied_negative])]
    columns = [order[segment < count], order[pos], order[tied_negative]]
    matrix = _csr(torch.cat(rows), torch.cat(columns), 2 * count + tied.numel(), scores.shape[0])
    return RankedClass(tps=tps, fps=fps, thresholds=thresholds, segments=Segments(matrix, count, tied))


def _csr(rows: torch.Tensor, columns: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A 0/1 ``float32 [height, width]`` CSR matrix with a one at each (row, column); ``rows``
    must be non-decreasing (they are: segments follow the sorted order)."""
    crow = torch.zeros(height + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=height), 0)
    index_dtype = torch.int32 if width < 2**31 and rows.numel() < 2**31 else torch.int64  # halves the memory
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta": the product used is stable
        return torch.sparse_csr_tensor(crow.to(index_dtype), columns.to(index_dtype),
                                       torch.ones(rows.numel(), dtype=torch.float32), size=(height, width),
                                       check_invariants=False)


def _row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum(a * b, dim=1)`` of ``float64 [R, M]`` tensors as one batched product (no temporary)."""
    return torch.matmul(a.unsqueeze(1), b.unsqueeze(2)).reshape(-1)


class Scratch:
    """Work tensors reused across calls of :func:`resampled_auc_ap`.

    A fresh tensor of more than 32 MiB is new memory from the system, and its first write costs a
    page fault per 4 KiB page (as much as the arithmetic here); reusing these keeps that to once.
    """

    def __init__(self) -> None:
        self._flat: dict[str, torch.Tensor] = {}

    def get(self, name: str, rows: int, columns: int, dtype: torch.dtype) -> torch.Tensor:
        """A contiguous ``[rows, columns]`` tensor of ``dtype`` (contents undefined), reused by name."""
        size = rows * columns
        flat = self._flat.get(name)
        if flat is None or flat.numel() < size or flat.dtype != dtype:
            flat = self._flat[name] = torch.empty(size, dtype=dtype)
        return flat[:size].view(rows, columns)


def resampled_auc_ap(
    segments: Segments, counts: torch.Tensor, total: int, scratch: Scratch | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """ROC AUC and average precision of R bootstrap resamples of one ranked problem.

    Args:
        segments: the problem's :class:`Segments` (``rank_class(...).segments``).
        counts: ``float32 [N, R]`` how often each sample is drawn in each resample (integers).
        total: N, the draws of every resample (each column of ``counts`` sums to it).
        scratch: work tensors to reuse across calls (faster for many classes and blocks).

    Returns:
        ``(auc, ap)`` float64 ``[R]``: AUC NaN where a resample has no positive or no negative,
        AP NaN where it has no positive. Equal to :func:`auc_from_counts` / :func:`ap_from_counts`
        of :func:`cumulative_counts` with ``weight = counts.T`` up to float64 rounding (the AUC is
        the correctly rounded ratio of exact integers).
    """
    resamples, q = counts.shape[1], segments.groups
    if q == 0:
        nan = torch.full((resamples,), float("nan"), dtype=torch.float64)
        return nan, nan.clone()
    scratch = scratch or Scratch()
    sums = torch.sparse.mm(segments.matrix, counts)  # (2Q + Z, R): exact integers below 2**24
    # Resamples as rows: cumulative sums along the contiguous axis are ~10x faster than across it.
    table = scratch.get("table", resamples, sums.shape[0], torch.float32).copy_(sums.t())
    del sums
    # Widened first: a cumulative sum that also converts is several times slower.
    segment_totals = scratch.get("e", resamples, q, torch.float64).copy_(table[:, :q])  # E_q
    at_or_above = torch.cumsum(segment_totals, 1, out=scratch.get("a", resamples, q, torch.float64))  # A_q
    drawn = scratch.get("t", resamples, q, torch.float64).copy_(table[:, q:2 * q])  # T_q
    positives_above = torch.cumsum(drawn, 1, out=scratch.get("tc", resamples, q, torch.float64))  # Tc_q
    p = positives_above[:, -1].clone()  # positives_above is divided in place below
    f = total - p
    numerator = f * p - _row_dot(drawn, at_or_above) + (p * p + _row_dot(drawn, drawn)) / 2
    if segments.tied.numel():
        numerator += _row_dot(drawn[:, segments.tied], table[:, 2 * q:].double()) / 2
    auc = torch.where((p > 0) & (f > 0), numerator / (p * f).clamp_min(1), float("nan"))
    precision = positives_above.div_(at_or_above.clamp_min_(1))  # A_q = 0 only where T_q = 0
    ap = torch.where(p > 0, _row_dot(drawn, precision) / p.clamp_min(1), float("nan"))
    return auc, ap
