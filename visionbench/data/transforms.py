"""Transform presets (``torchvision.transforms.v2``) and the dataset wrapper that applies them.

A preset has two parts:

* ``sample``: per-sample, possibly random transforms on ``uint8 [C, H, W]`` (augmentation, and the
  resize that makes images of different sizes stackable);
* ``batch``: deterministic transforms applied once to the stacked ``[B, C, H, W]`` batch
  (dtype conversion, channel adaptation, normalisation). Doing these per batch rather than per
  sample removes most of the input pipeline's cost on small in-memory images such as digits.

Randomness is seeded per batch from ``(seed, epoch, batch index)`` inside
:meth:`TransformedDataset.__getitem__`, so augmentation does not depend on the number of
workers, does not consume the global RNG, and is replayed exactly after a resume.

In-memory datasets whose images all have the model's size (digits, MNIST, CIFAR) skip ``sample``
for ``light`` and ``standard``: their random part is a :class:`~visionbench.data.batch_augment.BatchRecipe`
done on whole batches (``Preset.augment``), on the device the images live on
(:meth:`TransformedDataset.to_device`). The policies (``randaugment``, ``trivialaugment``,
``autoaugment``) and images that must be resized stay per-sample ``transforms.v2``.

A batch is made in two stages, so that loader workers can do the first and the device the second
(:mod:`visionbench.engine.loaders`): :meth:`TransformedDataset.load` gives the uint8 batch (per-sample
transforms, or the batched crop and flip), :meth:`TransformedDataset.finish` the float batch
(affine, normalisation, random erasing, MixUp/CutMix). Each stage is seeded by its own stream of
the batch's seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from visionbench.data.batch_augment import BatchRecipe, CropSource

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
        random: whether ``sample`` or ``augment`` draws random numbers (seeding is skipped otherwise).
        name: the preset name, for logs and ``config.yaml``.
        augment: the random part done on whole uint8 batches instead of per sample (in-memory
            images of the model's size, ``light`` and ``standard``), else ``None``.
    """

    sample: v2.Transform | None
    batch: v2.Transform
    random: bool
    name: str
    augment: BatchRecipe | None = None


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
    batch = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    recipe = batch_recipe(augment, native_size, image_size) if train and resize_size is None else None
    if recipe is not None:  # in-memory images of the model's size: augmented per batch, nothing per sample
        return Preset(sample=None, batch=v2.Compose(batch), random=True, name=augment, augment=recipe)
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
    random = train and augment != "none"
    return Preset(
        sample=v2.Compose(sample) if sample else None, batch=v2.Compose(batch), random=random,
        name=augment if train else "eval",
    )


