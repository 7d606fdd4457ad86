"""Predicted masks as files and pictures: palette PNGs of class indices in the Pascal VOC colours,
and masks blended over their image.

Used by segmentation's test outputs (:mod:`visionbench.engine.segment`) and by
``visionbench predict`` (:mod:`visionbench.engine.predict`); it imports neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from visionbench.data.safe_paths import inside


def palette(num_colours: int = 256) -> np.ndarray:
    """The Pascal VOC colour map, ``uint8 [num_colours, 3]`` (class 0 black, then distinct colours;
    the colours are bits of the class index spread over R, G and B, as in the VOC devkit)."""
    colours = np.zeros((num_colours, 3), dtype=np.uint8)
    for index in range(num_colours):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):  # the lowest 3 bits go to the highest colour bit, and so on
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colours[index] = (r, g, b)
    return colours


def write_mask_pngs(folder: Path, masks: list[tuple[str, torch.Tensor]]) -> None:
    """One palette PNG per mask (pixel = class index, shown in the VOC colours), named by the
    sample id with ``.png`` (folders in the id kept), readable by ``visionbench evaluate --task segment``."""
    from PIL import Image

    colours = palette().flatten().tolist()
    for name, mask in masks:
        path = inside(folder, name, f"sample {name!r}").with_suffix(".png")  # ids come from annotation files
        path.parent.mkdir(parents=True, exist_ok=True)
        array = mask.numpy()
        if array.size and int(array.max()) > 255:
            raise ValueError(f"mask {name} has class {int(array.max())}: a palette PNG holds classes 0..255 only.")
        image = Image.fromarray(array.astype(np.uint8), mode="P")
        image.putpalette(colours)
        image.save(path)


def colour_mask(mask: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``mask``'s classes in their VOC colours, uint8 ``[3, H, W]``; ignored pixels white."""
    colours = torch.from_numpy(palette())
    shown = colours[mask.clamp(0, 255).long()].permute(2, 0, 1)
    return torch.where(mask == ignore_index, torch.tensor(255, dtype=torch.uint8), shown)


def overlay(image: torch.Tensor, mask: torch.Tensor, ignore_index: int, alpha: float = 0.6) -> torch.Tensor:
    """``image`` (uint8 ``[3, H, W]``) in grey with ``mask``'s classes blended in their VOC
    colours (background and ignored pixels left grey): grey makes the class colours readable
    on any image."""
    from torchvision.transforms.v2 import functional as tvf

    grey = tvf.rgb_to_grayscale(image, num_output_channels=3).float()
    shown = (mask != 0) & (mask != ignore_index)
    blended = torch.where(shown, (1 - alpha) * grey + alpha * colour_mask(mask, ignore_index).float(), grey)
    return blended.round().to(torch.uint8)


__all__ = ["colour_mask", "overlay", "palette", "write_mask_pngs"]
