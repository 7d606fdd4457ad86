"""The ``matlab`` SSIM / MS-SSIM profile against a slow NumPy/SciPy port of Wang's ``ssim.m`` and
``msssim.m``, written line by line from the scripts (``fspecial``, ``imfilter``, ``filter2`` and
``round`` re-implemented literally), on generated and scikit-image photographs, plus gradients,
MATLAB's rounding and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter, uniform_filter
from scipy.signal import correlate2d
from skimage import data

from visionbench.quality.matlab import (
    box_decimate,
    downsampling_factor,
    fspecial_gaussian_1d,
    matlab_round,
    ms_ssim_matlab,
    ssim_map_matlab,
    ssim_matlab,
)

RTOL = 1e-10  # required agreement with the oracle (relative)

# --------------------------------------------------------------------------- the oracle (MATLAB, literally)


def _round(value: float) -> int:
    """MATLAB round: halves away from zero."""
    return int(np.sign(value) * np.floor(np.abs(value) + 0.5))


def _fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """fspecial('gaussian', size, sigma), from its documented formula."""
    half = (size - 1) / 2
    y, x = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1), indexing="ij")
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0
    return h / h.sum() if h.sum() != 0 else h


def _imfilter_symmetric_same(image: np.ndarray, h: np.ndarray) -> np.ndarray:
    """imfilter(image, h, 'symmetric', 'same'): correlation, kernel centre floor((size(h)+1)/2)."""
    kh, kw = h.shape
    ch, cw = (kh + 1) // 2, (kw + 1) // 2  # 1-based centre
    padded = np.pad(image, ((ch - 1, kh - ch), (cw - 1, kw - cw)), mode="symmetric")
    m, n = image.shape
    out = np.zeros((m, n))
    for u in range(kh):
        for v in range(kw):
            out += h[u, v] * padded[u : u + m, v : v + n]
    return out


def _filter2_valid(window: np.ndarray, image: np.ndarray) -> np.ndarray:
    return correlate2d(image, window, mode="valid")


def _oracle_ssim(img1: np.ndarray, img2: np.ndarray, L: float = 255) -> float:  # noqa: N803 (the script's name)
    """ssim.m (2009, automatic downsampling) with window, K defaults and the given L."""
    M, N = img1.shape  # noqa: N806
    window = _fspecial_gaussian(11, 1.5)
    K = (0.01, 0.03)  # noqa: N806
    img1, img2 = img1.astype(np.float64), img2.astype(np.float64)
    f = max(1, _round(min(M, N) / 256))
    if f > 1:
        lpf = np.ones((f, f))
        lpf = lpf / lpf.sum()
        img1 = _imfilter_symmetric_same(img1, lpf)
        img2 = _imfilter_symmetric_same(img2, lpf)
        img1, img2 = img1[::f, ::f], img2[::f, ::f]
    C1, C2 = (K[0] * L) ** 2, (K[1] * L) ** 2  # noqa: N806
    window = window / window.sum()
    mu1, mu2 = _filter2_valid(window, img1), _filter2_valid(window, img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter2_valid(window, img1 * img1) - mu1_sq
    sigma2_sq = _filter2_valid(window, img2 * img2) - mu2_sq
    sigma12 = _filter2_valid(window, img1 * img2) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + C1) * (2 * sigma12 + C2)) / ((mu1_sq + mu2_sq + C1) * (sigma1_sq + sigma2_sq + C2))
    return float(ssim_map.mean())


def _oracle_ssim_index_new(img1: np.ndarray, img2: np.ndarray, L: float) -> tuple[float, float]:  # noqa: N803
    C1, C2 = (0.01 * L) ** 2, (0.03 * L) ** 2  # noqa: N806 (the script hard-codes L = 255)
    win = _fspecial_gaussian(11, 1.5)
    win = win / win.sum()
    mu1, mu2 = _filter2_valid(win, img1), _filter2_valid(win, img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter2_valid(win, img1 * img1) - mu1_sq
    sigma2_sq = _filter2_valid(win, img2 * img2) - mu2_sq
    sigma12 = _filter2_valid(win, img1 * img2) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + C1) * (2 * sigma12 + C2)) / ((mu1_sq + mu2_sq + C1) * (sigma1_sq + sigma2_sq + C2))
    cs_map = (2 * sigma12 + C2) / (sigma1_sq + sigma2_sq + C2)
    return float(ssim_map.mean()), float(cs_map.mean())


def _oracle_msssim(img1: np.ndarray, img2: np.ndarray, L: float = 255) -> complex:  # noqa: N803
    """msssim.m defaults, 'product'; complex like MATLAB's .^ of a negative base."""
    level, weight = 5, np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    M, N = img1.shape  # noqa: N806
    assert min(M, N) / 2 ** (level - 1) >= 11  # the script returns -Inf otherwise
    downsample_filter = np.ones((2, 2)) / 4
    im1, im2 = img1.astype(np.float64), img2.astype(np.float64)
    mssim_array, mcs_array = np.zeros(level), np.zeros(level)
    for lvl in range(level):
        mssim_array[lvl], mcs_array[lvl] = _oracle_ssim_index_new(im1, im2, L)
        im1 = _imfilter_symmetric_same(im1, downsample_filter)[::2, ::2]
        im2 = _imfilter_symmetric_same(im2, downsample_filter)[::2, ::2]
    mcs, mssim = mcs_array.astype(complex), complex(mssim_array[level - 1])
    return complex(np.prod(mcs[: level - 1] ** weight[: level - 1]) * mssim ** weight[level - 1])


