"""Images of every bit depth are read at their true values by `visionbench quality`, or refused with
the fix (issue 18: a 48-bit PNG was read as 8-bit, an int32 TIFF wrapped, a float TIFF read as zeros)."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionbench.quality import assess
from visionbench.quality.assessment import read_image


def _png16_rgb(path: Path, array: np.ndarray) -> Path:
    """A 16-bit RGB PNG (48 bits per pixel), written by hand: Pillow cannot write one."""
    height, width, _ = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def test_a_16_bit_colour_png_is_refused_rather_than_read_at_8_bits(tmp_path: Path) -> None:
    path = _png16_rgb(tmp_path / "c16.png", np.full((4, 4, 3), 40000, np.uint16))
    assert Image.open(path).mode == "RGB"  # what Pillow makes of it: 8 bits per channel
    with pytest.raises(ValueError, match=r"c16\.png' is a 16-bit colour PNG.*--data-range 65535"):
        read_image(path)


def test_an_int32_tiff_beyond_16_bits_is_refused_and_within_16_bits_kept(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(ValueError, match=r"32-bit integers from 0 to 70000.*Rescale"):
        read_image(tmp_path / "wide.tif")
    Image.fromarray(np.array([[0, 60000]], dtype=np.int32)).save(tmp_path / "narrow.tif")
    assert read_image(tmp_path / "narrow.tif").tolist() == [[0, 60000]]


def test_float_tiffs_keep_their_values_and_need_their_range(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, (32, 32)).astype(np.float32)
    dist = np.clip(ref + rng.normal(0, 0.01, ref.shape), 0, 1).astype(np.float32)
    Image.fromarray(ref).save(tmp_path / "ref.tif")
    Image.fromarray(dist).save(tmp_path / "dist.tif")
    assert np.array_equal(read_image(tmp_path / "ref.tif"), ref)  # not zeros, not clipped to 8 bits
    with pytest.raises(ValueError, match="data_range must be given"):
        assess(tmp_path / "ref.tif", tmp_path / "dist.tif", metrics=("psnr",))
    result = assess(tmp_path / "ref.tif", tmp_path / "dist.tif", metrics=("psnr",), data_range=1.0)
    expected = 10 * math.log10(1.0 / float(np.mean((ref.astype(np.float64) - dist.astype(np.float64)) ** 2)))
    assert result.pooled["psnr"]["value"] == pytest.approx(expected, rel=1e-6)
