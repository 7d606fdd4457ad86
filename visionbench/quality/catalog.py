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
``vif_p``, ``haarpsi``, ``fsim``, ``vmaf``) are the same under every profile. Every function takes
``(x, y, data_range)`` on ``(N, C, H, W)`` tensors and returns float64 ``[N]``; ``vmaf`` (FFmpeg's
libvmaf, integer samples, not differentiable) is run by :func:`~visionbench.quality.assess` on the
pairs as read, and on whole videos, before any channel conversion (:mod:`visionbench.quality.vmaf`).
FFmpeg-profile integer sums run on the CPU whatever the tensors' device (values return on it).

**No-reference** metrics (``niqe``, ``brisque``; :mod:`~visionbench.quality.no_reference`) score the
distorted image ``y`` alone; the reference is still read and paired (give the same path twice when
there is none). **Model files** come only from the user, never from the network: ``brisque`` needs
one (the LIVE release's ``allmodel`` with ``allrange`` beside it), ``lpips`` and ``dists`` too (their
weights, :mod:`~visionbench.quality.learned`), and ``niqe`` takes one optionally (LIVE's
``modelparameters.mat`` converted to ``.npz``; by default the model visionbench fits on
scikit-image's photographs).
``fsim`` of grayscale planes (e.g. ``--channel gray-matlab``) is FSIM, of RGB FSIMc.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

Profile = Literal["skimage", "matlab", "ffmpeg"]
PROFILES: tuple[str, ...] = ("skimage", "matlab", "ffmpeg")
ANY_PROFILE = "*"

MetricFunction = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
ModelFile = Literal["none", "optional", "required"]


@dataclass(frozen=True)
class QualityMetric:
    """One named metric: its direction, a one-line description and its function per profile; whether
    it needs a reference, and whether it takes a model file (``with_file`` builds its function from
    the user's file, or from ``None`` for an optional file)."""

    name: str
    higher_is_better: bool
    description: str
    functions: dict[str, MetricFunction]
    reference: bool = True
    model_file: ModelFile = "none"
    with_file: Callable[[Path | None], MetricFunction] | None = None

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


def _fsim(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
    """FSIMc of RGB planes, FSIM of a single plane (whose colour terms do not exist)."""
    from visionbench.quality.perceptual import fsim

    return fsim(x, y, data_range=r, chromatic=x.shape[1] == 3)


def _niqe_with(path: Path | None) -> MetricFunction:
    """NIQE of the distorted image with the pristine model of ``path`` (the shipped one for None)."""
    from visionbench.quality.no_reference import load_niqe_model, niqe

    model = load_niqe_model(path)

    def call(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
        return niqe(y, data_range=r, model=model)

    call.__name__ = call.__qualname__ = "no_reference.niqe"
    return call


def _brisque_with(path: Path | None) -> MetricFunction:
    """BRISQUE of the distorted image with the user's regressor (``path`` is required)."""
    from visionbench.quality.no_reference import brisque, load_brisque_model

    model = load_brisque_model(path)  # type: ignore[arg-type]

    def call(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
        return brisque(y, data_range=r, model=model)

    call.__name__ = call.__qualname__ = "no_reference.brisque"
    return call


def _lpips_with(path: Path | None) -> MetricFunction:
    """LPIPS with the user's weights file (``path`` is required)."""
    from visionbench.quality.learned import load_lpips, lpips

    weights = load_lpips(path)  # type: ignore[arg-type]

    def call(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
        return lpips(x, y, data_range=r, weights=weights)

    call.__name__ = call.__qualname__ = "learned.lpips"
    return call


def _dists_with(path: Path | None) -> MetricFunction:
    """DISTS with the user's weights file (``path`` is required; VGG-16 from it or the torch hub cache)."""
    from visionbench.quality.learned import dists, load_dists

    weights = load_dists(path)  # type: ignore[arg-type]

    def call(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
        return dists(x, y, data_range=r, weights=weights)

    call.__name__ = call.__qualname__ = "learned.dists"
    return call


def _niqe_default(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
    """NIQE of the distorted image with the shipped pristine model."""
    return _niqe_with(None)(x, y, r)


def _needs_file(name: str, what: str) -> MetricFunction:
    """A function that says which file ``name`` needs (for callers that skip :func:`resolve_metrics`)."""

    def call(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
        raise ValueError(f"{name} needs {what}; nothing is downloaded. Pass model_files={{{name!r}: FILE}}.")

    return call


def integer_planes(x: torch.Tensor) -> torch.Tensor:
    """``x`` as FFmpeg's integer samples: unchanged when already integral, else rounded half up."""
    if not x.is_floating_point():
        return x
    return torch.floor(x + 0.5)


def _planes(x: torch.Tensor) -> list[torch.Tensor]:
    # FFmpeg's exact integer sums are CPU code; CUDA planes are copied over (small next to decoding).
    return [integer_planes(x[:, c]).cpu() for c in range(x.shape[1])]


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
        return scores(x, y, r)[key].to(x.device)

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
    QualityMetric("fsim", True, "feature similarity (Zhang et al. 2011)", {ANY_PROFILE: _fsim}),
    QualityMetric("niqe", False, "no-reference naturalness (Mittal et al. 2013), of DIST alone",
                  {ANY_PROFILE: _niqe_default}, reference=False, model_file="optional", with_file=_niqe_with),
    QualityMetric("brisque", False, "no-reference spatial quality (Mittal et al. 2012), of DIST alone; "
                  "needs your trained model", {ANY_PROFILE: _needs_file("brisque", "a trained model (LIVE's allmodel)")},
                  reference=False, model_file="required", with_file=_brisque_with),
    QualityMetric("lpips", False, "learned perceptual distance, VGG (Zhang et al. 2018); needs your weights file",
                  {ANY_PROFILE: _needs_file("lpips", "a weights file")}, model_file="required", with_file=_lpips_with),
    QualityMetric("dists", False, "deep image structure and texture similarity (Ding et al. 2020); needs your "
                  "weights file", {ANY_PROFILE: _needs_file("dists", "a weights file (alpha and beta)")},
                  model_file="required", with_file=_dists_with),
    # Scored by FFmpeg's libvmaf (visionbench.quality.vmaf); assess() runs it on whole videos, not frame by frame.
    QualityMetric("vmaf", True, "Netflix's VMAF through FFmpeg's libvmaf (CPU), 0-100",
                  {ANY_PROFILE: _lazy("vmaf", "vmaf")}),
)}


def check_profile(profile: str) -> Profile:
    """``profile`` itself if known, else a ``ValueError`` listing the profiles."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}.")
    return profile  # type: ignore[return-value]


def resolve_metrics(names: tuple[str, ...] | list[str], profile: str,
                    model_files: Mapping[str, str | Path] | None = None) -> dict[str, MetricFunction]:
    """Name → function for ``names`` under ``profile``; unknown names get close-match suggestions.

    ``model_files`` maps metric names to the user's model files (``brisque``, ``lpips`` and
    ``dists`` need one, ``niqe`` takes one); each is loaded once here.
    """
    import difflib

    check_profile(profile)
    files = {name: Path(path) for name, path in (model_files or {}).items()}
    for name in files:
        if name not in names:
            raise ValueError(f"a model file is given for {name!r}, which is not among the metrics {', '.join(names)}.")
        if name in QUALITY_METRICS and QUALITY_METRICS[name].model_file == "none":
            raise ValueError(f"{name} takes no model file; leave it out of model_files.")
    if not names:
        raise ValueError(f"give at least one metric, from: {', '.join(QUALITY_METRICS)}.")
    resolved = {}
    for name in names:
        if name not in QUALITY_METRICS:
            close = difflib.get_close_matches(name, list(QUALITY_METRICS), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown quality metric {name!r}; known: {', '.join(QUALITY_METRICS)}.{hint}")
        metric = QUALITY_METRICS[name]
        if metric.with_file is None:
            resolved[name] = metric.function(profile)
        elif metric.model_file == "required" and name not in files:
            raise ValueError(f"{name} needs a model file you provide (nothing is downloaded): pass "
                             f"model_files={{{name!r}: FILE}} (see visionbench.quality.catalog).")
        else:
            resolved[name] = metric.with_file(files.get(name))
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
