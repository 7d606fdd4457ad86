"""Input checks and :class:`DetectionEvaluator`, the streaming accumulator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from visionbench.metrics.detection.accumulate import (
    _accumulate_coco,
    _at_threshold,
    _Chunk,
    _confusion_matrix,
    _gt_totals,
    _match_batch,
    _prepare,
    _Prepared,
    _voc_curves,
)
from visionbench.metrics.detection.protocol import (
    AREA_NAMES,
    IOU_THRESHOLDS,
    MAX_DETECTIONS,
    PROTOCOLS,
    RECALL_THRESHOLDS,
    VOC_IOU_THRESHOLD,
    BoxFormat,
    Protocol,
    _mean_valid,
    _summarize,
    coco_summarize,
)

if TYPE_CHECKING:
    from visionbench.metrics.detection.coco_json import CocoGroundTruth, CocoResults

# update() validates each batch at once but matches batches together once this many images + boxes
# wait, so small batches do not each pay the fixed cost of a vectorised match (memory stays bounded).
_MATCH_BUFFER = 1 << 16

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

