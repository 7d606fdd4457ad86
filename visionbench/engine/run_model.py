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
from visionbench.models import MODELS, create_model


def model_options(config: AnyConfig) -> dict[str, Any]:
    """The builder options a config chooses beyond the classes and input size: ``box_loss`` for
    detectors when it is not ``"auto"`` (``auto`` keeps the model's own loss)."""
    box_loss = getattr(config, "box_loss", "auto")
    return {} if box_loss == "auto" else {"box_loss": box_loss}


def build_model(config: AnyConfig, data: Any, image_size: tuple[int, int] | None) -> nn.Module:
    """The registered model (of any task) for the classes of ``data`` (a dataset, or a run's
    ``InferenceSpec``: what has ``num_classes`` and ``in_channels``), with ``--weights`` loaded
    when given; built for ``image_size``, else the model's default size (images of mixed sizes)."""
    side = image_size[0] if image_size else MODELS.info(config.model)["default_size"]
    model = create_model(config.model, num_classes=data.num_classes, in_channels=data.in_channels, image_size=side,
                         **model_options(config))
    if config.weights:
        ckpt.load_weights_into(model, ckpt.read_weights(config.weights), config.weights)
    return model


def load_run_model(weights: Path, config: Any, data: Any, image_size: tuple[int, int] | None) -> nn.Module:
    """The run's model for ``data`` (a dataset, or an :class:`InferenceSpec`: what has
    ``num_classes`` and ``in_channels``) with the run's ``weights`` loaded, in eval mode."""
    model = build_model(dataclasses.replace(config, weights=None), data, image_size)
    ckpt.load_weights_into(model, ckpt.read_weights(weights), str(weights))
    return model.eval()


__all__ = ["build_model", "load_run_model", "model_options"]
