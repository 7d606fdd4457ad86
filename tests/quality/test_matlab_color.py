"""MATLAB's colour conversions (issue 17): ``gray-matlab`` (``rgb2gray``) and ``y-matlab``
(``rgb2ycbcr``'s Y), rounded as MATLAB rounds integer images, checked on every 8-bit RGB triple
against the formulas as MATLAB's scripts write them, and the ``matlab`` profile's new default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color, data

from visionbench import cli
from visionbench.quality import assess, gmsd, ssim_matlab
from visionbench.quality.color import default_channel, matlab_rgb2gray, to_channel

# rgb2gray.m's printed coefficients, and rgb2ycbcr.m's origT row for Y and its offset.
RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
ORIG_T_Y, OFFSET_Y = (65.481, 128.553, 24.966), 16.0


def _all_triples(red_start: int, count: int) -> tuple[np.ndarray, ...]:
    """R in [red_start, red_start + count), G and B over all 256 values, as float64 grids."""
    values = np.arange(256, dtype=np.float64)
    return np.meshgrid(np.arange(red_start, red_start + count, dtype=np.float64), values, values, indexing="ij")


def _as_tensor(r: np.ndarray, g: np.ndarray, b: np.ndarray, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """Three equal-shape planes as one ``(1, 3, H, W)`` image (the grids flattened to H x W)."""
    planes = [torch.from_numpy(p.reshape(-1, 256).copy()).to(dtype) for p in (r, g, b)]
    return torch.stack(planes)[None]


def _matlab_uint8(values: np.ndarray) -> np.ndarray:
    """MATLAB's cast of non-negative doubles to uint8: round half away from zero, saturate."""
    return np.clip(np.floor(values + 0.5), 0, 255)


def test_gray_matlab_equals_rgb2gray_on_every_8_bit_triple() -> None:
    for red in range(0, 256, 64):  # 4 chunks of 64 x 256 x 256 triples: all 16.7 million
        r, g, b = _all_triples(red, 64)
        # imapplymatrix(coef, X, 'uint8'): the weighted sum in double, left to right, then the cast.
        expected = _matlab_uint8(r * RGB2GRAY[0] + g * RGB2GRAY[1] + b * RGB2GRAY[2]).reshape(-1, 256)
        ours = to_channel(_as_tensor(r, g, b), "gray-matlab", data_range=255)
        assert ours.dtype == torch.uint8 and ours.shape == (1, 1, 64 * 256, 256)
        np.testing.assert_array_equal(ours[0, 0].numpy(), expected)
    levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256).expand(1, 3, 1, 256)
    assert torch.equal(matlab_rgb2gray(levels)[0, 0, 0], torch.arange(256, dtype=torch.uint8))  # gray stays gray


def test_gray_matlab_rounds_where_plain_luma_does_not() -> None:
    rgb = torch.from_numpy(data.astronaut()[:64, :64].copy()).permute(2, 0, 1)[None]
    unrounded = rgb.double()[:, 0:1] * RGB2GRAY[0] + rgb.double()[:, 1:2] * RGB2GRAY[1] + rgb.double()[:, 2:3] * RGB2GRAY[2]
    rounded = to_channel(rgb, "gray-matlab", data_range=255)
    assert torch.equal(rounded.double(), torch.floor(unrounded + 0.5)) and not torch.equal(rounded.double(), unrounded)
    floats = to_channel(rgb.double() / 255, "gray-matlab", data_range=1.0)  # MATLAB's double path: no rounding
    assert floats.dtype == torch.float64 and torch.allclose(floats * 255, unrounded, rtol=0, atol=1e-12)
    gray = rgb[:, :1]
    assert to_channel(gray, "gray-matlab", data_range=255) is gray


def test_sixteen_bit_gray_matlab_rounds_to_integers() -> None:
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 65536, size=(3, 1, 4096)).astype(np.float64)
    expected = np.floor(samples[0] * RGB2GRAY[0] + samples[1] * RGB2GRAY[1] + samples[2] * RGB2GRAY[2] + 0.5)
    ours = to_channel(torch.from_numpy(samples).to(torch.int32)[None], "gray-matlab", data_range=65535)
    assert ours.dtype == torch.int32
    np.testing.assert_array_equal(ours[0, 0].numpy(), expected)


def test_y_matlab_equals_rgb2ycbcr_on_every_8_bit_triple() -> None:
    weights = [(1 / 255) * w for w in ORIG_T_Y]  # rgb2ycbcr.m: T = scaleFactor.uint8.T * origT
    ties = 0
    for red in range(0, 256, 64):
        r, g, b = _all_triples(red, 64)
        exact = r * weights[0] + g * weights[1] + b * weights[2] + OFFSET_Y  # imlincomb(..., 16), in double
        ours = to_channel(_as_tensor(r, g, b), "y-matlab", data_range=255)
        assert ours.dtype == torch.uint8
        np.testing.assert_array_equal(ours[0, 0].numpy(), _matlab_uint8(exact).reshape(-1, 256))
        # Independently: scikit-image's unrounded rgb2ycbcr Y, rounded, agrees except at the exact
        # rational ties (65481 R + 128553 G + 24966 B = 255000 k + 127500), where double rounding decides.
        rgb = np.stack([r, g, b], axis=-1).reshape(-1, 256, 3) / 255
        skimage_y = color.rgb2ycbcr(rgb)[..., 0]
        tie = (65481 * r + 128553 * g + 24966 * b).reshape(-1, 256) % 255000 == 127500
        ties += int(tie.sum())
        np.testing.assert_array_equal(ours[0, 0].numpy()[~tie], np.floor(skimage_y + 0.5)[~tie])
        np.testing.assert_allclose(np.abs(ours[0, 0].numpy()[tie] - skimage_y[tie]), 0.5, rtol=0, atol=1e-9)
    assert ties == 194  # the only triples where the evaluation order could matter


