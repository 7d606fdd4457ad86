"""Multi-scale SSIM and GMSD on ``(N, C, H, W)`` tensors, in the PyTorch convention of piq.

Both reproduce ``piq.multi_scale_ssim`` (piq 0.8, its defaults ``kernel_size=11``,
``kernel_sigma=1.5``, ``k1=0.01``, ``k2=0.03``) and ``piq.gmsd`` (``t=170/255**2``) to ~1e-15
on float64 input, their quirks included; each convention is stated in the function's docstring.
Computation is in float64 whatever the input dtype (piq computes in the input's dtype, float32 for
most callers, so it agrees with us only to ~1e-6 there). Everything is differentiable, so
``1 - ms_ssim(x, y)`` and ``gmsd(x, y)`` are losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from visionbench.quality.color import BT601_FULL, weighted_sum
from visionbench.quality.full_reference import _check_pair, gaussian_window, valid_separable_filter
from visionbench.quality.layout import Layout, depthwise_valid_filter, use_batch

Reduction = Literal["none", "mean"]

# Wang, Simoncelli & Bovik 2003: the exponents beta_j = gamma_j of the five scales (alpha_M = beta_M at
# the coarsest), finest first. They sum to 1.0001; piq uses them as printed, and so do we.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Wang et al. 2004 constants on [0, 1] data (piq's defaults; c1 = K1², c2 = K2² after dividing by R).
K1, K2 = 0.01, 0.03
# Xue et al. 2014 (GMSD.m: T = 170 on [0, 255] data); on [0, 1] data that is 170 / 255².
GMSD_T = 170 / 255**2


def _check_reduction(reduction: str) -> None:
    if reduction not in ("none", "mean"):
        raise ValueError(f"reduction must be 'none' or 'mean'; got {reduction!r}. Use 'none' for one value per image.")


def _reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    return values.mean() if reduction == "mean" else values


def _safe_sqrt(values: torch.Tensor) -> torch.Tensor:
    """``sqrt`` whose gradient at 0 is 0 instead of NaN (``inf * 0``), with identical values.

    Flat image regions have a zero gradient magnitude and identical images a zero GMSD; a plain
    ``sqrt`` there would turn the whole backward pass into NaN.
    """
    positive = values > 0
    return torch.where(positive, torch.where(positive, values, torch.ones_like(values)).sqrt(), 0.0)


# --------------------------------------------------------------------------------------- MS-SSIM


def _ms_ssim_min_size(levels: int = len(MS_SSIM_WEIGHTS)) -> int:
    """Smallest height and width MS-SSIM accepts: ``10 * 2 ** (levels - 1) + 1`` (161 for 5 scales).

    Each scale halves the size rounding up (see :func:`_halve_replicate`), and the 11-pixel window
    must fit at the coarsest one; this is exactly piq's ``(kernel_size - 1) * 2 ** (levels - 1) + 1``.
    """
    window = gaussian_window().numel()
    return (window - 1) * 2 ** (levels - 1) + 1


def _ssim_and_cs_maps(ux: torch.Tensor, uy: torch.Tensor, uxx: torch.Tensor, uyy: torch.Tensor,
                      uxy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """piq's SSIM and contrast-structure maps from the five filtered moments (on [0, 1] data)."""
    c1, c2 = K1**2, K2**2
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    cs = (2 * vxy + c2) / (vx + vy + c2)
    return (2 * ux * uy + c1) / (ux * ux + uy * uy + c1) * cs, cs


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor, window: list[float],
                 batch: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure over the valid map, per channel: two ``(N, C)``.

    ``x``, ``y`` are float64 on [0, 1] (so ``c1 = K1²``, ``c2 = K2²``); population moments, as piq's
    ``_ssim_per_channel``: ``cs = (2 sxy + c2) / (sxx + syy + c2)``, ``ssim = l * cs``. On the CPU one
    plane at a time, so its five moment maps stay in cache (1.4x faster than stacking all planes at
    512x512); with ``batch`` (the device path) all planes' moments in one depthwise filtering.
    """
    if batch:
        moments = depthwise_valid_filter(torch.stack([x, y, x * x, y * y, x * y]), window, window)  # (5, N, C, h, w)
        ssim, cs = _ssim_and_cs_maps(*moments)
        return ssim.mean(dim=(-2, -1)), cs.mean(dim=(-2, -1))
    ssim_means, cs_means = [], []
    for a, b in zip(x.flatten(0, 1), y.flatten(0, 1), strict=True):  # (H, W) planes
        # piq's conv2d(x, outer(w, w), padding=0), separably: its 2-D Gaussian is the outer product of the 1-D one.
        ssim, cs = _ssim_and_cs_maps(*(valid_separable_filter(v, window, window) for v in (a, b, a * a, b * b, a * b)))
        ssim_means.append(ssim.mean())
        cs_means.append(cs.mean())
    return torch.stack(ssim_means).view(x.shape[:2]), torch.stack(cs_means).view(x.shape[:2])


def _halve_replicate(image: torch.Tensor) -> torch.Tensor:
    """piq's MS-SSIM downsampling: 2x2 average pooling after a *replicate* pad on the top and left.

    piq pads both H and W by ``p = max(H % 2, W % 2)`` (``F.pad(x, [p, 0, p, 0], mode='replicate')``),
    then ``avg_pool2d(kernel_size=2)`` drops a last odd row/column. So an odd side becomes
    ``(H + 1) / 2`` with its first row counted twice, and an even side next to an odd one becomes
    ``H / 2`` with its last row dropped (the whole image shifted by one pixel).
    """
    pad = max(image.shape[-2] % 2, image.shape[-1] % 2)
    if pad:
        image = torch.cat([image[..., :1, :], image], dim=-2)
        image = torch.cat([image[..., :, :1], image], dim=-1)
    h, w = image.shape[-2] // 2 * 2, image.shape[-1] // 2 * 2
    return (image[..., 0:h:2, 0:w:2] + image[..., 1:h:2, 0:w:2] + image[..., 0:h:2, 1:w:2]
            + image[..., 1:h:2, 1:w:2]) * 0.25


def _check_weights(weights: Sequence[float]) -> torch.Tensor:
    if len(weights) == 0 or any(not w >= 0 for w in weights):
        raise ValueError(f"weights must be a non-empty sequence of non-negative numbers; got {weights!r}. "
                         f"The default is Wang et al.'s {MS_SSIM_WEIGHTS}.")
    return torch.tensor([float(w) for w in weights], dtype=torch.float64)


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float | None = None,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    reduction: Reduction = "none",
    layout: Layout = "auto",
) -> torch.Tensor:
    """Multi-scale structural similarity per image (Wang, Simoncelli & Bovik 2003), piq's convention.

    Conventions, each as ``piq.multi_scale_ssim`` (0.8) has them:

    - Inputs are divided by ``data_range`` first, so ``c1 = 0.01²`` and ``c2 = 0.03²`` on [0, 1].
    - Local moments use an 11x11 Gaussian (sigma 1.5, the outer product of two normalised 1-D
      windows) with 'valid' filtering (no padding), population (co)variances.
    - Scale ``j`` (``j = 1..M``, ``M = len(weights)``) is scale ``j - 1`` downsampled by 2x2 average
      pooling after piq's replicate pad on the top/left edges when a side is odd (see
      :func:`_halve_replicate`; this differs from Wang's ``msssim.m`` low-pass filter).
    - At scales ``1..M-1`` the mean contrast-structure term ``cs`` over the valid map, at scale M
      the mean full SSIM, each per channel; values are clipped at 0 (``relu``, so a negative term
      gives an MS-SSIM of 0, not NaN), raised to ``weights[j]`` and multiplied over scales.
    - Channels are treated independently and averaged *after* the product over scales (no colour
      conversion).
    - ``weights`` are used as given (the paper's five sum to 1.0001). piq divides explicitly
      passed weights by their sum, so pass normalised weights to compare a custom set with it.

    Args:
        x, y: reference and distorted, ``(N, C, H, W)``, uint8 or float, values in
            ``[0, data_range]``; H and W at least ``10 * 2 ** (M - 1) + 1`` (161 for five scales).
        data_range: R (required for float input; 255 for uint8).
        weights: exponent of each scale, finest first; their number sets the number of scales.
        reduction: ``"none"`` (``[N]``) or ``"mean"`` (mean of the per-image values).
        layout: ``"auto"`` (plane by plane on the CPU, the whole batch elsewhere), ``"strip"`` or
            ``"batch"`` (:mod:`~visionbench.quality.layout`); the same values either way.

    Returns:
        float64 in ``[0, 1]`` (1 for identical images; higher is better).

    Raises:
        ValueError: images smaller than the minimum size, shapes that differ, float input without
            ``data_range``, or bad ``weights``/``reduction``.

    Example:
        >>> img = torch.rand(1, 3, 192, 192)
        >>> float(ms_ssim(img, img, data_range=1.0))
        1.0
    """
    r = _check_pair(x, y, data_range)
    _check_reduction(reduction)
    batch = use_batch(x, layout)
    exponents = _check_weights(weights).to(x.device)
    levels = exponents.numel()
    min_size = _ms_ssim_min_size(levels)
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"images must be at least {min_size}x{min_size} pixels for MS-SSIM with {levels} scales "
                         f"(the 11x11 window must fit at the coarsest scale, 1/{2 ** (levels - 1)} size); got "
                         f"{tuple(x.shape[-2:])}. Use ssim() for smaller images, or pass fewer weights.")
    window = gaussian_window().tolist()
    x, y = x.double() / r, y.double() / r
    terms = []
    for level in range(levels):
        if level > 0:
            x, y = _halve_replicate(x), _halve_replicate(y)
        ssim_mean, cs_mean = _ssim_and_cs(x, y, window, batch)  # (N, C) each
        terms.append(ssim_mean if level == levels - 1 else cs_mean)
    stacked = torch.relu(torch.stack(terms))  # (M, N, C)
    value = (stacked ** exponents.view(-1, 1, 1)).prod(dim=0).mean(dim=1)  # product over scales, then channels
    return _reduce(value, reduction)


# ------------------------------------------------------------------------------------------ GMSD


def _luminance(image: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)``: the image itself if gray, else BT.601 ``Y = .299 R + .587 G + .114 B``."""
    if image.shape[1] == 1:
        return image
    return weighted_sum(image, BT601_FULL)  # piq's rgb2yiq first row, the only one gmsd uses


def _halve_zero(image: torch.Tensor) -> torch.Tensor:
    """piq's GMSD downsampling: 2x2 average pooling after a *zero* pad on the bottom and right.

    piq pads both sides by ``p = max(H % 2, W % 2)`` (``F.pad(x, [0, p, 0, p])``, constant 0),
    then ``avg_pool2d(kernel_size=2, stride=2)``: an odd side's last row is averaged with zeros
    (halved), and an even side next to an odd one loses nothing (the padded row is dropped).
    GMSD.m instead filters with ``conv2(Y, ones(2)/4, 'same')`` and keeps ``Y(1:2:end, 1:2:end)``.
    """
    pad = max(image.shape[-2] % 2, image.shape[-1] % 2)
    if pad:
        image = torch.nn.functional.pad(image, (0, pad, 0, pad))
    h, w = image.shape[-2] // 2 * 2, image.shape[-1] // 2 * 2
    return (image[..., 0:h:2, 0:w:2] + image[..., 1:h:2, 0:w:2] + image[..., 0:h:2, 1:w:2]
            + image[..., 1:h:2, 1:w:2]) * 0.25


def _gradient_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Prewitt gradient magnitude ``sqrt(gx² + gy²)``, same size, zero border (``conv2d(padding=1)``).

    The Prewitt kernels are ``[[-1, 0, 1]] * 3 / 3`` and its transpose (GMSD.m, piq), applied
    separably: a 3-tap box sum across the derivative direction, then a central difference.
    """
    h, w = image.shape[-2:]
    padded = torch.nn.functional.pad(image, (1, 1, 1, 1))  # (..., H + 2, W + 2)
    down = padded[..., 0:h, :] + padded[..., 1 : h + 1, :] + padded[..., 2 : h + 2, :]  # (..., H, W + 2)
    across = padded[..., :, 0:w] + padded[..., :, 1 : w + 1] + padded[..., :, 2 : w + 2]  # (..., H + 2, W)
    gx = (down[..., :, 2 : w + 2] - down[..., :, 0:w]) / 3
    gy = (across[..., 2 : h + 2, :] - across[..., 0:h, :]) / 3
    return _safe_sqrt(gx * gx + gy * gy)


def gmsd_map(x: torch.Tensor, y: torch.Tensor, *, data_range: float | None = None) -> torch.Tensor:
    """The gradient magnitude similarity (GMS) map that :func:`gmsd` pools, float64 ``(N, 1, h, w)``.

    ``h, w = ceil(H / 2), ceil(W / 2)`` when a side is odd, else ``H / 2, W / 2`` (see :func:`gmsd`).
    Values are in ``(0, 1]``, 1 where both gradient magnitudes agree.
    """
    r = _check_pair(x, y, data_range)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 (gray) or 3 (RGB) channels for GMSD; got {x.shape[1]}. "
                         "Convert to gray or RGB first.")
    x, y = (_halve_zero(_luminance(v.double() / r)) for v in (x, y))
    mx, my = _gradient_magnitude(x), _gradient_magnitude(y)
    return (2 * mx * my + GMSD_T) / (mx * mx + my * my + GMSD_T)


def gmsd(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float | None = None, reduction: Reduction = "none"
) -> torch.Tensor:
    """Gradient magnitude similarity deviation per image (Xue et al. 2014), piq's convention.

    Lower is better: 0 for identical images, larger for more distortion. Conventions, each as
    ``piq.gmsd`` (0.8) has them:

    - Inputs are divided by ``data_range``; RGB is reduced to BT.601 luma
      ``0.299 R + 0.587 G + 0.114 B`` (the Y of piq's YIQ), gray is used as is.
    - Downsampling by 2: 2x2 average pooling after a zero pad on the bottom/right edges when a side is
      odd (see :func:`_halve_zero`; GMSD.m filters then subsamples instead).
    - Gradient magnitudes with the Prewitt kernels divided by 3, zero-padded to the same size.
    - ``GMS = (2 mx my + c) / (mx² + my² + c)`` with ``c = 170 / 255²`` on [0, 1] data (GMSD.m's
      ``T = 170`` on [0, 255]).
    - GMSD is the *population* standard deviation (divides by the pixel count) of the whole GMS map,
      borders included; GMSD.m's ``std2`` divides by count - 1.

    Args:
        x, y: reference and distorted, ``(N, C, H, W)`` with C = 1 or 3 (RGB order), uint8 or float,
            values in ``[0, data_range]``.
        data_range: R (required for float input; 255 for uint8).
        reduction: ``"none"`` (``[N]``) or ``"mean"`` (mean of the per-image values).

    Returns:
        float64 >= 0 (in practice below ~0.35); lower is better.

    Raises:
        ValueError: shapes that differ, channels other than 1 or 3, float input without
            ``data_range``, or a bad ``reduction``.

    Example:
        >>> img = torch.rand(2, 3, 32, 32)
        >>> gmsd(img, img, data_range=1.0).tolist()
        [0.0, 0.0]
    """
    _check_reduction(reduction)
    gms = gmsd_map(x, y, data_range=data_range)
    deviation = gms - gms.mean(dim=(1, 2, 3), keepdim=True)
    value = _safe_sqrt(deviation.square().mean(dim=(1, 2, 3)))
    return _reduce(value, reduction)
