"""Why a model predicted what it did: Grad-CAM, Grad-CAM++ and integrated gradients, as heatmaps.

:func:`explain_images` takes a model and a batch of its (normalised) inputs and returns one
heatmap per image, method and target class, at the input's size with values in ``[0, 1]``. The
maths lives in :mod:`visionbench.explain.saliency` (pure tensor functions), the choice of layer in
:mod:`visionbench.explain.layers`, the pictures in :mod:`visionbench.explain.overlay`; the command
``visionbench explain`` (:mod:`visionbench.explain.files`) and the run report's explanations
(:mod:`visionbench.explain.run_examples`) are thin users of these.

**Methods**: ``"gradcam"`` and ``"gradcam++"`` read the layer ``layer`` (default: the model's last
convolutional stage, :func:`~visionbench.explain.layers.last_conv_stage`); ``"integrated-gradients"``
attributes the score to the input pixels from ``baseline`` (``"black"`` or ``"mean"``) in ``steps``
trapezoidal steps and needs no layer, so it also explains transformers.

**Targets**: classification: one class per image, by default the predicted one; the score is its
logit. Segmentation: any classes per image, by default those the model predicts on some pixel
(class 0, the background, left out when another class is predicted); the score of class ``c`` is
the sum of its logit over the pixels predicted as ``c`` (every pixel when none is).

Example:
    >>> result = explain_images(model, images, methods=("gradcam",))  # doctest: +SKIP
    >>> result.explanations[0].heatmap.shape  # doctest: +SKIP
    torch.Size([32, 32])
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from visionbench.explain import saliency
from visionbench.explain.layers import resolve_layer

METHODS = ("gradcam", "gradcam++", "integrated-gradients")
LABELS = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "integrated-gradients": "Integrated gradients"}
_CAMS = {"gradcam": saliency.gradcam, "gradcam++": saliency.gradcam_plus_plus}
BACKGROUND = 0  # segmentation's class 0 (shapes, VOC): left out of the default targets when others are predicted
MAX_SEGMENT_TARGETS = 4


@dataclass(frozen=True)
class Explanation:
    """One heatmap.

    Attributes:
        sample: the image's position in the batch.
        method: one of :data:`METHODS`.
        layer: the layer read (``None`` for integrated gradients).
        target: the class explained.
        target_probability: classification: the target's probability; segmentation: its mean
            probability over the pixels predicted as the target (over all pixels when none is).
        heatmap: ``float [H, W]`` at the input's size, in ``[0, 1]`` (each map divided by its maximum).
    """

    sample: int
    method: str
    layer: str | None
    target: int
    target_probability: float
    heatmap: Tensor


@dataclass(frozen=True)
class ExplainResult:
    """What :func:`explain_images` returns.

    Attributes:
        predicted: per image, the predicted class (classification) or the classes predicted on
            some pixel, most pixels first (segmentation).
        probability: per image, the predicted class's probability (classification) or the mean
            over pixels of the winning class's probability (segmentation).
        explanations: one per image, method and target, in that order.
        layer: the layer Grad-CAM read (``None`` when only integrated gradients ran).
    """

    predicted: list[int | list[int]]
    probability: list[float]
    explanations: list[Explanation]
    layer: str | None


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """``methods`` as a tuple, each one of :data:`METHODS`; an error names a wrong one."""
    methods = tuple(methods)
    if not methods:
        raise ValueError(f"give at least one method: {', '.join(METHODS)}.")
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"--method must be one of {', '.join(METHODS)}; got {method!r}. "
                             "Use e.g. --method gradcam.")
    return methods


def _probabilities(output: Tensor, multilabel: bool) -> Tensor:
    """Class probabilities of the model output (softmax over classes; sigmoid when multi-label)."""
    return torch.sigmoid(output) if multilabel else torch.softmax(output, dim=1)


def default_segment_targets(predicted: Tensor, limit: int = MAX_SEGMENT_TARGETS) -> list[int]:
    """The classes of a predicted mask ``[H, W]`` worth explaining: those on some pixel, most
    pixels first, the background (class 0) left out when another class is there; at most ``limit``."""
    counts = torch.bincount(predicted.flatten())
    present = [int(c) for c in torch.argsort(counts, descending=True, stable=True) if counts[c] > 0]
    foreground = [c for c in present if c != BACKGROUND]
    return (foreground or present)[:limit]


def explain_images(model: nn.Module, inputs: Tensor, *, task: str = "classify",
                   methods: Sequence[str] = ("gradcam",), targets: Sequence[int | Sequence[int]] | None = None,
                   layer: str | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                   baseline: str = "black", steps: int = 32, multilabel: bool = False) -> ExplainResult:
    """Heatmaps of ``model`` on ``inputs`` (module docstring for methods and targets).

    Args:
        model: a classifier (logits ``[B, K]``) or segmenter (logits ``[B, K, H, W]``); put in eval mode.
        inputs: ``[B, C, H, W]``, preprocessed as the model was trained (normalised).
        task: ``"classify"`` or ``"segment"``.
        methods: any of :data:`METHODS`.
        targets: per image, the class (classification) or classes (segmentation) to explain;
            ``None``: the default targets.
        layer: the module name Grad-CAM reads (``model.named_modules()``); ``None``: the last
            convolutional stage.
        mean, std: the normalisation of ``inputs``, for the ``"black"`` baseline.
        baseline, steps: integrated gradients' baseline (``"black"`` or ``"mean"``) and steps.
        multilabel: the classifier's probabilities are sigmoids (one per label).

    Raises:
        ValueError: an unknown method, task, target or layer, or a model without a layer
            Grad-CAM can read (the message says what to use instead).
    """
    methods = check_methods(methods)
    if task not in ("classify", "segment"):
        raise ValueError(f"task must be 'classify' or 'segment' to explain; got {task!r}.")
    if baseline not in saliency.BASELINES:
        raise ValueError(f"--baseline must be one of {', '.join(saliency.BASELINES)}; got {baseline!r}.")
    if targets is not None and len(targets) != len(inputs):
        raise ValueError(f"targets must give one entry per image; got {len(targets)} for {len(inputs)} images.")
    model.eval()
    cam_methods = [m for m in methods if m in _CAMS]
    layer_name, module = resolve_layer(model, inputs[:1], layer, task=task) if cam_methods else (None, None)
    if module is not None and task == "classify":  # the one forward pass of Grad-CAM also gives the predictions
        output, cams = _classification_cams(model, module, inputs, targets, cam_methods)
        chosen = _targets(output, task, targets)
    else:
        with torch.no_grad():
            output = model(inputs)
        chosen = _targets(output, task, targets)
        cams = _segmentation_cams(model, module, inputs, chosen, cam_methods) if module is not None else {}
    explanations: list[Explanation] = []
    size = tuple(inputs.shape[-2:])
    for b, image_targets in enumerate(chosen):
        for method in methods:
            for target in image_targets:
                if method in _CAMS:
                    heat = cams[(method, target)][b]
                else:
                    heat = _ig_map(model, inputs[b], task, target, output[b:b + 1], mean, std, baseline, steps)
                heat = saliency.normalize_maps(saliency.upsample(heat[None], size))[0]
                probability = _target_probability(output[b:b + 1], task, target, multilabel)
                explanations.append(Explanation(b, method, layer_name if method in _CAMS else None, target,
                                                probability, heat.cpu()))
    predicted, probability = _predictions(output, task, multilabel)
    return ExplainResult(predicted, probability, explanations, layer_name)


def _targets(output: Tensor, task: str, targets: Sequence[int | Sequence[int]] | None) -> list[list[int]]:
    """Per image, the target classes: as given (checked against the class count) or the defaults."""
    classes = output.shape[1]
    if targets is None:
        if task == "classify":
            return [[int(c)] for c in output.argmax(dim=1)]
        return [default_segment_targets(mask) for mask in output.argmax(dim=1)]
    chosen = [[int(t)] if isinstance(t, int) else [int(c) for c in t] for t in targets]
    for image_targets in chosen:
        for target in image_targets:
            if not 0 <= target < classes:
                raise ValueError(f"target class {target} is out of range: the model has {classes} classes "
                                 f"(0..{classes - 1}). Give a class of the run.")
    return chosen


def _predicted_logit(logits: Tensor) -> Tensor:
    """Each sample's largest logit: the predicted class's, so its gradient is the default target's."""
    return logits.max(dim=1).values


