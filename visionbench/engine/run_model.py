"""The model of a run: built from its config for its classes, with weights loaded.

Below the training loop (:mod:`visionbench.engine.train`) and the prediction code
(:mod:`visionbench.engine.predict`): both build models here, so neither imports the other.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from visionbench.config import AnyConfig
from visionbench.engine import checkpoint as ckpt
from visionbench.engine import initial_weights
from visionbench.models import MODELS, create_model
from visionbench.models.classifiers import model_for_weights


def model_options(config: AnyConfig) -> dict[str, Any]:
    """The builder options a config chooses beyond the classes and input size: ``box_loss`` for
    detectors when it is not ``"auto"`` (``auto`` keeps the model's own loss)."""
    box_loss = getattr(config, "box_loss", "auto")
    return {} if box_loss == "auto" else {"box_loss": box_loss}


def build_model(config: AnyConfig, data: Any, image_size: tuple[int, int] | None) -> nn.Module:
    """The registered model (of any task) for the classes of ``data`` (a dataset, or a run's
    ``InferenceSpec``: what has ``num_classes`` and ``in_channels``), with the initial weights of
    ``--pretrained`` / ``--weights`` loaded when given (:func:`build_model_and_weights`); built for
    ``image_size``, else the model's default size (images of mixed sizes)."""
    return build_model_and_weights(config, data, image_size)[0]


def build_model_and_weights(config: AnyConfig, data: Any, image_size: tuple[int, int] | None
                            ) -> tuple[nn.Module, Any]:
    """:func:`build_model`, and what its initial weights were: ``(record, report)`` of
    :func:`visionbench.engine.initial_weights.load_initial_weights` (name, file, SHA-256; tensors kept,
    adapted, re-initialised), or ``None`` without initial weights."""
    side = image_size[0] if image_size else MODELS.info(config.model)["default_size"]
    model = create_model(config.model, num_classes=data.num_classes, in_channels=data.in_channels, image_size=side,
                         **model_options(config))
    if getattr(config, "pretrained_backbone", False):  # before --weights, which overrides what it covers
        from visionbench.models.backbones import load_pretrained_backbone

        load_pretrained_backbone(model, config.model, download=config.download_weights)
    loaded = initial_weights.load_initial_weights(model, config, getattr(data, "num_classes", None), image_size=side)
    return model, loaded


def architecture_only(config: AnyConfig) -> AnyConfig:
    """``config`` without initial weights (no ``--weights``, no ``--pretrained``): for models that
    get a run's own weights loaded strictly afterwards (validation copies, test, evaluate, predict)."""
    backbone = {"pretrained_backbone": False} if hasattr(config, "pretrained_backbone") else {}
    return dataclasses.replace(config, weights=None, pretrained=False, **backbone)


def load_run_model(weights: Path, config: Any, data: Any, image_size: tuple[int, int] | None, *,
                   state: dict[str, Any] | None = None) -> nn.Module:
    """The run's model for ``data`` (a dataset, or an :class:`InferenceSpec`: what has
    ``num_classes`` and ``in_channels``) with the run's ``weights`` loaded, in eval mode.

    ``state``: the weights file's tensors when already read (another process read and broadcast
    them); ``weights`` then only names them in messages."""
    model = build_model(architecture_only(config), data, image_size)
    state = ckpt.read_weights(weights) if state is None else state
    ckpt.check_finite_weights(state, f"weights file {str(weights)!r}",
                              "The run diverged when they were saved: retrain it (lower --lr or set --clip-grad-norm), "
                              "or use an earlier checkpoint.")
    # Old runs may hold an older network of the same model name (cnn-small above 32 px, issue 12).
    model = model_for_weights(config.model, model, state, num_classes=data.num_classes, in_channels=data.in_channels)
    ckpt.load_weights_into(model, state, str(weights))
    return model.eval()


__all__ = ["architecture_only", "build_model", "build_model_and_weights", "load_run_model", "model_options"]
