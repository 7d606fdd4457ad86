"""Learned full-reference quality from weights the user provides: LPIPS (VGG variant).

LPIPS (Zhang, Isola, Efros, Shechtman & Wang, "The unreasonable effectiveness of deep features as a
perceptual metric", CVPR 2018): both images, scaled to [-1, 1] and shifted/scaled per channel
(shift ``(-0.030, -0.088, -0.188)``, scale ``(0.458, 0.448, 0.450)``), go through VGG-16's
convolutional layers; at ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3`` the activations are
normalised to unit length over channels (``x / (‖x‖ + 1e-10)``), squared differences are weighted
per channel by the learned 1×1 "lin" layers, averaged over the image and summed over the five
layers. Lower is better; identical images score 0.

**Weights are never downloaded**: neither ImageNet's VGG-16 nor the LPIPS "lin" layers are shipped
(they are other projects' releases with their own terms), so :func:`load_lpips` reads one local file
the user provides, ``.pt``/``.pth`` (``torch.load`` with ``weights_only=True``) or
``.safetensors``, holding the whole network in the ``lpips`` package's names, e.g. written with
``torch.save(lpips.LPIPS(net="vgg").state_dict(), "lpips_vgg.pt")``:
``net.slice{1..5}.{i}.weight/bias`` (VGG-16's ``features.{i}``, i = 0, 2, 5, 7, 10, 12, 14, 17, 19,
21, 24, 26, 28) and ``lin{0..4}.model.1.weight``. torchvision's ``features.{i}.*`` names for the
backbone and ``lins.{k}.model.1.weight`` for the lin layers are accepted too, so a file can also be
assembled from torchvision's ``vgg16`` state dict and the ``lpips`` package's ``vgg.pth``.

DISTS is not implemented (its weights would come the same way; not done yet).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from visionbench.quality.full_reference import _check_pair

Reduction = Literal["none", "mean"]

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_EPS = 1e-10
# VGG-16 "features": 3x3 convolutions (index, in, out); ReLU after each, 2x2 max pooling at 4, 9, 16, 23.
VGG16_CONVS = ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
               (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512))
VGG16_POOLS = (4, 9, 16, 23)
# The LPIPS taps: features[0:4] (relu1_2), [4:9] (relu2_2), [9:16] (relu3_3), [16:23] (relu4_3), [23:30] (relu5_3).
LPIPS_SLICES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))
LPIPS_CHANNELS = (64, 128, 256, 512, 512)


class _Scaling(nn.Module):
    """LPIPS's input shift and scale, as buffers (``scaling_layer.shift``/``.scale`` in the lpips package)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class _Lin(nn.Module):
    """One layer's learned channel weights: ``model`` = Dropout (identity in eval) then a bias-free 1x1 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class _Vgg16Slices(nn.Module):
    """VGG-16's convolutional part cut at the five LPIPS taps, with the lpips package's module names."""

    def __init__(self) -> None:
        super().__init__()
        convs = {index: (cin, cout) for index, cin, cout in VGG16_CONVS}
        for number, (start, stop) in enumerate(LPIPS_SLICES, start=1):
            block = nn.Sequential()
            for index in range(start, stop):
                if index in convs:
                    layer: nn.Module = nn.Conv2d(*convs[index], kernel_size=3, padding=1)
                elif index in VGG16_POOLS:
                    layer = nn.MaxPool2d(kernel_size=2, stride=2)
                else:
                    layer = nn.ReLU()
                block.add_module(str(index), layer)
            self.add_module(f"slice{number}", block)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for number in range(1, len(LPIPS_SLICES) + 1):
            x = getattr(self, f"slice{number}")(x)
            taps.append(x)
        return taps


class LpipsNetwork(nn.Module):
    """LPIPS-VGG: ``scaling_layer``, ``net`` (the VGG-16 slices) and ``lin0`` … ``lin4``, in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.scaling_layer = _Scaling()
        self.net = _Vgg16Slices()
        for k, channels in enumerate(LPIPS_CHANNELS):
            self.add_module(f"lin{k}", _Lin(channels))
        self.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS of two ``(N, 3, H, W)`` batches on [-1, 1], ``[N]``."""
        taps_x, taps_y = self.net(self.scaling_layer(x)), self.net(self.scaling_layer(y))
        total = None
        for k, (fx, fy) in enumerate(zip(taps_x, taps_y, strict=True)):
            nx = fx / (torch.sqrt((fx * fx).sum(dim=1, keepdim=True)) + LPIPS_EPS)
            ny = fy / (torch.sqrt((fy * fy).sum(dim=1, keepdim=True)) + LPIPS_EPS)
            layer = getattr(self, f"lin{k}").model((nx - ny) ** 2).mean(dim=(2, 3))  # (N, 1)
            total = layer if total is None else total + layer
        return total[:, 0]  # type: ignore[index]


def _backbone_key(index: int, rest: str) -> str | None:
    """``net.slice{s}.{index}.{rest}`` for VGG-16 ``features.{index}``, or None outside the taps."""
    for number, (start, stop) in enumerate(LPIPS_SLICES, start=1):
        if start <= index < stop:
            return f"net.slice{number}.{index}.{rest}"
    return None


def _lpips_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` in :class:`LpipsNetwork`'s names: ``module.`` prefixes dropped, ``features.{i}``
    and ``lins.{k}`` renamed, and what LPIPS does not use (VGG's classifier) left out."""
    renamed = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        parts = key.split(".")
        if parts[0] == "features" and len(parts) == 3 and parts[1].isdigit():
            mapped = _backbone_key(int(parts[1]), parts[2])
            if mapped is None:
                continue
            key = mapped
        elif parts[0] == "lins" and len(parts) > 1 and parts[1].isdigit():
            key = ".".join([f"lin{parts[1]}", *parts[2:]])
        elif parts[0] == "classifier":
            continue
        renamed.setdefault(key, value)
    return renamed


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or ``torch.save`` file (a ``state_dict`` key is unwrapped)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors, truncated files, non-tensor content
        raise ValueError(f"cannot read LPIPS weights {str(path)!r}: {error}. Give a torch.save'd state dict or a "
                         ".safetensors file.") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"LPIPS weights {str(path)!r} must hold a state dict (name -> tensor); got "
                         f"{type(state).__name__}.")
    return state


