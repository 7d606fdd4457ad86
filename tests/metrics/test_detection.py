"""Tests for visionbench/metrics/detection.py.

Oracles: pycocotools' ``COCOeval`` (``==`` on the 12 stats and on the full precision, recall and
scores arrays) and faster-coco-eval's ``COCOeval_faster`` (to 1e-12) on seeded random sets with
ties in scores and IoUs, crowd regions, areas exactly 32² and 96², images and classes without
ground truth, more than 100 detections per image and class, annotation id 0 and ``ignore``
flags; a slow loop written from the Pascal VOC devkit's ``VOCevaldet.m`` / ``VOCap.m`` rules for
the VOC protocols. Properties: tensors == JSON, k streamed updates == one, merged halves and DDP
(two gloo processes) == the whole, image weights == duplicated images; bad input.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from visionbench.metrics import detection
from visionbench.metrics.detection import (
    AREA_RANGES,
    COCO_STATS,
    IOU_THRESHOLDS,
    MAX_DETECTIONS,
    RECALL_THRESHOLDS,
    DetectionEvaluator,
    coco_box_iou,
    coco_match,
    compare_detection,
    detection_intervals,
    evaluate_coco,
    load_coco_ground_truth,
    load_coco_results,
    voc_box_iou,
)

# --------------------------------------------------------------------------------------------
# Random COCO-style sets and the reference runners
# --------------------------------------------------------------------------------------------

SIZES = (32.0, 96.0, 16.0, 64.0, 128.0)  # areas land exactly on 32² and 96²


def random_coco(seed: int, *, n_images: int = 24, n_classes: int = 5, max_gt: int = 8, max_det: int = 30,
                grid: bool = True, many_dets: bool = False, zero_id: bool = False, ignore_flags: bool = False,
                spread: int = 20) -> tuple[dict, list[dict]]:
    """A ground-truth dict and a results list. ``grid``: coordinates on an 8-pixel grid (``spread``
    cells wide; small = crowded) and scores in tenths (many ties in IoU and score); otherwise
    continuous values."""
    rng = np.random.default_rng(seed)
    cat_ids = sorted(rng.choice(np.arange(0, 3 * n_classes), n_classes, replace=False).tolist())
    img_ids = rng.choice(np.arange(0, 10 * n_images), n_images, replace=False).tolist()  # file order != id order
    anns, results = [], []
    ann_id = 0 if zero_id else 1

    def box() -> list[float]:
        if grid:
            return [float(rng.integers(0, spread) * 8), float(rng.integers(0, spread) * 8), float(rng.choice(SIZES)),
                    float(rng.choice(SIZES))]
        return [rng.random() * 200, rng.random() * 200, rng.random() * 120 + 1, rng.random() * 120 + 1]

    for img in img_ids:
        gts = []
        for _ in range(int(rng.integers(0, max_gt + 1)) if rng.random() > 0.15 else 0):  # some images without GT
            b = box()
            area = b[2] * b[3] if rng.random() < 0.5 else float(rng.choice([1024.0, 9216.0, b[2] * b[3] * 0.7,
                                                                            1023.5, 9216.5]))
            ann = {"id": ann_id, "image_id": img, "category_id": int(rng.choice(cat_ids[:-1])),  # last: no GT
                   "bbox": b, "area": area, "iscrowd": int(rng.random() < 0.1)}
            if ignore_flags and rng.random() < 0.2:
                ann["ignore"] = 1
            ann_id += 1
            anns.append(ann)
            gts.append(ann)
        n_det = 130 if many_dets and rng.random() < 0.3 else int(rng.integers(0, max_det + 1))
        for _ in range(n_det):
            if gts and rng.random() < 0.6:
                g = gts[int(rng.integers(len(gts)))]
                b = list(g["bbox"])
                if rng.random() < 0.5:
                    if grid:
                        b[0] += float(rng.integers(-2, 3) * 4)
                        b[1] += float(rng.integers(-2, 3) * 4)
                        b[2] = max(b[2] + float(rng.integers(-1, 2) * 8), 0.0)
                    else:
                        b[0] += rng.normal() * 5
                        b[1] += rng.normal() * 5
                        b[2] *= float(np.exp(rng.normal() * 0.1))
                c = g["category_id"] if rng.random() < 0.85 else int(rng.choice(cat_ids))
            else:
                b, c = box(), int(rng.choice(cat_ids))
            score = float(rng.integers(0, 10) / 10) if grid else float(rng.random())
            results.append({"image_id": img, "category_id": c, "bbox": b, "score": score})
    results = [results[i] for i in rng.permutation(len(results))]
    gt = {"images": [{"id": i} for i in img_ids], "annotations": anns, "categories": [{"id": c} for c in cat_ids]}
    return gt, results


def reference(gt: dict, results: list[dict], *, faster: bool = False, honour_ignore: bool = False):
    """COCOeval (or COCOeval_faster) after evaluate/accumulate/summarize, prints silenced."""
    if faster:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as Eval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Eval
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # faster-coco-eval warns about annotation id 0, which we test on purpose
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        dt = coco.loadRes(copy.deepcopy(results))
        ev = Eval(coco, dt, "bbox", print_function=lambda *a: None) if faster else Eval(coco, dt, "bbox")
        if honour_ignore:  # the coco-fixed oracle: _prepare keeps an explicit ignore flag
            prepare = ev._prepare

            def patched() -> None:
                prepare()
                for anns in ev._gts.values():
                    for a in anns:
                        a["ignore"] = int(bool(a.get("iscrowd", 0)) or bool(gt_ignore.get(a["id"], 0)))

            gt_ignore = {a["id"]: a.get("ignore", 0) for a in gt["annotations"]}
            ev._prepare = patched
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def stats_array(out: dict) -> np.ndarray:
    return np.array([out[name] for name in COCO_STATS])


def assert_same_as_pycocotools(out: dict, ev) -> None:
    np.testing.assert_array_equal(stats_array(out), ev.stats)
    assert np.array_equal(out["precision"], ev.eval["precision"])
    assert np.array_equal(out["recall"], ev.eval["recall"])
    assert np.array_equal(out["scores"], ev.eval["scores"])


def as_tensors(gt: dict, results: list[dict], *, box_format: str = "xywh"):
    """Per-image prediction/target dicts (images in file order, records in file order)."""
    preds, targets = [], []
    for image in gt["images"]:
        i = image["id"]
        anns = [a for a in gt["annotations"] if a["image_id"] == i]
        dets = [r for r in results if r["image_id"] == i]

        def boxes(records: list[dict]) -> torch.Tensor:
            b = torch.tensor([r["bbox"] for r in records], dtype=torch.float64).reshape(-1, 4)
            if box_format == "xyxy":
                b[:, 2:] += b[:, :2]
            return b

        preds.append({"boxes": boxes(dets), "scores": torch.tensor([r["score"] for r in dets], dtype=torch.float64),
                      "labels": torch.tensor([r["category_id"] for r in dets], dtype=torch.int64)})
        targets.append({"boxes": boxes(anns), "labels": torch.tensor([a["category_id"] for a in anns]),
                        "iscrowd": torch.tensor([a["iscrowd"] for a in anns], dtype=torch.bool),
                        "area": torch.tensor([a["area"] for a in anns], dtype=torch.float64),
                        "ignore": torch.tensor([a.get("ignore", 0) for a in anns], dtype=torch.bool),
                        "ids": torch.tensor([a["id"] for a in anns], dtype=torch.int64), "image_id": i})
    return preds, targets


def computed(evaluator: DetectionEvaluator) -> dict:
    return evaluator.compute()


# --------------------------------------------------------------------------------------------
# Constants and pure functions
# --------------------------------------------------------------------------------------------


def test_parameters_are_pycocotools_defaults() -> None:
    from pycocotools.cocoeval import Params

    p = Params(iouType="bbox")
    assert np.array_equal(IOU_THRESHOLDS, p.iouThrs) and np.array_equal(RECALL_THRESHOLDS, p.recThrs)
    assert list(MAX_DETECTIONS) == p.maxDets
    assert [list(r) for r in AREA_RANGES] == p.areaRng


def test_coco_box_iou_is_bit_equal_to_pycocotools() -> None:
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    for grid in (True, False):
        det = rng.integers(0, 6, (40, 4)).astype(float) * 8 if grid else rng.random((40, 4)) * 50
        gt = rng.integers(0, 6, (30, 4)).astype(float) * 8 if grid else rng.random((30, 4)) * 50
        crowd = rng.random(30) < 0.3
        expected = mask_utils.iou(det.tolist(), gt.tolist(), crowd.astype(np.uint8).tolist())
        assert np.array_equal(coco_box_iou(det, gt, crowd), expected)


def test_voc_box_iou_counts_inclusive_pixels() -> None:
    # Pixels 0..9 and 5..14: 5 shared columns of 10 rows, union 150.
    assert voc_box_iou(np.array([[0.0, 0, 9, 9]]), np.array([[5.0, 0, 14, 9]]))[0, 0] == 50 / 150


def test_coco_match_prefers_regular_gt_then_later_gt_on_equal_iou() -> None:
    ious = np.array([[0.8, 0.8, 0.9], [0.8, 0.8, 0.0]])  # GT 2 is ignored
    matched = coco_match(ious, np.array([False, False, True]), np.zeros(3, bool), iou_thresholds=np.array([0.5]))
    # Detection 0 takes the later of the two regular GT with equal IoU, not the ignored one with 0.9.
    assert matched.tolist() == [[1, 0]]


# --------------------------------------------------------------------------------------------
# pycocotools / faster-coco-eval oracles
# --------------------------------------------------------------------------------------------

VARIANTS = {
    "grid-ties": {},
    "continuous": {"grid": False},
    "max-dets-cut": {"many_dets": True, "max_gt": 4},
    "id0-ignore": {"zero_id": True, "ignore_flags": True},
    "crowded": {"n_images": 5, "n_classes": 2, "max_gt": 40, "many_dets": True, "spread": 5},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("seed", range(3))
def test_equals_pycocotools_bit_for_bit(variant: str, seed: int) -> None:
    gt, results = random_coco(seed, **VARIANTS[variant])
    out = evaluate_coco(gt, results).compute()
    assert_same_as_pycocotools(out, reference(gt, results))
    ev = reference(gt, results, faster=True)
    np.testing.assert_allclose(stats_array(out), ev.stats, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["precision"], ev.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["recall"], ev.eval["recall"], rtol=0, atol=1e-12)


def test_equals_pycocotools_on_a_larger_set() -> None:
    gt, results = random_coco(11, n_images=120, n_classes=8, max_det=60, grid=False)
    assert_same_as_pycocotools(evaluate_coco(gt, results).compute(), reference(gt, results))


@pytest.mark.parametrize("buffer", [1 << 16, 40])  # 40: small batches matched in several groups
def test_tensor_updates_equal_json_and_streaming_equals_one_call(buffer: int, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    monkeypatch.setattr(detection.evaluator, "_MATCH_BUFFER", buffer)
    gt, results = random_coco(5)
    expected = evaluate_coco(gt, results).compute()
    preds, targets = as_tensors(gt, results)
    class_ids = [c["id"] for c in gt["categories"]]
    one = DetectionEvaluator(box_format="xywh", class_ids=class_ids)
    one.update(preds, targets)
    streamed = DetectionEvaluator(box_format="xywh", class_ids=class_ids)
    for start in range(0, len(preds), 5):  # k updates, images out of id order
        streamed.update(preds[start:start + 5], targets[start:start + 5])
    half_a, half_b = DetectionEvaluator(box_format="xywh", class_ids=class_ids), DetectionEvaluator(
        box_format="xywh", class_ids=class_ids)
    half_a.update(preds[::2], targets[::2])
    half_b.update(preds[1::2], targets[1::2])
    merged = half_b.merge(half_a)
    assert len(streamed._chunks) + bool(streamed._pending) > (1 if buffer == 40 else 0)
    for ev in (one, streamed, merged):
        out = ev.compute()
        for key in ("precision", "recall", "scores", "confusion_matrix"):
            assert np.array_equal(out[key], expected[key]), key
        assert stats_array(out).tolist() == stats_array(expected).tolist()


def test_xyxy_float32_tensors_on_integer_boxes_equal_pycocotools() -> None:
    gt, results = random_coco(7)  # grid boxes: x2 - x1 recovers w exactly
    preds, targets = as_tensors(gt, results, box_format="xyxy")
    for p in preds:  # float32 boxes; scores stay float64 (tenths are not exact in float32)
        p["boxes"] = p["boxes"].float()
    for t in targets:
        t["boxes"] = t["boxes"].float()
        del t["ids"]
    ev = DetectionEvaluator(class_ids=[c["id"] for c in gt["categories"]])
    ev.update(preds, targets)
    assert_same_as_pycocotools(ev.compute(), reference(gt, results))


# --------------------------------------------------------------------------------------------
# coco-fixed
# --------------------------------------------------------------------------------------------


def test_coco_fixed_honours_ignore_and_annotation_id_zero() -> None:
    for seed in range(3):
        gt, results = random_coco(seed, zero_id=True, ignore_flags=True)
        fixed = evaluate_coco(gt, results, protocol="coco-fixed").compute()
        renumbered = copy.deepcopy(gt)  # no annotation id 0: the id-0 quirk cannot trigger
        for a in renumbered["annotations"]:
            a["id"] += 1
        assert_same_as_pycocotools(fixed, reference(renumbered, results, honour_ignore=True))


def test_pycocotools_quirk_annotation_id_zero_counts_as_unmatched() -> None:
    gt = {"images": [{"id": 1}], "categories": [{"id": 1}],
          "annotations": [{"id": 0, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100,
                           "iscrowd": 0}]}
    results = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]
    quirk = evaluate_coco(gt, results).compute()
    assert_same_as_pycocotools(quirk, reference(gt, results))
    assert quirk["AP"] == 0.0
    # 1 / (1 + np.spacing(1)): the precision formula is kept by coco-fixed
    assert evaluate_coco(gt, results, protocol="coco-fixed").compute()["AP"] == 1 / (1 + np.spacing(1))


# --------------------------------------------------------------------------------------------
# Empty and degenerate inputs
# --------------------------------------------------------------------------------------------


def test_empty_predictions_give_zero_ap_not_a_crash() -> None:
    gt, results = random_coco(3)
    out = evaluate_coco(gt, []).compute()  # pycocotools' loadRes raises IndexError here
    # Reference: one detection of the category without GT, which every number ignores.
    no_gt_cat = gt["categories"][-1]["id"]
    ref = reference(gt, [{"image_id": gt["images"][0]["id"], "category_id": no_gt_cat, "bbox": [0, 0, 1, 1],
                          "score": 0.5}])
    np.testing.assert_array_equal(stats_array(out), ref.stats)
    assert out["AP"] == 0.0 and out["AR100"] == 0.0
    ev = DetectionEvaluator()
    ev.update([{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}],
              [{"boxes": torch.tensor([[0.0, 0, 5, 5]]), "labels": torch.tensor([3]), "image_id": 0}])
    assert ev.compute()["AP"] == 0.0


def test_no_ground_truth_gives_minus_one_and_nothing_at_all_is_defined() -> None:
    ev = DetectionEvaluator()
    ev.update([{"boxes": torch.tensor([[0.0, 0, 5, 5]]), "scores": torch.tensor([0.7]), "labels": torch.tensor([1])}],
              [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "image_id": 4}])
    out = ev.compute()
    assert all(out[name] == -1.0 for name in COCO_STATS)
    assert out["per_class_AP"].tolist() == [-1.0]
    empty = DetectionEvaluator().compute()
    assert empty["AP"] == -1.0 and empty["num_images"] == 0 and empty["precision"].shape == (10, 101, 0, 4, 3)


# --------------------------------------------------------------------------------------------
# Pascal VOC against a slow loop written from the devkit's rules
# --------------------------------------------------------------------------------------------


def voc_devkit_loop(images: list[dict], eleven_point: bool) -> dict[int, float]:
    """Per-class AP following VOCevaldet.m (best GT by `ov > ovmax`, difficult neither hit nor
    missed, a GT taken twice is a false positive) and VOCap.m / the 11-point rule."""
    classes = sorted({c for im in images for c in im["gt_labels"] + im["det_labels"]})
    out = {}
    for c in classes:
        dets = []  # image-id order then file order; a stable sort by -score keeps that for ties
        for im in sorted(images, key=lambda im: im["id"]):
            for b, s, lab in zip(im["det_boxes"], im["det_scores"], im["det_labels"], strict=True):
                if lab == c:
                    dets.append((im, b, s))
        dets.sort(key=lambda d: -d[1 + 1])
        npos = sum(1 for im in images for lab, d in zip(im["gt_labels"], im["difficult"], strict=True)
                   if lab == c and not d)
        taken: dict[tuple[int, int], bool] = {}
        tp, fp = [], []
        for im, b, _ in dets:
            ovmax, jmax = -math.inf, -1
            for j, (g, lab) in enumerate(zip(im["gt_boxes"], im["gt_labels"], strict=True)):
                if lab != c:
                    continue
                iw = min(b[2], g[2]) - max(b[0], g[0]) + 1
                ih = min(b[3], g[3]) - max(b[1], g[1]) + 1
                if iw > 0 and ih > 0:
                    ua = (b[2] - b[0] + 1) * (b[3] - b[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - iw * ih
                    ov = iw * ih / ua
                    if ov > ovmax:
                        ovmax, jmax = ov, j
            hit = miss = 0
            if ovmax >= 0.5:
                if not im["difficult"][jmax]:
                    if not taken.get((im["id"], jmax)):
                        hit = 1
                        taken[(im["id"], jmax)] = True
                    else:
                        miss = 1
            else:
                miss = 1
            tp.append(hit)
            fp.append(miss)
        if npos == 0:
            continue
        ctp, cfp, rec, prec = 0, 0, [], []
        for t, f in zip(tp, fp, strict=True):
            ctp, cfp = ctp + t, cfp + f
            rec.append(ctp / npos)
            prec.append(ctp / max(ctp + cfp, np.finfo(np.float64).eps))
        if eleven_point:
            ap = 0.0
            for t in np.arange(0.0, 1.1, 0.1):
                ps = [p for r, p in zip(rec, prec, strict=True) if r >= t]
                ap += (max(ps) if ps else 0.0) / 11
        else:
            mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
            for i in range(len(mpre) - 2, -1, -1):
                mpre[i] = max(mpre[i], mpre[i + 1])
            ap = sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])
        out[c] = ap
    return out


def random_voc(seed: int, n_images: int = 25) -> list[dict]:
    rng = np.random.default_rng(seed)
    images = []
    for i in rng.permutation(n_images).tolist():
        g = int(rng.integers(0, 6))
        xy = rng.integers(0, 40, (g, 2)) * 4
        gt_boxes = np.concatenate([xy, xy + rng.integers(2, 12, (g, 2)) * 4], axis=1).astype(float)
        gt_labels = rng.integers(0, 4, g).tolist()
        dets, det_labels = [], []
        for _ in range(int(rng.integers(0, 12))):
            if g and rng.random() < 0.6:
                j = int(rng.integers(g))
                dets.append(gt_boxes[j] + rng.integers(-2, 3, 4) * 2)
                det_labels.append(gt_labels[j] if rng.random() < 0.9 else int(rng.integers(0, 5)))
            else:
                x, y = rng.integers(0, 40, 2) * 4
                dets.append(np.array([x, y, x + rng.integers(2, 12) * 4, y + rng.integers(2, 12) * 4], float))
                det_labels.append(int(rng.integers(0, 5)))
        images.append({"id": i, "gt_boxes": gt_boxes.tolist(), "gt_labels": gt_labels,
                       "difficult": (rng.random(g) < 0.15).tolist(), "det_boxes": [d.tolist() for d in dets],
                       "det_scores": (rng.integers(0, 8, len(dets)) / 8).tolist(), "det_labels": det_labels})
    return images


@pytest.mark.parametrize("protocol", ["voc07", "voc12"])
def test_voc_equals_devkit_loop(protocol: str) -> None:
    for seed in range(4):
        images = random_voc(seed)
        ev = DetectionEvaluator(protocol=protocol)
        ev.update([{"boxes": torch.tensor(im["det_boxes"]).reshape(-1, 4), "scores": torch.tensor(im["det_scores"]),
                    "labels": torch.tensor(im["det_labels"], dtype=torch.int64)} for im in images],
                  [{"boxes": torch.tensor(im["gt_boxes"]).reshape(-1, 4),
                    "labels": torch.tensor(im["gt_labels"], dtype=torch.int64),
                    "difficult": torch.tensor(im["difficult"], dtype=torch.bool), "image_id": im["id"]}
                   for im in images])
        out = ev.compute()
        expected = voc_devkit_loop(images, eleven_point=protocol == "voc07")
        ours = dict(zip(out["class_ids"], out["per_class_AP"].tolist(), strict=True))
        assert {c for c, ap in ours.items() if ap > -1} == set(expected)
        for c, ap in expected.items():
            assert ours[c] == pytest.approx(ap, abs=1e-12)
        assert out["AP50"] == pytest.approx(np.mean(list(expected.values())), abs=1e-12)


# --------------------------------------------------------------------------------------------
# Threshold metrics and the confusion matrix
# --------------------------------------------------------------------------------------------


def test_confusion_matrix_and_threshold_metrics_on_a_hand_example() -> None:
    ev = DetectionEvaluator(score_threshold=0.5)
    gt_boxes = torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30], [40.0, 40, 50, 50], [60.0, 60, 70, 70]])
    ev.update([{"boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 31], [80.0, 80, 90, 90], [40.0, 40, 50, 50],
                                       [61.0, 60, 70, 70]]),
                "scores": torch.tensor([0.9, 0.8, 0.7, 0.3, 0.6]), "labels": torch.tensor([1, 2, 1, 1, 3])}],
              [{"boxes": gt_boxes, "labels": torch.tensor([1, 1, 2, 3]),
                "iscrowd": torch.tensor([False, False, False, True]), "image_id": 0}])
    out = ev.compute()
    assert out["class_ids"] == [1, 2, 3] and out["confusion_labels"][-1] == "background"
    # true 1 -> pred 1 (box 0); true 1 -> pred 2 (box 1); true 2 missed (its detection scores 0.3);
    # the crowd GT is ignored and so is the detection on it; the detection at 80,80 is background.
    expected = np.array([[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]])
    assert np.array_equal(out["confusion_matrix"], expected)
    at = out["at_threshold"]
    assert at["tp"].tolist() == [1, 0, 0] and at["fp"].tolist() == [1, 1, 0] and at["fn"].tolist() == [1, 1, 0]
    assert at["precision"].tolist() == [0.5, 0.0, 0.0] and at["recall"].tolist() == [0.5, 0.0, 0.0]
    assert at["precision_micro"] == pytest.approx(1 / 3) and at["recall_micro"] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------------
# Bootstrap, comparison, weights
# --------------------------------------------------------------------------------------------


def test_image_weights_equal_duplicated_images() -> None:
    gt, results = random_coco(9, grid=False)  # no ties: copies are adjacent in any order
    ev = evaluate_coco(gt, results)
    weights = np.random.default_rng(0).integers(0, 3, ev.image_ids.size)
    dup = {"images": [], "annotations": [], "categories": gt["categories"]}
    dup_results = []
    next_id = 1
    for image_id, w in zip(ev.image_ids.tolist(), weights.tolist(), strict=True):
        for copy_index in range(w):
            new_id = 4 * image_id + copy_index  # copies stay next to each other in image-id order
            dup["images"].append({"id": new_id})
            for a in gt["annotations"]:
                if a["image_id"] == image_id:
                    dup["annotations"].append({**a, "id": next_id, "image_id": new_id})
                    next_id += 1
            dup_results += [{**r, "image_id": new_id} for r in results if r["image_id"] == image_id]
    np.testing.assert_array_equal(stats_array(ev.stats(image_weights=weights)), reference(dup, dup_results).stats)
    assert ev.stats(image_weights=np.ones(ev.image_ids.size, int)) == {n: ev.compute()[n] for n in COCO_STATS}


def _tied_classes(protocol: str, n_classes: int = 100, per_class: int = 10) -> DetectionEvaluator:
    """Many classes of few objects, every class's detections at one tied score, hits and misses
    alternating in image-id order (one GT per image)."""
    ev = DetectionEvaluator(protocol=protocol)
    preds, targets = [], []
    for c in range(1, n_classes + 1):
        for j in range(per_class):
            image = (c - 1) * per_class + j
            gt = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
            box = gt.clone() if j % 2 == 0 else torch.tensor([[60.0, 60.0, 90.0, 90.0]])
            preds.append({"image_id": image, "boxes": box, "scores": torch.tensor([0.5]), "labels": torch.tensor([c])})
            targets.append({"image_id": image, "boxes": gt, "labels": torch.tensor([c])})
    ev.update(preds, targets)
    return ev


@pytest.mark.parametrize("protocol", ["pycocotools", "voc12"])
def test_tied_scores_keep_the_point_inside_its_interval(protocol: str) -> None:
    """Issue 18: with tied scores over many small classes, every resample's AP lay above the
    estimate and the percentile interval excluded its own point; the interval is re-centred."""
    from visionbench.metrics.detection.bootstrap import _resampled_stats
    from visionbench.metrics.stats import percentile_interval

    ev = _tied_classes(protocol)
    point = ev.stats()["AP50"]
    resampled = torch.tensor([s[0]["AP50"] for s in _resampled_stats([ev], 60, 0)], dtype=torch.float64)
    plain_low, _ = percentile_interval(resampled)
    assert plain_low > point  # the defect: the plain percentile interval lies above the estimate
    low, high = detection_intervals(ev, resamples=60, seed=0)["AP50"]
    assert low < point < high
    # Same spread as the resamples (only moved), and the same draws give the same interval.
    width = float(torch.quantile(resampled, 0.975) - torch.quantile(resampled, 0.025))
    assert high - low == pytest.approx(width, rel=1e-12)
    assert detection_intervals(ev, resamples=60, seed=0)["AP50"] == (low, high)


def test_recentred_interval_cases() -> None:
    from visionbench.metrics.detection.bootstrap import recentred_interval
    from visionbench.metrics.stats import percentile_interval

    values = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, math.nan], dtype=torch.float64)
    assert recentred_interval(values, 0.3) == pytest.approx(percentile_interval(values))  # median = point
    low, high = recentred_interval(values, 0.0)
    assert (low, high) == pytest.approx((percentile_interval(values)[0] - 0.3, percentile_interval(values)[1] - 0.3))
    assert all(math.isnan(v) for v in recentred_interval(torch.tensor([math.nan]), 0.5))
    assert all(math.isnan(v) for v in recentred_interval(values, math.nan))


def test_intervals_and_paired_comparison() -> None:
    gt, results = random_coco(4, grid=False)
    a = evaluate_coco(gt, results)
    intervals = detection_intervals(a, resamples=30, seed=1)
    assert set(intervals) == set(COCO_STATS)
    low, high = intervals["AP"]
    assert low <= a.compute()["AP"] <= high and intervals == detection_intervals(a, resamples=30, seed=1)
    worse = [{**r, "score": r["score"] * 0.5} if r["category_id"] % 2 else r for r in results]
    same = compare_detection(a, evaluate_coco(gt, results), resamples=20)
    assert same["AP"].diff == 0.0 and same["AP"].p_value == 1.0
    diff = compare_detection(a, evaluate_coco(gt, worse), resamples=20)
    assert diff["AP"].value_a == a.compute()["AP"] and diff["AP"].diff == diff["AP"].value_b - diff["AP"].value_a
    voc = evaluate_coco(gt, results, protocol="voc12")
    low, high = detection_intervals(voc, resamples=30)["AP50"]
    assert low <= voc.compute()["AP50"] <= high


# --------------------------------------------------------------------------------------------
# DDP: two gloo processes, each with half the images
# --------------------------------------------------------------------------------------------


def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)  # forked: no OpenMP pool inherited from the parent is touched
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    gt, results = random_coco(2)
    preds, targets = as_tensors(gt, results)
    ev = DetectionEvaluator(box_format="xywh")
    ev.update(preds[rank::2], targets[rank::2])
    out = ev.sync().compute()
    np.save(Path(out_dir) / f"precision{rank}.npy", out["precision"])
    Path(out_dir, f"stats{rank}.json").write_text(json.dumps([out[n] for n in COCO_STATS]))
    dist.destroy_process_group()


def test_sync_over_two_processes_equals_one_process(tmp_path: Path) -> None:
    # Forked, not spawned: a spawned process imports torch and this module again (seconds each).
    mp.start_processes(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="fork")
    gt, results = random_coco(2)
    preds, targets = as_tensors(gt, results)
    ev = DetectionEvaluator(box_format="xywh")
    ev.update(preds, targets)
    expected = ev.compute()
    for rank in range(2):
        assert np.array_equal(np.load(tmp_path / f"precision{rank}.npy"), expected["precision"])
        assert json.loads((tmp_path / f"stats{rank}.json").read_text()) == [expected[n] for n in COCO_STATS]


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def one_image(boxes: list[list[float]], *, labels: list[int] | None = None, image_id: object = 1):
    b = torch.tensor(boxes, dtype=torch.float32)
    lab = torch.tensor(labels if labels is not None else [1] * len(boxes))
    return ([{"boxes": b, "scores": torch.full((len(boxes),), 0.5), "labels": lab}],
            [{"boxes": torch.tensor([[0.0, 0, 4, 4]]), "labels": torch.tensor([1]), "image_id": image_id}])


@pytest.mark.parametrize(("boxes", "message"), [
    ([[5.0, 0, 1, 4]], "x2 >= x1"),
    ([[0.0, float("nan"), 1, 4]], "finite"),
])
def test_bad_boxes_name_the_image_and_box(boxes: list[list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        DetectionEvaluator().update(*one_image(boxes, image_id=42))
    assert "image_id 42" in str(info.value)


def test_bad_tensor_inputs() -> None:
    ev = DetectionEvaluator(class_ids=[1, 2])
    with pytest.raises(ValueError, match="one of class_ids"):
        ev.update(*one_image([[0.0, 0, 1, 1]], labels=[7]))
    preds, targets = one_image([[0.0, 0, 1, 1]])
    preds[0]["labels"] = preds[0]["labels"].float()
    with pytest.raises(TypeError, match="integer"):
        ev.update(preds, targets)
    with pytest.raises(TypeError, match="image_id must be an integer"):
        ev.update(*one_image([[0.0, 0, 1, 1]], image_id="a.jpg"))
    preds, targets = one_image([[0.0, 0, 1, 1]])
    del targets[0]["image_id"]
    with pytest.raises(ValueError, match="image_id"):
        ev.update(preds, targets)
    ev.update(*one_image([[0.0, 0, 1, 1]]))
    ev.update(*one_image([[0.0, 0, 1, 1]]))  # the same image_id again
    with pytest.raises(ValueError, match="unique across updates"):
        ev.compute()
    with pytest.raises(ValueError, match="protocol must be one of"):
        DetectionEvaluator(protocol="coco")  # type: ignore[arg-type]


def write(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_bad_json_files_name_the_file_and_record(tmp_path: Path) -> None:
    gt, results = random_coco(1, n_images=4)
    with pytest.raises(ValueError, match="empty file"):
        load_coco_ground_truth(write(tmp_path, "empty.json", ""))
    truncated = write(tmp_path, "cut.json", json.dumps(gt)[:-20])
    with pytest.raises(ValueError, match=r"cut\.json must be valid JSON"):
        load_coco_ground_truth(truncated)
    with pytest.raises(ValueError, match="must hold a JSON object"):
        load_coco_ground_truth(write(tmp_path, "list.json", results))
    broken = copy.deepcopy(gt)
    broken["annotations"][2]["bbox"] = [1, 2, -3, 4]
    with pytest.raises(ValueError, match=r"annotations\[2\] \(id \d+\)\['bbox'\] must be finite with w >= 0"):
        load_coco_ground_truth(write(tmp_path, "gt.json", broken))
    broken = copy.deepcopy(gt)
    del broken["annotations"][1]["image_id"]
    with pytest.raises(ValueError, match=r"annotations\[1\].*'image_id'\] must be present"):
        load_coco_ground_truth(broken)
    broken = copy.deepcopy(gt)
    broken["annotations"][0]["category_id"] = 999
    with pytest.raises(ValueError, match="must be the id of an entry of 'categories'"):
        load_coco_ground_truth(broken)
    broken = copy.deepcopy(gt)
    broken["annotations"][1]["id"] = broken["annotations"][0]["id"]
    with pytest.raises(ValueError, match=r"annotations\[1\].*must be unique"):
        load_coco_ground_truth(broken)
    truth = load_coco_ground_truth(write(tmp_path, "good.json", gt))
    for index, change, message in [
        (3, {"image_id": 123456}, r"results\[3\]\['image_id'\] must be an image id of .*good\.json"),
        (0, {"category_id": 999}, r"results\[0\]\['category_id'\] must be a category id"),
        (1, {"score": float("nan")}, r"results\[1\]\['score'\] must be a finite number"),
        (2, {"bbox": [1, 2, 3]}, r"results\[2\]\['bbox'\] must be a list of 4 numbers"),
    ]:
        bad = copy.deepcopy(results)
        bad[index].update(change)
        with pytest.raises(ValueError, match=message):
            load_coco_results(write(tmp_path, "res.json", bad) if index != 1 else bad, truth)
    with pytest.raises(ValueError, match="must hold a JSON list"):
        load_coco_results(write(tmp_path, "res.json", gt), truth)
    assert evaluate_coco(truth, write(tmp_path, "none.json", [])).compute()["AP"] == 0.0
