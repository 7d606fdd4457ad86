"""Predictions of a trained run on new image files: classes with probabilities, boxes drawn on the
images, or colour-coded mask PNGs.

The run's best weights and its own evaluation preprocessing are used (the same resize and
normalisation as its test split), so a prediction here equals the prediction the run's test
evaluation would make on the same image. Training writes what that preprocessing needs (classes,
input size, normalisation) to the run's ``inference.json``, so a run predicts without its
training data: on another machine, or after the data has moved.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionbench.config import TASKS
from visionbench.data.folder import read_image_rgb
from visionbench.data.task_transforms import rescale_boxes
from visionbench.engine import checkpoint as ckpt
from visionbench.engine import rundir
from visionbench.engine.loaders import DataBundle

TOP_K = 5


@dataclass(frozen=True)
class InferenceSpec:
    """What a run's model needs to predict a new image, without the training data.

    Attributes:
        task: ``"classify"``, ``"detect"`` or ``"segment"``.
        classes: class names, by class index.
        in_channels: 1 (grey) or 3 (RGB) model input channels.
        image_size: ``(H, W)`` the model was built for, or ``None`` (images keep their own size).
        native_size: classification: the stored size of every training image when they all
            share one (inputs of that size are not resized).
        mean, std: per-channel normalisation of ``[0, 1]`` images, or ``None`` where the model
            normalises its own input (torchvision's detectors).
    """

    task: str
    classes: tuple[str, ...]
    in_channels: int
    image_size: tuple[int, int] | None
    native_size: tuple[int, int] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    @property
    def num_classes(self) -> int:
        """The number of classes (what the model builders read, as of a dataset)."""
        return len(self.classes)


def inference_spec(task: str, bundle: DataBundle) -> InferenceSpec:
    """The :class:`InferenceSpec` of a task's loaded data."""
    def pair(size: Any) -> tuple[int, int] | None:
        return None if size is None else (int(size[0]), int(size[1]))

    return InferenceSpec(task=task, classes=tuple(str(c) for c in bundle.data.classes),
                         in_channels=int(bundle.data.in_channels), image_size=pair(bundle.image_size),
                         native_size=pair(bundle.native_size),
                         mean=None if bundle.mean is None else tuple(float(v) for v in bundle.mean),
                         std=None if bundle.std is None else tuple(float(v) for v in bundle.std))


def write_inference_spec(run_dir: Path, spec: InferenceSpec) -> None:
    """Write ``inference.json`` atomically (a crash leaves the old file or none, never half of one)."""
    path = run_dir / rundir.INFERENCE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(spec), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _spec_problem(raw: Any) -> str | None:
    """What is wrong with a parsed ``inference.json``, or ``None``."""
    if not isinstance(raw, dict):
        return f"it holds a {type(raw).__name__}, not an object"
    if raw.get("task") not in TASKS:
        return f"'task' is {raw.get('task')!r}, not classify, detect or segment"
    classes = raw.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "'classes' must be a non-empty list of names"
    if raw.get("in_channels") not in (1, 3):
        return f"'in_channels' is {raw.get('in_channels')!r}, not 1 or 3"
    for key in ("image_size", "native_size"):
        size = raw.get(key)
        if size is not None and not (isinstance(size, list) and len(size) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            return f"'{key}' is {size!r}, not null or [height, width] in pixels"
    for key in ("mean", "std"):
        values = raw.get(key)
        if values is not None and not (isinstance(values, list) and len(values) == raw["in_channels"] and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)):
            return f"'{key}' is {values!r}, not null or one finite number per input channel"
    if raw.get("std") is not None and min(raw["std"]) <= 0:
        return f"'std' is {raw['std']!r}; every value must be positive"
    if (raw.get("mean") is None) != (raw.get("std") is None):
        return "'mean' and 'std' must both be given or both be null"
    return None


def read_inference_spec(run_dir: Path) -> InferenceSpec | None:
    """The run's ``inference.json``, or ``None`` when the run predates it.

    Raises:
        ValueError: the file is not valid JSON or not a valid spec; the message names the file and
            the field, and how to recover.
    """
    path = run_dir / rundir.INFERENCE
    if not path.is_file():
        return None
    fix = (f"Restore it from a copy of the run, or delete it to rebuild it from the training data "
           f"(`visionbench predict` then loads the dataset named in {rundir.CONFIG}).")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}). {fix}") from None
    problem = _spec_problem(raw)
    if problem:
        raise ValueError(f"{str(path)!r} is not a valid inference spec: {problem}. {fix}")

    def optional_tuple(value: Any, kind: type) -> Any:
        return None if value is None else tuple(kind(v) for v in value)

    return InferenceSpec(task=raw["task"], classes=tuple(raw["classes"]), in_channels=raw["in_channels"],
                         image_size=optional_tuple(raw.get("image_size"), int),
                         native_size=optional_tuple(raw.get("native_size"), int),
                         mean=optional_tuple(raw.get("mean"), float), std=optional_tuple(raw.get("std"), float))


