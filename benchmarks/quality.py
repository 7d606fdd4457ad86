"""Benchmark: image and video quality against scikit-image, piq, torchmetrics and FFmpeg.

In one process, on the same inputs (CPU, 2 threads), each timed as the best of a few repeats
after one warm-up:

1. SSIM (and PSNR) of a 512x512 RGB pair, a 1920x1080 RGB pair and a batch of 16 512x512 pairs:
   visionbench's skimage profile against scikit-image (the reference: the values must agree to
   1e-6), piq (``piq.ssim`` as called by default, which downsamples by 2 first, and with
   ``downsample=False``, the same work as ours) and torchmetrics (which averages over padded borders,
   so its value differs).
2. A 1080p 8-bit video pair (Y plane, PSNR + SSIM), decoded frame by frame: visionbench's ffmpeg
   profile (and the skimage profile) in frames per second, against ``ffmpeg -lavfi
   "[0:v][1:v]ssim;[0:v][1:v]psnr"`` on the same files, whose per-frame Y values must agree.

Targets (issue 5): >= 5x faster than scikit-image and >= 1.5x faster than piq at 512x512 RGB,
skimage-profile values equal to scikit-image to 1e-6; the video at >= 30 frames/s on 2 cores.
Run: ``.venv/bin/python benchmarks/quality.py`` (about two minutes).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from visionbench.quality import assess, psnr, ssim

VIDEO_FRAMES = 90


def noisy(image: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)


def nchw(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, channel_axis=2)


def interleaved_best(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, object]]:
    """Best time of each contender, running them in turn within every repeat, so a slow spell of
    this (noisy, shared) machine hits all of them alike and the ratios stay fair."""
    results = {name: fn() for name, fn in contenders.items()}  # warm-up
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(repeats):
        for name, fn in contenders.items():
            started = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: (best[name], results[name]) for name in contenders}


def bench_images(name: str, refs: list[np.ndarray], dists: list[np.ndarray]) -> dict[str, float]:
    import piq
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    x, y = nchw(refs), nchw(dists)
    xf, yf = x.float(), y.float()
    repeats = 5 if len(refs) > 1 or refs[0].size > 10**6 else 15
    pairs = list(zip(refs, dists, strict=True))
    contenders = {
        "skimage": lambda: [skimage_ssim(a, b) for a, b in pairs],
        "piq": lambda: piq.ssim(xf, yf, data_range=255.0, reduction="none"),
        "piq_full": lambda: piq.ssim(xf, yf, data_range=255.0, downsample=False, reduction="none"),
        "torchmetrics": lambda: tm_ssim(xf, yf, data_range=255.0, reduction="none"),
    }
    timed: dict[str, tuple[float, object]] = {}
    ratios: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, fn in contenders.items():  # ours and one competitor in turn: each ratio from one paired run
            pair = interleaved_best({"ours": lambda: ssim(x, y), key: fn}, repeats)
            timed[key] = pair[key]
            ratios[key] = pair[key][0] / pair["ours"][0]
            if "ours" not in timed or pair["ours"][0] < timed["ours"][0]:
                timed["ours"] = pair["ours"]
        pair = interleaved_best({"ours_psnr": lambda: psnr(x, y),
                                 "skimage_psnr": lambda: [peak_signal_noise_ratio(a, b, data_range=255) for a, b in pairs]},
                                repeats)
        timed.update(pair)
    t = {key: value[0] for key, value in timed.items()}
    ours, sk, tm = timed["ours"][1], timed["skimage"][1], timed["torchmetrics"][1]
    gap = float(np.max(np.abs(ours.numpy() - np.array(sk))))
    psnr_gap = float(np.max(np.abs(timed["ours_psnr"][1].numpy() - np.array(timed["skimage_psnr"][1]))))
    tm_gap = float(np.max(np.abs(tm.double().numpy() - np.array(sk))))
    print(f"\n{name}: SSIM (best of {repeats}; each ratio from ours and that tool run in turn)")
    print(f"  visionbench (skimage profile) {t['ours'] * 1e3:8.1f} ms   max |ours - scikit-image| = {gap:.1e}")
    print(f"  scikit-image                  {t['skimage'] * 1e3:8.1f} ms   ratio {ratios['skimage']:5.2f}x")
    print(f"  piq (downsample=False)        {t['piq_full'] * 1e3:8.1f} ms   ratio {ratios['piq_full']:5.2f}x"
          "   (the same full-resolution SSIM)")
    print(f"  piq (default call)            {t['piq'] * 1e3:8.1f} ms   ratio {ratios['piq']:5.2f}x"
          "   (downsamples by round(min(H,W)/256) first: a different, cheaper number)")
    print(f"  torchmetrics                  {t['torchmetrics'] * 1e3:8.1f} ms   ratio {ratios['torchmetrics']:5.2f}x"
          f"   (its value differs by up to {tm_gap:.1e})")
    print(f"  PSNR: visionbench {t['ours_psnr'] * 1e3:.1f} ms, scikit-image {t['skimage_psnr'] * 1e3:.1f} ms "
          f"(max difference {psnr_gap:.1e} dB)")
    return {**t, "gap": gap, **{f"{k}_ratio": v for k, v in ratios.items()}}


def make_videos(folder: Path) -> tuple[Path, Path]:
    """A 1080p reference (lossless x264 of FFmpeg's testsrc2 with noise) and a distorted version (x264 crf 38)."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    ref, dist = folder / "ref.mkv", folder / "dist.mkv"
    source = f"testsrc2=size=1920x1080:rate=30:duration={VIDEO_FRAMES / 30},noise=alls=12:allf=t"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", source, "-c:v", "libx264", "-qp", "0",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(ref)], check=True)
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(ref), "-c:v", "libx264", "-crf", "38", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(dist)], check=True)
    return ref, dist


