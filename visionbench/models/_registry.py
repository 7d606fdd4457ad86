"""The model registry: ``@register_model`` fills it, ``create_model`` and ``list_models`` read it."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from visionbench._registry import Registry

MODELS = Registry("model")


def register_model(
    name: str, *, description: str, min_size: int = 1, size_multiple: int = 1, default_size: int = 224,
    task: str = "classify",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model builder ``(num_classes, in_channels, image_size) -> nn.Module``.

    Args:
        name: the name users type (``--model NAME``).
        task: what the model does: ``"classify"`` (logits ``[N, K]``), ``"detect"`` (the
            torchvision detector contract, 0-based labels) or ``"segment"`` (logits ``[N, K, H, W]``).
        description: one line shown by ``visionbench list models``.
        min_size: smallest input side the network handles well; smaller images are upscaled.
        size_multiple: the input side must be a multiple of this (ViT's patch size).
        default_size: input side for datasets of mixed image sizes (folders).
    """
    return MODELS.register(
        name, description=description, min_size=min_size, size_multiple=size_multiple, default_size=default_size,
        task=task,
    )


def create_model(name: str, *, num_classes: int, in_channels: int = 3, image_size: int = 224) -> nn.Module:
    """Build the registered model ``name`` with random initialisation.

    Example:
        >>> model = create_model("cnn-small", num_classes=10, in_channels=1, image_size=8)
    """
    return MODELS.get(name)(num_classes=num_classes, in_channels=in_channels, image_size=image_size)


def list_models(pattern: str = "*", *, task: str | None = None) -> list[str]:
    """Registered model names matching the shell-style ``pattern`` (e.g. ``"resnet*"``), of one
    ``task`` (``"classify"``, ``"detect"``, ``"segment"``) or of all."""
    return MODELS.names(pattern) if task is None else MODELS.names_for(task, pattern)


def model_input_size(name: str, native: tuple[int, int] | None, requested: int | None = None) -> tuple[int, int]:
    """The ``(H, W)`` the model gets: ``requested``, else the native size raised to the model's
    minimum, else (mixed sizes) the model's default; rounded up to its size multiple."""
    info = MODELS.info(name)
    if requested is not None:
        size = (requested, requested)
    elif native is None:
        size = (info["default_size"], info["default_size"])
    elif min(native) < info["min_size"]:
        scale = info["min_size"] / min(native)
        size = (math.ceil(native[0] * scale), math.ceil(native[1] * scale))
    else:
        size = tuple(native)  # type: ignore[assignment]
    multiple = info["size_multiple"]
    return (math.ceil(size[0] / multiple) * multiple, math.ceil(size[1] / multiple) * multiple)
