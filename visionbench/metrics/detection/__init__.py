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

The package's modules: :mod:`.protocol` (constants and pure functions), :mod:`.accumulate`
(matching and accumulation on flat arrays), :mod:`.evaluator` (input checks and the evaluator),
:mod:`.bootstrap` (intervals and the paired comparison), :mod:`.coco_json` (COCO JSON loaders).
"""

from visionbench.metrics.detection.bootstrap import compare_detection, detection_intervals
from visionbench.metrics.detection.coco_json import (
    CocoGroundTruth,
    CocoResults,
    evaluate_coco,
    load_coco_ground_truth,
    load_coco_results,
)
from visionbench.metrics.detection.evaluator import DetectionEvaluator
from visionbench.metrics.detection.protocol import (
    AREA_NAMES,
    AREA_RANGES,
    COCO_STATS,
    CONFUSION_IOU_THRESHOLD,
    HIGHER_IS_BETTER,
    IOU_THRESHOLDS,
    MAX_DETECTIONS,
    PROTOCOLS,
    RECALL_THRESHOLDS,
    VOC07_RECALL_POINTS,
    VOC_IOU_THRESHOLD,
    BoxFormat,
    Protocol,
    coco_box_iou,
    coco_match,
    coco_summarize,
    voc_average_precision,
    voc_box_iou,
)

__all__ = [
    "AREA_NAMES", "AREA_RANGES", "COCO_STATS", "CONFUSION_IOU_THRESHOLD", "HIGHER_IS_BETTER", "IOU_THRESHOLDS",
    "MAX_DETECTIONS", "PROTOCOLS", "RECALL_THRESHOLDS", "VOC07_RECALL_POINTS", "VOC_IOU_THRESHOLD", "BoxFormat",
    "CocoGroundTruth", "CocoResults", "DetectionEvaluator", "Protocol", "coco_box_iou", "coco_match",
    "coco_summarize", "compare_detection", "detection_intervals", "evaluate_coco", "load_coco_ground_truth",
    "load_coco_results", "voc_average_precision", "voc_box_iou",
]
