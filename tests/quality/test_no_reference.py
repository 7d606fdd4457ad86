"""No-reference metrics (issue 17): NIQE against a literal NumPy/SciPy port of the LIVE release's
``computequality.m`` (``imfilter``, ``blkproc``, ``circshift``, ``estimateaggdparam`` by brute-force
``min`` and ``imresize``'s ``contributions`` written out), its pieces against piq's BRISQUE
internals, its ranking of blur and noise, the shipped model against ``benchmarks/fit_niqe.py``,
and BRISQUE with a user's libsvm model."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import loadmat, savemat
from scipy.ndimage import correlate, gaussian_filter
from scipy.special import gamma
from skimage import data

from visionbench.quality import assess
from visionbench.quality.color import matlab_rgb2gray
from visionbench.quality.no_reference import (
    aggd_fit,
    brisque,
    brisque_features,
    ggd_fit,
    imresize_half,
    load_brisque_model,
    load_niqe_model,
    niqe,
)

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ the oracle (the MATLAB scripts, literally)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def _contributions(in_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """imresize.m's contributions() for the antialiased bicubic kernel (1-based indices)."""
    kernel_width = 4.0 / scale
    out_length = math.ceil(in_length * scale)
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    indices = left[:, None] + np.arange(math.ceil(kernel_width) + 2)[None]
    weights = scale * _cubic(scale * (u[:, None] - indices))
    weights = weights / weights.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(1, in_length + 1), np.arange(in_length, 0, -1)])
    indices = aux[np.mod(indices.astype(int) - 1, len(aux))]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _imresize_half(image: np.ndarray) -> np.ndarray:
    """imresize(image, 0.5) of a double image: rows first, then columns."""
    for axis in (0, 1):
        weights, indices = _contributions(image.shape[axis], 0.5)
        moved = np.moveaxis(image, axis, 0)
        out = sum(weights[:, k, None] * moved[indices[:, k] - 1] for k in range(weights.shape[1]))
        image = np.moveaxis(out, 0, axis)
    return image


def _fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    half = (size - 1) / 2
    y, x = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1), indexing="ij")
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return h / h.sum()


def _estimateaggdparam(vec: np.ndarray) -> tuple[float, float, float]:
    gam = 0.2 + 0.001 * np.arange(9801)
    r_gam = gamma(2 / gam) ** 2 / (gamma(1 / gam) * gamma(3 / gam))
    leftstd = np.sqrt(np.mean(vec[vec < 0] ** 2)) if np.any(vec < 0) else np.nan
    rightstd = np.sqrt(np.mean(vec[vec > 0] ** 2)) if np.any(vec > 0) else np.nan
    gammahat = leftstd / rightstd
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    alpha = gam[np.argmin((r_gam - rhatnorm) ** 2)]
    scale = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, leftstd * scale, rightstd * scale


