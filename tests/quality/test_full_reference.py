"""PSNR and SSIM (scikit-image profile) against scikit-image, on its bundled photographs with
seeded distortions and on generated images, plus gradients and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tests.quality.photos import distort, nchw
from visionbench.quality import psnr, ssim


def _sk_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range, channel_axis=2 if a.ndim == 3 else None)


@pytest.mark.parametrize("name", ["camera", "astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("kind", ["noise", "blur", "jpeg"])
def test_equal_to_scikit_image_on_photographs(name: str, kind: str) -> None:
    reference = getattr(data, name)()
    distorted = distort(reference, kind, seed=len(name))
    x, y = nchw(reference), nchw(distorted)
    assert float(ssim(x, y)) == pytest.approx(_sk_ssim(reference, distorted, 255), abs=1e-9)
    assert float(psnr(x, y)) == pytest.approx(peak_signal_noise_ratio(reference, distorted, data_range=255), abs=1e-9)


@settings(max_examples=20, deadline=None)
@given(st.integers(11, 40), st.integers(11, 40), st.sampled_from([1, 3]), st.integers(0, 2**31 - 1))
def test_equal_to_scikit_image_on_float_images_of_any_size(h: int, w: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.random((h, w, c))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    x, y = (torch.from_numpy(v).permute(2, 0, 1)[None] for v in (a, b))
    expected = _sk_ssim(a if c == 3 else a[..., 0], b if c == 3 else b[..., 0], 1.0)
    assert float(ssim(x, y, data_range=1.0)) == pytest.approx(expected, abs=1e-9)
    assert float(psnr(x, y, data_range=1.0)) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-9)


def test_batches_give_one_value_per_image() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 24, 24, generator=g)
    y = (x + 0.05 * torch.randn(4, 3, 24, 24, generator=g)).clamp(0, 1)
    batch = ssim(x, y, data_range=1.0)
    singles = torch.stack([ssim(x[i : i + 1], y[i : i + 1], data_range=1.0)[0] for i in range(4)])
    assert batch.shape == (4,) and torch.allclose(batch, singles, rtol=0, atol=1e-15)
    assert float(ssim(x, y, data_range=1.0, reduction="mean")) == pytest.approx(float(batch.mean()))
    assert torch.isinf(psnr(x, x, data_range=1.0)).all()
    assert torch.equal(ssim(x, x, data_range=1.0), torch.ones(4, dtype=torch.float64))


def test_differentiable_as_losses() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 12, 12, generator=g, dtype=torch.float64)
    y = torch.rand(1, 1, 12, 12, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: 1 - ssim(x, t, data_range=1.0), (y,))
    assert torch.autograd.gradcheck(lambda t: -psnr(x, t, data_range=1.0), (y,))


def test_bad_input_is_explained() -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="data_range must be given for float images"):
        ssim(x, x)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, torch.rand(1, 3, 16, 15), data_range=1.0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ssim(x[0], x[0], data_range=1.0)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), data_range=1.0)
    with pytest.raises(ValueError, match="data_range must be > 0"):
        psnr(x, x, data_range=0)