def run_ffmpeg(ref: Path, dist: Path, folder: Path) -> tuple[float, list[float], list[float]]:
    """Seconds for FFmpeg's ssim+psnr filters, and its per-frame Y SSIM and Y MSE."""
    import imageio_ffmpeg

    ssim_log, psnr_log = folder / "ssim.log", folder / "psnr.log"
    graph = f"[0:v][1:v]ssim=stats_file={ssim_log};[0:v][1:v]psnr=stats_file={psnr_log}"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-threads", "2", "-i", str(ref), "-i", str(dist),
               "-lavfi", graph, "-f", "null", "-"]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    ssim_y = [float(m) for m in re.findall(r"\bY:([0-9.]+)", ssim_log.read_text())]
    mse_y = [float(m) for m in re.findall(r"\bmse_y:([0-9.]+)", psnr_log.read_text())]
    return seconds, ssim_y, mse_y


def bench_video() -> None:
    torch_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ref, dist = make_videos(folder)
        t_ffmpeg, ffmpeg_ssim, ffmpeg_mse = min((run_ffmpeg(ref, dist, folder) for _ in range(2)), key=lambda r: r[0])
        results = {}
        for profile in ("ffmpeg", "skimage"):
            started = time.perf_counter()
            results[profile] = assess(ref, dist, metrics=("psnr", "ssim", "mse"), profile=profile, channel="y",
                                      examples=0)
            results[profile + "_seconds"] = time.perf_counter() - started  # type: ignore[assignment]
    ours = results["ffmpeg"]
    ssim_gap = max(abs(row["ssim"] - v) for row, v in zip(ours.rows, ffmpeg_ssim, strict=True))  # type: ignore[union-attr]
    mse_gap = max(abs(row["mse"] - v) for row, v in zip(ours.rows, ffmpeg_mse, strict=True))  # type: ignore[union-attr]
    frames = len(ours.rows)  # type: ignore[union-attr]
    print(f"\n1080p 8-bit video, {frames} frames, Y plane, PSNR + SSIM ({torch_threads} threads):")
    for profile in ("ffmpeg", "skimage"):
        seconds = results[profile + "_seconds"]
        print(f"  visionbench --profile {profile:<8} {frames / seconds:6.1f} frames/s ({seconds:.2f} s, decoding included)")
    print(f"  ffmpeg -lavfi ssim;psnr         {frames / t_ffmpeg:6.1f} frames/s ({t_ffmpeg:.2f} s)")
    print(f"  per-frame agreement with FFmpeg's stats files: SSIM Y max |diff| {ssim_gap:.1e} "
          f"(printed to 6 decimals), MSE Y max |diff| {mse_gap:.1e} (printed to 2 decimals)")


def main() -> int:
    torch.set_num_threads(2)
    astronaut = data.astronaut()
    chelsea = data.chelsea()
    big = (resize(chelsea, (1080, 1920), order=1, anti_aliasing=False) * 255).round().astype(np.uint8)
    one = bench_images("512x512 RGB pair", [astronaut], [noisy(astronaut, 0)])
    bench_images("1920x1080 RGB pair", [big], [noisy(big, 1)])
    batch = [np.roll(astronaut, 16 * i, axis=1) for i in range(16)]
    bench_images("batch of 16 512x512 RGB pairs", batch, [noisy(a, 2 + i) for i, a in enumerate(batch)])
    bench_video()
    like_for_like = one["skimage_ratio"] >= 5 and one["piq_full_ratio"] >= 1.5 and one["gap"] <= 1e-6
    print(f"\n512x512 RGB targets (>= 5x scikit-image, >= 1.5x piq computing the same SSIM, equal to 1e-6): "
          f"{'met' if like_for_like else 'NOT met'}; against piq's default (half-resolution) call: "
          f"{one['piq_ratio']:.2f}x ({'met' if one['piq_ratio'] >= 1.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