@dataclass(frozen=True)
class PredictOutput:
    """What :func:`predict_files` wrote: the folder, and one summary row per image."""

    out_dir: Path
    rows: list[dict[str, Any]]


def load_run_model(weights: Path, config: Any, data: Any, image_size: tuple[int, int] | None) -> nn.Module:
    """The run's model for ``data`` (a dataset, or an :class:`InferenceSpec`: what has
    ``num_classes`` and ``in_channels``) with the run's ``weights`` loaded, in eval mode."""
    from visionbench.engine.train import build_model

    model = build_model(dataclasses.replace(config, weights=None), data, image_size)
    ckpt.load_weights_into(model, ckpt.read_weights(weights), str(weights))
    return model.eval()


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
    * detect: ``NAME.png`` with the boxes drawn and ``detections.json`` (file, boxes XYXY in pixels, labels,
      class names, scores) of detections scoring at least ``score_threshold`` (default the run's);
    * segment: ``NAME.png``, a palette PNG of class indices in the VOC colours, and ``NAME_overlay.png``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [read_image_rgb(path) for path in paths]  # ValueError naming a bad file, before any output
    names = _unique_stems(paths)
    classes = list(spec.classes)
    if config.task == "classify":
        rows = _classify(spec, model, images, paths, classes, device)
        _write_csv(out_dir / "predictions.csv", rows)
    elif config.task == "detect":
        threshold = config.score_threshold if score_threshold is None else score_threshold
        rows = _detect(config, spec, model, images, paths, names, classes, device, threshold, out_dir)
        (out_dir / "detections.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    else:
        rows = _segment(config, spec, model, images, paths, names, classes, device, out_dir)
    return PredictOutput(out_dir, rows)


def _classify(spec: InferenceSpec, model: nn.Module, images: list[torch.Tensor], paths: list[Path],
              classes: list[str], device: torch.device) -> list[dict[str, Any]]:
    from torchvision.transforms.v2 import functional as tvf

    from visionbench.data.transforms import build_preset

    assert spec.image_size is not None and spec.mean is not None and spec.std is not None  # classify always has them
    preset = build_preset("none", train=False, image_size=spec.image_size, native_size=spec.native_size,
                          mean=spec.mean, std=spec.std)  # the run's eval preset (augment only changes training)
    rows = []
    for path, image in zip(paths, images, strict=True):
        if spec.in_channels == 1:
            image = tvf.rgb_to_grayscale(image)
        if preset.sample is not None:
            image = preset.sample(image)
        elif tuple(image.shape[-2:]) != spec.image_size:
            image = tvf.resize(image, list(spec.image_size), antialias=True)
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


def _detect(config: Any, spec: InferenceSpec, model: nn.Module, images: list[torch.Tensor], paths: list[Path], names: list[str],
            classes: list[str], device: torch.device, threshold: float, out_dir: Path) -> list[dict[str, Any]]:
    from PIL import Image
    from torchvision.transforms.v2 import functional as tvf
    from torchvision.utils import draw_bounding_boxes

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
                     "labels": labels.tolist(), "classes": [classes[int(c)] for c in labels],
                     "scores": [round(float(s), 5) for s in scores]})
    return rows


def _segment(config: Any, spec: InferenceSpec, model: nn.Module, images: list[torch.Tensor], paths: list[Path],
             names: list[str], classes: list[str], device: torch.device, out_dir: Path) -> list[dict[str, Any]]:
    from PIL import Image
    from torch.nn import functional as F
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as tvf

    from visionbench.engine.segment import overlay, write_mask_pngs

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


__all__ = ["InferenceSpec", "PredictOutput", "inference_spec", "load_run_model", "predict_files",
           "read_inference_spec", "write_inference_spec"]
