"""Small networks that train in seconds on a CPU: an MLP and the three-conv ``cnn-small``."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Two hidden layers on the flattened image.

    Args:
        in_channels, image_size: input shape ``(C, H, W)`` with ``image_size = (H, W)``.
        num_classes: number of outputs.
        hidden: width of each hidden layer.
    """

    def __init__(self, in_channels: int, image_size: tuple[int, int], num_classes: int, hidden: int = 256) -> None:
        super().__init__()
        features = in_channels * image_size[0] * image_size[1]
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Dropout(0.1),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(0.1),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, C, H, W]`` → logits ``[B, num_classes]``."""
        return self.net(x)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Three 3×3 conv blocks (BN + ReLU), one 2×2 max-pool, global average pool, linear head.

    Works on any input of at least 2×2 pixels: the pooling is adaptive, so 8×8 digits, 28×28
    MNIST and 32×32 CIFAR use the same network.

    Args:
        in_channels: 1 or 3.
        num_classes: number of outputs.
        width: channels of the first block; the next two have 2× and 4× that.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn_relu(in_channels, width),          # (B, w, H, W)
            _conv_bn_relu(width, 2 * width),            # (B, 2w, H, W)
            nn.MaxPool2d(2),                            # (B, 2w, H/2, W/2)
            _conv_bn_relu(2 * width, 4 * width),        # (B, 4w, H/2, W/2)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),      # (B, 4w)
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, C, H, W]`` → logits ``[B, num_classes]``."""
        return self.head(self.features(x))
