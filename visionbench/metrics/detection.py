"""Object-detection evaluation: COCO (pycocotools-exact or fixed) and Pascal VOC protocols.

Functional core: :func:`coco_box_iou`, :func:`voc_box_iou`, :func:`coco_match`,
:func:`coco_summarize`, :func:`voc_average_precision`. Streaming accumulator:
:class:`DetectionEvaluator` whose ``update`` matches each image's detections to its ground truth
at once (for every IoU threshold and area range) and keeps only compact per-detection results, so
``compute`` is a merge and one sort; ``merge``/``sync`` combine processes exactly. Loaders:
:func:`load_coco_ground_truth`, :func:`load_coco_results`; :func:`evaluate_coco` runs the whole
evaluation of two COCO JSON files. :func:`detection_intervals` gives bootstrap intervals by
resampling images, :func:`compare_detection` a paired bootstrap of two runs.

**Protocols.**

* ``"pycocotools"`` (default) reproduces ``COCOeval(iouType="bbox")`` bit for bit (the 12 stats
  and the full ``eval['precision']``/``eval['recall']``/``eval['scores']`` arrays), quirks
  included: IoU thresholds and recall thresholds are pycocotools' float64 ``linspace`` values;
  a ground truth (GT) is ignored iff ``iscrowd`` (its ``ignore`` field is overwritten by
  ``iscrowd`` in ``COCOeval._prepare``); area ranges are inclusive at both ends, so a GT of area
  exactly 32² is both small and medium; a crowd GT's IoU divides by the detection's area only and
  can be matched many times; GT ``area`` is the annotation's ``area`` field (the segment's area,
  not the box's), detection area is ``w * h`` (``COCO.loadRes``); at most 100 detections per image
  and category, ranked by a stable sort of scores; ties in score across images are broken by image
  id, then by rank within the image (the stable ``mergesort`` in ``accumulate``); precision is
  ``tp / (tp + fp + np.spacing(1))``; a detection matched to a GT whose annotation id is ``0``
  counts as unmatched (``dtMatches == 0``) though the GT is used up; categories without
  non-ignored GT get ``-1`` and are left out of the means.
* ``"coco-fixed"`` is the same except for pycocotools' documented bugs: (1) an explicit
  ``ignore`` flag on a GT is honoured (ignored = ``ignore or iscrowd``); (2) a match to a GT of
  id ``0`` is a true positive. (3) Empty results, on which ``COCO.loadRes`` raises ``IndexError``,
  give defined values here under *both* protocols: AP = AR = 0 for every category with GT.
* ``"voc07"`` / ``"voc12"``: Pascal VOC AP at IoU 0.5 as the VOC devkit computes it (boxes in
  inclusive pixel coordinates, so widths are ``x2 - x1 + 1``; each detection, highest score first,
  takes the GT of highest IoU in its image and class, first on ties; a GT already taken makes it a
  false positive; ``difficult``/``ignore``/``iscrowd`` GT are neither hit nor missed). ``voc07``
  averages the interpolated precision at recalls 0, 0.1, …, 1 (``np.arange(0, 1.1, 0.1)``, as in
  py-faster-rcnn's ``voc_eval.py``); ``voc12`` is the area under the precision envelope (all points).
  Reported as ``AP50`` (mean over classes with GT) and ``per_class_AP``.

**Other results** (all protocols): precision/recall/F1 per class and overall at the evaluator's
``score_threshold`` (COCO: IoU 0.5, area "all", 100 detections), and a detection confusion
matrix ``[K+1, K+1]`` (rows true class, columns predicted, background last). The confusion
matrix is class-agnostic: per image, detections with ``score >= score_threshold`` and
non-ignored GT are paired greedily by IoU (the protocol's IoU; pairs with IoU >= 0.5, highest
IoU first, then higher score, lower detection index, lower GT index), each at most once; a pair
counts at ``(GT class, detected class)``, an unpaired GT at ``(GT class, background)``, an unpaired
detection at ``(background, detected class)`` unless it overlaps an ignored GT with IoU >= 0.5
(then it is not counted).

**Input checks** (``ValueError``/``TypeError`` naming the file and record, or the image id and
box): non-finite boxes, ``x2 < x1`` (or ``w < 0``), non-finite scores or areas, non-integer or
negative labels, labels outside ``class_ids``, repeated image ids, malformed or empty JSON.
Where pycocotools is silent or crashes instead: results whose category or image is not in the
ground truth are an error here (pycocotools drops the former and asserts on the latter); a GT
without ``iscrowd`` counts as not crowd (pycocotools raises ``KeyError``) and one without
``area`` uses its box area. VOC protocols take ``xywh`` boxes as ``x2 = x + w``. Detection
order for equal scores: image id, then the order given within the image.

``torchvision.ops.box_iou`` is not used: it takes corners and computes ``x2 - x1`` widths and
``clamp`` intersections, while pycocotools' ``bbIou`` (``common/maskApi.c``) takes ``x, y, w, h``
and intersects ``min(x + w, ...) - max(x, ...)``; the roundings differ, so values differ in the
last bits.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from visionbench.metrics.significance import PairedMetric, paired_metric
from visionbench.metrics.stats import bootstrap_count_blocks, percentile_interval

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
# update() validates each batch at once but matches batches together once this many images + boxes
# wait, so small batches do not each pay the fixed cost of a vectorised match (memory stays bounded).
_MATCH_BUFFER = 1 << 16
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


# --------------------------------------------------------------------------------------------
# Per-batch matching (``update``)
# --------------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    """Compact results of one ``update``: all that ``compute`` needs, nothing per pixel or box."""

    image_ids: np.ndarray  # int64 [B] every image of the batch
    det_image: np.ndarray  # int64 [D] kept detections (COCO: top 100 per image and category)
    det_label: np.ndarray  # int64 [D]
    det_score: np.ndarray  # float64 [D]
    det_rank: np.ndarray  # int64 [D] rank within its image and category (stable score order)
    det_area: np.ndarray  # float64 [D] w * h (COCO); unused by VOC
    det_row: np.ndarray  # int64 [D] row of ``states`` or -1: never near any GT (unmatched everywhere)
    states: np.ndarray  # uint8 [S, T, A] _TP / _FP (unmatched) / _IGNORED (matched an ignored GT)
    gt_image: np.ndarray  # int64 [C] one row per (image, category) having GT
    gt_label: np.ndarray  # int64 [C]
    gt_count: np.ndarray  # int64 [C, A] non-ignored GT per area range
    confusion: np.ndarray  # int64 [P, 3] (true label or -1, predicted label or -1, count), distinct pairs


def _pairs_in_groups(det_group: np.ndarray, gt_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ``(det, gt)`` index pairs with equal group key; both key arrays ascending.

    Returned row-major: by detection, then GT in ascending index.
    """
    start = np.searchsorted(gt_group, det_group, side="left")
    count = np.searchsorted(gt_group, det_group, side="right") - start
    det_idx = np.repeat(np.arange(det_group.size), count)
    offsets = np.cumsum(count) - count
    gt_idx = np.arange(det_idx.size) - np.repeat(offsets - start, count)
    return det_idx, gt_idx


def _group_ranks(group: np.ndarray) -> np.ndarray:
    """Rank of each element within its run of equal (ascending) group keys."""
    n = group.size
    starts = np.ones(n, bool)
    starts[1:] = group[1:] != group[:-1]
    first = np.flatnonzero(starts)
    return np.arange(n) - np.repeat(first, np.diff(np.append(first, n)))


