"""Image quality: full-reference metrics on ``(N, C, H, W)`` tensors (PSNR, SSIM, ...), and
:func:`assess_paths` for two images or two folders (``visionbench quality`` /
``visionbench.api.quality`` write it to a run directory)."""

from visionbench.quality.assess import assess_paths
from visionbench.quality.full_reference import gaussian_window, psnr, psnr_db_of_mse, ssim, ssim_map

__all__ = ["assess_paths", "gaussian_window", "psnr", "psnr_db_of_mse", "ssim", "ssim_map"]
