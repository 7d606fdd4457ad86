"""Detection and segmentation transform presets (``torchvision.transforms.v2``) and the batch
datasets the engine loads from.

Boxes and masks move with their image because every transform here is a ``transforms.v2``
transform applied to ``(tv_tensors.Image, target)`` together: masks are resampled with nearest
interpolation and padded with ``ignore_index``; boxes are clamped to the image and those left
degenerate (under 2 px on a side) are removed, and counted.

As for classification (:class:`visionbench.data.transforms.TransformedDataset`), a batch is
loaded by one ``__getitem__((epoch, batch_number, indices))`` call whose random transforms are
seeded from ``(seed, epoch, batch_number)``: augmentation does not depend on the number of loader
workers and is replayed exactly after a resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from tqdm import tqdm

from visionbench.data.transforms import seeded_batch

TASK_AUGMENT_CHOICES = ("auto", "none", "flip", "standard")
MIN_BOX_SIDE = 2.0  # px; smaller boxes left by a crop are removed (a detector cannot learn them)


def resolve_task_augment(augment: str) -> str:
    """``"auto"`` is ``"flip"``: the presets were tuned on ``shapes`` with flips, and flips never
    lose a box."""
    if augment not in TASK_AUGMENT_CHOICES:
        raise ValueError(f"augment must be one of {list(TASK_AUGMENT_CHOICES)}; got {augment!r}.")
    return "flip" if augment == "auto" else augment


def detection_transform(augment: str, *, train: bool, image_size: tuple[int, int] | None,
                        crop_size: tuple[int, int] | None = None) -> v2.Transform | None:
    """The per-image transform of a detection split.

    Args:
        augment: ``"none"``; ``"flip"`` (horizontal and vertical flips); ``"standard"`` (flips,
            scale jitter 0.7-1.3, a crop back to the size that keeps or drops boxes, colour jitter).
        train: augmentation is applied only for training.
        image_size: ``(H, W)`` every image is resized to, or ``None`` to keep the stored size.
        crop_size: the size ``"standard"`` crops back to when ``image_size`` is ``None`` (the
            stored size of data whose images all share one).
    """
    steps: list[v2.Transform] = []
    if image_size is not None:
        steps.append(v2.Resize(list(image_size), antialias=True))
    if not train:  # evaluation images are only resized; their targets stay as stored (see DetectionBatches)
        return steps[0] if steps else None
    if augment in ("flip", "standard"):
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    if augment == "standard":
        size = _crop_size(image_size or crop_size)
        steps += [v2.ScaleJitter(size, scale_range=(0.7, 1.3), antialias=True),
                  v2.RandomCrop(size, pad_if_needed=True),
                  v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03)]
    if not steps:
        return None
    # Clamp, then drop what the crop left degenerate; the labels follow their boxes.
    steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=MIN_BOX_SIDE)]
    return v2.Compose(steps)


def segmentation_transform(augment: str, *, train: bool, image_size: tuple[int, int] | None,
                           ignore_index: int, crop_size: tuple[int, int] | None = None) -> v2.Transform | None:
    """The per-image transform of a segmentation split (masks resampled with nearest
    interpolation, padding filled with ``ignore_index``).

    Args:
        augment: ``"none"``; ``"flip"`` (horizontal flip); ``"standard"`` (horizontal flip, scale
            jitter 0.75-1.25, a crop back to the size, colour jitter).
        train: augmentation is applied only for training.
        image_size: ``(H, W)`` every image is resized to, or ``None`` to keep the stored size.
        crop_size: the size ``"standard"`` crops back to when ``image_size`` is ``None``.
    """
    steps: list[v2.Transform] = []
    if image_size is not None:
        steps.append(v2.Resize(list(image_size), antialias=True))
    if train and augment in ("flip", "standard"):
        steps.append(v2.RandomHorizontalFlip())
    if train and augment == "standard":
        size = _crop_size(image_size or crop_size)
        steps += [v2.ScaleJitter(size, scale_range=(0.75, 1.25), antialias=True),
                  v2.RandomCrop(size, pad_if_needed=True,
                                fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}),
                  v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03)]
    return v2.Compose(steps) if steps else None


def _crop_size(size: tuple[int, int] | None) -> list[int]:
    if size is None:
        raise ValueError("augment 'standard' crops back to a fixed size; give --image-size for data whose images "
                         "differ in size, or use --augment flip.")
    return list(size)


class InMemory(Dataset):
    """Every sample of a generated dataset (``shapes``) held in memory, made once.

    ``images`` is ``uint8 [N, 3, H, W]`` (so loaders run in the main process: workers would cost
    more than they save) and ``targets`` the samples' targets (detection: dicts without the
    instance masks, which training does not use; segmentation: ``uint8`` masks when every value
    fits, else ``int64``).
    """

    def __init__(self, base: Dataset, *, what: str = "", show_progress: bool = False) -> None:
        self.ids = list(base.ids)  # type: ignore[attr-defined]
        items = [base[i] for i in tqdm(range(len(base)), desc=f"generating {what}", disable=not show_progress,  # type: ignore[arg-type]
                                       leave=False)]
        self.images = torch.stack([image.as_subclass(torch.Tensor) for image, _ in items]) if items else \
            torch.zeros(0, 3, 1, 1, dtype=torch.uint8)
        self.targets = [_compact(target) for _, target in items]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, Any]:
        target = self.targets[index]
        if isinstance(target, dict):
            canvas = tuple(self.images.shape[-2:])
            target = dict(target, boxes=tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=canvas))
        else:
            target = tv_tensors.Mask(target.long())
        return tv_tensors.Image(self.images[index]), target


def _compact(target: Any) -> Any:
    if isinstance(target, dict):
        return {k: (v.as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else v)
                for k, v in target.items() if k != "masks"}
    mask = target.as_subclass(torch.Tensor)
    return mask.to(torch.uint8) if mask.numel() and 0 <= int(mask.min()) and int(mask.max()) <= 255 else mask


def _load_seeded(key: tuple[int, int, list[int]], seed: int, load: Any) -> list[Any]:
    """``load(i)`` for the batch's indices, with the random transforms seeded by ``(seed, epoch,
    batch number)`` as for classification, and the global RNG left as it was."""
    epoch, batch_number, indices = key
    with seeded_batch(seed, epoch, batch_number):
        return [load(i) for i in indices]


@dataclass(frozen=True)
class DetectionBatch:
    """One loaded detection batch.

    Attributes:
        images: ``B`` float32 ``[3, H, W]`` images in ``[0, 1]`` (sizes may differ).
        targets: ``B`` dicts ``{"boxes": float32 [n, 4] XYXY, "labels": int64 [n], "image_id": int}``;
            on evaluation splits the targets as stored (not resized: predictions are mapped back to
            the stored image, see :func:`rescale_boxes`), with ``"iscrowd"``, ``"area"``,
            ``"difficult"`` where the data has them, and ``"image_size"`` ``(H, W)`` as stored.
        indices: positions of the images in their split.
        dropped_boxes: boxes removed by augmentation (cropped out or left degenerate).
    """

    images: list[torch.Tensor]
    targets: list[dict[str, Any]]
    indices: list[int]
    dropped_boxes: int


class DetectionBatches(Dataset):
    """A detection split loaded a batch at a time (see the module docstring)."""

    def __init__(self, base: Dataset, transform: v2.Transform | None, *, seed: int, train: bool) -> None:
        self.base, self.transform, self.seed, self.train = base, transform, seed, train

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int, list[int]]) -> DetectionBatch:
        items = _load_seeded(key, self.seed, self._load)
        indices = key[2]
        images = [image for image, _, _ in items]
        targets = [target for _, target, _ in items]
        return DetectionBatch(images, targets, list(indices), sum(dropped for _, _, dropped in items))

    def _load(self, index: int) -> tuple[torch.Tensor, dict[str, Any], int]:
        image, target = self.base[index]
        # Training needs boxes and labels only; SanitizeBoundingBoxes keeps labels with their boxes.
        keep = ("boxes", "labels") if self.train else ("boxes", "labels", "iscrowd", "area", "difficult")
        plain = {k: target[k] for k in keep if k in target}
        before = len(plain["boxes"])
        stored_size = tuple(image.shape[-2:])
        if self.transform is not None and self.train:
            image, plain = self.transform(image, plain)
        elif self.transform is not None:  # evaluation: the ground truth is measured as stored, never changed
            image = self.transform(image)
        out = {k: v.as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else v for k, v in plain.items()}
        out["boxes"] = out["boxes"].float()
        out["image_id"] = index
        if not self.train:
            out["image_size"] = stored_size
        return image.as_subclass(torch.Tensor).float().div_(255), out, before - len(out["boxes"])


def rescale_boxes(boxes: torch.Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> torch.Tensor:
    """XYXY ``boxes`` on an image of ``from_size`` ``(H, W)`` mapped onto the same image at ``to_size``."""
    if tuple(from_size) == tuple(to_size):
        return boxes
    scale = torch.tensor([to_size[1] / from_size[1], to_size[0] / from_size[0]] * 2, dtype=boxes.dtype)
    return boxes * scale.to(boxes.device)


@dataclass(frozen=True)
class SegmentationBatch:
    """One loaded segmentation batch.

    Attributes:
        images: float32 ``[B, 3, H, W]``, normalised.
        masks: int64 ``[B, H, W]`` when every mask has the batch's size, else a list of ``[h, w]``
            masks at their stored size (evaluation of images resized for the model: predictions
            are resized back to each mask).
        indices: positions of the images in their split.
    """

    images: torch.Tensor
    masks: torch.Tensor | list[torch.Tensor]
    indices: list[int]


class SegmentationBatches(Dataset):
    """A segmentation split loaded a batch at a time (see the module docstring).

    Args:
        base: ``(image, mask)`` samples.
        transform: from :func:`segmentation_transform`.
        mean, std: per-channel normalisation of the ``[0, 1]`` images.
        keep_masks: evaluation: keep the stored masks when ``transform`` resizes.
    """

    def __init__(self, base: Dataset, transform: v2.Transform | None, *, mean: Sequence[float], std: Sequence[float],
                 seed: int, keep_masks: bool = False) -> None:
        self.base, self.transform, self.seed, self.keep_masks = base, transform, seed, keep_masks
        self.normalize = v2.Normalize(list(mean), list(std))

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int, list[int]]) -> SegmentationBatch:
        items = _load_seeded(key, self.seed, self._load)
        indices = key[2]
        sizes = {tuple(image.shape[-2:]) for image, _, _ in items}
        if len(sizes) > 1:
            raise ValueError(f"images of one batch must share a size to be stacked; got {sorted(sizes)}. Give "
                             "--image-size to resize every image and mask.")
        images = self.normalize(torch.stack([image for image, _, _ in items]).float().div_(255))
        masks = [mask for _, mask, _ in items]
        stored = [original for _, _, original in items]
        if self.keep_masks and any(tuple(o.shape) != tuple(m.shape) for o, m in zip(stored, masks, strict=True)):
            return SegmentationBatch(images, stored, list(indices))
        return SegmentationBatch(images, torch.stack(masks), list(indices))

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, mask = self.base[index]
        original = mask.as_subclass(torch.Tensor).long()
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long(), original
