"""Perceptual full-reference image quality: VIFp, HaarPSI and FSIM on ``(N, C, H, W)`` tensors.

Each metric reproduces piq 0.8 (``piq.vif_p``, ``piq.haarpsi``, ``piq.fsim``) — its colour handling,
rescaling to [0, 255], borders, downsampling, constants and epsilons — but always computes in
float64 and returns float64 ``[N]``. Common conventions:

* ``x`` is the reference and ``y`` the distorted image (the order of every visionbench quality
  metric). Only VIFp is asymmetric: ``vif_p(ref, dist)`` equals ``piq.vif_p(dist, ref)``, whose
  second argument is the reference.
* Images are uint8 (data range 255) or float with an explicit ``data_range`` R; values are first
  rescaled to [0, 255] as ``x / R * 255`` (piq's order), because every constant below is in 8-bit units.
* One channel is grayscale; three channels are RGB. Other channel counts are refused.
* Higher is better; identical images score 1.
* Everything is differentiable (``torch.where`` masks and ``abs``/``max`` kinks use their
  sub-gradients), so ``1 - metric`` is a loss. FSIM's square roots are arranged so that flat
  regions and identical images get finite gradients (piq's give NaN there); values are unchanged.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from visionbench.quality.color import BT601_FULL
from visionbench.quality.full_reference import _check_pair, valid_filter
from visionbench.quality.layout import Layout, use_batch

Reduction = Literal["none", "mean"]

# VIFp (piq/vif.py): 4 scales; the eps that guards divisions and masks variances is fixed, not dtype-dependent.
VIF_SCALES, VIF_MIN_SIZE, VIF_EPS = 4, 41, 1e-8
# RGB -> YIQ (piq/functional/colour_conversion.py, rgb2yiq), rows Y, I, Q.
YIQ = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))
# FSIM constants (Zhang et al. 2011, piq/fsim.py): similarity stabilisers T1..T4, chroma exponent lambda.
FSIM_T1, FSIM_T2, FSIM_T3, FSIM_T4, FSIM_LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03
# Log-Gabor bank of FSIM's phase congruency (piq/fsim.py defaults, from Kovesi's phasecong2.m).
FSIM_SCALES, FSIM_ORIENTATIONS, FSIM_MIN_LENGTH, FSIM_MULT = 4, 4, 6, 2
FSIM_SIGMA_F, FSIM_DELTA_THETA, FSIM_K = 0.55, 1.2, 2.0
FSIM_LOWPASS_CUTOFF, FSIM_LOWPASS_ORDER = 0.45, 15
FSIM_MIN_SIZE = 6  # the wavelength of the finest log-Gabor filter


# ---------------------------------------------------------------------------------------------- inputs


def _prepare(
    x: torch.Tensor, y: torch.Tensor, data_range: float | None, reduction: str, metric: str, min_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a pair and return both in float64 on the [0, 255] scale, ``(N, C, H, W)``."""
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}. "
                            "Convert it first, e.g. torch.from_numpy(array).")
    if reduction not in ("none", "mean"):
        raise ValueError(f"reduction must be 'none' or 'mean'; got {reduction!r}.")
    r = _check_pair(x, y, data_range)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 (grayscale) or 3 (RGB) channels; got {x.shape[1]}. "
                         "Convert them to grayscale or RGB first.")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"{metric} needs images of at least {min_size}x{min_size} pixels; got "
                         f"{tuple(x.shape[-2:])}. Use larger images.")
    # piq divides first and multiplies second; keep its order so values match to the last bit.
    return x.double() / r * 255, y.double() / r * 255


