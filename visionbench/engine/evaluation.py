"""The evaluation loop: predictions over a split, gathered across processes, and their metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from visionbench.engine.distributed import DistInfo, gather_objects
from visionbench.metrics import (
    HIGHER_IS_BETTER,
    classification_intervals,
    confusion_matrix,
    log_loss_terms,
    metrics_from_confusion,
    precision_recall_f1_from_confusion,
)


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


@torch.no_grad()
def predict_split(
    model: nn.Module, loader: DataLoader, loss_fn: nn.Module, *, device: torch.device, dist: DistInfo,
    autocast_dtype: torch.dtype | None = None,
) -> Predictions:
    """Run ``model`` over ``loader`` (this rank's shard) and gather every rank's outputs.

    The loader must yield this rank's contiguous shard in order (see ``ShardBatchSampler``), so
    concatenating the shards in rank order restores dataset order with each sample once.
    """
    was_training = model.training
    model.eval()
    chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    loss_sum, seen = 0.0, 0
    start = loader.sampler.start  # first dataset index of this rank's shard
    for images, labels in loader:
        images, labels_dev = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(images)
        logits = logits.float()
        loss_sum += float(loss_fn(logits, labels_dev)) * len(labels)
        index = torch.arange(start + seen, start + seen + len(labels))
        seen += len(labels)
        chunks.append((index, labels.cpu(), torch.softmax(logits, dim=1).cpu()))
    model.train(was_training)
    local = (
        torch.cat([c[0] for c in chunks]) if chunks else torch.zeros(0, dtype=torch.int64),
        torch.cat([c[1] for c in chunks]) if chunks else torch.zeros(0, dtype=torch.int64),
        torch.cat([c[2] for c in chunks]) if chunks else None,
        loss_sum,
    )
    parts = gather_objects(local, dist)
    probs = [p[2] for p in parts if p[2] is not None]
    total = sum(len(p[0]) for p in parts)
    return Predictions(
        indices=torch.cat([p[0] for p in parts]), labels=torch.cat([p[1] for p in parts]),
        probs=torch.cat(probs) if probs else torch.zeros(0, 0), loss=sum(p[3] for p in parts) / max(total, 1),
    )


def classification_report(
    predictions: Predictions, classes: list[str], *, resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """``metrics.json`` content: scalar metrics with 95% bootstrap intervals, confusion matrix, per class."""
    k = len(classes)
    cm = confusion_matrix(predictions.preds, predictions.labels, k)
    values = metrics_from_confusion(cm)
    per_sample = {"log_loss": log_loss_terms(predictions.probs, predictions.labels)} if predictions.labels.numel() else {}
    values.update({name: float(terms.mean()) for name, terms in per_sample.items()})
    intervals = classification_intervals(
        predictions.preds, predictions.labels, k, per_sample=per_sample, resamples=resamples, seed=seed
    )
    report: dict[str, Any] = {"task": "classify", "num_samples": int(predictions.labels.numel())}
    for name, value in values.items():
        report[name] = {"value": value, "ci95": list(intervals[name]), "higher_is_better": HIGHER_IS_BETTER[name]}
    precision, recall, f1 = precision_recall_f1_from_confusion(cm, average="none", zero_division=0)
    report["classes"] = list(classes)
    report["per_class"] = {
        "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
        "support": cm.sum(dim=1).tolist(),
    }
    report["confusion_matrix"] = cm.tolist()
    return report
