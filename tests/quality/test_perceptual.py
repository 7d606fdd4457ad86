"""VIFp, HaarPSI and FSIM against piq (fed float64, so both sides compute in float64) on
scikit-image's photographs with seeded distortions and on generated images of odd sizes, plus
batches, dtypes, gradients and input errors."""

from __future__ import annotations

import numpy as np
import piq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

from tests.quality.photos import distort, nchw
from visionbench.quality.perceptual import fsim, haarpsi, vif_p

RTOL = 1e-10  # relative agreement with piq asked for; measured differences are ~1e-14


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are small: intra-op threads only contend, and on a busy 2-core machine a
    multi-threaded run of this file is 5× slower. Restored afterwards for the other test files."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)




def _piq_all(ref: torch.Tensor, dist: torch.Tensor, data_range: float, chromatic: bool) -> dict[str, torch.Tensor]:
    """piq's three metrics on float64 copies; piq's VIF takes the reference second."""
    r, d = ref.double(), dist.double()
    return {
        "vif_p": piq.vif_p(d, r, data_range=data_range, reduction="none"),
        "haarpsi": piq.haarpsi(r, d, data_range=data_range, reduction="none"),
        "fsim": piq.fsim(r, d, data_range=data_range, reduction="none", chromatic=chromatic),
    }


def _ours_all(ref: torch.Tensor, dist: torch.Tensor, data_range: float | None, chromatic: bool) -> dict:
    return {
        "vif_p": vif_p(ref, dist, data_range=data_range),
        "haarpsi": haarpsi(ref, dist, data_range=data_range),
        "fsim": fsim(ref, dist, data_range=data_range, chromatic=chromatic),
    }


