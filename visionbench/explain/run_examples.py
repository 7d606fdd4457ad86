"""Grad-CAM panels of a run's test split, written at the end of training or evaluation for the report.

The report reads only run-directory files, so the explanations are drawn when the model is at
hand and saved to ``RUN/saliency/``: one PNG per image (``NN.png``) and ``index.json``
(``task``, ``method``, ``layer``, ``description`` and ``items``: ``file``, ``id``, ``kind``, and
the true and predicted classes with the probability).

* **Classification**: Grad-CAM of the predicted class for the :data:`MISTAKES` most confident
  mistakes, and for the :data:`PER_CLASS` most confident correct predictions of each class
  (round-robin over classes, so every class gets one before any gets two), :data:`CAP` images in all.
* **Segmentation**: per-class Grad-CAM of the :data:`WORST` test images of lowest per-image mIoU,
  for the classes in their true or predicted mask (the background left out; at most four).

The cost is bounded: one forward and backward pass over at most :data:`CAP` images (classification)
or one per worst image (segmentation), on the layer :mod:`visionbench.explain.layers` picks. A
model without a convolutional stage (an MLP, a ViT) gets no panels: the log says why and the
report says so. Nothing here may stop a run: a failure is logged and the results stay.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from visionbench.explain import BACKGROUND, MAX_SEGMENT_TARGETS, explain_images
from visionbench.explain.files import explanation_panel
from visionbench.explain.overlay import to_display_image, write_png

SALIENCY_DIR = "saliency"
INDEX = "index.json"
MISTAKES, PER_CLASS, CAP = 8, 2, 20
WORST = 4
SIDE = 128  # px: long side of each tile in the report


def choose_examples(labels: Tensor, preds: Tensor, confidence: Tensor, *, mistakes: int = MISTAKES,
                    per_class: int = PER_CLASS, cap: int = CAP) -> list[tuple[int, str]]:
    """``(position, kind)`` of the samples to explain: the ``mistakes`` most confident mistakes
    (``kind`` ``"mistake"``), then correct predictions (``"correct"``), the most confident of each
    class first, round-robin over classes up to ``per_class`` each; ``cap`` in all.

    Args:
        labels, preds: ``int64 [N]``. confidence: ``[N]``, the predicted class's probability.
    """
    order = torch.argsort(confidence, descending=True, stable=True).tolist()
    wrong = [p for p in order if preds[p] != labels[p]][:mistakes]
    chosen = [(p, "mistake") for p in wrong]
    right_by_class: dict[int, list[int]] = {}
    for p in order:
        if preds[p] == labels[p]:
            right_by_class.setdefault(int(labels[p]), []).append(p)
    for rank in range(per_class):
        for k in sorted(right_by_class):
            if rank < len(right_by_class[k]):
                chosen.append((right_by_class[k][rank], "correct"))
    return chosen[:cap]


def _fresh_dir(run_dir: Path) -> Path:
    """``RUN/saliency``, emptied of the panels and index of an earlier evaluation of the same run."""
    folder = run_dir / SALIENCY_DIR
    if folder.is_dir():
        for old in [*folder.glob("*.png"), folder / INDEX]:
            old.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_index(folder: Path, index: dict[str, Any]) -> None:
    (folder / INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")


def _write_skipped(run_dir: Path, task: str, error: Exception, log: Any) -> None:
    """An index without panels that says why there are none (for the report), and the log line."""
    _write_index(_fresh_dir(run_dir), {"task": task, "method": "gradcam", "layer": None, "items": [],
                                       "skipped": str(error)})
    log.file(f"no Grad-CAM panels for the report: {error}")


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def write_classification_saliency(run_dir: Path, model: nn.Module, test: Any, ids: Sequence[Any], predictions: Any,
                                  classes: list[str], *, mean: Sequence[float] | None, std: Sequence[float] | None,
                                  device: torch.device, log: Any) -> None:
    """Grad-CAM panels of the chosen test samples (module docstring) in ``RUN/saliency``.

    Args:
        test: the test split as a batch dataset (``test[(0, 0, indices)]`` gives normalised images).
        ids: the sample id of each test index.
        predictions: the split's :class:`~visionbench.engine.evaluation.Predictions`.
        log: the run's log; why nothing was written goes there.
    """
    try:
        confidence = predictions.probs.max(dim=1).values
        chosen = choose_examples(predictions.labels, predictions.preds, confidence)
        if not chosen:
            return
        indices = [int(predictions.indices[p]) for p, _ in chosen]
        inputs = test[(0, 0, indices)][0].to(device)
        result = explain_images(model, inputs, task="classify", methods=("gradcam",), mean=mean, std=std)
        folder = _fresh_dir(run_dir)
        items = []
        for i, ((position, kind), index) in enumerate(zip(chosen, indices, strict=True)):
            sample_id = str(ids[index])
            true = classes[int(predictions.labels[position])]
            shown = to_display_image(inputs[i], mean, std)
            picture = explanation_panel(result, "gradcam", shown, classes, _short(sample_id), sample=i, true=true,
                                        side=SIDE)
            write_png(picture, folder / f"{i:02d}.png")
            items.append({"file": f"{i:02d}.png", "id": sample_id, "kind": kind, "label": true,
                          "pred": classes[int(result.predicted[i])], "probability": round(result.probability[i], 6)})
        _write_index(folder, {"task": "classify", "method": "gradcam", "layer": result.layer, "items": items,
                              "description": f"Grad-CAM of the predicted class on layer {result.layer!r}: the "
                                             f"{sum(k == 'mistake' for _, k in chosen)} most confident mistakes, "
                                             "then the most confident correct predictions of each class."})
        log.file(f"wrote {len(items)} Grad-CAM panels (layer {result.layer}) to {folder}")
    except ValueError as error:  # e.g. a model without a convolutional stage: the report says why
        _write_skipped(run_dir, "classify", error, log)
    except Exception as error:  # noqa: BLE001 - explanations are extras: the run's results must stay
        log.file(f"no Grad-CAM panels for the report: {error}")


def segment_targets(truth: Tensor, predicted: Tensor, num_classes: int) -> list[int]:
    """The classes of one worst image to explain: those in its true or predicted mask (ignored
    values and the background left out unless nothing else is there), at most four."""
    present = sorted({int(c) for c in torch.cat([truth.flatten(), predicted.flatten()]).unique()
                      if 0 <= int(c) < num_classes})
    foreground = [c for c in present if c != BACKGROUND]
    return (foreground or present or [BACKGROUND])[:MAX_SEGMENT_TARGETS]


def write_segmentation_saliency(run_dir: Path, model: nn.Module, test: Any, ids: Sequence[Any],
                                outputs: list[tuple[int, Tensor, Tensor]], confusions: Tensor, classes: list[str], *,
                                mean: Sequence[float] | None, std: Sequence[float] | None, device: torch.device,
                                log: Any) -> None:
    """Per-class Grad-CAM panels of the :data:`WORST` images of lowest per-image mIoU in ``RUN/saliency``.

    Args:
        test: the test split as segmentation batches (``test[(0, 0, [index])].images``).
        ids: the sample id of each test index.
        outputs: ``(index, predicted mask, true mask)`` per test image; confusions: their ``[N, K, K]``.
    """
    from visionbench.metrics.segmentation import mean_iou

    try:
        if not outputs:
            return
        mious = [m if m == m else 1.0 for m in mean_iou(confusions).tolist()]  # NaN: nothing to score, not worst
        worst = sorted(range(len(outputs)), key=lambda p: (mious[p], outputs[p][0]))[:WORST]
        folder = _fresh_dir(run_dir)
        items, layer = [], None
        for i, position in enumerate(worst):
            index, predicted, truth = outputs[position]
            inputs = test[(0, 0, [index])].images.to(device)
            targets = segment_targets(truth, predicted, len(classes))
            result = explain_images(model, inputs, task="segment", methods=("gradcam",), targets=[targets],
                                    mean=mean, std=std)
            layer = result.layer
            sample_id = str(ids[index])
            picture = explanation_panel(result, "gradcam", to_display_image(inputs[0], mean, std), classes,
                                        _short(sample_id), extra=f" · image mIoU {mious[position]:.2f}", side=SIDE)
            write_png(picture, folder / f"{i:02d}.png")
            items.append({"file": f"{i:02d}.png", "id": sample_id, "kind": "worst", "mIoU": round(mious[position], 6),
                          "targets": [classes[c] for c in targets]})
        _write_index(folder, {"task": "segment", "method": "gradcam", "layer": layer, "items": items,
                              "description": f"Grad-CAM per class on layer {layer!r} for the {len(items)} test images "
                                             "of lowest mIoU: the score of a class is the sum of its logit over the "
                                             "pixels predicted as it (all pixels when none is)."})
        log.file(f"wrote {len(items)} per-class Grad-CAM panels (layer {layer}) to {folder}")
    except ValueError as error:  # e.g. a model without a convolutional stage: the report says why
        _write_skipped(run_dir, "segment", error, log)
    except Exception as error:  # noqa: BLE001 - explanations are extras: the run's results must stay
        log.file(f"no Grad-CAM panels for the report: {error}")


__all__ = ["CAP", "INDEX", "MISTAKES", "PER_CLASS", "SALIENCY_DIR", "WORST", "choose_examples", "segment_targets",
           "write_classification_saliency", "write_segmentation_saliency"]
