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
    except Image.DecompressionBombError as error:  # a few KB of PNG can declare gigapixels
        raise ValueError(f"mask {str(path)!r} must be at most {Image.MAX_IMAGE_PIXELS * 2:,} pixels; got {error} "
                         "Masks are the size of their images: check the file.") from None
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"cannot read mask {str(path)!r}: {error}. Check the file or remove it.") from None


MAX_MASK_CLASSES = 4096  # class indices of semantic masks; a K x K int64 confusion matrix stays at 128 MiB


def largest_mask_value(paths: Iterable[Path], ignore_index: int, *, limit: int | None = None,
                       fix: str = "pass --num-classes K if the classes really are that many") -> int:
    """The largest value other than ``ignore_index`` over the masks of ``paths`` (``-1`` if none),
    each read with :func:`read_mask` (RGB masks refused, naming the file).

    Raises:
        ValueError: a value ``>= limit`` (when given), naming the mask: the class count is inferred
            from this value, and a mask of instance ids or 16-bit levels (40000) would make
            matrices of many gigabytes.
    """
    largest = -1
    for path in paths:
        mask = read_mask(Path(path))
        valid = mask[mask != ignore_index]
        if valid.size:
            value = int(valid.max())
            if limit is not None and value >= limit:
                raise ValueError(f"mask values must be class indices below {limit}; got {value} in {path}. Semantic "
                                 "masks hold one class index per pixel (instance ids or image levels are not classes); "
                                 f"{fix}.")
            largest = max(largest, value)
    return largest
