"""Predictions of a trained run on new image files: classes with probabilities, boxes drawn on the
images, or colour-coded mask PNGs.

The run's best weights and its own evaluation preprocessing are used (the same resize and
normalisation as its test split), so a prediction here equals the prediction the run's test
evaluation would make on the same image. Training writes what that preprocessing needs (classes,
input size, normalisation) to the run's ``inference.json``
(:mod:`visionbench.engine.inference_spec`), so a run predicts without its training data: on
another machine, or after the data has moved.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionbench.data.folder import read_image_rgb
from visionbench.data.task_transforms import rescale_boxes
from visionbench.engine import multilabel as _multilabel
from visionbench.engine.inference_spec import InferenceSpec
from visionbench.engine.masks import overlay, write_mask_pngs

TOP_K = 5
# An input more than this many times larger or smaller (on a side) than the run's stored training
# images is resized so far that the prediction may mean little: say so.
SIZE_WARNING_FACTOR = 2.0


@dataclass(frozen=True)
class PredictOutput:
    """What :func:`predict_files` wrote: the folder, one summary row per image, and warnings
    about inputs unlike the training data (each also in its row, under ``"warning"``)."""

    out_dir: Path
    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def _unique_stems(paths: list[Path]) -> list[str]:
    """Output names per input: the file stem, made unique with ``-2``, ``-3``… on repeats."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        count = seen.get(path.stem, 0) + 1
        seen[path.stem] = count
        names.append(path.stem if count == 1 else f"{path.stem}-{count}")
    return names


@torch.no_grad()
def predict_files(config: Any, spec: InferenceSpec, model: nn.Module, paths: list[Path], out_dir: Path, *,
                  device: torch.device, score_threshold: float | None = None) -> PredictOutput:
    """Predict every image of ``paths`` and write the results to ``out_dir``.

    * classify: ``predictions.csv`` (file, predicted class, probability, top-5 classes and probabilities);
    * detect: ``NAME.png`` with the boxes drawn and ``detections.json`` (file, boxes XYXY in pixels, labels:
      the dataset's category ids as in the run's ``ground_truth.json``, class names, scores) of detections
      scoring at least ``score_threshold`` (default the run's);
    * segment: ``NAME.png``, a palette PNG of class indices in the VOC colours, and ``NAME_overlay.png``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [read_image_rgb(path) for path in paths]  # ValueError naming a bad file, before any output
    names = _unique_stems(paths)
    classes = list(spec.classes)
    # inference.json says whether the run is multi-label; runs written before that field say it in their config.
    multilabel = spec.multilabel or getattr(config, "multilabel", False)
    if config.task == "classify" and multilabel:  # labels at or above 0.5, with probabilities
        rows = _classify(spec, model, images, paths, classes, device, multilabel=True)
        _multilabel.write_predicted_csv(out_dir / "predictions.csv", rows, classes)
    elif config.task == "classify":
        rows = _classify(spec, model, images, paths, classes, device)
        _write_csv(out_dir / "predictions.csv", rows, min(TOP_K, len(classes)))
    elif config.task == "detect":
        threshold = config.score_threshold if score_threshold is None else score_threshold
        rows = _detect(config, spec, model, images, paths, names, classes, device, threshold, out_dir)
    else:
        rows = _segment(config, spec, model, images, paths, names, classes, device, out_dir)
    warnings = []
    for row, path, image in zip(rows, paths, images, strict=True):
        message = size_warning(path, tuple(image.shape[-2:]), spec)
        if message:
            row["warning"] = message
            warnings.append(message)
    if config.task == "detect":  # written after the warnings, which its rows carry
        (out_dir / "detections.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return PredictOutput(out_dir, rows, warnings)


def size_warning(path: Path, size: tuple[int, int], spec: InferenceSpec) -> str | None:
    """A warning when an input of ``size`` ``(H, W)`` is far from the size of the run's training
    images (more than :data:`SIZE_WARNING_FACTOR` times larger or smaller on a side), else ``None``.

    Only runs whose training images all share one stored size (``spec.native_size``: digits,
    MNIST, CIFAR) know what their inputs looked like; other runs resized images of many sizes.
    """
    trained = spec.native_size
    if trained is None:
        return None
    ratios = [s / t for s, t in zip(size, trained, strict=True)]
    if all(1 / SIZE_WARNING_FACTOR <= r <= SIZE_WARNING_FACTOR for r in ratios):
        return None
    model_h, model_w = spec.image_size or trained
    return (f"{path} is {size[1]}x{size[0]} pixels but this run was trained on {trained[1]}x{trained[0]} images; it "
            f"is resized to the model's {model_w}x{model_h} input, so the prediction may mean little. Predict images "
            "like the training data (same size and kind of content), or train a run on images like these.")


def _classify(spec: InferenceSpec, model: nn.Module, images: list[torch.Tensor], paths: list[Path],
              classes: list[str], device: torch.device, *, multilabel: bool = False) -> list[dict[str, Any]]:
    from torchvision.transforms.v2 import functional as tvf

    from visionbench.data.transforms import build_preset

    assert spec.image_size is not None and spec.mean is not None and spec.std is not None  # classify always has them
    preset = build_preset("none", train=False, image_size=spec.image_size, native_size=spec.native_size,
                          mean=spec.mean, std=spec.std, resize_size=spec.resize_size)  # the run's eval preset
    rows = []
    for path, image in zip(paths, images, strict=True):
        if spec.in_channels == 1:
            image = tvf.rgb_to_grayscale(image)
        if preset.sample is not None:
            image = preset.sample(image)
        elif tuple(image.shape[-2:]) != spec.image_size:
            image = tvf.resize(image, list(spec.image_size), antialias=True)
        logits = model(preset.batch(image[None]).to(device)).float()
        if multilabel:  # one independent yes/no per label
            rows.append(_multilabel.predicted_row(path, torch.sigmoid(logits)[0].cpu(), classes))
            continue
        probs = torch.softmax(logits, dim=1)[0].cpu()
        top = torch.topk(probs, min(TOP_K, len(classes)))
        rows.append({"file": str(path), "pred": classes[int(top.indices[0])], "probability": float(top.values[0]),
                     "top": [[classes[int(i)], float(p)] for i, p in zip(top.indices, top.values, strict=True)]})
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]], top_k: int) -> None:
    """``predictions.csv``: one ``topN`` column per class shown (``top_k``: at most the number of classes)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "pred", "probability", *[f"top{k + 1}" for k in range(top_k)]])
        for row in rows:
            writer.writerow([row["file"], row["pred"], f"{row['probability']:.6f}",
                             *[f"{name}:{p:.6f}" for name, p in row["top"]]])


