"""Full-reference image quality: PSNR and SSIM on ``(N, C, H, W)`` tensors.

The ``skimage`` profile reproduces scikit-image exactly in its documented Wang et al. setting:
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=R)`` — an 11-tap Gaussian (radius ``int(3.5 * 1.5 + 0.5) = 5``), SciPy's ``reflect``
border (the edge pixel repeated: ``d c b a | a b c d``), population covariances, and the mean of
the SSIM map with a 5-pixel border cropped; per image, the mean over channels. Computation is in
float64, so results equal scikit-image's (which computes in float64 for integer input) to ~1e-12.
Everything is differentiable, so ``1 - ssim(x, y)`` is a loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from visionbench.quality.layout import Layout, depthwise_valid_filter, use_batch

Reduction = Literal["none", "mean"]

# Wang et al. 2004 constants, as scikit-image uses them.
K1, K2, SIGMA, TRUNCATE = 0.01, 0.03, 1.5, 3.5


def _check_pair(x: torch.Tensor, y: torch.Tensor, data_range: float | None) -> float:
    """Validate a reference/distorted pair; returns the data range to use."""
    if x.shape != y.shape:
        raise ValueError(f"reference and distorted images must have the same shape; got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}. Resize or crop one of them first.")
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W) tensors; got {x.ndim} dimensions. Add batch/channel "
                         "dimensions, e.g. image[None, None] for one grayscale image.")
    if data_range is None:
        if x.dtype == torch.uint8:
            return 255.0
        kind = "float" if x.is_floating_point() else str(x.dtype).removeprefix("torch.")
        raise ValueError(f"data_range must be given for {kind} images (e.g. 1.0 for floats in [0, 1], 1023 for 10-bit, "
                         "65535 for 16-bit samples); guessing it from the dtype is how tools come to disagree.")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0; got {data_range!r}.")
    return float(data_range)


def psnr(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float | None = None, reduction: Reduction = "none"
) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, ``10 log10(R² / MSE)`` with the MSE over C, H, W.

    Equal to scikit-image's ``peak_signal_noise_ratio(x[i], y[i], data_range=R)``; identical
    images give ``inf``.

    Args:
        x, y: reference and distorted, ``(N, C, H, W)``, uint8 or float.
        data_range: R (required for float input; 255 for uint8).
        reduction: ``"none"`` (``[N]``) or ``"mean"`` (mean of the per-image values).

    Returns:
        float64 dB.
    """
    r = _check_pair(x, y, data_range)
    value = 10 * torch.log10(r * r / mean_difference(x, y, power=2))
    return value.mean() if reduction == "mean" else value


DIFFERENCE_CHUNK = 1 << 20  # samples per image converted to float64 at a time (8 MB)


