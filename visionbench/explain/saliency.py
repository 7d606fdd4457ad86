"""Saliency maps as plain tensor functions: Grad-CAM, Grad-CAM++ and integrated gradients.

The functional core takes tensors and returns tensors; :func:`layer_gradients` and
:func:`input_gradients` are the two places that run a model (a forward hook on one layer, then
``torch.autograd.grad``), and everything else is arithmetic on what they return.

Definitions (``A``: the layer's activations ``[B, K, h, w]``; ``y``: the target score of each
sample; ``g = dy/dA``, same shape as ``A``):

* **Grad-CAM** (Selvaraju et al. 2017, eq. 1–2): ``alpha_k = mean_ij g_kij``, map
  ``ReLU(sum_k alpha_k A_k)``.
* **Grad-CAM++** (Chattopadhyay et al. 2018, eq. 19 with the exponential score, so that the
  higher derivatives are powers of ``g``): ``a_kij = g² / (2 g² + (sum_ab A_kab) g³)`` (0 where
  ``g = 0``), ``w_k = sum_ij a_kij ReLU(g_kij)``, map ``ReLU(sum_k w_k A_k)``.
* **Integrated gradients** (Sundararajan et al. 2017, eq. 1): ``(x - x0) * integral_0^1
  dy/dx(x0 + t (x - x0)) dt``, the integral by the trapezoidal rule on ``steps`` equal intervals
  (``steps + 1`` gradient evaluations). The attributions sum to ``y(x) - y(x0)`` (completeness):
  exactly for a model linear in ``x``, to ``O(1 / steps²)`` for a smooth one.

**Targets.** Classification: the target class's logit (before the softmax, as Grad-CAM's authors
use). Segmentation: the sum of the target class's logit over the pixels predicted as that class
(:func:`segmentation_score`), over every pixel when no pixel is.

**Baselines** of integrated gradients, in the model's (normalised) input space
(:func:`baseline_like`): ``"black"``, a black image (pixel value 0 normalised:
``-mean / std`` per channel), and ``"mean"``, the zero tensor, which is the dataset's mean colour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

BASELINES = ("black", "mean")

ScoreFn = Callable[[Tensor], Tensor]  # model output -> one target score per sample [B]


# ------------------------------------------------------------------------------------ pure maps


def gradcam(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM maps ``[B, h, w]`` from a layer's ``activations`` and the target score's
    ``gradients`` with respect to them (both ``[B, K, h, w]``)."""
    _check_pair(activations, gradients)
    weights = gradients.mean(dim=(2, 3), keepdim=True)  # alpha_k: global-average-pooled gradients
    return F.relu((weights * activations).sum(dim=1))