def _reduce(value: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    return value.mean() if reduction == "mean" else value


def _rgb_to(image: torch.Tensor, matrix: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """Per-pixel linear colour transform of ``(N, 3, H, W)`` to ``(N, len(matrix), H, W)``."""
    weights = torch.tensor(matrix, dtype=image.dtype, device=image.device)  # (out, 3)
    return torch.einsum("oc,nchw->nohw", weights, image)


def _similarity(a: torch.Tensor, b: torch.Tensor, constant: float) -> torch.Tensor:
    """Dice-like similarity ``(2ab + c) / (a² + b² + c)`` of two maps, 1 where equal."""
    return (2 * a * b + constant) / (a * a + b * b + constant)


# ---------------------------------------------------------------------------------------------- VIFp


def _vif_window(size: int) -> list[float]:
    """1-D factor of piq's ``gaussian_filter(size, sigma=size / 5)``: the 2-D kernel is its outer product."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-offsets.square() / (2 * (size / 5) ** 2))
    return (weights / weights.sum()).tolist()


def _vif_scale(
    ref: torch.Tensor, dist: torch.Tensor, window: list[float], sigma_n_sq: float, batch: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image information sums ``(with distortion, reference only)`` at one scale (``(N, 1, h, w)`` inputs;
    ``batch``: filtered by depthwise convolutions, the device path of :mod:`~visionbench.quality.layout`)."""
    n = ref.shape[0]
    moments = valid_filter(torch.cat([ref, dist, ref * ref, dist * dist, ref * dist]), window, window, batch=batch)
    mu_r, mu_d, e_rr, e_dd, e_rd = moments.split(n)
    # Local variances and covariance; rounding can make a variance slightly negative: clamp at 0.
    var_r = torch.relu(e_rr - mu_r * mu_r)
    var_d = torch.relu(e_dd - mu_d * mu_d)
    cov = e_rd - mu_r * mu_d
    # Gain g and additive noise variance sv² of the channel d = g r + v (Sheikh & Bovik's pixel model),
    # with the guards of the authors' vifvec/vifp_mscale.m in piq's order.
    g = cov / (var_r + VIF_EPS)
    sv = var_d - g * cov
    flat_r = var_r < VIF_EPS  # no reference signal: no gain, everything in d is noise
    g = torch.where(flat_r, 0.0, g)
    sv = torch.where(flat_r, var_d, sv)
    var_r = torch.where(flat_r, 0.0, var_r)
    flat_d = var_d < VIF_EPS  # no distorted signal: no gain, no noise
    g = torch.where(flat_d, 0.0, g)
    sv = torch.where(flat_d, 0.0, sv)
    negative = g < 0  # anti-correlated: treated as all noise
    sv = torch.where(negative, var_d, sv)
    g = torch.relu(g)
    sv = torch.where(sv > VIF_EPS, sv, VIF_EPS)
    with_distortion = torch.log10(1 + g * g * var_r / (sv + sigma_n_sq)).sum(dim=(1, 2, 3))
    reference_only = torch.log10(1 + var_r / sigma_n_sq).sum(dim=(1, 2, 3))
    return with_distortion, reference_only


def vif_p(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float | None = None,
    sigma_n_sq: float = 2.0,
    reduction: Reduction = "none",
    layout: Layout = "auto",
) -> torch.Tensor:
    """Visual Information Fidelity, pixel domain (Sheikh & Bovik 2006), as ``piq.vif_p``.

    RGB images are reduced to luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (on the [0, 255] scale);
    grayscale is used as is. Over 4 scales with Gaussian windows of 17, 9, 5, 3 taps (sigma = taps / 5),
    each scale after the first filters with its own window ('valid', no padding) and keeps every second
    row and column; local statistics are 'valid' too. The score is
    ``(Σ log10(1 + g² σr² / (σv² + σn²)) + 1e-8) / (Σ log10(1 + σr² / σn²) + 1e-8)`` over all scales and
    pixels, with the authors' guards for flat regions and negative gains.

    Args:
        x: reference, ``(N, C, H, W)`` with C = 1 or 3 (RGB), uint8 or float, at least 41×41.
        y: distorted, same shape. ``vif_p(x, y) == piq.vif_p(y, x)`` (piq takes the reference second).
        data_range: R of the input (required for float input; 255 for uint8).
        sigma_n_sq: variance of the visual noise of the HVS model, in 8-bit units².
        reduction: ``"none"`` (``[N]``) or ``"mean"`` (mean of the per-image values).
        layout: ``"auto"`` (shifted views on the CPU, depthwise convolutions elsewhere), ``"strip"``
            or ``"batch"`` (:mod:`~visionbench.quality.layout`); the same values either way.

    Returns:
        float64, higher is better: 1 for identical images, usually in [0, 1], above 1 when the
        distorted image has more contrast than the reference.

    Example:
        >>> img = torch.rand(1, 3, 64, 64)
        >>> round(float(vif_p(img, img, data_range=1.0)), 6)  # 1 - O(1e-9): the 1e-8 guards
        1.0
    """
    ref, dist = _prepare(x, y, data_range, reduction, "VIFp", VIF_MIN_SIZE)
    batch = use_batch(ref, layout)
    if ref.shape[1] == 3:
        # BT.601 luminance, as piq/vif.py: Y = 0.299 R + 0.587 G + 0.114 B.
        ref, dist = _rgb_to(ref, (BT601_FULL,)), _rgb_to(dist, (BT601_FULL,))  # (N, 1, H, W)
    numerator = denominator = torch.zeros(ref.shape[0], dtype=torch.float64, device=ref.device)
    for scale in range(VIF_SCALES):
        window = _vif_window(2 ** (VIF_SCALES - scale) + 1)
        if scale > 0:
            # Low-pass with this scale's window, then decimate by 2 (vifp_mscale.m's filter2 'valid' + (1:2:end)).
            down = valid_filter(torch.cat([ref, dist]), window, window, batch=batch)[..., ::2, ::2]
            ref, dist = down.split(ref.shape[0])
        with_distortion, reference_only = _vif_scale(ref, dist, window, sigma_n_sq, batch)
        numerator, denominator = numerator + with_distortion, denominator + reference_only
    return _reduce((numerator + VIF_EPS) / (denominator + VIF_EPS), reduction)


# ---------------------------------------------------------------------------------------------- HaarPSI


def _haar_coefficients(luma: torch.Tensor, scales: int, batch: bool = False) -> list[torch.Tensor]:
    """Haar responses ``(N, 2, H, W)`` per scale, finest first, of ``(N, 1, H, W)`` luminance.

    At scale s the filters are k × k with k = 2^(s+1), each tap ±1/k (piq's haar_filter): channel 0
    is the top half minus the bottom half (responds to horizontal edges), channel 1 its transpose.
    Both are separable (a ±1/k step one way, a box of ones the other). Zero padding of k/2 − 1 before
    and k/2 after (even kernel), as MATLAB's ``conv2(A, B, 'same')`` in the authors' code; the filters
    are applied as correlations, as piq does. ``batch``: filtered by depthwise convolutions (the
    device path of :mod:`~visionbench.quality.layout`).
    """
    out = []
    for scale in range(scales):
        k = 2 ** (scale + 1)
        step, box = [1 / k] * (k // 2) + [-1 / k] * (k // 2), [1.0] * k
        before, after = k // 2 - 1, k // 2
        padded = F.pad(luma, (before, after, before, after))
        out.append(torch.cat([valid_filter(padded, step, box, batch=batch), valid_filter(padded, box, step, batch=batch)],
                             dim=1))
    return out


def _haarpsi_subsample(image: torch.Tensor) -> torch.Tensor:
    """2×2 mean pooling with stride 2, after piq's zero padding: when H or W is odd, one zero row *and*
    one zero column are appended (both, whichever is odd), then pooling drops any leftover row/column."""
    pad = max(image.shape[-2] % 2, image.shape[-1] % 2)
    return F.avg_pool2d(F.pad(image, (0, pad, 0, pad)), kernel_size=2, stride=2)


def haarpsi(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float | None = None,
    scales: int = 3,
    subsample: bool = True,
    c: float = 30.0,
    alpha: float = 4.2,
    reduction: Reduction = "none",
    layout: Layout = "auto",
) -> torch.Tensor:
    """Haar wavelet-based perceptual similarity index (Reisenhofer et al. 2018), as ``piq.haarpsi``.

    RGB is converted to YIQ (``Y = 0.299 R + 0.587 G + 0.114 B``, I and Q by piq's matrix) on the
    [0, 255] scale; grayscale is Y alone. With ``subsample`` the planes are first 2×2 mean-pooled (see
    :func:`_haarpsi_subsample` for piq's odd-size padding). Y is decomposed by Haar filters of sizes
    2, 4, … 2^scales in two orientations; per orientation, the local similarity
    ``(2 |a| |b| + c) / (a² + b² + c)`` is averaged over the finer scales and weighted by
    ``max(|a|, |b|)`` at the coarsest scale. For RGB a third map compares |2×2 mean| of I and of Q
    (zero-padded at the bottom/right), weighted by the mean of the two orientation weights. The index is
    ``(logit(Σ w · sigmoid(alpha · s) / Σ w) / alpha)²`` (sums over maps and pixels, each with float64's
    machine epsilon added, as piq does).

    Args:
        x: reference, ``(N, C, H, W)`` with C = 1 or 3 (RGB), uint8 or float, at least 2^(scales+1)
            pixels on each side (16 for the default 3 scales).
        y: distorted, same shape (the index is symmetric).
        data_range: R of the input (required for float input; 255 for uint8).
        scales: number of Haar scales (the published value and piq's only working one is 3; other
            values ≥ 2 follow the same rule: similarity from all but the coarsest, weights from the coarsest).
        subsample: 2×2 mean pooling first (models viewing distance, as in the paper).
        c: similarity constant, in 8-bit units.
        alpha: slope of the logistic function.
        reduction: ``"none"`` (``[N]``) or ``"mean"``.
        layout: ``"auto"``, ``"strip"`` or ``"batch"``, as :func:`vif_p`.

    Returns:
        float64 in [0, 1], higher is better; 1 for identical images — except two all-zero images,
        which have no Haar weight anywhere: piq's epsilons then give ``logit(1) = inf``, kept as is.

    Example:
        >>> img = torch.rand(1, 3, 32, 32)
        >>> round(float(haarpsi(img, img, data_range=1.0)), 12)
        1.0
    """
    if isinstance(scales, bool) or not isinstance(scales, int) or scales < 2:
        raise ValueError(f"scales must be an integer >= 2; got {scales!r}. The published HaarPSI uses 3.")
    ref, dist = _prepare(x, y, data_range, reduction, "HaarPSI", 2 ** (scales + 1))
    n, colour = ref.shape[0], ref.shape[1] == 3
    both = torch.cat([ref, dist])  # (2N, C, H, W): every step below treats the pair at once
    if colour:
        both = _rgb_to(both, YIQ)
    if subsample:
        both = _haarpsi_subsample(both)
    coefficients = [c_.abs() for c_ in _haar_coefficients(both[:, :1], scales, use_batch(both, layout))]  # (2N, 2, h, w)
    coarsest_r, coarsest_d = coefficients[-1].split(n)
    weights = torch.maximum(coarsest_r, coarsest_d)  # (N, 2, h, w): horizontal, vertical
    similarity = torch.stack(
        [_similarity(*magnitude.split(n), c) for magnitude in coefficients[:-1]]
    ).mean(dim=0)  # (N, 2, h, w)
    if colour:
        # |2×2 mean| of I and Q: a 1-pixel zero pad at the bottom/right keeps the size (piq's avg_pool2d).
        chroma = F.avg_pool2d(F.pad(both[:, 1:], (0, 1, 0, 1)), kernel_size=2, stride=1).abs()
        chroma_r, chroma_d = chroma.split(n)
        chroma_similarity = _similarity(chroma_r, chroma_d, c).mean(dim=1, keepdim=True)
        weights = torch.cat([weights, weights.mean(dim=1, keepdim=True)], dim=1)
        similarity = torch.cat([similarity, chroma_similarity], dim=1)
    eps = torch.finfo(torch.float64).eps
    pooled = ((torch.sigmoid(alpha * similarity) * weights).sum(dim=(1, 2, 3)) + eps) / (
        weights.sum(dim=(1, 2, 3)) + eps
    )
    value = (torch.log(pooled / (1 - pooled)) / alpha) ** 2
    return _reduce(value, reduction)


# ---------------------------------------------------------------------------------------------- FSIM


def _centred_grid(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Frequency coordinates of one axis, zero in the middle (piq's get_meshgrid): odd sizes span
    [-0.5, 0.5] in steps of 1/(size-1), even sizes [-0.5, 0.5) in steps of 1/size."""
    if size % 2:
        return torch.arange(-(size - 1) / 2, size / 2, dtype=dtype, device=device) / (size - 1)
    return torch.arange(-size / 2, size / 2, dtype=dtype, device=device) / size


def _ifftshift(image: torch.Tensor) -> torch.Tensor:
    """``numpy.fft.ifftshift`` of a 2-D tensor (the zero frequency moves to the top-left corner)."""
    return torch.roll(image, shifts=(-(image.shape[0] // 2), -(image.shape[1] // 2)), dims=(0, 1))


def _log_gabor_bank(h: int, w: int, device: torch.device) -> torch.Tensor:
    """Frequency responses of the log-Gabor filters, ``(orientations * scales, H, W)``, orientation-major,
    zero frequency at [0, 0] (Kovesi's phasecong2.m via piq's _construct_filters)."""
    gx, gy = torch.meshgrid(_centred_grid(h, torch.float64, device), _centred_grid(w, torch.float64, device),
                            indexing="ij")
    radius = torch.sqrt(gx**2 + gy**2)
    theta = torch.atan2(-gy, gx)
    # Butterworth low-pass that removes the FFT's corner frequencies.
    lowpass = _ifftshift(1.0 / (1.0 + (radius / FSIM_LOWPASS_CUTOFF) ** (2 * FSIM_LOWPASS_ORDER)))
    radius, theta = _ifftshift(radius), _ifftshift(theta)
    radius[0, 0] = 1  # log(0) guard; the DC response is zeroed below
    radial = []
    for s in range(FSIM_SCALES):
        centre = 1.0 / (FSIM_MIN_LENGTH * FSIM_MULT**s)
        band = torch.exp(-torch.log(radius / centre) ** 2 / (2 * math.log(FSIM_SIGMA_F) ** 2)) * lowpass
        band[0, 0] = 0
        radial.append(band)
    theta_sigma = math.pi / (FSIM_ORIENTATIONS * FSIM_DELTA_THETA)
    sin_t, cos_t = torch.sin(theta), torch.cos(theta)
    angular = []
    for o in range(FSIM_ORIENTATIONS):
        angle = o * math.pi / FSIM_ORIENTATIONS
        # Angular distance via atan2 of the sine and cosine differences (no wrap-around problem).
        d_sin = sin_t * math.cos(angle) - cos_t * math.sin(angle)
        d_cos = cos_t * math.cos(angle) + sin_t * math.sin(angle)
        angular.append(torch.exp(-torch.atan2(d_sin, d_cos).abs() ** 2 / (2 * theta_sigma**2)))
    return (torch.stack(angular)[:, None] * torch.stack(radial)[None]).reshape(-1, h, w)


def _phase_congruency(luma: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Phase congruency ``(N, 1, H, W)`` of ``(N, 1, H, W)`` luminance (Kovesi's PC_2 measure with his
    noise compensation, as piq's _phase_congruency)."""
    n, _, h, w = luma.shape
    o, s = FSIM_ORIENTATIONS, FSIM_SCALES
    eps = torch.finfo(torch.float64).eps
    response = torch.fft.ifft2(torch.fft.fft2(luma) * bank).view(n, o, s, h, w)  # even + i odd, per filter
    amplitude = response.abs()  # (N, O, S, H, W)
    total = response.sum(dim=2, keepdim=True)
    mean_phase = total.conj() / (total.abs() + eps)  # conjugate unit vector of the weighted mean phase
    # Per scale, A (cos Δφ − |sin Δφ|) = e·ē + o·ō − |e·ō − o·ē| with (ē, ō) the mean phase: the real
    # part and the |imaginary part| of the response rotated by the conjugate mean phase (one complex product).
    rotated = response * mean_phase
    energy = (rotated.real - rotated.imag.abs()).sum(dim=2, keepdim=True)  # (N, O, 1, H, W)

    # Noise compensation. The median squared response at the finest scale estimates the noise power
    # (median / ln 2, over the filter's energy); from it the Rayleigh parameter tau of the noise energy,
    # and the threshold mean + k std = tau (sqrt(pi/2) + k sqrt(2 - pi/2)), divided by Kovesi's empirical 1.7.
    # piq takes the median of the squares (torch.median: the lower middle value for an even count) and two
    # square roots; the median of the squares is the square of the median (squaring is monotone here),
    # so tau = median · sqrt(constants): the same value, and a finite gradient where the median is 0.
    bank = bank.view(1, o, s, h, w)
    filter_energy = (bank[:, :, :1] ** 2).sum(dim=(-2, -1), keepdim=True)  # (1, O, 1, 1, 1)
    median = torch.median(amplitude[:, :, :1].reshape(n, o, 1, 1, h * w), dim=-1, keepdim=True).values
    spatial = torch.fft.ifft2(bank).real * math.sqrt(h * w)  # the filters in the spatial domain
    sum_an2 = (spatial**2).sum(dim=(2, 3, 4), keepdim=True)
    sum_ai_aj = sum((spatial[:, :, i : i + 1] * spatial[:, :, i + 1 :]).sum(dim=2, keepdim=True) for i in range(s - 1))
    sum_ai_aj = sum_ai_aj.sum(dim=(3, 4), keepdim=True)
    # noise energy² = 2 P Σ An² + 4 P Σ Ai Aj with P = median² / ln 2 / filter energy; tau = sqrt(energy² / 2).
    tau = median * torch.sqrt((sum_an2 + 2 * sum_ai_aj) / (math.log(2) * filter_energy))
    threshold = tau * (math.sqrt(math.pi / 2) + FSIM_K * math.sqrt(2 - math.pi / 2)) / 1.7
    energy = torch.clamp_min(energy - threshold, 0.0)
    return ((energy.sum(dim=(1, 2)) + eps) / (amplitude.sum(dim=(1, 2)) + eps))[:, None]


def _gradient_magnitude(luma: torch.Tensor) -> torch.Tensor:
    """Scharr gradient magnitude ``(N, 1, H, W)``, zero padding of 1 (piq's gradient_map)."""
    kx = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]], dtype=torch.float64,
                      device=luma.device) / 16
    grads = F.conv2d(luma, torch.stack([kx, kx.T])[:, None], padding=1)
    # The norm's gradient is 0 (not NaN like sqrt's) where the image is flat.
    return torch.linalg.vector_norm(grads, dim=1, keepdim=True)


def fsim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float | None = None,
    chromatic: bool = True,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """Feature similarity index, FSIM / FSIMc (Zhang et al. 2011), as ``piq.fsim``.

    On the [0, 255] scale the images are first mean-pooled by ``max(1, round(min(H, W) / 256))``
    (Python's round, half to even; stride = size, leftover rows/columns dropped). RGB is converted
    to YIQ (piq's matrix). On Y: phase congruency PC from a log-Gabor bank (4 scales from wavelength
    6, ×2 each, 4 orientations) with Kovesi's noise compensation, and the Scharr gradient magnitude
    GM (zero padding). ``FSIM = Σ S_PC S_GM PC_max / Σ PC_max`` with ``S = (2ab + T) / (a² + b² + T)``,
    T1 = 0.85 (PC) and T2 = 160 (GM); FSIMc multiplies each term by ``|S_I S_Q|^0.03`` (T3 = T4 = 200).

    Args:
        x: reference, ``(N, C, H, W)`` with C = 1 or 3 (RGB), uint8 or float, at least 6×6.
        y: distorted, same shape (the index is symmetric).
        data_range: R of the input (required for float input; 255 for uint8).
        chromatic: FSIMc (needs RGB); ``False`` gives FSIM on luminance only.
        reduction: ``"none"`` (``[N]``) or ``"mean"``.

    Returns:
        float64, higher is better; 1 for identical images, usually in [0, 1].

    Example:
        >>> img = torch.rand(1, 3, 32, 32)
        >>> round(float(fsim(img, img, data_range=1.0)), 12)
        1.0
    """
    ref, dist = _prepare(x, y, data_range, reduction, "FSIM", FSIM_MIN_SIZE)
    if chromatic and ref.shape[1] != 3:
        raise ValueError(f"chromatic=True (FSIMc) needs RGB images; got {ref.shape[1]} channel(s). "
                         "Pass chromatic=False for grayscale images.")
    n = ref.shape[0]
    both = torch.cat([ref, dist])  # (2N, C, H, W)
    pool = max(1, round(min(both.shape[-2:]) / 256))
    both = F.avg_pool2d(both, pool)
    if both.shape[1] == 3:
        both = _rgb_to(both, YIQ)
    luma = both[:, :1]
    pc_r, pc_d = _phase_congruency(luma, _log_gabor_bank(*luma.shape[-2:], luma.device)).split(n)
    gm_r, gm_d = _gradient_magnitude(luma).split(n)
    pc_max = torch.where(pc_r > pc_d, pc_r, pc_d)
    score = _similarity(pc_r, pc_d, FSIM_T1) * _similarity(gm_r, gm_d, FSIM_T2) * pc_max
    if chromatic:
        (i_r, q_r), (i_d, q_d) = (part.split(1, dim=1) for part in both[:, 1:].split(n))
        score = score * (_similarity(i_r, i_d, FSIM_T3) * _similarity(q_r, q_d, FSIM_T4)).abs() ** FSIM_LAMBDA
    return _reduce(score.sum(dim=(1, 2, 3)) / pc_max.sum(dim=(1, 2, 3)), reduction)
