"""Small networks that train in seconds on a CPU: an MLP and the two networks of ``cnn-small``.

``cnn-small`` is :class:`SmallCNN` (full resolution) for inputs up to 32 px (8×8 digits, MNIST,
CIFAR) and :class:`StridedCNN` (patchify stem to about 32 px, then stride-2 stages) above; see
:func:`visionbench.models.classifiers.cnn_small`.
"""

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


def _patch_stem(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, stride, stride=stride, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _strided_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def stem_stride(image_size: int) -> int:
    """The stem's patch size (kernel = stride) of :class:`StridedCNN` for ``image_size``: the
    input shrinks to about 32 px (at least 2×), so the rest of the network costs about the same
    at 64, 128 or 256 px.

    Example:
        >>> stem_stride(48), stem_stride(64), stem_stride(128), stem_stride(224)
        (2, 2, 4, 7)
    """
    return max(2, image_size // 32)


class StridedCNN(nn.Module):
    """``cnn-small`` for inputs above 32 px: a patchify stem, two stride-2 stages, global pool.

    Why not :class:`SmallCNN` at these sizes: it convolves 32→64 channels at full resolution, so
    one training step of 64 images of 64×64 took 0.6–2.9 s on 2 CPU cores (quiet to busy); this network does the
    same step in well under 150 ms at 64 and 128 px (``benchmarks/classifier_step_time.py``).

    Layout: stem ``p×p`` conv with stride ``p`` (:func:`stem_stride`, to about 32 px) → w
    channels; stage 1: 3×3 stride 2 → 2w, 3×3 → 2w; stage 2: 3×3 stride 2 → 4w, 3×3 → 4w;
    global average pool, dropout, linear head.

    Args:
        in_channels: 1 or 3.
        num_classes: number of outputs.
        image_size: input side the stem is sized for (other sizes still run: the pool is adaptive).
        width: channels after the stem; the stages have 2× and 4× that.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 24) -> None:
        super().__init__()
        # Module names differ from SmallCNN's ("features"), so an old full-resolution checkpoint
        # never loads into this network by accident (classifiers.model_for_weights tells them apart).
        self.stem = _patch_stem(in_channels, width, stem_stride(image_size))     # (B, w, ~32, ~32)
        self.body = nn.Sequential(
            _strided_block(width, 2 * width, 2), _strided_block(2 * width, 2 * width, 1),          # (B, 2w, ~16, ~16)
            _strided_block(2 * width, 4 * width, 2), _strided_block(4 * width, 4 * width, 1),      # (B, 4w, ~8, ~8)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),                                                  # (B, 4w)
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, C, H, W]`` → logits ``[B, num_classes]``."""
        return self.head(self.body(self.stem(x)))


def is_small_cnn_state(state_dict: dict[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` holds :class:`SmallCNN` weights (its ``features.*`` layout), not
    :class:`StridedCNN`'s (``stem.*``/``body.*``)."""
    return any(key.startswith("features.") for key in state_dict)