def _computefeature(structdis: np.ndarray) -> list[float]:
    alpha, betal, betar = _estimateaggdparam(structdis.ravel())
    feat = [alpha, (betal + betar) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        pair = structdis.ravel() * np.roll(structdis, shift, axis=(0, 1)).ravel()  # circshift
        alpha, betal, betar = _estimateaggdparam(pair)
        feat += [alpha, (betar - betal) * (gamma(2 / alpha) / gamma(1 / alpha)), betal, betar]
    return feat


def _computequality(im: np.ndarray, mu_prisparam: np.ndarray, cov_prisparam: np.ndarray) -> float:
    """computequality.m with 96x96 blocks, no overlap, on a double grayscale image."""
    rows, cols = im.shape[0] // 96 * 96, im.shape[1] // 96 * 96
    im = im[:rows, :cols]
    window = _fspecial_gaussian(7, 7 / 6)
    feat = []
    for itr_scale in (1, 2):
        mu = correlate(im, window, mode="nearest")  # imfilter(im, window, 'replicate')
        sigma = np.sqrt(np.abs(correlate(im * im, window, mode="nearest") - mu * mu))
        structdis = (im - mu) / (sigma + 1)
        size = 96 // itr_scale
        feat.append([_computefeature(structdis[r : r + size, c : c + size])
                     for c in range(0, structdis.shape[1], size) for r in range(0, structdis.shape[0], size)])
        im = _imresize_half(im)
    distparam = np.concatenate([np.array(f) for f in feat], axis=1)
    mu_distparam = np.nanmean(distparam, axis=0)
    complete = distparam[~np.isnan(distparam).any(axis=1)]
    cov_distparam = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros((36, 36))
    invcov = np.linalg.pinv((cov_prisparam + cov_distparam) / 2)
    diff = mu_prisparam - mu_distparam
    return float(np.sqrt(diff @ invcov @ diff))


# ------------------------------------------------------------------------------------------------ tests


def _gray(name: str) -> np.ndarray:
    """A scikit-image photograph as MATLAB's rgb2gray of its uint8 pixels (float64 0-255)."""
    image = getattr(data, name)()
    if image.ndim == 2:
        return image.astype(np.float64)
    return matlab_rgb2gray(torch.from_numpy(image.copy()).permute(2, 0, 1)[None])[0, 0].double().numpy()


def _nchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image))[None, None]


@pytest.fixture(scope="module")
def model() -> tuple[torch.Tensor, torch.Tensor]:
    shipped = load_niqe_model()
    return shipped.mean, shipped.cov


def test_niqe_equals_the_release_scripts(model: tuple[torch.Tensor, torch.Tensor]) -> None:
    mean, cov = model
    cases = {
        "camera crop": _gray("camera")[40:340, 10:400],  # 300x390: cropped to 288x384, 12 patches
        "blurred coffee": gaussian_filter(_gray("coffee"), 1.3)[:200, :300],
        "noisy coins": np.clip(_gray("coins") + np.random.default_rng(0).normal(0, 10, (303, 384)), 0, 255).round(),
    }
    for name, image in cases.items():
        ours = float(niqe(_nchw(image), data_range=255.0))
        expected = _computequality(image, mean.numpy(), cov.numpy())
        assert ours == pytest.approx(expected, rel=1e-9), name
    # A colour uint8 image goes through MATLAB's rounded rgb2gray first, as computequality.m does.
    rgb = data.astronaut()[:192, :192]
    ours = float(niqe(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]))
    assert ours == pytest.approx(_computequality(_gray("astronaut")[:192, :192], mean.numpy(), cov.numpy()), rel=1e-9)


def test_imresize_half_equals_matlab_contributions() -> None:
    rng = np.random.default_rng(1)
    for h, w in ((96, 96), (97, 100), (41, 33), (4, 5)):
        image = rng.uniform(0, 255, (h, w))
        ours = imresize_half(torch.from_numpy(image)[None, None])[0, 0].numpy()
        np.testing.assert_allclose(ours, _imresize_half(image), rtol=0, atol=1e-10)
    # piq's port of imresize agrees for even sizes, within its float32 arithmetic.
    from piq.functional import imresize

    image = torch.from_numpy(rng.uniform(0, 255, (2, 1, 64, 96)))
    expected = imresize(image, sizes=(32, 48)).double()
    assert torch.allclose(imresize_half(image), expected, rtol=0, atol=2e-4)


