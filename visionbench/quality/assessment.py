"""Quality of image pairs: two images or two folders (paired by relative path), per item and pooled.

Images are read with Pillow as uint8 (data range 255): both grayscale stay one channel, otherwise
both are compared in RGB. Pooled results are the mean over items, each with a 95% bootstrap
interval over items, and for PSNR also the PSNR of the mean MSE (``psnr_pooled_mse``, what
FFmpeg reports for a video), labelled as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from visionbench.metrics.stats import bootstrap_means, percentile_interval
from visionbench.quality.full_reference import psnr, psnr_db_of_mse, ssim

METRICS = {"psnr": psnr, "ssim": ssim}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class QualityResult:
    """Per-item rows (``{"item": relative path, metric: value, "mse": …}``), the pooled values, and
    the items found on one side only."""

    rows: list[dict[str, Any]]
    pooled: dict[str, Any]
    unpaired: dict[str, list[str]]


def read_image(path: Path) -> np.ndarray:
    """``uint8 [H, W]`` (grayscale) or ``[H, W, 3]``; a clear error names an unreadable file."""
    try:
        with Image.open(path) as image:
            gray = image.mode in ("L", "I;16", "I", "1")
            return np.asarray(image.convert("L" if gray else "RGB"))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read image {str(path)!r}: {error}. Check the file or remove it.") from None


def _to_pair(ref: np.ndarray, dist: np.ndarray, ref_path: Path, dist_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    if ref.ndim != dist.ndim:  # one grayscale, one colour: compare both in RGB
        ref, dist = (np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in (ref, dist))
    if ref.shape != dist.shape:
        raise ValueError(f"images must have the same size; got {ref.shape[:2]} in {ref_path} and {dist.shape[:2]} "
                         f"in {dist_path}. Resize or crop the distorted image to the reference first.")

    def nchw(a: np.ndarray) -> torch.Tensor:
        a = np.ascontiguousarray(a)
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None] if a.ndim == 3 else torch.from_numpy(a.copy())[None, None]

    return nchw(ref), nchw(dist)


def _pairs(ref: Path, dist: Path) -> tuple[list[tuple[str, Path, Path]], dict[str, list[str]]]:
    """``(relative name, ref file, dist file)`` for two files or two folders, and the unpaired."""
    if ref.is_file() and dist.is_file():
        return [(dist.name, ref, dist)], {"reference_only": [], "distorted_only": []}
    if not (ref.is_dir() and dist.is_dir()):
        raise ValueError(f"give two image files or two folders; got {str(ref)!r} and {str(dist)!r}.")

    def images(root: Path) -> dict[str, Path]:
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}

    left, right = images(ref), images(dist)
    common = sorted(set(left) & set(right))
    if not common:
        raise ValueError(f"no image of {str(ref)!r} has a counterpart with the same relative path in {str(dist)!r}.")
    unpaired = {"reference_only": sorted(set(left) - set(right)), "distorted_only": sorted(set(right) - set(left))}
    return [(name, left[name], right[name]) for name in common], unpaired


def assess_paths(ref: str | Path, dist: str | Path, *, metrics: Sequence[str] = ("psnr", "ssim"),
                 progress: Any = None) -> QualityResult:
    """Per-item and pooled quality of two images or two folders (see the module docstring)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"metrics must be among {sorted(METRICS)}; got {unknown!r}.")
    pairs, unpaired = _pairs(Path(ref), Path(dist))
    rows = []
    for name, ref_path, dist_path in (progress(pairs) if progress else pairs):
        x, y = _to_pair(read_image(ref_path), read_image(dist_path), ref_path, dist_path)
        row: dict[str, Any] = {"item": name, "mse": float((x.double() - y.double()).square().mean())}
        for metric in metrics:
            row[metric] = float(METRICS[metric](x, y)[0])
        rows.append(row)
    return QualityResult(rows=rows, pooled=_pool(rows, metrics), unpaired=unpaired)


def _pool(rows: list[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """Mean of each metric over items with a bootstrap interval over items; PSNR of the mean MSE."""
    pooled: dict[str, Any] = {"task": "quality", "num_samples": len(rows), "pooling": "mean over items"}
    for metric in metrics:
        values = torch.tensor([row[metric] for row in rows], dtype=torch.float64)
        finite = values[torch.isfinite(values)]
        interval = percentile_interval(bootstrap_means(finite)) if len(finite) > 1 else (float("nan"), float("nan"))
        pooled[metric] = {"value": float(finite.mean()) if len(finite) else float("inf"), "ci95": list(interval),
                          "higher_is_better": True}
    if "psnr" in metrics:
        mean_mse = float(np.mean([row["mse"] for row in rows]))
        pooled["psnr_pooled_mse"] = {"value": psnr_db_of_mse(mean_mse, 255.0), "ci95": None, "higher_is_better": True}
    return pooled
