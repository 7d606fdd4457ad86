"""Batched augmentation of whole ``[B, C, H, W]`` batches, on whichever device the batch is.

Each operation is two pure functions: a ``draw_*`` that draws the batch's random parameters on the
CPU (from ``generator``, or torch's global CPU generator when ``None``, which
:func:`visionbench.data.transforms.seeded_batch` seeds per ``(seed, epoch, batch)``), and an
operation that applies given parameters to the batch with a few tensor operations, never a Python
loop over images. Drawing on the CPU makes the parameters, hence the result, the same on a CPU and
on a GPU, and keeps exact resume: a batch's draws depend only on its seed.

* random crop with reflect padding and horizontal flip (:func:`draw_windows`, :class:`CropSource`):
  the padding and the mirror images are made once for a whole in-memory dataset, then a batch is
  one gather that copies each image's window;
* affine: rotation, translation, scale (:func:`draw_affine`, :func:`affine_theta`,
  :func:`warp_affine`), nearest or bilinear, zero fill, on float images;
* colour jitter: brightness, contrast, saturation (:func:`draw_color_jitter`,
  :func:`color_jitter`), on float images in ``[0, 1]``;
* random erasing (:func:`draw_erasing`, :func:`erase`).

:class:`BatchRecipe` puts them together for the ``light`` and ``standard`` presets of in-memory
classification (see :func:`visionbench.data.transforms.build_preset`). The values differ from
``torchvision.transforms.v2``'s per-sample results (other draws, and the crop's reflection and the
flip are made once for the dataset), the distributions are the same.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------------- crop and flip


def reflect_pad(images: torch.Tensor, padding: int) -> torch.Tensor:
    """``images`` ``[N, C, H, W]`` (any dtype) padded by ``padding`` pixels on each side by
    reflection (the edge pixel is not repeated, as ``v2.RandomCrop(padding_mode="reflect")``)."""
    if padding <= 0:
        return images
    if padding >= min(images.shape[-2:]):
        raise ValueError(f"reflect padding must be smaller than the image side; got {padding} for images of "
                         f"{tuple(images.shape[-2:])}.")
    return F.pad(images, (padding, padding, padding, padding), mode="reflect")


def window_count(padding: int, flip: bool) -> int:
    """How many (crop position, flip) pairs an image has: ``(2 * padding + 1) ** 2``, twice with flips."""
    return (2 * padding + 1) ** 2 * (2 if flip else 1)


def draw_windows(batch_size: int, padding: int, flip: bool, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """One code ``int64 [B]`` per image, uniform over its :func:`window_count` crop positions and
    flips (a single draw, so the crop corner and the flip are independent and uniform):
    :func:`decode_windows` gives them."""
    return torch.randint(0, window_count(padding, flip), (batch_size,), generator=generator)


def decode_windows(codes: torch.Tensor, padding: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The crop corners ``int64 [B, 2]`` (row, column in the padded image, each in
    ``[0, 2 * padding]``) and flips ``bool [B]`` that :func:`draw_windows`' ``codes`` stand for."""
    sides = 2 * padding + 1
    return torch.stack([codes % sides, codes // sides % sides], 1), codes >= sides * sides


class CropSource:
    """A dataset's images made ready for batches of random crops and flips done as one gather.

    The images are padded once by reflection (``padding`` pixels a side) and followed by their
    mirror images when ``flip``, in one flat store. A window of a padded ``[H', W']`` plane that
    starts at row ``y``, column ``x`` has its ``H`` rows at the stride ``W'`` from its first pixel,
    so the ``H * W'`` bytes from there hold the whole window (each row's first ``W`` bytes): a batch
    is one ``index_select`` of ``B * C`` such runs from an overlapping view of the store, then the
    rows are cut to ``W``. That is a memory copy per image plane; advanced indexing computes an
    address per pixel (4x slower), a copy per window row was 2x slower on cold memory, and a flip
    pass over each batch cost as much as the crop. The mirror images cost memory instead: the store
    holds 2x the padded images.

    Args:
        images: ``[N, C, H, W]`` images of one size (uint8 for the usual datasets).
        padding: pixels of reflection padding a side (0: no crop).
        flip: whether :meth:`gather` takes flipped windows.
    """

    def __init__(self, images: torch.Tensor, padding: int, flip: bool) -> None:
        self.padding, self.flip = padding, flip
        self.size = (images.shape[-2], images.shape[-1])
        padded = reflect_pad(images, padding)
        self.channels, padded_h, self.padded_w = padded.shape[1], padded.shape[2], padded.shape[3]
        planes = [padded.reshape(-1), padded.flip(-1).reshape(-1)] if flip else [padded.reshape(-1)]
        # The run of the last plane's lowest window ends 2 * padding bytes after the store: a tail.
        self.store = torch.cat([*planes, padded.new_zeros(2 * padding)])
        self.image_stride = self.channels * padded_h * self.padded_w
        corners, flips = decode_windows(torch.arange(window_count(padding, flip)), padding)
        # A mirrored window starts as far from the right edge as the window from the left edge.
        columns = torch.where(flips, self.padded_w - self.size[1] - corners[:, 1], corners[:, 1])
        mirror = flips.long() * len(images) * self.image_stride  # the mirror images follow the images
        self.window_offsets = mirror + corners[:, 0] * self.padded_w + columns  # [windows]: where each starts
        self.plane_offsets = torch.arange(self.channels) * (padded_h * self.padded_w)  # [C]
        self.runs = self._runs()

    @property
    def device(self) -> torch.device:
        """Where the store is."""
        return self.store.device

    def nbytes(self) -> int:
        """Bytes of the store."""
        return self.store.numel() * self.store.element_size()

    def to(self, device: torch.device) -> CropSource:
        """This source with its tensors on ``device``."""
        moved = copy.copy(self)
        moved.store, moved.window_offsets, moved.plane_offsets = (
            self.store.to(device), self.window_offsets.to(device), self.plane_offsets.to(device))
        moved.runs = moved._runs()
        return moved

    def _runs(self) -> torch.Tensor:
        """An overlapping view of the store: ``runs[q] = store[q:q + H * W']``, every window a plane can have."""
        length = self.size[0] * self.padded_w
        return self.store.as_strided((self.store.numel() - length + 1, length), (1, 1))

    def gather(self, indices: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The window ``codes[b]`` (:func:`draw_windows`) of image ``indices[b]`` for each ``b``:
        ``[B, C, H, W]``, contiguous. ``indices`` and ``codes`` must be on :attr:`device`."""
        # Few, small operations: on 32-px images their overhead is as long as the copy itself.
        first = self.window_offsets.index_select(0, codes).add_(indices, alpha=self.image_stride)
        starts = (first[:, None] + self.plane_offsets).view(-1)
        planes = self.runs.index_select(0, starts).view(len(indices), self.channels, self.size[0], self.padded_w)
        return planes[..., :self.size[1]].contiguous()


# ----------------------------------------------------------------------------------- affine


def draw_affine(batch_size: int, *, degrees: float, translate: tuple[float, float], scale: tuple[float, float],
                size: tuple[int, int], generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random affine parameters, as ``v2.RandomAffine`` draws them per image.

    Returns:
        angles ``[B]`` in degrees, uniform in ``[-degrees, degrees]``; translations ``[B, 2]``
        ``(dx, dy)`` in whole pixels, uniform in ``±translate * (W, H)`` and rounded; scales
        ``[B]`` uniform in ``scale``.
    """
    uniform = torch.rand(batch_size, 4, generator=generator, dtype=torch.float64)
    angles = (uniform[:, 0] * 2 - 1) * degrees
    limits = torch.tensor([translate[0] * size[1], translate[1] * size[0]], dtype=torch.float64)
    shifts = torch.round((uniform[:, 1:3] * 2 - 1) * limits)
    scales = scale[0] + uniform[:, 3] * (scale[1] - scale[0])
    return angles, shifts, scales


def affine_theta(angles: torch.Tensor, shifts: torch.Tensor, scales: torch.Tensor, size: tuple[int, int]
                 ) -> torch.Tensor:
    """The ``[B, 2, 3]`` matrices of :func:`torch.nn.functional.affine_grid` (``align_corners=False``)
    for rotating each image by ``angles`` degrees (counter-clockwise on screen) and scaling it by
    ``scales`` about its centre, then shifting it by ``shifts`` ``(dx, dy)`` pixels.

    The grid maps each output pixel back to its input position, so the matrix is the inverse
    transform, computed in pixel units (correct for non-square images) and then expressed in the
    ``[-1, 1]`` coordinates of ``affine_grid``.
    """
    height, width = size
    radians = angles.double() * (math.pi / 180)
    cos, sin = torch.cos(radians) / scales.double(), torch.sin(radians) / scales.double()
    # Inverse of "rotate by a counter-clockwise on screen, scale by s" in pixels (y down): the
    # rotation is [[cos, sin], [-sin, cos]] there, its inverse over s is:
    inverse = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)  # [B, 2, 2] on (x, y)
    half = torch.tensor([width / 2, height / 2], dtype=torch.float64)
    linear = inverse * half[None, None, :] / half[None, :, None]  # in normalised units per axis
    offset = -(inverse @ shifts.double()[:, :, None])[:, :, 0] / half  # the shift undone, normalised
    return torch.cat([linear, offset[:, :, None]], 2).float()


def affine_grid(theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """:func:`torch.nn.functional.affine_grid` (``align_corners=False``) for ``[B, 2, 3]`` ``theta``
    and an output of ``size`` ``(H, W)``: ``[B, H, W, 2]``. Built by broadcasting the two pixel-centre
    axes, 10x faster on the CPU than torch's batched matrix product over every pixel."""
    height, width = size
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1  # [W]
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1  # [H]
    t = theta[:, :, :, None, None]  # [B, 2, 3, 1, 1]
    grid = t[:, :, 0] * xs + t[:, :, 1] * ys[:, None] + t[:, :, 2]  # [B, 2, H, W]
    return grid.permute(0, 2, 3, 1)


def warp_affine(images: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Float ``images`` ``[B, C, H, W]`` resampled by ``theta`` ``[B, 2, 3]`` (:func:`affine_theta`)
    with ``mode`` ``"bilinear"`` or ``"nearest"``; pixels from outside the image are 0. The same
    as ``v2.functional.affine`` image by image (nearest: but for pixels on a rounding tie)."""
    grid = affine_grid(theta.to(images.device, images.dtype), (images.shape[-2], images.shape[-1]))
    return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)


# ----------------------------------------------------------------------------------- colour


def draw_color_jitter(batch_size: int, *, brightness: float, contrast: float, saturation: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Factors ``[B, 3]`` (brightness, contrast, saturation), each uniform in ``[1 - x, 1 + x]``
    (clipped at 0), ``x`` the option's strength (0: factor 1)."""
    strength = torch.tensor([brightness, contrast, saturation])
    uniform = torch.rand(batch_size, 3, generator=generator)
    return (1 + (uniform * 2 - 1) * strength).clamp_min(0)


def _gray(images: torch.Tensor) -> torch.Tensor:
    """Luma ``[B, 1, H, W]`` of RGB images with torchvision's BT.601 weights (the image itself when grayscale)."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor([0.2989, 0.587, 0.114], device=images.device, dtype=images.dtype)
    return (images * weights[None, :, None, None]).sum(1, keepdim=True)


def color_jitter(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Float ``images`` ``[B, C, H, W]`` in ``[0, 1]`` with brightness, contrast and saturation
    changed by ``factors`` ``[B, 3]`` (:func:`draw_color_jitter`), in that order, clamped to
    ``[0, 1]`` after each (``v2.ColorJitter``'s definitions; its random order is not kept).
    Saturation does not apply to grayscale images."""
    factors = factors.to(images.device, images.dtype)[:, :, None, None, None]  # [B, 3, 1, 1, 1]
    out = (images * factors[:, 0]).clamp_(0, 1)
    mean = _gray(out).mean(dim=(1, 2, 3), keepdim=True)
    out = torch.lerp(mean.expand_as(out), out, factors[:, 1]).clamp_(0, 1)
    if images.shape[1] == 3:
        out = torch.lerp(_gray(out).expand_as(out), out, factors[:, 2]).clamp_(0, 1)
    return out


# ----------------------------------------------------------------------------------- erasing


def draw_erasing(batch_size: int, size: tuple[int, int], *, p: float, scale: tuple[float, float] = (0.02, 0.33),
                 ratio: tuple[float, float] = (0.3, 3.3), generator: torch.Generator | None = None) -> torch.Tensor:
    """Rectangles ``int64 [B, 4]`` ``(y1, y2, x1, x2)`` to erase, one per image, as
    ``v2.RandomErasing`` draws them: with probability ``p``, an area share uniform in ``scale`` and a
    log-uniform aspect ratio in ``ratio``, at a uniform position inside the image (a side longer
    than the image is cut to it, where v2 draws again); an empty rectangle otherwise."""
    height, width = size
    uniform = torch.rand(batch_size, 5, generator=generator, dtype=torch.float64)
    area = height * width * (scale[0] + uniform[:, 0] * (scale[1] - scale[0]))
    log_ratio = math.log(ratio[0]) + uniform[:, 1] * (math.log(ratio[1]) - math.log(ratio[0]))
    aspect = torch.exp(log_ratio)
    box_h = torch.round(torch.sqrt(area * aspect)).clamp(1, height)
    box_w = torch.round(torch.sqrt(area / aspect)).clamp(1, width)
    y1 = torch.floor(uniform[:, 2] * (height - box_h + 1))
    x1 = torch.floor(uniform[:, 3] * (width - box_w + 1))
    apply = uniform[:, 4] < p
    boxes = torch.stack([y1, y1 + box_h, x1, x1 + box_w], 1).long()
    return torch.where(apply[:, None], boxes, torch.zeros_like(boxes))


def erase(images: torch.Tensor, boxes: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """``images`` ``[B, C, H, W]`` with each image's rectangle ``boxes[b] = (y1, y2, x1, x2)`` set
    to ``value`` (an empty rectangle leaves the image as it is)."""
    boxes = boxes.to(images.device)
    rows = torch.arange(images.shape[-2], device=images.device)
    cols = torch.arange(images.shape[-1], device=images.device)
    inside_rows = (rows[None] >= boxes[:, 0:1]) & (rows[None] < boxes[:, 1:2])  # [B, H]
    inside_cols = (cols[None] >= boxes[:, 2:3]) & (cols[None] < boxes[:, 3:4])  # [B, W]
    mask = inside_rows[:, None, :, None] & inside_cols[:, None, None, :]  # [B, 1, H, W]
    return images.masked_fill(mask, value)


# ----------------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class BatchRecipe:
    """The random part of an in-memory classification preset, done on whole batches.

    Attributes:
        padding: random crop of the image's own size from the image padded by this many pixels
            (reflection); 0: no crop.
        flip: horizontal flip with probability 0.5.
        degrees, translate, scale: random affine (rotation in ``±degrees``, shift in
            ``±translate`` of the size, scale in ``scale``); ``degrees=None``: no affine.
    """

    padding: int = 0
    flip: bool = False
    degrees: float | None = None
    translate: tuple[float, float] = (0.0, 0.0)
    scale: tuple[float, float] = (1.0, 1.0)

    @property
    def warps(self) -> bool:
        """Whether the recipe has an affine step (done on float images, after :meth:`gather`)."""
        return self.degrees is not None

    def source(self, images: torch.Tensor) -> CropSource | torch.Tensor:
        """What :meth:`gather` indexes, made once from the dataset's ``[N, C, H, W]`` images: a
        :class:`CropSource` when the recipe crops or flips, else the images themselves."""
        return CropSource(images, self.padding, self.flip) if self.padding or self.flip else images

    def gather(self, source: CropSource | torch.Tensor, indices: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """The batch of ``indices`` (on the device of ``source``, a :meth:`source`), cropped and
        flipped: ``[B, C, H, W]`` of the images' size."""
        if isinstance(source, torch.Tensor):
            return source.index_select(0, indices)
        codes = draw_windows(len(indices), self.padding, self.flip, generator)
        return source.gather(indices, codes.to(source.device))

    def warp(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Float ``images`` ``[B, C, H, W]`` in ``[0, 1]`` through the random affine (unchanged
        without one)."""
        if self.degrees is None:
            return images
        size = (images.shape[-2], images.shape[-1])
        angles, shifts, scales = draw_affine(len(images), degrees=self.degrees, translate=self.translate,
                                             scale=self.scale, size=size, generator=generator)
        # Nearest, as the per-sample preset (v2.RandomAffine's default); 3x faster than bilinear.
        return warp_affine(images, affine_theta(angles, shifts, scales, size), mode="nearest")
