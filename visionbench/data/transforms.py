"""Transform presets (``torchvision.transforms.v2``) and the dataset wrapper that applies them.

A preset has two parts:

* ``sample``: per-sample, possibly random transforms on ``uint8 [C, H, W]`` (augmentation, and the
  resize that makes images of different sizes stackable);
* ``batch``: deterministic transforms applied once to the stacked ``[B, C, H, W]`` batch
  (dtype conversion, channel adaptation, normalisation). Doing these per batch rather than per
  sample removes most of the input pipeline's cost on small in-memory images such as digits.

Randomness is seeded per batch from ``(seed, epoch, batch index)`` inside
:meth:`TransformedDataset.__getitems__`, so augmentation does not depend on the number of
workers, does not consume the global RNG, and is replayed exactly after a resume.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

Augment = Literal["auto", "none", "light", "standard", "randaugment", "trivialaugment", "autoaugment"]
AUGMENT_CHOICES: tuple[str, ...] = ("auto", "none", "light", "standard", "randaugment", "trivialaugment", "autoaugment")
# Learned/random policy recipes: the "standard" crop and flip, then the policy on uint8 images.
_POLICIES = {
    "randaugment": lambda: v2.RandAugment(),
    "trivialaugment": lambda: v2.TrivialAugmentWide(),
    "autoaugment": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET),
}

# Per-channel statistics used for normalisation; ImageNet's for colour images of unknown origin
# (the torchvision convention), dataset-specific ones where known.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_KNOWN_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
# "auto" picks per dataset kind: the digits reach >99% with no augmentation, so the fastest
# preset is the right default there.
_AUTO_AUGMENT = {"digits": "none", "mnist": "light", "cifar10": "standard", "folder": "standard"}


@dataclass(frozen=True)
class Preset:
    """A resolved transform preset.

    Attributes:
        sample: per-sample transform (``None`` when there is nothing to do per sample).
        batch: transform on the stacked ``[B, C, H, W]`` uint8 batch, returning float32.
        random: whether ``sample`` draws random numbers (seeding is skipped otherwise).
        name: the preset name, for logs and ``config.yaml``.
    """

    sample: v2.Transform | None
    batch: v2.Transform
    random: bool
    name: str


def resolve_augment(augment: str, dataset_kind: str) -> str:
    """Turn ``"auto"`` into the preset chosen for ``dataset_kind``."""
    if augment not in AUGMENT_CHOICES:
        raise ValueError(f"augment must be one of {AUGMENT_CHOICES}; got {augment!r}")
    return _AUTO_AUGMENT.get(dataset_kind, "standard") if augment == "auto" else augment


def normalization_stats(dataset_kind: str, train: Dataset, in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel: known values, else measured on in-memory training images."""
    if dataset_kind in _KNOWN_STATS:
        return _KNOWN_STATS[dataset_kind]
    images = getattr(train, "images", None)
    if isinstance(images, torch.Tensor):
        pixels = images.float().div_(255).transpose(0, 1).reshape(images.shape[1], -1)  # (C, N*H*W)
        std = pixels.std(dim=1).clamp_min(1e-3)
        return tuple(pixels.mean(dim=1).tolist()), tuple(std.tolist())
    return (IMAGENET_MEAN, IMAGENET_STD) if in_channels == 3 else ((0.5,), (0.25,))


