"""Heatmap overlays and titled panels as PNG files.

A panel is the model's input (de-normalised back to pixels, so it shows exactly what the model
saw: after the run's resize and crop) followed by one overlay per explained target, each the
heatmap in matplotlib's ``jet`` colours blended half and half over the image, captioned, under one
title line (``pred 7 (p=0.93), true 3``). Tiles are scaled so their long side is ``side`` pixels:
small inputs (8×8 digits) are enlarged with nearest-neighbour pixels, so the image stays sharp,
while the heatmap is interpolated bilinearly. Text is drawn with Pillow (no matplotlib figure), so
a panel costs a few milliseconds.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

COLORMAP = "jet"
ALPHA = 0.5  # weight of the heatmap colours in the blend
GAP = 4  # px between tiles
FONT_SIZE = 12


def to_display_image(inputs: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    """A normalised model input ``[C, H, W]`` (C = 1 or 3) as ``uint8 [H, W, 3]`` pixels:
    ``x * std + mean`` per channel, clipped to ``[0, 1]``; grey repeated to RGB."""
    x = inputs.detach().double().cpu()
    if mean is not None and std is not None:
        x = x * torch.tensor(std, dtype=x.dtype).view(-1, 1, 1) + torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    x = x.clamp(0, 1).mul(255).round().to(torch.uint8)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.permute(1, 2, 0).contiguous().numpy()


def colorize(heat: np.ndarray) -> np.ndarray:
    """A map of values in ``[0, 1]`` ``[H, W]`` in :data:`COLORMAP` colours, ``uint8 [H, W, 3]``."""
    from matplotlib import colormaps

    rgba = colormaps[COLORMAP](np.clip(heat, 0.0, 1.0))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def blend(image: np.ndarray, heat: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """``image`` ``uint8 [H, W, 3]`` with the coloured ``heat`` ``[H, W]`` laid over it."""
    mixed = (1 - alpha) * image.astype(np.float64) + alpha * colorize(heat).astype(np.float64)
    return mixed.round().clip(0, 255).astype(np.uint8)


def tile_size(height: int, width: int, side: int) -> tuple[int, int]:
    """``(H, W)`` scaled so that the long side is ``side`` pixels (at least 1 px each)."""
    scale = side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _scaled_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size``: nearest when enlarging (sharp pixels), bilinear when shrinking."""
    if image.shape[:2] == size:
        return image
    enlarge = size[0] >= image.shape[0]
    resample = Image.NEAREST if enlarge else Image.BILINEAR  # (Image.Resampling needs Pillow 9.1)
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), resample))


def _scaled_heat(heat: Tensor, size: tuple[int, int]) -> np.ndarray:
    """``heat`` ``[H, W]`` resized bilinearly to ``size``, as float64 numpy."""
    from torch.nn import functional as F

    heat = heat.detach().double().cpu()
    if tuple(heat.shape) != size:
        heat = F.interpolate(heat[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return heat.numpy()


def overlay_tiles(image: np.ndarray, heats: Sequence[Tensor], side: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The image tile and one overlay tile per heatmap (``[H, W]`` at the image's size, values in
    ``[0, 1]``), all scaled to a long side of ``side`` pixels."""
    size = tile_size(image.shape[0], image.shape[1], side)
    shown = _scaled_image(image, size)
    return shown, [blend(shown, _scaled_heat(heat, size)) for heat in heats]


@functools.lru_cache(maxsize=4)
def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font (loaded once: a panel must cost milliseconds)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font only
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: object) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return int(right - left)


def panel(tiles: Sequence[np.ndarray], captions: Sequence[str], title: str) -> Image.Image:
    """Tiles ``uint8 [H, W, 3]`` side by side on white, each captioned below, under ``title``."""
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = FONT_SIZE + 6
    height = max(t.shape[0] for t in tiles)
    widths = [max(t.shape[1], _text_width(probe, c, font) + GAP) for t, c in zip(tiles, captions, strict=True)]
    width = max(sum(widths) + GAP * (len(tiles) + 1), _text_width(probe, title, font) + 2 * GAP)
    canvas = Image.new("RGB", (width, line + height + line + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, 3), title, fill="black", font=font)
    x = GAP
    for tile, caption, slot in zip(tiles, captions, widths, strict=True):
        canvas.paste(Image.fromarray(tile), (x + (slot - tile.shape[1]) // 2, line))
        draw.text((x, line + height + 3), caption, fill="black", font=font)
        x += slot + GAP
    return canvas


def write_png(image: Image.Image, path: Path) -> Path:
    """Save ``image`` as PNG at ``path`` (folders created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


__all__ = ["blend", "colorize", "overlay_tiles", "panel", "tile_size", "to_display_image", "write_png"]