def test_y_matlab_sixteen_bit_float_and_gray() -> None:
    rng = np.random.default_rng(1)
    samples = rng.integers(0, 65536, size=(3, 1, 4096)).astype(np.float64)
    weights = [(257 / 65535) * w for w in ORIG_T_Y]  # rgb2ycbcr.m's uint16 factors
    expected = np.floor(samples[0] * weights[0] + samples[1] * weights[1] + samples[2] * weights[2] + 257 * 16 + 0.5)
    ours = to_channel(torch.from_numpy(samples).to(torch.int32)[None], "y-matlab", data_range=65535)
    np.testing.assert_array_equal(ours[0, 0].numpy(), expected)
    rgb = torch.rand(2, 3, 9, 8, dtype=torch.float64)
    assert torch.allclose(to_channel(rgb, "y-matlab", data_range=1.0), to_channel(rgb, "y-studio", data_range=1.0),
                          rtol=0, atol=1e-12)  # floats: rgb2ycbcr's double path, no rounding
    gray = torch.tensor([[[[0, 255, 100]]]], dtype=torch.uint8)
    as_rgb = to_channel(gray.expand(1, 3, 1, 3), "y-matlab", data_range=255)
    assert torch.equal(to_channel(gray, "y-matlab", data_range=255), as_rgb)
    assert as_rgb.flatten().tolist() == [16, 235, 102]
    with pytest.raises(ValueError, match="uint8 \\(data range 255\\) and uint16"):
        to_channel(torch.zeros(1, 3, 2, 2, dtype=torch.int32), "y-matlab", data_range=1023)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_channel(torch.zeros(1, 4, 2, 2, dtype=torch.uint8), "gray-matlab", data_range=255)


def test_default_channel_per_profile() -> None:
    assert default_channel("matlab") == "gray-matlab"
    assert default_channel("matlab", channels=4) == "rgb"
    assert default_channel("skimage") == default_channel("ffmpeg") == "rgb"
    assert default_channel("matlab", video=True) == "y"


@pytest.fixture(scope="module")
def photo_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A colour photograph and a barely changed copy (a few pixels off by one), as PNG files."""
    root = tmp_path_factory.mktemp("matlab_pair")
    reference = data.astronaut()[:200, :240]
    distorted = reference.copy()
    rng = np.random.default_rng(4)
    rows, cols = rng.integers(0, 200, 600), rng.integers(0, 240, 600)
    distorted[rows, cols, rng.integers(0, 3, 600)] ^= 1
    for name, image in (("ref.png", reference), ("dist.png", distorted)):
        Image.fromarray(image).save(root / name)
    return root / "ref.png", root / "dist.png", reference, distorted


def test_matlab_profile_on_rgb_files_uses_gray_matlab(photo_pair: tuple[Path, Path, np.ndarray, np.ndarray]) -> None:
    ref, dist, reference, distorted = photo_pair
    x, y = (torch.from_numpy(a.copy()).permute(2, 0, 1)[None] for a in (reference, distorted))
    gx, gy = matlab_rgb2gray(x), matlab_rgb2gray(y)
    result = assess(ref, dist, metrics=("ssim", "ms_ssim", "gmsd"), profile="matlab")
    row = result.rows[0]
    assert result.settings["channel"] == "gray-matlab"
    assert row["ssim"] == float(ssim_matlab(gx, gy)[0])
    assert row["gmsd"] == pytest.approx(float(gmsd(gx, gy)[0]), rel=1e-12)
    # The rounding is what moves near-identical pairs: unrounded luma gives a different score.
    luma = assess(ref, dist, metrics=("gmsd",), profile="matlab", channel="y").rows[0]["gmsd"]
    assert luma != pytest.approx(row["gmsd"], rel=1e-3)
    # Other profiles keep their default, and an explicit channel wins.
    assert assess(ref, dist, metrics=("ssim",)).settings["channel"] == "rgb"
    assert assess(ref, dist, metrics=("ssim",), profile="matlab", channel="rgb").settings["channel"] == "rgb"


def test_cli_accepts_the_matlab_channels(photo_pair: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ref, dist, _, _ = photo_pair
    code = cli.main(["quality", str(ref), str(dist), "--profile", "matlab", "--json", "--out", str(tmp_path / "a")])
    assert code == 0 and json.loads(capsys.readouterr().out)["settings"]["channel"] == "gray-matlab"
    code = cli.main(["quality", str(ref), str(dist), "--channel", "y-matlab", "--json", "--out", str(tmp_path / "b")])
    assert code == 0 and json.loads(capsys.readouterr().out)["settings"]["channel"] == "y-matlab"
