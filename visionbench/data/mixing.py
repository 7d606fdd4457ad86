"""Batch-level augmentation for classification: MixUp, CutMix and per-sample random erasing.

These act on the normalised float batch ``[B, C, H, W]`` after the preset's batch transform.
MixUp and CutMix turn the int64 labels ``[B]`` into soft targets ``[B, K]`` (class probabilities,
each row summing to 1), which the loss must accept (cross entropy, bce, mse, mae do).

Every random number comes from torch's global CPU RNG, which
:meth:`visionbench.data.transforms.TransformedDataset.finish` seeds per
``(seed, epoch, batch)``: the mixing of a batch is replayed exactly after a resume. The images may
be on any device (the draws stay on the CPU, so a GPU batch mixes as the same CPU batch would).

Each image is mixed with its neighbour in the batch (``roll(1)``, as torchvision's reference
scripts do): the batch is already shuffled, so this pairs random images without another draw.

Example:
    >>> mix = BatchMix(num_classes=10, mixup_alpha=0.2, cutmix_alpha=1.0)
    >>> images, targets = mix(torch.randn(8, 1, 8, 8), torch.arange(8))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from visionbench.data.batch_augment import draw_erasing, erase

Mode = Literal["mixup", "cutmix"]


def mixup(images: torch.Tensor, onehot: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp (Zhang et al. 2018): ``lam * x + (1 - lam) * x_rolled``, targets mixed alike.

    Args:
        images: float ``[B, C, H, W]``.
        onehot: float ``[B, K]`` targets (one-hot or already soft).
        lam: weight of each image itself, in ``[0, 1]``.

    Returns:
        The mixed images ``[B, C, H, W]`` and targets ``[B, K]``.
    """
    mixed = images.mul(lam).add_(images.roll(1, 0), alpha=1.0 - lam)
    return mixed, onehot.mul(lam).add_(onehot.roll(1, 0), alpha=1.0 - lam)


def cutmix_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """A random box ``(y1, y2, x1, x2)`` covering about ``1 - lam`` of the image (Yun et al. 2019).

    The centre is uniform over the image and the box is clipped at the borders, so the area the
    box really covers (what the targets must use) can be smaller than ``1 - lam``.
    """
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    ratio = (1.0 - lam) ** 0.5
    half_h, half_w = int(ratio * height / 2), int(ratio * width / 2)
    return max(cy - half_h, 0), min(cy + half_h, height), max(cx - half_w, 0), min(cx + half_w, width)


def cutmix(images: torch.Tensor, onehot: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """CutMix: paste a box of each rolled image; targets weighted by the pasted area.

    Returns:
        The mixed images, targets ``[B, K]``, and the effective ``lam`` (share of each image
        kept: ``1 - box area / image area``).
    """
    height, width = images.shape[-2:]
    y1, y2, x1, x2 = cutmix_box(height, width, lam)
    mixed = images.clone()
    mixed[..., y1:y2, x1:x2] = images.roll(1, 0)[..., y1:y2, x1:x2]
    kept = 1.0 - (y2 - y1) * (x2 - x1) / (height * width)
    return mixed, onehot.mul(kept).add_(onehot.roll(1, 0), alpha=1.0 - kept), kept


@dataclass(frozen=True)
class BatchMix:
    """Per-batch MixUp and/or CutMix, and per-sample random erasing, on normalised batches.

    Attributes:
        num_classes: K, the width of the soft targets.
        mixup_alpha: α of MixUp's ``Beta(α, α)``; 0 turns MixUp off.
        cutmix_alpha: α of CutMix's ``Beta(α, α)``; 0 turns CutMix off. With both on, each batch
            uses one of them with probability 0.5 (timm's and torchvision's recipes).
        erase_p: probability of blanking a rectangle of each image (to 0, the mean after
            normalisation), drawn as :class:`~torchvision.transforms.v2.RandomErasing` does
            (:func:`~visionbench.data.batch_augment.draw_erasing`), for the whole batch at once; 0
            turns it off.
    """

    num_classes: int
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    erase_p: float = 0.0

    @property
    def mixes(self) -> bool:
        """Whether targets become soft (MixUp or CutMix on)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def draw(self) -> tuple[Mode, float]:
        """Choose MixUp or CutMix for a batch and draw its ``lam ~ Beta(α, α)``."""
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            mode: Mode = "cutmix" if float(torch.rand(())) < 0.5 else "mixup"
        else:
            mode = "mixup" if self.mixup_alpha > 0 else "cutmix"
        alpha = self.mixup_alpha if mode == "mixup" else self.cutmix_alpha
        concentration = torch.tensor(float(alpha), dtype=torch.float64)
        lam = torch.distributions.Beta(concentration, concentration).sample()  # the global (seeded) RNG
        return mode, float(lam)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a float batch ``[B, C, H, W]`` with labels ``[B]``.

        Returns:
            The images, and labels ``[B]`` unchanged, or soft targets ``[B, K]`` float32 when
            MixUp or CutMix is on.
        """
        if self.erase_p > 0:
            boxes = draw_erasing(len(images), (images.shape[-2], images.shape[-1]), p=self.erase_p)
            images = erase(images, boxes, 0.0)  # one rectangle per image
        if not self.mixes:
            return images, labels
        onehot = F.one_hot(labels, self.num_classes).to(torch.float32)
        mode, lam = self.draw()
        if mode == "mixup":
            return mixup(images, onehot, lam)
        mixed, targets, _ = cutmix(images, onehot, lam)
        return mixed, targets
