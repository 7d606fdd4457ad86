"""Object detection in the training loop: image + boxes batches, the detector's own losses, COCO AP
on the validation split while training, and the test split's 12 COCO numbers with intervals,
COCO results JSON and images with true and predicted boxes drawn."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.ops import box_iou

from visionbench.config import DetectConfig
from visionbench.data.task_transforms import (
    DetectionBatch,
    DetectionBatches,
    detection_transform,
    rescale_boxes,
    resolve_task_augment,
)
from visionbench.engine import rundir
from visionbench.engine.batches import loader_batches
from visionbench.engine.dense import EXAMPLE_SIDE, fit_example, load_task_data, parameter_groups, sample_weights
from visionbench.engine.distributed import gather_to_main
from visionbench.engine.inference_spec import category_ids
from visionbench.engine.loaders import DataBundle, eval_loader
from visionbench.engine.results import finish_test
from visionbench.engine.runtime import Runtime, autocast_dtype
from visionbench.engine.task import TaskHooks

PREDICTIONS_JSON = "predictions.json"  # COCO results of the test split (the dataset's own category ids)
GROUND_TRUTH_JSON = rundir.GROUND_TRUTH  # the test split's boxes as COCO instances, to evaluate with any tool
WORST_EXAMPLES = 24


def build_data(config: DetectConfig) -> DataBundle:
    """The detection splits as batch datasets with the augmentation preset."""
    data = load_task_data(config)
    resize = (config.image_size, config.image_size) if config.image_size else None
    augment = resolve_task_augment(config.augment)
    train_transform = detection_transform(augment, train=True, image_size=resize, crop_size=data.image_size)
    eval_transform = detection_transform(augment, train=False, image_size=resize)
    return DataBundle(
        data=data,
        train=DetectionBatches(data.train, train_transform, seed=config.seed, train=True),
        val=DetectionBatches(data.val, eval_transform, seed=config.seed, train=False),
        test=DetectionBatches(data.test, eval_transform, seed=config.seed, train=False),
        image_size=resize or data.image_size, augment=augment,
    )


def build_loss(config: DetectConfig, bundle: DataBundle) -> None:
    """``None``: detectors compute their own losses from the targets."""
    return None


def _to_device(batch: DetectionBatch, device: torch.device) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    images = [image.to(device, non_blocking=True) for image in batch.images]
    targets = [{k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in t.items()}
               for t in batch.targets]
    return images, targets


def batch_loss(trainer: Any, batch: DetectionBatch, device: torch.device) -> tuple[torch.Tensor, int]:
    """The sum of the detector's losses on a batch, and its image count."""
    images, targets = _to_device(batch, device)
    with torch.autocast(device.type, dtype=trainer.autocast_dtype, enabled=trainer.autocast_dtype is not None):
        losses = trainer.model(images, targets)
    return sum(value.float() for value in losses.values()), len(images)


