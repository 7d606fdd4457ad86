"""The device path of the windowed quality metrics (issue 13, :mod:`visionbench.quality.layout`).

On the CPU, ``layout="batch"`` runs the code a GPU runs (depthwise convolutions over every plane
of the batch) on CPU tensors: it must give the strip path's values, and the references' (scikit-
image, piq, the NumPy port of Wang's MATLAB scripts) within the tolerance the suite asks of the
strip path. The CUDA tests (skipped without CUDA) check that CUDA tensors take the batch path and
give the CPU's values and the references'. ``assess(…, device=…)`` decodes on the CPU and measures
on the device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import piq
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.metrics import structural_similarity

from tests.quality.test_matlab import _oracle_msssim, _oracle_per_channel, _oracle_ssim
from tests.quality.test_video import write_yuv420_video
from visionbench import cli
from visionbench.quality import assessment
from visionbench.quality.full_reference import ssim, ssim_map
from visionbench.quality.layout import depthwise_valid_filter, use_batch
from visionbench.quality.matlab import ms_ssim_matlab, ssim_matlab
from visionbench.quality.perceptual import fsim, haarpsi, vif_p
from visionbench.quality.structural import gmsd, ms_ssim

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
# The metrics with a strip layout on the CPU, by name.
LAYOUT_METRICS = {"ssim": ssim, "ssim_map": ssim_map, "ms_ssim": ms_ssim, "ssim_matlab": ssim_matlab,
                  "ms_ssim_matlab": ms_ssim_matlab, "vif_p": vif_p, "haarpsi": haarpsi}
# Each metric's agreement with its reference in the suite (test_full_reference: 1e-9 absolute against
# scikit-image; test_structural, test_perceptual, test_matlab: 1e-10 relative against piq and the port).
ORACLE_TOLERANCE = {"ssim": {"rtol": 0, "atol": 1e-9}}
DEFAULT_TOLERANCE = {"rtol": 1e-10, "atol": 0}
# Batch against strip: the two differ only in float64 summation order (measured <= 6e-15 relative).
PATHS_AGREE = {"rtol": 1e-12, "atol": 1e-14}
# (N, C, H, W, data range): odd sizes, batch sizes 1-3, uint8 at 255 and floats at 1, RGB and grey.
# 385 x 403 makes ssim.m downsample by round(385 / 256) = 2 first.
CASES = [(1, 3, 177, 183, 255.0), (3, 1, 181, 176, 1.0), (2, 3, 179, 191, 1.0), (1, 1, 385, 403, 255.0)]


def _pair(n: int, c: int, h: int, w: int, data_range: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A textured reference (smooth random structure plus fine noise) and a noisy copy: uint8 for
    a data range of 255, float64 on [0, 1] otherwise (float32 for RGB, to cover that input too)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, c, h // 8 + 2, w // 8 + 2, generator=g, dtype=torch.float64)
    base = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    x = (0.1 + 0.8 * base + 0.04 * torch.randn(n, c, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    y = (x + 0.06 * torch.randn(n, c, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    if data_range == 255.0:
        return (x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)
    return (x.float(), y.float()) if c == 3 else (x, y)


def _case_id(case: tuple[int, int, int, int, float]) -> str:
    n, c, h, w, r = case
    return f"{n}x{c}x{h}x{w}-range{r:g}"


def _oracle(name: str, x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """The reference value of ``name`` per image, float64 ``[N]``, computed on the CPU."""
    x, y = x.cpu(), y.cpu()
    if name == "ssim":
        return torch.tensor([structural_similarity(a.double().numpy(), b.double().numpy(), gaussian_weights=True,
                                                   sigma=1.5, use_sample_covariance=False, data_range=data_range,
                                                   channel_axis=0) for a, b in zip(x, y, strict=True)],
                            dtype=torch.float64)
    if name in ("ssim_matlab", "ms_ssim_matlab"):
        script = _oracle_ssim if name == "ssim_matlab" else _oracle_msssim
        return torch.tensor([_oracle_per_channel(script, a.double().numpy(), b.double().numpy(), data_range)
                             for a, b in zip(x, y, strict=True)], dtype=torch.float64)
    xd, yd = x.double(), y.double()
    piq_calls = {
        "ms_ssim": lambda: piq.multi_scale_ssim(xd, yd, data_range=data_range, reduction="none"),
        "gmsd": lambda: piq.gmsd(xd, yd, data_range=data_range, reduction="none"),
        "vif_p": lambda: piq.vif_p(yd, xd, data_range=data_range, reduction="none"),  # piq: reference second
        "haarpsi": lambda: piq.haarpsi(xd, yd, data_range=data_range, reduction="none"),
        "fsim": lambda: piq.fsim(xd, yd, data_range=data_range, reduction="none", chromatic=x.shape[1] == 3),
    }
    return piq_calls[name]()


# ------------------------------------------------------------------------------ the CPU runs the device path


def test_auto_layout_strips_on_the_cpu_and_batches_elsewhere() -> None:
    cpu, meta = torch.empty(1), torch.empty(1, device="meta")
    assert not use_batch(cpu, "auto") and use_batch(meta, "auto")
    assert use_batch(cpu, "batch") and not use_batch(meta, "strip")
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(ValueError, match="layout must be one of auto, strip, batch; got 'gpu'"):
        ssim(x, x, data_range=1.0, layout="gpu")  # type: ignore[arg-type]


def test_depthwise_filter_equals_the_shifted_view_filter_with_asymmetric_kernels() -> None:
    from visionbench.quality.full_reference import valid_separable_filter

    image = torch.rand(2, 3, 4, 23, 19, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    along_h, along_w = [0.5, -0.25, 1.0], [1.0, 2.0, -1.0, 0.125, 3.0]  # asymmetric: correlation, not convolution
    expected = valid_separable_filter(image, along_h, along_w)
    actual = depthwise_valid_filter(image, along_h, along_w)
    assert actual.shape == expected.shape == (2, 3, 4, 21, 15)
    torch.testing.assert_close(actual, expected, rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match="smaller than the 3x5 window"):
        depthwise_valid_filter(image[..., :4], along_h, along_w)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
@pytest.mark.parametrize("name", list(LAYOUT_METRICS))
def test_batch_path_equals_strip_path(name: str, case: tuple[int, int, int, int, float]) -> None:
    x, y = _pair(*case)
    metric = LAYOUT_METRICS[name]
    strip = metric(x, y, data_range=case[-1], layout="strip")
    batch = metric(x, y, data_range=case[-1], layout="batch")
    assert batch.dtype == strip.dtype == torch.float64 and batch.shape == strip.shape
    assert torch.isfinite(strip).all()
    torch.testing.assert_close(batch, strip, **PATHS_AGREE)


@pytest.mark.parametrize("case", CASES[:2], ids=[_case_id(c) for c in CASES[:2]])
@pytest.mark.parametrize("name", [n for n in LAYOUT_METRICS if n != "ssim_map"])
def test_batch_path_equals_the_reference(name: str, case: tuple[int, int, int, int, float]) -> None:
    x, y = _pair(*case, seed=3)
    batch = LAYOUT_METRICS[name](x, y, data_range=case[-1], layout="batch")
    tolerance = ORACLE_TOLERANCE.get(name, DEFAULT_TOLERANCE)
    torch.testing.assert_close(batch, _oracle(name, x, y, case[-1]), **tolerance)


@pytest.mark.parametrize("name", ["ssim", "ms_ssim", "vif_p", "haarpsi", "ssim_matlab"])
def test_batch_path_gradients_equal_strip_path_gradients(name: str) -> None:
    x, y = _pair(2, 3, 177, 181, 1.0, seed=5)
    grads = []
    for layout in ("strip", "batch"):
        distorted = y.double().requires_grad_()
        LAYOUT_METRICS[name](x.double(), distorted, data_range=1.0, layout=layout).sum().backward()
        grads.append(distorted.grad)
    assert grads[0] is not None and grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-15)


# ------------------------------------------------------------------------------ assess and the CLI: --device


def _recording_measure_pair(monkeypatch: pytest.MonkeyPatch) -> list[torch.device]:
    """Wraps assess's per-item measurement to record the device of the tensors it is given."""
    seen: list[torch.device] = []
    original = assessment.measure_pair

    def recording(x: torch.Tensor, y: torch.Tensor, *args: Any) -> dict[str, float]:
        seen.append(x.device)
        return original(x, y, *args)

    monkeypatch.setattr(assessment, "measure_pair", recording)
    return seen