def _oracle_per_channel(oracle, a: np.ndarray, b: np.ndarray, L: float) -> float:  # noqa: N803
    """The scripts are grayscale: each channel of (C, H, W), then the mean over channels."""
    values = [oracle(a[c], b[c], L) for c in range(a.shape[0])]
    assert all(abs(complex(v).imag) == 0 for v in values)
    return float(np.mean([complex(v).real for v in values]))


# --------------------------------------------------------------------------- inputs


def _textured_pair(h: int, w: int, seed: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (C, H, W): smooth structure plus texture, and a noisy, blurred copy."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.normal(0, 1, (channels, h, w)), sigma=(0, 6, 6))
    base = 128 + 90 * base / base.std() + rng.normal(0, 8, base.shape)
    ref = np.clip(base, 0, 255)
    dist = uniform_filter(ref, size=(1, 3, 3)) + rng.normal(0, 10, ref.shape)
    return ref.astype(np.uint8), np.clip(dist, 0, 255).astype(np.uint8)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))[None]  # (1, C, H, W)


# --------------------------------------------------------------------------- the conventions


def test_matlab_rounding_changes_the_downsampling_factor_where_numpy_would_not() -> None:
    # The reason for the profile: min side 640 -> 2.5 and 1152 -> 4.5 round up in MATLAB only.
    for side, matlab_f, numpy_f in [(640, 3, 2), (1152, 5, 4)]:
        assert downsampling_factor(side, side + 60) == matlab_f == _round(side / 256)
        assert max(1, int(np.round(side / 256))) == max(1, round(side / 256)) == numpy_f
    for side, f in [(255, 1), (383, 1), (384, 2), (639, 2), (720, 3), (1080, 4), (2160, 8)]:
        assert downsampling_factor(side, 4000) == downsampling_factor(4000, side) == f
    assert [matlab_round(v) for v in (0.5, 1.5, 2.5, -2.5, 2.4999, -0.2)] == [1, 2, 3, -3, 2, 0]


def test_separable_window_equals_fspecial() -> None:
    g = fspecial_gaussian_1d().numpy()
    difference = np.abs(np.outer(g, g) - _fspecial_gaussian(11, 1.5)).max()
    assert difference < 1e-16  # measured 6.9e-18
    assert g.sum() == pytest.approx(1, abs=1e-15) and np.allclose(g, g[::-1], rtol=0, atol=0)


def test_imfilter_even_kernel_centre_and_symmetric_border_by_hand() -> None:
    # imfilter(magic, ones(2)/4, 'symmetric', 'same'): the 2x2 kernel's centre is its top-left
    # tap (floor((2+1)/2) = 1), so it averages each pixel with its right/lower neighbours, the last
    # row/column mirrored onto itself; (1:2:end, 1:2:end) keeps rows/columns 1 and 3.
    image = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=torch.float64)
    expected = torch.tensor([[(1 + 2 + 4 + 5) / 4, (3 + 3 + 6 + 6) / 4], [(7 + 8 + 7 + 8) / 4, 9]], dtype=torch.float64)
    assert torch.equal(box_decimate(image, 2), expected)
    assert torch.equal(box_decimate(image, 1), image)