def _classification_cams(model: nn.Module, module: nn.Module, inputs: Tensor,
                         targets: Sequence[int | Sequence[int]] | None, methods: list[str]
                         ) -> tuple[Tensor, dict[tuple[str, int], Tensor]]:
    """The model output and ``{(method, class): maps [B, h, w]}``: each image's row is the map of
    its own target (given, else its predicted class), filed under every class targeted."""
    if targets is None:
        score = _predicted_logit
    else:
        score = saliency.classification_score([t if isinstance(t, int) else t[0] for t in targets])
    activations, (gradients,), output = saliency.layer_gradients(model, module, inputs, [score])
    maps = {m: _CAMS[m](activations, gradients) for m in methods}
    classes = range(output.shape[1])
    return output, {(m, c): maps[m] for m in methods for c in classes}


def _segmentation_cams(model: nn.Module, module: nn.Module, inputs: Tensor, chosen: list[list[int]],
                       methods: list[str]) -> dict[tuple[str, int], Tensor]:
    """``{(method, class): maps [B, h, w]}`` for every class any image targets, from one forward
    pass (rows of images that do not target the class are unused)."""
    classes = sorted({c for t in chosen for c in t})
    activations, gradients, _ = saliency.layer_gradients(model, module, inputs,
                                                         [saliency.segmentation_score(c) for c in classes])
    return {(m, c): _CAMS[m](activations, g) for m in methods for c, g in zip(classes, gradients, strict=True)}