def _confusion_pairs(slot_p: np.ndarray, boxes_p: np.ndarray, scores_p: np.ndarray, labels_p: np.ndarray,
                     slot_g: np.ndarray, boxes_g: np.ndarray, labels_g: np.ndarray, ignored_g: np.ndarray,
                     crowd_g: np.ndarray, voc: bool, score_threshold: float) -> np.ndarray:
    """Class-agnostic greedy pairing of one batch for the confusion matrix (module docstring)."""
    keep = np.flatnonzero(scores_p >= score_threshold)
    keep = keep[_stable_argsort(slot_p[keep])]
    gorder = _stable_argsort(slot_g)
    det_idx, gt_idx = _pairs_in_groups(slot_p[keep], slot_g[gorder])
    d, g = keep[det_idx], gorder[gt_idx]
    iou = _voc_iou_terms(boxes_p[d], boxes_g[g]) if voc else _coco_iou_terms(boxes_p[d], boxes_g[g], crowd_g[g])
    close = iou >= CONFUSION_IOU_THRESHOLD
    d, g, iou = d[close], g[close], iou[close]
    on_ignored = np.zeros(scores_p.size, bool)
    on_ignored[d[ignored_g[g]]] = True
    d, g, iou = d[~ignored_g[g]], g[~ignored_g[g]], iou[~ignored_g[g]]
    # Greedy by IoU: pairs in priority order; a pair is taken when it is the first live pair of both
    # its detection and its GT (then no higher-priority pair can claim either).
    order = np.lexsort((g, d, -scores_p[d], -iou))
    d, g = d[order], g[order]
    det_of_gt = np.full(labels_g.size, -1, np.int64)
    det_taken = np.zeros(scores_p.size, bool)
    live = np.arange(d.size)
    best_d = np.full(scores_p.size, d.size, np.int64)
    best_g = np.full(labels_g.size, d.size, np.int64)
    while live.size:
        np.minimum.at(best_d, d[live], live)
        np.minimum.at(best_g, g[live], live)
        take = live[(best_d[d[live]] == live) & (best_g[g[live]] == live)]
        best_d[d[live]], best_g[g[live]] = d.size, d.size
        det_of_gt[g[take]] = d[take]
        det_taken[d[take]] = True
        live = live[~det_taken[d[live]] & (det_of_gt[g[live]] < 0)]
    matched = det_of_gt >= 0
    pairs = np.stack([labels_g[matched], labels_p[det_of_gt[matched]]], axis=1)
    missed = ~matched & ~ignored_g
    pairs = np.concatenate([pairs, np.stack([labels_g[missed], np.full(int(missed.sum()), -1)], axis=1)])
    spurious = np.zeros(scores_p.size, bool)
    spurious[keep] = True
    spurious &= ~det_taken & ~on_ignored
    pairs = np.concatenate([pairs, np.stack([np.full(int(spurious.sum()), -1), labels_p[spurious]], axis=1)]) + 1
    base = int(pairs.max(initial=0)) + 1  # labels >= 0, so (true + 1, pred + 1) packs into one integer
    packed, count = np.unique(pairs[:, 0] * base + pairs[:, 1], return_counts=True)
    return np.stack([packed // base - 1, packed % base - 1, count], axis=1)


def _match_batch(image_ids: np.ndarray, slot_p: np.ndarray, boxes_p: np.ndarray, scores_p: np.ndarray,
                 labels_p: np.ndarray, slot_g: np.ndarray, boxes_g: np.ndarray, labels_g: np.ndarray,
                 crowd_g: np.ndarray, ignore_g: np.ndarray, area_g: np.ndarray, zero_id_g: np.ndarray, *,
                 protocol: str, score_threshold: float) -> _Chunk:
    """Match a batch of images (flat arrays, ``slot`` = index into ``image_ids``) into a :class:`_Chunk`.

    Boxes are ``xywh`` for the COCO protocols and ``xyxy`` for VOC, float64; the arrays are
    validated by the caller.
    """
    voc = protocol.startswith("voc")
    if protocol == "pycocotools":
        ignored_g = crowd_g.copy()  # COCOeval._prepare: gt['ignore'] = iscrowd, the field is overwritten
    else:
        ignored_g = crowd_g | ignore_g
    n_labels = int(max(labels_p.max(initial=-1), labels_g.max(initial=-1))) + 1
    # Detections of each (image, category) in rank order: score descending, stable on input order.
    group_p = slot_p * n_labels + labels_p
    order_p = _lexsort([-scores_p, group_p])
    rank = _group_ranks(group_p[order_p])
    if not voc:  # computeIoU / evaluateImg keep the first maxDets[-1] of each image and category
        kept = rank < MAX_DETECTIONS[-1]
        order_p, rank = order_p[kept], rank[kept]
    group_g = slot_g * n_labels + labels_g
    order_g = np.argsort(group_g, kind="stable")  # annotation order within a group (imgToAnns order)
    det_idx, gt_idx = _pairs_in_groups(group_p[order_p], group_g[order_g])
    dp, gp = order_p[det_idx], order_g[gt_idx]
    n_areas = 1 if voc else len(AREA_RANGES)
    n_thr = 1 if voc else IOU_THRESHOLDS.size
    if voc:
        regular = ~ignored_g[:, None]
    else:
        low = np.array([r[0] for r in AREA_RANGES])
        high = np.array([r[1] for r in AREA_RANGES])
        # evaluateImg: ignored if g['ignore'] or area < low or area > high (inclusive range)
        regular = ~ignored_g[:, None] & ~((area_g[:, None] < low) | (area_g[:, None] > high))  # (G, A)

    if voc:
        iou = _voc_iou_terms(boxes_p[dp], boxes_g[gp])
        # VOCevaldet: best GT by `ov > ovmax` over all GT of the image and class (first on ties).
        best = np.lexsort((gt_idx, -iou, det_idx))
        first = np.ones(best.size, bool)
        first[1:] = det_idx[best][1:] != det_idx[best][:-1]
        best = best[first & (iou[best] >= VOC_IOU_THRESHOLD)]
        det_rows = det_idx[best]  # ascending: rank order within each group
        gt_best = gp[best]
        state = np.where(ignored_g[gt_best], _IGNORED, _FP).astype(np.uint8)
        claims = np.flatnonzero(~ignored_g[gt_best])
        _, first_claim = np.unique(gt_best[claims], return_index=True)
        state[claims[first_claim]] = _TP
        states = state.reshape(-1, 1, 1)
    else:
        iou = _coco_iou_terms(boxes_p[dp], boxes_g[gp], crowd_g[gp])
        close = iou >= IOU_THRESHOLDS[0]
        close_det = det_idx[close]  # ascending
        new_det = np.ones(close_det.size, bool)
        new_det[1:] = close_det[1:] != close_det[:-1]
        det_rows, inverse = close_det[new_det], np.cumsum(new_det) - 1
        gt_rows, gt_inverse = np.unique(gt_idx[close], return_inverse=True)
        gt_of_row = order_g[gt_rows]
        matched = _coco_match_edges(inverse, gt_inverse, iou[close], group_p[order_p][close_det], regular[gt_of_row],
                                    crowd_g[gt_of_row], det_rows.size, IOU_THRESHOLDS)  # (T, A, S)
        matched = matched.transpose(2, 0, 1)  # (S, T, A)
        hit = matched >= 0
        g_hit = gt_of_row[np.where(hit, matched, 0)]
        hit_regular = hit & regular[g_hit, np.arange(n_areas)]
        states = np.full(matched.shape, _FP, np.uint8)
        states[hit & ~hit_regular] = _IGNORED
        true_positive = hit_regular if protocol != "pycocotools" else hit_regular & ~zero_id_g[g_hit]
        states[true_positive] = _TP  # pycocotools: dtMatches == gt id == 0 reads as "unmatched"
    det_row = np.full(order_p.size, -1, np.int64)
    det_row[det_rows] = np.arange(det_rows.size)
    assert states.shape[1:] == (n_thr, n_areas)

    boxes_kept = boxes_p[order_p]
    det_area = boxes_kept[:, 2] * boxes_kept[:, 3] if not voc else np.zeros(order_p.size)
    # Non-ignored GT counts per (image, category) and area range.
    sorted_group = group_g[order_g]
    uniq, start = np.unique(sorted_group, return_index=True)
    gt_count = np.add.reduceat(regular[order_g].astype(np.int64), start, axis=0) if uniq.size else np.zeros(
        (0, n_areas), np.int64)
    confusion = _confusion_pairs(slot_p, boxes_p, scores_p, labels_p, slot_g, boxes_g, labels_g, ignored_g, crowd_g,
                                 voc, score_threshold)
    return _Chunk(
        image_ids=image_ids, det_image=image_ids[slot_p[order_p]], det_label=labels_p[order_p],
        det_score=scores_p[order_p], det_rank=rank.astype(np.int64), det_area=det_area, det_row=det_row,
        states=states, gt_image=image_ids[uniq // n_labels] if uniq.size else np.zeros(0, np.int64),
        gt_label=uniq % n_labels if uniq.size else np.zeros(0, np.int64), gt_count=gt_count, confusion=confusion)


# --------------------------------------------------------------------------------------------
# Accumulation (``compute``)
# --------------------------------------------------------------------------------------------


class _Prepared(NamedTuple):
    """Every chunk merged, detections in accumulation order: class, score descending, image id, rank."""

    image_ids: np.ndarray  # int64 [N] ascending
    class_ids: np.ndarray  # int64 [K] ascending
    det_class: np.ndarray  # int64 [D] class index (ascending)
    det_image: np.ndarray  # int64 [D] image index
    det_score: np.ndarray  # float64 [D]
    det_row: np.ndarray  # int64 [D] row of ``states`` or -1
    in_range: np.ndarray  # bool [A, D] detection area inside each area range
    states: np.ndarray  # uint8 [S, T, A]
    gt_class: np.ndarray  # int64 [C]
    gt_image: np.ndarray  # int64 [C]
    gt_count: np.ndarray  # int64 [C, A]
    selections: tuple[np.ndarray, ...]  # per maxDets: positions with rank < maxDet (COCO), or all (VOC)
    confusion: np.ndarray  # int64 [P, 3] (true label or -1, predicted label or -1, count)
    cache: dict  # maxDets index -> _Selection, filled on first use


def _prepare(chunks: Sequence[_Chunk], class_ids: np.ndarray | None, voc: bool) -> _Prepared:
    """Concatenate the chunks and sort the detections once (pycocotools' per-category mergesort)."""
    n_areas = 1 if voc else len(AREA_RANGES)
    n_thr = 1 if voc else IOU_THRESHOLDS.size

    def cat(name: str, dtype: Any, shape: tuple[int, ...] = ()) -> np.ndarray:
        parts = [getattr(c, name) for c in chunks]
        return np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)

    all_images = cat("image_ids", np.int64)
    image_ids, counts = np.unique(all_images, return_counts=True)
    if (counts > 1).any():
        dup = int(image_ids[np.argmax(counts > 1)])
        raise ValueError(f"image_id must be unique across updates and processes; got {dup!r} {int(counts.max())} "
                         "times. Give every image exactly once (DistributedSampler(drop_last=False) pads with "
                         "repeated samples: evaluate without padding).")
    row_offsets = np.cumsum([0] + [c.states.shape[0] for c in chunks])
    rows = [np.where(c.det_row >= 0, c.det_row + off, -1) for c, off in zip(chunks, row_offsets, strict=False)]
    det_row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    states = cat("states", np.uint8, (n_thr, n_areas))
    det_label, gt_label = cat("det_label", np.int64), cat("gt_label", np.int64)
    if class_ids is None:
        class_ids = np.union1d(det_label, gt_label).astype(np.int64)
    det_class = np.searchsorted(class_ids, det_label)
    det_image = np.searchsorted(image_ids, cat("det_image", np.int64))
    det_score, det_rank, det_area = cat("det_score", np.float64), cat("det_rank", np.int64), cat("det_area", np.float64)
    # accumulate: mergesort of -score over the concatenation in image-id order of each image's
    # rank-ordered detections, i.e. ties broken by image id, then rank.
    order = _lexsort([det_rank, det_image, -det_score, det_class])
    det_class, det_image, det_score, det_row = det_class[order], det_image[order], det_score[order], det_row[order]
    det_rank, det_area = det_rank[order], det_area[order]
    if voc:
        in_range = np.ones((1, det_area.size), bool)
        selections: tuple[np.ndarray, ...] = (np.arange(det_area.size),)
    else:
        low = np.array([r[0] for r in AREA_RANGES])[:, None]
        high = np.array([r[1] for r in AREA_RANGES])[:, None]
        in_range = ~((det_area < low) | (det_area > high))  # (A, D); evaluateImg's inclusive test
        selections = tuple(np.flatnonzero(det_rank < m) for m in MAX_DETECTIONS)
    confusion = cat("confusion", np.int64, (3,))
    return _Prepared(image_ids, class_ids, det_class, det_image, det_score, det_row, in_range, states,
                     np.searchsorted(class_ids, gt_label), np.searchsorted(image_ids, cat("gt_image", np.int64)),
                     cat("gt_count", np.int64, (n_areas,)), selections, confusion, {})


def _gt_totals(prep: _Prepared, weights: np.ndarray | None) -> np.ndarray:
    """Non-ignored GT per class and area range (``npig``), ``int64 [K, A]``, images weighted."""
    k, a = prep.class_ids.size, prep.gt_count.shape[1]
    counts = prep.gt_count if weights is None else prep.gt_count * weights[prep.gt_image][:, None]
    flat = prep.gt_class[:, None] * a + np.arange(a)
    return np.bincount(flat.reshape(-1), weights=counts.reshape(-1), minlength=k * a).round().astype(
        np.int64).reshape(k, a)


def _recall_rows(npig: np.ndarray) -> np.ndarray:
    """``int64 [K, A, R]``: for each recall threshold, the first true-positive count ``n`` (0-based row
    ``n - 1``) with ``n / npig >= thr``, i.e. where pycocotools' ``searchsorted(rc, recThrs,
    side='left')`` lands (``rc = tp / npig`` only steps at true positives)."""
    out = np.zeros((*npig.shape, RECALL_THRESHOLDS.size), np.int64)
    for n in np.unique(npig[npig > 0]):
        rc = np.arange(1, n + 1, dtype=np.float64) / n  # float tp_sum / int npig, as accumulate
        out[npig == n] = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
    return out


class _Selection(NamedTuple):
    """Weight-independent parts of one maxDets selection (accumulation order, kept per evaluator)."""

    cls: np.ndarray  # int64 [n] class index, ascending
    image: np.ndarray  # int64 [n] image index
    score: np.ndarray  # float64 [n]
    starts: np.ndarray  # int64 [K+1] first position of each class
    plain_fp: np.ndarray  # bool [A, n] never near a GT and inside the area range: a false positive
    near: np.ndarray  # int64 [s] positions that have a state row
    near_starts: np.ndarray  # int64 [K+1] first index into ``near`` of each class
    tp: np.ndarray  # bool [TA, s] true positive at (threshold t, area a) = row t*A + a
    fp: np.ndarray  # bool [TA, s] unmatched inside the area range (outside it: ignored)
    entry_col: np.ndarray  # int64 [E] the true positives' (row, index into near)
    entry_near: np.ndarray  # int64 [E]
    entry_class: np.ndarray  # int64 [E]


def _selection(prep: _Prepared, sel: np.ndarray) -> _Selection:
    """Gather one maxDets selection once; every (weighted) accumulation reuses it."""
    n_thr, n_areas = prep.states.shape[1:]
    k_count, ta = prep.class_ids.size, n_thr * n_areas
    cls, row = prep.det_class[sel], prep.det_row[sel]
    in_range = prep.in_range[:, sel]  # (A, n)
    near = np.flatnonzero(row >= 0)
    st = prep.states[row[near]].reshape(near.size, ta).T  # (TA, s)
    tp = st == _TP
    fp = (st == _FP) & np.tile(in_range[:, near], (n_thr, 1))
    col, j = np.nonzero(tp)
    return _Selection(cls, prep.det_image[sel], prep.det_score[sel], np.searchsorted(cls, np.arange(k_count + 1)),
                      in_range & (row < 0), near, np.searchsorted(cls[near], np.arange(k_count + 1)), tp, fp, col, j,
                      cls[near][j])


def _exclusive_cumsum(values: np.ndarray) -> np.ndarray:
    """``[..., n + 1]`` running sums along the last axis with a leading 0 (int64)."""
    out = np.zeros((*values.shape[:-1], values.shape[-1] + 1), np.int64)
    np.cumsum(values, axis=-1, out=out[..., 1:])
    return out


def _accumulate_selection(prep: _Prepared, sel: _Selection, weights: np.ndarray | None, npig: np.ndarray,
                          rows: np.ndarray, with_scores: bool, with_precision: bool = True
                          ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """pycocotools' ``accumulate`` for one maxDets value: ``([T, R, K, A], [T, K, A], [T, R, K, A])``.

    Only true positives move recall, and between two of them precision only falls, so the
    precision envelope at each recall threshold is the running maximum (from the right) over the
    true positives alone; false positives enter as counts before each true positive. With image
    ``weights`` every count is weighted and detections of weight 0 drop out. Without
    ``with_precision`` only recall is computed (precision and scores are ``None``): the summary
    reads AR1 and AR10 from recall alone, and the curves are most of the work.
    """
    n_thr, n_areas = prep.states.shape[1:]
    k_count, ta = prep.class_ids.size, n_thr * n_areas
    n_rec = RECALL_THRESHOLDS.size
    recall = -np.ones((ta, k_count))
    w = None if weights is None else weights[sel.image]  # (n,)
    w_near = None if w is None else w[sel.near]
    tp_cum = _exclusive_cumsum(sel.tp if w is None else sel.tp * w_near)  # (TA, s+1)
    tp_total = tp_cum[:, sel.near_starts[1:]] - tp_cum[:, sel.near_starts[:-1]]  # (TA, K)
    npig_col = np.tile(npig.T, (n_thr, 1))  # (TA, K)
    has_gt = npig_col > 0
    recall[has_gt] = tp_total[has_gt] / npig_col[has_gt]  # rc[-1] = tp / npig
    if not with_precision:
        return None, recall.reshape(n_thr, n_areas, k_count).transpose(0, 2, 1), None
    plain_cum = _exclusive_cumsum(sel.plain_fp if w is None else sel.plain_fp * w)  # (A, n+1)
    fp_cum = _exclusive_cumsum(sel.fp if w is None else sel.fp * w_near)
    col, j, k = sel.entry_col, sel.entry_near, sel.entry_class
    precision = -np.ones((ta, n_rec, k_count))
    scores = -np.ones((ta, n_rec, k_count))
    if w is not None:  # true positives of images left out would repeat a row
        live = w_near[j] > 0
        col, j, k = col[live], j[live], k[live]
    area = col % n_areas
    pos = sel.near[j]
    tp_n = tp_cum[col, j + 1] - tp_cum[col, sel.near_starts[k]]
    fp_n = fp_cum[col, j + 1] - fp_cum[col, sel.near_starts[k]] + plain_cum[area, pos + 1] - plain_cum[
        area, sel.starts[k]]
    tp_f = tp_n.astype(np.float64)
    pr = tp_f / (fp_n.astype(np.float64) + tp_f + _EPS)  # same operations as accumulate
    entry_score = sel.score[pos]
    # Classes in buckets of similar GT counts (rows), each bucket one padded [classes, TA, rows] array.
    with_gt = np.flatnonzero(npig.max(axis=1) > 0)
    n_rows = npig[with_gt].max(axis=1)
    bucket_of = np.full(k_count, -1)
    bucket_of[with_gt] = np.floor(np.log2(n_rows)).astype(np.int64)
    entry_bucket = bucket_of[k]
    first_score = _first_scores(sel, w) if with_scores else None
    for b in np.unique(bucket_of[with_gt]):
        classes = np.flatnonzero(bucket_of == b)
        local = np.full(k_count, -1)
        local[classes] = np.arange(classes.size)
        m = entry_bucket == b
        cells = (local[k[m]], col[m], tp_n[m] - 1)
        width = int(npig[classes].max()) + 1
        r = np.tile(rows[classes], (1, n_thr, 1))  # (C, TA, R), row t*A + a
        valid = has_gt[:, classes].T[:, :, None]  # (C, TA, 1)
        envelope = np.zeros((classes.size, ta, width))
        envelope[cells] = pr[m]
        envelope = np.maximum.accumulate(envelope[..., ::-1], axis=-1)[..., ::-1]
        q = np.where(valid, np.take_along_axis(envelope, r, axis=-1), -1.0)
        precision[:, :, classes] = q.transpose(1, 2, 0)
        if first_score is None:
            continue
        # scores[t, r] = score of the detection where searchsorted lands: the next true positive at
        # or after the threshold's row; for a threshold of 0, the first detection of any kind.
        at = np.zeros((classes.size, ta, width))
        at[cells] = entry_score[m]
        next_filled = np.full((classes.size, ta, width), width - 1)
        next_filled[cells] = cells[2]
        next_filled = np.minimum.accumulate(next_filled[..., ::-1], axis=-1)[..., ::-1]
        sc = np.take_along_axis(at, np.take_along_axis(next_filled, r, axis=-1), axis=-1)
        sc[:, :, RECALL_THRESHOLDS <= 0] = first_score[classes][:, None, None]
        scores[:, :, classes] = np.where(valid, sc, -1.0).transpose(1, 2, 0)
    shape = (n_thr, n_areas)
    return (precision.reshape(*shape, n_rec, k_count).transpose(0, 2, 3, 1),
            recall.reshape(*shape, k_count).transpose(0, 2, 1),
            scores.reshape(*shape, n_rec, k_count).transpose(0, 2, 3, 1) if with_scores else None)


def _first_scores(sel: _Selection, w: np.ndarray | None) -> np.ndarray:
    """``float64 [K]`` score of each class's first detection (of positive weight), 0 without any."""
    live = np.arange(sel.score.size) if w is None else np.flatnonzero(w > 0)
    first = np.searchsorted(live, sel.starts[:-1])  # index into live of each class's first detection
    has = first < live.size
    has[has] = live[first[has]] < sel.starts[1:][has]
    out = np.zeros(sel.starts.size - 1)
    out[has] = sel.score[live[first[has]]]
    return out


def _accumulate_coco(prep: _Prepared, weights: np.ndarray | None, *, summary_only: bool = False
                     ) -> list[tuple[np.ndarray | None, np.ndarray, np.ndarray | None]]:
    """``COCOeval.accumulate``: per maxDets, ``(precision [T, R, K, A], recall [T, K, A], scores)``.

    ``weights`` (``int64 [N]``, optional) repeats each image that many times (a bootstrap
    resample); copies of one detection are adjacent in the order, which gives the same curves as
    weighted counts. With ``summary_only`` only what the 12 numbers read is computed: recall at
    every maxDets and precision at the largest (the other entries are ``None``), which is what
    makes bootstrap resamples cheap.
    """
    npig = _gt_totals(prep, weights)
    rows = _recall_rows(npig)
    selections = _selections(prep)
    last = len(selections) - 1
    return [_accumulate_selection(prep, sel, weights, npig, rows, not summary_only,
                                  with_precision=not summary_only or m == last) for m, sel in enumerate(selections)]


def _selections(prep: _Prepared) -> list[_Selection]:
    """Each maxDets selection gathered once per evaluator (cached on ``prep``)."""
    if not prep.cache:
        prep.cache.update({m: _selection(prep, sel) for m, sel in enumerate(prep.selections)})
    return [prep.cache[m] for m in range(len(prep.selections))]


def _voc_curves(prep: _Prepared, weights: np.ndarray | None, eleven_point: bool
                ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Per-class VOC AP ``[K]`` (``-1`` without GT) and the raw (recall, precision) curves."""
    npos = _gt_totals(prep, weights)[:, 0]
    sel = prep.selections[0]
    weight = np.ones(sel.size, np.int64) if weights is None else weights[prep.det_image[sel]]
    state = np.full(sel.size, _FP, np.uint8)
    near = prep.det_row[sel] >= 0
    state[near] = prep.states[prep.det_row[sel][near], 0, 0]
    starts = np.searchsorted(prep.det_class[sel], np.arange(prep.class_ids.size + 1))
    ap = -np.ones(prep.class_ids.size)
    curves = []
    for c in range(prep.class_ids.size):
        w = weight[starts[c]:starts[c + 1]]
        s = state[starts[c]:starts[c + 1]][w > 0]
        w = w[w > 0]
        tp = np.cumsum((s == _TP) * w).astype(np.float64)
        fp = np.cumsum((s == _FP) * w).astype(np.float64)
        if npos[c] == 0:
            curves.append((np.zeros(0), np.zeros(0)))
            continue
        rec = tp / npos[c]
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)  # py-faster-rcnn; the devkit's 0/0 NaN reads as 0
        ap[c] = voc_average_precision(rec, prec, eleven_point=eleven_point)
        curves.append((rec, prec))
    return ap, curves


def _mean_valid(values: np.ndarray) -> float:
    """Mean of the entries ``> -1``; ``-1`` when there are none (pycocotools' convention)."""
    valid = values[values > -1]
    return -1.0 if valid.size == 0 else float(np.mean(valid))


def _at_threshold(prep: _Prepared, npig: np.ndarray, score_threshold: float, iou: float) -> dict[str, Any]:
    """Counts and precision/recall/F1 per class and overall at a score threshold (first IoU
    threshold, area "all", all kept detections); 0/0 gives 0."""
    sel = prep.selections[-1]
    row = prep.det_row[sel]
    state = np.full(sel.size, _FP, np.uint8)
    near = row >= 0
    state[near] = prep.states[row[near], 0, 0]
    counted = (prep.det_score[sel] >= score_threshold) & prep.in_range[0, sel]
    k = prep.class_ids.size
    cls = prep.det_class[sel]
    tp = np.bincount(cls[counted & (state == _TP)], minlength=k)
    fp = np.bincount(cls[counted & (state == _FP)], minlength=k)
    fn = npig[:, 0] - tp

    def ratio(a: np.ndarray | int, b: np.ndarray | int) -> Any:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)

    total_tp, total_fp, total_fn = int(tp.sum()), int(fp.sum()), int(fn.sum())
    return {
        "score_threshold": float(score_threshold), "iou_threshold": float(iou),
        "tp": tp, "fp": fp, "fn": fn,
        "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "precision_micro": float(ratio(total_tp, total_tp + total_fp)),
        "recall_micro": float(ratio(total_tp, total_tp + total_fn)),
        "f1_micro": float(ratio(2 * total_tp, 2 * total_tp + total_fp + total_fn)),
    }


def _confusion_matrix(prep: _Prepared) -> np.ndarray:
    """``int64 [K+1, K+1]`` from the stored (true, predicted) label counts; background last."""
    k = prep.class_ids.size
    pairs = prep.confusion[:, :2]
    index = np.where(pairs < 0, k, np.searchsorted(prep.class_ids, pairs))  # (P, 2)
    flat = np.bincount(index[:, 0] * (k + 1) + index[:, 1], weights=prep.confusion[:, 2], minlength=(k + 1) ** 2)
    return flat.round().astype(np.int64).reshape(k + 1, k + 1)


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _image_id(target: Mapping[str, Any], position: int) -> int:
    """The target's ``image_id`` as an int (tensor scalars accepted)."""
    if "image_id" not in target:
        raise ValueError(f"targets must each have an 'image_id'; got keys {sorted(target)} at batch position "
                         f"{position}. Add the dataset's image id (images are ordered by it, as in COCOeval).")
    image_id = target["image_id"]
    if isinstance(image_id, torch.Tensor) and image_id.numel() == 1 or isinstance(image_id, np.ndarray) and \
            image_id.size == 1:
        image_id = image_id.reshape(-1)[0].item()  # a tensor scalar (torchvision datasets) or a 1-element array
    if isinstance(image_id, bool) or not isinstance(image_id, int | np.integer):
        raise TypeError(f"image_id must be an integer; got {image_id!r} at batch position {position}. "
                        "Use the dataset's integer image ids.")
    return int(image_id)


def _tensor(record: Mapping[str, Any], key: str, what: str, position: int) -> torch.Tensor:
    """``record[key]`` as a CPU tensor (arrays and lists converted), with an error naming a missing key."""
    if key not in record:
        raise ValueError(f"{what} must each have {key!r}; got keys {sorted(record)} at batch position {position}. "
                         "Use torchvision's detection format.")
    value = record[key]
    return value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _box_count(boxes: torch.Tensor, what: str, image_id: int) -> int:
    """Rows of a ``[n, 4]`` box tensor (an empty tensor of any shape counts as none)."""
    if boxes.numel() == 0:
        return 0
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{what} 'boxes' must have shape [n, 4]; got {tuple(boxes.shape)} for image_id {image_id}. "
                         "Give one row of 4 coordinates per box.")
    return int(boxes.shape[0])


# Flat columns of a batch and their dtypes: predicted boxes/scores/labels, GT boxes/labels/crowd/
# ignore/area and "annotation id is 0".
_COLUMNS = {"pb": np.float64, "ps": np.float64, "pl": np.int64, "gb": np.float64, "gl": np.int64, "gc": bool,
            "gi": bool, "ga": np.float64, "gz": bool}


def _image_columns(pred: Mapping[str, Any], target: Mapping[str, Any], position: int
                   ) -> tuple[int, dict[str, torch.Tensor], bool]:
    """One image's prediction and target dicts as ``(image_id, {column: tensor}, area given)``,
    shapes and integer dtypes checked (values are checked on the whole batch)."""
    image_id = _image_id(target, position)
    pb, ps, pl = (_tensor(pred, key, "predictions", position) for key in ("boxes", "scores", "labels"))
    gb, gl = (_tensor(target, key, "targets", position) for key in ("boxes", "labels"))
    n, g = _box_count(pb, "predictions", image_id), _box_count(gb, "targets", image_id)
    extra = {key: _tensor(target, key, "targets", position) if target.get(key) is not None else None
             for key in ("iscrowd", "ignore", "difficult", "area", "ids")}
    sizes = {"predictions 'scores'": (ps, n), "predictions 'labels'": (pl, n), "targets 'labels'": (gl, g),
             **{f"targets {k!r}": (v, g) for k, v in extra.items() if v is not None}}
    for what, (value, expected) in sizes.items():
        if value.numel() != expected:
            raise ValueError(f"{what} must have one entry per box ({expected}); got {value.numel()} for image_id "
                             f"{image_id}. Give one value per box.")
    for what, value in (("predictions 'labels'", pl), ("targets 'labels'", gl), ("targets 'ids'", extra["ids"])):
        if value is not None and value.numel() and (value.is_floating_point() or value.is_complex()):
            raise TypeError(f"{what} must be an integer tensor; got dtype {value.dtype} for image_id {image_id}. "
                            "Convert it with .long().")
    no = torch.zeros(g, dtype=torch.bool)
    ignore = no if extra["ignore"] is None else extra["ignore"].reshape(g).bool()
    if extra["difficult"] is not None:  # VOC's difficult objects are ignored GT
        ignore = ignore | extra["difficult"].reshape(g).bool()
    row = {"pb": pb.reshape(n, 4), "ps": ps.reshape(n), "pl": pl.reshape(n), "gb": gb.reshape(g, 4),
           "gl": gl.reshape(g), "gc": no if extra["iscrowd"] is None else extra["iscrowd"].reshape(g), "gi": ignore,
           "ga": torch.zeros(g) if extra["area"] is None else extra["area"].reshape(g),
           "gz": no if extra["ids"] is None else extra["ids"].reshape(g) == 0}
    return image_id, row, extra["area"] is not None


def _check_boxes(boxes: np.ndarray, box_format: str, what: str, owner: np.ndarray, image_ids: np.ndarray) -> None:
    """Raise for non-finite boxes or negative extents, naming the image and the box."""
    if box_format == "xyxy":
        extent = boxes[:, 2:] - boxes[:, :2]
        rule = "finite with x2 >= x1 and y2 >= y1 (XYXY)"
    else:
        extent = boxes[:, 2:]
        rule = "finite with w >= 0 and h >= 0 (XYWH)"
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(boxes).all(axis=1) | ~(extent >= 0).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        within = i - int(np.searchsorted(owner, owner[i]))
        raise ValueError(f"{what} must be {rule}; got {boxes[i].tolist()!r} at box {within} of image_id "
                         f"{int(image_ids[owner[i]])}. Fix or drop the box (box_format={box_format!r}).")


def _check_finite(values: np.ndarray, what: str, owner: np.ndarray, image_ids: np.ndarray, *,
                  non_negative: bool = False) -> None:
    """Raise for NaN/inf (or negative) values, naming the image."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | ((values < 0) if non_negative else False)
    if bad.any():
        i = int(np.argmax(bad))
        rule = "finite and >= 0" if non_negative else "finite"
        raise ValueError(f"{what} must be {rule}; got {values[i]!r} in image_id {int(image_ids[owner[i]])}. "
                         "Fix the model output or drop the entry.")


def _check_labels(labels: np.ndarray, what: str, owner: np.ndarray, image_ids: np.ndarray,
                  class_ids: np.ndarray | None) -> None:
    """Raise for negative labels, or labels outside ``class_ids`` when it was given."""
    bad = labels < 0
    if class_ids is not None:
        bad |= ~np.isin(labels, class_ids)
    if bad.any():
        i = int(np.argmax(bad))
        rule = "non-negative integers" if class_ids is None else f"one of class_ids {class_ids.tolist()}"
        raise ValueError(f"{what} must be {rule}; got {int(labels[i])} in image_id {int(image_ids[owner[i]])}. "
                         "Map the labels to the ground truth's categories, or pass class_ids=None.")


def _to_internal(boxes: np.ndarray, box_format: str, voc: bool) -> np.ndarray:
    """``xywh`` for COCO (``w = x2 - x1``, as torchvision's COCO conversion) or ``xyxy`` for VOC
    (``x2 = x + w``), float64."""
    if voc == (box_format == "xyxy"):
        return boxes
    out = boxes.copy()
    if voc:
        out[:, 2:] += out[:, :2]
    else:
        out[:, 2:] -= out[:, :2]
    return out


# --------------------------------------------------------------------------------------------
# Streaming evaluator
# --------------------------------------------------------------------------------------------


class DetectionEvaluator:
    """Streaming COCO / VOC detection evaluation with exact merging across processes.

    ``update`` validates a batch and matches each image's detections to its ground truth (every
    IoU threshold and area range; small batches are matched together once 65,536 images + boxes
    wait) and keeps compact per-detection states; ``compute`` sorts once and accumulates.

    Args:
        protocol: ``"pycocotools"`` (bit-exact COCOeval), ``"coco-fixed"``, ``"voc07"`` or
            ``"voc12"`` (see the module docstring for each difference).
        box_format: ``"xyxy"`` (torchvision) or ``"xywh"`` (COCO JSON) for every box given to
            ``update``.
        class_ids: the categories (the ``K`` axis of the arrays, ascending); labels outside it are
            an error. ``None``: every label seen in targets or predictions.
        score_threshold: score at which precision/recall/F1 and the confusion matrix are taken.

    Example:
        >>> ev = DetectionEvaluator()
        >>> ev.update([{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]),
        ...             "labels": torch.tensor([1])}],
        ...           [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1]), "image_id": 7}])
        >>> round(ev.compute()["AP50"], 12)  # 1 / (1 + np.spacing(1)) at every recall point, as pycocotools
        1.0
    """

    def __init__(self, *, protocol: Protocol = "pycocotools", box_format: BoxFormat = "xyxy",
                 class_ids: Sequence[int] | None = None, score_threshold: float = 0.5) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}; got {protocol!r}. Use 'pycocotools' for "
                             "COCOeval's numbers.")
        if box_format not in ("xyxy", "xywh"):
            raise ValueError(f"box_format must be 'xyxy' or 'xywh'; got {box_format!r}. torchvision models give "
                             "'xyxy', COCO JSON files 'xywh'.")
        if not math.isfinite(score_threshold):
            raise ValueError(f"score_threshold must be finite; got {score_threshold!r}. Use e.g. 0.5.")
        self.protocol = protocol
        self.box_format = box_format
        self.class_ids = None if class_ids is None else np.unique(np.asarray(class_ids, np.int64))
        self.score_threshold = float(score_threshold)
        self._chunks: list[_Chunk] = []
        self._pending: list[tuple[np.ndarray, ...]] = []  # validated batches not matched yet
        self._pending_size = 0
        self._prepared: _Prepared | None = None

    @property
    def voc(self) -> bool:
        """Whether the protocol is a Pascal VOC one."""
        return self.protocol.startswith("voc")

    def update(self, predictions: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]) -> None:
        """Match a batch of images.

        Args:
            predictions: per image ``{"boxes": float [n, 4], "scores": float [n], "labels": int [n]}``
                (tensors, arrays or lists; any device; converted to float64 / int64).
            targets: per image ``{"boxes": float [g, 4], "labels": int [g], "image_id": int}`` and
                optionally ``"iscrowd"`` (bool [g]), ``"area"`` (float [g]; default the box's area,
                COCO uses it for the area ranges), ``"ignore"`` / ``"difficult"`` (bool [g]) and
                ``"ids"`` (annotation ids [g], only for pycocotools' id-0 quirk; default none is 0).
        """
        if len(predictions) != len(targets):
            raise ValueError(f"predictions and targets must have one entry per image; got {len(predictions)} and "
                             f"{len(targets)}. Pass the model outputs of the same batch of images.")
        columns: dict[str, list[torch.Tensor]] = {k: [] for k in _COLUMNS}
        image_ids, n_pred, n_gt, has_area = [], [], [], []
        for i, (pred, target) in enumerate(zip(predictions, targets, strict=True)):
            image_id, row, area_given = _image_columns(pred, target, i)
            for key, value in row.items():
                columns[key].append(value)
            image_ids.append(image_id)
            n_pred.append(row["ps"].numel())
            n_gt.append(row["gl"].numel())
            has_area.append(area_given)
        ids = np.asarray(image_ids, np.int64)
        if np.unique(ids).size != ids.size:
            raise ValueError(f"image_id must be unique; got {image_ids!r} in one batch. Give every image once.")
        flat = {k: torch.cat(v).numpy().astype(_COLUMNS[k], copy=False) if v else np.zeros(
            (0, 4) if k in ("pb", "gb") else 0, _COLUMNS[k]) for k, v in columns.items()}
        slot_p = np.repeat(np.arange(ids.size), n_pred)
        slot_g = np.repeat(np.arange(ids.size), n_gt)
        gb = flat["gb"]
        with np.errstate(invalid="ignore"):  # bad boxes are reported by _add_flat
            wh = gb[:, 2:] - gb[:, :2] if self.box_format == "xyxy" else gb[:, 2:]
        # the box's area, w * h with w = x2 - x1 for XYXY (as _to_internal converts)
        area = np.where(np.repeat(np.asarray(has_area, bool), n_gt), flat["ga"], wh[:, 0] * wh[:, 1])
        self._add_flat(ids, slot_p, flat["pb"], flat["ps"], flat["pl"], slot_g, gb, flat["gl"], flat["gc"],
                       flat["gi"], area, flat["gz"])

    def _add_flat(self, image_ids: np.ndarray, slot_p: np.ndarray, boxes_p: np.ndarray, scores_p: np.ndarray,
                  labels_p: np.ndarray, slot_g: np.ndarray, boxes_g: np.ndarray, labels_g: np.ndarray,
                  crowd_g: np.ndarray, ignore_g: np.ndarray, area_g: np.ndarray, zero_id_g: np.ndarray) -> None:
        """Validate flat batch arrays (boxes in ``self.box_format``) and match them."""
        _check_boxes(boxes_p, self.box_format, "predictions 'boxes'", slot_p, image_ids)
        _check_boxes(boxes_g, self.box_format, "targets 'boxes'", slot_g, image_ids)
        _check_finite(scores_p, "predictions 'scores'", slot_p, image_ids)
        _check_labels(labels_p, "predictions 'labels'", slot_p, image_ids, self.class_ids)
        _check_labels(labels_g, "targets 'labels'", slot_g, image_ids, self.class_ids)
        boxes_p = _to_internal(boxes_p, self.box_format, self.voc)
        boxes_g = _to_internal(boxes_g, self.box_format, self.voc)
        if not self.voc:
            _check_finite(area_g, "targets 'area'", slot_g, image_ids, non_negative=True)
        self._pending.append((image_ids, slot_p, boxes_p, scores_p, labels_p, slot_g, boxes_g, labels_g, crowd_g,
                              ignore_g, area_g, zero_id_g))
        self._pending_size += image_ids.size + scores_p.size + labels_g.size
        self._prepared = None
        if self._pending_size >= _MATCH_BUFFER:
            self._flush()

    def _flush(self) -> None:
        """Match the validated batches waiting in the buffer, as one batch."""
        if not self._pending:
            return
        parts, self._pending, self._pending_size = self._pending, [], 0
        offsets = np.cumsum([0] + [p[0].size for p in parts])[:-1]
        columns = [np.concatenate([p[i] + off if i in (1, 5) else p[i] for p, off in zip(parts, offsets, strict=True)])
                   for i in range(len(parts[0]))]  # slots (columns 1 and 5) shift by the images before them
        self._chunks.append(_match_batch(*columns, protocol=self.protocol, score_threshold=self.score_threshold))

    def add_coco(self, ground_truth: CocoGroundTruth, results: CocoResults) -> None:
        """Add every image of a COCO ground truth with its results (both from the loaders).

        Requires ``box_format="xywh"`` (COCO's) and ``class_ids`` equal to the ground truth's
        categories when given (the evaluator from :func:`evaluate_coco` has both).
        """
        if self.box_format != "xywh":
            raise ValueError(f"box_format must be 'xywh' to add COCO JSON boxes; got {self.box_format!r}. "
                             "Create the evaluator with box_format='xywh'.")
        images = ground_truth.image_ids
        sorter = np.argsort(images, kind="stable")
        slot_g = sorter[np.searchsorted(images, ground_truth.image_id, sorter=sorter)]
        slot_p = sorter[np.searchsorted(images, results.image_id, sorter=sorter)]
        self._add_flat(images, slot_p, results.bbox, results.score, results.category_id, slot_g, ground_truth.bbox,
                       ground_truth.category_id, ground_truth.iscrowd, ground_truth.ignore, ground_truth.area,
                       ground_truth.ann_id == 0)

    def merge(self, other: DetectionEvaluator) -> DetectionEvaluator:
        """Add another evaluator's images into this one (returns ``self``); images must not repeat."""
        same = (other.protocol, other.box_format, other.score_threshold) == (
            self.protocol, self.box_format, self.score_threshold)
        classes_same = (self.class_ids is None and other.class_ids is None) or (
            self.class_ids is not None and other.class_ids is not None and np.array_equal(self.class_ids,
                                                                                          other.class_ids))
        if not (same and classes_same):
            raise ValueError("evaluators must have the same protocol, box_format, score_threshold and class_ids to "
                             f"merge; got {self.protocol!r}/{other.protocol!r}, {self.box_format!r}/"
                             f"{other.box_format!r}. Create both with the same arguments.")
        other._flush()
        self._flush()
        self._chunks.extend(other._chunks)
        self._prepared = None
        return self

    def sync(self, group: object | None = None) -> DetectionEvaluator:
        """Gather every process's matched results into each process (DDP, gloo or NCCL); returns ``self``.

        A no-op outside ``torch.distributed``. Only the compact per-detection states travel
        (``all_gather_object``); ranks are merged in order, and since ``compute`` sorts by image id
        the result equals one process that saw every image. Call it once, after the last update
        (a second call would count every image again, which ``compute`` rejects).
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        self._flush()
        gathered: list[Any] = [None] * dist.get_world_size(group=group)
        dist.all_gather_object(gathered, self._chunks, group=group)
        self._chunks = [chunk for chunks in gathered for chunk in chunks]
        self._prepared = None
        return self

    def _prepare(self) -> _Prepared:
        self._flush()
        if self._prepared is None:
            self._prepared = _prepare(self._chunks, self.class_ids, self.voc)
        return self._prepared

    @property
    def image_ids(self) -> np.ndarray:
        """``int64 [N]``: every image seen, ascending (the order of ``image_weights``)."""
        return self._prepare().image_ids

    def stats(self, *, image_weights: np.ndarray | torch.Tensor | None = None) -> dict[str, float]:
        """The headline numbers only: the 12 COCO stats, or ``{"AP50"}`` for VOC.

        Args:
            image_weights: optional ``int [N]`` number of times each image (in :attr:`image_ids`
                order) is counted, e.g. a bootstrap resample's counts; 0 leaves it out.
        """
        prep = self._prepare()
        weights = self._weights(image_weights, prep)
        if self.voc:
            ap, _ = _voc_curves(prep, weights, self.protocol == "voc07")
            return {"AP50": _mean_valid(ap)}
        parts = _accumulate_coco(prep, weights, summary_only=True)
        return _summarize(parts[-1][0], np.stack([p[1] for p in parts], axis=-1))  # type: ignore[arg-type]

    @staticmethod
    def _weights(image_weights: Any, prep: _Prepared) -> np.ndarray | None:
        if image_weights is None:
            return None
        w = image_weights.detach().cpu().numpy() if isinstance(image_weights, torch.Tensor) else np.asarray(
            image_weights)
        if w.shape != prep.image_ids.shape or not np.all(w >= 0) or not np.all(w == np.round(w)):
            raise ValueError(f"image_weights must be non-negative integers of shape {prep.image_ids.shape}; got shape "
                             f"{w.shape}. Give one count per image, in the order of evaluator.image_ids.")
        return w.astype(np.int64)

    def compute(self) -> dict[str, Any]:
        """Everything: headline numbers, per-class AP, arrays, curves, threshold metrics, confusion.

        Returns:
            COCO protocols: the 12 stats (floats, ``-1`` when undefined), ``"per_class_AP"`` and
            ``"per_class_AP50"`` (``float64 [K]``, area "all", 100 detections, ``-1`` without GT),
            ``"precision"`` ``[T, R, K, A, M]``, ``"recall"`` ``[T, K, A, M]`` and ``"scores"``
            (pycocotools' ``eval`` arrays), ``"pr_curves"`` (``{"recall": [R], "precision":
            [T, R, K]}``: interpolated precision per IoU threshold and class, area "all", 100
            detections). VOC: ``"AP50"`` (mean over classes with GT), ``"per_class_AP"`` and
            ``"pr_curves"`` (per class raw ``recall``/``precision`` lists of arrays). Both:
            ``"at_threshold"`` (tp/fp/fn, precision/recall/F1 per class and micro),
            ``"confusion_matrix"`` ``int64 [K+1, K+1]`` with ``"confusion_labels"``,
            ``"class_ids"``, ``"num_images"``, ``"protocol"``.
        """
        prep = self._prepare()
        k = prep.class_ids.size
        out: dict[str, Any] = {}
        npig = _gt_totals(prep, None)
        if self.voc:
            ap, curves = _voc_curves(prep, None, self.protocol == "voc07")
            out["AP50"] = _mean_valid(ap)
            out["per_class_AP"] = ap
            out["pr_curves"] = {"recall": [c[0] for c in curves], "precision": [c[1] for c in curves]}
            out["at_threshold"] = _at_threshold(prep, npig, self.score_threshold, VOC_IOU_THRESHOLD)
        else:
            precision, recall, scores = (np.stack(p, axis=-1) for p in zip(*_accumulate_coco(prep, None), strict=True))
            out.update(coco_summarize(precision, recall))
            out["per_class_AP"] = np.array([_mean_valid(precision[:, :, c, 0, -1]) for c in range(k)])
            out["per_class_AP50"] = np.array([_mean_valid(precision[0, :, c, 0, -1]) for c in range(k)])
            out.update(precision=precision, recall=recall, scores=scores, iou_thresholds=IOU_THRESHOLDS.copy(),
                       recall_thresholds=RECALL_THRESHOLDS.copy(), max_detections=MAX_DETECTIONS,
                       area_ranges=AREA_NAMES)
            out["pr_curves"] = {"recall": RECALL_THRESHOLDS.copy(), "precision": precision[:, :, :, 0, -1].copy()}
            out["at_threshold"] = _at_threshold(prep, npig, self.score_threshold, float(IOU_THRESHOLDS[0]))
        out["confusion_matrix"] = _confusion_matrix(prep)
        out["confusion_labels"] = [*prep.class_ids.tolist(), "background"]
        out["class_ids"] = prep.class_ids.tolist()
        out["num_images"] = int(prep.image_ids.size)
        out["protocol"] = self.protocol
        return out


# --------------------------------------------------------------------------------------------
# Bootstrap intervals and paired comparison
# --------------------------------------------------------------------------------------------


def _resampled_stats(evaluators: Sequence[DetectionEvaluator], resamples: int, seed: int
                     ) -> Iterator[list[dict[str, float]]]:
    """For each bootstrap resample of the images (the same draw for every evaluator), their stats."""
    n = evaluators[0].image_ids.size
    for block in bootstrap_count_blocks(n, resamples=resamples, seed=seed):
        for counts in block.numpy().astype(np.int64):
            yield [e.stats(image_weights=counts) for e in evaluators]


def detection_intervals(evaluator: DetectionEvaluator, *, resamples: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the headline numbers, resampling images.

    Each resample counts every image as often as it was drawn (:func:`bootstrap_count_blocks`)
    and re-accumulates the stored matches (no re-matching; matching is per image). Resamples in
    which a number is undefined (``-1``: no GT) are left out of its interval.

    Args:
        evaluator: an evaluator with every image added.
        resamples, seed: number of resamples and the seed of the draws.
        level: central coverage of the interval.

    Returns:
        ``{name: (low, high)}`` for the names of :meth:`DetectionEvaluator.stats`.
    """
    if evaluator.image_ids.size == 0:
        return {name: (math.nan, math.nan) for name in evaluator.stats()}
    values: dict[str, list[float]] = {}
    for (stats,) in _resampled_stats([evaluator], resamples, seed):
        for name, value in stats.items():
            values.setdefault(name, []).append(math.nan if value == -1 else value)
    return {name: percentile_interval(torch.tensor(v, dtype=torch.float64), level) for name, v in values.items()}


def compare_detection(run_a: DetectionEvaluator, run_b: DetectionEvaluator, *, resamples: int = 1000, seed: int = 0
                      ) -> dict[str, PairedMetric]:
    """Paired bootstrap comparison of two detection runs on the same images.

    Both runs are resampled with the *same* image counts; the difference is ``b - a`` and the
    p-value :func:`visionbench.metrics.significance.bootstrap_p_value`.

    Returns:
        ``{name: PairedMetric}`` for each headline number (``AP``, ``AP50``, … or VOC's ``AP50``).
    """
    if run_a.protocol != run_b.protocol or not np.array_equal(run_a.image_ids, run_b.image_ids):
        raise ValueError(f"runs must use the same protocol and images to compare; got {run_a.protocol!r} on "
                         f"{run_a.image_ids.size} images and {run_b.protocol!r} on {run_b.image_ids.size}. "
                         "Evaluate both on the same test set.")
    value_a, value_b = run_a.stats(), run_b.stats()
    diffs: dict[str, list[float]] = {name: [] for name in value_a}
    for stats_a, stats_b in _resampled_stats([run_a, run_b], resamples, seed):
        for name in diffs:
            undefined = stats_a[name] == -1 or stats_b[name] == -1
            diffs[name].append(math.nan if undefined else stats_b[name] - stats_a[name])
    out = {}
    for name, values in diffs.items():
        d = torch.tensor(values, dtype=torch.float64)
        out[name] = paired_metric(value_a[name], value_b[name], d)
    return out


# --------------------------------------------------------------------------------------------
# COCO JSON loaders
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CocoGroundTruth:
    """A COCO instances file as flat arrays (one row per annotation, file order).

    Attributes:
        source: the file name (for messages).
        image_ids: ``int64 [N]`` every image of ``"images"``, file order.
        category_ids: ``int64 [K]`` every category of ``"categories"``, ascending.
        image_id, category_id, ann_id: ``int64 [G]``.
        bbox: ``float64 [G, 4]`` ``(x, y, w, h)``.
        area: ``float64 [G]`` the ``"area"`` field (``w * h`` where absent).
        iscrowd, ignore: ``bool [G]`` (False where absent).
    """

    source: str
    image_ids: np.ndarray
    category_ids: np.ndarray
    image_id: np.ndarray
    category_id: np.ndarray
    ann_id: np.ndarray
    bbox: np.ndarray
    area: np.ndarray
    iscrowd: np.ndarray
    ignore: np.ndarray


@dataclass(frozen=True)
class CocoResults:
    """COCO detection results (``[{"image_id", "category_id", "bbox", "score"}, …]``) as arrays.

    Attributes:
        source: the file name, or ``"<list>"``.
        image_id, category_id: ``int64 [D]``. bbox: ``float64 [D, 4]`` xywh. score: ``float64 [D]``.
    """

    source: str
    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    score: np.ndarray


def _read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; an empty or malformed file raises ``ValueError`` naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = "no such file" if isinstance(error, FileNotFoundError) else str(error)
        raise ValueError(f"cannot read {path}: {reason}. Check the path of the COCO JSON file.") from None
    if not text.strip():
        raise ValueError(f"{path} must be a COCO JSON file; got an empty file. Re-export the annotations or results.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} must be valid JSON; got {error.msg} at line {error.lineno} column {error.colno}. "
                         "The file is truncated or not JSON: re-export it.") from None
    except RecursionError:
        raise ValueError(f"{path} must be a COCO JSON file; got values nested too deeply to be one. Re-export the "
                         "annotations or results.") from None


def _record_name(records: Sequence[Any], i: int) -> str:
    record = records[i]
    rid = record.get("id") if isinstance(record, dict) else None
    return f"[{i}]" + (f" (id {rid!r})" if rid is not None else "")


def _column(records: Sequence[Any], key: str, source: str, section: str, *, kind: str,
            default: Any = None) -> np.ndarray:
    """One field of every record as an array, with an error naming the first bad record.

    ``kind``: ``"int"`` (integers), ``"number"`` (finite numbers), ``"bool"`` (0/1/true/false) or
    ``"box"`` (4 finite numbers with w, h >= 0).
    """
    def fail(i: int, constraint: str, how: str) -> ValueError:
        value = records[i].get(key, "<missing>") if isinstance(records[i], dict) else records[i]
        return ValueError(f"{section}{_record_name(records, i)}[{key!r}] must be {constraint}; got {value!r} in "
                          f"{source}. {how}")

    try:
        values = [r[key] if default is None else r.get(key, default) for r in records]
    except (KeyError, TypeError, AttributeError):
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                raise ValueError(f"{section}{_record_name(records, i)} must be an object; got {r!r} in {source}. "
                                 "Each record is a JSON object.") from None
            if key not in r:
                raise fail(i, "present", f"Every {section} record needs {key!r}.") from None
        raise
    if kind == "box":
        ok = [isinstance(v, list | tuple) and len(v) == 4 and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in v) for v in values]
        if not all(ok):
            raise fail(ok.index(False), "a list of 4 numbers [x, y, w, h]", "Fix the box or drop the record.")
        array = np.array(values, dtype=np.float64).reshape(-1, 4)
        bad = ~np.isfinite(array).all(axis=1) | ~(array[:, 2:] >= 0).all(axis=1)
        if bad.any():
            raise fail(int(np.argmax(bad)), "finite with w >= 0 and h >= 0", "Fix the box or drop the record.")
        return array
    if kind == "int":
        ok = [isinstance(v, int) and not isinstance(v, bool) for v in values]
        if not all(ok):
            raise fail(ok.index(False), "an integer", "COCO ids are integers.")
        fits = [-(2**63) <= v < 2**63 for v in values]  # numpy's int64 (an overflow traceback otherwise)
        if not all(fits):
            raise fail(fits.index(False), "an integer below 2**63", "Renumber the ids (pycocotools cannot read "
                       "them either).")
        return np.array(values, dtype=np.int64)
    if kind == "bool":
        ok = [v in (0, 1) for v in values]
        if not all(ok):
            raise fail(ok.index(False), "0 or 1", "Use 0/1 (or false/true).")
        return np.array(values, dtype=bool)
    ok = [isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values]
    if not all(ok):
        raise fail(ok.index(False), "a finite number", "Fix the value or drop the record.")
    return np.array(values, dtype=np.float64)


