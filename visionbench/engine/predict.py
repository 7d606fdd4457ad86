"""Predictions of a trained run on new image files: classes with probabilities, boxes drawn on the
images, or colour-coded mask PNGs.

The run's best weights and its own evaluation preprocessing are used (the same resize and
normalisation as its test split), so a prediction here equals the prediction the run's test
evaluation would make on the same image.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionbench.data.folder import read_image_rgb
from visionbench.data.task_transforms import rescale_boxes
from visionbench.engine import checkpoint as ckpt
from visionbench.engine import rundir
from visionbench.engine.loaders import DataBundle

TOP_K = 5


@dataclass(frozen=True)
class PredictOutput:
    """What :func:`predict_files` wrote: the folder, and one summary row per image."""

    out_dir: Path
    rows: list[dict[str, Any]]


def load_run_model(run_dir: Path, config: Any, bundle: DataBundle, device: torch.device) -> nn.Module:
    """The run's ``best.safetensors`` in its model, on ``device``, in eval mode."""
    from visionbench.engine.train import build_model

    best = run_dir / rundir.BEST_WEIGHTS
    if not best.is_file():
        raise ValueError(f"run {str(run_dir)!r} has no {rundir.BEST_WEIGHTS}: it has not finished an epoch. Continue it "
                         f"with `visionbench train --resume {run_dir}`.")
    import dataclasses

    model = build_model(dataclasses.replace(config, weights=None), bundle.data, bundle.image_size)
    ckpt.load_weights_into(model, ckpt.read_weights(best), str(best))
    return model.to(device).eval()


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
def predict_files(config: Any, bundle: DataBundle, model: nn.Module, paths: list[Path], out_dir: Path, *,
                  device: torch.device, score_threshold: float | None = None) -> PredictOutput:
    """Predict every image of ``paths`` and write the results to ``out_dir``.

    * classify: ``predictions.csv`` (file, predicted class, probability, top-5 classes and probabilities);
    * detect: ``NAME.png`` with the boxes drawn and ``detections.json`` (file, boxes XYXY in pixels, labels,
      class names, scores) of detections scoring at least ``score_threshold`` (default the run's);
    * segment: ``NAME.png``, a palette PNG of class indices in the VOC colours, and ``NAME_overlay.png``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [read_image_rgb(path) for path in paths]  # ValueError naming a bad file, before any output
    names = _unique_stems(paths)
    classes = list(bundle.data.classes)
    if config.task == "classify":
        rows = _classify(config, bundle, model, images, paths, classes, device)
        _write_csv(out_dir / "predictions.csv", rows)
    elif config.task == "detect":
        threshold = config.score_threshold if score_threshold is None else score_threshold
        rows = _detect(config, bundle, model, images, paths, names, classes, device, threshold, out_dir)
        (out_dir / "detections.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    else:
        rows = _segment(config, bundle, model, images, paths, names, classes, device, out_dir)
    return PredictOutput(out_dir, rows)


def _classify(config: Any, bundle: DataBundle, model: nn.Module, images: list[torch.Tensor], paths: list[Path],
              classes: list[str], device: torch.device) -> list[dict[str, Any]]:
    from torchvision.transforms.v2 import functional as tvf

    preset = bundle.test.preset
    rows = []
    for path, image in zip(paths, images, strict=True):
        if bundle.data.in_channels == 1:
            image = tvf.rgb_to_grayscale(image)
        if preset.sample is not None:
            image = preset.sample(image)
        elif bundle.image_size and tuple(image.shape[-2:]) != tuple(bundle.image_size):
            image = tvf.resize(image, list(bundle.image_size), antialias=True)
        probs = torch.softmax(model(preset.batch(image[None]).to(device)).float(), dim=1)[0].cpu()
        top = torch.topk(probs, min(TOP_K, len(classes)))
        rows.append({"file": str(path), "pred": classes[int(top.indices[0])], "probability": float(top.values[0]),
                     "top": [[classes[int(i)], float(p)] for i, p in zip(top.indices, top.values, strict=True)]})
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "pred", "probability", *[f"top{k + 1}" for k in range(TOP_K)]])
        for row in rows:
            writer.writerow([row["file"], row["pred"], f"{row['probability']:.6f}",
                             *[f"{name}:{p:.6f}" for name, p in row["top"]]])


def _detect(config: Any, bundle: DataBundle, model: nn.Module, images: list[torch.Tensor], paths: list[Path], names: list[str],
            classes: list[str], device: torch.device, threshold: float, out_dir: Path) -> list[dict[str, Any]]:
    from PIL import Image
    from torchvision.transforms.v2 import functional as tvf
    from torchvision.utils import draw_bounding_boxes

    rows = []
    for path, name, image in zip(paths, names, images, strict=True):
        height, width = image.shape[-2:]
        resized = tvf.resize(image, list(bundle.image_size), antialias=True) if config.image_size else image
        prediction = model([resized.float().div(255).to(device)])[0]
        keep = prediction["scores"] >= threshold
        boxes = rescale_boxes(prediction["boxes"][keep].float().cpu(), tuple(resized.shape[-2:]), (height, width))
        labels, scores = prediction["labels"][keep].cpu(), prediction["scores"][keep].float().cpu()
        texts = [f"{classes[int(c)]} {float(s):.2f}" for c, s in zip(labels, scores, strict=True)]
        drawn = draw_bounding_boxes(image, boxes, texts, colors="red", width=max(1, round(max(height, width) / 200))) \
            if len(boxes) else image
        Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(out_dir / f"{name}.png")
        rows.append({"file": str(path), "boxes": [[round(v, 2) for v in b] for b in boxes.tolist()],
                     "labels": labels.tolist(), "classes": [classes[int(c)] for c in labels],
                     "scores": [round(float(s), 5) for s in scores]})
    return rows


def _segment(config: Any, bundle: DataBundle, model: nn.Module, images: list[torch.Tensor], paths: list[Path],
             names: list[str], classes: list[str], device: torch.device, out_dir: Path) -> list[dict[str, Any]]:
    from PIL import Image
    from torch.nn import functional as F
    from torchvision.transforms.v2 import functional as tvf

    from visionbench.engine.segment import overlay, write_mask_pngs

    rows = []
    for path, name, image in zip(paths, names, images, strict=True):
        size = list(image.shape[-2:])
        model_input = tvf.resize(image, list(bundle.image_size), antialias=True) if config.image_size else image
        x = bundle.test.normalize(model_input.float().div(255))[None].to(device)
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


__all__ = ["PredictOutput", "load_run_model", "predict_files"]
