"""Small detection and segmentation datasets written as files (COCO JSON + PNGs, and an
images/ + masks/ folder) from the ``shapes`` generator, for engine tests that must run in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from visionbench.data.shapes import CLASSES, SEGMENTATION_CLASSES, generate_shapes_image


def write_coco_shapes(root: Path, count: int = 60, size: int = 64, seed: int = 100) -> Path:
    """``count`` shapes images as PNGs and their boxes as a COCO instances file; returns the JSON path."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        sample = generate_shapes_image(seed + i, size=size)
        name = f"img{i:03d}.png"
        Image.fromarray(sample.image.permute(1, 2, 0).numpy()).save(root / "images" / name)
        images.append({"id": i + 1, "file_name": name, "height": size, "width": size})
        for box, label, area in zip(sample.boxes.tolist(), sample.labels.tolist(), sample.area.tolist(), strict=True):
            x1, y1, x2, y2 = box
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(area), "iscrowd": 0})
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)]
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def write_mask_folder(root: Path, count: int = 48, size: int = 64, seed: int = 300) -> Path:
    """``count`` shapes images and their class-index PNG masks in ``root/images`` and ``root/masks``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sample = generate_shapes_image(seed + i, size=size)
        Image.fromarray(sample.image.permute(1, 2, 0).numpy()).save(root / "images" / f"s{i:03d}.png")
        Image.fromarray(sample.semantic.numpy().astype(np.uint8)).save(root / "masks" / f"s{i:03d}.png")
    (root / "classes.txt").write_text("\n".join(SEGMENTATION_CLASSES) + "\n")
    return root
