"""Colour conventions for quality metrics: which channels are compared, stated, never guessed.

``channel`` is one of:

- ``"rgb"``: the channels as given (grayscale stays one channel).
- ``"y"``: BT.601 luma, full range: ``Y = 0.299 R + 0.587 G + 0.114 B`` on the input's own scale
  (what FFmpeg's ``gray`` conversion and most codec papers call Y).
- ``"y-studio"``: BT.601 luma, studio range, as MATLAB's and scikit-image's ``rgb2ycbcr``:
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B)`` with R, G, B in [0, 1], so Y spans 16–235 on a
  0–255 scale (the super-resolution papers' "PSNR on Y"). It is scaled back to the input's data
  range, and not rounded (MATLAB's ``rgb2ycbcr`` rounds when given ``uint8``; scikit-image does not).

Grayscale input is luma already: ``"y"`` returns it unchanged, ``"y-studio"`` maps it as
R = G = B. Converted results are float64 with the same ``data_range`` as the input.
"""

from __future__ import annotations

from typing import Literal

import torch

Channel = Literal["rgb", "y", "y-studio"]
CHANNELS: tuple[str, ...] = ("rgb", "y", "y-studio")

# ITU-R BT.601 luma weights (Kr, Kg, Kb).
BT601_FULL = (0.299, 0.587, 0.114)
# BT.601 studio swing on 8 bits: offset 16 and weights 219 · (Kr, Kg, Kb) / 255, as rgb2ycbcr writes them.
BT601_STUDIO_OFFSET = 16.0
BT601_STUDIO = (65.481, 128.553, 24.966)


def check_channel(channel: str) -> Channel:
    """``channel`` itself if it is one of :data:`CHANNELS`, else a ``ValueError`` listing them."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}; got {channel!r}. 'rgb' compares the "
                         "channels as given, 'y' BT.601 full-range luma, 'y-studio' BT.601 16-235 luma (rgb2ycbcr).")
    return channel  # type: ignore[return-value]


def to_channel(image: torch.Tensor, channel: Channel, *, data_range: float) -> torch.Tensor:
    """The planes a metric compares, ``(N, C', H, W)``.

    Args:
        image: ``(N, C, H, W)`` with C = 1 (gray) or 3 (RGB), values in ``[0, data_range]``.
        channel: see the module docstring.
        data_range: the scale of ``image`` (255 for 8-bit).

    Returns:
        ``image`` unchanged for ``"rgb"`` and for grayscale with ``"y"``; otherwise float64
        ``(N, 1, H, W)`` on the same scale.

    Example:
        >>> to_channel(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8), "y-studio", data_range=255).flatten()[0]
        tensor(235.0000, dtype=torch.float64)
    """
    check_channel(channel)
    if channel == "rgb":
        return image
    if image.shape[1] not in (1, 3):
        raise ValueError(f"channel={channel!r} needs grayscale or RGB images (1 or 3 channels); got "
                         f"{image.shape[1]} channels. Use channel='rgb' to compare the channels as given.")
    if channel == "y" and image.shape[1] == 1:
        return image  # luma already (e.g. a video's stored Y plane): keep its integer samples
    planes = image.double()
    if channel == "y":
        return weighted_sum(planes, BT601_FULL)
    normalised = planes / data_range
    weights = BT601_STUDIO if planes.shape[1] == 3 else (sum(BT601_STUDIO),)
    return (weighted_sum(normalised, weights) + BT601_STUDIO_OFFSET) * (data_range / 255.0)


def weighted_sum(planes: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
    """``Σ w_c · plane_c`` over the channel axis, keeping it (``(N, 1, H, W)``).

    The terms are added in channel order, one at a time, so every caller that converts to luma
    with it gets the same bits (e.g. ``weighted_sum(rgb, BT601_FULL)`` for full-range Y).
    """
    out = planes[:, 0:1] * weights[0]
    for index in range(1, len(weights)):
        out = out + planes[:, index : index + 1] * weights[index]
    return out


def crop_border(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """Remove ``pixels`` rows and columns from each side (the super-resolution convention of
    ignoring the border a model cannot reconstruct). ``pixels = 0`` returns ``image``."""
    if pixels < 0:
        raise ValueError(f"crop_border must be >= 0; got {pixels}.")
    if pixels == 0:
        return image
    h, w = image.shape[-2:]
    if h <= 2 * pixels or w <= 2 * pixels:
        raise ValueError(f"crop_border={pixels} leaves nothing of a {h}x{w} image; use a smaller value.")
    return image[..., pixels : h - pixels, pixels : w - pixels]
