"""No-reference image quality: NIQE and BRISQUE on ``(N, C, H, W)`` tensors, from one image alone.

Both measure how far an image's natural-scene statistics are from those of undistorted photographs
(lower is better), and both start as the LIVE lab's MATLAB releases do: a colour image becomes
MATLAB's ``rgb2gray`` (rounded for integer input, :func:`~visionbench.quality.color.matlab_rgb2gray`),
values are on the 0–255 scale, the MSCN coefficients are ``(I − µ) / (σ + 1)`` with µ and σ from a
7×7 Gaussian window (``fspecial('gaussian', 7, 7/6)``), and the second scale is MATLAB's
``imresize(I, 0.5)`` (bicubic, antialiased), reproduced exactly by :func:`imresize_half`.
Everything runs in float64 on the input's device.

**NIQE** (Mittal, Soundararajan & Bovik, "Making a completely blind image quality analyzer", IEEE
SPL 2013). The image is cropped to whole 96×96 patches. Per patch and scale, 18 features: an
asymmetric generalised Gaussian (AGGD) fit of the MSCN coefficients (shape, mean of the two scale
parameters), and for each product of neighbouring coefficients (horizontal, vertical and the two
diagonals: ``circshift`` by ``[0 1], [1 0], [1 1], [1 -1]`` within the patch) the AGGD shape, mean,
left and right scale: 36 features over the two scales. A multivariate Gaussian of the image's
patches is compared with the pristine model's: ``sqrt((µp − µd)ᵀ pinv((Σp + Σd) / 2) (µp − µd))``.
What the paper leaves open follows the release's ``computequality.m``: moment matching on the shape
grid ``0.2:0.001:10``, NaN features of flat patches left out (``nanmean`` per feature, ``nancov``
over complete patches), every patch of the tested image used.

The **pristine model** shipped (:mod:`visionbench.quality.niqe_model`) is *not* LIVE's
``modelparameters.mat``. The NIQE release grants the right to "use, copy, modify, and distribute
this code (the source files) and its documentation" with a copyright-notice and citation
condition, which does not clearly cover the fitted parameter file, so visionbench fits its own with
``benchmarks/fit_niqe.py`` (:func:`fit_niqe_model`) on scikit-image's sample photographs
(:data:`NIQE_CORPUS`), keeping, as the paper does, the 96×96 patches whose mean local σ exceeds
0.75 of the image's sharpest patch. Caveat: 8 photographs rather than the paper's 125, so the
scores rank distortions of one image as NIQE does but are **not** comparable with published NIQE
values. With LIVE's ``modelparameters.mat`` converted to ``.npz`` (:func:`load_niqe_model`) the
scores are NIQE's.

**BRISQUE** (Mittal, Moorthy & Bovik, "No-reference image quality assessment in the spatial
domain", IEEE TIP 2012) needs a support-vector regressor trained on opinion scores. None is shipped
or downloaded: the LIVE release's ``allmodel`` (libsvm) was trained on the LIVE IQA database under
the same non-OSI release terms. :func:`brisque` takes the user's model in that release's format:
libsvm's text model and ``svm-scale``'s range file (``allmodel`` and ``allrange``). The 36 features
follow ``brisque_feature.m`` (a GGD fit of the MSCN coefficients and the four neighbour products'
AGGD fits at two scales, zero-padded Gaussian filtering as ``filter2(..., 'same')``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from visionbench.quality.color import matlab_rgb2gray, matlab_round
from visionbench.quality.full_reference import _check_pair, valid_separable_filter
from visionbench.quality.matlab import fspecial_gaussian_1d

Reduction = Literal["none", "mean"]

NIQE_PATCH = 96  # patch side at the first scale (48 at the second), the release's blocksizerow/col
NIQE_SHARPNESS_THRESHOLD = 0.75  # pristine patches: mean local sigma > 0.75 x the image's sharpest patch
# scikit-image's sample photographs of natural scenes (no synthetic, microscopy, medical, astronomy,
# document or motion-blurred images), the pristine corpus of the shipped model.
NIQE_CORPUS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "brick", "grass", "gravel")
WINDOW_SIZE, WINDOW_SIGMA = 7, 7 / 6  # fspecial('gaussian', 7, 7/6)
# Shape grid of the moment-matching fits: MATLAB's 0.2:0.001:10 (9801 values).
SHAPE_START, SHAPE_STEP, SHAPE_COUNT = 0.2, 0.001, 9801
NIQE_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # computefeature.m
BRISQUE_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))  # brisque_feature.m


# ---------------------------------------------------------------------------------------- shared pieces


def _to_gray_255(x: torch.Tensor, data_range: float | None, metric: str, *, round_colour: bool = False) -> torch.Tensor:
    """``(N, 1, H, W)`` float64 on the 0–255 scale: gray as is, RGB through MATLAB's ``rgb2gray``.

    ``round_colour`` first rounds float colour input to integers, as BRISQUE's script casts
    ``uint8(imdist)`` before ``rgb2gray``; integer colour input is rounded by ``rgb2gray`` itself.
    """
    r = _check_pair(x, x, data_range)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{metric} needs grayscale or RGB images (1 or 3 channels); got {x.shape[1]}. "
                         "Convert them to grayscale or RGB first.")
    if x.shape[1] == 1:
        return x.double() / r * 255
    if x.is_floating_point():
        x = x.double() / r * 255
        if round_colour:
            x = matlab_round(x).clamp(0, 255)
        return matlab_rgb2gray(x)
    if r != 255:  # deeper samples: rgb2gray rounds at their own depth, then the 0-255 scale
        return matlab_rgb2gray(x).double() / r * 255
    return matlab_rgb2gray(x).double()


def _reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction not in ("none", "mean"):
        raise ValueError(f"reduction must be 'none' or 'mean'; got {reduction!r}.")
    return values.mean() if reduction == "mean" else values


def mscn(image: torch.Tensor, *, border: Literal["replicate", "zeros"]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-subtracted contrast-normalised coefficients ``(I − µ) / (σ + 1)`` and the local σ.

    µ and σ come from the 7×7 Gaussian ``fspecial('gaussian', 7, 7/6)`` applied as ``imfilter(...,
    'replicate')`` (NIQE, ``border="replicate"``) or ``filter2(..., 'same')`` (BRISQUE, zero border),
    with ``σ = sqrt(|E[I²] − µ²|)``.

    Args:
        image: ``(N, 1, H, W)`` float64 on the 0–255 scale (the ``+ 1`` assumes it).
        border: how the window sees beyond the image.

    Returns:
        Two ``(N, 1, H, W)`` tensors: the coefficients and σ.
    """
    weights = fspecial_gaussian_1d(WINDOW_SIZE, WINDOW_SIGMA).tolist()
    pad = WINDOW_SIZE // 2
    padded = F.pad(image, (pad, pad, pad, pad), mode="replicate" if border == "replicate" else "constant")
    # Padding commutes with squaring for both borders, so the squares are padded the same way.
    mu, second = valid_separable_filter(torch.stack([padded, padded * padded]), weights, weights)
    sigma = torch.sqrt(torch.abs(second - mu * mu))
    return (image - mu) / (sigma + 1), sigma