def mean_difference(x: torch.Tensor, y: torch.Tensor, *, power: int) -> torch.Tensor:
    """``mean(|x − y| ** power)`` per image over C, H, W in float64, ``[N]``.

    Integer samples are summed exactly in int64 (faster than float64, and the same value, since
    float64 sums of such integers are exact too); floats in float64. Either way the work goes in
    chunks of about :data:`DIFFERENCE_CHUNK` samples, so a 4K pair never has a whole 64-bit copy
    in memory.
    """
    n = x.shape[0]
    flat_x, flat_y = x.reshape(n, -1), y.reshape(n, -1)
    integer = not (x.is_floating_point() or y.is_floating_point() or x.requires_grad or y.requires_grad)
    step = max(1, DIFFERENCE_CHUNK // max(n, 1))
    total = x.new_zeros(n, dtype=torch.int64 if integer else torch.float64)
    for start in range(0, flat_x.shape[1], step):
        a, b = flat_x[:, start : start + step], flat_y[:, start : start + step]
        if integer:  # uint8 differences fit int16 and their squares int32; wider samples need int64
            narrow = a.dtype == torch.uint8 and b.dtype == torch.uint8
            difference = a.to(torch.int32 if narrow else torch.int64) - b.to(torch.int32 if narrow else torch.int64)
        else:
            difference = a.double() - b.double()
        part = difference.square() if power == 2 else difference.abs()
        total = total + part.sum(dim=1, dtype=total.dtype)
    return total.double() / flat_x.shape[1]


def mse(x: torch.Tensor, y: torch.Tensor, *, reduction: Reduction = "none") -> torch.Tensor:
    """Mean squared error per image over C, H, W, float64, in the input's units squared
    (lower is better). Example: ``mse(x, x)`` is 0."""
    _check_pair(x, y, 1.0)
    value = mean_difference(x, y, power=2)
    return value.mean() if reduction == "mean" else value


def mae(x: torch.Tensor, y: torch.Tensor, *, reduction: Reduction = "none") -> torch.Tensor:
    """Mean absolute error per image over C, H, W, float64, in the input's units (lower is better)."""
    _check_pair(x, y, 1.0)
    value = mean_difference(x, y, power=1)
    return value.mean() if reduction == "mean" else value


def gaussian_window(sigma: float = SIGMA, truncate: float = TRUNCATE) -> torch.Tensor:
    """SciPy's 1-D Gaussian weights (radius ``int(truncate * sigma + 0.5)``), float64, sum 1."""
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def _reflect_pad(image: torch.Tensor, pad: int) -> torch.Tensor:
    """SciPy's ``reflect`` border on H and W (edge pixel repeated), ``[..., H + 2p, W + 2p]``."""
    for dim in (-2, -1):
        if image.shape[dim] < pad:
            raise ValueError(f"images must be at least {pad} pixels on each side; got {tuple(image.shape[-2:])}.")
        head = image.narrow(dim, 0, pad).flip(dim)
        tail = image.narrow(dim, image.shape[dim] - pad, pad).flip(dim)
        image = torch.cat([head, image, tail], dim=dim)
    return image


def ssim_map(x: torch.Tensor, y: torch.Tensor, *, data_range: float | None = None,
             layout: Layout = "auto") -> torch.Tensor:
    """The SSIM index at every pixel (before cropping), float64 ``(N, C, H, W)``: the moments
    with SciPy's reflected border, through the same valid filter as :func:`ssim` (``layout``:
    :mod:`~visionbench.quality.layout`; the whole batch either way)."""
    r = _check_pair(x, y, data_range)
    batch = use_batch(x, layout)
    x, y = x.double(), y.double()
    window = gaussian_window().tolist()
    moments = _reflect_pad(torch.stack([x, y, x * x + y * y, x * y]), (len(window) - 1) // 2)  # (4, N, C, H+2r, W+2r)
    return _ssim_terms(*valid_filter(moments, window, window, batch=batch), (K1 * r) ** 2, (K2 * r) ** 2)


def ssim(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float | None = None, reduction: Reduction = "none",
    layout: Layout = "auto",
) -> torch.Tensor:
    """Structural similarity per image, scikit-image profile (see the module docstring).

    Args:
        x, y: reference and distorted, ``(N, C, H, W)``, at least 11×11.
        data_range: R (required for float input; 255 for uint8).
        reduction: ``"none"`` (``[N]``) or ``"mean"``.
        layout: ``"auto"`` (strips on the CPU, the whole batch elsewhere), ``"strip"`` or
            ``"batch"`` (:mod:`~visionbench.quality.layout`); the same values either way.

    Returns:
        float64 in ``[-1, 1]``.

    Example:
        >>> img = torch.rand(1, 3, 64, 64)
        >>> float(ssim(img, img, data_range=1.0))
        1.0
    """
    r = _check_pair(x, y, data_range)
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels (its Gaussian window); got {tuple(x.shape[-2:])}.")
    value = mean_ssim_per_channel(x, y, data_range=r, layout=layout).mean(dim=1)  # scikit-image: mean over channels
    return value.mean() if reduction == "mean" else value


def mean_ssim_per_channel(x: torch.Tensor, y: torch.Tensor, *, data_range: float,
                          layout: Layout = "auto") -> torch.Tensor:
    """Mean SSIM of each plane over scikit-image's cropped region, float64 ``(N, C)``.

    scikit-image filters the whole image with a reflected border and then crops the 5-pixel
    border, so every pixel it averages has its full 11×11 window inside the image: the mean is
    exactly that of a *valid* filter, which needs no padding. On the CPU (``layout="strip"``) the
    valid region is computed in horizontal strips (:func:`_strip_rows` rows at a time) so the
    working set stays in cache and memory stays bounded on 4K images. Without autograd the strip
    buffers are reused in place; with it every step is out of place so gradients flow. Elsewhere
    (``"batch"``) every plane is filtered at once: :func:`_mean_ssim_batch`.
    """
    if use_batch(x, layout):
        return _mean_ssim_batch(x, y, data_range)
    n, c, h, w = x.shape
    window = gaussian_window().tolist()
    radius = (len(window) - 1) // 2
    rows_out = h - 2 * radius
    strip = min(_strip_rows(w), rows_out)
    differentiable = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    buffers = None if differentiable else _StripBuffers(strip, w, radius)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    means = []
    for image in range(n):
        for plane in range(c):
            total = x.new_zeros((), dtype=torch.float64)
            for top in range(0, rows_out, strip):
                count = min(strip, rows_out - top)
                xs, ys = (v[image, plane, top : top + count + 2 * radius] for v in (x, y))
                moments = _strip_moments(xs, ys, buffers)
                filtered = valid_separable_filter(moments, window, window,
                                                  rows_out=None if buffers is None else buffers.vertical,
                                                  out=None if buffers is None else buffers.horizontal)
                scratch = None if buffers is None else buffers.product[:count]
                total = total + _ssim_sum(*filtered, c1, c2, scratch=scratch)
            means.append(total / (rows_out * (w - 2 * radius)))
    return torch.stack(means).reshape(n, c)


def _mean_ssim_batch(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """:func:`mean_ssim_per_channel` on the device path: the four moments of every plane through
    one pair of depthwise convolutions, float64 throughout (the mean too), ``(N, C)``."""
    window = gaussian_window().tolist()
    x, y = x.double(), y.double()
    moments = torch.stack([x, y, x * x + y * y, x * y])  # (4, N, C, H, W): x² + y² as one plane, as the strips
    filtered = depthwise_valid_filter(moments, window, window)
    terms = _ssim_terms(*filtered, (K1 * data_range) ** 2, (K2 * data_range) ** 2)
    return terms.mean(dim=(-2, -1))


def _strip_rows(width: int) -> int:
    """Output rows per strip: about 64k samples per plane (4 planes ≈ 2 MB of float64)."""
    return max(16, min(256, 65536 // max(width, 1)))


class _StripBuffers:
    """Preallocated float64 buffers for one strip, reused across strips and planes (first-touch
    page faults make fresh allocations slow and noisy on this kind of machine)."""

    def __init__(self, rows: int, width: int, radius: int) -> None:
        self.moments = torch.empty(4, rows + 2 * radius, width, dtype=torch.float64)  # x, y, x²+y², xy
        self.vertical = torch.empty(4, rows, width, dtype=torch.float64)
        self.horizontal = torch.empty(4, rows, width - 2 * radius, dtype=torch.float64)
        self.product = torch.empty(rows, width - 2 * radius, dtype=torch.float64)


def _strip_moments(xs: torch.Tensor, ys: torch.Tensor, buffers: _StripBuffers | None) -> torch.Tensor:
    """``(4, rows, W)``: x, y, x² + y², xy. Only the sum of the two variances enters SSIM, so
    x² and y² are filtered as one plane (4 filtered planes instead of scikit-image's 5)."""
    if buffers is None:
        xs, ys = xs.double(), ys.double()
        return torch.stack([xs, ys, xs * xs + ys * ys, xs * ys])
    m = buffers.moments[:, : xs.shape[0]]
    m[0].copy_(xs)
    m[1].copy_(ys)
    torch.mul(m[0], m[0], out=m[2])
    m[2].addcmul_(m[1], m[1])
    torch.mul(m[0], m[1], out=m[3])
    return m


def valid_separable_filter(image: torch.Tensor, along_h: Sequence[float], along_w: Sequence[float], *,
                           rows_out: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Correlation with ``outer(along_h, along_w)`` keeping only outputs whose window lies inside
    the image (``'valid'``): ``(..., H, W)`` → ``(..., H - kh + 1, W - kw + 1)``.

    Each 1-D pass is a weighted sum of shifted views accumulated in place: float64 convolution has
    no fast CPU kernel, and this is ~10× faster than ``conv2d`` (same values to ~1e-16). Every
    windowed quality metric (SSIM in each profile, MS-SSIM, VIF, the MATLAB ports) filters
    through this one function on the CPU, so they share one order of operations; on other devices
    they use :func:`~visionbench.quality.layout.depthwise_valid_filter` (see :func:`valid_filter`).

    Args:
        image: ``(..., H, W)``, at least the kernel's size.
        along_h, along_w: the 1-D weights down the rows and along the columns.
        rows_out, out: optional buffers of the vertical pass ``(..., >= H - kh + 1, W)`` and of the
            result ``(..., >= H - kh + 1, W - kw + 1)``, reused across calls so a hot loop
            allocates nothing; the result is then a view of ``out``.
    """
    h, w = image.shape[-2] - len(along_h) + 1, image.shape[-1] - len(along_w) + 1
    rows = torch.mul(image[..., 0:h, :], along_h[0], out=None if rows_out is None else rows_out[..., :h, :])
    for k in range(1, len(along_h)):
        rows.add_(image[..., k : k + h, :], alpha=along_h[k])  # (..., h, W)
    result = torch.mul(rows[..., 0:w], along_w[0], out=None if out is None else out[..., :h, :])
    for k in range(1, len(along_w)):
        result.add_(rows[..., k : k + w], alpha=along_w[k])  # (..., h, w)
    return result


def valid_filter(image: torch.Tensor, along_h: Sequence[float], along_w: Sequence[float], *,
                 batch: bool) -> torch.Tensor:
    """The ``'valid'`` separable filter of :func:`valid_separable_filter`; with ``batch`` (the
    device path, :mod:`~visionbench.quality.layout`) as depthwise convolutions over all planes."""
    if batch:
        return depthwise_valid_filter(image, along_h, along_w)
    return valid_separable_filter(image, along_h, along_w)


def _ssim_terms(ux: torch.Tensor, uy: torch.Tensor, sum_sq: torch.Tensor, uxy: torch.Tensor, c1: float,
                c2: float) -> torch.Tensor:
    """The SSIM index from the filtered moments, out of place (differentiable)."""
    mean_sq = ux * ux + uy * uy
    numerator = (2 * ux * uy + c1) * (2 * (uxy - ux * uy) + c2)
    return numerator / ((mean_sq + c1) * (sum_sq - mean_sq + c2))


def _ssim_sum(
    ux: torch.Tensor, uy: torch.Tensor, sum_sq: torch.Tensor, uxy: torch.Tensor, c1: float, c2: float, *,
    scratch: torch.Tensor | None,
) -> torch.Tensor:
    """Sum over a strip of ``(2 µx µy + C1)(2 σxy + C2) / ((µx² + µy² + C1)(σx² + σy² + C2))``.

    ``sum_sq`` is the filtered ``x² + y²``, so ``σx² + σy² = sum_sq − µx² − µy²``. The in-place
    variant (given a ``scratch`` buffer) overwrites the filtered planes and allocates nothing;
    both give the same values.
    """
    if scratch is None:
        return _ssim_terms(ux, uy, sum_sq, uxy, c1, c2).sum()
    product = torch.mul(ux, uy, out=scratch)
    uxy.sub_(product).mul_(2).add_(c2)  # 2 σxy + C2
    product.mul_(2).add_(c1).mul_(uxy)  # numerator
    ux.square_().addcmul_(uy, uy)  # µx² + µy²
    sum_sq.sub_(ux).add_(c2)  # σx² + σy² + C2
    ux.add_(c1).mul_(sum_sq)  # denominator
    return product.div_(ux).sum()


def psnr_db_of_mse(mse: float, data_range: float) -> float:
    """PSNR of a pooled MSE (e.g. over video frames): ``10 log10(R² / MSE)``."""
    return math.inf if mse == 0 else 10 * math.log10(data_range * data_range / mse)
