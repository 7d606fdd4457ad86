"""Learned full-reference quality from weights the user provides: LPIPS (VGG variant) and DISTS.

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

DISTS (Ding, Ma, Wang & Simoncelli, "Image quality assessment: unifying structure and texture
similarity", TPAMI 2020; the reference is the ``DISTS_pytorch`` package's ``DISTS_pt.py``): both
images, on [0, 1], are normalised with ImageNet's mean and std and go through VGG-16's
convolutional layers with every 2×2 max pooling replaced by L2 pooling (``sqrt(h * x² + 1e-12)``,
h the 3×3 Hann window ``[1, 2, 1]ᵀ[1, 2, 1] / 16``, stride 2, padding 1). Six stages are
compared: the input itself (not normalised) and ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3``
(3 + 64 + 128 + 256 + 512 + 512 = 1475 channels). Per channel, over the whole image, the texture
term ``(2 μx μy + c1) / (μx² + μy² + c1)`` and the structure term
``(2 σxy + c2) / (σx² + σy² + c2)`` (population statistics; c1 = c2 = 1e-6) are weighted by the
learned ``alpha`` and ``beta`` (``[1, 1475, 1, 1]`` each, divided by ``Σalpha + Σbeta``), and
DISTS = 1 − Σ (alpha · texture + beta · structure). Lower is better; identical images score 0.
Images are **not resized**: the ``DISTS`` module scores what it is given, while the reference's
example script (``prepare_image``) and ``piq.DISTS`` shrink images whose short side exceeds 256
pixels to 256 first; resize beforehand to reproduce their numbers on larger images.

:func:`load_dists` reads one local file (``.pt``/``.pth`` with ``weights_only=True``, or
``.safetensors``) holding ``alpha`` and ``beta`` (any shape of 1475 values), and the VGG-16
backbone either in the same file — torchvision's ``features.{i}.weight/bias`` or the reference's
``stage{1..5}.{i}.weight/bias``, e.g. ``torch.save(DISTS_pytorch.DISTS().state_dict(), "dists.pt")``,
whose ImageNet statistics and L2 pooling filters (``mean``, ``std``, ``stage*.filter``) are
constants and skipped — or, when the file holds no backbone tensor at all (the package's own
``weights.pt``), from torchvision's ``VGG16_Weights.IMAGENET1K_V1`` in the local torch hub cache
(:func:`visionbench.models.pretrained.locate_weights`; a missing file is an error naming it).
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


def _backbone_key(index: int, rest: str, prefix: str = "net.slice") -> str | None:
    """``{prefix}{s}.{index}.{rest}`` (``net.slice{s}…`` for LPIPS, ``stage{s}…`` for DISTS) for
    VGG-16 ``features.{index}``, or None outside the five slices (which LPIPS and DISTS share)."""
    for number, (start, stop) in enumerate(LPIPS_SLICES, start=1):
        if start <= index < stop:
            return f"{prefix}{number}.{index}.{rest}"
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


def _read_state(path: Path, what: str = "LPIPS") -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or ``torch.save`` file (a ``state_dict`` key is unwrapped);
    ``what`` names the metric in the errors."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:  # a truncated or foreign file: SafetensorError, OSError
            raise ValueError(f"cannot read {what} weights {str(path)!r}: {error}. Give a .safetensors file written "
                             "by safetensors' save_file (or a torch.save'd state dict).") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors, truncated files, non-tensor content
        raise ValueError(f"cannot read {what} weights {str(path)!r}: {error}. Give a torch.save'd state dict or a "
                         ".safetensors file.") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{what} weights {str(path)!r} must hold a state dict (name -> tensor); got "
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
    details = _mismatch(state, expected, optional=("scaling_layer.",))
    if details:
        raise ValueError(f"LPIPS weights {str(path)!r} are not LPIPS-VGG's: {details}. Save the lpips package's "
                         "LPIPS(net='vgg').state_dict() (or torchvision vgg16 'features.*' plus 'lin*' layers).")
    network.load_state_dict(state, strict=False)
    network.requires_grad_(False)  # a metric: gradients flow to the images only
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LoadedLpips(network=network, path=str(path), sha256=digest)




def _mismatch(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], optional: tuple[str, ...] = ()) -> str:
    """The tensors of ``state`` that do not fit ``expected`` (missing, unexpected, misshapen), for an
    error message; empty when it fits. Names starting with ``optional`` may be missing."""
    missing = [k for k in expected if k not in state and not k.startswith(optional or ("\0",))]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})" for k in expected
             if k in state and state[k].shape != expected[k].shape]
    return "; ".join(part for part in (
        f"missing {', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}" if missing else "",
        f"unexpected {', '.join(unexpected[:6])}{' …' if len(unexpected) > 6 else ''}" if unexpected else "",
        f"wrong shape {', '.join(wrong[:3])}" if wrong else "") if part)

def _check_network_input(name: str, x: torch.Tensor, y: torch.Tensor, data_range: float | None,
                         reduction: str) -> float:
    """The checks LPIPS and DISTS share (a pair, RGB or grey, at least 16×16, a known reduction);
    returns the data range."""
    r = _check_pair(x, y, data_range)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} needs RGB (or grayscale) images; got {x.shape[1]} channels.")
    if min(x.shape[-2:]) < 16:
        raise ValueError(f"{name} needs images of at least 16x16 pixels; got {tuple(x.shape[-2:])}.")
    if reduction not in ("none", "mean"):
        raise ValueError(f"reduction must be 'none' or 'mean'; got {reduction!r}.")
    return r


def _as_rgb(images: torch.Tensor) -> torch.Tensor:
    """Grey ``(N, 1, H, W)`` images as RGB with R = G = B (the networks take three channels)."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images

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
    r = _check_network_input("LPIPS", x, y, data_range, reduction)
    network = weights.network.to(device=x.device, dtype=dtype)
    a, b = (v.to(dtype) / r * 2 - 1 for v in (x, y))
    a, b = _as_rgb(a), _as_rgb(b)
    value = network(a, b).double()
    return value.mean() if reduction == "mean" else value