def build_preset(
    augment: str, *, train: bool, image_size: tuple[int, int], native_size: tuple[int, int] | None,
    mean: Sequence[float], std: Sequence[float], resize_size: int | None = None,
) -> Preset:
    """Build the train or eval transforms.

    Args:
        augment: ``"none"``, ``"light"`` (small rotation/translation/scale, no flips: safe for
            digits and text), ``"standard"`` (random resized crop or padded crop, horizontal flip),
            or ``"randaugment"`` / ``"trivialaugment"`` / ``"autoaugment"`` (ImageNet policy):
            ``"standard"`` followed by that torchvision policy.
        train: augmentation is applied only for training.
        image_size: ``(H, W)`` the model gets.
        native_size: ``(H, W)`` of every image when all share one size (in-memory datasets), else
            ``None`` (folders: every image is resized).
        mean, std: normalisation statistics per channel.
        resize_size: pretrained weights' evaluation resize (short side, e.g. 256 for a 224 crop):
            when given, images that are not randomly cropped are resized to it and centre-cropped
            to ``image_size``, as the weights were evaluated (``weights.transforms()``).
    """
    size = list(image_size)
    sample: list[v2.Transform] = []
    same_size = native_size is not None and tuple(native_size) == tuple(image_size)
    if train and (augment == "standard" or augment in _POLICIES):
        if resize_size is None and native_size is not None and max(native_size) <= 64:
            # Small fixed-size images (CIFAR): the classic padded crop.
            sample.append(v2.RandomCrop(size, padding=max(1, size[0] // 8), padding_mode="reflect"))
        else:
            sample.append(v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True))
        sample.append(v2.RandomHorizontalFlip())
    elif resize_size is not None:  # the pretrained weights' own resize and centre crop
        sample += [v2.Resize(resize_size, antialias=True), v2.CenterCrop(size)]
    elif not same_size:
        if native_size is None:
            # Resize the short side a bit above the target, then centre crop (ImageNet-style eval).
            sample += [v2.Resize(int(round(min(size) * 1.14)), antialias=True), v2.CenterCrop(size)]
        else:
            sample.append(v2.Resize(size, antialias=True))
    if train and augment == "light":
        sample.append(v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)))
    if train and augment in _POLICIES:
        # Some policy ops (posterize, equalize) need uint8; a no-op on the usual uint8 samples.
        sample += [v2.ToDtype(torch.uint8, scale=True), _POLICIES[augment]()]
    batch = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    random = train and augment != "none"
    return Preset(
        sample=v2.Compose(sample) if sample else None, batch=v2.Compose(batch), random=random,
        name=augment if train else "eval",
    )


@contextlib.contextmanager
def seeded_batch(seed: int, epoch: int, batch_number: int) -> Iterator[None]:
    """Seed torch's global RNG for one batch's random transforms, and restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        # Knuth's multiplicative mix keeps seeds of nearby (epoch, batch) pairs unrelated.
        torch.manual_seed((seed * 1_000_003 + epoch * 65_537 + batch_number) % (2**63))
        yield


class TransformedDataset(Dataset):
    """Applies a :class:`Preset` to a raw dataset, one batch at a time.

    Indices come from :class:`visionbench.engine.sampling.EpochBatchSampler` as
    ``(epoch, batch_number, [indices])`` so the augmentation seed of each batch is a pure
    function of the run seed and the batch position. ``mix`` (training only) applies random
    erasing and MixUp/CutMix to the finished batch under the same seed; with MixUp or CutMix the
    labels come back as soft targets ``[B, K]``.
    """

    def __init__(self, base: Dataset, preset: Preset, *, seed: int,
                 mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        self.base = base
        self.preset = preset
        self.seed = seed
        self.mix = mix

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int, list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, batch_number, indices = key
        if not self.preset.random and self.mix is None:
            return self._load(indices)
        with seeded_batch(self.seed, epoch, batch_number):
            images, labels = self._load(indices)
            return self.mix(images, labels) if self.mix is not None else (images, labels)

    def _load(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        images = getattr(self.base, "images", None)
        if isinstance(images, torch.Tensor) and self.preset.sample is None:
            batch = images[indices]  # (B, C, H, W) uint8, one gather instead of B lookups
            labels = self.base.labels[indices]  # type: ignore[attr-defined]
        else:
            samples = [self.base[i] for i in indices]
            transform = self.preset.sample
            batch = torch.stack([transform(img) if transform else img for img, _ in samples])
            labels = [label for _, label in samples]
            # Multi-label samples carry a multi-hot tensor [L]; single-label ones an int.
            labels = torch.stack(labels) if isinstance(labels[0], torch.Tensor) else torch.tensor(labels, dtype=torch.int64)
        return self.preset.batch(batch), labels


def identity_collate(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate for :class:`TransformedDataset`: batches arrive already stacked."""
    return batch
