"""Colour conventions for quality metrics: which channels are compared, stated, never guessed.

``channel`` is one of:

- ``"rgb"``: the channels as given (grayscale stays one channel).
- ``"y"``: BT.601 luma, full range: ``Y = 0.299 R + 0.587 G + 0.114 B`` on the input's own scale
  (what FFmpeg's ``gray`` conversion and most codec papers call Y).
- ``"y-studio"``: BT.601 luma, studio range, as MATLAB's and scikit-image's ``rgb2ycbcr``:
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B)`` with R, G, B in [0, 1], so Y spans 16–235 on a
  0–255 scale (the super-resolution papers' "PSNR on Y"). It is scaled back to the input's data
  range, and not rounded (MATLAB's ``rgb2ycbcr`` rounds when given ``uint8``; scikit-image does not).

- ``"gray-matlab"``: MATLAB's ``rgb2gray``, ``0.298936021293775 R + 0.587043074451121 G +
  0.114020904255103 B`` (the first row of the inverse of NTSC's YIQ matrix, MATLAB's exact
  coefficients, which sum to 0.999999999999999), evaluated in double left to right and, for
  integer input, rounded half away from zero back to integers as MATLAB returns ``uint8`` for
  ``uint8`` input. What Wang's ``ssim.m``/``msssim.m``, ``GMSD.m`` and VIF's scripts are given
  for colour images (they take grayscale only; their users call ``rgb2gray`` first), and what
  NIQE's and BRISQUE's scripts call themselves. Float input is not rounded (MATLAB's double path).
- ``"y-matlab"``: the Y of MATLAB's ``rgb2ycbcr`` (``rgb2ycbcr.m``: ``T = (1/255) * origT``,
  ``imlincomb(T(1,1), R, T(1,2), G, T(1,3), B, 16)`` in double, left to right, offset last), for
  integer input rounded half away from zero to integers as MATLAB returns ``uint8``; the
  super-resolution papers' MATLAB "PSNR on Y". For ``uint16`` data (data range 65535) it uses
  MATLAB's ``uint16`` factors (``257/65535`` and offset ``16 * 257``); floats are not rounded.

Grayscale input is luma already: ``"y"`` and ``"gray-matlab"`` return it unchanged (as MATLAB's
``im2gray``), ``"y-studio"`` and ``"y-matlab"`` map it as R = G = B. Converted results are float64
with the same ``data_range`` as the input, except the MATLAB channels of integer input, which keep
the input's integer dtype (MATLAB returns the input's class: the values are integers).
"""

from __future__ import annotations

from typing import Literal

import torch

Channel = Literal["rgb", "y", "y-studio", "gray-matlab", "y-matlab"]
CHANNELS: tuple[str, ...] = ("rgb", "y", "y-studio", "gray-matlab", "y-matlab")

# ITU-R BT.601 luma weights (Kr, Kg, Kb).
BT601_FULL = (0.299, 0.587, 0.114)
# BT.601 studio swing on 8 bits: offset 16 and weights 219 · (Kr, Kg, Kb) / 255, as rgb2ycbcr writes them.
BT601_STUDIO_OFFSET = 16.0
BT601_STUDIO = (65.481, 128.553, 24.966)
# MATLAB's rgb2gray weights, printed to full precision in rgb2gray.m (T = inv(NTSC YIQ matrix), first row).
MATLAB_RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
# rgb2ycbcr.m's per-class scale factors of origT and of the offset 16: (T factor, offset factor).
MATLAB_YCBCR_SCALES = {255.0: (1 / 255, 1.0), 65535.0: (257 / 65535, 257.0)}