def test_fits_equal_piq_brisque_internals_and_brute_force_min() -> None:
    from piq.brisque import _aggd_parameters, _ggd_parameters

    rng = np.random.default_rng(2)
    samples = rng.standard_normal((40, 3000)) * rng.uniform(0.05, 2, (40, 1))
    samples = np.sign(samples) * np.abs(samples) ** rng.uniform(0.3, 2.5, (40, 1)) + rng.uniform(-0.05, 0.05, (40, 1))
    values = torch.from_numpy(samples)
    shape, left, right = aggd_fit(values)
    p_shape, p_left, p_right = _aggd_parameters(values.view(40, 1, 3000, 1))
    assert torch.allclose(shape, p_shape.view(-1), rtol=0, atol=1e-12)
    assert torch.allclose(left, p_left.view(-1), rtol=1e-12) and torch.allclose(right, p_right.view(-1), rtol=1e-12)
    g_shape, g_sigma = ggd_fit(values)
    p_shape, p_sigma = _ggd_parameters(values.view(40, 1, 3000, 1))
    assert torch.allclose(g_shape, p_shape.view(-1), rtol=0, atol=1e-12)
    assert torch.allclose(g_sigma, p_sigma.view(-1), rtol=1e-12)
    for row in range(40):  # the binary search picks what MATLAB's min over the whole grid picks
        alpha, _, _ = _estimateaggdparam(samples[row])
        assert float(shape[row]) == pytest.approx(alpha, abs=1e-12)
    flat = aggd_fit(torch.zeros(1, 50, dtype=torch.float64))
    assert float(flat[0]) == pytest.approx(0.2) and math.isnan(float(flat[1]))  # MATLAB: min of all-NaN -> index 1


def test_brisque_features_equal_piq() -> None:
    from piq.brisque import _natural_scene_statistics

    gray = _nchw(_gray("camera")[:200, :260])
    ours = brisque_features(gray)[0]
    first = _natural_scene_statistics(gray).view(-1)
    second = _natural_scene_statistics(imresize_half(gray)).view(-1)  # piq's own imresize is float32
    assert torch.allclose(ours[:18], first, rtol=1e-9, atol=1e-12)
    assert torch.allclose(ours[18:], second, rtol=1e-9, atol=1e-12)


def test_niqe_ranks_blur_and_noise() -> None:
    rng = np.random.default_rng(3)
    for name in ("astronaut", "camera", "coffee", "coins"):  # coins is not in the fitted corpus
        image = _gray(name)
        blurred = [float(niqe(_nchw(gaussian_filter(image, s).round()), data_range=255.0)) for s in (0.75, 1.5, 3.0)]
        noisy = [float(niqe(_nchw(np.clip(image + rng.normal(0, s, image.shape), 0, 255).round()), data_range=255.0))
                 for s in (5, 15, 40)]
        clean = float(niqe(_nchw(image), data_range=255.0))
        assert clean < blurred[0] < blurred[1] < blurred[2], (name, clean, blurred)
        assert clean < noisy[0] < noisy[1] < noisy[2], (name, clean, noisy)


def test_shipped_model_is_what_fit_niqe_computes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("fit_niqe", ROOT / "benchmarks" / "fit_niqe.py")
    fit_niqe = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(fit_niqe)  # type: ignore[union-attr]
    assert fit_niqe.main(["--check", "--out", str(tmp_path / "model.npz")]) == 0
    shipped = load_niqe_model()
    from_npz = load_niqe_model(tmp_path / "model.npz")
    assert torch.allclose(from_npz.mean, shipped.mean, rtol=1e-12) and torch.allclose(from_npz.cov, shipped.cov, rtol=1e-12)
    assert torch.allclose(shipped.cov, shipped.cov.T) and torch.linalg.eigvalsh(shipped.cov).min() > -1e-12


def test_user_niqe_model_files(tmp_path: Path) -> None:
    shipped = load_niqe_model()
    # LIVE's modelparameters.mat layout, converted as load_niqe_model's docstring says.
    savemat(tmp_path / "modelparameters.mat", {"mu_prisparam": shipped.mean.numpy()[None],
                                               "cov_prisparam": shipped.cov.numpy()})
    m = loadmat(tmp_path / "modelparameters.mat")
    np.savez(tmp_path / "niqe_live.npz", mean=m["mu_prisparam"], cov=m["cov_prisparam"])
    image = _nchw(_gray("camera")[:192, :288])
    converted = niqe(image, data_range=255.0, model=load_niqe_model(tmp_path / "niqe_live.npz"))
    assert torch.allclose(converted, niqe(image, data_range=255.0), rtol=1e-12)
    with pytest.raises(ValueError, match="Convert LIVE's modelparameters.mat with"):
        load_niqe_model(tmp_path / "modelparameters.mat")
    np.savez(tmp_path / "bad.npz", mu=shipped.mean.numpy())
    with pytest.raises(ValueError, match="must hold 'mean' and 'cov'"):
        load_niqe_model(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="does not exist"):
        load_niqe_model(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="at least 96x96"):
        niqe(torch.zeros(1, 1, 95, 200, dtype=torch.uint8))