def _cubic(x: float) -> float:
    """MATLAB ``imresize``'s bicubic kernel (Keys, a = −0.5)."""
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _half_weights() -> list[float]:
    """The 8 taps of ``imresize(I, 0.5)`` along one axis (``contributions`` in ``imresize.m``).

    With antialiasing the kernel is ``0.5 · cubic(0.5 x)``, 8 pixels wide; output pixel i (1-based)
    sits at ``u = 2i − 0.5``, so its inputs ``2i − 4 … 2i + 3`` are at distances 3.5 … −3.5, the
    same for every output (the two outer taps of the 10 MATLAB considers have zero weight and are
    dropped); the weights are divided by their sum.
    """
    raw = [0.5 * _cubic(0.5 * (3.5 - k)) for k in range(8)]
    total = sum(raw)
    return [w / total for w in raw]


def _half_along(image: torch.Tensor, dim: int, weights: list[float]) -> torch.Tensor:
    """``imresize`` by 0.5 along ``dim`` (−2 or −1): ``ceil(n / 2)`` outputs, symmetric border."""
    n = image.shape[dim]
    out = -(-n // 2)
    after = 2 * out - n + 3  # MATLAB mirrors indices past the edge (edge pixel included): c b a | a b c
    head = image.narrow(dim, 0, 3).flip(dim)
    tail = image.narrow(dim, n - after, after).flip(dim)
    padded = torch.cat([head, image, tail], dim=dim)
    index = [slice(None)] * padded.ndim
    total = None
    for k, w in enumerate(weights):  # output o takes padded samples 2o + k, k = 0..7, accumulated in order
        index[dim] = slice(k, k + 2 * out - 1, 2)
        tap = padded[tuple(index)] * w
        total = tap if total is None else total + tap
    return total  # type: ignore[return-value]


def imresize_half(image: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``imresize(image, 0.5)`` (bicubic, antialiasing on) of a double image.

    Rows are resized first, then columns, as ``imresize`` orders equal scales; no rounding (the
    input is double). Output ``(..., ceil(H / 2), ceil(W / 2))``.

    Args:
        image: ``(..., H, W)`` float64, H and W at least 4.
    """
    if min(image.shape[-2:]) < 4:
        raise ValueError(f"imresize_half needs images of at least 4x4 pixels; got {tuple(image.shape[-2:])}.")
    weights = _half_weights()
    return _half_along(_half_along(image, -2, weights), -1, weights)


def _shape_grid(device: torch.device) -> torch.Tensor:
    """MATLAB's ``gam = 0.2:0.001:10`` (each value ``0.2 + k · 0.001``)."""
    return SHAPE_START + SHAPE_STEP * torch.arange(SHAPE_COUNT, dtype=torch.float64, device=device)


def _gamma_ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``Γ(numerator) / Γ(denominator)``, through log-gamma (finite for the arguments used here)."""
    return torch.exp(torch.lgamma(numerator) - torch.lgamma(denominator))


def _nearest(table: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Index of ``min((table − v).^2)`` for each value (first index on a tie, 0 for NaN, as MATLAB's
    ``min``) in an increasing ``table``, by binary search instead of a 9801-wide comparison."""
    flat = values.reshape(-1).contiguous()
    upper = torch.searchsorted(table, flat).clamp(1, table.numel() - 1)
    lower = upper - 1
    take_upper = (table[upper] - flat) ** 2 < (table[lower] - flat) ** 2
    index = torch.where(take_upper, upper, lower)
    return torch.where(torch.isnan(flat), torch.zeros_like(index), index).reshape(values.shape)


def aggd_fit(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric generalised Gaussian fit by moment matching (``estimateaggdparam.m``).

    Args:
        values: ``(..., P)`` samples (one fit per leading index).

    Returns:
        ``(shape, left_std, right_std)``, each ``(...)``: the shape α from the grid
        ``0.2:0.001:10`` nearest (in squared difference) to the normalised moment ratio, and the
        root mean squares of the negative and of the positive samples (NaN when there are none;
        α is then 0.2, MATLAB's ``min`` of an all-NaN vector).
    """
    grid = _shape_grid(values.device)
    # r(α) = Γ(2/α)² / (Γ(1/α) Γ(3/α)), increasing in α.
    table = torch.exp(2 * torch.lgamma(2 / grid) - torch.lgamma(1 / grid) - torch.lgamma(3 / grid))
    squares = values * values
    negative, positive = (values < 0).to(values.dtype), (values > 0).to(values.dtype)
    left = torch.sqrt((squares * negative).sum(-1) / negative.sum(-1))
    right = torch.sqrt((squares * positive).sum(-1) / positive.sum(-1))
    ratio = left / right
    r_hat = values.abs().mean(-1) ** 2 / squares.mean(-1)
    r_norm = r_hat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    return grid[_nearest(table, r_norm)], left, right


def ggd_fit(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised Gaussian fit by moment matching (BRISQUE's ``estimateggdparam.m``).

    Returns ``(shape, sigma)`` over the last axis: α from the grid nearest (in absolute difference)
    to ``E[x²] / E[|x|]²`` against ``Γ(1/α) Γ(3/α) / Γ(2/α)²``, and ``σ = sqrt(E[x²])``.
    """
    grid = _shape_grid(values.device)
    # Decreasing in α: search the reversed table, then map the index back.
    table = torch.exp(torch.lgamma(1 / grid) + torch.lgamma(3 / grid) - 2 * torch.lgamma(2 / grid))
    second = (values * values).mean(-1)
    rho = second / values.abs().mean(-1) ** 2
    reversed_index = _nearest_abs_reversed(table, rho)
    return grid[reversed_index], torch.sqrt(second)


def _nearest_abs_reversed(table: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Index of ``min(|v − table|)`` in a *decreasing* ``table`` (first index on a tie, 0 for NaN)."""
    flipped = table.flip(0)
    flat = values.reshape(-1).contiguous()
    upper = torch.searchsorted(flipped, flat).clamp(1, table.numel() - 1)
    lower = upper - 1
    # In the original order, flipped index j is n - 1 - j: "upper" is the lower original index.
    first, second = table.numel() - 1 - upper, table.numel() - 1 - lower
    take_second = (flat - table[second]).abs() < (flat - table[first]).abs()
    index = torch.where(take_second, second, first)
    return torch.where(torch.isnan(flat), torch.zeros_like(index), index).reshape(values.shape)


# ------------------------------------------------------------------------------------------------ NIQE


def _patches(image: torch.Tensor, side: int) -> torch.Tensor:
    """``(N, 1, H, W)`` with H, W multiples of ``side`` → ``(N, patches, side, side)``, row-major."""
    n, _, h, w = image.shape
    grid = image.reshape(n, h // side, side, w // side, side).permute(0, 1, 3, 2, 4)
    return grid.reshape(n, (h // side) * (w // side), side, side)


def _niqe_patch_features(coefficients: torch.Tensor) -> torch.Tensor:
    """``computefeature.m`` per patch: ``(N, P, s, s)`` MSCN patches → ``(N, P, 18)``."""
    shape, left, right = aggd_fit(coefficients.flatten(-2))
    scale = torch.sqrt(_gamma_ratio(1 / shape, 3 / shape))
    features = [shape, (left * scale + right * scale) / 2]
    for shift in NIQE_SHIFTS:
        products = coefficients * torch.roll(coefficients, shifts=shift, dims=(-2, -1))
        shape, left, right = aggd_fit(products.flatten(-2))
        scale = torch.sqrt(_gamma_ratio(1 / shape, 3 / shape))
        beta_left, beta_right = left * scale, right * scale
        mean = (beta_right - beta_left) * _gamma_ratio(2 / shape, 1 / shape)
        features += [shape, mean, beta_left, beta_right]
    return torch.stack(features, dim=-1)


def niqe_features(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 36 NIQE features of every 96×96 patch, and each patch's sharpness.

    Args:
        gray: ``(N, 1, H, W)`` float64 on the 0–255 scale, at least 96×96 (cropped to whole patches).

    Returns:
        ``(N, P, 36)`` features (scale 1 then scale 2) and ``(N, P)`` sharpness (the patch's mean
        local σ at scale 1), patches in row-major order.
    """
    h, w = gray.shape[-2] // NIQE_PATCH * NIQE_PATCH, gray.shape[-1] // NIQE_PATCH * NIQE_PATCH
    if h == 0 or w == 0:
        raise ValueError(f"NIQE needs images of at least {NIQE_PATCH}x{NIQE_PATCH} pixels (one patch); got "
                         f"{tuple(gray.shape[-2:])}.")
    image = gray[..., :h, :w]
    features, sharpness = [], None
    for scale in (1, 2):
        coefficients, sigma = mscn(image, border="replicate")
        features.append(_niqe_patch_features(_patches(coefficients, NIQE_PATCH // scale)))
        if scale == 1:
            sharpness = _patches(sigma, NIQE_PATCH).mean(dim=(-2, -1))
            image = imresize_half(image)
    return torch.cat(features, dim=-1), sharpness  # type: ignore[return-value]


def nan_mean_and_cov(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB's ``nanmean`` (per column, NaNs ignored) and ``nancov`` (rows with any NaN dropped;
    normalised by n − 1, or by n when n = 1) of ``(P, F)`` rows."""
    finite = ~torch.isnan(features)
    mean = torch.where(finite, features, 0.0).sum(0) / finite.sum(0)
    complete = features[finite.all(dim=1)]
    count = complete.shape[0]
    centred = complete - complete.mean(0)
    cov = centred.T @ centred / (count - 1 if count > 1 else max(count, 1))
    if count == 0:
        cov = torch.full_like(cov, math.nan)
    return mean, cov


@dataclass(frozen=True)
class NiqeModel:
    """A pristine multivariate Gaussian: ``mean`` ``[36]``, ``cov`` ``[36, 36]`` and where it came from."""

    mean: torch.Tensor
    cov: torch.Tensor
    source: str


def fit_niqe_model(images: list[torch.Tensor], *, threshold: float = NIQE_SHARPNESS_THRESHOLD,
                   source: str = "fitted") -> NiqeModel:
    """The pristine model of ``estimatemodelparam.m``: the patches of each image sharper than
    ``threshold`` times its sharpest, pooled, then ``nanmean`` and ``nancov``.

    Args:
        images: ``(1, 1, H, W)`` float64 grayscale on the 0–255 scale (e.g. ``rgb2gray`` of uint8 files).
        threshold: the sharpness selection (the paper's 0.75).
        source: a description kept in the model.
    """
    rows = []
    for image in images:
        features, sharpness = niqe_features(image)
        rows.append(features[0][sharpness[0] > threshold * sharpness[0].max()])
    mean, cov = nan_mean_and_cov(torch.cat(rows))
    return NiqeModel(mean=mean, cov=cov, source=source)


def load_niqe_model(path: str | Path | None = None) -> NiqeModel:
    """The shipped model (``path=None``), or an ``.npz`` with ``mean`` ``[36]`` and ``cov``
    ``[36, 36]`` (written by ``benchmarks/fit_niqe.py --out``, or converted from LIVE's
    ``modelparameters.mat`` with SciPy, which visionbench itself does not use:
    ``m = scipy.io.loadmat("modelparameters.mat"); numpy.savez("niqe_live.npz",
    mean=m["mu_prisparam"], cov=m["cov_prisparam"])``)."""
    if path is None:
        from visionbench.quality import niqe_model

        cov = torch.zeros(36, 36, dtype=torch.float64)
        rows, cols = torch.triu_indices(36, 36)
        cov[rows, cols] = torch.tensor(niqe_model.COV_UPPER, dtype=torch.float64)
        cov = cov + cov.triu(1).T
        return NiqeModel(torch.tensor(niqe_model.MEAN, dtype=torch.float64), cov, niqe_model.SOURCE)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"NIQE model file {str(path)!r} does not exist. Give an .npz with 'mean' and 'cov' (e.g. "
                         "LIVE's modelparameters.mat converted), or no file for the shipped model.")
    if path.suffix.lower() != ".npz":
        raise ValueError(f"NIQE model file {str(path)!r} must be an .npz with 'mean' and 'cov'. Convert LIVE's "
                         "modelparameters.mat with: m = scipy.io.loadmat('modelparameters.mat'); "
                         "numpy.savez('niqe_live.npz', mean=m['mu_prisparam'], cov=m['cov_prisparam']).")
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            content = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read NIQE model file {str(path)!r}: {error}.") from None
    if not all(k in content for k in ("mean", "cov")):
        raise ValueError(f"NIQE model file {str(path)!r} must hold 'mean' and 'cov'; it has {sorted(content)}.")
    mean = torch.as_tensor(content["mean"], dtype=torch.float64).reshape(-1)
    cov = torch.as_tensor(content["cov"], dtype=torch.float64)
    if mean.shape != (36,) or cov.shape != (36, 36):
        raise ValueError(f"NIQE model file {str(path)!r} must hold a 36-vector and a 36x36 matrix; got "
                         f"{tuple(mean.shape)} and {tuple(cov.shape)}.")
    return NiqeModel(mean, cov, str(path))


def niqe(x: torch.Tensor, *, data_range: float | None = None, model: NiqeModel | None = None,
         reduction: Reduction = "none") -> torch.Tensor:
    """Naturalness Image Quality Evaluator per image (module docstring); lower is better.

    Args:
        x: ``(N, C, H, W)`` with C = 1 (gray) or 3 (RGB, converted with MATLAB's ``rgb2gray``),
            uint8 or float, at least 96×96.
        data_range: R of the input (required for float input; 255 for uint8).
        model: the pristine model; by default the shipped one (:func:`load_niqe_model`).
        reduction: ``"none"`` (``[N]``) or ``"mean"``.

    Returns:
        float64 ``[N]`` on ``x``'s device; NaN when no patch has finite features (flat images).

    Example:
        >>> from skimage import data  # doctest: +SKIP
        >>> img = torch.from_numpy(data.camera())[None, None]  # doctest: +SKIP
        >>> float(niqe(img)) < float(niqe(img // 16 * 16))  # doctest: +SKIP
        True
    """
    model = model or load_niqe_model()
    gray = _to_gray_255(x, data_range, "NIQE")
    features, _ = niqe_features(gray)
    mu_p, cov_p = model.mean.to(gray.device), model.cov.to(gray.device)
    scores = []
    for rows in features:  # one image's patches
        mu_d, cov_d = nan_mean_and_cov(rows)
        diff = (mu_p - mu_d)[None]
        scores.append(torch.sqrt(diff @ torch.linalg.pinv((cov_p + cov_d) / 2) @ diff.T)[0, 0])
    return _reduce(torch.stack(scores), reduction)


# --------------------------------------------------------------------------------------------- BRISQUE


def brisque_features(gray: torch.Tensor) -> torch.Tensor:
    """``brisque_feature.m``'s 36 features per image: ``(N, 1, H, W)`` float64 on 0–255 → ``(N, 36)``.

    Per scale: the GGD shape and variance of the MSCN coefficients (zero border), then for each
    neighbour product the AGGD shape, mean ``(σr − σl) Γ(2/α) / Γ(1/α) · sqrt(Γ(1/α) / Γ(3/α))``,
    and the left and right variances; the second scale is :func:`imresize_half` of the first.
    """
    features = []
    image = gray
    for scale in range(2):
        coefficients, _ = mscn(image, border="zeros")
        shape, sigma = ggd_fit(coefficients.flatten(1))
        features += [shape, sigma * sigma]
        for shift in BRISQUE_SHIFTS:
            products = coefficients * torch.roll(coefficients, shifts=shift, dims=(-2, -1))
            shape, left, right = aggd_fit(products.flatten(1))
            const = torch.sqrt(_gamma_ratio(1 / shape, 3 / shape))
            mean = (right - left) * _gamma_ratio(2 / shape, 1 / shape) * const
            features += [shape, mean, left * left, right * right]
        if scale == 0:
            image = imresize_half(image)
    return torch.stack(features, dim=-1)


@dataclass(frozen=True)
class BrisqueModel:
    """An RBF epsilon-SVR and its feature scaling: ``score = Σ coef_i exp(−γ |s − sv_i|²) − ρ``
    with ``s`` the features scaled to ``[lower, upper]`` by ``ranges`` (``svm-scale -r``)."""

    support_vectors: torch.Tensor  # (M, 36)
    coefficients: torch.Tensor  # (M,)
    rho: float
    gamma: float
    ranges: torch.Tensor  # (36, 2): min, max per feature; equal values leave the feature out (0)
    lower: float
    upper: float
    source: str


def _read_libsvm_model(path: Path) -> tuple[dict[str, str], list[str]]:
    """Header fields and the support-vector lines of a libsvm text model."""
    lines = path.read_text().splitlines()
    if "SV" not in (line.strip() for line in lines):
        raise ValueError(f"BRISQUE model {str(path)!r} is not a libsvm model (no 'SV' line). Give the LIVE release's "
                         "'allmodel' (libsvm's text format).")
    split = [line.strip() for line in lines].index("SV")
    header = dict(line.split(None, 1) for line in lines[:split] if line.strip())
    return header, [line for line in lines[split + 1 :] if line.strip()]


def load_brisque_model(path: str | Path) -> BrisqueModel:
    """A BRISQUE regressor in the LIVE release's format: ``path`` is libsvm's text model
    (``allmodel``: ``svm_type epsilon_svr``, ``kernel_type rbf``, ``gamma``, ``rho``, then one
    ``coef index:value …`` line per support vector) or a folder holding it; ``svm-scale``'s range
    file ``allrange`` must be in the same folder (``x``, then ``lower upper``, then
    ``index min max`` per feature)."""
    path = Path(path)
    model_path = path / "allmodel" if path.is_dir() else path
    range_path = model_path.parent / "allrange"
    for needed, what in ((model_path, "libsvm model"), (range_path, "svm-scale range file")):
        if not needed.is_file():
            raise ValueError(f"BRISQUE needs the user's trained model: the {what} {str(needed)!r} does not exist. Give "
                             "the LIVE release's 'allmodel' with its 'allrange' beside it (nothing is downloaded).")
    header, sv_lines = _read_libsvm_model(model_path)
    if header.get("svm_type") not in ("epsilon_svr", "nu_svr") or header.get("kernel_type") != "rbf":
        raise ValueError(f"BRISQUE model {str(model_path)!r} must be an RBF regression SVM (svm_type epsilon_svr or "
                         f"nu_svr, kernel_type rbf); got {header.get('svm_type')!r}, {header.get('kernel_type')!r}.")
    vectors = torch.zeros(len(sv_lines), 36, dtype=torch.float64)
    coefficients = torch.zeros(len(sv_lines), dtype=torch.float64)
    for row, line in enumerate(sv_lines):
        coef, *pairs = line.split()
        coefficients[row] = float(coef)
        for pair in pairs:  # sparse: absent features are 0
            index, value = pair.split(":")
            if not 1 <= int(index) <= 36:
                raise ValueError(f"BRISQUE model {str(model_path)!r} has feature index {index}; BRISQUE has 36 features.")
            vectors[row, int(index) - 1] = float(value)
    range_lines = [line.split() for line in range_path.read_text().splitlines() if line.strip()]
    if not range_lines or range_lines[0] != ["x"]:
        raise ValueError(f"BRISQUE range file {str(range_path)!r} must be svm-scale's (first line 'x').")
    lower, upper = (float(v) for v in range_lines[1])
    ranges = torch.zeros(36, 2, dtype=torch.float64)  # features not listed: min = max = 0, left out
    for index, low, high in range_lines[2:]:
        ranges[int(index) - 1] = torch.tensor([float(low), float(high)], dtype=torch.float64)
    return BrisqueModel(vectors, coefficients, float(header["rho"]), float(header["gamma"]), ranges, lower, upper,
                        str(model_path))


def brisque_score(features: torch.Tensor, model: BrisqueModel) -> torch.Tensor:
    """The regressor's prediction for ``(N, 36)`` features, as ``svm-scale`` then ``svm-predict``."""
    low, high = model.ranges[:, 0].to(features.device), model.ranges[:, 1].to(features.device)
    span = high - low
    scaled = model.lower + (model.upper - model.lower) * (features - low) / torch.where(span != 0, span, 1.0)
    scaled = torch.where(span != 0, scaled, 0.0)  # svm-scale writes nothing for a constant feature
    vectors = model.support_vectors.to(features.device)
    distances = ((scaled[:, None, :] - vectors[None]) ** 2).sum(-1)  # (N, M)
    return torch.exp(-model.gamma * distances) @ model.coefficients.to(features.device) - model.rho


def brisque(x: torch.Tensor, *, model: BrisqueModel, data_range: float | None = None,
            reduction: Reduction = "none") -> torch.Tensor:
    """BRISQUE per image with the user's trained model (:func:`load_brisque_model`); with the LIVE
    release's model, lower is better (it predicts a difference mean opinion score).

    Args:
        x: ``(N, C, H, W)`` with C = 1 or 3 (RGB: rounded to 8 bits and MATLAB's ``rgb2gray``, as
            ``brisquescore.m``), uint8 or float, at least 8×8.
        model: the regressor and its feature ranges.
        data_range: R of the input (required for float input; 255 for uint8).
        reduction: ``"none"`` (``[N]``) or ``"mean"``.
    """
    gray = _to_gray_255(x, data_range, "BRISQUE", round_colour=True)
    if min(gray.shape[-2:]) < 8:
        raise ValueError(f"BRISQUE needs images of at least 8x8 pixels; got {tuple(gray.shape[-2:])}.")
    return _reduce(brisque_score(brisque_features(gray), model), reduction)
