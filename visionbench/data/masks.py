"""Mask files of class indices: reading one (grayscale or palette PNG), and the largest class in many."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MASK_SUFFIXES = {".png", ".bmp", ".tif", ".tiff", ".pgm", ".ppm"}


def read_mask(path: Path) -> np.ndarray:
    """A mask of class indices ``[H, W]`` from a PNG (grayscale or palette: the palette indices
    are the classes). RGB masks are refused: their colours need a palette mapping to classes."""
    try:
        with Image.open(path) as image:
            if image.mode in ("RGB", "RGBA"):
                raise ValueError(f"mask {str(path)!r} is an {image.mode} image; masks must hold class indices "
                                 "(grayscale or palette PNG). Map its colours to class indices first, or save it "
                                 "with a palette.")
            if image.mode not in ("L", "P", "I", "I;16", "1"):
                raise ValueError(f"mask {str(path)!r} has mode {image.mode}; save it as an 8-bit grayscale or "
                                 "palette PNG of class indices.")
            return np.array(image, dtype=np.int64)
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"cannot read mask {str(path)!r}: {error}. Check the file or remove it.") from None


def largest_mask_value(paths: Iterable[Path], ignore_index: int) -> int:
    """The largest value other than ``ignore_index`` over the masks of ``paths`` (``-1`` if none),
    each read with :func:`read_mask` (RGB masks refused, naming the file)."""
    largest = -1
    for path in paths:
        mask = read_mask(Path(path))
        valid = mask[mask != ignore_index]
        if valid.size:
            largest = max(largest, int(valid.max()))
    return largest