def _write_brisque_model(folder: Path, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small libsvm epsilon-SVR model and svm-scale range file around ``features`` ``(K, 36)``."""
    rng = np.random.default_rng(5)
    low, high = features.min(0).values.numpy() - 0.1, features.max(0).values.numpy() + 0.1
    high[7] = low[7]  # a constant feature: svm-scale leaves it out
    vectors = rng.uniform(-1, 1, (6, 36))
    coefs = rng.normal(0, 20, 6)
    lines = ["svm_type epsilon_svr", "kernel_type rbf", "gamma 0.05", "nr_class 2", "total_sv 6", "rho -12.5", "SV"]
    lines += [f"{float(c)!r} " + " ".join(f"{i + 1}:{float(v)!r}" for i, v in enumerate(sv) if i != 3)
              for c, sv in zip(coefs, vectors, strict=True)]
    (folder / "allmodel").write_text("\n".join(lines) + "\n")
    ranges = ["x", "-1 1"] + [f"{i + 1} {float(lo)!r} {float(hi)!r}" for i, (lo, hi) in enumerate(zip(low, high, strict=True))]
    (folder / "allrange").write_text("\n".join(ranges) + "\n")
    vectors[:, 3] = 0  # left out of the sparse lines above: zero
    return vectors, coefs, np.stack([low, high], axis=1)


def test_brisque_with_a_user_model(tmp_path: Path) -> None:
    images = torch.stack([_nchw(_gray("camera")[:160, :200])[0], _nchw(gaussian_filter(_gray("moon"), 1)[:160, :200].round())[0]])
    features = brisque_features(images)
    vectors, coefs, ranges = _write_brisque_model(tmp_path, features)
    scaled = -1 + 2 * (features.numpy() - ranges[:, 0]) / np.where(ranges[:, 1] != ranges[:, 0], ranges[:, 1] - ranges[:, 0], 1)
    scaled[:, 7] = 0
    expected = np.exp(-0.05 * ((scaled[:, None] - vectors[None]) ** 2).sum(-1)) @ coefs + 12.5
    model = load_brisque_model(tmp_path)  # the folder, or the allmodel file itself
    np.testing.assert_allclose(brisque(images, model=model, data_range=255.0).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(brisque(images.to(torch.uint8), model=load_brisque_model(tmp_path / "allmodel")).numpy(),
                               expected, rtol=1e-12)  # integer gray samples: the same values
    (tmp_path / "allrange").unlink()
    with pytest.raises(ValueError, match="svm-scale range file"):
        load_brisque_model(tmp_path / "allmodel")


def test_assess_scores_no_reference_metrics_on_dist_alone(tmp_path: Path) -> None:
    rgb = data.astronaut()[:200, :200]
    dist = torch.from_numpy(gaussian_filter(rgb, (1, 1, 0)).copy()).permute(2, 0, 1)[None]
    other_ref = torch.from_numpy(rgb[::-1].copy()).permute(2, 0, 1)[None]
    result = assess(other_ref, dist, metrics=("niqe", "psnr"))
    assert result.rows[0]["niqe"] == float(niqe(dist))  # the reference plays no part
    assert "not LIVE's modelparameters.mat" in result.settings["niqe_model"]
    assert result.pooled["niqe"]["higher_is_better"] is False
    with pytest.raises(ValueError, match="brisque needs a model file you provide"):
        assess(dist, dist, metrics=("brisque",))
    with pytest.raises(ValueError, match="psnr takes no model file"):
        assess(dist, dist, metrics=("psnr",), model_files={"psnr": tmp_path / "x"})
