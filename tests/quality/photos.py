"""Shared test helpers: scikit-image photographs with seeded distortions, as NCHW tensors."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def distort(image: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """``image`` (uint8 HW or HWC) with seeded Gaussian noise, a 5×5 box blur or JPEG at quality 10–59."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return np.clip(image.astype(np.float64) + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    if kind == "blur":
        from scipy.ndimage import uniform_filter

        return uniform_filter(image, size=(5, 5, 1) if image.ndim == 3 else 5)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(rng.integers(10, 60)))
    return np.asarray(Image.open(buffer).convert("RGB" if image.ndim == 3 else "L"))


def nchw(image: np.ndarray) -> torch.Tensor:
    """An HW or HWC array as a ``(1, C, H, W)`` tensor (copied: PIL arrays are read-only)."""
    image = np.ascontiguousarray(image).copy()
    return torch.from_numpy(image).permute(2, 0, 1)[None] if image.ndim == 3 else torch.from_numpy(image)[None, None]
