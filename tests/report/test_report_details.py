"""What the report shows where a browser showed blemishes: undefined metrics explained, a one-epoch
run on a sensible axis, the quality legend off the data, detection labels that do not overlap."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from visionbench.engine.detect import draw_errors, place_labels
from visionbench.engine.file_evaluation import evaluate_detection_files, undefined_reason
from visionbench.engine.results import format_metrics
from visionbench.engine.rundir import metrics_json_text
from visionbench.report import html, plots


def _small_objects_only(root: Path) -> tuple[Path, Path]:
    images = [{"id": i, "width": 64, "height": 64, "file_name": f"{i}.png"} for i in (1, 2)]
    boxes = [[4.0, 4.0, 10.0, 10.0], [30.0, 30.0, 12.0, 8.0]]  # both below 32² px: APm, APl undefined
    annotations = [{"id": k + 1, "image_id": k + 1, "category_id": 1, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
                   for k, b in enumerate(boxes)]
    results = [{"image_id": k + 1, "category_id": 1, "bbox": b, "score": 0.9} for k, b in enumerate(boxes)]
    (root / "gt.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                              "categories": [{"id": 1, "name": "dot"}]}))
    (root / "pred.json").write_text(json.dumps(results))
    return root / "gt.json", root / "pred.json"


def test_undefined_detection_metrics_say_why(tmp_path: Path) -> None:
    metrics = evaluate_detection_files(*_small_objects_only(tmp_path), resamples=20)
    assert math.isnan(metrics["APl"]["value"]) and math.isnan(metrics["ARm"]["value"])
    assert metrics["APl"]["undefined"] == "no large objects (area above 96² px) in the test set"
    assert metrics["ARm"]["undefined"] == undefined_reason("APm") and "medium" in metrics["ARm"]["undefined"]
    assert "undefined" not in metrics["APs"] and metrics["APs"]["value"] == 1.0
    text = format_metrics(metrics)
    assert "nan" not in text
    assert "  APl                undefined: no large objects (area above 96² px) in the test set" in text
    table = html.metrics_table(json.loads(metrics_json_text(metrics)))  # as read back from metrics.json
    assert "undefined: no large objects (area above 96² px) in the test set" in table
    assert "undefined: no objects in the test set" == f"undefined: {undefined_reason('AP')}"


def test_one_epoch_curves_get_markers_and_the_unit_range() -> None:
    figure = plots.training_curves_figure([{"epoch": 1, "train_loss": 0.7, "val_loss": 0.9, "val_accuracy": 0.31}])
    loss_axes, metric_axes = figure.axes[:2]
    assert metric_axes.get_ylim() == (0.0, 1.02)
    low, high = loss_axes.get_ylim()
    assert low == 0.0 and high >= 0.9 * 1.2
    assert metric_axes.get_xlim() == (0.0, 2.0)
    assert all(line.get_marker() not in (None, "", "None") for axes in (loss_axes, metric_axes)
               for line in axes.get_lines())
    # Several epochs that vary keep matplotlib's own range (small changes stay visible).
    varied = plots.training_curves_figure([{"epoch": e, "val_accuracy": 0.9 + e / 100} for e in (1, 2, 3)])
    assert varied.axes[1].get_ylim()[0] > 0.8


def test_quality_legend_sits_outside_the_data() -> None:
    rows = [{"item": str(i), "psnr": 30.0 + i, "ssim": 0.9 + i / 100} for i in range(8)]
    rows[-1] = {"item": "worst", "psnr": 5.0, "ssim": 0.1}  # the last point, bottom right, where legends went
    figure = plots.quality_per_item_figure(rows, ["psnr", "ssim"], frames=False)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for axes in figure.axes:
        legend = axes.get_legend()
        box, frame = legend.get_window_extent(renderer), axes.get_window_extent(renderer)
        assert box.x0 >= frame.x1 - 1, "the legend must not overlap the axes"


def test_detection_labels_do_not_overlap() -> None:
    boxes = torch.tensor([[10.0, 10.0, 60.0, 60.0]] * 3 + [[12.0, 11.0, 40.0, 40.0], [100.0, 100.0, 150.0, 150.0]])
    taken: list[tuple[int, int, int, int]] = []
    labels = place_labels(boxes, ["circle 0.99", "circle 0.80", "square 0.75", "square 0.50", "triangle 0.40"], taken)
    assert labels == ["circle 0.99", None, None, None, "triangle 0.40"]
    for i, a in enumerate(taken):
        for b in taken[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
    # Drawn at the report's tile size (labels stay readable whatever the image's size).
    prediction = {"boxes": boxes * 4, "scores": torch.tensor([0.99, 0.8, 0.75, 0.5, 0.4]),
                  "labels": torch.tensor([0, 0, 1, 1, 2])}
    target = {"boxes": torch.tensor([[40.0, 40.0, 240.0, 240.0]]), "labels": torch.tensor([0])}
    image = draw_errors(torch.zeros(3, 800, 800, dtype=torch.uint8), prediction, target,
                        ["circle", "square", "triangle"], 0.45)
    assert image.shape == (3, 192, 192) and image.dtype == torch.uint8
    assert int(np.count_nonzero(image.numpy())) > 0
