"""Metrics: pure functions on tensors plus streaming accumulators (``update``/``merge``/``compute``)."""

from visionbench.metrics.classification import (
    ConfusionMatrixAccumulator,
    UndefinedMetricWarning,
    accuracy_from_confusion,
    balanced_accuracy_from_confusion,
    confusion_matrix,
    log_loss_terms,
    metric_tensors_from_confusion,
    metrics_from_confusion,
    precision_recall_f1_from_confusion,
)
from visionbench.metrics.stats import (
    bootstrap_confusion_matrices,
    bootstrap_means,
    multinomial_resamples,
    classification_intervals,
    percentile_interval,
)

# Whether a larger value is better, for every scalar metric name visionbench reports.
HIGHER_IS_BETTER = {
    "accuracy": True, "balanced_accuracy": True, "log_loss": False,
    **{f"{m}_{a}": True for m in ("precision", "recall", "f1") for a in ("macro", "micro", "weighted")},
}

__all__ = [
    "HIGHER_IS_BETTER", "ConfusionMatrixAccumulator", "UndefinedMetricWarning", "accuracy_from_confusion",
    "balanced_accuracy_from_confusion", "bootstrap_confusion_matrices", "bootstrap_means", "classification_intervals", "multinomial_resamples",
    "confusion_matrix", "log_loss_terms", "metric_tensors_from_confusion", "metrics_from_confusion", "percentile_interval",
    "precision_recall_f1_from_confusion",
]
