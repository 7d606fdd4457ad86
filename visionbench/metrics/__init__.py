"""Metrics: pure functions on tensors plus streaming accumulators (``update``/``merge``/``compute``)."""

from visionbench.metrics.classification import (
    ConfusionMatrixAccumulator,
    UndefinedMetricWarning,
    accuracy_from_confusion,
    balanced_accuracy_from_confusion,
    cohen_kappa_from_confusion,
    confusion_matrix,
    fbeta_from_confusion,
    log_loss_terms,
    matthews_corrcoef_from_confusion,
    metric_tensors_from_confusion,
    metrics_from_confusion,
    precision_recall_f1_from_confusion,
    specificity_from_confusion,
)
from visionbench.metrics.detection import HIGHER_IS_BETTER as DETECTION_HIGHER_IS_BETTER
from visionbench.metrics.detection import (
    DetectionEvaluator,
    coco_box_iou,
    compare_detection,
    detection_intervals,
    evaluate_coco,
    load_coco_ground_truth,
    load_coco_results,
)
from visionbench.metrics.scores import (
    ProbabilitySumWarning,
    ScoreAccumulator,
    average_precision,
    binary_stats,
    calibration_bins,
    expected_calibration_error,
    log_loss,
    multilabel_confusion,
    precision_recall_curve,
    roc_auc,
    roc_curve,
    top_k_accuracy,
    validate_scores,
)
from visionbench.metrics.segmentation import (
    SEGMENTATION_HIGHER_IS_BETTER,
    SegmentationAccumulator,
    mean_iou,
    per_class_iou,
    per_image_mean_iou,
    segmentation_confusion,
    segmentation_metric_tensors,
)
from visionbench.metrics.stats import (
    bootstrap_confusion_matrices,
    bootstrap_means,
    classification_intervals,
    multinomial_resamples,
    percentile_interval,
)

# Whether a larger value is better, for every scalar classification metric visionbench reports.
HIGHER_IS_BETTER = {
    "accuracy": True, "balanced_accuracy": True, "log_loss": False,
    **{f"{m}_{a}": True for m in ("precision", "recall", "f1") for a in ("macro", "micro", "weighted")},
    "cohen_kappa": True, "matthews_corrcoef": True, "specificity_macro": True, "top5_accuracy": True,
    "roc_auc_macro": True, "average_precision_macro": True, "ece": False,
}

__all__ = [
    "DetectionEvaluator", "SegmentationAccumulator", "coco_box_iou", "compare_detection", "detection_intervals",
    "evaluate_coco", "load_coco_ground_truth", "load_coco_results", "mean_iou", "per_class_iou", "per_image_mean_iou",
    "segmentation_confusion", "segmentation_metric_tensors",
    "DETECTION_HIGHER_IS_BETTER", "HIGHER_IS_BETTER", "SEGMENTATION_HIGHER_IS_BETTER", "ConfusionMatrixAccumulator", "UndefinedMetricWarning", "accuracy_from_confusion",
    "balanced_accuracy_from_confusion", "bootstrap_confusion_matrices", "bootstrap_means", "classification_intervals", "multinomial_resamples",
    "confusion_matrix", "log_loss_terms", "metric_tensors_from_confusion", "metrics_from_confusion", "percentile_interval",
    "precision_recall_f1_from_confusion",
    "ProbabilitySumWarning", "ScoreAccumulator", "average_precision", "binary_stats", "calibration_bins",
    "cohen_kappa_from_confusion", "expected_calibration_error", "fbeta_from_confusion", "log_loss",
    "matthews_corrcoef_from_confusion", "multilabel_confusion", "precision_recall_curve", "roc_auc", "roc_curve",
    "specificity_from_confusion", "top_k_accuracy", "validate_scores",
]