@torch.no_grad()
def predict_batches(model: nn.Module, loader: Any, runtime: Runtime, amp_dtype: torch.dtype | None
                    ) -> list[tuple[int, dict[str, torch.Tensor], dict[str, Any]]]:
    """``(index, prediction, target)`` of every image of this rank's shard, on the CPU, the
    predicted boxes in the stored image's pixels."""
    was_training = model.training
    model.eval()
    out = []
    device = runtime.device
    with loader_batches(loader) as batches:
        for batch in batches:
            images, _ = _to_device(batch, device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                predictions = model(images)
            for index, image, prediction, target in zip(batch.indices, images, predictions, batch.targets, strict=True):
                plain = {k: v.detach().float().cpu() if k != "labels" else v.detach().cpu() for k, v in prediction.items()}
                # Resized for the model: boxes back onto the stored image, where the ground truth is.
                plain["boxes"] = rescale_boxes(plain["boxes"], tuple(image.shape[-2:]), target["image_size"])
                out.append((index, plain, target))
    model.train(was_training)
    return out


def _evaluator(num_classes: int, *, protocol: str = "pycocotools", score_threshold: float = 0.5) -> Any:
    from visionbench.metrics.detection import DetectionEvaluator

    return DetectionEvaluator(protocol=protocol, class_ids=list(range(num_classes)),  # type: ignore[arg-type]
                              score_threshold=score_threshold)


def validate(model: nn.Module, loader: Any, trainer: Any, runtime: Runtime, bundle: DataBundle) -> dict[str, float]:
    """``val_AP50`` and ``val_AP`` (pycocotools protocol) of ``model`` on the validation split."""
    outputs = predict_batches(model, loader, runtime, trainer.autocast_dtype)
    evaluator = _evaluator(bundle.data.num_classes)
    if outputs:
        evaluator.update([p for _, p, _ in outputs], [t for _, _, t in outputs])
    evaluator.sync()
    if evaluator.image_ids.size == 0:
        return {"val_AP50": math.nan, "val_AP": math.nan}
    stats = evaluator.stats()
    return {name: (math.nan if stats[key] == -1 else float(stats[key])) for name, key in
            (("val_AP50", "AP50"), ("val_AP", "AP"))}


def evaluate_and_write(
    model: nn.Module, config: DetectConfig, bundle: DataBundle, run_dir: Path, runtime: Runtime, log: rundir.RunLog
) -> dict[str, Any]:
    """The test split's COCO metrics (``config.protocol``), COCO results and ground-truth JSON,
    and the worst images drawn, written to ``run_dir`` by rank 0."""
    from visionbench.engine.file_evaluation import detection_metrics

    classes = list(bundle.data.classes)
    local = predict_batches(model, eval_loader(bundle.test, config, runtime), runtime,
                            autocast_dtype(config.amp, runtime.device))
    parts = gather_to_main(local, runtime.dist)
    if parts is None:  # not rank 0: the report is computed once, there, and broadcast
        return finish_test(None, None, run_dir, runtime, log)
    outputs = sorted((item for part in parts for item in part), key=lambda o: o[0])
    evaluator = _evaluator(len(classes), protocol=config.protocol, score_threshold=config.score_threshold)
    if outputs:
        evaluator.update([p for _, p, _ in outputs], [t for _, _, t in outputs])
    report = detection_metrics(evaluator, dict(enumerate(classes)), category_ids=category_ids(bundle.data),
                               resamples=config.resamples, seed=config.seed)
    report["split"] = runtime.eval_split
    report["score_threshold"] = config.score_threshold

    def write(run_dir: Path) -> None:
        write_detection_outputs(run_dir, outputs, bundle, classes)
        write_worst_detections(run_dir / rundir.EXAMPLES, outputs, bundle, classes, config.score_threshold)

    return finish_test(report, write, run_dir, runtime, log)


def write_detection_outputs(run_dir: Path, outputs: list[tuple[int, dict[str, torch.Tensor], dict[str, Any]]],
                            bundle: DataBundle, classes: list[str]) -> None:
    """``predictions.json`` (COCO results) and ``ground_truth.json`` (COCO instances) of the test
    split: image id = position in the split, category ids the dataset's own (:func:`category_ids`,
    as ``metrics.json`` and the report show them), so that ``visionbench evaluate --task detect
    --gt ground_truth.json --pred predictions.json`` (or pycocotools) reproduces the run's numbers."""
    from visionbench.data.detection_formats import write_coco_results

    ids_of = category_ids(bundle.data)
    write_coco_results([dict(p, image_id=i) for i, p, _ in outputs], run_dir / PREDICTIONS_JSON, category_ids=ids_of)
    ids = bundle.data.test.ids
    images, annotations = [], []
    for index, _, target in outputs:
        height, width = target["image_size"]
        images.append({"id": index, "file_name": str(ids[index]), "height": height, "width": width})
        boxes = target["boxes"].double()
        areas = target.get("area", (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        crowd = target.get("iscrowd", torch.zeros(len(boxes), dtype=torch.bool))
        difficult = target.get("difficult", torch.zeros(len(boxes), dtype=torch.bool))
        for box, label, area, is_crowd, is_difficult in zip(boxes.tolist(), target["labels"].tolist(), areas.tolist(),
                                                            crowd.tolist(), difficult.tolist(), strict=True):
            x1, y1, x2, y2 = box
            row = {"id": len(annotations) + 1, "image_id": index, "category_id": ids_of[int(label)],
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(area), "iscrowd": int(is_crowd)}
            if is_difficult:  # VOC's difficult boxes: ignored by coco-fixed and VOC (pycocotools reads no 'ignore')
                row["ignore"] = 1
            annotations.append(row)
    categories = [{"id": ids_of[k], "name": name} for k, name in enumerate(classes)]
    text = json.dumps({"images": images, "annotations": annotations, "categories": categories})
    (run_dir / GROUND_TRUTH_JSON).write_text(text, encoding="utf-8")


def image_errors(prediction: dict[str, torch.Tensor], target: dict[str, Any], score_threshold: float,
                 iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """``(true positives, false positives, false negatives)`` of one image: detections scoring
    at least ``score_threshold``, greedily matched in score order to unmatched true boxes of
    their class at IoU ``>= iou_threshold`` (crowd boxes neither matched nor missed)."""
    keep = prediction["scores"] >= score_threshold
    boxes, labels = prediction["boxes"][keep], prediction["labels"][keep]
    order = torch.argsort(prediction["scores"][keep], descending=True, stable=True)
    crowd = target.get("iscrowd", torch.zeros(len(target["labels"]), dtype=torch.bool)).bool()
    gt_boxes, gt_labels = target["boxes"][~crowd].float(), target["labels"][~crowd]
    matched = torch.zeros(len(gt_boxes), dtype=torch.bool)
    ious = box_iou(boxes.float(), gt_boxes) if len(boxes) and len(gt_boxes) else torch.zeros(len(boxes), len(gt_boxes))
    tp = 0
    for d in order.tolist():
        candidates = (~matched) & (gt_labels == labels[d]) & (ious[d] >= iou_threshold)
        if candidates.any():
            best = torch.where(candidates, ious[d], torch.tensor(-1.0)).argmax()
            matched[best] = True
            tp += 1
    return tp, len(boxes) - tp, len(gt_boxes) - tp


LABEL_CHARACTERS = 10  # class names on the drawn examples are cut to this many characters


def _short(text: str, limit: int = LABEL_CHARACTERS) -> str:
    """``text`` cut to ``limit`` characters (plain ASCII cut: the default font lacks "…")."""
    return text[:limit]


def place_labels(boxes: torch.Tensor, texts: list[str], taken: list[tuple[int, int, int, int]],
                 *, width: int = 1) -> list[str | None]:
    """Each box's label, or ``None`` where the label would overlap one already placed.

    Labels sit in each box's top-left corner, as ``draw_bounding_boxes`` puts them (Pillow's
    default font, a 1 px background margin); their rectangles are measured with that font. Give the
    boxes most worth naming first; ``taken`` (rectangles ``(left, top, right, bottom)``) is
    extended with the labels kept, so several calls share one image without overlaps.
    """
    from PIL import ImageFont

    font = ImageFont.load_default()
    margin = width + 1
    kept: list[str | None] = []
    for box, text in zip(boxes.tolist(), texts, strict=True):
        x, y = int(box[0]) + margin, int(box[1]) + margin
        left, top, right, bottom = font.getbbox(text)
        rect = (x + int(left) - 1, y + int(top) - 1, x + int(right) + 1, y + int(bottom) + 1)
        if any(rect[0] < r[2] and r[0] < rect[2] and rect[1] < r[3] and r[1] < rect[3] for r in taken):
            kept.append(None)
        else:
            taken.append(rect)
            kept.append(text)
    return kept


def draw_errors(image: torch.Tensor, prediction: dict[str, torch.Tensor], target: dict[str, Any], classes: list[str],
                score_threshold: float) -> torch.Tensor:
    """``image`` at the report's tile size with true boxes (green) and predictions scoring at least
    ``score_threshold`` (red), drawn after resizing so the labels stay readable; a label that would
    cover another is left out (predictions by score first, then true boxes)."""
    from torchvision.transforms.v2 import functional as tvf
    from torchvision.utils import draw_bounding_boxes

    size = tuple(image.shape[-2:])
    image = tvf.resize(image, [EXAMPLE_SIDE, EXAMPLE_SIDE], antialias=True) if size != (EXAMPLE_SIDE,) * 2 else image
    keep = prediction["scores"] >= score_threshold
    order = torch.argsort(prediction["scores"][keep], descending=True, stable=True)
    pred_boxes = rescale_boxes(prediction["boxes"][keep][order].float(), size, (EXAMPLE_SIDE, EXAMPLE_SIDE))
    pred_texts = [f"{_short(classes[int(c)])} {float(s):.2f}" for c, s in
                  zip(prediction["labels"][keep][order], prediction["scores"][keep][order], strict=True)]
    true_boxes = rescale_boxes(target["boxes"].float(), size, (EXAMPLE_SIDE, EXAMPLE_SIDE))
    taken: list[tuple[int, int, int, int]] = []
    pred_labels = place_labels(pred_boxes, pred_texts, taken)
    true_labels = place_labels(true_boxes, [_short(classes[int(c)]) for c in target["labels"]], taken)
    if len(true_boxes):
        image = draw_bounding_boxes(image, true_boxes, true_labels, colors="lime", width=1,  # type: ignore[arg-type]
                                    fill_labels=True, label_colors="black", label_background_colors="lime")
    if len(pred_boxes):
        image = draw_bounding_boxes(image, pred_boxes, pred_labels, colors="red", width=1,  # type: ignore[arg-type]
                                    fill_labels=True, label_colors="white", label_background_colors="red")
    return image


def write_worst_detections(path: Path, outputs: list[tuple[int, dict[str, torch.Tensor], dict[str, Any]]],
                           bundle: DataBundle, classes: list[str], score_threshold: float,
                           *, count: int = WORST_EXAMPLES) -> None:
    """The test images with the most errors (false positives + false negatives at IoU 0.5 and
    ``score_threshold``), drawn by :func:`draw_errors`, saved to ``examples.npz`` (``images``
    uint8 ``[M, 3, H, W]``, ``ids``, ``captions``, ``description``)."""
    errors = [(image_errors(p, t, score_threshold), i, p, t) for i, p, t in outputs]
    errors.sort(key=lambda e: (-(e[0][1] + e[0][2]), e[1]))  # most errors first, then split order
    drawn, captions, ids = [], [], []
    for (tp, fp, fn), index, prediction, target in errors[:count]:
        image, _ = bundle.test.base[index]
        drawn.append(fit_example(draw_errors(image.as_subclass(torch.Tensor), prediction, target, classes,
                                             score_threshold)))
        captions.append(f"TP {tp}  FP {fp}  FN {fn}")
        ids.append(str(bundle.data.test.ids[index]))
    np.savez(path, images=np.stack(drawn) if drawn else np.zeros((0, 3, 1, 1), dtype=np.uint8),
             ids=np.array(ids, dtype=str), captions=np.array(captions, dtype=str),
             description=np.array(f"The test images with the most errors at IoU 0.5 and score >= {score_threshold}: "
                                  "true boxes green, predictions red (class, score); a label that would cover "
                                  "another is left out."))


HOOKS = TaskHooks(
    build_data=build_data, build_loss=build_loss, parameter_groups=parameter_groups,
    sample_weights=sample_weights, batch_loss=batch_loss, validate=validate, evaluate_and_write=evaluate_and_write,
)
