"""Registered segmenters: torchvision's (random init) behind one wrapper, and a small :class:`UNet`.

**One interface for every segmenter:** ``model(images) -> logits``, with ``images`` a float
tensor ``[N, C, H, W]`` (the dataset's uint8 scaled to ``[0, 1]``, then normalised as the
training recipe chooses) and ``logits`` a float tensor ``[N, K, H, W]`` of unnormalised class
scores at the *input* resolution (class ``k`` = mask value ``k``; ``0`` is the background class
of ``shapes``). The prediction is ``logits.argmax(1)``; the losses of
:mod:`visionbench.losses.segmentation` and :class:`~visionbench.metrics.segmentation.SegmentationAccumulator`
take the logits directly.

**torchvision models** (``fcn_resnet50``, ``deeplabv3_resnet50``, ``deeplabv3_mobilenet_v3_large``,
``lraspp_mobilenet_v3_large``) return ``{"out": [N, K, H, W]}`` (plus ``"aux"`` when built with
``aux_loss=True``); they already upsample to the input size (``F.interpolate(...,
size=input_shape, mode="bilinear", align_corners=False)`` at the end of
``_SimpleSegmentationModel.forward`` and ``LRASPP.forward``). :class:`TorchvisionSegmenter`
unwraps ``"out"``; the auxiliary heads are off (``aux_loss=False``), so no unused parameters sit
in the model (DDP would complain about them). Weights are never downloaded
(``weights=None, weights_backbone=None``); a local state dict can be loaded afterwards.

**UNet** (Ronneberger et al. 2015, "U-Net", figure 1, with BatchNorm, ``padding=1`` convolutions so
that the output keeps the input's size, and bilinear or transposed-convolution upsampling). Inputs
whose sides are not multiples of the network stride ``2 ** (len(widths) - 1)`` are zero-padded on
the bottom/right inside ``forward`` and the logits cropped back, so any ``H, W >= 1`` works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision.models.segmentation as tvs
from torch import Tensor, nn

from visionbench.models.classifiers import replace_first_conv

__all__ = ["SEGMENTERS", "TorchvisionSegmenter", "UNet", "segmenter_builder", "unet_small"]

Upsample = Literal["bilinear", "transpose"]


# --------------------------------------------------------------------------------------------
# torchvision segmenters
# --------------------------------------------------------------------------------------------


def _check_batch(images: Tensor, in_channels: int) -> None:
    """``images`` must be a float ``[N, in_channels, H, W]`` tensor."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor [N, C, H, W]; got {type(images).__name__}. "
                        "Stack the images with torch.stack.")
    if images.dim() != 4 or images.shape[1] != in_channels:
        raise ValueError(f"images must have shape [N, {in_channels}, H, W]; got {tuple(images.shape)!r}. "
                         "Add a batch axis with images.unsqueeze(0) or check the channel count.")
    if not images.is_floating_point():
        raise TypeError(f"images must be a float tensor; got dtype {images.dtype}. "
                        "Convert uint8 images with images.float() / 255.")


