"""``shapes``: seeded synthetic circles, squares and triangles for detection and segmentation.

Embedded (no file, no download): every image is a pure function of one integer seed, generated on
the fly by :func:`generate_shapes_image` in about a millisecond, so the dataset stores nothing and
the test split is the same in every run and on every machine (NumPy's ``default_rng`` is a stable
PCG64 stream).

An image (``size`` × ``size``, RGB) has a textured background (smooth colour noise + a linear
gradient + faint stripes + pixel noise, so the background is not separable by colour alone) and
1–8 shapes drawn one after the other, each a circle, a square or a triangle (squares and triangles
rotated), of extent 10–48 px at ``size=128`` (scaled with ``size``), with a random colour far from
the background's. Centres lie inside the image, so shapes near the edge are cut by the border;
later shapes occlude earlier ones.

Conventions (the same in every target):

* Pixel ``(x, y)`` covers ``[x, x + 1) × [y, y + 1)``; shapes are rasterised at pixel centres
  ``(x + 0.5, y + 0.5)``.
* ``labels``: ``0 = circle``, ``1 = square``, ``2 = triangle`` (:data:`CLASSES`). The COCO export
  uses ``category_id = label + 1``. The semantic mask uses ``0 = background`` and ``1 + label``.
* Instance masks are the *visible* pixels of each instance (disjoint: each pixel belongs to the
  topmost shape covering it).
* ``boxes`` are the tight ``XYXY`` boxes of the visible pixels in pixel-edge coordinates:
  ``x1 = min x``, ``x2 = max x + 1`` (so ``w = x2 - x1`` counts pixels, as pycocotools'
  ``mask.toBbox`` does, and a horizontal flip maps boxes exactly onto the flipped masks). Note
  that :func:`torchvision.ops.masks_to_boxes` returns ``x2 = max x`` instead.
* ``area`` is the visible pixel count.
* Shapes whose visible area falls below :func:`min_visible_area` (20 px at ``size=128``) are
  **removed from the image as well as from the targets**, so every shape pixel in the image belongs
  to a target instance (no unlabelled slivers that a detector would be punished for finding). The
  count is drawn in 1–8 before this removal, so an image may rarely end with fewer shapes (or none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from visionbench.data.splits import TaskData

CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
SEGMENTATION_CLASSES: tuple[str, ...] = ("background", *CLASSES)

# Generation parameters at the reference size of 128 px; lengths scale with size / 128.
_REFERENCE_SIZE = 128
_MIN_SHAPES, _MAX_SHAPES = 1, 8
_MIN_EXTENT, _MAX_EXTENT = 10.0, 48.0  # px: circle diameter, square side; triangles use _TRIANGLE_RADIUS
_MIN_AREA = 20  # px: visible area below which an instance is removed (scaled with (size / 128) ** 2)
_TRIANGLE_RADIUS = 0.7  # circumradius / extent: a triangle of side ~1.2 extent, area ~0.64 extent²
_BACKGROUND_GRID = 5  # control points per side of the smooth background noise
_NOISE_AMPLITUDE = 28.0  # intensity levels (0..255): peak of the smooth background noise
_GRADIENT_AMPLITUDE = 30.0  # levels: half the range of the linear gradient across the image
_STRIPE_AMPLITUDE = 10.0  # levels
_MIN_CONTRAST = 110.0  # Euclidean RGB distance between a shape's colour and the background base colour
_MIN_NEIGHBOUR_CONTRAST = 60.0  # ... and between the colours of shapes drawn one after the other
_COLOUR_TRIES = 32  # rejection-sampling attempts for a colour (then the farthest candidate is used)
# Seed layout of the splits: image i of a split with dataset seed s has seed s * 2**32 + offset + i,
# so the splits are disjoint for any sizes below 2**30 and each split does not depend on the others'
# sizes (the default test split is the same whatever num_train is).
_SPLIT_OFFSETS = {"train": 0, "val": 2**30, "test": 2**31}
_SPLIT_CAPACITY = 2**30
_DATASET_STRIDE = 2**32


@dataclass(frozen=True)
class ShapesSample:
    """One generated image with all its targets (plain tensors; the datasets wrap them).

    Attributes:
        image: ``uint8 [3, H, W]`` RGB.
        boxes: ``float32 [n, 4]`` tight ``XYXY`` boxes of the visible pixels, pixel-edge
            coordinates (``x2 = max x + 1``), ``0 <= x1 < x2 <= W``.
        labels: ``int64 [n]`` in ``{0: circle, 1: square, 2: triangle}``.
        masks: ``bool [n, H, W]`` visible pixels of each instance (pairwise disjoint).
        semantic: ``int64 [H, W]``, ``0`` = background, ``1 + label`` on shape pixels.
        area: ``float32 [n]`` visible pixel count (``masks.sum((1, 2))``).
        iscrowd: ``bool [n]``, all ``False``.
        seed: the seed the image was generated from.
    """

    image: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    semantic: torch.Tensor
    area: torch.Tensor
    iscrowd: torch.Tensor
    seed: int


def _check_seed(seed: Any, what: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"{what} must be an int; got {seed!r}. Pass a non-negative integer.")
    if seed < 0:
        raise ValueError(f"{what} must be >= 0; got {seed!r}. Pass a non-negative integer.")
    return int(seed)


def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 32:
        raise ValueError(f"size must be an int >= 32; got {size!r}. Use e.g. size=128 (the default).")
    return int(size)


def min_visible_area(size: int = _REFERENCE_SIZE) -> int:
    """Visible pixel count below which a shape is removed: 20 px at ``size=128``, scaled with the area.

    Args:
        size: image side in pixels.

    Returns:
        ``max(4, round(20 * (size / 128) ** 2))``.
    """
    return max(4, round(_MIN_AREA * (size / _REFERENCE_SIZE) ** 2))


def _interpolation_matrix(size: int, points: int) -> np.ndarray:
    """``float32 [size, points]``: linear interpolation of ``points`` control values evenly spread
    over ``[0, size]`` to the pixel centres (rows sum to 1)."""
    position = (np.arange(size, dtype=np.float32) + 0.5) * ((points - 1) / size)
    low = np.minimum(position.astype(np.int64), points - 2)
    frac = position - low
    weights = np.zeros((size, points), dtype=np.float32)
    rows = np.arange(size)
    weights[rows, low] = 1.0 - frac
    weights[rows, low + 1] = frac
    return weights


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Textured background ``float32 [3, H, W]`` (not yet clipped) and its base colour ``float32 [3]``."""
    base = rng.uniform(50.0, 205.0, size=3).astype(np.float32)
    # Smooth noise: bilinear upsampling of a small random grid per channel, B = A G Aᵀ.
    grid = rng.uniform(-_NOISE_AMPLITUDE, _NOISE_AMPLITUDE, size=(3, _BACKGROUND_GRID, _BACKGROUND_GRID))
    interp = _interpolation_matrix(size, _BACKGROUND_GRID)  # (H, G)
    smooth = interp @ grid.astype(np.float32) @ interp.T  # (3, H, W)
    centre = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5  # (-0.5, 0.5)
    angle, stripe_angle, phase = rng.uniform(0.0, 2.0 * math.pi, size=3)
    gradient_colour = rng.uniform(-1.0, 1.0, size=3).astype(np.float32) * np.float32(2.0 * _GRADIENT_AMPLITUDE)
    along = centre[None, :] * np.float32(math.cos(angle)) + centre[:, None] * np.float32(math.sin(angle))  # (H, W)
    cycles = rng.uniform(3.0, 12.0)  # stripes per image side
    across = centre[None, :] * np.float32(math.cos(stripe_angle)) + centre[:, None] * np.float32(math.sin(stripe_angle))
    stripes = np.sin(np.float32(2.0 * math.pi * cycles) * across + np.float32(phase)) * np.float32(_STRIPE_AMPLITUDE)
    texture = smooth + (along[None] * gradient_colour[:, None, None] + stripes[None])
    return texture + base[:, None, None], base


