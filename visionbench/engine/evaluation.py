"""The evaluation loop: predictions over a split, gathered across processes (validation: only
their sums), and their metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from visionbench.engine.batches import loader_batches
from visionbench.engine.distributed import DistInfo, all_reduce_sum, gather_objects, gather_to_main
from visionbench.metrics import (
    HIGHER_IS_BETTER,
    classification_intervals,
    confusion_matrix,
    metrics_from_confusion,
    precision_recall_f1_from_confusion,
)
from visionbench.metrics.score_report import score_metrics, thin_curves


@dataclass(frozen=True)
class Predictions:
    """Per-sample outputs of a model on a split, in dataset order.

    Attributes:
        indices: ``int64 [N]`` positions in the split; labels: ``int64 [N]``;
        probs: ``float32 [N, K]`` softmax probabilities; loss: mean loss over the samples.
    """

    indices: torch.Tensor
    labels: torch.Tensor
    probs: torch.Tensor
    loss: float

    @property
    def preds(self) -> torch.Tensor:
        """Predicted classes ``int64 [N]``."""
        return self.probs.argmax(dim=1)


def _local_outputs(
    model: nn.Module, loader: DataLoader, loss_fn: nn.Module, *, device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], float]:
    """This rank's ``(indices, labels, probs)`` chunks over ``loader`` and the sum of its losses."""
    was_training = model.training
    model.eval()
    chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    loss_sum, seen = 0.0, 0
    start = loader.sampler.start  # first dataset index of this rank's shard
    with loader_batches(loader) as batches:
        for images, labels in batches:
            images, labels_dev = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = model(images)
            logits = logits.float()
            loss_sum += float(loss_fn(logits, labels_dev)) * len(labels)
            index = torch.arange(start + seen, start + seen + len(labels))
            seen += len(labels)
            chunks.append((index, labels.cpu(), torch.softmax(logits, dim=1).cpu()))
    model.train(was_training)
    return chunks, loss_sum


@torch.no_grad()
def predict_split(
    model: nn.Module, loader: DataLoader, loss_fn: nn.Module, *, device: torch.device, dist: DistInfo,
    autocast_dtype: torch.dtype | None = None, main_only: bool = False,
) -> Predictions | None:
    """Run ``model`` over ``loader`` (this rank's shard) and gather every rank's outputs.

    The loader must yield this rank's contiguous shard in order (see ``ShardBatchSampler``), so
    concatenating the shards in rank order restores dataset order with each sample once.

    Args:
        main_only: gather on rank 0 alone (the others get ``None``): the test report is computed
            once, by rank 0, and broadcast; the probabilities are not copied to every process.
    """
    chunks, loss_sum = _local_outputs(model, loader, loss_fn, device=device, autocast_dtype=autocast_dtype)
    local = (
        torch.cat([c[0] for c in chunks]) if chunks else torch.zeros(0, dtype=torch.int64),
        torch.cat([c[1] for c in chunks]) if chunks else torch.zeros(0, dtype=torch.int64),
        torch.cat([c[2] for c in chunks]) if chunks else None,
        loss_sum,
    )
    parts = gather_to_main(local, dist) if main_only else gather_objects(local, dist)
    if parts is None:
        return None
    probs = [p[2] for p in parts if p[2] is not None]
    total = sum(len(p[0]) for p in parts)
    return Predictions(
        indices=torch.cat([p[0] for p in parts]), labels=torch.cat([p[1] for p in parts]),
        probs=torch.cat(probs) if probs else torch.zeros(0, 0), loss=sum(p[3] for p in parts) / max(total, 1),
    )


