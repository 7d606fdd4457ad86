"""Image quality: full-reference metrics on ``(N, C, H, W)`` tensors (PSNR, SSIM, ...)."""

from visionbench.quality.full_reference import gaussian_window, psnr, psnr_db_of_mse, ssim, ssim_map

__all__ = ["gaussian_window", "psnr", "psnr_db_of_mse", "ssim", "ssim_map"]