def _shape_colour(rng: np.random.Generator, background: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """A random colour ``float32 [3]`` far from the background base colour and from the previous shape's.

    Rejection sampling with a fixed number of draws keeps it deterministic and bounded; if no draw
    meets both contrasts the one farthest from the background is used.
    """
    candidates = rng.uniform(0.0, 255.0, size=(_COLOUR_TRIES, 3)).astype(np.float32)
    contrast = np.square(candidates - background).sum(axis=1)  # squared distances, compared to squared bounds
    ok = contrast >= _MIN_CONTRAST**2
    if previous is not None:
        ok &= np.square(candidates - previous).sum(axis=1) >= _MIN_NEIGHBOUR_CONTRAST**2
    return candidates[int(np.argmax(ok))] if ok.any() else candidates[int(np.argmax(contrast))]


def _rasterise(label: int, cx: float, cy: float, extent: float, angle: float, size: int) -> np.ndarray:
    """``bool [H, W]`` pixels whose centre lies inside the shape (computed only in its bounding window)."""
    radius = extent / 2.0 if label == 0 else extent / math.sqrt(2.0) if label == 1 else _TRIANGLE_RADIUS * extent
    x0, x1 = max(0, math.floor(cx - radius)), min(size, math.ceil(cx + radius) + 1)
    y0, y1 = max(0, math.floor(cy - radius)), min(size, math.ceil(cy + radius) + 1)
    mask = np.zeros((size, size), dtype=bool)
    px = np.arange(x0, x1, dtype=np.float32)[None, :] + np.float32(0.5 - cx)  # (1, w) offsets from the centre
    py = np.arange(y0, y1, dtype=np.float32)[:, None] + np.float32(0.5 - cy)  # (h, 1)
    if label == 0:
        inside = px * px + py * py <= np.float32(radius * radius)
    else:
        # Convex regular polygon: inside every edge's half-plane. Vertices k at angle + 2πk/n on the
        # circumcircle; the edge from vertex k to k+1 has outward normal at angle + π(2k+1)/n and lies
        # at the apothem radius·cos(π/n) from the centre.
        sides = 4 if label == 1 else 3
        apothem = np.float32(radius * math.cos(math.pi / sides))
        inside = np.ones((y1 - y0, x1 - x0), dtype=bool)
        for k in range(sides):
            normal = angle + math.pi * (2 * k + 1) / sides
            inside &= px * np.float32(math.cos(normal)) + py * np.float32(math.sin(normal)) <= apothem
    mask[y0:y1, x0:x1] = inside
    return mask


def _owners(masks: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``int64 [H, W]``: position in ``order`` of the topmost shape covering each pixel, ``-1`` where none.

    Shapes are painted in ``order`` (later ones on top), as a painter's algorithm would draw them.
    """
    owner = np.full(masks.shape[1:], -1, dtype=np.int64)
    for position, shape in enumerate(order):
        owner[masks[shape]] = position
    return owner


def generate_shapes_image(seed: int, *, size: int = 128) -> ShapesSample:
    """Generate one ``shapes`` image and its targets, a pure function of ``seed`` and ``size``.

    Args:
        seed: non-negative integer (any size); the same seed gives identical bytes on every machine.
        size: image side in pixels (``>= 32``); shape extents and the minimum area scale with it.

    Returns:
        A :class:`ShapesSample` (conventions in the module docstring): ``image uint8 [3, H, W]``,
        ``boxes float32 [n, 4]`` XYXY, ``labels int64 [n]``, ``masks bool [n, H, W]``,
        ``semantic int64 [H, W]``, ``area float32 [n]``, ``iscrowd bool [n]``, with ``0 <= n <= 8``.

    Raises:
        TypeError, ValueError: a seed that is not a non-negative int, or ``size < 32``.

    Example:
        >>> sample = generate_shapes_image(7)
        >>> sample.image.shape, sample.masks.shape[1:]
        (torch.Size([3, 128, 128]), torch.Size([128, 128]))
    """
    seed, size = _check_seed(seed), _check_size(size)
    rng = np.random.default_rng(seed)
    scale = size / _REFERENCE_SIZE
    count = int(rng.integers(_MIN_SHAPES, _MAX_SHAPES + 1))
    labels = rng.integers(0, len(CLASSES), size=count)
    extents = rng.uniform(_MIN_EXTENT, _MAX_EXTENT, size=count) * scale
    centres = rng.uniform(0.0, size, size=(count, 2))  # (x, y): inside the image, so edge shapes get cut
    angles = rng.uniform(0.0, 2.0 * math.pi, size=count)
    background, base = _background(rng, size)
    colours = np.empty((count, 3), dtype=np.float32)
    for k in range(count):
        colours[k] = _shape_colour(rng, base, colours[k - 1] if k else None)
    # Pixel noise uniform on the 16 levels -7.5..7.5 (std 4.6): random bytes are several times cheaper
    # than normal or float draws, and generation speed matters (3,000 images in a few seconds).
    noise = np.frombuffer(rng.bytes(3 * size * size), dtype=np.uint8).reshape(3, size, size) >> 4

    full = np.stack([_rasterise(int(labels[k]), *centres[k], extents[k], angles[k], size) for k in range(count)])
    owner = _owners(full, np.arange(count))
    visible = np.bincount(owner.ravel() + 1, minlength=count + 1)[1:]  # pixels per shape (index 0: none)
    # Removing a shape only uncovers the shapes below it, so one removal pass leaves every kept shape
    # at least as visible as before: no kept shape can fall under the threshold afterwards.
    kept = np.flatnonzero(visible >= min_visible_area(size))
    if len(kept) < count:
        owner = _owners(full, kept)
        visible = np.bincount(owner.ravel() + 1, minlength=len(kept) + 1)[1:]
    else:
        visible = visible[kept]

    # Paint by lookup: column 0 of the palette stands for "no shape" and is replaced by the background.
    palette = np.concatenate((np.zeros((3, 1), dtype=np.float32), colours[kept].T), axis=1)  # (3, n + 1)
    image = palette.take(owner + 1, axis=1)  # (3, H, W)
    np.copyto(image, background, where=(owner < 0)[None])
    image = np.clip(np.rint(image + (noise - np.float32(7.5))), 0, 255).astype(np.uint8)

    masks = owner[None, :, :] == np.arange(len(kept))[:, None, None]  # (n, H, W)
    kept_labels = labels[kept].astype(np.int64)
    semantic = np.concatenate(([0], 1 + kept_labels)).take(owner + 1)  # lookup: owner -1 -> background 0
    return ShapesSample(
        image=torch.from_numpy(image),
        boxes=torch.from_numpy(_mask_boxes(masks)),
        labels=torch.from_numpy(kept_labels),
        masks=torch.from_numpy(masks),
        semantic=torch.from_numpy(semantic),
        area=torch.from_numpy(visible.astype(np.float32)),
        iscrowd=torch.zeros(len(kept), dtype=torch.bool),
        seed=seed,
    )


def _mask_boxes(masks: np.ndarray) -> np.ndarray:
    """``float32 [n, 4]`` tight XYXY boxes of non-empty ``bool [n, H, W]`` masks, ``x2 = max x + 1``."""
    columns, rows = masks.any(axis=1), masks.any(axis=2)  # (n, W), (n, H)
    width, height = columns.shape[1], rows.shape[1]
    # argmax finds the first True; on the reversed axis it finds the last one.
    x1, y1 = columns.argmax(axis=1), rows.argmax(axis=1)
    x2, y2 = width - columns[:, ::-1].argmax(axis=1), height - rows[:, ::-1].argmax(axis=1)
    return np.stack((x1, y1, x2, y2), axis=1).astype(np.float32).reshape(-1, 4)


def split_seeds(split: Literal["train", "val", "test"], count: int, *, seed: int = 0) -> list[int]:
    """The image seeds of one split: ``seed * 2**32 + offset(split) + i`` for ``i < count``.

    Offsets are ``0`` (train), ``2**30`` (val) and ``2**31`` (test), so splits never share an image,
    datasets with different ``seed`` never share one, and a split is a prefix of the same split of
    any larger ``count`` (the test split does not change when ``num_train`` does).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        count: number of images, ``0 <= count < 2**30``.
        seed: dataset seed, ``>= 0``.
    """
    if split not in _SPLIT_OFFSETS:
        raise ValueError(f"split must be one of {tuple(_SPLIT_OFFSETS)}; got {split!r}. Use 'train', 'val' or 'test'.")
    seed = _check_seed(seed)
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or not 0 <= count < _SPLIT_CAPACITY:
        raise ValueError(f"num_{split} must be an int in [0, 2**30); got {count!r}. Pass a smaller count.")
    start = seed * _DATASET_STRIDE + _SPLIT_OFFSETS[split]
    return list(range(start, start + int(count)))


class _ShapesBase(Dataset):
    """Images generated on the fly from a list of seeds (nothing stored; ~1 ms per image)."""

    def __init__(self, seeds: Sequence[int], *, size: int = 128) -> None:
        self.seeds = [_check_seed(s, "each seed") for s in seeds]
        self.size = _check_size(size)
        self.ids = [f"shapes:{s}" for s in self.seeds]

    def __len__(self) -> int:
        return len(self.seeds)

    def sample(self, index: int) -> ShapesSample:
        """The raw :class:`ShapesSample` of item ``index`` (all targets, plain tensors)."""
        return generate_shapes_image(self.seeds[index], size=self.size)


class ShapesDetection(_ShapesBase):
    """``shapes`` in the detection contract (torchvision's, so ``transforms.v2`` moves targets along).

    Item ``i`` is ``(image, target)``: ``image`` a ``tv_tensors.Image`` ``uint8 [3, H, W]`` and
    ``target`` a dict with ``"boxes"`` (``tv_tensors.BoundingBoxes`` XYXY ``float32 [n, 4]``,
    ``canvas_size=(H, W)``), ``"labels"`` (``int64 [n]``, 0..2), ``"iscrowd"`` (``bool [n]``),
    ``"area"`` (``float32 [n]``), ``"masks"`` (``tv_tensors.Mask`` ``bool [n, H, W]``) and
    ``"image_id"`` (``int``, the index ``i``).

    Args:
        seeds: one image seed per item (see :func:`split_seeds`).
        size: image side in pixels.

    Example:
        >>> data = ShapesDetection(split_seeds("val", 4))
        >>> image, target = data[0]
    """

    classes: tuple[str, ...] = CLASSES

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
        sample = self.sample(index)
        canvas = (self.size, self.size)
        target = {
            "boxes": tv_tensors.BoundingBoxes(sample.boxes, format="XYXY", canvas_size=canvas),
            "labels": sample.labels,
            "iscrowd": sample.iscrowd,
            "area": sample.area,
            "masks": tv_tensors.Mask(sample.masks),
            "image_id": int(index),
        }
        return tv_tensors.Image(sample.image), target


class ShapesSegmentation(_ShapesBase):
    """``shapes`` in the segmentation contract: item ``i`` is ``(image, mask)``.

    ``image`` is a ``tv_tensors.Image`` ``uint8 [3, H, W]``; ``mask`` a ``tv_tensors.Mask``
    ``int64 [H, W]`` with ``0 = background``, ``1 = circle``, ``2 = square``, ``3 = triangle``
    (:data:`SEGMENTATION_CLASSES`); no pixel is ``255`` (the ignore index), since every shape pixel
    belongs to a labelled shape.

    Args:
        seeds: one image seed per item (see :func:`split_seeds`).
        size: image side in pixels.
    """

    classes: tuple[str, ...] = SEGMENTATION_CLASSES

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        sample = self.sample(index)
        return tv_tensors.Image(sample.image), tv_tensors.Mask(sample.semantic)


def load_shapes(
    *, task: Literal["detect", "segment"] = "detect", num_train: int = 2000, num_val: int = 250,
    num_test: int = 500, size: int = 128, seed: int = 0,
) -> TaskData:
    """The embedded ``shapes`` dataset: three disjoint seeded splits, fixed by default.

    Args:
        task: ``"detect"`` (:class:`ShapesDetection` items) or ``"segment"``
            (:class:`ShapesSegmentation` items).
        num_train, num_val, num_test: images per split (each ``< 2**30``).
        size: image side in pixels (``>= 32``).
        seed: dataset seed; the images of each split are :func:`split_seeds` of it, so the default
            test split is the same in every run whatever ``num_train`` and ``num_val`` are.

    Returns:
        A :class:`~visionbench.data.splits.TaskData` of :class:`ShapesDetection` or
        :class:`ShapesSegmentation` splits.

    Example:
        >>> data = load_shapes(num_train=100, num_val=10, num_test=20)
        >>> len(data.test), data.classes
        (20, ['circle', 'square', 'triangle'])
    """
    if task not in ("detect", "segment"):
        raise ValueError(f"task must be 'detect' or 'segment'; got {task!r}. The shapes dataset serves those two.")
    kind = ShapesDetection if task == "detect" else ShapesSegmentation
    train, val, test = (
        kind(split_seeds(split, count, seed=seed), size=size)
        for split, count in (("train", num_train), ("val", num_val), ("test", num_test))
    )
    return TaskData(
        train=train, val=val, test=test, classes=list(kind.classes), in_channels=3,
        image_size=(int(size), int(size)), name="shapes", task=task,
    )


def collate_detection(batch: Sequence[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Collate detection samples into ``(images, targets)`` lists (images may differ in size and
    targets in instance count, so nothing is stacked; torchvision's detectors take lists).

    Args:
        batch: ``(image, target)`` pairs.

    Returns:
        ``([image, …], [target, …])`` in batch order.
    """
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets


def mask_to_rle(mask: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """Uncompressed COCO RLE of a ``bool [H, W]`` mask.

    COCO run lengths walk the mask in column-major (Fortran) order and start with a run of zeros
    (possibly empty), alternating zeros and ones; ``size`` is ``[H, W]`` (pycocotools ``maskApi.c``).

    Returns:
        ``{"size": [H, W], "counts": [int, …]}``, readable by ``pycocotools.mask.frPyObjects``.
    """
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]  # the first run counts zeros
    height, width = np.asarray(mask).shape
    return {"size": [int(height), int(width)], "counts": [int(c) for c in counts]}


def shapes_coco_ground_truth(dataset: ShapesDetection, *, with_masks: bool = False) -> dict[str, Any]:
    """The ground truth of a :class:`ShapesDetection` as a COCO instances dict.

    Image ids are the dataset indices (the targets' ``"image_id"``), annotation ids ``1, 2, …`` (COCO
    evaluation treats id 0 specially), ``category_id = label + 1``, ``bbox`` the ``[x, y, w, h]`` of
    the XYXY box (``w = x2 - x1``), ``area`` the visible pixel count, ``iscrowd = 0``.

    Args:
        dataset: the split to export (every image is generated once).
        with_masks: also write each instance's ``"segmentation"`` as uncompressed RLE
            (:func:`mask_to_rle`), for mask evaluation.

    Returns:
        ``{"images", "annotations", "categories"}``, usable by ``pycocotools.coco.COCO`` (set
        ``.dataset`` and call ``createIndex()``) and by
        :func:`visionbench.metrics.detection.load_coco_ground_truth`.
    """
    if not isinstance(dataset, ShapesDetection):
        raise TypeError(f"dataset must be a ShapesDetection; got {type(dataset).__name__}. "
                        "Use load_shapes(task='detect').test (or .train/.val).")
    images, annotations = [], []
    for index in range(len(dataset)):
        sample = dataset.sample(index)
        images.append({"id": index, "width": dataset.size, "height": dataset.size,
                       "file_name": f"{dataset.ids[index]}.png"})
        for k in range(len(sample.labels)):
            x1, y1, x2, y2 = (float(v) for v in sample.boxes[k])
            record = {"id": len(annotations) + 1, "image_id": index, "category_id": int(sample.labels[k]) + 1,
                      "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(sample.area[k]), "iscrowd": 0}
            if with_masks:
                record["segmentation"] = mask_to_rle(sample.masks[k].numpy())
            annotations.append(record)
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}