@torch.no_grad()
def validation_statistics(
    model: nn.Module, loader: DataLoader, loss_fn: nn.Module, *, device: torch.device, dist: DistInfo,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[float, float, int]:
    """``(mean loss, accuracy, samples)`` over every rank's shard of ``loader``.

    Each rank sums its losses, correct predictions and samples and the three sums are reduced
    (one ``all_reduce`` of three numbers per epoch, instead of gathering every probability).
    """
    chunks, loss_sum = _local_outputs(model, loader, loss_fn, device=device, autocast_dtype=autocast_dtype)
    correct = sum(int((probs.argmax(dim=1) == labels).sum()) for _, labels, probs in chunks)
    count = sum(len(labels) for _, labels, _ in chunks)
    sums = all_reduce_sum(torch.tensor([loss_sum, correct, count], dtype=torch.float64), dist)
    samples = int(sums[2])
    if samples == 0:
        return float("nan"), float("nan"), 0
    return float(sums[0]) / samples, float(sums[1]) / samples, samples


def classification_report(
    labels: torch.Tensor, preds: torch.Tensor, probs: torch.Tensor | None, classes: list[str], *,
    resamples: int = 1000, seed: int = 0,
) -> dict[str, Any]:
    """``metrics.json`` content of a classification test split.

    Scalar metrics carry a 95% bootstrap interval (``resamples`` resamples of the samples; 0: none,
    every ``ci95`` is NaN); with probabilities, the
    score metrics (``log_loss``, ``top5_accuracy`` for K > 5, ``roc_auc_macro``,
    ``average_precision_macro``, ``ece``) and the curves and reliability bins the report plots
    are added.

    Args:
        labels, preds: ``int64 [N]``. probs: ``float [N, K]`` or ``None``. classes: K names.
    """
    k = len(classes)
    cm = confusion_matrix(preds, labels, k)
    values = metrics_from_confusion(cm)
    if resamples > 0:
        intervals = classification_intervals(preds, labels, k, resamples=resamples, seed=seed)
    else:  # --resamples 0: no intervals
        intervals = {name: (float("nan"), float("nan")) for name in values}
    extras: dict[str, Any] = {}
    if probs is not None and labels.numel():
        score_values, score_intervals, extras = score_metrics(probs, labels, classes, resamples=resamples, seed=seed)
        values.update(score_values)
        intervals.update(score_intervals)
    report: dict[str, Any] = {"task": "classify", "num_samples": int(labels.numel())}
    for name, value in values.items():
        report[name] = {"value": value, "ci95": list(intervals[name]), "higher_is_better": HIGHER_IS_BETTER[name]}
    precision, recall, f1 = precision_recall_f1_from_confusion(cm, average="none", zero_division=0)
    report["classes"] = list(classes)
    report["per_class"] = {
        "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
        "support": cm.sum(dim=1).tolist(),
    }
    report["confusion_matrix"] = cm.tolist()
    report.update(extras)
    return report


_thin = thin_curves  # engine/multilabel.py thins its PR curves the same way


def _size_text(size: Any) -> str:
    """``(H, W)`` as ``WxH`` pixels, as image sizes are usually written."""
    return f"{size[1]}x{size[0]}"


def check_evaluation_data(trained: Any, evaluated: Any, data: str) -> list[str]:
    """What a run's model meets in other data (``evaluate RUN --data``): an error when it cannot
    take the data, warnings when the data is unlike what it was trained on.

    Args:
        trained: the run's :class:`~visionbench.engine.inference_spec.InferenceSpec` (its ``inference.json``).
        evaluated: the same description of the data about to be evaluated.
        data: the data spec, for messages.

    Returns:
        Warnings (to print and record in ``metrics.json``): other class names, other stored image
        sizes or another model input size.

    Raises:
        ValueError: another number of classes or of image channels.
    """
    if evaluated.num_classes != trained.num_classes:
        raise ValueError(f"--data must have the run's {trained.num_classes} classes; got {evaluated.num_classes} in "
                         f"{data}. Evaluate on data with the same classes, or train a run on this data.")
    if evaluated.in_channels != trained.in_channels:
        kinds = {1: "1-channel (grayscale)", 3: "3-channel (RGB)"}
        raise ValueError(f"--data must have the run's {kinds[trained.in_channels]} images; got "
                         f"{kinds[evaluated.in_channels]} images in {data}. Convert the images, or train a run on them.")
    warnings = []
    renamed = [(k, a, b) for k, (a, b) in enumerate(zip(trained.classes, evaluated.classes, strict=True)) if a != b]
    if renamed:
        k, a, b = renamed[0]
        warnings.append(f"{len(renamed)} class names of {data} differ from the run's (class {k} is {b!r} there and "
                        f"{a!r} in the run); classes are matched by index, so check that they mean the same.")
    if trained.native_size and evaluated.native_size and trained.native_size != evaluated.native_size:
        warnings.append(f"the images of {data} are {_size_text(evaluated.native_size)} pixels but the run was trained "
                        f"on {_size_text(trained.native_size)} images; they are resized to the model's "
                        f"{_size_text(evaluated.image_size or trained.native_size)} input, so expect lower scores "
                        "than on data like the training data.")
    elif trained.image_size != evaluated.image_size:
        shown = [_size_text(s) if s else "images at their own size" for s in (trained.image_size, evaluated.image_size)]
        warnings.append(f"the model gets {shown[1]} from {data} but was trained on {shown[0]}; its scores may not "
                        "carry over to images of another size.")
    return warnings
