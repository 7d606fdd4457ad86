"""Detection protocols' constants and pure functions: IoU (COCO and VOC), stable sorting, COCO
matching, the COCO summary and VOC average precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Protocol = Literal["pycocotools", "coco-fixed", "voc07", "voc12"]
BoxFormat = Literal["xyxy", "xywh"]
PROTOCOLS = ("pycocotools", "coco-fixed", "voc07", "voc12")

# pycocotools Params.setDetParams: float64 linspace values (0.6000000000000001, ...), not arange.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # T = 10
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)  # R = 101
MAX_DETECTIONS = (1, 10, 100)  # M = 3, per image and category
# Inclusive [low, high] bounds on area in pixels²: all, small, medium, large.
AREA_RANGES = ((0.0, 1e10), (0.0, 1024.0), (1024.0, 9216.0), (9216.0, 1e10))
AREA_NAMES = ("all", "small", "medium", "large")
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# Whether a larger value is better, for every scalar detection metric.
HIGHER_IS_BETTER = {name: True for name in COCO_STATS}
VOC_IOU_THRESHOLD = 0.5
VOC07_RECALL_POINTS = np.arange(0.0, 1.1, 0.1)  # py-faster-rcnn voc_eval.py: 0.30000000000000004, ...
CONFUSION_IOU_THRESHOLD = 0.5

_EPS = np.spacing(1)  # pycocotools' precision denominator term
_TP, _FP, _IGNORED = 1, 0, 2  # per-detection state codes


# --------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------


def _coco_iou_terms(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of broadcast ``d [..., 4]`` and ``g [..., 4]`` (xywh, float64), pycocotools' ``bbIou``.

    Same operations in the same order as ``common/maskApi.c``: ``w = min(dw + dx, gw + gx) -
    max(dx, gx)``, ``h`` likewise, 0 unless both are > 0, union ``da + ga - w*h`` or ``da`` for a
    crowd GT, with ``da = dw*dh`` and ``ga = gw*gh`` from the boxes (never the JSON ``area``).
    """
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    det_area = d[..., 2] * d[..., 3]
    union = np.where(crowd, det_area, det_area + g[..., 2] * g[..., 3] - inter)
    overlap = (w > 0) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def coco_box_iou(det_boxes: np.ndarray, gt_boxes: np.ndarray, gt_crowd: np.ndarray | None = None) -> np.ndarray:
    """IoU between detections and GT boxes exactly as pycocotools' ``maskUtils.iou`` (bbox).

    Args:
        det_boxes: ``float [D, 4]`` in COCO ``(x, y, w, h)`` with ``w, h >= 0``.
        gt_boxes: ``float [G, 4]`` in ``(x, y, w, h)``.
        gt_crowd: ``bool [G]``; for a crowd GT the union is the detection's area.

    Returns:
        ``float64 [D, G]`` in ``[0, 1]`` (bit-equal to pycocotools).

    Example:
        >>> coco_box_iou(np.array([[0.0, 0, 2, 2]]), np.array([[1.0, 0, 2, 2]]))
        array([[0.33333333]])
    """
    d = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 1, 4)
    g = np.asarray(gt_boxes, dtype=np.float64).reshape(1, -1, 4)
    crowd = np.zeros(g.shape[1], bool) if gt_crowd is None else np.asarray(gt_crowd, bool).reshape(-1)
    return _coco_iou_terms(d, g, crowd[None, :])