def _unique_ids(ids: np.ndarray, records: Sequence[Any], source: str, section: str) -> None:
    """Raise when an id repeats, naming the second record."""
    seen: set[int] = set()
    if np.unique(ids).size == ids.size:
        return
    for i, v in enumerate(ids.tolist()):
        if v in seen:
            raise ValueError(f"{section}{_record_name(records, i)}['id'] must be unique; got {v!r} again in {source}. "
                             "Give every record its own id.")
        seen.add(v)


def _check_known(values: np.ndarray, known: np.ndarray, records: Sequence[Any], source: str, section: str, key: str,
                 what: str, how: str) -> None:
    bad = ~np.isin(values, known)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{section}{_record_name(records, i)}[{key!r}] must be {what}; got {int(values[i])!r} in "
                         f"{source}. {how}")


def load_coco_ground_truth(path: str | os.PathLike[str] | Mapping[str, Any]) -> CocoGroundTruth:
    """Read a COCO instances JSON file (or its parsed dict) into :class:`CocoGroundTruth`.

    Checked (``ValueError`` naming the file and the record): valid JSON, the three lists, integer
    unique ids, 4-number boxes with ``w, h >= 0``, finite areas, annotations referring to listed
    images and categories. Defaults for pycocotools' required-but-often-missing fields:
    ``iscrowd = 0`` (pycocotools raises ``KeyError``), ``area = w * h``, ``ignore = 0``.

    Args:
        path: the file, or a dict with ``"images"``, ``"annotations"``, ``"categories"``.
    """
    source = "<dict>" if isinstance(path, Mapping) else str(path)
    data = path if isinstance(path, Mapping) else _read_json(path)
    if not isinstance(data, Mapping):
        raise ValueError(f"{source} must hold a JSON object with 'images', 'annotations' and 'categories'; got "
                         f"{type(data).__name__}. Is this a results file? Pass it as the results.")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{source}[{key!r}] must be a list; got {type(data.get(key)).__name__}. "
                             "A COCO instances file has 'images', 'annotations' and 'categories' lists.")
    images, anns, cats = data["images"], data["annotations"], data["categories"]
    image_ids = _column(images, "id", source, "images", kind="int")
    _unique_ids(image_ids, images, source, "images")
    category_ids = _column(cats, "id", source, "categories", kind="int")
    _unique_ids(category_ids, cats, source, "categories")
    ann_id = _column(anns, "id", source, "annotations", kind="int")
    _unique_ids(ann_id, anns, source, "annotations")
    image_id = _column(anns, "image_id", source, "annotations", kind="int")
    category_id = _column(anns, "category_id", source, "annotations", kind="int")
    _check_known(image_id, image_ids, anns, source, "annotations", "image_id", "the id of an entry of 'images'",
                 "Add the image to 'images' or drop the annotation.")
    _check_known(category_id, category_ids, anns, source, "annotations", "category_id",
                 "the id of an entry of 'categories'", "Add the category or drop the annotation.")
    if (category_ids < 0).any():
        raise ValueError(f"categories ids must be non-negative; got {int(category_ids.min())} in {source}. "
                         "Renumber the categories.")
    bbox = _column(anns, "bbox", source, "annotations", kind="box")
    area = _column(anns, "area", source, "annotations", kind="number", default=0.0)
    has_area = np.array([isinstance(a, dict) and "area" in a for a in anns], dtype=bool)
    area = np.where(has_area, area, bbox[:, 2] * bbox[:, 3])
    if (area < 0).any():
        i = int(np.argmax(area < 0))
        raise ValueError(f"annotations{_record_name(anns, i)}['area'] must be >= 0; got {area[i]!r} in {source}. "
                         "Fix the area.")
    iscrowd = _column(anns, "iscrowd", source, "annotations", kind="bool", default=0)
    ignore = _column(anns, "ignore", source, "annotations", kind="bool", default=0)
    return CocoGroundTruth(source, image_ids, np.sort(category_ids), image_id, category_id, ann_id, bbox, area,
                           iscrowd, ignore)


