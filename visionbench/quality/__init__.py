"""Image and video quality: full-reference metrics on ``(N, C, H, W)`` tensors, their profiles
(:mod:`~visionbench.quality.catalog`), colour conventions (:mod:`~visionbench.quality.color`),
and :func:`assess` for tensors, two images, two folders or two videos (``visionbench quality`` /
:func:`visionbench.api.quality` write it to a run directory).

Every metric returns float64 per image (``[N]``) and is differentiable, so ``1 - ssim(x, y)`` is a loss.
"""

from visionbench.quality.assessment import QualityResult, assess
from visionbench.quality.catalog import PROFILES, QUALITY_METRICS
from visionbench.quality.color import CHANNELS, crop_border, to_channel
from visionbench.quality.ffmpeg import FFmpegSummary, ffmpeg_frame_scores, psnr_ffmpeg_plane_mse, ssim_ffmpeg_plane
from visionbench.quality.full_reference import gaussian_window, mae, mse, psnr, psnr_db_of_mse, ssim, ssim_map
from visionbench.quality.learned import load_lpips, lpips
from visionbench.quality.matlab import ms_ssim_matlab, ssim_matlab
from visionbench.quality.no_reference import brisque, load_brisque_model, load_niqe_model, niqe
from visionbench.quality.perceptual import fsim, haarpsi, vif_p
from visionbench.quality.structural import gmsd, ms_ssim

__all__ = [
    "CHANNELS", "PROFILES", "QUALITY_METRICS", "FFmpegSummary", "QualityResult", "assess", "crop_border",
    "ffmpeg_frame_scores", "fsim", "gaussian_window", "gmsd", "haarpsi", "mae", "ms_ssim", "ms_ssim_matlab", "mse",
    "psnr", "psnr_db_of_mse", "psnr_ffmpeg_plane_mse", "ssim", "ssim_ffmpeg_plane", "ssim_map", "ssim_matlab",
    "to_channel", "vif_p", "brisque", "load_brisque_model", "load_lpips", "load_niqe_model", "lpips", "niqe",
]