def _detect(config: Any, spec: InferenceSpec, model: nn.Module, images: list[torch.Tensor], paths: list[Path], names: list[str],
            classes: list[str], device: torch.device, threshold: float, out_dir: Path) -> list[dict[str, Any]]:
    from PIL import Image
    from torchvision.transforms.v2 import functional as tvf
    from torchvision.utils import draw_bounding_boxes

    # The ids users read everywhere else in the run (metrics.json, ground_truth.json), not the model's indices.
    ids = spec.category_ids or tuple(range(1, len(classes) + 1))
    rows = []
    for path, name, image in zip(paths, names, images, strict=True):
        height, width = image.shape[-2:]
        resized = tvf.resize(image, list(spec.image_size), antialias=True) if config.image_size else image
        prediction = model([resized.float().div(255).to(device)])[0]
        keep = prediction["scores"] >= threshold
        boxes = rescale_boxes(prediction["boxes"][keep].float().cpu(), tuple(resized.shape[-2:]), (height, width))
        labels, scores = prediction["labels"][keep].cpu(), prediction["scores"][keep].float().cpu()
        texts = [f"{classes[int(c)]} {float(s):.2f}" for c, s in zip(labels, scores, strict=True)]
        drawn = draw_bounding_boxes(image, boxes, texts, colors="red", width=max(1, round(max(height, width) / 200))) \
            if len(boxes) else image
        Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(out_dir / f"{name}.png")
        rows.append({"file": str(path), "boxes": [[round(v, 2) for v in b] for b in boxes.tolist()],
                     "labels": [ids[int(c)] for c in labels], "classes": [classes[int(c)] for c in labels],
                     "scores": [round(float(s), 5) for s in scores]})
    return rows


def _segment(config: Any, spec: InferenceSpec, model: nn.Module, images: list[torch.Tensor], paths: list[Path],
             names: list[str], classes: list[str], device: torch.device, out_dir: Path) -> list[dict[str, Any]]:
    from PIL import Image
    from torch.nn import functional as F
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as tvf

    assert spec.mean is not None and spec.std is not None  # segmenters take normalised input
    normalize = v2.Normalize(list(spec.mean), list(spec.std))
    rows = []
    for path, name, image in zip(paths, names, images, strict=True):
        size = list(image.shape[-2:])
        model_input = tvf.resize(image, list(spec.image_size), antialias=True) if config.image_size else image
        x = normalize(model_input.float().div(255))[None].to(device)
        logits = model(x).float()
        if list(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        mask = logits.argmax(dim=1)[0].cpu()
        write_mask_pngs(out_dir, [(name, mask)])
        shown = overlay(image, mask, config.ignore_index)
        Image.fromarray(shown.permute(1, 2, 0).numpy()).save(out_dir / f"{name}_overlay.png")
        counts = torch.bincount(mask.flatten(), minlength=len(classes))
        rows.append({"file": str(path), "mask": str(out_dir / f"{name}.png"),
                     "pixels": {classes[k]: int(c) for k, c in enumerate(counts.tolist()) if c}})
    return rows


__all__ = ["PredictOutput", "predict_files"]