def check_channel(channel: str) -> Channel:
    """``channel`` itself if it is one of :data:`CHANNELS`, else a ``ValueError`` listing them."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}; got {channel!r}. 'rgb' compares the "
                         "channels as given, 'y' BT.601 full-range luma, 'y-studio' BT.601 16-235 luma (rgb2ycbcr), "
                         "'gray-matlab' MATLAB's rgb2gray and 'y-matlab' MATLAB's rgb2ycbcr Y (both rounded as MATLAB "
                         "rounds integer images).")
    return channel  # type: ignore[return-value]


def to_channel(image: torch.Tensor, channel: Channel, *, data_range: float) -> torch.Tensor:
    """The planes a metric compares, ``(N, C', H, W)``.

    Args:
        image: ``(N, C, H, W)`` with C = 1 (gray) or 3 (RGB), values in ``[0, data_range]``.
        channel: see the module docstring.
        data_range: the scale of ``image`` (255 for 8-bit).

    Returns:
        ``image`` unchanged for ``"rgb"`` and for grayscale with ``"y"`` or ``"gray-matlab"``;
        otherwise ``(N, 1, H, W)`` on the same scale: float64, or for the MATLAB channels of
        integer input, rounded integers of the input's dtype.

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
    if channel in ("y", "gray-matlab") and image.shape[1] == 1:
        return image  # luma already (e.g. a video's stored Y plane): keep its integer samples
    if channel == "gray-matlab":
        return matlab_rgb2gray(image)
    if channel == "y-matlab":
        return matlab_rgb2ycbcr_y(image, data_range=data_range)
    planes = image.double()
    if channel == "y":
        return weighted_sum(planes, BT601_FULL)
    normalised = planes / data_range
    weights = BT601_STUDIO if planes.shape[1] == 3 else (sum(BT601_STUDIO),)
    return (weighted_sum(normalised, weights) + BT601_STUDIO_OFFSET) * (data_range / 255.0)


def default_channel(profile: str, *, video: bool = False, channels: int = 3) -> str:
    """The channel compared when none is given.

    Videos: ``"y"`` (the stored luma plane) under every profile. Images and tensors: ``"rgb"``,
    except under the ``matlab`` profile, where it is ``"gray-matlab"`` for grayscale or RGB input:
    MATLAB's quality scripts (``ssim.m``, ``msssim.m``, ``GMSD.m``, VIF's) take grayscale images,
    and the published numbers are on ``rgb2gray`` of the ``uint8`` files. Other channel counts
    keep ``"rgb"`` (there is no gray conversion for them).
    """
    if video:
        return "y"
    return "gray-matlab" if profile == "matlab" and channels in (1, 3) else "rgb"


def matlab_round(values: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``round`` on a tensor: to the nearest integer, halves away from zero."""
    return torch.sign(values) * torch.floor(values.abs() + 0.5)


def _as_matlab_class(values: torch.Tensor, like: torch.Tensor, maximum: float) -> torch.Tensor:
    """Float64 ``values`` converted as MATLAB casts a double result to an integer class: rounded
    half away from zero and saturated to ``[0, maximum]``, in ``like``'s integer dtype; float
    ``like`` (MATLAB's double path) keeps ``values`` as they are."""
    if like.is_floating_point():
        return values
    return matlab_round(values).clamp(0, maximum).to(like.dtype)


def matlab_rgb2gray(image: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``rgb2gray`` of ``(N, 3, H, W)``: ``(N, 1, H, W)`` (module docstring).

    Integer input gives rounded integers of the same dtype, as ``rgb2gray`` of a ``uint8`` image
    gives ``uint8``; float input gives the unrounded float64 weighted sum (MATLAB's double path).
    Grayscale input ``(N, 1, H, W)`` is returned unchanged (``im2gray``).

    Example:
        >>> matlab_rgb2gray(torch.tensor([[[[200]], [[100]], [[50]]]], dtype=torch.uint8)).flatten().tolist()
        [124]
    """
    if image.shape[1] == 1:
        return image
    if image.shape[1] != 3:
        raise ValueError(f"gray-matlab needs grayscale or RGB images (1 or 3 channels); got {image.shape[1]} "
                         "channels. Use channel='rgb' to compare the channels as given.")
    gray = weighted_sum(image.double(), MATLAB_RGB2GRAY)
    # The weights sum to just under 1, so the result never exceeds the input's maximum.
    maximum = float(torch.iinfo(image.dtype).max) if not image.is_floating_point() else 0.0
    return _as_matlab_class(gray, image, maximum)


def matlab_rgb2ycbcr_y(image: torch.Tensor, *, data_range: float) -> torch.Tensor:
    """The Y plane of MATLAB's ``rgb2ycbcr``, ``(N, 1, H, W)`` (module docstring).

    Integer input must be 8-bit (``data_range`` 255) or 16-bit (65535), MATLAB's two integer
    classes; it gives rounded integers of the input's dtype (16–235, or 4112–60395 for 16-bit).
    Float input is treated as MATLAB's double images on ``[0, 1]`` after dividing by
    ``data_range``, and the result is scaled back to the input's range, not rounded. Grayscale
    input is read as R = G = B.

    Example:
        >>> matlab_rgb2ycbcr_y(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8), data_range=255).item()
        235
    """
    if image.shape[1] == 1:
        image = image.expand(-1, 3, -1, -1)
    if image.shape[1] != 3:
        raise ValueError(f"y-matlab needs grayscale or RGB images (1 or 3 channels); got {image.shape[1]} channels. "
                         "Use channel='rgb' to compare the channels as given.")
    if image.is_floating_point():
        weights = tuple((1 / 255) * w for w in BT601_STUDIO)  # rgb2ycbcr.m: scaleFactor.double.T * origT
        y = weighted_sum(image.double() / data_range, weights) + (1 / 255) * BT601_STUDIO_OFFSET
        return y * data_range
    if float(data_range) not in MATLAB_YCBCR_SCALES:
        raise ValueError(f"y-matlab reproduces MATLAB's rgb2ycbcr for uint8 (data range 255) and uint16 (65535) "
                         f"images; got integer samples with data range {data_range:g}. Use channel='y-studio' (the "
                         "same formula, not rounded) for other bit depths.")
    t_scale, offset_scale = MATLAB_YCBCR_SCALES[float(data_range)]
    y = weighted_sum(image.double(), tuple(t_scale * w for w in BT601_STUDIO)) + offset_scale * BT601_STUDIO_OFFSET
    return _as_matlab_class(y, image, float(data_range))


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
