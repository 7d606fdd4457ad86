"""``visionbench explain RUN IMAGES…``: heatmap panels of image files, and ``explain.json``.

Each image is preprocessed as ``visionbench predict`` does (the run's ``inference.json``: resize,
crop, normalisation), explained by :func:`visionbench.explain.explain_images`, and written as one
PNG per image and method, ``NAME_METHOD.png`` (``gradcam``, ``gradcampp``, ``ig``): the model's
input, then one overlay per target, under a title with the prediction. ``explain.json`` lists one
record per image, method and target: ``image``, ``predicted`` (a class name; segmentation: the
names of the classes on some pixel), ``probability`` (of the predicted class; segmentation: the
mean over pixels of the winning class's probability), ``target``, ``target_probability``,
``method``, ``layer`` (``null`` for integrated gradients) and ``file``.

Detection runs are refused: the explanations cover classification and segmentation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from visionbench.engine.inference_spec import InferenceSpec
from visionbench.explain import LABELS, ExplainResult, check_methods, explain_images
from visionbench.explain.overlay import overlay_tiles, panel, to_display_image, write_png

EXPLAIN_JSON = "explain.json"
SLUGS = {"gradcam": "gradcam", "gradcam++": "gradcampp", "integrated-gradients": "ig"}
SIDE = 224  # px: long side of each tile of a panel
MAX_TITLE_CLASSES = 6  # segmentation: predicted classes named in a title


@dataclass(frozen=True)
class ExplainOutput:
    """What ``visionbench explain`` wrote: the folder and the ``explain.json`` records."""

    out_dir: Path
    rows: list[dict[str, Any]]


def check_task(task: str, run_dir: Path) -> None:
    """Explanations cover classification and segmentation runs; a detection run is an error."""
    if task == "detect":
        raise ValueError(f"run {str(run_dir)!r} is a detection run; `visionbench explain` covers classification and "
                         "segmentation runs. Use `visionbench predict` to see its boxes.")


def resolve_target(target: str | int | None, classes: list[str]) -> int | None:
    """The class index of ``target``: a class name of the run, or its index; ``None`` stays ``None``."""
    if target is None:
        return None
    text = str(target)
    if text in classes:
        return classes.index(text)
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    shown = ", ".join(classes[:20]) + (", …" if len(classes) > 20 else "")
    raise ValueError(f"--target must be a class name or index of the run; got {text!r}. Its classes: {shown}.")


def classify_input(spec: InferenceSpec, image: Tensor) -> Tensor:
    """A decoded ``uint8 [3, H, W]`` image as the run's classifier input ``[1, C, H, W]``
    (the run's evaluation preset, as ``visionbench predict`` applies it)."""
    from torchvision.transforms.v2 import functional as tvf

    from visionbench.data.transforms import build_preset

    assert spec.image_size is not None and spec.mean is not None and spec.std is not None  # classify has them
    preset = build_preset("none", train=False, image_size=spec.image_size, native_size=spec.native_size,
                          mean=spec.mean, std=spec.std, resize_size=spec.resize_size)
    if spec.in_channels == 1:
        image = tvf.rgb_to_grayscale(image)
    if preset.sample is not None:
        image = preset.sample(image)
    elif tuple(image.shape[-2:]) != spec.image_size:
        image = tvf.resize(image, list(spec.image_size), antialias=True)
    return preset.batch(image[None])


def segment_input(spec: InferenceSpec, config: Any, image: Tensor) -> Tensor:
    """A decoded ``uint8 [3, H, W]`` image as the run's segmenter input ``[1, C, H, W]`` (resized
    when the run trained at one ``image_size``, normalised), as ``visionbench predict`` does."""
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as tvf

    assert spec.mean is not None and spec.std is not None  # segmenters take normalised input
    if config.image_size and spec.image_size is not None:
        image = tvf.resize(image, list(spec.image_size), antialias=True)
    return v2.Normalize(list(spec.mean), list(spec.std))(image.float().div(255))[None]


def output_names(paths: list[Path]) -> list[str]:
    """One output stem per input: the file stem, made unique with ``-2``, ``-3``… on repeats."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        seen[path.stem] = seen.get(path.stem, 0) + 1
        names.append(path.stem if seen[path.stem] == 1 else f"{path.stem}-{seen[path.stem]}")
    return names


def explain_run(source: Path, config: Any, best: Path, paths: list[Path], *, out: str | Path | None,
                device: torch.device, methods: tuple[str, ...], target: str | None, layer: str | None,
                baseline: str, steps: int) -> ExplainOutput:
    """Load the run's model and preprocessing as ``visionbench predict`` does, and explain ``paths``.

    Args:
        source, config, best: the run directory, its config and its best weights.
        out: the folder to write (default ``RUN/explain``).
        methods, target, layer, baseline, steps: see :func:`visionbench.explain.explain_images`;
            ``target`` is a class name or index.
    """
    from visionbench.engine.inference_spec import inference_spec, read_inference_spec
    from visionbench.engine.run_model import load_run_model
    from visionbench.engine.threads import torch_threads

    check_task(config.task, source)
    methods = check_methods(methods)
    spec = read_inference_spec(source)
    if spec is None:  # a run older than inference.json: rebuild it from the training data
        from visionbench.engine.train import build_data

        spec = inference_spec(config.task, build_data(config))
    target_index = resolve_target(target, list(spec.classes))
    model = load_run_model(best, config, spec, spec.image_size).to(device)
    with torch_threads(config.threads):
        return explain_files(config, spec, model, paths, Path(out) if out else source / "explain", device=device,
                             methods=methods, target=target_index, layer=layer, baseline=baseline, steps=steps)


def explain_files(config: Any, spec: InferenceSpec, model: nn.Module, paths: list[Path], out_dir: Path, *,
                  device: torch.device, methods: tuple[str, ...], target: int | None, layer: str | None,
                  baseline: str, steps: int) -> ExplainOutput:
    """Explain every image of ``paths`` with ``model`` and write the panels and ``explain.json``."""
    from visionbench.data.folder import read_image_rgb

    images = [read_image_rgb(path) for path in paths]  # a bad file is an error naming it, before any output
    classes = list(spec.classes)
    rows: list[dict[str, Any]] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, name, image in zip(paths, output_names(paths), images, strict=True):
        x = (classify_input(spec, image) if config.task == "classify" else segment_input(spec, config, image)).to(device)
        targets = None if target is None else [target if config.task == "classify" else [target]]
        result = explain_images(model, x, task=config.task, methods=methods, targets=targets, layer=layer,
                                mean=spec.mean, std=spec.std, baseline=baseline, steps=steps,
                                multilabel=spec.multilabel)
        shown = to_display_image(x[0], spec.mean, spec.std)
        for method in methods:
            file = out_dir / f"{name}_{SLUGS[method]}.png"
            write_png(explanation_panel(result, method, shown, classes, path.name), file)
            rows += explanation_rows(result, method, classes, image=str(path), file=str(file))
    (out_dir / EXPLAIN_JSON).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return ExplainOutput(out_dir, rows)


def explanation_rows(result: ExplainResult, method: str, classes: list[str], *, image: str, file: str,
                     sample: int = 0) -> list[dict[str, Any]]:
    """The ``explain.json`` records of image ``sample`` of ``result`` for ``method``, one per
    target, keys in the documented order."""
    predicted = result.predicted[sample]
    names = classes[predicted] if isinstance(predicted, int) else [classes[c] for c in predicted]
    return [{"image": image, "predicted": names, "probability": round(result.probability[sample], 6),
             "target": classes[e.target], "target_probability": round(e.target_probability, 6),
             "method": method, "layer": e.layer, "file": file}
            for e in result.explanations if e.sample == sample and e.method == method]


def explanation_panel(result: ExplainResult, method: str, shown: Any, classes: list[str], caption: str, *,
                      sample: int = 0, true: str | None = None, extra: str = "", side: int = SIDE) -> Any:
    """The panel (a PIL image) of image ``sample`` of ``result`` for ``method``: its input
    ``shown`` (``uint8 [H, W, 3]``), then one overlay per target, under a title with the prediction
    (and the true class ``true`` when known), followed by ``extra``."""
    chosen = [e for e in result.explanations if e.sample == sample and e.method == method]
    image_tile, overlays = overlay_tiles(shown, [e.heatmap for e in chosen], side)
    label = LABELS[method] + (f" · {chosen[0].layer}" if chosen and chosen[0].layer else "")
    predicted = result.predicted[sample]
    if isinstance(predicted, int):  # classification: one target
        title = f"pred {classes[predicted]} (p={result.probability[sample]:.2f})" + (f", true {true}" if true else "")
        if chosen and chosen[0].target != predicted:
            title += f"; target {classes[chosen[0].target]} (p={chosen[0].target_probability:.2f})"
        captions = [caption, label]
    else:
        title = f"{label}: pred " + ", ".join(classes[c] for c in predicted[:MAX_TITLE_CLASSES])
        captions = [caption] + [f"{classes[e.target]} (p={e.target_probability:.2f})" for e in chosen]
    return panel([image_tile, *overlays], captions, title + extra)


__all__ = ["EXPLAIN_JSON", "ExplainOutput", "check_task", "classify_input", "explain_files", "explain_run",
           "explanation_panel", "explanation_rows", "resolve_target", "segment_input"]
