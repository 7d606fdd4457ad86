"""What the detection and segmentation hooks share: their data (generated ``shapes`` held in
memory), their optimizer groups and sampling, and the size of the example images the report shows."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from visionbench.config import DetectConfig, SegmentConfig
from visionbench.data import load_dataset
from visionbench.data.task_transforms import InMemory
from visionbench.engine.optim import decay_groups

EXAMPLE_SIDE = 192  # px: side of the report's example tiles


def load_task_data(config: DetectConfig | SegmentConfig) -> Any:
    """The dataset of a detection or segmentation config; generated data (``shapes``) is made
    once and held in memory, so epochs cost no generation."""
    data = load_dataset(config.data, task=config.task, seed=config.split_seed, val_fraction=config.val_fraction,
                        test_fraction=config.test_fraction)
    if config.data == "shapes":
        data = dataclasses.replace(data, train=InMemory(data.train), val=InMemory(data.val), test=InMemory(data.test))
    return data


def parameter_groups(config: DetectConfig | SegmentConfig, model: nn.Module) -> list[dict[str, Any]]:
    """Weight decay on kernels only (not on norms and biases)."""
    return decay_groups(model, config.weight_decay)


def sample_weights(config: DetectConfig | SegmentConfig, bundle: Any) -> None:
    """Detection and segmentation draw every image equally often."""
    return None


def fit_example(image: torch.Tensor) -> np.ndarray:
    """``image`` resized to ``EXAMPLE_SIDE`` square (the grid stacks equal sizes), as numpy."""
    from torchvision.transforms.v2 import functional as tvf

    if tuple(image.shape[-2:]) != (EXAMPLE_SIDE, EXAMPLE_SIDE):
        image = tvf.resize(image, [EXAMPLE_SIDE, EXAMPLE_SIDE], antialias=True)
    return image.numpy()
