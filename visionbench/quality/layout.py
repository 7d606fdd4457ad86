"""Where the windowed quality metrics do their work: cache-sized strips on the CPU, whole batches
on an accelerator (issue 13).

SSIM (``skimage`` and ``matlab`` profiles), both MS-SSIMs, VIFp and HaarPSI filter local moments
with small separable windows. Two **layouts** compute the same values in float64:

- ``"strip"``, the CPU path: planes one at a time (SSIM: in horizontal strips of rows sized to
  stay in cache), each 1-D pass a sum of shifted views accumulated in place
  (:func:`~visionbench.quality.full_reference.valid_separable_filter`; float64 convolution has no
  fast CPU kernel). On a GPU the same loop launches thousands of tiny kernels: SSIM of 4 RGB
  1080p pairs took 650 ms on an H200, where piq and torchmetrics take 9 ms.
- ``"batch"``, the device path: every plane of the batch and every moment at once, through two
  depthwise 1-D convolutions (:func:`depthwise_valid_filter`: ``conv2d`` with one group per plane,
  which PyTorch runs on CUDA with its direct depthwise kernel, float64 accumulators included), so
  a metric is a handful of kernel launches whatever the batch size.

``"auto"``, every metric's default, is ``"batch"`` for tensors on any device but the CPU and
``"strip"`` on the CPU (where it was measured faster: ``benchmarks/RESULTS.md``). Forcing
``"batch"`` on CPU tensors runs the device path's code on the CPU, which is how the tests check
it without a GPU.

**Precision.** Both layouts compute in float64, as the profiles need: SSIM's variances are
``E[x²] − µ²``, a cancellation that float32 moments turn into errors that a float64 final mean
cannot undo (measured: 9e-7 on SSIM of scikit-image's astronaut with N(0, 3²) noise, at data range
255 and 1), far outside the 1e-9 agreement with scikit-image and piq that the tests require. The
device path therefore moves twice float32's bytes per sample; the filtering is memory-bound, so
that is its cost, against torchmetrics' and piq's float32.

GMSD and FSIM have no strip loop: they always work on the whole batch (3-tap shifted views, FFTs,
one ``conv2d``), so they take no ``layout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

Layout = Literal["auto", "strip", "batch"]
LAYOUTS = ("auto", "strip", "batch")


def use_batch(tensor: torch.Tensor, layout: str) -> bool:
    """Whether ``tensor``'s planes are filtered as one batch: ``layout="batch"``, or ``"auto"``
    on any device but the CPU. An unknown ``layout`` is a ``ValueError`` naming the choices."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}. 'auto' strips on the CPU "
                         "and filters whole batches on other devices.")
    return layout == "batch" or (layout == "auto" and tensor.device.type != "cpu")


def _depthwise_kernel(weights: Sequence[float], planes: int, vertical: bool, like: torch.Tensor) -> torch.Tensor:
    """The 1-D ``weights`` as a ``conv2d`` weight of ``planes`` groups, ``(P, 1, K, 1)`` or ``(P, 1, 1, K)``."""
    kernel = torch.tensor(list(weights), dtype=like.dtype, device=like.device)
    shape = (1, 1, -1, 1) if vertical else (1, 1, 1, -1)
    return kernel.view(shape).expand(planes, *kernel.view(shape).shape[1:]).contiguous()


def depthwise_valid_filter(image: torch.Tensor, along_h: Sequence[float], along_w: Sequence[float]) -> torch.Tensor:
    """``'valid'`` correlation of every ``(H, W)`` plane with ``outer(along_h, along_w)``, as two
    depthwise convolutions over all planes at once: ``(..., H, W)`` → ``(..., H - kh + 1, W - kw + 1)``.

    The same values as :func:`~visionbench.quality.full_reference.valid_separable_filter` (rows
    first, then columns; correlation, not convolution, so asymmetric kernels keep their order) up
    to float rounding (~1e-16 relative). All planes go in as the channels of one image with one
    group each, which on CUDA selects PyTorch's depthwise kernel for any dtype.

    Example:
        >>> image = torch.arange(25.0, dtype=torch.float64).view(1, 5, 5)
        >>> depthwise_valid_filter(image, [0.5, 0.5], [1.0]).shape
        torch.Size([1, 4, 5])
    """
    *lead, h, w = image.shape
    if h < len(along_h) or w < len(along_w):
        raise ValueError(f"planes of {h}x{w} are smaller than the {len(along_h)}x{len(along_w)} window.")
    planes = image.reshape(1, -1, h, w)  # (1, P, H, W): one group per plane
    count = planes.shape[1]
    rows = F.conv2d(planes, _depthwise_kernel(along_h, count, True, planes), groups=count)
    result = F.conv2d(rows, _depthwise_kernel(along_w, count, False, planes), groups=count)
    return result.reshape(*lead, *result.shape[-2:])