# ---- DISTS (module docstring) ------------------------------------------------------------------

DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)  # the input itself, then relu1_2 … relu5_3
DISTS_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, float32 buffers as in the reference
DISTS_STD = (0.229, 0.224, 0.225)
DISTS_C1 = 1e-6  # texture (means) term
DISTS_C2 = 1e-6  # structure (covariance) term
L2_POOL_EPS = 1e-12  # under the square root, as the reference's L2pooling


class _L2Pool(nn.Module):
    """DISTS's L2 pooling of ``channels`` maps: ``sqrt(h * x² + 1e-12)``, h the normalised 3×3 Hann
    window (the reference's ``numpy.hanning(5)[1:-1]`` outer product: ``[1, 2, 1]ᵀ[1, 2, 1] / 16``),
    stride 2, padding 1, each channel on its own."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        window = torch.tensor([0.5, 1.0, 0.5])
        kernel = window[:, None] * window[None, :]
        # A constant, not a weight: kept out of the state dict so files never need (or carry) it.
        self.register_buffer("kernel", (kernel / kernel.sum()).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.conv2d(x * x, self.kernel, stride=2, padding=1, groups=x.shape[1])
        return torch.sqrt(pooled + L2_POOL_EPS)


class DistsNetwork(nn.Module):
    """DISTS: VGG-16's ``features[0:30]`` as ``stage1`` … ``stage5`` (the reference's module names,
    L2 pooling where VGG max-pools) and the ``alpha``/``beta`` buffers, in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        convs = {index: (cin, cout) for index, cin, cout in VGG16_CONVS}
        channels = 3
        for number, (start, stop) in enumerate(LPIPS_SLICES, start=1):  # DISTS taps the same five ReLUs
            block = nn.Sequential()
            for index in range(start, stop):
                if index in convs:
                    layer: nn.Module = nn.Conv2d(*convs[index], kernel_size=3, padding=1)
                    channels = convs[index][1]
                elif index in VGG16_POOLS:
                    layer = _L2Pool(channels)
                else:
                    layer = nn.ReLU()
                block.add_module(str(index), layer)
            self.add_module(f"stage{number}", block)
        self.register_buffer("mean", torch.tensor(DISTS_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(DISTS_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("alpha", torch.full((1, sum(DISTS_CHANNELS), 1, 1), 0.1))
        self.register_buffer("beta", torch.full((1, sum(DISTS_CHANNELS), 1, 1), 0.1))
        self.eval()

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six compared maps of ``x`` on [0, 1]: ``x`` itself, then the five stages' outputs."""
        maps, h = [x], (x - self.mean) / self.std
        for number in range(1, len(LPIPS_SLICES) + 1):
            h = getattr(self, f"stage{number}")(h)
            maps.append(h)
        return maps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """DISTS of two ``(N, 3, H, W)`` batches on [0, 1], ``[N]``."""
        total = self.alpha.sum() + self.beta.sum()  # the reference normalises alpha and beta together
        alphas = torch.split(self.alpha / total, DISTS_CHANNELS, dim=1)
        betas = torch.split(self.beta / total, DISTS_CHANNELS, dim=1)
        similarity = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for fx, fy, alpha, beta in zip(self.stages(x), self.stages(y), alphas, betas, strict=True):
            texture, structure = _texture_and_structure(fx, fy)
            similarity = similarity + (alpha * texture + beta * structure).sum(dim=(1, 2, 3))
        return 1 - similarity


def _texture_and_structure(fx: torch.Tensor, fy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel, ``(N, C, 1, 1)`` each: DISTS's texture term (of the means) and structure term (of
    the variances and covariance, population statistics over the whole map)."""
    mx, my = fx.mean(dim=(2, 3), keepdim=True), fy.mean(dim=(2, 3), keepdim=True)
    texture = (2 * mx * my + DISTS_C1) / (mx * mx + my * my + DISTS_C1)
    vx = ((fx - mx) ** 2).mean(dim=(2, 3), keepdim=True)
    vy = ((fy - my) ** 2).mean(dim=(2, 3), keepdim=True)
    cxy = (fx * fy).mean(dim=(2, 3), keepdim=True) - mx * my  # the reference's form of the covariance
    structure = (2 * cxy + DISTS_C2) / (vx + vy + DISTS_C2)
    return texture, structure


def _dists_names(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``state`` in :class:`DistsNetwork`'s names: ``module.`` prefixes dropped, torchvision's
    ``features.{i}`` renamed to ``stage{s}.{i}``; VGG's classifier and the reference's constants
    (``mean``, ``std``, ``stage*.filter``) left out. A value that is not a tensor is an error."""
    renamed = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"DISTS weights {source!r} must map names to tensors; {key!r} holds "
                             f"{type(value).__name__}. Save a state dict (name -> tensor).")
        key = key.removeprefix("module.")
        parts = key.split(".")
        if parts[0] == "features" and len(parts) == 3 and parts[1].isdigit():
            mapped = _backbone_key(int(parts[1]), parts[2], prefix="stage")
            if mapped is None:
                continue
            key = mapped
        elif parts[0] == "classifier" or key in ("mean", "std") or (parts[0].startswith("stage") and parts[-1] == "filter"):
            continue
        renamed.setdefault(key, value.detach())
    return renamed


def _cached_vgg16(source: Path) -> tuple[dict[str, torch.Tensor], Path, str]:
    """torchvision's ``VGG16_Weights.IMAGENET1K_V1`` (the reference's ``vgg16(pretrained=True)``) from
    the local torch hub cache: state dict, file and SHA-256 (checked against the digits in its name).
    A missing file is a :class:`~visionbench.models.pretrained.MissingWeightsError` that names it."""
    from visionbench.models import pretrained

    weights = pretrained.resolve_weights("vgg16", "IMAGENET1K_V1")
    try:
        file = pretrained.locate_weights(weights)
    except pretrained.MissingWeightsError:
        expected = pretrained.weights_file(weights)
        raise pretrained.MissingWeightsError(
            f"DISTS weights {str(source)!r} hold alpha and beta but no VGG-16 tensors, so the backbone must be "
            f"torchvision's {pretrained.full_name(weights)} from the local torch hub cache; there is no file "
            f"{str(expected)!r}. Nothing is downloaded. On a machine with internet run\n"
            f"  {pretrained.fetch_command(weights)}\n"
            f"(or: curl -L {weights.url} -o {expected}) and copy the file to {str(expected)!r} (TORCH_HOME sets the "
            "folder), or save the VGG-16 'features.*' tensors into the DISTS file.") from None
    sha256 = pretrained.verify_weights_file(file)
    return pretrained.read_state_dict(file), file, sha256


def _check_dists_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path) -> None:
    """A ``ValueError`` naming every missing, unexpected or misshapen tensor, or alpha/beta that are
    not finite with a positive sum (DISTS divides by it)."""
    details = _mismatch(state, expected)
    if details:
        raise ValueError(f"DISTS weights {str(path)!r} are not DISTS's: {details}. Give a file with 'alpha' and 'beta' "
                         f"({sum(DISTS_CHANNELS)} values each) and either all of VGG-16's 'features.*' conv tensors or "
                         "none (then torchvision's VGG-16 ImageNet weights are read from the torch hub cache).")
    alpha, beta = state["alpha"].double(), state["beta"].double()
    total = float(alpha.sum() + beta.sum())
    if not (torch.isfinite(alpha).all() and torch.isfinite(beta).all()) or not total > 0:
        raise ValueError(f"DISTS weights {str(path)!r} must have finite alpha and beta with a positive sum (DISTS "
                         f"divides by it); got sum {total}. Give the DISTS release's trained alpha and beta.")


@dataclass(frozen=True)
class LoadedDists:
    """A DISTS network ready to use, with its file and SHA-256, and the file and SHA-256 its VGG-16
    came from (the same file, or torchvision's ImageNet weights in the torch hub cache)."""

    network: DistsNetwork
    path: str
    sha256: str
    backbone_path: str
    backbone_sha256: str


def load_dists(path: str | Path) -> LoadedDists:
    """The DISTS network with the weights of ``path`` (module docstring); nothing is downloaded.

    ``alpha`` and ``beta`` must be in ``path``; VGG-16's 13 convolutions too, or none of them (then
    they come from torchvision's ImageNet weights in the local torch hub cache). Raises
    ``ValueError`` naming the missing, unexpected or misshapen tensors, and
    :class:`~visionbench.models.pretrained.MissingWeightsError` (a ``ValueError``) when the cached
    VGG-16 file is needed and absent.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"DISTS weights file {str(path)!r} does not exist. DISTS needs a local file (nothing is "
                         "downloaded) holding its alpha and beta, e.g. the DISTS_pytorch package's weights.pt, or "
                         "the whole network: torch.save(DISTS_pytorch.DISTS().state_dict(), 'dists.pt').")
    state = _dists_names(_read_state(path, "DISTS"), str(path))
    for name in ("alpha", "beta"):  # [1, 1475, 1, 1] in the reference; a flat [1475] is the same weights
        if name in state and state[name].numel() == sum(DISTS_CHANNELS):
            state[name] = state[name].reshape(1, -1, 1, 1)
    network = DistsNetwork()
    expected = network.state_dict()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    backbone_path, backbone_sha256 = str(path), digest
    if set(state) == {"alpha", "beta"}:  # the DISTS release's weights.pt: the backbone is torchvision's
        vgg, file, backbone_sha256 = _cached_vgg16(path)
        backbone_path = str(file)
        state.update(_dists_names(vgg, backbone_path))
    _check_dists_state(state, expected, path)
    network.load_state_dict(state)
    network.requires_grad_(False)  # a metric: gradients flow to the images only
    return LoadedDists(network=network, path=str(path), sha256=digest, backbone_path=backbone_path,
                       backbone_sha256=backbone_sha256)


def dists(x: torch.Tensor, y: torch.Tensor, *, weights: LoadedDists, data_range: float | None = None,
          dtype: torch.dtype = torch.float64, reduction: Reduction = "none") -> torch.Tensor:
    """DISTS per image (module docstring): lower is better, 0 for identical images.

    Args:
        x, y: reference and distorted, ``(N, C, H, W)`` with C = 3 (RGB) or 1 (repeated to RGB),
            uint8 or float, at least 16×16 (the last stage sees the image at 1/16 of its side).
            Not resized (module docstring).
        weights: from :func:`load_dists`.
        data_range: R of the input (required for float input; 255 for uint8); images are mapped
            to [0, 1] as ``x / R``.
        dtype: computation precision; float64 by default (like every metric here), float32 is
            the reference's and ~10x faster on CPU.
        reduction: ``"none"`` (``[N]``) or ``"mean"``.

    Returns:
        ``[N]`` float64 (computed in ``dtype``) on ``x``'s device; differentiable in ``x`` and ``y``.
    """
    r = _check_network_input("DISTS", x, y, data_range, reduction)
    network = weights.network.to(device=x.device, dtype=dtype)
    a, b = (v.to(dtype) / r for v in (x, y))
    a, b = _as_rgb(a), _as_rgb(b)
    value = network(a, b).double()
    return value.mean() if reduction == "mean" else value
