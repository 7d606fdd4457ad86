"""Every registered quality metric under every profile on CUDA tensors against the CPU value
(issue 17), and the channel conversions likewise. Skipped without CUDA.

Everything computes in float64 on the input's device, so the two devices differ only in the
order of floating-point reductions (cuDNN/cuFFT/cuSOLVER against their CPU counterparts): values
must agree to 1e-9 relative. NIQE and BRISQUE pick shape parameters on a grid and NIQE inverts a
covariance, which can amplify those last-bit differences: 1e-7 for them. The ``ffmpeg`` profile's
integer sums run on the CPU by design and must be exactly equal.

``VISIONBENCH_PARITY_DEVICE=cpu`` runs the same comparisons CPU against CPU, to check this file on
a machine without a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from visionbench.quality.catalog import ANY_PROFILE, PROFILES, QUALITY_METRICS, resolve_metrics
from visionbench.quality.color import CHANNELS, to_channel

DEVICE = os.environ.get("VISIONBENCH_PARITY_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                reason="no CUDA device here; these compare CUDA values with CPU values")
LOOSE = {"niqe", "brisque"}  # grid-searched shapes and a pseudo-inverse: see the module docstring
CPU_ONLY = {"vmaf": "vmaf runs in FFmpeg's libvmaf on the CPU whatever torch's device (visionbench.quality.vmaf)"}


def _cases() -> list[tuple[str, str]]:
    """(metric, profile) for every metric and each profile it has; a metric that is the same
    function under every profile (``*``) once, under the first profile."""
    cases = []
    for name, metric in QUALITY_METRICS.items():
        profiles = PROFILES[:1] if ANY_PROFILE in metric.functions else tuple(metric.functions)
        cases += [(name, profile) for profile in profiles]
    return cases


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A 192x200 RGB photograph and a noisy copy, uint8 (big enough for both MS-SSIMs and NIQE)."""
    reference = data.astronaut()[100:292, 150:350]
    noise = np.random.default_rng(0).normal(0, 8, reference.shape)
    distorted = np.clip(reference + noise, 0, 255).astype(np.uint8)
    return tuple(torch.from_numpy(a.copy()).permute(2, 0, 1)[None] for a in (reference, distorted))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """This test's own LPIPS weights (random) and a small BRISQUE regressor."""
    from visionbench.quality.learned import DistsNetwork, LpipsNetwork

    root = tmp_path_factory.mktemp("parity_models")
    torch.manual_seed(0)
    torch.save(LpipsNetwork().state_dict(), root / "lpips.pt")
    torch.save(DistsNetwork().state_dict(), root / "dists.pt")
    rng = np.random.default_rng(1)
    lines = ["svm_type epsilon_svr", "kernel_type rbf", "gamma 0.05", "rho -3.0", "SV"]
    lines += [f"{rng.normal():.6f} " + " ".join(f"{i}:{rng.uniform(-1, 1):.6f}" for i in range(1, 37)) for _ in range(4)]
    (root / "allmodel").write_text("\n".join(lines) + "\n")
    (root / "allrange").write_text("x\n-1 1\n" + "".join(f"{i} -1 3\n" for i in range(1, 37)))
    return {"lpips": root / "lpips.pt", "dists": root / "dists.pt", "brisque": root / "allmodel"}


@pytest.mark.parametrize(("name", "profile"), _cases(), ids=[f"{n}-{p}" for n, p in _cases()])
def test_metric_on_the_device_equals_cpu(name: str, profile: str, pair: tuple[torch.Tensor, torch.Tensor],
                                         model_files: dict[str, Path]) -> None:
    if name in CPU_ONLY:
        pytest.skip(CPU_ONLY[name])
    files = {name: model_files[name]} if name in model_files else None
    function = resolve_metrics((name,), profile, files)[name]
    x, y = pair
    on_cpu = function(x, y, 255.0)
    on_device = function(x.to(DEVICE), y.to(DEVICE), 255.0)
    assert on_device.device.type == torch.device(DEVICE).type, f"{name} ({profile}) came back on {on_device.device}"
    assert on_device.dtype == on_cpu.dtype == torch.float64
    if profile == "ffmpeg" and name in ("psnr", "ssim", "mse"):
        assert torch.equal(on_device.cpu(), on_cpu)
    else:
        rtol = 1e-7 if name in LOOSE else 1e-9
        torch.testing.assert_close(on_device.cpu(), on_cpu, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("channel", CHANNELS)
def test_channel_conversion_on_the_device_equals_cpu(channel: str, pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = pair
    for image, data_range in ((x, 255.0), (x.double() / 255, 1.0)):
        on_cpu = to_channel(image, channel, data_range=data_range)  # type: ignore[arg-type]
        on_device = to_channel(image.to(DEVICE), channel, data_range=data_range)  # type: ignore[arg-type]
        assert on_device.device.type == torch.device(DEVICE).type and on_device.dtype == on_cpu.dtype
        if on_cpu.is_floating_point():
            torch.testing.assert_close(on_device.cpu(), on_cpu, rtol=1e-12, atol=1e-12)
        else:  # MATLAB's rounded channels: the same integers
            assert torch.equal(on_device.cpu(), on_cpu)