def batch_recipe(augment: str, native_size: tuple[int, int] | None, image_size: tuple[int, int]
                 ) -> BatchRecipe | None:
    """The batched form of ``light`` or ``standard`` for in-memory images of the model's size, or
    ``None`` where the preset stays per-sample (the policies, ``none``, images to resize, and
    ``standard`` on images above 64 px, whose random resized crop is per sample).

    ``light`` is the affine of the per-sample preset (rotation ±10°, shift ±10 %, scale 0.9-1.1);
    ``standard`` the padded crop (reflection, 1/8 of the side) and horizontal flip.
    """
    if native_size is None or tuple(native_size) != tuple(image_size):
        return None
    if augment == "light":
        return BatchRecipe(degrees=10.0, translate=(0.1, 0.1), scale=(0.9, 1.1))
    if augment == "standard" and max(native_size) <= 64:
        return BatchRecipe(padding=max(1, image_size[0] // 8), flip=True)
    return None


_STREAM_STRIDE = 0x9E3779B97F4A7C15  # the golden-ratio constant: streams of one batch are far apart


def batch_seed(seed: int, epoch: int, batch_number: int, stream: int = 0) -> int:
    """The seed of one batch's random draws: a pure function of the run seed, the batch position
    and the ``stream`` (0: :meth:`TransformedDataset.load`, 1: :meth:`TransformedDataset.finish`)."""
    # Knuth's multiplicative mix keeps seeds of nearby (epoch, batch) pairs unrelated.
    return (seed * 1_000_003 + epoch * 65_537 + batch_number + stream * _STREAM_STRIDE) % (2**63)


@contextlib.contextmanager
def seeded_batch(seed: int, epoch: int, batch_number: int, *, stream: int = 0) -> Iterator[None]:
    """Seed torch's global CPU RNG for one batch's random transforms, and restore it afterwards.

    Only the CPU generator is seeded (``torch.manual_seed`` would also reseed the GPU's, which
    dropout draws from and ``fork_rng(devices=[])`` does not restore); every draw of the
    augmentation is made on the CPU.
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(batch_seed(seed, epoch, batch_number, stream))
        yield


class RawBatch(NamedTuple):
    """A batch after :meth:`TransformedDataset.load`: uint8 images (or what per-sample transforms
    gave), labels, and the batch position that seeds :meth:`TransformedDataset.finish`. A named
    tuple, so a DataLoader pins its tensors."""

    epoch: int
    batch_number: int
    images: torch.Tensor
    labels: torch.Tensor


class TransformedDataset(Dataset):
    """Applies a :class:`Preset` to a raw dataset, one batch at a time.

    Indices come from :class:`visionbench.engine.sampling.EpochBatchSampler` as
    ``(epoch, batch_number, [indices])`` so the augmentation seed of each batch is a pure
    function of the run seed and the batch position. ``mix`` (training only) applies random
    erasing and MixUp/CutMix to the finished batch under the batch's seed; with MixUp or CutMix the
    labels come back as soft targets ``[B, K]``.

    ``dataset[key]`` is ``finish(load(key))``; the engine may run the two stages in different
    places (loader workers, then the device), with the same result.
    """

    def __init__(self, base: Dataset, preset: Preset, *, seed: int,
                 mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        self.base = base
        self.preset = preset
        self.seed = seed
        self.mix = mix
        self._store: tuple[CropSource | torch.Tensor, torch.Tensor] | None = None  # (what to gather from, labels)
        self._gathers = isinstance(getattr(base, "images", None), torch.Tensor) and preset.sample is None

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int, list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.finish(self.load(key))

    @property
    def gathers(self) -> bool:
        """Whether batches are gathered from in-memory images (no per-sample transform), so the
        images can live on the device (:meth:`to_device`)."""
        return self._gathers

    @property
    def device(self) -> torch.device:
        """Where gathered batches are made: the device of the stored images (the CPU until
        :meth:`to_device`, and for datasets that do not gather)."""
        return self._store[0].device if self._store is not None else torch.device("cpu")

    def stored_bytes(self) -> int:
        """Bytes that :meth:`to_device` moves: the images as gathered (padded and mirrored for a
        crop and flip) and the labels."""
        images, labels = self._source()
        size = images.nbytes() if isinstance(images, CropSource) else images.numel() * images.element_size()
        return size + labels.numel() * labels.element_size()

    def to_device(self, device: torch.device) -> None:
        """Keep the gathered images and labels on ``device`` (once; the batches are then made
        there). Only for datasets that :attr:`gathers`."""
        if not self.gathers:
            raise ValueError("only in-memory datasets without per-sample transforms can live on a device.")
        images, labels = self._source()
        self._store = (images.to(device), labels.to(device))  # CropSource.to moves its tables too

    def prepare(self) -> None:
        """Make the store batches are gathered from now (padded and mirrored for a crop and flip),
        rather than at the first batch: before loader workers start, so they share it."""
        if self.gathers:
            self._source()

    def _source(self) -> tuple[CropSource | torch.Tensor, torch.Tensor]:
        """The images batches are gathered from (padded once when the recipe crops) and the labels."""
        if self._store is None:
            images = self.base.images  # type: ignore[attr-defined]
            recipe = self.preset.augment
            self._store = (recipe.source(images) if recipe is not None else images, self.base.labels)  # type: ignore[attr-defined]
        return self._store

    def load(self, key: tuple[int, int, list[int]]) -> RawBatch:
        """First stage: the batch's images before the float conversion (uint8 for the usual
        datasets), where the images live, with its labels."""
        epoch, batch_number, indices = key
        if self.gathers:  # the recipe draws from its own generator: no global state to fork
            generator = (torch.Generator().manual_seed(batch_seed(self.seed, epoch, batch_number))
                         if self.preset.augment is not None else None)
            images, labels = self._gather(indices, generator)
        elif not self.preset.random:
            images, labels = self._load(indices)
        else:
            with seeded_batch(self.seed, epoch, batch_number):
                images, labels = self._load(indices)
        return RawBatch(epoch, batch_number, images, labels)

    def finish(self, raw: RawBatch, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Second stage, on ``device`` (default: where ``raw`` is): the float32 normalised batch,
        after the recipe's affine, random erasing and MixUp/CutMix."""
        images, labels = raw.images, raw.labels
        if device is not None:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        recipe = self.preset.augment
        warps = recipe is not None and recipe.warps
        if not warps and self.mix is None:
            return self.preset.batch(images), labels
        with seeded_batch(self.seed, raw.epoch, raw.batch_number, stream=1):
            if warps:  # on [0, 1] floats, so the fill is black as in the per-sample preset
                images = recipe.warp(images.to(torch.float32).div_(255))  # type: ignore[union-attr]
            images = self.preset.batch(images)  # a float32 input is only normalised
            return self.mix(images, labels) if self.mix is not None else (images, labels)

    def _gather(self, indices: list[int], generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch gathered from the in-memory images where they live (see :attr:`gathers`)."""
        images, labels = self._source()
        rows = torch.as_tensor(indices, dtype=torch.int64).to(labels.device, non_blocking=True)
        recipe = self.preset.augment
        # (B, C, H, W) uint8, one gather instead of B lookups (index_select: a copy per image, where
        # images[rows] computes an address per pixel); cropped and flipped in it by a recipe
        batch = recipe.gather(images, rows, generator) if recipe is not None else images.index_select(0, rows)
        return batch, labels.index_select(0, rows)

    def _load(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch through the per-sample transforms, stacked."""
        samples = [self.base[i] for i in indices]
        transform = self.preset.sample
        batch = torch.stack([transform(img) if transform else img for img, _ in samples])
        labels = [label for _, label in samples]
        # Multi-label samples carry a multi-hot tensor [L]; single-label ones an int.
        labels = torch.stack(labels) if isinstance(labels[0], torch.Tensor) else torch.tensor(labels, dtype=torch.int64)
        return batch, labels


def identity_collate(batch: Any) -> Any:
    """Collate for :class:`TransformedDataset`: batches arrive already stacked."""
    return batch