def _ig_map(model: nn.Module, x: Tensor, task: str, target: int, output: Tensor, mean: Sequence[float] | None,
            std: Sequence[float] | None, baseline: str, steps: int) -> Tensor:
    """The integrated-gradients map ``[H, W]`` of one input ``[C, H, W]`` for ``target``."""
    base = saliency.baseline_like(x, baseline, mean, std)
    if task == "classify":
        score = saliency.classification_score([target])
    else:  # the input's own predicted region, fixed along the path
        score = saliency.segmentation_score(target, saliency.predicted_region(output, target))
    attributions = saliency.integrated_gradients(model, x, base, score, steps=steps)
    return saliency.attribution_map(attributions)


def _target_probability(output: Tensor, task: str, target: int, multilabel: bool) -> float:
    """The target's probability in one image's output (segmentation: mean over its predicted region)."""
    probs = _probabilities(output, multilabel and task == "classify")
    if task == "classify":
        return float(probs[0, target])
    region = saliency.predicted_region(output, target)[0]
    return float((probs[0, target] * region).sum() / region.sum())


def _predictions(output: Tensor, task: str, multilabel: bool) -> tuple[list, list[float]]:
    """Per image, the predicted class(es) and the confidence (:class:`ExplainResult`)."""
    probs = _probabilities(output, multilabel and task == "classify")
    top = probs.max(dim=1)
    if task == "classify":
        return [int(c) for c in top.indices], [float(p) for p in top.values]
    predicted = []
    for mask in top.indices:
        counts = torch.bincount(mask.flatten())
        predicted.append([int(c) for c in torch.argsort(counts, descending=True, stable=True) if counts[c] > 0])
    return predicted, [float(v.mean()) for v in top.values]


__all__ = ["BACKGROUND", "LABELS", "METHODS", "ExplainResult", "Explanation", "check_methods",
           "default_segment_targets", "explain_images"]


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`visionbench.api.explain`.

    ``visionbench.explain(run, images)`` is the API function, but importing this package (as
    training does for the report's panels) makes the attribute ``visionbench.explain`` the package:
    calling the package forwards to the function, so both spellings keep working.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from visionbench.api import explain

        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