@dataclass(frozen=True)
class LoadedLpips:
    """An LPIPS network ready to use, with the file it came from and its SHA-256."""

    network: LpipsNetwork
    path: str
    sha256: str


def load_lpips(path: str | Path) -> LoadedLpips:
    """The LPIPS-VGG network with the weights of ``path`` (module docstring); nothing is downloaded.

    Every backbone and lin tensor must be present with the right shape; the scaling buffers are
    optional (they are constants). Raises ``ValueError`` naming the missing or unexpected tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"LPIPS weights file {str(path)!r} does not exist. LPIPS needs a local weights file (nothing "
                         "is downloaded), e.g. torch.save(lpips.LPIPS(net='vgg').state_dict(), 'lpips_vgg.pt').")
    state = _lpips_names(_read_state(path))
    network = LpipsNetwork()
    expected = network.state_dict()
    missing = [k for k in expected if k not in state and not k.startswith("scaling_layer.")]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})" for k in expected
             if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        details = "; ".join(part for part in (
            f"missing {', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}" if missing else "",
            f"unexpected {', '.join(unexpected[:6])}{' …' if len(unexpected) > 6 else ''}" if unexpected else "",
            f"wrong shape {', '.join(wrong[:3])}" if wrong else "") if part)
        raise ValueError(f"LPIPS weights {str(path)!r} are not LPIPS-VGG's: {details}. Save the lpips package's "
                         "LPIPS(net='vgg').state_dict() (or torchvision vgg16 'features.*' plus 'lin*' layers).")
    network.load_state_dict(state, strict=False)
    network.requires_grad_(False)  # a metric: gradients flow to the images only
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LoadedLpips(network=network, path=str(path), sha256=digest)


def lpips(x: torch.Tensor, y: torch.Tensor, *, weights: LoadedLpips, data_range: float | None = None,
          dtype: torch.dtype = torch.float64, reduction: Reduction = "none") -> torch.Tensor:
    """LPIPS per image (module docstring): lower is better, 0 for identical images.

    Args:
        x, y: reference and distorted, ``(N, C, H, W)`` with C = 3 (RGB) or 1 (repeated to RGB),
            uint8 or float, at least 16×16 (four 2×2 poolings before the last tap).
        weights: from :func:`load_lpips`.
        data_range: R of the input (required for float input; 255 for uint8); images are mapped
            to [-1, 1] as ``x / R * 2 - 1``.
        dtype: computation precision; float64 by default (like every metric here), float32 is
            the original's and ~10x faster on CPU.
        reduction: ``"none"`` (``[N]``) or ``"mean"``.

    Returns:
        ``[N]`` float64 (computed in ``dtype``) on ``x``'s device; differentiable in ``x`` and ``y``.
    """
    r = _check_pair(x, y, data_range)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"LPIPS needs RGB (or grayscale) images; got {x.shape[1]} channels.")
    if min(x.shape[-2:]) < 16:
        raise ValueError(f"LPIPS needs images of at least 16x16 pixels; got {tuple(x.shape[-2:])}.")
    if reduction not in ("none", "mean"):
        raise ValueError(f"reduction must be 'none' or 'mean'; got {reduction!r}.")
    network = weights.network.to(device=x.device, dtype=dtype)
    a, b = (v.to(dtype) / r * 2 - 1 for v in (x, y))
    if a.shape[1] == 1:
        a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
    value = network(a, b).double()
    return value.mean() if reduction == "mean" else value