class TorchvisionSegmenter(nn.Module):
    """A torchvision segmentation model behind the plain ``images -> logits`` interface.

    Args:
        model: a torchvision segmentation model returning ``{"out": Tensor[N, K, H, W], ...}``.
        in_channels: channels of the input images (checked in ``forward``).
    """

    def __init__(self, model: nn.Module, in_channels: int = 3) -> None:
        super().__init__()
        self.model = model
        self.in_channels = in_channels

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``float [N, K, H, W]`` at the input size for float ``images [N, C, H, W]``."""
        _check_batch(images, self.in_channels)
        return self.model(images)["out"]


def _torchvision_segmenter(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int = 3, image_size: int = 128) -> nn.Module:
        # aux_loss=False: lraspp pops it from **kwargs and raises only when it is True.
        model = builder(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
        replace_first_conv(model, in_channels)
        return TorchvisionSegmenter(model, in_channels)

    build.__name__ = builder.__name__
    build.__doc__ = (f"torchvision's ``{builder.__name__}`` (random init, no auxiliary head) for any classes and "
                     "channels; ``image_size`` is accepted for the registry's builder signature and not needed.")
    return build


# --------------------------------------------------------------------------------------------
# UNet
# --------------------------------------------------------------------------------------------


def _double_conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """(3x3 conv → BN → ReLU) × 2, ``padding=1`` so the size is kept (U-Net's convs are unpadded);
    the first conv may stride (the UNet's stem)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _Up(nn.Module):
    """Decoder step: upsample ×2, concatenate the skip connection, double conv."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, upsample: Upsample) -> None:
        super().__init__()
        if upsample == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, in_channels, 2, stride=2)
        else:
            # align_corners=False: the half-pixel convention of F.interpolate's default.
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = _double_conv(in_channels + skip_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))  # (N, C_in + C_skip, H, W) -> (N, C_out, H, W)


class UNet(nn.Module):
    """A small U-Net: ``L = len(widths)`` levels, max-pool down, bilinear (or transposed) up.

    Level ``i`` works at ``1 / (stem_stride * 2**i)`` of the input size with ``widths[i]``
    channels; the deepest level is the bottleneck. With ``stem_stride > 1`` the first convolution
    strides (as ResNet's and MobileNet's stems do) and the logits are upsampled bilinearly to the
    input size at the end, as torchvision's segmentation heads do: on a CPU the full-resolution
    level costs as much as all the others together, and class boundaries interpolated from
    half-resolution logits stay within about a pixel. The output has the input's size at every
    ``H, W >= 1`` (padded to a multiple of :attr:`stride` internally, then cropped).

    Args:
        in_channels: input channels (3 for RGB).
        num_classes: K, the number of output channels (background included).
        widths: channels per level, from the top level down to the bottleneck (``>= 2`` levels).
        upsample: decoder upsampling, ``"bilinear"`` (parameter-free) or ``"transpose"`` (learned
            2x2 stride-2 transposed conv).
        stem_stride: stride of the first convolution, ``1`` (the classic U-Net), ``2`` or ``4``.

    Example:
        >>> model = UNet(3, 4)
        >>> model(torch.rand(2, 3, 66, 70)).shape
        torch.Size([2, 4, 66, 70])
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 4, *, widths: Sequence[int] = (16, 32, 64, 128),
                 upsample: Upsample = "bilinear", stem_stride: Literal[1, 2, 4] = 1) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}. Pass e.g. 3 channels, 4 classes.")
        widths = tuple(widths)
        if len(widths) < 2 or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
            raise ValueError(f"widths must hold >= 2 positive ints (channels per level); got {widths!r}. "
                             "Use e.g. (16, 32, 64, 128).")
        if upsample not in ("bilinear", "transpose"):
            raise ValueError(f"upsample must be 'bilinear' or 'transpose'; got {upsample!r}.")
        if stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4; got {stem_stride!r}. Use 1 for full-resolution features.")
        self.in_channels = in_channels
        self.stem_stride = stem_stride
        self.stride = stem_stride * 2 ** (len(widths) - 1)  # inputs are padded to a multiple of this
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0], stride=stem_stride)])
        self.down.extend(_double_conv(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.up = nn.ModuleList(
            # The decoder step into level i gets level i + 1's output (widths[i + 1] channels).
            _Up(widths[i + 1], widths[i], widths[i], upsample) for i in reversed(range(len(widths) - 1))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``float [N, K, H, W]`` for float ``images [N, C, H, W]`` (any ``H, W >= 1``)."""
        _check_batch(images, self.in_channels)
        h, w = images.shape[-2:]
        pad_h, pad_w = -h % self.stride, -w % self.stride
        x = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))  # (N, widths[i], H', W') at 1 / (stem * 2**i)
            skips.append(x)
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        logits = self.head(x)  # (N, K, H' / stem, W' / stem)
        if self.stem_stride > 1:
            logits = F.interpolate(logits, scale_factor=self.stem_stride, mode="bilinear", align_corners=False)
        return logits[..., :h, :w]


def unet_small(*, num_classes: int, in_channels: int = 3, image_size: int = 128) -> nn.Module:
    """:class:`UNet` with the configuration tuned on ``shapes`` (``benchmarks/train_shapes_segmenter.py``):
    five levels of 8–128 channels after a stride-2 stem (~0.49M parameters, network stride 32),
    bilinear upsampling. On 2 CPU threads this trained faster to a higher test mIoU than four levels of
    16–128 channels at stride 1, 2 or 4: the narrow top level keeps the 64×64 features cheap and the
    extra level gives the depth that tells circles, squares and triangles apart. Any input size
    (``image_size`` is accepted for the registry's builder signature and not needed)."""
    return UNet(in_channels, num_classes, widths=(8, 16, 32, 64, 128), upsample="bilinear", stem_stride=2)


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------

SEGMENTERS: dict[str, Callable[..., nn.Module]] = {
    "fcn_resnet50": _torchvision_segmenter(tvs.fcn_resnet50),
    "deeplabv3_resnet50": _torchvision_segmenter(tvs.deeplabv3_resnet50),
    "deeplabv3_mobilenet_v3_large": _torchvision_segmenter(tvs.deeplabv3_mobilenet_v3_large),
    "lraspp_mobilenet_v3_large": _torchvision_segmenter(tvs.lraspp_mobilenet_v3_large),
    "unet_small": unet_small,
}
"""Name → builder ``(*, num_classes, in_channels=3, image_size) -> nn.Module`` (interface above)."""


def segmenter_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of segmenter ``name``: the catalogue's factory for segmenters (names, descriptions
    and sizes live in :mod:`visionbench.models.catalog`, so listing them does not import this module)."""
    return SEGMENTERS[name]
