"""The detection evaluator's core: per-batch matching (``update``) and the COCO/VOC accumulation
(``compute``), as pure functions on flat arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from visionbench.metrics.detection.protocol import (
    _EPS,
    _FP,
    _IGNORED,
    _TP,
    AREA_RANGES,
    CONFUSION_IOU_THRESHOLD,
    IOU_THRESHOLDS,
    MAX_DETECTIONS,
    RECALL_THRESHOLDS,
    VOC_IOU_THRESHOLD,
    _coco_iou_terms,
    _coco_match_edges,
    _lexsort,
    _stable_argsort,
    _voc_iou_terms,
    voc_average_precision,
)

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


