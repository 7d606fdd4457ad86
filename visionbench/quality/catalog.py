"""The quality metrics by name, and the profile each follows.

A **profile** names the reference a metric reproduces exactly:

- ``skimage`` (default): scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity``
  with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``. scikit-image has no
  MS-SSIM, so ``ms_ssim`` follows the common PyTorch convention (piq, pytorch-msssim).
- ``matlab``: Wang's ``ssim.m`` (automatic downsampling) and ``msssim.m``; PSNR is the plain
  formula, as in MATLAB's ``psnr``.
- ``ffmpeg``: FFmpeg's ``ssim`` filter (8×8 windows on a 4-pixel grid of 4×4 sums) and ``psnr``
  filter, per plane, averaged with the planes' areas as weights. FFmpeg works on integer samples:
  non-integer planes (e.g. luma converted from RGB) are rounded half up first, as a stated
  approximation of FFmpeg's own conversion.

Under ``ffmpeg``, ``mse`` is FFmpeg's ``mse_avg`` (on the rounded integer planes, plane-area
weighted), the MSE behind its PSNR. Metrics without a profile-specific form (``mae``, ``gmsd``,
``vif_p``, ``haarpsi``, ``fsim``) are the same under every profile. Every function takes ``(x, y, data_range)`` on
``(N, C, H, W)`` tensors and returns float64 ``[N]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

Profile = Literal["skimage", "matlab", "ffmpeg"]
PROFILES: tuple[str, ...] = ("skimage", "matlab", "ffmpeg")
ANY_PROFILE = "*"

MetricFunction = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class QualityMetric:
    """One named metric: its direction, a one-line description and its function per profile."""

    name: str
    higher_is_better: bool
    description: str
    functions: dict[str, MetricFunction]

    def function(self, profile: str) -> MetricFunction:
        """The function under ``profile`` (a ``ValueError`` when the metric has no such form)."""
        if ANY_PROFILE in self.functions:
            return self.functions[ANY_PROFILE]
        if profile not in self.functions:
            raise ValueError(f"{self.name} has no {profile!r} profile; it has {', '.join(self.functions)}. "
                             f"Use --profile {next(iter(self.functions))} or leave {self.name} out.")
        return self.functions[profile]


def _lazy(module: str, name: str, *, with_range: bool = True) -> MetricFunction:
    """``visionbench.quality.<module>.<name>(x, y, data_range=r)``, imported on first use, so that
    importing the catalogue does not import every metric's module."""

    def call(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
        function = getattr(importlib.import_module(f"visionbench.quality.{module}"), name)
        return function(x, y, data_range=r) if with_range else function(x, y)

    call.__name__ = call.__qualname__ = f"{module}.{name}"
    return call


def integer_planes(x: torch.Tensor) -> torch.Tensor:
    """``x`` as FFmpeg's integer samples: unchanged when already integral, else rounded half up."""
    if not x.is_floating_point():
        return x
    return torch.floor(x + 0.5)


def _planes(x: torch.Tensor) -> list[torch.Tensor]:
    return [integer_planes(x[:, c]) for c in range(x.shape[1])]


def ffmpeg_scores(x: torch.Tensor, y: torch.Tensor, r: float) -> dict[str, torch.Tensor]:
    """FFmpeg's per-image scores of equal-size planes (``ssim_All``, ``psnr_avg``, ``mse_avg``, …)
    in one pass; with equal plane sizes FFmpeg's area weighting is a plain mean over planes."""
    from visionbench.quality.ffmpeg import ffmpeg_frame_scores

    planes_x, planes_y = _planes(x), _planes(y)
    return ffmpeg_frame_scores(planes_x, planes_y, max_value=int(r), names=[chr(ord("A") + i) for i in range(len(planes_x))])


def ffmpeg_psnr_scores(x: torch.Tensor, y: torch.Tensor, r: float) -> dict[str, torch.Tensor]:
    """FFmpeg's ``mse_avg`` and ``psnr_avg`` alone (its psnr filter), without the SSIM pass of
    :func:`ffmpeg_scores`: the same exact integer sums, weighted and added in the same plane order,
    so the values are equal to its bit."""
    from visionbench.quality.ffmpeg import plane_weights, psnr_ffmpeg_db, psnr_ffmpeg_plane_mse

    planes_x, planes_y = _planes(x), _planes(y)
    mse_avg = torch.zeros(x.shape[0], dtype=torch.float64)
    for weight, a, b in zip(plane_weights([tuple(p.shape[1:]) for p in planes_x]), planes_x, planes_y, strict=True):
        mse_avg += psnr_ffmpeg_plane_mse(a, b) * weight
    return {"mse_avg": mse_avg, "psnr_avg": psnr_ffmpeg_db(mse_avg, max_value=int(r))}


def _ffmpeg(key: str) -> MetricFunction:
    """One of :func:`ffmpeg_scores`' values as a metric function (PSNR and MSE without the SSIM pass)."""
    scores = ffmpeg_psnr_scores if key in ("mse_avg", "psnr_avg") else ffmpeg_scores

    def call(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
        return scores(x, y, r)[key]

    call.__name__ = call.__qualname__ = f"ffmpeg.{key}"
    return call


QUALITY_METRICS: dict[str, QualityMetric] = {m.name: m for m in (
    QualityMetric("psnr", True, "peak signal-to-noise ratio, dB",
                  {"skimage": _lazy("full_reference", "psnr"), "matlab": _lazy("full_reference", "psnr"),
                   "ffmpeg": _ffmpeg("psnr_avg")}),
    QualityMetric("ssim", True, "structural similarity (Wang et al. 2004)",
                  {"skimage": _lazy("full_reference", "ssim"), "matlab": _lazy("matlab", "ssim_matlab"),
                   "ffmpeg": _ffmpeg("ssim_All")}),
    QualityMetric("ms_ssim", True, "multi-scale SSIM (Wang et al. 2003), 5 scales",
                  {"skimage": _lazy("structural", "ms_ssim"), "matlab": _lazy("matlab", "ms_ssim_matlab")}),
    QualityMetric("mse", False, "mean squared error, in the data range's units squared",
                  {"skimage": _lazy("full_reference", "mse", with_range=False),
                   "matlab": _lazy("full_reference", "mse", with_range=False), "ffmpeg": _ffmpeg("mse_avg")}),
    QualityMetric("mae", False, "mean absolute error, in the data range's units", {ANY_PROFILE: _lazy("full_reference", "mae", with_range=False)}),
    QualityMetric("gmsd", False, "gradient magnitude similarity deviation (Xue et al. 2014)", {ANY_PROFILE: _lazy("structural", "gmsd")}),
    QualityMetric("vif_p", True, "pixel-domain visual information fidelity (Sheikh & Bovik 2006)",
                  {ANY_PROFILE: _lazy("perceptual", "vif_p")}),
    QualityMetric("haarpsi", True, "Haar wavelet perceptual similarity (Reisenhofer et al. 2018)",
                  {ANY_PROFILE: _lazy("perceptual", "haarpsi")}),
    QualityMetric("fsim", True, "feature similarity (Zhang et al. 2011)", {ANY_PROFILE: _lazy("perceptual", "fsim")}),
)}


def check_profile(profile: str) -> Profile:
    """``profile`` itself if known, else a ``ValueError`` listing the profiles."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}.")
    return profile  # type: ignore[return-value]


def resolve_metrics(names: tuple[str, ...] | list[str], profile: str) -> dict[str, MetricFunction]:
    """Name → function for ``names`` under ``profile``; unknown names get close-match suggestions."""
    import difflib

    check_profile(profile)
    if not names:
        raise ValueError(f"give at least one metric, from: {', '.join(QUALITY_METRICS)}.")
    resolved = {}
    for name in names:
        if name not in QUALITY_METRICS:
            close = difflib.get_close_matches(name, list(QUALITY_METRICS), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown quality metric {name!r}; known: {', '.join(QUALITY_METRICS)}.{hint}")
        resolved[name] = QUALITY_METRICS[name].function(profile)
    return resolved


def measure_pair(x: torch.Tensor, y: torch.Tensor, data_range: float, functions: dict[str, MetricFunction],
                 profile: str) -> dict[str, float]:
    """Every metric of ``functions`` for one pair ``(1, C, H, W)``, plus its ``"mse"``.

    The pair's MSE is computed once and PSNR derived from it (the same formula as :func:`psnr`).
    Under the ``ffmpeg`` profile, PSNR, SSIM and the MSE come from one pass over the integer
    planes (:func:`~visionbench.quality.ffmpeg.ffmpeg_frame_scores`), as in FFmpeg, where the two
    filters share the decoded frames; this is what keeps a 1080p video near real time. The MSE is
    then FFmpeg's whichever metrics are asked for, so its value never depends on the others; without
    SSIM only FFmpeg's PSNR sums are taken (:func:`ffmpeg_psnr_scores`, the same values).
    """
    values: dict[str, float] = {}
    if profile == "ffmpeg":
        scores = ffmpeg_scores(x, y, data_range) if "ssim" in functions else ffmpeg_psnr_scores(x, y, data_range)
        values.update(psnr=float(scores["psnr_avg"][0]), mse=float(scores["mse_avg"][0]))
        if "ssim_All" in scores:
            values["ssim"] = float(scores["ssim_All"][0])
    else:
        from visionbench.quality.full_reference import mean_difference, psnr_db_of_mse

        values["mse"] = float(mean_difference(x, y, power=2)[0])
        values["psnr"] = psnr_db_of_mse(values["mse"], data_range)
    row = {name: values[name] if name in values else float(function(x, y, data_range)[0])
           for name, function in functions.items()}
    row["mse"] = values["mse"]
    return row