def gradcam_plus_plus(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM++ maps ``[B, h, w]`` (module docstring: the paper's closed form for the
    exponential score, where the second and third derivatives are ``g²`` and ``g³``)."""
    _check_pair(activations, gradients)
    g2, g3 = gradients.pow(2), gradients.pow(3)
    sums = activations.sum(dim=(2, 3), keepdim=True)
    denominator = 2 * g2 + sums * g3
    # Where g = 0 the position contributes nothing (0/0 in the paper); keep the division finite.
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where(gradients != 0, g2 / safe, torch.zeros_like(g2))
    weights = (alpha * F.relu(gradients)).sum(dim=(2, 3), keepdim=True)
    return F.relu((weights * activations).sum(dim=1))


def trapezoid_weights(steps: int, *, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``(alphas, weights)`` of the trapezoidal rule on ``[0, 1]`` with ``steps`` intervals:
    ``steps + 1`` points; the weights sum to 1."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}. Use e.g. 32.")
    alphas = torch.linspace(0, 1, steps + 1, dtype=dtype)
    weights = torch.full((steps + 1,), 1.0 / steps, dtype=dtype)
    weights[0] = weights[-1] = 0.5 / steps
    return alphas, weights


def integrated_gradients_from(inputs: Tensor, baseline: Tensor, path_gradients: Tensor, weights: Tensor) -> Tensor:
    """Attributions ``[C, H, W]`` of one input from the gradients along the straight path.

    Args:
        inputs, baseline: ``[C, H, W]``.
        path_gradients: ``[S, C, H, W]``, the gradient at ``baseline + alpha_s (inputs - baseline)``.
        weights: ``[S]`` quadrature weights of the ``alpha_s`` (:func:`trapezoid_weights`).
    """
    average = (weights.to(path_gradients.dtype).view(-1, 1, 1, 1) * path_gradients).sum(dim=0)
    return (inputs - baseline) * average


def attribution_map(attributions: Tensor) -> Tensor:
    """The positive evidence of attributions ``[..., C, H, W]`` per pixel: ``ReLU(sum over C)``
    (``[..., H, W]``), what the overlays show for integrated gradients."""
    return F.relu(attributions.sum(dim=-3))


def upsample(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Maps ``[B, h, w]`` resized to ``size`` ``(H, W)`` (bilinear, half-pixel centres)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def normalize_maps(maps: Tensor) -> Tensor:
    """Each map of ``[B, H, W]`` divided by its maximum, so it spans ``[0, 1]``; a map without a
    positive value stays 0 (no evidence is shown as none, not stretched)."""
    peak = maps.flatten(1).amax(dim=1).view(-1, 1, 1)
    return torch.where(peak > 0, maps / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(maps))


def baseline_like(inputs: Tensor, kind: str, mean: Sequence[float] | None, std: Sequence[float] | None) -> Tensor:
    """The baseline of integrated gradients for normalised ``inputs`` ``[..., C, H, W]``
    (module docstring): ``"black"`` is ``-mean / std`` per channel, ``"mean"`` is zeros."""
    if kind not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}; got {kind!r}.")
    if kind == "mean" or mean is None or std is None:
        return torch.zeros_like(inputs)
    black = -torch.tensor(mean, dtype=inputs.dtype, device=inputs.device) / torch.tensor(
        std, dtype=inputs.dtype, device=inputs.device)
    return black.view(-1, 1, 1).expand_as(inputs).clone()


# --------------------------------------------------------------------------------- target scores


def classification_score(targets: Sequence[int]) -> ScoreFn:
    """Score function: logit ``targets[b]`` of sample ``b`` of logits ``[B, K]`` (one target is
    used for every sample, as along the path of integrated gradients)."""
    def score(logits: Tensor) -> Tensor:
        index = torch.as_tensor(list(targets), device=logits.device).view(-1, 1)
        classes = logits.shape[1]
        if bool(((index < 0) | (index >= classes)).any()):
            raise ValueError(f"target classes {list(targets)} must lie in 0..{classes - 1}: the model has {classes} "
                             "classes. Give a class of the run.")
        if index.shape[0] == 1:
            index = index.expand(logits.shape[0], 1)
        return logits.gather(1, index)[:, 0]

    return score


def predicted_region(logits: Tensor, target: int) -> Tensor:
    """The pixels ``[B, H, W]`` (0/1, the logits' dtype) of logits ``[B, K, H, W]`` predicted as
    class ``target``; every pixel of an image where none is."""
    region = (logits.argmax(dim=1) == target).to(logits.dtype)
    empty = region.flatten(1).sum(dim=1) == 0
    return torch.where(empty.view(-1, 1, 1), torch.ones_like(region), region)


def segmentation_score(target: int, region: Tensor | None = None) -> ScoreFn:
    """Score function for class ``target`` of logits ``[B, K, H, W]``: per sample, the sum of the
    class's logit over ``region`` ``[B or 1, H, W]``, by default the pixels predicted as the class
    in these logits (:func:`predicted_region`). Integrated gradients passes the region of the
    input itself, so that every point of its path scores the same pixels."""
    def score(logits: Tensor) -> Tensor:
        mask = predicted_region(logits.detach(), target) if region is None else region.to(logits)
        return (logits[:, target] * mask).flatten(1).sum(dim=1)

    return score


# ------------------------------------------------------------------------------- running the model


def layer_gradients(model: nn.Module, layer: nn.Module, inputs: Tensor, scores: Sequence[ScoreFn]
                    ) -> tuple[Tensor, list[Tensor], Tensor]:
    """One forward pass of ``model`` on ``inputs``: ``(activations, gradients, output)``, the
    output of ``layer`` ``[B, K, h, w]``, the gradient of each score function's sum over the batch
    with respect to it (samples are independent in eval mode, so each sample's rows are its own
    gradient), and the model output (detached).

    The hook hands the rest of the network a copy of the layer's output, so an in-place operation
    after the layer (DenseNet's ``F.relu(..., inplace=True)``) cannot change the activations read here.
    """
    captured: list[Tensor] = []

    def hook(module: nn.Module, args: object, output: object) -> Tensor:
        if not isinstance(output, Tensor):
            raise ValueError(f"layer {type(module).__name__} returns {type(output).__name__}, not a tensor; "
                             "Grad-CAM needs a [N, C, H, W] feature map. Give another --layer.")
        captured.append(output)
        return output.clone()

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            # Gradients must reach the layer even when every weight before it is frozen.
            output = model(inputs.detach().requires_grad_(True))
            if not captured:
                raise ValueError(f"layer {type(layer).__name__} did not run in the model's forward pass. "
                                 "Give another --layer.")
            activation = captured[-1]
            if activation.dim() != 4:
                raise ValueError(f"layer {type(layer).__name__} outputs shape {list(activation.shape)}, not a "
                                 "[N, C, H, W] feature map; Grad-CAM needs one. Give another --layer, or use "
                                 "--method integrated-gradients.")
            gradients = []
            for i, score in enumerate(scores):
                total = score(output).sum()
                gradients.append(torch.autograd.grad(total, activation, retain_graph=i < len(scores) - 1)[0].detach())
    finally:
        handle.remove()
    return activation.detach(), gradients, output.detach()


def input_gradients(model: nn.Module, inputs: Tensor, score: ScoreFn) -> Tensor:
    """The gradient of ``score(model(inputs)).sum()`` with respect to ``inputs`` (``[B, C, H, W]``)."""
    with torch.enable_grad():
        x = inputs.detach().requires_grad_(True)
        total = score(model(x)).sum()
        return torch.autograd.grad(total, x)[0].detach()


def integrated_gradients(model: nn.Module, inputs: Tensor, baseline: Tensor, score: ScoreFn, *, steps: int = 32,
                         chunk: int = 16) -> Tensor:
    """Integrated-gradients attributions ``[C, H, W]`` of one input ``[C, H, W]`` (module
    docstring), the ``steps + 1`` path points evaluated ``chunk`` at a time.

    ``score`` sees batches of path points of the one input and must score each for the same
    target: ``classification_score([c])``, or ``segmentation_score(c, region)`` with the input's
    own predicted region.
    """
    alphas, weights = trapezoid_weights(steps, dtype=inputs.dtype)
    alphas, weights = alphas.to(inputs.device), weights.to(inputs.device)
    parts = []
    for start in range(0, len(alphas), chunk):
        a = alphas[start:start + chunk].view(-1, 1, 1, 1)
        parts.append(input_gradients(model, baseline + a * (inputs - baseline), score))
    return integrated_gradients_from(inputs, baseline, torch.cat(parts), weights)


def _check_pair(activations: Tensor, gradients: Tensor) -> None:
    if activations.dim() != 4 or activations.shape != gradients.shape:
        raise ValueError(f"activations and gradients must both be [B, K, h, w] of one shape; got "
                         f"{list(activations.shape)} and {list(gradients.shape)}.")


__all__ = ["BASELINES", "attribution_map", "baseline_like", "classification_score", "gradcam", "gradcam_plus_plus",
           "input_gradients", "integrated_gradients", "integrated_gradients_from", "layer_gradients",
           "normalize_maps", "predicted_region", "segmentation_score", "trapezoid_weights", "upsample"]
