"""The ``matlab`` profile: SSIM and MS-SSIM exactly as Zhou Wang's reference MATLAB scripts compute them.

``ssim_matlab`` reproduces ``ssim.m`` ("SSIM Index with automatic downsampling, Version 1.0",
2009), called as ``ssim(img1, img2)`` but with ``L = data_range``:

1. ``f = max(1, round(min(M, N) / 256))`` with MATLAB's ``round`` (half away from zero: a
   640-pixel side gives ``f = 3`` and 1152 gives ``f = 5``, where Python/NumPy's half-to-even
   rounding would give 2 and 4 — the reason this profile exists).
2. If ``f > 1``: ``imfilter(img, ones(f, f) / f^2, 'symmetric', 'same')``, then ``img(1:f:end, 1:f:end)``.
   ``imfilter`` correlates with the kernel's centre at ``floor((f + 1) / 2)`` (1-based), so an
   even kernel reaches one pixel further down/right than up/left; ``'symmetric'`` mirrors the image
   *including* its edge pixel (``c b a | a b c``).
3. ``filter2(fspecial('gaussian', 11, 1.5), ., 'valid')`` for the five local moments (no padding:
   the map is ``(M' - 10) x (N' - 10)``), population (co)variances, ``C1 = (0.01 L)^2``,
   ``C2 = (0.03 L)^2``, and ``mean2`` of the SSIM map.

``ms_ssim_matlab`` reproduces ``msssim.m`` (Wang, Simoncelli & Bovik 2003, the version that
downsamples with ``imfilter(im, ones(2)/4, 'symmetric', 'same')`` and ``im(1:2:end, 1:2:end)``)
with its defaults: 5 levels, weights ``[0.0448 0.2856 0.3001 0.2363 0.1333]``, the same window and
constants, no automatic downsampling (its ``ssim_index_new``), and the ``'product'`` pooling
``prod(mcs(1:4) .^ weight(1:4)) * mssim(5) ^ weight(5)``. ``ssim_index_new`` hard-codes
``L = 255``; we use ``L = data_range``, which is the same as first scaling the images to [0, 255].
(The older release, ``filter2(ones(2)/4, im, 'valid')`` then ``im(1:2:M-1, 1:2:N-1)`` and an
unweighted ``mssim(5)``, drops the last row/column of odd-sized scales; it is not this profile.)

The scripts are grayscale-only: for ``C > 1`` each channel is scored on its own and the per-image
result is the mean over channels (of the final SSIM / MS-SSIM values). Everything runs in float64,
so results equal a line-by-line port of the scripts to ~1e-13, and is differentiable. The 2-D
``fspecial`` Gaussian is applied as two 1-D passes (it is the outer product of the normalised 1-D
Gaussian, equal to ~1e-17).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch

from visionbench.quality.full_reference import _check_pair, valid_filter
from visionbench.quality.layout import Layout, use_batch

Reduction = Literal["none", "mean"]

# ssim.m / msssim.m defaults.
K1, K2 = 0.01, 0.03
WINDOW_SIZE, SIGMA = 11, 1.5  # fspecial('gaussian', 11, 1.5)
DOWNSAMPLE_TARGET = 256  # ssim.m: f = max(1, round(min(M, N) / 256))
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # msssim.m, coarsest scale last
# msssim.m refuses min(M, N) / 2^(level - 1) < max(size(win)): 11 * 2^4 = 176 pixels.
MS_SSIM_MIN_SIDE = WINDOW_SIZE * 2 ** (len(MS_SSIM_WEIGHTS) - 1)

# Filtering works on blocks of about this many pixels per plane (2 MiB of float64), so the 22
# passes of the separable window re-read data from cache rather than memory (~1.5x faster on 1080p).
_BLOCK_PIXELS = 1 << 18


def matlab_round(value: float) -> int:
    """MATLAB's ``round``: to the nearest integer, halves away from zero (``round(2.5) == 3``)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def downsampling_factor(height: int, width: int) -> int:
    """``ssim.m``'s automatic downsampling factor ``max(1, round(min(M, N) / 256))``, MATLAB rounding."""
    return max(1, matlab_round(min(height, width) / DOWNSAMPLE_TARGET))