def load_coco_results(source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
                      ground_truth: CocoGroundTruth) -> CocoResults:
    """Read COCO detection results (a JSON list of ``{"image_id", "category_id", "bbox", "score"}``).

    Checked (``ValueError`` naming the file and record index): a list of objects, integer ids,
    4-number boxes with ``w, h >= 0``, finite scores, image ids present in the ground truth
    (pycocotools asserts "Results do not correspond to current coco set") and category ids
    present in it (pycocotools silently drops those). An empty list is valid (no detections).
    Result ids are assigned 1, 2, … as ``COCO.loadRes`` does, so none is 0.

    Args:
        source: the file, or the already parsed list.
        ground_truth: from :func:`load_coco_ground_truth`.
    """
    name = "<list>" if not isinstance(source, str | os.PathLike) else str(source)
    records = _read_json(source) if isinstance(source, str | os.PathLike) else source
    if not isinstance(records, list):
        raise ValueError(f"{name} must hold a JSON list of detections; got {type(records).__name__}. Is this a "
                         "ground-truth file? COCO results are [{'image_id', 'category_id', 'bbox', 'score'}, ...].")
    image_id = _column(records, "image_id", name, "results", kind="int")
    category_id = _column(records, "category_id", name, "results", kind="int")
    bbox = _column(records, "bbox", name, "results", kind="box")
    score = _column(records, "score", name, "results", kind="number")
    _check_known(image_id, ground_truth.image_ids, records, name, "results", "image_id",
                 f"an image id of {ground_truth.source}", "Evaluate against the ground truth the results were made "
                 "for, or drop those records.")
    _check_known(category_id, ground_truth.category_ids, records, name, "results", "category_id",
                 f"a category id of {ground_truth.source}", "Map the model's labels to the dataset's category ids.")
    return CocoResults(name, image_id, category_id, bbox.reshape(-1, 4), score)


def evaluate_coco(ground_truth: str | os.PathLike[str] | CocoGroundTruth,
                  results: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | CocoResults, *,
                  protocol: Protocol = "pycocotools", score_threshold: float = 0.5) -> DetectionEvaluator:
    """Evaluate a COCO results file against a COCO ground-truth file.

    Args:
        ground_truth: instances JSON path (or a loaded :class:`CocoGroundTruth`).
        results: results JSON path, parsed list, or :class:`CocoResults`.
        protocol, score_threshold: as :class:`DetectionEvaluator`.

    Returns:
        The evaluator holding every image of the ground truth; call ``compute()`` for the numbers,
        or pass it to :func:`detection_intervals`.

    Example:
        >>> evaluate_coco("instances_val.json", "detections.json").compute()["AP"]  # doctest: +SKIP
    """
    gt = ground_truth if isinstance(ground_truth, CocoGroundTruth) else load_coco_ground_truth(ground_truth)
    res = results if isinstance(results, CocoResults) else load_coco_results(results, gt)
    evaluator = DetectionEvaluator(protocol=protocol, box_format="xywh", class_ids=gt.category_ids.tolist(),
                                   score_threshold=score_threshold)
    evaluator.add_coco(gt, res)
    return evaluator