@pytest.mark.parametrize("f", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("shape", [(23, 17), (24, 40), (9, 10)])
def test_box_decimate_equals_imfilter_then_subsample(f: int, shape: tuple[int, int]) -> None:
    image = np.random.default_rng(f).random(shape) * 255
    lpf = np.ones((f, f)) / (f * f)
    expected = _imfilter_symmetric_same(image, lpf)[::f, ::f]
    ours = box_decimate(torch.from_numpy(image)[None, None], f)[0, 0].numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-13, atol=0)


# --------------------------------------------------------------------------- SSIM against ssim.m


@pytest.mark.parametrize(("h", "w"), [(640, 700), (760, 720), (1080, 1100), (1152, 1160)])
def test_ssim_equals_ssim_m_where_downsampling_applies(h: int, w: int) -> None:
    ref, dist = _textured_pair(h, w, seed=h)
    ours = float(ssim_matlab(_t(ref), _t(dist)))
    assert ours == pytest.approx(_oracle_ssim(ref[0], dist[0]), rel=RTOL, abs=0)
    assert ssim_map_matlab(_t(ref), _t(dist)).shape[-2:] == tuple(math.ceil(s / downsampling_factor(h, w)) - 10
                                                                for s in (h, w))


@pytest.mark.parametrize(("h", "w"), [(11, 11), (11, 30), (24, 37), (255, 300), (383, 383), (384, 391), (385, 500)])
def test_ssim_equals_ssim_m_on_small_and_odd_sizes(h: int, w: int) -> None:
    ref, dist = _textured_pair(h, w, seed=w)
    assert float(ssim_matlab(_t(ref), _t(dist))) == pytest.approx(_oracle_ssim(ref[0], dist[0]), rel=RTOL, abs=0)


def test_float_input_uses_data_range_as_l() -> None:
    ref, dist = _textured_pair(400, 450, seed=3)
    a, b = ref / 255.0, dist / 255.0
    ours = float(ssim_matlab(_t(a), _t(b), data_range=1.0))
    assert ours == pytest.approx(_oracle_ssim(a[0], b[0], L=1.0), rel=RTOL, abs=0)
    assert ours == pytest.approx(float(ssim_matlab(_t(ref), _t(dist))), rel=1e-12)  # scale invariance


