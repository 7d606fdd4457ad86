"""What the detection and segmentation hooks share: their data (generated ``shapes`` held in
memory), their model builder, and the size of the example images the report shows."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from visionbench.config import DetectConfig, SegmentConfig
from visionbench.data import load_dataset
from visionbench.data.task_transforms import InMemory
from visionbench.engine import checkpoint as ckpt
from visionbench.models import MODELS, create_model

EXAMPLE_SIDE = 192  # px: side of the report's example tiles


def load_task_data(config: DetectConfig | SegmentConfig) -> Any:
    """The dataset of a detection or segmentation config; generated data (``shapes``) is made
    once and held in memory, so epochs cost no generation."""
    data = load_dataset(config.data, task=config.task, seed=config.split_seed, val_fraction=config.val_fraction,
                        test_fraction=config.test_fraction)
    if config.data == "shapes":
        data = dataclasses.replace(data, train=InMemory(data.train), val=InMemory(data.val), test=InMemory(data.test))
    return data


def build_model(config: DetectConfig | SegmentConfig, data: Any, image_size: tuple[int, int] | None) -> nn.Module:
    """The registered detector (or segmenter) for the classes of ``data`` (a dataset, or a run's
    ``InferenceSpec``), with ``--weights`` loaded when given; built for ``image_size``, else the
    model's default size (images of mixed sizes)."""
    side = image_size[0] if image_size else MODELS.info(config.model)["default_size"]
    model = create_model(config.model, num_classes=data.num_classes, in_channels=data.in_channels, image_size=side)
    if config.weights:
        ckpt.load_weights_into(model, ckpt.read_weights(config.weights), config.weights)
    return model


def fit_example(image: torch.Tensor) -> np.ndarray:
    """``image`` resized to ``EXAMPLE_SIDE`` square (the grid stacks equal sizes), as numpy."""
    from torchvision.transforms.v2 import functional as tvf

    if tuple(image.shape[-2:]) != (EXAMPLE_SIDE, EXAMPLE_SIDE):
        image = tvf.resize(image, [EXAMPLE_SIDE, EXAMPLE_SIDE], antialias=True)
    return image.numpy()
