"""A small image-quality dataset with synthetic human scores, for the MOS workflow's tests and the
README (``benchmarks/make_mos_dataset.py`` writes it from the command line).

Four scikit-image sample images (``camera``, grayscale; ``astronaut``, ``coffee``, ``chelsea``,
colour), centre-cropped to a square and resized to ``side`` pixels, are distorted by Gaussian
blur and by additive Gaussian noise at four levels each. The synthetic MOS of a distorted image
is a known decreasing function of its level ``k`` (1–4), the same for both types, plus seeded
noise: ``MOS = 100 / (1 + exp(k − 2.5)) + N(0, 2²)``, i.e. about 82, 62, 38 and 18.

Layout under ``root``: ``ref/<image>.png``, ``dist/<type>/<image>_<k>.png`` and ``scores.csv``
with the columns ``dist,ref,type,level,mos`` (``level`` is ignored by ``--mos``).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES = ("camera", "astronaut", "coffee", "chelsea")
LEVELS = {"blur": (0.8, 1.6, 2.8, 4.5), "noise": (5.0, 12.0, 25.0, 45.0)}  # Gaussian sigma: px, grey levels
MOS_NOISE = 2.0  # standard deviation of the synthetic scores' noise


def synthetic_mos(level: int) -> float:
    """The noiseless synthetic MOS of distortion level ``level`` (1 = mildest)."""
    return 100.0 / (1.0 + math.exp(level - 2.5))


def sample_image(name: str, side: int) -> np.ndarray:
    """scikit-image's sample ``name``, centre-cropped to a square and resized to ``side`` px (uint8)."""
    from skimage import data
    from skimage.transform import resize

    image = getattr(data, name)()
    h, w = image.shape[:2]
    top, left = (h - min(h, w)) // 2, (w - min(h, w)) // 2
    square = image[top : top + min(h, w), left : left + min(h, w)]
    shape = (side, side) + square.shape[2:]
    return np.clip(np.round(resize(square, shape, anti_aliasing=True, preserve_range=True)), 0, 255).astype(np.uint8)


def distort(image: np.ndarray, kind: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` blurred (Gaussian, sigma ``strength`` px) or with Gaussian noise (sigma ``strength``)."""
    from scipy.ndimage import gaussian_filter

    values = image.astype(np.float64)
    if kind == "blur":
        out = gaussian_filter(values, sigma=(strength, strength, 0) if image.ndim == 3 else strength)
    else:
        out = values + rng.normal(0.0, strength, image.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def make_mos_dataset(root: str | Path, *, side: int = 96, seed: int = 0,
                     images: Sequence[str] = IMAGES) -> list[dict[str, object]]:
    """Write the dataset under ``root`` (see the module docstring); returns the rows of ``scores.csv``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for name in images:
        reference = sample_image(name, side)
        (root / "ref").mkdir(parents=True, exist_ok=True)
        Image.fromarray(reference).save(root / "ref" / f"{name}.png")
        for kind, strengths in LEVELS.items():
            (root / "dist" / kind).mkdir(parents=True, exist_ok=True)
            for level, strength in enumerate(strengths, start=1):
                Image.fromarray(distort(reference, kind, strength, rng)).save(root / "dist" / kind / f"{name}_{level}.png")
                mos = synthetic_mos(level) + rng.normal(0.0, MOS_NOISE)
                rows.append({"dist": f"{kind}/{name}_{level}.png", "ref": f"{name}.png", "type": kind, "level": level,
                             "mos": round(mos, 2)})
    with open(root / "scores.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``make_mos_dataset.py ROOT [--side PX] [--seed N]``."""
    parser = argparse.ArgumentParser(description="Write a small MOS dataset (scikit-image samples, blur and noise "
                                                 "at four levels, synthetic scores) under ROOT.")
    parser.add_argument("root", help="folder to write ref/, dist/ and scores.csv into")
    parser.add_argument("--side", type=int, default=96, help="image side in pixels (default: 96)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and the scores (default: 0)")
    args = parser.parse_args(argv)
    rows = make_mos_dataset(args.root, side=args.side, seed=args.seed)
    root = Path(args.root)
    print(f"wrote {len(IMAGES)} references to {root / 'ref'}, {len(rows)} distorted images to {root / 'dist'} and "
          f"their scores to {root / 'scores.csv'}")
    return 0
