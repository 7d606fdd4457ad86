"""Channel conversions against scikit-image's BT.601 conversions, and border cropping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color, data

from tests.quality.photos import nchw
from visionbench.quality.color import crop_border, to_channel


def test_y_studio_equals_scikit_image_rgb2ycbcr() -> None:
    rgb = data.astronaut()
    expected = color.rgb2ycbcr(rgb)[..., 0]
    ours = to_channel(nchw(rgb), "y-studio", data_range=255)[0, 0].numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)
    assert 16 <= ours.min() and ours.max() <= 235


def test_y_full_range_equals_scikit_image_rgb2yuv() -> None:
    rgb = data.coffee()
    expected = color.rgb2yuv(rgb)[..., 0] * 255
    ours = to_channel(nchw(rgb), "y", data_range=255)[0, 0].numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)


def test_float_input_keeps_its_scale() -> None:
    rgb = torch.rand(2, 3, 8, 9, dtype=torch.float64)
    as_8bit = to_channel(rgb * 255, "y-studio", data_range=255)
    assert torch.allclose(to_channel(rgb, "y-studio", data_range=1.0) * 255, as_8bit, atol=1e-12)
    assert torch.allclose(to_channel(rgb, "y", data_range=1.0) * 255, to_channel(rgb * 255, "y", data_range=255))


def test_gray_input() -> None:
    gray = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert to_channel(gray, "y", data_range=255) is gray
    assert to_channel(gray, "y-studio", data_range=255).flatten().tolist() == pytest.approx([16.0, 235.0], abs=1e-12)
    assert to_channel(gray, "rgb", data_range=255) is gray


def test_unknown_channel_and_bad_channel_count() -> None:
    with pytest.raises(ValueError, match="channel must be one of rgb, y, y-studio"):
        to_channel(torch.zeros(1, 3, 4, 4), "ycbcr", data_range=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_channel(torch.zeros(1, 4, 4, 4), "y", data_range=1.0)


def test_crop_border() -> None:
    image = torch.arange(36).reshape(1, 1, 6, 6)
    assert crop_border(image, 0) is image
    assert crop_border(image, 2).flatten().tolist() == [14, 15, 20, 21]
    with pytest.raises(ValueError, match="leaves nothing"):
        crop_border(image, 3)
    with pytest.raises(ValueError, match=">= 0"):
        crop_border(image, -1)
