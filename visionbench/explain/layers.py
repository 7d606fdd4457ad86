"""The layer Grad-CAM reads: the last convolutional stage of any model, or the one a user names.

One probe forward pass on an example input records, in the order they finish, every submodule's
output. A module is a *convolutional stage* when its output is a ``[N, C, H, W]`` float feature map
computed after at least one convolution, and it is not a pooling layer. The chosen layer is:

* classifiers: the last stage to finish whose map still has more than one position (else the last
  stage). A container finishes after its last child, so of the modules that return one same tensor
  the outermost is named: ``layer4`` (ResNet), ``features`` (MobileNet, EfficientNet, DenseNet,
  VGG, ConvNeXt), ``features.3`` / ``body.3`` (our ``cnn-small``), ``bn2`` (timm's EfficientNet);
* segmenters: the same rule inside the encoder, the deepest stage whose features every class
  shares: ``down.4`` (``unet_small``'s bottleneck), ``model.backbone.layer4`` (torchvision's
  ResNet segmenters), the backbone's last block (MobileNet ones). The decoder's last layer would
  only redraw each class's score map through the 1×1 head.

Models whose attention blocks run after that stage (ViT: only its patch embedding is a
convolution) have no convolutional stage at their end: Grad-CAM is refused with a message that
points to integrated gradients or ``--layer``. A ``--layer`` name must be one of
``model.named_modules()``; a wrong one is an error listing the stages found.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

# Pooling only summarises a feature map: Grad-CAM on it would lose the spatial layout it explains.
_POOLING = (nn.modules.pooling._AvgPoolNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
            nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._LPPoolNd)
CANDIDATES_SHOWN = 12


@dataclass(frozen=True)
class Stage:
    """One convolutional stage of a probe pass: its qualified name and output shape ``[N, C, H, W]``."""

    name: str
    shape: tuple[int, ...]

    @property
    def positions(self) -> int:
        """Spatial positions ``H * W`` of the map."""
        return self.shape[-2] * self.shape[-1]


@dataclass(frozen=True)
class Probe:
    """What one forward pass showed: the stages in the order they finished (outermost module of
    each output tensor), and the position in that order of the last attention block (-1: none)."""

    stages: list[Stage]
    last_attention: int
    stage_order: list[int]  # finishing position of each stage, to compare with last_attention


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or "Attention" in type(module).__name__


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def probe(model: nn.Module, example: Tensor) -> Probe:
    """Run ``model`` once on ``example`` (no gradients) and record its convolutional stages."""
    events: list[tuple[str, nn.Module, object]] = []
    handles = [module.register_forward_hook(lambda m, a, out, name=name: events.append((name, m, out)))
               for name, module in model.named_modules() if name]
    # Inside attention, 4-D tensors are heads x tokens x features (timm's q_norm), not feature maps.
    attention = [name + "." for name, module in model.named_modules() if name and _is_attention(module)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    seen_conv, last_attention = False, -1
    by_tensor: dict[int, tuple[int, Stage]] = {}  # id(output) -> (finish position, outermost stage)
    for position, (name, module, output) in enumerate(events):
        seen_conv = seen_conv or isinstance(module, nn.modules.conv._ConvNd)
        if _is_attention(module):
            last_attention = position
        if not (seen_conv and isinstance(output, Tensor) and output.dim() == 4 and output.is_floating_point()):
            continue
        if any(name.startswith(prefix) for prefix in attention):
            continue
        if isinstance(module, _POOLING) or (output.shape[-2] * output.shape[-1] == 1 and not _has_conv(module)):
            continue  # a pooling step (timm's SelectAdaptivePool2d included), not a stage
        # ``events`` keeps every output alive, so ids are not reused within the pass.
        by_tensor[id(output)] = (position, Stage(name, tuple(output.shape)))
    ordered = sorted(by_tensor.values(), key=lambda item: item[0])
    return Probe([stage for _, stage in ordered], last_attention, [position for position, _ in ordered])


def encoder_prefix(model: nn.Module) -> str:
    """The qualified name of a segmenter's encoder (module docstring), or ``""`` for the whole model."""
    inner, prefix = (model.model, "model.") if isinstance(getattr(model, "model", None), nn.Module) else (model, "")
    if isinstance(getattr(inner, "backbone", None), nn.Module):
        return prefix + "backbone"
    if type(inner).__name__ == "UNet" and isinstance(getattr(inner, "down", None), nn.Module):
        return prefix + "down"
    return ""


def _within(name: str, prefix: str) -> bool:
    return not prefix or name == prefix or name.startswith(prefix + ".")


def last_conv_stage(model: nn.Module, example: Tensor, *, task: str = "classify") -> str:
    """The name of the layer Grad-CAM reads by default (module docstring).

    Raises:
        ValueError: the model has no convolutional stage, or attention blocks run after its last
            one; the message suggests integrated gradients and ``--layer``.
    """
    found = probe(model, example)
    prefix = encoder_prefix(model) if task == "segment" else ""
    chosen = [(stage, order) for stage, order in zip(found.stages, found.stage_order, strict=True)
              if _within(stage.name, prefix)]
    name = type(model).__name__
    if not chosen:
        raise ValueError(f"model {name} has no convolutional layer with a [N, C, H, W] feature map, so Grad-CAM "
                         "has nothing to read. Use --method integrated-gradients (it needs no layer).")
    spatial = [item for item in chosen if item[0].positions > 1]
    stage, order = (spatial or chosen)[-1]
    if found.last_attention > order:
        raise ValueError(f"model {name} runs attention blocks after its last convolutional stage ({stage.name!r}, a "
                         "transformer such as a ViT): Grad-CAM there would explain the patch embedding, not the "
                         "prediction. Use --method integrated-gradients, or --layer NAME with a [N, C, H, W] "
                         "feature map of your choice.")
    return stage.name


def resolve_layer(model: nn.Module, example: Tensor, name: str | None, *, task: str = "classify"
                  ) -> tuple[str, nn.Module]:
    """``(name, module)`` of the layer to explain: ``name`` when given (checked), else
    :func:`last_conv_stage`.

    Raises:
        ValueError: ``name`` is not a module of ``model``, or not a convolutional stage of it; the
            message lists the stages found, last first.
    """
    modules = dict(model.named_modules())
    if name is None:
        name = last_conv_stage(model, example, task=task)
        return name, modules[name]
    stages = probe(model, example).stages
    if name not in modules or not name:
        raise ValueError(f"--layer {name!r} is not a module of model {type(model).__name__}. Give one of its "
                         f"convolutional stages: {_listing(stages)}.")
    if name not in {stage.name for stage in stages}:
        raise ValueError(f"--layer {name!r} of model {type(model).__name__} does not output a [N, C, H, W] feature "
                         f"map after a convolution (or it is a pooling layer). Give one of: {_listing(stages)}.")
    return name, modules[name]


def _listing(stages: list[Stage]) -> str:
    """The last stages first, with their output shapes, as a message lists them."""
    if not stages:
        return "none found (use --method integrated-gradients)"
    shown = [f"{s.name} {list(s.shape[1:])}" for s in reversed(stages[-CANDIDATES_SHOWN:])]
    more = len(stages) - CANDIDATES_SHOWN
    return ", ".join(shown) + (f", and {more} earlier" if more > 0 else "")


__all__ = ["Probe", "Stage", "encoder_prefix", "last_conv_stage", "probe", "resolve_layer"]