@settings(max_examples=15, deadline=None)
@given(st.integers(11, 48), st.integers(11, 48), st.sampled_from([1, 3]), st.integers(0, 2**31 - 1))
def test_ssim_equals_ssim_m_on_random_float_images(h: int, w: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.random((c, h, w))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    expected = _oracle_per_channel(lambda p, q, L: _oracle_ssim(p, q, L), a, b, 1.0)
    assert float(ssim_matlab(_t(a), _t(b), data_range=1.0)) == pytest.approx(expected, rel=RTOL, abs=1e-14)


# --------------------------------------------------------------------------- photographs, RGB, batches


def _distort(image: np.ndarray, seed: int) -> np.ndarray:
    """Seeded blur + noise of an (H, W) or (H, W, 3) uint8 photograph."""
    rng = np.random.default_rng(seed)
    size = (3, 3, 1) if image.ndim == 3 else 3
    noisy = uniform_filter(image.astype(np.float64), size=size) + rng.normal(0, 6, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["camera", "astronaut", "coffee", "chelsea"])
def test_equal_to_the_scripts_on_photographs(name: str) -> None:
    photo = getattr(data, name)()
    ref = photo[None] if photo.ndim == 2 else photo.transpose(2, 0, 1)  # (C, H, W); RGB channel by channel
    dist = _distort(photo, seed=len(name))
    dist = dist[None] if dist.ndim == 2 else dist.transpose(2, 0, 1)
    x, y = _t(ref), _t(dist)
    expected_ssim = _oracle_per_channel(lambda p, q, L: _oracle_ssim(p, q, L), ref, dist, 255)
    assert float(ssim_matlab(x, y)) == pytest.approx(expected_ssim, rel=RTOL, abs=0)
    if name in ("astronaut", "coffee"):  # the slow MS-SSIM oracle runs on the smallest gray and RGB photos only
        return
    expected_ms = _oracle_per_channel(_oracle_msssim, ref, dist, 255)
    assert float(ms_ssim_matlab(x, y)) == pytest.approx(expected_ms, rel=RTOL, abs=0)


def test_rgb_is_the_mean_of_the_channels_and_batches_give_one_value_per_image() -> None:
    pairs = [_textured_pair(180, 260, seed=s, channels=3) for s in range(2)]
    x = torch.cat([_t(r) for r, _ in pairs])  # (2, 3, 180, 260)
    y = torch.cat([_t(d) for _, d in pairs])
    for metric in (ssim_matlab, ms_ssim_matlab):
        batch = metric(x, y)
        assert batch.shape == (2,) and batch.dtype == torch.float64
        per_channel = torch.stack([metric(x[:, c : c + 1], y[:, c : c + 1]) for c in range(3)], dim=1)
        torch.testing.assert_close(batch, per_channel.mean(dim=1), rtol=1e-14, atol=0)
        singles = torch.cat([metric(x[i : i + 1], y[i : i + 1]) for i in range(2)])
        torch.testing.assert_close(batch, singles, rtol=1e-14, atol=0)
        assert float(metric(x, y, reduction="mean")) == pytest.approx(float(batch.mean()), rel=1e-15)


def test_identical_images_score_exactly_one() -> None:
    ref, _ = _textured_pair(384, 390, seed=5, channels=2)  # f = 2
    x = _t(ref)
    assert torch.equal(ssim_matlab(x, x.clone()), torch.ones(1, dtype=torch.float64))
    assert torch.equal(ms_ssim_matlab(x, x.clone()), torch.ones(1, dtype=torch.float64))
    f = torch.rand(2, 1, 180, 190, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ms_ssim_matlab(f, f, data_range=1.0), torch.ones(2, dtype=torch.float64))


# --------------------------------------------------------------------------- MS-SSIM against msssim.m


@pytest.mark.parametrize(("h", "w"), [(176, 176), (177, 203), (181, 190), (256, 333)])
def test_ms_ssim_equals_msssim_m_on_small_and_odd_sizes(h: int, w: int) -> None:
    ref, dist = _textured_pair(h, w, seed=h + w)
    expected = _oracle_msssim(ref[0], dist[0])
    assert expected.imag == 0
    assert float(ms_ssim_matlab(_t(ref), _t(dist))) == pytest.approx(expected.real, rel=RTOL, abs=0)


def test_ms_ssim_equals_msssim_m_on_a_large_float_image() -> None:
    ref, dist = _textured_pair(640, 700, seed=11)
    a, b = ref / 255.0, dist / 255.0
    expected = _oracle_msssim(a[0], b[0], L=1.0)
    assert float(ms_ssim_matlab(_t(a), _t(b), data_range=1.0)) == pytest.approx(expected.real, rel=RTOL, abs=0)


def test_negative_contrast_structure_gives_nan_and_a_warning_where_matlab_gives_a_complex_number() -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (1, 192, 192)).astype(np.uint8)
    dist = 255 - ref  # anti-correlated at every scale
    assert _oracle_msssim(ref[0], dist[0]).imag != 0  # what MATLAB returns
    with pytest.warns(RuntimeWarning, match="NaN"):
        value = ms_ssim_matlab(_t(ref), _t(dist))
    assert torch.isnan(value).all()


# --------------------------------------------------------------------------- gradients


def test_ssim_gradcheck() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 24, 24, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert torch.autograd.gradcheck(lambda a: ssim_matlab(a, y, data_range=1.0), (x.requires_grad_(),))


def _directional(metric, shape: tuple[int, ...], seed: int):
    """The metric along 3 fixed random directions around a seeded pair: a cheap full-chain gradcheck."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    directions = torch.randn(3, *shape, generator=g, dtype=torch.float64) * 0.05
    return lambda t: metric(x + torch.einsum("k,k...->...", t, directions), y, data_range=1.0)


def test_gradcheck_through_downsampling_and_scales() -> None:
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_directional(ssim_matlab, (1, 1, 384, 384), seed=2), (t,))  # f = 2
    assert torch.autograd.gradcheck(_directional(ms_ssim_matlab, (1, 1, 176, 176), seed=3), (t,))


# --------------------------------------------------------------------------- errors


def test_input_errors() -> None:
    small = torch.zeros(1, 1, 175, 300, dtype=torch.uint8)
    with pytest.raises(ValueError, match="at least 176x176"):
        ms_ssim_matlab(small, small)
    ok = torch.zeros(1, 1, 176, 176, dtype=torch.uint8)
    assert float(ms_ssim_matlab(ok, ok)) == 1.0
    tiny = torch.zeros(1, 1, 10, 40, dtype=torch.uint8)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_matlab(tiny, tiny)
    f = torch.rand(1, 1, 200, 200)
    for metric in (ssim_matlab, ms_ssim_matlab):
        with pytest.raises(ValueError, match="data_range must be given"):
            metric(f, f)
        with pytest.raises(ValueError, match="same shape"):
            metric(f, f[..., :190], data_range=1.0)
