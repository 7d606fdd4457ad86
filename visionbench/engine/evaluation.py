"""The evaluation loop: predictions over a split, gathered across processes, and their metrics."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from visionbench.engine.batches import loader_batches
from visionbench.engine.distributed import DistInfo, gather_objects
from visionbench.metrics import (
    HIGHER_IS_BETTER,
    UndefinedMetricWarning,
    bootstrap_means,
    classification_intervals,
    confusion_matrix,
    log_loss_terms,
    metrics_from_confusion,
    percentile_interval,
    precision_recall_f1_from_confusion,
    scores,
)
from visionbench.metrics.stats import bootstrap_count_blocks


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
    labels: torch.Tensor, preds: torch.Tensor, probs: torch.Tensor | None, classes: list[str], *,
    resamples: int = 1000, seed: int = 0,
) -> dict[str, Any]:
    """``metrics.json`` content of a classification test split.

    Scalar metrics carry a 95% bootstrap interval (samples resampled); with probabilities, the
    score metrics (``log_loss``, ``top5_accuracy`` for K > 5, ``roc_auc_macro``,
    ``average_precision_macro``, ``ece``) and the curves and reliability bins the report plots
    are added.

    Args:
        labels, preds: ``int64 [N]``. probs: ``float [N, K]`` or ``None``. classes: K names.
    """
    k = len(classes)
    cm = confusion_matrix(preds, labels, k)
    values = metrics_from_confusion(cm)
    intervals = classification_intervals(preds, labels, k, resamples=resamples, seed=seed)
    extras: dict[str, Any] = {}
    if probs is not None and labels.numel():
        score_values, score_intervals, extras = _score_metrics(probs, labels, classes, resamples=resamples, seed=seed)
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


# Points kept per curve in metrics.json: enough for a smooth plot, small enough for the file.
_CURVE_POINTS = 200


def _thin(values: list[torch.Tensor]) -> list[list[float]]:
    """Keep at most ``_CURVE_POINTS`` evenly spaced points (first and last kept) of each curve."""
    n = values[0].numel()
    keep = torch.unique(torch.linspace(0, n - 1, min(n, _CURVE_POINTS)).round().long())
    return [v[keep].tolist() for v in values]


def _score_metrics(
    probs: torch.Tensor, labels: torch.Tensor, classes: list[str], *, resamples: int, seed: int
) -> tuple[dict[str, float], dict[str, tuple[float, float]], dict[str, Any]]:
    """Score-based metrics with intervals, and the curves and calibration bins for the report."""
    k = len(classes)
    with warnings.catch_warnings():
        # Classes absent from the test split make AUC/AP undefined for them; they are left out of
        # the macro average and shown as NaN per class in the curves section.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        # Rows are validated to sum to 1 within 1e-4 (scores.validate_scores); scikit-learn's
        # stricter sqrt(eps) warning would fire on every file of rounded probabilities.
        warnings.simplefilter("ignore", scores.ProbabilitySumWarning)
        values = {
            "log_loss": float(scores.log_loss(probs, labels)),
            "roc_auc_macro": float(scores.roc_auc(probs, labels, average="macro")),
            "average_precision_macro": float(scores.average_precision(probs, labels, average="macro")),
            "ece": float(scores.expected_calibration_error(probs, labels)),
        }
        per_sample = {"log_loss": log_loss_terms(probs, labels, renormalize=False)}
        if k > 5:
            values["top5_accuracy"] = float(scores.top_k_accuracy(probs, labels, k=5))
            per_sample["top5_accuracy"] = scores._top_k_hits(probs, labels, 5).double()
        intervals = {name: percentile_interval(bootstrap_means(terms, resamples=resamples, seed=seed + i))
                     for i, (name, terms) in enumerate(per_sample.items(), start=1)}
        bins = scores.calibration_bins(probs, labels)
        intervals.update(_weighted_intervals(probs, labels, bins, resamples=resamples, seed=seed + 10))
        extras = {"roc_curve": {}, "pr_curve": {}}
        for c, name in enumerate(classes):
            positive = labels == c
            if positive.all() or not positive.any():
                continue  # undefined curve: the class is absent (or alone)
            fpr, tpr, _ = scores.roc_curve(probs[:, c], positive)
            precision, recall, _ = scores.precision_recall_curve(probs[:, c], positive)
            fpr_l, tpr_l = _thin([fpr, tpr])
            precision_l, recall_l = _thin([precision, recall])
            extras["roc_curve"][name] = {"fpr": fpr_l, "tpr": tpr_l, "auc": float(torch.trapezoid(tpr, fpr))}
            extras["pr_curve"][name] = {
                "recall": recall_l, "precision": precision_l,
                "ap": float(scores.average_precision(probs[:, c], positive.long())),
            }
        extras["reliability"] = {key: value.tolist() for key, value in bins.items()} | {"ece": values["ece"]}
    return values, intervals, extras


def _weighted_intervals(
    probs: torch.Tensor, labels: torch.Tensor, bins: dict[str, torch.Tensor], *, resamples: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Intervals of the ranking and calibration metrics (``bins``: :func:`scores.calibration_bins`),
    all resamples of a block at once."""
    found: dict[str, list[torch.Tensor]] = {"roc_auc_macro": [], "average_precision_macro": [], "ece": []}
    confidence = probs.double().max(dim=1).values
    correct = (probs.argmax(dim=1) == labels).double()
    index = (torch.bucketize(confidence, bins["bin_edges"]) - 1).clamp(0, len(bins["count"]) - 1)
    one_hot = torch.nn.functional.one_hot(index, len(bins["count"])).double()  # (N, B)
    for counts in bootstrap_count_blocks(labels.numel(), resamples=resamples, seed=seed):  # (R_block, N)
        found["roc_auc_macro"].append(scores.roc_auc(probs, labels, average="macro", sample_weight=counts))
        found["average_precision_macro"].append(
            scores.average_precision(probs, labels, average="macro", sample_weight=counts))
        gap = counts @ (one_hot * (correct - confidence).unsqueeze(1))  # (R_block, B)
        found["ece"].append(gap.abs().sum(dim=1) / labels.numel())
    return {name: percentile_interval(torch.cat(parts)) for name, parts in found.items()}


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
