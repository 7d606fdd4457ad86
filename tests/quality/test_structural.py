"""MS-SSIM and GMSD against piq (computing in float64, as we do) on scikit-image's photographs with
seeded distortions and on generated images of odd sizes, plus batches, gradients and input errors."""

from __future__ import annotations

import piq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

from tests.quality.photos import distort, nchw
from visionbench.quality.structural import gmsd, gmsd_map, ms_ssim

RTOL = 1e-10  # piq in float64 and we differ only in summation order (measured <= 2e-13 relative)




def _piq_ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float, **kwargs: object) -> torch.Tensor:
    return piq.multi_scale_ssim(x.double(), y.double(), data_range=data_range, reduction="none", **kwargs)


def _piq_gmsd(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    return piq.gmsd(x.double(), y.double(), data_range=data_range, reduction="none")


def _assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.dtype == torch.float64 and actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=1e-15)


@pytest.mark.parametrize("name", ["camera", "astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("kind", ["noise", "blur", "jpeg"])
def test_equal_to_piq_on_photographs(name: str, kind: str) -> None:
    # Crops keep it fast (piq is slow in float64); 167 x 178 has an odd height, so every padding quirk shows.
    reference = getattr(data, name)()[100:267, 120:298]
    distorted = distort(reference, kind, seed=len(name))
    x, y = nchw(reference), nchw(distorted)
    expected_ms, expected_gmsd = _piq_ms_ssim(x, y, 255.0), _piq_gmsd(x, y, 255.0)
    _assert_close(ms_ssim(x, y), expected_ms)  # uint8 input: data_range 255
    _assert_close(gmsd(x, y), expected_gmsd)
    # The same pixels as float64 on [0, 1] give the same values.
    _assert_close(ms_ssim(x.double() / 255, y.double() / 255, data_range=1.0), expected_ms)
    _assert_close(gmsd(x.double() / 255, y.double() / 255, data_range=1.0), expected_gmsd)
    assert 0.0 < float(ms_ssim(x, y)) < 1.0 and float(gmsd(x, y)) > 1e-3


@settings(max_examples=6, deadline=None)
@given(st.integers(161, 185), st.integers(161, 185), st.sampled_from([1, 3]), st.integers(0, 2**31 - 1))
def test_ms_ssim_equal_to_piq_on_random_images_of_any_size(h: int, w: int, c: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h, w, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    _assert_close(ms_ssim(x, y, data_range=1.0), _piq_ms_ssim(x, y, 1.0))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3]), st.integers(0, 2**31 - 1))
def test_gmsd_equal_to_piq_on_random_images_of_any_size(h: int, w: int, c: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (2, c, h, w), generator=g, dtype=torch.uint8)
    y = (x + torch.randint(-40, 41, x.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    _assert_close(gmsd(x, y), _piq_gmsd(x, y, 255.0))
    pad = max(h % 2, w % 2)  # piq pads both sides when either is odd
    assert gmsd_map(x, y).shape == (2, 1, (h + pad) // 2, (w + pad) // 2)


def test_ms_ssim_clips_negative_terms_at_zero_as_piq() -> None:
    # An inverted image has negative contrast-structure at every scale: piq's relu makes it 0, not NaN.
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 161, 170, generator=g, dtype=torch.float64)
    value = ms_ssim(x, 1 - x, data_range=1.0)
    _assert_close(value, _piq_ms_ssim(x, 1 - x, 1.0))
    assert float(value) == 0.0


def test_ms_ssim_custom_weights_set_the_number_of_scales() -> None:
    # piq normalises explicit weights to sum 1; ours are used as given, so pass a normalised set.
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 1, 41, 47, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    weights = (0.25, 0.25, 0.5)
    expected = _piq_ms_ssim(x, y, 1.0, scale_weights=torch.tensor(weights, dtype=torch.float64))
    _assert_close(ms_ssim(x, y, data_range=1.0, weights=weights), expected)


def test_float32_input_is_computed_in_float64() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 3, 161, 161, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    _assert_close(ms_ssim(x, y, data_range=1.0), _piq_ms_ssim(x, y, 1.0))
    _assert_close(gmsd(x, y, data_range=1.0), _piq_gmsd(x, y, 1.0))


@pytest.mark.parametrize("c", [1, 3])
def test_identical_images(c: int) -> None:
    g = torch.Generator().manual_seed(c)
    x = torch.randint(0, 256, (2, c, 165, 170), generator=g, dtype=torch.uint8)
    assert torch.equal(ms_ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert torch.equal(gmsd(x, x), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(gmsd_map(x, x), torch.ones(2, 1, 83, 85, dtype=torch.float64))


def test_batches_give_one_value_per_image() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 3, 161, 166, generator=g, dtype=torch.float64)
    y = (x + 0.05 * torch.arange(1, 4).view(3, 1, 1, 1) * torch.randn(x.shape, generator=g)).clamp(0, 1)
    for metric in (ms_ssim, gmsd):
        batch = metric(x, y, data_range=1.0)
        singles = torch.cat([metric(x[i : i + 1], y[i : i + 1], data_range=1.0) for i in range(3)])
        assert batch.shape == (3,) and torch.allclose(batch, singles, rtol=0, atol=1e-15)
        assert float(metric(x, y, data_range=1.0, reduction="mean")) == pytest.approx(float(batch.mean()), abs=1e-15)
        assert len(set(batch.tolist())) == 3  # three different noise levels, three different values
    # More noise: lower MS-SSIM, higher GMSD.
    assert ms_ssim(x, y, data_range=1.0).diff().lt(0).all() and gmsd(x, y, data_range=1.0).diff().gt(0).all()


def test_gradcheck_gmsd() -> None:
    g = torch.Generator().manual_seed(6)
    for shape in [(1, 1, 8, 9), (2, 3, 7, 6)]:
        x = torch.rand(shape, generator=g, dtype=torch.float64, requires_grad=True)
        y = torch.rand(shape, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, b: gmsd(a, b, data_range=1.0), (x, y))


def test_gradcheck_ms_ssim_with_three_scales() -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.rand(1, 2, 41, 42, generator=g, dtype=torch.float64, requires_grad=True)
    y = (x.detach() + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    # fast_mode checks the Jacobian along random directions: two evaluations instead of two per pixel.
    assert torch.autograd.gradcheck(lambda a: ms_ssim(a, y, data_range=1.0, weights=(0.2, 0.3, 0.5)), (x,),
                                    fast_mode=True)


def test_gradcheck_ms_ssim_on_a_patch_of_a_minimum_size_image() -> None:
    # All 161 x 161 pixels would take minutes of finite differences: check a 2 x 2 patch (in the
    # corner, where the replicate padding counts a pixel twice) and one in the middle.
    g = torch.Generator().manual_seed(8)
    base = torch.rand(1, 1, 161, 161, generator=g, dtype=torch.float64)
    y = (base + 0.1 * torch.randn(base.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    for top, left in [(0, 0), (80, 77)]:
        patch = base[..., top : top + 2, left : left + 2].clone().requires_grad_()

        def with_patch(p: torch.Tensor, top: int = top, left: int = left) -> torch.Tensor:
            x = base.clone()
            x[..., top : top + 2, left : left + 2] = p
            return ms_ssim(x, y, data_range=1.0)

        assert torch.autograd.gradcheck(with_patch, (patch,))


def test_gradients_are_finite_on_flat_and_identical_images() -> None:
    # sqrt at 0 (flat regions, identical images) must not turn the backward pass into NaN.
    flat = torch.full((1, 3, 161, 163), 0.5, dtype=torch.float64, requires_grad=True)
    other = torch.rand(1, 3, 161, 163, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for y in (other, flat.detach().clone()):
        for metric in (ms_ssim, gmsd):
            (grad,) = torch.autograd.grad(metric(flat, y, data_range=1.0).sum(), flat)
            assert torch.isfinite(grad).all()
    (grad,) = torch.autograd.grad(gmsd(flat, flat.detach().clone(), data_range=1.0).sum(), flat)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_errors() -> None:
    x = torch.rand(1, 3, 161, 161)
    for small in [(160, 200), (200, 160), (11, 11)]:
        a = torch.rand(1, 1, *small)
        with pytest.raises(ValueError, match="at least 161x161 pixels for MS-SSIM with 5 scales"):
            ms_ssim(a, a, data_range=1.0)
    with pytest.raises(ValueError, match="at least 21x21"):
        ms_ssim(torch.rand(1, 1, 20, 30), torch.rand(1, 1, 20, 30), data_range=1.0, weights=(0.5, 0.5))
    for metric in (ms_ssim, gmsd):
        with pytest.raises(ValueError, match="data_range must be given"):
            metric(x, x)
        with pytest.raises(ValueError, match="same shape"):
            metric(x, x[..., :-1], data_range=1.0)
        with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
            metric(x[0], x[0], data_range=1.0)
        with pytest.raises(ValueError, match="reduction must be"):
            metric(x, x, data_range=1.0, reduction="sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 \\(gray\\) or 3 \\(RGB\\) channels"):
        gmsd(torch.rand(1, 2, 9, 9), torch.rand(1, 2, 9, 9), data_range=1.0)
    for weights in [(), (0.5, -0.1)]:
        with pytest.raises(ValueError, match="weights must be"):
            ms_ssim(x, x, data_range=1.0, weights=weights)