def _assert_close(ours: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    for name, value in ours.items():
        assert value.dtype == torch.float64 and value.shape == expected[name].shape, name
        torch.testing.assert_close(value, expected[name], rtol=RTOL, atol=0, msg=name)


@pytest.mark.parametrize("name", ["camera", "astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("kind", ["noise", "blur", "jpeg"])
def test_equal_to_piq_on_photographs(name: str, kind: str) -> None:
    # Odd-sized crops (the odd-size paths of HaarPSI's pooling and FSIM's frequency grid) keep it fast.
    reference = getattr(data, name)()[100:171, 120:223]
    distorted = distort(reference, kind, seed=len(name))
    x, y = nchw(reference), nchw(distorted)
    chromatic = reference.ndim == 3
    ours = _ours_all(x, y, None, chromatic)  # uint8 in: data range 255
    _assert_close(ours, _piq_all(x, y, 255.0, chromatic))
    assert all(0 < float(v) < 1 for v in ours.values())


def test_fsim_pools_large_images_as_piq_does() -> None:
    # Min side 640: FSIM mean-pools by round(640 / 256) = round(2.5) = 2 (Python rounds half to even) first.
    crop = np.tile(data.camera(), (2, 2))[:640, :645]
    x, y = nchw(crop), nchw(distort(crop, "noise", seed=3))
    expected = piq.fsim(x.double(), y.double(), data_range=255.0, reduction="none", chromatic=False)
    torch.testing.assert_close(fsim(x, y, chromatic=False), expected, rtol=RTOL, atol=0)


@settings(max_examples=12, deadline=None)
@given(st.integers(41, 64), st.integers(41, 64), st.sampled_from([1, 3]), st.sampled_from([1.0, 255.0]),
       st.integers(0, 2**31 - 1))
def test_equal_to_piq_on_random_float_images(h: int, w: int, c: int, data_range: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, c, h, w, generator=g, dtype=torch.float64) * data_range
    y = (x + 0.1 * data_range * torch.randn(2, c, h, w, generator=g, dtype=torch.float64)).clamp(0, data_range)
    _assert_close(_ours_all(x, y, data_range, c == 3), _piq_all(x, y, data_range, c == 3))


@settings(max_examples=10, deadline=None)
@given(st.integers(16, 40), st.integers(16, 40), st.sampled_from([1, 3]), st.booleans(), st.integers(0, 2**31 - 1))
def test_haarpsi_and_fsim_on_small_images_and_options(h: int, w: int, c: int, subsample: bool, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h, w, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.rand(1, c, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    for c_, alpha in ((30.0, 4.2), (5.0, 2.0)):
        expected = piq.haarpsi(x, y, data_range=1.0, reduction="none", subsample=subsample, c=c_, alpha=alpha)
        ours = haarpsi(x, y, data_range=1.0, subsample=subsample, c=c_, alpha=alpha)
        torch.testing.assert_close(ours, expected, rtol=RTOL, atol=0)
    for chromatic in (True, False) if c == 3 else (False,):
        expected = piq.fsim(x, y, data_range=1.0, reduction="none", chromatic=chromatic)
        torch.testing.assert_close(fsim(x, y, data_range=1.0, chromatic=chromatic), expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("sigma_n_sq", [0.4, 2.0, 10.0])
def test_vif_noise_variance_and_argument_order(sigma_n_sq: float) -> None:
    reference = data.astronaut()[200:260, 150:230]
    x, y = nchw(reference), nchw(distort(reference, "blur", seed=0))
    expected = piq.vif_p(y.double(), x.double(), data_range=255.0, sigma_n_sq=sigma_n_sq, reduction="none")
    ours = vif_p(x, y, sigma_n_sq=sigma_n_sq)
    torch.testing.assert_close(ours, expected, rtol=RTOL, atol=0)
    # VIF is asymmetric: the swapped pair is a different number (and what piq gives for the piq order).
    swapped = vif_p(y, x, sigma_n_sq=sigma_n_sq)
    assert abs(float(swapped) - float(ours)) > 1e-3
    expected = piq.vif_p(x.double(), y.double(), data_range=255.0, sigma_n_sq=sigma_n_sq, reduction="none")
    torch.testing.assert_close(swapped, expected, rtol=RTOL, atol=0)


def test_scores_fall_as_noise_grows() -> None:
    reference = data.camera()[200:280, 200:290].astype(np.float64)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, reference.shape)
    x = nchw(reference)
    scores = [_ours_all(x, nchw(np.clip(reference + s * noise, 0, 255)), 255.0, False) for s in (2, 8, 32)]
    for name in ("vif_p", "haarpsi", "fsim"):
        values = [float(s[name]) for s in scores]
        assert values[0] > values[1] > values[2], (name, values)


@pytest.mark.parametrize("c", [1, 3])
def test_identical_images_score_one(c: int) -> None:
    g = torch.Generator().manual_seed(c)
    x = torch.rand(2, c, 48, 50, generator=g)
    # VIF's 1e-8 guards keep it from exactly 1 (the noise variance becomes 1e-8, not 0).
    torch.testing.assert_close(vif_p(x, x, data_range=1.0), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-8)
    torch.testing.assert_close(haarpsi(x, x, data_range=1.0), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(fsim(x, x, data_range=1.0, chromatic=c == 3), torch.ones(2, dtype=torch.float64),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("level", [0, 128])
def test_constant_images_follow_piq(level: int) -> None:
    # Flat images exercise every guard: VIF's zero-variance masks, HaarPSI's and FSIM's eps terms
    # (two black images have no Haar weight at all: piq's eps/eps gives logit(1) = inf, kept as is).
    x = torch.full((1, 3, 41, 41), float(level), dtype=torch.float64)
    y = x.clone()
    y[..., 20:, :] += 10.0
    for a, b in ((x, x), (x, y)):
        ours, expected = _ours_all(a, b, 255.0, True), _piq_all(a, b, 255.0, True)
        for name, value in ours.items():
            torch.testing.assert_close(value, expected[name], rtol=RTOL, atol=0, equal_nan=True, msg=name)


def test_uint8_and_float_inputs_agree() -> None:
    image = data.coffee()[50:110, 60:140]
    x8, y8 = nchw(image), nchw(distort(image, "jpeg", seed=1))
    for metric in (vif_p, haarpsi, fsim):
        from_uint8 = metric(x8, y8)
        # The same values as float64 on [0, 255]: the very same arithmetic.
        assert torch.equal(from_uint8, metric(x8.double(), y8.double(), data_range=255.0))
        # Scaled to [0, 1], float32: rescaled to [0, 255] inside, so equal up to float32 rounding.
        torch.testing.assert_close(metric(x8.float() / 255, y8.float() / 255, data_range=1.0), from_uint8,
                                   rtol=1e-5, atol=0)


def test_batches_give_one_value_per_image() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 45, 47, generator=g, dtype=torch.float64)
    y = (x + 0.05 * torch.randn(3, 3, 45, 47, generator=g, dtype=torch.float64)).clamp(0, 1)
    for metric in (vif_p, haarpsi, fsim):
        batch = metric(x, y, data_range=1.0)
        singles = torch.cat([metric(x[i : i + 1], y[i : i + 1], data_range=1.0) for i in range(3)])
        assert batch.shape == (3,)
        torch.testing.assert_close(batch, singles, rtol=1e-13, atol=0)
        mean = metric(x, y, data_range=1.0, reduction="mean")
        assert mean.shape == () and float(mean) == pytest.approx(float(batch.mean()), rel=1e-15)


def test_haarpsi_other_scale_counts() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 40, 40, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(1, 3, 40, 40, generator=g, dtype=torch.float64)).clamp(0, 1)
    for scales in (2, 4):
        assert float(haarpsi(x, x, data_range=1.0, scales=scales)) == pytest.approx(1.0, abs=1e-12)
        assert 0 < float(haarpsi(x, y, data_range=1.0, scales=scales)) < 1


def test_gradients_match_finite_differences() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 41, 41, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(1, 1, 41, 41, generator=g, dtype=torch.float64)).clamp(0.05, 0.95)
    y.requires_grad_(True)
    # fast_mode compares a random projection of the Jacobian with a finite-difference directional derivative.
    assert torch.autograd.gradcheck(lambda t: vif_p(x, t, data_range=1.0), (y,), fast_mode=True)
    xc = torch.rand(1, 3, 16, 17, generator=g, dtype=torch.float64)
    yc = (xc + 0.1 * torch.randn(1, 3, 16, 17, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: haarpsi(xc, t, data_range=1.0), (yc,), fast_mode=True)
    xs, ys = xc[..., :8, :9], yc.detach()[..., :8, :9].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: fsim(xs, t, data_range=1.0), (ys,), fast_mode=True)
    # And the gradients are those of piq's graph (float32 input gets a float32 gradient).
    y32 = y.detach().float().requires_grad_(True)
    vif_p(x.float(), y32, data_range=1.0).sum().backward()
    y64 = y.detach().clone().requires_grad_(True)
    piq.vif_p(y64, x, data_range=1.0).backward()
    assert y32.grad.dtype == torch.float32
    torch.testing.assert_close(y32.grad.double(), y64.grad, rtol=1e-4, atol=1e-9)


def test_gradients_stay_finite_on_flat_regions_and_identical_images() -> None:
    # piq's FSIM gives NaN gradients here (sqrt at 0 in its gradient magnitude and noise threshold).
    g = torch.Generator().manual_seed(5)
    half_flat = torch.full((1, 3, 48, 48), 0.5, dtype=torch.float64)
    half_flat[..., 24:] = torch.rand(1, 3, 48, 24, generator=g, dtype=torch.float64)
    for reference in (half_flat, torch.full((1, 3, 48, 48), 0.5, dtype=torch.float64)):
        noisy = (reference + 0.01 * torch.randn(reference.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
        for distorted in (reference.clone(), noisy):
            for metric in (vif_p, haarpsi, fsim):
                t = distorted.clone().requires_grad_(True)
                metric(reference, t, data_range=1.0).sum().backward()
                assert torch.isfinite(t.grad).all(), metric.__name__


def test_bad_input_is_explained() -> None:
    x = torch.rand(1, 3, 48, 48)
    for metric in (vif_p, haarpsi, fsim):
        with pytest.raises(ValueError, match="data_range must be given for float images"):
            metric(x, x)
        with pytest.raises(ValueError, match="same shape"):
            metric(x, torch.rand(1, 3, 48, 47), data_range=1.0)
        with pytest.raises(ValueError, match=r"1 \(grayscale\) or 3 \(RGB\) channels; got 2"):
            metric(x[:, :2], x[:, :2], data_range=1.0)
        with pytest.raises(ValueError, match="reduction must be 'none' or 'mean'"):
            metric(x, x, data_range=1.0, reduction="sum")
        with pytest.raises(TypeError, match="must be a torch.Tensor"):
            metric(x.numpy(), x, data_range=1.0)
    with pytest.raises(ValueError, match=r"VIFp needs images of at least 41x41 pixels; got \(40, 48\)"):
        vif_p(x[..., :40, :], x[..., :40, :], data_range=1.0)
    with pytest.raises(ValueError, match=r"HaarPSI needs images of at least 16x16 pixels; got \(48, 15\)"):
        haarpsi(x[..., :15], x[..., :15], data_range=1.0)
    with pytest.raises(ValueError, match="at least 32x32"):
        haarpsi(x[..., :31], x[..., :31], data_range=1.0, scales=4)
    with pytest.raises(ValueError, match="scales must be an integer >= 2"):
        haarpsi(x, x, data_range=1.0, scales=1)
    with pytest.raises(ValueError, match=r"FSIM needs images of at least 6x6 pixels; got \(5, 48\)"):
        fsim(x[..., :5, :], x[..., :5, :], data_range=1.0)
    with pytest.raises(ValueError, match="Pass chromatic=False for grayscale"):
        fsim(x[:, :1], x[:, :1], data_range=1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 50, 60, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(2, 3, 50, 60, generator=g, dtype=torch.float64)).clamp(0, 1)
    for metric in (vif_p, haarpsi, fsim):
        on_gpu = metric(x.cuda(), y.cuda(), data_range=1.0)
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), metric(x, y, data_range=1.0), rtol=1e-12, atol=0)