def fspecial_gaussian_1d(size: int = WINDOW_SIZE, sigma: float = SIGMA) -> torch.Tensor:
    """The 1-D factor of ``fspecial('gaussian', size, sigma)``, float64 ``[size]``, sum 1.

    ``fspecial`` builds ``exp(-(x^2 + y^2) / (2 sigma^2))`` on offsets ``-(size-1)/2 .. (size-1)/2``,
    zeroes entries below ``eps * max`` (none for 11 taps, sigma 1.5: the smallest is ~1.5e-5 of the
    centre) and normalises; that equals the outer product of this vector with itself.
    """
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-(offsets * offsets) / (2 * sigma * sigma))
    return weights / weights.sum()


def _symmetric_pad(image: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """``padarray(., 'symmetric')`` along ``dim``: mirrored including the edge pixel (``b a | a b .. y z | z y``)."""
    head = image.narrow(dim, 0, before).flip(dim)
    tail = image.narrow(dim, image.shape[dim] - after, after).flip(dim)
    return torch.cat([head, image, tail], dim=dim)


def _box_decimate_dim(image: torch.Tensor, f: int, dim: int) -> torch.Tensor:
    """``imfilter(., ones(f)/f, 'symmetric', 'same')`` then ``(1:f:end)``, along one dim, sum not yet divided.

    ``imfilter`` puts the kernel's centre at ``floor((f + 1) / 2)`` (1-based), i.e. its taps cover
    offsets ``-(c - 1) .. f - c``: ``c - 1`` mirrored pixels before the image and ``f - c`` after.
    Only the kept outputs (every f-th, from the first) are computed.
    """
    size = image.shape[dim]
    centre = (f + 1) // 2
    padded = _symmetric_pad(image, centre - 1, f - centre, dim)
    kept = -(-size // f)  # numel(1:f:size)
    index = [slice(None)] * image.ndim
    total = None
    for k in range(f):
        index[dim] = slice(k, k + f * (kept - 1) + 1, f)
        tap = padded[tuple(index)]
        total = tap if total is None else total + tap
    return total


def box_decimate(image: torch.Tensor, f: int) -> torch.Tensor:
    """``img = imfilter(img, ones(f,f)/f^2, 'symmetric', 'same'); img = img(1:f:end, 1:f:end)``.

    Args:
        image: ``(..., H, W)`` float64.
        f: the factor (``ssim.m``'s automatic one, or 2 for ``msssim.m``).

    Returns:
        ``(..., ceil(H / f), ceil(W / f))``; ``image`` itself when ``f == 1``.
    """
    if f == 1:
        return image
    rows = _box_decimate_dim(image, f, dim=image.ndim - 2)
    return _box_decimate_dim(rows, f, dim=image.ndim - 1) / (f * f)


def _ssim_and_cs_block(bx: torch.Tensor, by: torch.Tensor, weights: list[float], c1: float, c2: float,
                       batch: bool = False) -> torch.Tensor:
    """``ssim_index_new``'s ``ssim_map`` and ``cs_map`` of one block ``(P, h, w)``: ``(2, P, h - 10, w - 10)``
    (``batch``: filtered by depthwise convolutions, the device path of :mod:`~visionbench.quality.layout`)."""
    # mu1 = filter2(win, img1, 'valid'), ..., sigma12 = filter2(win, img1.*img2, 'valid') - mu1_mu2
    moments = torch.stack([bx, by, bx * bx, by * by, bx * by])
    mu1, mu2, e11, e22, e12 = valid_filter(moments, weights, weights, batch=batch)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq, sigma2_sq, sigma12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu1_mu2
    # The scripts' branch for C1 > 0 and C2 > 0 (always taken: data_range > 0), same operation order.
    numerator2, denominator2 = 2 * sigma12 + c2, sigma1_sq + sigma2_sq + c2
    ssim_map = ((2 * mu1_mu2 + c1) * numerator2) / ((mu1_sq + mu2_sq + c1) * denominator2)
    return torch.stack([ssim_map, numerator2 / denominator2])


def _ssim_and_cs_maps(x: torch.Tensor, y: torch.Tensor, data_range: float,
                      batch: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``ssim_index_new``'s ``ssim_map`` and ``cs_map`` on float64 ``(N, C, H, W)``: 'valid', ``(N, C, H-10, W-10)``.

    On the CPU it works block by block (a group of small planes, or a band of rows of one large
    plane, plus the window's overlap), so the five moments and the products never exist at full
    size; with ``batch`` (the device path) every plane is one block.
    """
    n, c, height, width = x.shape
    window = fspecial_gaussian_1d()
    taps, weights = window.numel(), window.tolist()
    out_h, out_w = height - taps + 1, width - taps + 1
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    xs, ys = x.reshape(n * c, height, width), y.reshape(n * c, height, width)
    if batch:
        ssim_map, cs_map = _ssim_and_cs_block(xs, ys, weights, c1, c2, batch=True).reshape(2, n, c, out_h, out_w)
        return ssim_map, cs_map
    planes_per_block = max(1, _BLOCK_PIXELS // (height * width))
    rows_per_block = out_h if planes_per_block > 1 else max(1, _BLOCK_PIXELS // width)
    plane_groups = []
    for p in range(0, n * c, planes_per_block):
        bands = []
        for r in range(0, out_h, rows_per_block):
            rows = slice(r, min(r + rows_per_block, out_h) + taps - 1)
            bands.append(_ssim_and_cs_block(xs[p : p + planes_per_block, rows], ys[p : p + planes_per_block, rows],
                                            weights, c1, c2))
        plane_groups.append(torch.cat(bands, dim=2) if len(bands) > 1 else bands[0])
    maps = torch.cat(plane_groups, dim=1) if len(plane_groups) > 1 else plane_groups[0]
    ssim_map, cs_map = maps.reshape(2, n, c, out_h, out_w)
    return ssim_map, cs_map


def _check_min_side(x: torch.Tensor, min_side: int, what: str, fix: str) -> None:
    if min(x.shape[-2:]) < min_side:
        raise ValueError(f"images must be at least {min_side}x{min_side} pixels for {what}; got "
                         f"{tuple(x.shape[-2:])}. {fix}")


def ssim_map_matlab(x: torch.Tensor, y: torch.Tensor, *, data_range: float | None = None,
                    layout: Layout = "auto") -> torch.Tensor:
    """``ssim.m``'s ``ssim_map``: after the automatic downsampling, on the 'valid' region.

    Args:
        x, y: reference and distorted, ``(N, C, H, W)``, uint8 or float, at least 11x11.
        data_range: L (required for float input; 255 for uint8).
        layout: ``"auto"`` (blocks on the CPU, the whole batch elsewhere), ``"strip"`` or
            ``"batch"`` (:mod:`~visionbench.quality.layout`); the same values either way.

    Returns:
        float64 ``(N, C, ceil(H / f) - 10, ceil(W / f) - 10)`` with ``f = downsampling_factor(H, W)``.
    """
    r = _check_pair(x, y, data_range)
    # ssim.m returns -Inf for M < 11 or N < 11; an error says more.
    _check_min_side(x, WINDOW_SIZE, "SSIM (its 11x11 window)", "Upscale or pad the images.")
    f = downsampling_factor(*x.shape[-2:])
    batch = use_batch(x, layout)
    x, y = box_decimate(x.double(), f), box_decimate(y.double(), f)
    return _ssim_and_cs_maps(x, y, r, batch)[0]


def ssim_matlab(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float | None = None, reduction: Reduction = "none",
    layout: Layout = "auto",
) -> torch.Tensor:
    """SSIM per image as Wang's ``ssim.m`` computes it (automatic downsampling; module docstring).

    Args:
        x, y: reference and distorted, ``(N, C, H, W)``, uint8 or float, at least 11x11.
        data_range: L (required for float input; 255 for uint8, the script's default).
        reduction: ``"none"`` (``[N]``) or ``"mean"`` (mean of the per-image values).
        layout: ``"auto"``, ``"strip"`` or ``"batch"``, as :func:`ssim_map_matlab`.

    Returns:
        float64 in ``[-1, 1]``: ``mean2(ssim_map)`` per channel, averaged over channels.

    Example:
        >>> img = torch.randint(0, 256, (1, 1, 720, 1280), dtype=torch.uint8)
        >>> float(ssim_matlab(img, img))  # 720 / 256 = 2.81 -> f = 3
        1.0
    """
    value = ssim_map_matlab(x, y, data_range=data_range, layout=layout).mean(dim=(2, 3)).mean(dim=1)
    return value.mean() if reduction == "mean" else value


def ms_ssim_matlab(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float | None = None, reduction: Reduction = "none",
    layout: Layout = "auto",
) -> torch.Tensor:
    """Multi-scale SSIM per image as Wang's ``msssim.m`` computes it (defaults; module docstring).

    MATLAB evaluates ``mcs(l) ^ weight(l)`` for a negative mean contrast-structure (possible for
    strongly anti-correlated images) as a complex number, and the script returns a complex score.
    We return NaN for such a channel (and so for its image) and warn: a complex "similarity" has no
    meaning to rank by, and silently taking a real part or clamping would invent a number.

    Args:
        x, y: reference and distorted, ``(N, C, H, W)``, uint8 or float, at least 176x176
            (``msssim.m`` needs the 11x11 window to fit ``min(H, W) / 2^4``).
        data_range: L (required for float input; 255 for uint8, the script's value).
        reduction: ``"none"`` (``[N]``) or ``"mean"``.
        layout: ``"auto"``, ``"strip"`` or ``"batch"``, as :func:`ssim_map_matlab`.

    Returns:
        float64, at most 1 (NaN as above): per channel, then averaged over channels.

    Example:
        >>> img = torch.rand(2, 3, 256, 256, dtype=torch.float64)
        >>> ms_ssim_matlab(img, img, data_range=1.0).tolist()
        [1.0, 1.0]
    """
    r = _check_pair(x, y, data_range)
    _check_min_side(x, MS_SSIM_MIN_SIDE, f"MS-SSIM ({len(MS_SSIM_WEIGHTS)} scales with an 11x11 window)",
                    "Use ssim_matlab for smaller images, or upscale them.")
    batch = use_batch(x, layout)
    x, y = x.double(), y.double()
    mcs = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        if level > 0:  # msssim.m downsamples after every level; the last result is unused
            x, y = box_decimate(x, 2), box_decimate(y, 2)
        ssim_map, cs_map = _ssim_and_cs_maps(x, y, r, batch)
        mcs.append(cs_map.mean(dim=(2, 3)))  # (N, C)
    mssim = ssim_map.mean(dim=(2, 3))  # of the coarsest level
    factors = torch.stack(mcs[:-1] + [mssim])  # (levels, N, C)
    if bool((factors < 0).any()):
        warnings.warn("MS-SSIM is undefined for some images (a negative mean contrast-structure or SSIM at some "
                      "scale, which MATLAB's msssim.m raises to a fractional power and returns complex); "
                      "returning NaN for them.", RuntimeWarning, stacklevel=2)
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64, device=factors.device).view(-1, 1, 1)
    value = factors.pow(weights).prod(dim=0).mean(dim=1)  # negative ** fraction -> NaN
    return value.mean() if reduction == "mean" else value
