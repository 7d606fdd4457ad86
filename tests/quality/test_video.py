"""Videos: decoded frame by frame, paired, checked, and measured on the stored luma plane."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from visionbench import cli
from visionbench.quality import assess
from visionbench.quality.video import frame_planes, probe_video


def _luma_frames(count: int, height: int, width: int, seed: int, noise: float) -> np.ndarray:
    """``uint8 [T, H, W]``: a moving gradient with texture, plus seeded noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = [(96 + 60 * np.sin((xx + 3 * t) / 7.0) + 40 * np.cos(yy / 5.0)) for t in range(count)]
    base = np.stack(frames)
    return np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)


def write_yuv420_video(path: Path, luma: np.ndarray, *, rate: int = 25, codec: str = "ffv1") -> None:
    """A lossless yuv420p video whose decoded Y planes are exactly ``luma`` (chroma flat grey)."""
    count, height, width = luma.shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for plane in luma:
            chroma = np.full((height // 2, width // 2), 128, np.uint8)
            packed = np.concatenate([plane, chroma.reshape(-1, width), chroma.reshape(-1, width)])
            for packet in stream.encode(av.VideoFrame.from_ndarray(packed, format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture
def videos(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    ref = _luma_frames(5, 48, 64, seed=0, noise=0)
    dist = np.clip(ref.astype(np.int16) + np.random.default_rng(1).normal(0, 6, ref.shape), 0, 255).astype(np.uint8)
    dist[2] = ref[2]  # one identical frame: PSNR = inf for that frame
    write_yuv420_video(tmp_path / "ref.mkv", ref)
    write_yuv420_video(tmp_path / "dist.mkv", dist)
    return tmp_path / "ref.mkv", tmp_path / "dist.mkv", ref, dist


def test_luma_plane_equals_scikit_image_per_frame(videos: tuple[Path, Path, np.ndarray, np.ndarray]) -> None:
    ref_path, dist_path, ref, dist = videos
    result = assess(ref_path, dist_path, metrics=("psnr", "ssim"))
    assert result.settings["kind"] == "videos" and result.settings["channel"] == "y"
    assert result.settings["data_range"] == 255
    assert [row["item"] for row in result.rows] == ["0", "1", "2", "3", "4"]
    assert [row["time"] for row in result.rows] == pytest.approx([0, 0.04, 0.08, 0.12, 0.16])
    for row, a, b in zip(result.rows, ref, dist, strict=True):
        expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         data_range=255)
        assert row["ssim"] == pytest.approx(expected, abs=1e-12)
        if not np.array_equal(a, b):
            assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)
    assert result.rows[2]["psnr"] == float("inf") and result.rows[2]["ssim"] == 1.0
    psnr = result.pooled["psnr"]
    assert psnr["non_finite_items"] == 1
    finite = [r["psnr"] for i, r in enumerate(result.rows) if i != 2]
    assert psnr["value"] == pytest.approx(np.mean(finite))
    mean_mse = np.mean([np.mean((a.astype(float) - b) ** 2) for a, b in zip(ref, dist, strict=True)])
    assert result.pooled["psnr_pooled_mse"]["value"] == pytest.approx(10 * np.log10(255**2 / mean_mse), abs=1e-9)


def test_stored_luma_is_read_exactly_also_at_10_bits(tmp_path: Path) -> None:
    luma = (np.arange(48 * 64).reshape(48, 64) % 1024).astype(np.uint16)
    with av.open(str(tmp_path / "deep.mkv"), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p10le"
        chroma = np.full((24, 32), 512, np.uint16)
        packed = np.concatenate([luma, chroma.reshape(-1, 64), chroma.reshape(-1, 64)])
        for packet in stream.encode(av.VideoFrame.from_ndarray(packed, format="yuv420p10le")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe_video(tmp_path / "deep.mkv")
    assert info.bits == 10 and (info.width, info.height) == (64, 48)
    with av.open(str(tmp_path / "deep.mkv")) as container:
        frame = next(container.decode(video=0))
        plane = frame_planes(frame, "y", info.bits)
    assert plane.shape == (1, 1, 48, 64) and torch.equal(plane[0, 0].long(), torch.from_numpy(luma).long())
    result = assess(tmp_path / "deep.mkv", tmp_path / "deep.mkv", metrics=("psnr",))
    assert result.settings["data_range"] == 1023


def test_rgb_channel_compares_three_planes(videos: tuple[Path, Path, np.ndarray, np.ndarray]) -> None:
    ref_path, dist_path, _, _ = videos
    result = assess(ref_path, dist_path, metrics=("ssim",), channel="rgb", examples=2)
    assert result.settings["channel"] == "rgb" and len(result.rows) == 5
    assert len(result.examples) == 2 and result.examples[0].ref.shape == (48, 64, 3)
    assert result.examples[0].value <= result.examples[1].value  # worst first


def test_mismatched_videos_are_refused(tmp_path: Path, videos: tuple[Path, Path, np.ndarray, np.ndarray]) -> None:
    ref_path, _, ref, _ = videos
    write_yuv420_video(tmp_path / "short.mkv", ref[:3])
    write_yuv420_video(tmp_path / "fast.mkv", ref, rate=50)
    write_yuv420_video(tmp_path / "small.mkv", ref[:, :32, :32])
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    cases = [("short.mkv", "same number of frames"), ("fast.mkv", "same frame rate"), ("small.mkv", "same frame size"),
             ("broken.mp4", "cannot read video")]
    for name, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            assess(ref_path, tmp_path / name)
        assert "Traceback" not in str(error.value)
    with pytest.raises(ValueError, match="two videos or two images"):
        assess(ref_path, Path(__file__))
    with pytest.raises(ValueError, match="stored luma plane"):
        assess(ref_path, ref_path, channel="y-studio")


def test_cli_writes_per_frame_csv_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             videos: tuple[Path, Path, np.ndarray, np.ndarray]) -> None:
    ref_path, dist_path, _, _ = videos
    code = cli.main(["quality", str(ref_path), str(dist_path), "--csv", "--out", str(tmp_path / "run")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0] == "item,time,psnr,ssim,mse" and len(lines) == 6
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["pooling"] == "mean over frames" and metrics["settings"]["kind"] == "videos"
    report = (tmp_path / "run" / "report.html").read_text()
    assert "Per frame" in report and "Worst items" in report and "data:image/png;base64," in report


def test_ffmpeg_profile_equals_the_ffmpeg_binary_per_frame(tmp_path: Path,
                                                            videos: tuple[Path, Path, np.ndarray, np.ndarray]) -> None:
    import re
    import subprocess

    import imageio_ffmpeg

    ref_path, dist_path, _, _ = videos
    log = tmp_path / "ssim.log"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(ref_path), "-i", str(dist_path),
                    "-lavfi", f"[0:v][1:v]ssim=stats_file={log}", "-f", "null", "-"], check=True)
    ffmpeg_y = [float(v) for v in re.findall(r"\bY:([0-9.]+)", log.read_text())]
    result = assess(ref_path, dist_path, metrics=("ssim", "psnr"), profile="ffmpeg")
    assert len(ffmpeg_y) == len(result.rows) == 5
    for row, expected in zip(result.rows, ffmpeg_y, strict=True):
        assert row["ssim"] == pytest.approx(expected, abs=1e-6)  # FFmpeg prints 6 decimals