def _voc_iou_terms(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """VOC devkit overlap of broadcast ``d``/``g`` (x1, y1, x2, y2 inclusive pixels); 0 without overlap."""
    iw = np.minimum(d[..., 2], g[..., 2]) - np.maximum(d[..., 0], g[..., 0]) + 1.0
    ih = np.minimum(d[..., 3], g[..., 3]) - np.maximum(d[..., 1], g[..., 1]) + 1.0
    inter = iw * ih
    union = (d[..., 2] - d[..., 0] + 1.0) * (d[..., 3] - d[..., 1] + 1.0) + (g[..., 2] - g[..., 0] + 1.0) * (
        g[..., 3] - g[..., 1] + 1.0) - inter
    overlap = (iw > 0) & (ih > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def voc_box_iou(det_boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """Overlap as the Pascal VOC devkit (``VOCevaldet.m``) computes it.

    Boxes are inclusive pixel coordinates ``(x1, y1, x2, y2)``: a box from pixel 0 to pixel 9 is
    10 wide, so ``iw = min(x2) - max(x1) + 1`` and areas are ``(x2 - x1 + 1) * (y2 - y1 + 1)``.

    Args:
        det_boxes: ``float [D, 4]``. gt_boxes: ``float [G, 4]``.

    Returns:
        ``float64 [D, G]``; 0 where the boxes do not overlap.
    """
    d = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 1, 4)
    g = np.asarray(gt_boxes, dtype=np.float64).reshape(1, -1, 4)
    return _voc_iou_terms(d, g)


def _dense_rank(key: np.ndarray) -> tuple[np.ndarray, int]:
    """``(rank, count)``: each value's index among the sorted distinct values (equal values, ``0.0``
    and ``-0.0`` included, share a rank), and the number of ranks. Integers of small span are
    only shifted."""
    n = key.size
    if n == 0:
        return np.zeros(0, np.int64), 1
    if key.dtype.kind in "iub":
        low, high = int(key.min()), int(key.max())
        if high - low < max(4 * n, 1 << 16):
            return key.astype(np.int64) - low, high - low + 1
    order = np.argsort(key)  # unstable is fine: equal keys get equal ranks
    sorted_key = key[order]
    new = np.empty(n, bool)
    new[0] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=new[1:])
    ranks = np.empty(n, np.int64)
    ranks[order] = np.cumsum(new) - 1
    return ranks, int(ranks[order[-1]]) + 1


def _radix_argsort(key: np.ndarray, span: int) -> np.ndarray:
    """Stable argsort of non-negative ``int64`` keys below ``span``: least-significant-digit radix
    sort, each 16-bit digit through NumPy's stable (radix) sort of ``uint16``."""
    order = None
    for shift in range(0, max(int(span - 1).bit_length(), 1), 16):
        digits = ((key if order is None else key[order]) >> shift).astype(np.uint16)  # keeps the low 16 bits
        step = np.argsort(digits, kind="stable")
        order = step if order is None else order[step]
    assert order is not None
    return order


def _stable_argsort(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` in about linear time: dense ranks, then radix passes."""
    ranks, span = _dense_rank(key)
    return _radix_argsort(ranks, span)


def _lexsort(keys: Sequence[np.ndarray]) -> np.ndarray:
    """``np.lexsort(keys)`` (last key primary, ties in index order), for 1-D keys of equal length.

    The keys' dense ranks are packed into one integer (several integers when they do not fit in
    62 bits, each sorted stably in turn) and radix sorted.
    """
    order = np.arange(keys[0].size)
    packed, span = np.zeros(keys[0].size, np.int64), 1
    pending = False
    for key in keys:
        ranks, count = _dense_rank(key)
        if span * count >= 1 << 62:  # flush: sort by what is packed so far, then continue above it
            order = order[_radix_argsort(packed[order], span)]
            packed, span = np.zeros(keys[0].size, np.int64), 1
        packed += ranks * span
        span *= count
        pending = True
    if pending:
        order = order[_radix_argsort(packed[order], span)]
    return order


def _greedy_first_choice(item: np.ndarray, resource: np.ndarray, unlimited: np.ndarray, n_items: int,
                         n_resources: int) -> np.ndarray:
    """Sequential greedy assignment computed in parallel rounds.

    Edges ``(item, resource)`` come sorted by item (the order in which items choose), then by the
    item's preference. Sequentially, each item takes its first edge whose resource is still free
    (``unlimited`` resources never run out). In each round an item's first live edge is accepted
    when no earlier item still has a live edge to that resource: every earlier item's choice is
    then settled, so the sequential loop would accept it too. Accepted items and used-up resources
    kill their edges; the earliest item with live edges always succeeds, so rounds end.

    Returns:
        ``int64 [n_items]``: the resource each item took, or -1.
    """
    choice = np.full(n_items, -1, np.int64)
    done = np.zeros(n_items, bool)
    used = np.zeros(n_resources, bool)
    earliest = np.full(n_resources, n_items, np.int64)
    live = np.arange(item.size)
    while live.size:
        it, res = item[live], resource[live]
        first = np.ones(live.size, bool)
        first[1:] = it[1:] != it[:-1]
        np.minimum.at(earliest, res, it)
        accept = first & (unlimited[live] | (earliest[res] == it))
        earliest[res] = n_items
        choice[it[accept]] = res[accept]
        done[it[accept]] = True
        used[res[accept & ~unlimited[live]]] = True
        live = live[~done[it] & ~used[res]]
    return choice


def _coco_match_edges(edge_det: np.ndarray, edge_gt: np.ndarray, edge_iou: np.ndarray, edge_group: np.ndarray,
                      gt_regular: np.ndarray, gt_crowd: np.ndarray, n_det: int, thresholds: np.ndarray) -> np.ndarray:
    """pycocotools' ``evaluateImg`` matching for every (threshold, area range) at once.

    ``evaluateImg`` sorts GT non-ignored first (stable), then for each detection in rank order
    scans the GT keeping the last one whose IoU is ``>=`` the best so far (starting from
    ``min(t, 1 - 1e-10)``), skipping GT already matched unless crowd, and stops at the first
    ignored GT once a non-ignored one matched. That is: each detection takes, among free GT with
    IoU >= t, a non-ignored one if any, the highest IoU, and on equal IoU the *later* GT. So it is
    a greedy assignment with edges ordered by (detection rank, ignored, -IoU, -GT index).

    The ignored flag only reorders a detection's candidates when its group (image, category)
    mixes ignored and non-ignored GT; other groups match the same at every area range, so they
    are matched once ("uniform") and only mixed groups again per area range.

    Args:
        edge_det, edge_gt, edge_iou: candidate pairs (IoU >= the lowest threshold), ``edge_det``
            ascending in rank order; indices ``[0, n_det)`` and ``[0, G)``.
        edge_group: ``int [E]`` the pair's (image, category) key, ascending.
        gt_regular: ``bool [G, A]`` non-ignored in area range ``a``. gt_crowd: ``bool [G]``.
        thresholds: ``float [T]`` IoU thresholds.

    Returns:
        ``int64 [T, A, n_det]`` matched GT index or -1.
    """
    n_gt, n_areas = gt_regular.shape
    thr = np.minimum(thresholds, 1 - 1e-10)
    n_thr = thr.size
    new_group = np.ones(edge_group.size, bool)
    new_group[1:] = edge_group[1:] != edge_group[:-1]
    group_start = np.flatnonzero(new_group)
    group_of_edge = np.cumsum(new_group) - 1
    runs: list[np.ndarray] = [np.lexsort((-edge_gt, -edge_iou, edge_det))]  # run 0: uniform
    flags = gt_regular[edge_gt]  # (E, A)
    if edge_gt.size:
        mixed = np.maximum.reduceat(flags, group_start, axis=0) != np.minimum.reduceat(flags, group_start, axis=0)
    for a in range(n_areas):
        subset = np.flatnonzero(mixed[group_of_edge, a]) if edge_gt.size else np.zeros(0, np.int64)
        flag = flags[subset, a]
        runs.append(subset[np.lexsort((-edge_gt[subset], -edge_iou[subset], ~flag, edge_det[subset]))] if subset.size
                    else subset)
    items, resources = [], []
    for r, order in enumerate(runs):
        t, position = np.nonzero(edge_iou[order][None, :] >= thr[:, None])  # by threshold, then edge order
        kept, variant = order[position], r * n_thr + t
        items.append(variant * n_det + edge_det[kept])
        resources.append(variant * n_gt + edge_gt[kept])
    item, resource = np.concatenate(items), np.concatenate(resources)
    n_variants = len(runs) * n_thr
    safe_gt = max(n_gt, 1)
    choice = _greedy_first_choice(item, resource, gt_crowd[resource % safe_gt], n_variants * n_det, n_variants * n_gt)
    choice = np.where(choice >= 0, choice % safe_gt, -1).reshape(len(runs), n_thr, n_det)
    matched = np.repeat(choice[0][:, None, :], n_areas, axis=1)  # (T, A, D)
    for a, order in enumerate(runs[1:]):
        dets = np.unique(edge_det[order])
        matched[:, a, dets] = choice[a + 1][:, dets]
    return matched


def coco_match(ious: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray, *,
               iou_thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """Greedy matching of one image and category, exactly as pycocotools' ``evaluateImg``.

    Args:
        ious: ``float [D, G]`` IoU of detections (rows, already in rank order: highest score first,
            stable) and GT (columns, annotation order).
        gt_ignore: ``bool [G]`` ignored GT (crowd, or out of the area range).
        gt_crowd: ``bool [G]`` crowd GT (may be matched by many detections).
        iou_thresholds: ``float [T]``.

    Returns:
        ``int64 [T, D]``: the GT column each detection matched at each threshold, or -1.

    Example:
        >>> coco_match(np.array([[0.9, 0.6]]), np.array([False, False]), np.array([False, False]),
        ...            iou_thresholds=np.array([0.5, 0.95]))
        array([[ 0],
               [-1]])
    """
    ious = np.asarray(ious, dtype=np.float64)
    n_det, n_gt = ious.shape
    det_idx, gt_idx = np.divmod(np.arange(n_det * n_gt), n_gt)  # every pair, row-major
    keep = ious[det_idx, gt_idx] >= min(float(np.min(iou_thresholds, initial=1.0)), 1 - 1e-10)
    regular = ~np.asarray(gt_ignore, bool).reshape(n_gt, 1)
    matched = _coco_match_edges(det_idx[keep], gt_idx[keep], ious[det_idx, gt_idx][keep], np.zeros(keep.sum(), int),
                                regular, np.asarray(gt_crowd, bool).reshape(n_gt), n_det, np.asarray(iou_thresholds))
    return matched[:, 0, :]


def coco_summarize(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """The 12 COCO numbers from the accumulated arrays, as ``COCOeval.summarize`` computes them.

    Each is the mean of the selected entries that are ``> -1`` (``-1`` when there are none).

    Args:
        precision: ``float64 [T, R, K, A, M]`` (pycocotools' ``eval['precision']`` layout).
        recall: ``float64 [T, K, A, M]``.

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}``.
    """
    return _summarize(precision[..., -1], recall)


def _summarize(precision_last: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """:func:`coco_summarize` from the precision at the largest maxDets only (``[T, R, K, A]``):
    every AP of the summary is taken at 100 detections, so the other curves are never read."""
    def mean(ap: bool, iou: float | None = None, area: int = 0, max_det: int = 2) -> float:
        s = precision_last if ap else recall
        if iou is not None:
            s = s[np.where(iou == IOU_THRESHOLDS)[0]]
        s = s[:, :, :, [area]] if ap else s[:, :, [area], [max_det]]
        return _mean_valid(s)

    values = [mean(True), mean(True, 0.5), mean(True, 0.75), mean(True, area=1), mean(True, area=2),
              mean(True, area=3), mean(False, max_det=0), mean(False, max_det=1), mean(False),
              mean(False, area=1), mean(False, area=2), mean(False, area=3)]
    return dict(zip(COCO_STATS, values, strict=True))


def voc_average_precision(recall: np.ndarray, precision: np.ndarray, *, eleven_point: bool) -> float:
    """Pascal VOC average precision of one class from its cumulative recall/precision curve.

    Args:
        recall: ``float [N]`` non-decreasing recall after each detection (highest score first).
        precision: ``float [N]`` precision after each detection.
        eleven_point: VOC2007's mean of the maximum precision at recall >= 0, 0.1, ..., 1;
            otherwise (VOC2010+) the area under the monotone envelope of precision.

    Returns:
        AP in ``[0, 1]``.
    """
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if eleven_point:
        total = 0.0
        for t in VOC07_RECALL_POINTS:
            reached = precision[recall >= t]
            total += (reached.max() if reached.size else 0.0) / 11.0
        return float(total)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))

def _mean_valid(values: np.ndarray) -> float:
    """Mean of the entries ``> -1``; ``-1`` when there are none (pycocotools' convention)."""
    valid = values[values > -1]
    return -1.0 if valid.size == 0 else float(np.mean(valid))