@pytest.fixture
def video_pair(tmp_path: Path) -> tuple[Path, Path]:
    """Two 3-frame lossless videos (48 x 64 luma), the second with noise."""
    rng = np.random.default_rng(0)
    ref = np.clip(128 + 60 * np.sin(np.arange(64) / 5.0)[None, None] + rng.normal(0, 20, (3, 48, 64)), 0, 255)
    dist = np.clip(ref + rng.normal(0, 8, ref.shape), 0, 255)
    write_yuv420_video(tmp_path / "ref.mkv", ref.astype(np.uint8))
    write_yuv420_video(tmp_path / "dist.mkv", dist.astype(np.uint8))
    return tmp_path / "ref.mkv", tmp_path / "dist.mkv"


def test_video_measured_on_the_cpu_device_gives_the_same_values(video_pair: tuple[Path, Path],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = ("psnr", "ssim", "gmsd", "vif_p")  # MS-SSIM needs 161 pixels; the frames are 48 x 64
    default = assessment.assess(*video_pair, metrics=metrics, examples=1)
    seen = _recording_measure_pair(monkeypatch)
    on_cpu = assessment.assess(*video_pair, metrics=metrics, examples=1, device="cpu")
    assert seen == [torch.device("cpu")] * 3
    assert on_cpu.rows == default.rows and on_cpu.settings["device"] == "cpu" and "device" not in default.settings


def test_unknown_or_absent_device_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="device must be cpu, cuda or cuda:N"):
        assessment.assess(x, x, data_range=1.0, device="gpu0")
    if torch.cuda.is_available():
        return
    with pytest.raises(ValueError, match="'cuda' was asked for but CUDA is not available here"):
        assessment.assess(x, x, data_range=1.0, device="cuda")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "a.png")
    code = cli.main(["quality", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--device", "cuda", "--quiet",
                     "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "CUDA is not available here" in err and "Traceback" not in err


def test_cli_device_cpu_gives_the_same_metrics_and_records_it(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _pair(1, 3, 40, 44, 255.0, seed=7)
    for name, image in (("ref.png", x), ("dist.png", y)):
        Image.fromarray(image[0].permute(1, 2, 0).numpy()).save(tmp_path / name)
    printed = []
    for extra in ([], ["--device", "cpu"]):
        args = ["quality", str(tmp_path / "ref.png"), str(tmp_path / "dist.png"), "--metrics", "psnr,ssim,haarpsi",
                "--json", "--out", str(tmp_path / f"run{len(printed)}")]
        assert cli.main(args + extra) == 0
        printed.append(json.loads(capsys.readouterr().out))
    auto, cpu = printed
    assert cpu["settings"]["device"] == "cpu"
    assert auto["settings"]["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
    for metric in ("psnr", "ssim", "haarpsi"):
        assert cpu[metric]["value"] == pytest.approx(auto[metric]["value"], rel=1e-10, abs=0)


# ------------------------------------------------------------------------------ CUDA (skipped without it)

def _fsim(x: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """FSIMc of RGB pairs, FSIM of grey ones (as the catalog's ``fsim``)."""
    return fsim(x, y, chromatic=x.shape[1] == 3, **kwargs)


CUDA_METRICS = {**{n: m for n, m in LAYOUT_METRICS.items() if n != "ssim_map"}, "gmsd": gmsd, "fsim": _fsim}


@needs_cuda
@pytest.mark.parametrize("case", CASES[:3], ids=[_case_id(c) for c in CASES[:3]])
@pytest.mark.parametrize("name", list(CUDA_METRICS))
def test_cuda_equals_cpu_and_the_reference(name: str, case: tuple[int, int, int, int, float]) -> None:
    x, y = _pair(*case, seed=11)
    metric = CUDA_METRICS[name]
    on_cpu = metric(x, y, data_range=case[-1])  # the strip path
    on_cuda = metric(x.cuda(), y.cuda(), data_range=case[-1])  # "auto": the batch path
    assert on_cuda.device.type == "cuda" and on_cuda.dtype == torch.float64
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-10, atol=1e-14)
    tolerance = ORACLE_TOLERANCE.get(name, DEFAULT_TOLERANCE)
    torch.testing.assert_close(on_cuda.cpu(), _oracle(name, x, y, case[-1]), **tolerance)


@needs_cuda
def test_cuda_ssim_map_and_gradients_equal_cpu() -> None:
    x, y = _pair(2, 3, 61, 67, 1.0, seed=13)
    torch.testing.assert_close(ssim_map(x.cuda(), y.cuda(), data_range=1.0).cpu(), ssim_map(x, y, data_range=1.0),
                               rtol=1e-10, atol=1e-13)
    grads = []
    for device in ("cpu", "cuda"):
        distorted = y.double().to(device).requires_grad_()
        ssim(x.double().to(device), distorted, data_range=1.0).sum().backward()
        grads.append(distorted.grad.cpu())  # type: ignore[union-attr]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-9, atol=1e-15)


@needs_cuda
def test_cuda_video_decodes_on_the_cpu_and_measures_on_the_gpu(video_pair: tuple[Path, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = ("psnr", "ssim", "gmsd", "vif_p", "haarpsi", "fsim")
    on_cpu = assessment.assess(*video_pair, metrics=metrics, examples=2, device="cpu")
    seen = _recording_measure_pair(monkeypatch)
    on_cuda = assessment.assess(*video_pair, metrics=metrics, examples=2, device="cuda")
    assert [d.type for d in seen] == ["cuda"] * 3 and on_cuda.settings["device"].startswith("cuda")
    for row_cpu, row_cuda in zip(on_cpu.rows, on_cuda.rows, strict=True):
        for metric in (*metrics, "mse"):
            assert row_cuda[metric] == pytest.approx(row_cpu[metric], rel=1e-10, abs=1e-14), metric
    assert [e.item for e in on_cuda.examples] == [e.item for e in on_cpu.examples]
    assert on_cuda.examples[0].ssim is not None  # thumbnails and SSIM maps come back to the CPU
