"""Semantic segmentation in the training loop: image + mask batches, pixel losses, dataset-level
mIoU on the validation split while training, and the test split's metrics with intervals,
colour-coded predicted mask PNGs and the worst images with true and predicted masks overlaid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from visionbench.config import SegmentConfig
from visionbench.data.task_transforms import (
    SegmentationBatch,
    SegmentationBatches,
    resolve_task_augment,
    segmentation_transform,
)
from visionbench.data.transforms import normalization_stats
from visionbench.engine import rundir
from visionbench.engine.batches import loader_batches
from visionbench.engine.dense import EXAMPLE_SIDE, load_task_data, parameter_groups, sample_weights
from visionbench.engine.distributed import gather_objects, gather_to_main
from visionbench.engine.loaders import DataBundle, eval_loader
from visionbench.engine.masks import colour_mask, write_mask_pngs
from visionbench.engine.results import finish_test
from visionbench.engine.runtime import Runtime, autocast_dtype
from visionbench.engine.task import TaskHooks
from visionbench.losses import create_segmentation_loss

MASKS_DIR = "masks"  # predicted test masks, one palette PNG per image (palette index = class)
PER_IMAGE_CONFUSION = "per_image_confusion.npz"  # ids and int64 [N, K, K] matrices: what `compare` resamples
WORST_EXAMPLES = 16


def build_data(config: SegmentConfig) -> DataBundle:
    """The segmentation splits as batch datasets with the augmentation preset and normalisation."""
    data = load_task_data(config)
    resize = (config.image_size, config.image_size) if config.image_size else None
    augment = resolve_task_augment(config.augment)
    # Measured on in-memory training images (shapes), else ImageNet's statistics.
    mean, std = normalization_stats(config.data.partition(":")[0], data.train, data.in_channels)
    common = {"mean": mean, "std": std, "seed": config.seed}
    train_transform = segmentation_transform(augment, train=True, image_size=resize, crop_size=data.image_size,
                                             ignore_index=config.ignore_index)
    eval_transform = segmentation_transform(augment, train=False, image_size=resize, ignore_index=config.ignore_index)
    return DataBundle(
        data=data,
        train=SegmentationBatches(data.train, train_transform, **common),
        val=SegmentationBatches(data.val, eval_transform, keep_masks=True, **common),
        test=SegmentationBatches(data.test, eval_transform, keep_masks=True, **common),
        image_size=resize or data.image_size, augment=augment, mean=tuple(mean), std=tuple(std),
    )


def balanced_pixel_weights(data: Any, num_classes: int, ignore_index: int) -> torch.Tensor:
    """``n_pixels / (K * count(class))`` over the training masks (scikit-learn's "balanced")."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for i in range(len(data.train)):
        mask = data.train[i][1].as_subclass(torch.Tensor).flatten().long()
        mask = mask[mask != ignore_index]
        counts += torch.bincount(mask.clamp_max(num_classes - 1), minlength=num_classes).double()
    return (counts.sum() / (num_classes * counts.clamp_min(1))).float()


def build_loss(config: SegmentConfig, bundle: DataBundle) -> nn.Module:
    """The pixel loss, with ``ignore_index`` and balanced class weights when asked for."""
    k = bundle.data.num_classes
    weights = balanced_pixel_weights(bundle.data, k, config.ignore_index) if config.class_weights == "balanced" else None
    return create_segmentation_loss(config.loss, class_weights=weights, ignore_index=config.ignore_index)


def batch_loss(trainer: Any, batch: SegmentationBatch, device: torch.device) -> tuple[torch.Tensor, int]:
    """The pixel loss of a batch, and its image count."""
    images = batch.images.to(device, non_blocking=True)
    masks = batch.masks.to(device, non_blocking=True)  # training batches always share one size
    with torch.autocast(device.type, dtype=trainer.autocast_dtype, enabled=trainer.autocast_dtype is not None):
        logits = trainer.model(images)
    return trainer.loss_fn(logits.float(), masks), len(images)


@dataclass
class MaskPredictions:
    """What :func:`predict_masks` returns for this rank's shard.

    Attributes:
        outputs: ``(index, predicted mask [H, W], true mask int64 [H, W])`` per image.
        loss_sum: the sum over images of each image's loss (``0.0`` without a loss function).
    """

    outputs: list[tuple[int, torch.Tensor, torch.Tensor]]
    loss_sum: float = 0.0


@torch.no_grad()
def predict_masks(model: nn.Module, loader: Any, runtime: Runtime, amp_dtype: torch.dtype | None,
                  loss_fn: nn.Module | None = None) -> MaskPredictions:
    """Predicted and true masks of every image of this rank's shard, and the sum of the images'
    losses under ``loss_fn``. Predictions are made at the model's input size; when the stored mask
    differs, the logits are resized (bilinear) to it before the argmax and the loss."""
    was_training = model.training
    model.eval()
    out, loss_sum = [], 0.0
    device = runtime.device
    with loader_batches(loader) as batches:
        for batch in batches:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(batch.images.to(device, non_blocking=True)).float()
            for row, (index, mask) in enumerate(zip(batch.indices, batch.masks, strict=True)):
                scores = logits[row:row + 1]
                if tuple(scores.shape[-2:]) != tuple(mask.shape):
                    scores = F.interpolate(scores, size=tuple(mask.shape), mode="bilinear", align_corners=False)
                if loss_fn is not None:  # per image, so that resized and stacked batches mean the same
                    loss_sum += float(loss_fn(scores, mask[None].to(device)))
                out.append((index, scores.argmax(dim=1)[0].cpu(), mask.cpu()))
    model.train(was_training)
    return MaskPredictions(out, loss_sum)


def _accumulate(confusions: torch.Tensor, num_classes: int, ignore_index: int) -> Any:
    """A segmentation accumulator holding the images of ``confusions`` (``[N, K, K]``)."""
    from visionbench.metrics.segmentation import SegmentationAccumulator

    accumulator = SegmentationAccumulator(num_classes, ignore_index=ignore_index)
    accumulator.update_confusions(confusions)
    return accumulator


def validate(model: nn.Module, loader: Any, trainer: Any, runtime: Runtime, bundle: DataBundle) -> dict[str, float]:
    """``val_loss`` (the mean over images of each image's loss), the dataset-level ``val_mIoU``
    and ``val_pixel_accuracy`` of ``model`` on the validation split."""
    import warnings

    from visionbench.metrics.classification import UndefinedMetricWarning

    predicted = predict_masks(model, loader, runtime, trainer.autocast_dtype, trainer.loss_fn)
    k, ignore_index = bundle.data.num_classes, trainer.loss_fn.ignore_index
    accumulator = _accumulate(per_image_confusions(predicted.outputs, k, ignore_index), k, ignore_index)
    accumulator.sync()
    parts = gather_objects((predicted.loss_sum, len(predicted.outputs)), runtime.dist)
    images = sum(count for _, count in parts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # an empty val split: NaN, said in the record
        result = accumulator.compute()
    return {"val_loss": sum(loss for loss, _ in parts) / images if images else float("nan"),
            "val_mIoU": float(result["mIoU"]), "val_pixel_accuracy": float(result["pixel_accuracy"])}


def evaluate_and_write(
    model: nn.Module, config: SegmentConfig, bundle: DataBundle, run_dir: Path, runtime: Runtime, log: rundir.RunLog
) -> dict[str, Any]:
    """The test split's segmentation metrics, the predicted masks as PNGs and the worst images
    overlaid, written to ``run_dir`` by rank 0."""
    from visionbench.engine.file_evaluation import segmentation_metrics

    classes = list(bundle.data.classes)
    local = predict_masks(model, eval_loader(bundle.test, config, runtime), runtime,
                          autocast_dtype(config.amp, runtime.device)).outputs
    parts = gather_to_main(local, runtime.dist)
    if parts is None:  # not rank 0: the report is computed once, there, and broadcast
        return finish_test(None, None, run_dir, runtime, log)
    outputs = sorted((item for part in parts for item in part), key=lambda o: o[0])
    confusions = per_image_confusions(outputs, len(classes), config.ignore_index)  # once: metrics, npz, worst images
    accumulator = _accumulate(confusions, len(classes), config.ignore_index)
    report = segmentation_metrics(accumulator, classes=classes, resamples=config.resamples, seed=config.seed)
    report["split"] = runtime.eval_split

    def write(run_dir: Path) -> None:
        ids = bundle.data.test.ids
        write_mask_pngs(run_dir / MASKS_DIR, [(str(ids[i]), predicted) for i, predicted, _ in outputs])
        np.savez_compressed(run_dir / PER_IMAGE_CONFUSION, ids=np.array([str(ids[i]) for i, _, _ in outputs], dtype=str),
                            confusion=confusions.numpy())
        write_worst_masks(run_dir / rundir.EXAMPLES, outputs, confusions, bundle, classes, config.ignore_index)
        from visionbench.explain.run_examples import write_segmentation_saliency

        # Per-class Grad-CAM of the worst images, for the report (never fails the run).
        write_segmentation_saliency(run_dir, model, bundle.test, ids, outputs, confusions, classes, mean=bundle.mean,
                                    std=bundle.std, device=runtime.device, log=log)

    return finish_test(report, write, run_dir, runtime, log)


def per_image_confusions(outputs: list[tuple[int, torch.Tensor, torch.Tensor]], num_classes: int, ignore_index: int
                         ) -> torch.Tensor:
    """One ``int64 [K, K]`` confusion matrix per test image (rows: target), ``[N, K, K]``: written
    to ``per_image_confusion.npz`` so that ``visionbench compare`` can resample images without the
    masks, and used to rank the worst images."""
    from visionbench.metrics.segmentation import per_image_confusion

    matrices = []
    for _, predicted, target in outputs:
        try:
            matrices.append(per_image_confusion(predicted, target, num_classes, ignore_index=ignore_index)[0])
        except ValueError as error:
            raise ValueError(f"test mask: {error}") from None
    return torch.stack(matrices) if matrices else torch.zeros(0, num_classes, num_classes, dtype=torch.int64)


def write_worst_masks(path: Path, outputs: list[tuple[int, torch.Tensor, torch.Tensor]], confusions: torch.Tensor,
                      bundle: DataBundle, classes: list[str], ignore_index: int, *, count: int = WORST_EXAMPLES
                      ) -> None:
    """The test images of lowest per-image mIoU (from their ``confusions`` ``[N, K, K]``), each as image | true mask | predicted mask (in
    the VOC colours, ignored pixels white), saved to ``examples.npz`` (``images``, ``ids``, ``captions``, ``description``)."""
    from torchvision.transforms.v2 import functional as tvf

    from visionbench.metrics.segmentation import mean_iou

    mious = mean_iou(confusions).tolist() if len(outputs) else []  # per image (``confusions``: [N, K, K])
    scored = [(miou if miou == miou else 1.0, index, predicted, target)
              for miou, (index, predicted, target) in zip(mious, outputs, strict=True)]
    scored.sort(key=lambda s: (s[0], s[1]))
    panels, captions, ids = [], [], []
    for miou, index, predicted, target in scored[:count]:
        image = bundle.test.base[index][0].as_subclass(torch.Tensor)
        if tuple(image.shape[-2:]) != tuple(target.shape):
            image = tvf.resize(image, list(target.shape), antialias=True)
        row = torch.cat([image, colour_mask(target, ignore_index), colour_mask(predicted, ignore_index)], dim=2)
        height = EXAMPLE_SIDE
        width = round(row.shape[2] * height / row.shape[1])
        panels.append(tvf.resize(row, [height, min(width, 3 * EXAMPLE_SIDE)], antialias=True).numpy())
        captions.append(f"image mIoU {miou:.3f}")
        ids.append(str(bundle.data.test.ids[index]))
    same = [p for p in panels if p.shape == panels[0].shape] if panels else []
    if len(same) != len(panels):  # different aspect ratios: pad to the widest
        width = max(p.shape[2] for p in panels)
        panels = [np.pad(p, ((0, 0), (0, 0), (0, width - p.shape[2]))) for p in panels]
    legend = ", ".join(f"{name} {colour}" for name, colour in zip(classes, _colour_names(len(classes)), strict=False))
    np.savez(path, images=np.stack(panels) if panels else np.zeros((0, 3, 1, 1), dtype=np.uint8),
             ids=np.array(ids, dtype=str), captions=np.array(captions, dtype=str),
             description=np.array("The test images of lowest per-image mIoU: image | true mask | predicted mask, "
                                  f"classes in the VOC colours ({legend}{', …' if len(classes) > 6 else ''}; "
                                  "ignored pixels white)."))


# Plain names of the first VOC colours, for the legend of the examples.
_VOC_COLOUR_NAMES = ("black", "dark red", "green", "olive", "navy", "purple", "teal")


def _colour_names(count: int) -> list[str]:
    return list(_VOC_COLOUR_NAMES[:min(count, 6)])


HOOKS = TaskHooks(
    build_data=build_data, build_loss=build_loss, parameter_groups=parameter_groups,
    sample_weights=sample_weights, batch_loss=batch_loss, validate=validate, evaluate_and_write=evaluate_and_write,
)
