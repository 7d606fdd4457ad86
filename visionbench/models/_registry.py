"""The model registry: the catalogue (:mod:`visionbench.models.catalog`) and ``@register_model``
fill it, ``create_model`` and ``list_models`` read it.

Importing this module imports neither torch nor torchvision: names and metadata are known up front,
builders are imported when a model is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from visionbench._registry import Registry

if TYPE_CHECKING:  # only for annotations: importing torch here would make `list models` pay for it
    from torch import nn



class ModelRegistry(Registry):
    """The model registry: the catalogue's names, plus any ``timm:NAME`` that timm knows.

    timm's ~1,300 names are not registered one by one: a ``timm:`` name is checked, described and
    built by :mod:`visionbench.models.timm_backend` when it is asked for, which imports timm (and
    torch) only then; without timm it raises the error naming ``pip install 'visionbench[timm]'``.
    """

    def __contains__(self, name: str) -> bool:
        if _is_timm(name):
            from visionbench.models.timm_backend import check_timm_name

            try:
                check_timm_name(name)
            except ValueError:
                return False
            return True
        return super().__contains__(name)

    def check(self, name: str) -> None:
        """Raise a helpful ``ValueError`` when ``name`` is neither registered nor a timm model."""
        if _is_timm(name):
            from visionbench.models.timm_backend import check_timm_name

            check_timm_name(name)
            return
        super().check(name)

    def info(self, name: str) -> dict:
        """The registered metadata, or timm's (:func:`~visionbench.models.timm_backend.timm_info`)."""
        if _is_timm(name):
            from visionbench.models.timm_backend import timm_info

            return timm_info(name)
        return super().info(name)

    def get(self, name: str) -> Callable[..., nn.Module]:
        """The builder of ``name``; for ``timm:NAME``, one calling ``timm.create_model``."""
        if _is_timm(name):
            from visionbench.models.timm_backend import timm_builder

            return timm_builder(name)
        return super().get(name)


def _is_timm(name: str) -> bool:
    return isinstance(name, str) and name.startswith("timm:")


MODELS = ModelRegistry("model")


def register_model(
    name: str, *, description: str, min_size: int = 1, size_multiple: int = 1, default_size: int = 224,
    task: str = "classify", options: tuple[str, ...] = (),
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
        options: keyword options the builder takes beyond these (e.g. ``("box_loss",)``), each a
            config field of the same name.
    """
    return MODELS.register(
        name, description=description, min_size=min_size, size_multiple=size_multiple, default_size=default_size,
        task=task, options=tuple(options),
    )


def create_model(name: str, *, num_classes: int, in_channels: int = 3, image_size: int = 224, **options: object
                 ) -> nn.Module:
    """Build the registered model ``name`` with random initialisation.

    Args:
        options: the model's own builder options (its registry info ``options``), e.g.
            ``box_loss="diou"`` for ``tiny_fcos``; a model without the option refuses it.

    Example:
        >>> model = create_model("cnn-small", num_classes=10, in_channels=1, image_size=8)
    """
    check_model_options(name, options)
    return MODELS.get(name)(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **options)


def check_model_options(name: str, options: dict[str, object], source: str = "the model options") -> None:
    """Raise unless model ``name`` takes every option of ``options`` (its registry info ``options``).

    Example:
        >>> check_model_options("tiny_fcos", {"box_loss": "diou"})
    """
    supported = MODELS.info(name).get("options", ())
    for option, value in options.items():
        if option not in supported:
            takers = [n for n in MODELS.names() if option in MODELS.info(n).get("options", ())]
            flag = "--" + option.replace("_", "-")
            raise ValueError(
                f"{option} must be auto for model {name!r}, which keeps its own; got {value!r} in {source}. "
                f"{flag} applies to {', '.join(takers) or 'no registered model'}: use {flag} auto, or one of those models."
            )


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
