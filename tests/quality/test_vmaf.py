"""VMAF through FFmpeg's libvmaf, against libvmaf's own JSON log from running the filter directly.

The videos are FFmpeg's ``testsrc2`` pattern (160x90, 12 frames) and MPEG-4 encodes of it; both the
log written here and ours hold libvmaf's printed 6 decimals, so the values are compared exactly.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.color import rgb2ycbcr

pytest.importorskip("av")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

from visionbench import cli  # noqa: E402
from visionbench.quality import assess  # noqa: E402
from visionbench.quality import vmaf as vmaf_module  # noqa: E402
from visionbench.quality.video import probe_video  # noqa: E402
from visionbench.quality.vmaf import (  # noqa: E402
    VMAF_MODELS,
    LibvmafNotFoundError,
    find_ffmpeg_with_libvmaf,
    image_yuv444,
    run_libvmaf,
    vmaf_command,
    vmaf_filter,
    vmaf_videos,
)

FRAMES = 12


def _ffmpeg() -> str:
    try:
        return find_ffmpeg_with_libvmaf()
    except LibvmafNotFoundError as error:
        pytest.skip(f"no FFmpeg with libvmaf here: {error}")


def _encode(*args: str) -> None:
    subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=60)


def _direct_log(folder: Path, dist: list[str], ref: list[str], options: str = "") -> dict:
    """libvmaf's JSON log of ``ffmpeg DIST REF -lavfi libvmaf`` run by hand (distorted first, as the filter wants)."""
    folder.mkdir(parents=True, exist_ok=True)
    graph = f"[0:v][1:v]libvmaf=log_fmt=json:log_path=direct.json{options}"
    subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", *dist, *ref, "-lavfi", graph, "-f", "null", "-"],
                   cwd=folder, check=True, timeout=60)
    return json.loads((folder / "direct.json").read_text())


def _log_frames(log: dict, key: str = "vmaf") -> list[float]:
    return [frame["metrics"][key] for frame in sorted(log["frames"], key=lambda f: f["frameNum"])]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vmaf")
    paths = {name: root / f"{name}.{suffix}" for name, suffix in
             (("ref", "mp4"), ("dist", "mp4"), ("gap", "mkv"), ("short", "mp4"), ("yuv444", "mkv"), ("gray", "mkv"))}
    source = ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25,format=yuv420p", "-frames:v", str(FRAMES)]
    _encode(*source, "-c:v", "mpeg4", "-q:v", "1", str(paths["ref"]))
    _encode("-i", str(paths["ref"]), "-c:v", "mpeg4", "-q:v", "20", str(paths["dist"]))
    # The same frames, losslessly, with a 3-frame gap in the timestamps after the first: libvmaf by
    # itself pairs frames by time (so frame 1 with the reference's frame 4), visionbench by index.
    _encode("-i", str(paths["dist"]), "-vf", "setpts='if(eq(N,0),0,PTS+3/(25*TB))'", "-fps_mode", "passthrough",
            "-c:v", "ffv1", str(paths["gap"]))
    _encode("-i", str(paths["dist"]), "-frames:v", str(FRAMES - 3), "-c:v", "mpeg4", "-q:v", "20", str(paths["short"]))
    _encode("-i", str(paths["dist"]), "-pix_fmt", "yuv444p", "-c:v", "ffv1", str(paths["yuv444"]))
    _encode("-i", str(paths["ref"]), "-pix_fmt", "gray", "-c:v", "ffv1", str(paths["gray"]))
    return paths


def test_video_frames_and_pooled_values_equal_libvmafs_log(videos: dict[str, Path], tmp_path: Path) -> None:
    log = _direct_log(tmp_path, ["-i", str(videos["dist"])], ["-i", str(videos["ref"])])
    result = assess(videos["ref"], videos["dist"], metrics=("vmaf",))
    assert [row["vmaf"] for row in result.rows] == _log_frames(log)
    assert len(result.rows) == FRAMES and [row["item"] for row in result.rows] == [str(i) for i in range(FRAMES)]
    entry = result.pooled["vmaf"]
    assert entry["value"] == log["pooled_metrics"]["vmaf"]["mean"]
    assert entry["harmonic_mean"] == log["pooled_metrics"]["vmaf"]["harmonic_mean"]
    assert entry["value"] == pytest.approx(np.mean(_log_frames(log)), abs=1e-6)
    low, high = entry["ci95"]
    assert low < entry["value"] < high and entry["model"] == "vmaf_v0.6.1" and entry["higher_is_better"]
    assert entry["libvmaf_version"] == log["version"] and result.settings["vmaf_model"] == "vmaf_v0.6.1"
    # libvmaf's first input is the distorted one: the other way round gives other scores.
    swapped = _direct_log(tmp_path / "swapped", ["-i", str(videos["ref"])], ["-i", str(videos["dist"])])
    assert _log_frames(swapped) != _log_frames(log)


def test_frames_are_paired_by_index_whatever_their_timestamps(videos: dict[str, Path], tmp_path: Path) -> None:
    ref, dist, gap = (probe_video(videos[name]) for name in ("ref", "dist", "gap"))
    on_time, shifted = vmaf_videos(ref, dist), vmaf_videos(ref, gap)
    assert shifted.frames == on_time.frames and len(on_time.frames) == FRAMES
    by_time = _log_frames(_direct_log(tmp_path, ["-i", str(videos["gap"])], ["-i", str(videos["ref"])]))
    assert by_time[0] == on_time.frames[0] and by_time[1:] != on_time.frames[1:]


def test_progress_ticks_once_per_frame(videos: dict[str, Path]) -> None:
    ticks, totals = [], []

    def progress(items, total):  # type: ignore[no-untyped-def]
        totals.append(total)
        for item in items:
            ticks.append(item)
            yield item

    scores = vmaf_videos(probe_video(videos["ref"]), probe_video(videos["dist"]), progress=progress)
    assert len(ticks) == len(scores.frames) == FRAMES and totals == [FRAMES]


def test_models_by_name_match_libvmaf_and_name_themselves_in_the_log(videos: dict[str, Path], tmp_path: Path) -> None:
    ref, dist = probe_video(videos["ref"]), probe_video(videos["dist"])
    means = {}
    for model in VMAF_MODELS:
        direct = _direct_log(tmp_path / model, ["-i", str(videos["dist"])], ["-i", str(videos["ref"])],
                             f":model=version={model}")
        ours = vmaf_videos(ref, dist, model=model)
        assert ours.model == model and ours.frames == _log_frames(direct)
        assert (ours.mean, ours.harmonic_mean) == (direct["pooled_metrics"]["vmaf"]["mean"],
                                                    direct["pooled_metrics"]["vmaf"]["harmonic_mean"])
        means[model] = ours.mean
        # Our own log: the scores are keyed by the model's name; the NEG model's features are its own.
        folder = tmp_path / f"ours-{model}"
        folder.mkdir()
        command = vmaf_command(_ffmpeg(), ["-i", str(videos["ref"])], ["-i", str(videos["dist"])], vmaf_filter(model))
        metrics = run_libvmaf(command, folder, "test videos")["frames"][0]["metrics"]
        assert model in metrics and "vmaf" not in metrics
        assert any(name.endswith("_egl_1") for name in metrics) == (model == "vmaf_v0.6.1neg")
    assert len(set(means.values())) == len(VMAF_MODELS)
    with pytest.raises(ValueError, match="vmaf model must be one of vmaf_v0.6.1, vmaf_4k_v0.6.1, vmaf_v0.6.1neg"):
        assess(videos["ref"], videos["dist"], metrics=("vmaf",), vmaf_model="vmaf_v0.6.2")


def _raw_input(path: Path, planes: np.ndarray, pix_fmt: str) -> list[str]:
    path.write_bytes(np.ascontiguousarray(planes.astype(np.uint8 if pix_fmt == "yuv444p" else "<u2")).tobytes())
    return ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{planes.shape[2]}x{planes.shape[1]}", "-i", str(path)]


def _ycbcr_oracle(image: np.ndarray) -> np.ndarray:
    """scikit-image's rgb2ycbcr (BT.601 studio range), rounded half up: ``uint16 [3, H, W]``."""
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    return np.floor(rgb2ycbcr(rgb) + 0.5).astype(np.uint16).transpose(2, 0, 1)


def test_image_pairs_are_one_frame_videos_in_studio_range_yuv444(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = {"colour": data.astronaut()[100:196, 150:278], "gray": data.camera()[200:296, 200:328]}
    for name, reference in images.items():
        distorted = np.clip(reference + rng.normal(0, 12, reference.shape), 0, 255).astype(np.uint8)
        ref_path, dist_path = tmp_path / f"{name}_ref.png", tmp_path / f"{name}_dist.png"
        Image.fromarray(reference).save(ref_path)
        Image.fromarray(distorted).save(dist_path)
        result = assess(ref_path, dist_path, metrics=("psnr", "vmaf"))
        planes = {side: _ycbcr_oracle(image) for side, image in (("ref", reference), ("dist", distorted))}
        nchw = torch.from_numpy(np.ascontiguousarray(reference.reshape(*reference.shape[:2], -1).transpose(2, 0, 1)))
        assert np.array_equal(image_yuv444(nchw[None], 255.0), planes["ref"])  # our conversion is rgb2ycbcr's
        log = _direct_log(tmp_path / name, _raw_input(tmp_path / f"{name}_d.yuv", planes["dist"], "yuv444p"),
                          _raw_input(tmp_path / f"{name}_r.yuv", planes["ref"], "yuv444p"))
        assert [row["vmaf"] for row in result.rows] == _log_frames(log)
        assert result.pooled["vmaf"]["value"] == result.pooled["vmaf"]["harmonic_mean"] == _log_frames(log)[0]
        assert list(result.rows[0]) == ["item", "psnr", "vmaf", "mse"]


def test_deep_images_reach_libvmaf_at_their_bit_depth(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    reference = (data.camera()[:96, :128].astype(np.uint16) * 4 + rng.integers(0, 4, (96, 128))).astype(np.uint16)
    distorted = np.clip(reference + rng.normal(0, 40, reference.shape), 0, 1023).astype(np.uint16)
    for name, image in (("ref.png", reference), ("dist.png", distorted)):
        Image.fromarray(image).save(tmp_path / name)
    result = assess(tmp_path / "ref.png", tmp_path / "dist.png", metrics=("vmaf",), data_range=1023)
    # 10-bit studio range: Y = 64 + 876 g / 1023, chroma 512, written as yuv444p10le by hand.
    planes = [np.stack([np.floor(64 + 876 * g / 1023 + 0.5), np.full(g.shape, 512), np.full(g.shape, 512)])
              for g in (reference.astype(np.float64), distorted.astype(np.float64))]
    log = _direct_log(tmp_path / "deep", _raw_input(tmp_path / "d.yuv", planes[1], "yuv444p10le"),
                      _raw_input(tmp_path / "r.yuv", planes[0], "yuv444p10le"))
    assert result.rows[0]["vmaf"] == _log_frames(log)[0]
    assert "10-bit" in result.pooled["vmaf"]["input"]
    with pytest.raises(ValueError, match=r"8-, 10-, 12- or 16-bit samples .* got data range 2047"):
        assess(tmp_path / "ref.png", tmp_path / "dist.png", metrics=("vmaf",), data_range=2047)


@pytest.mark.parametrize(("other", "match"), [
    ("short", "same number of frames"),
    ("yuv444", r"same pixel format; got yuv420p and yuv444p .*ref\.mp4.*yuv444\.mkv"),
])
def test_mismatched_videos_are_errors_naming_both(videos: dict[str, Path], other: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        assess(videos["ref"], videos[other], metrics=("vmaf",))


def test_a_format_libvmaf_cannot_read_is_an_error_not_a_silent_conversion(videos: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"YUV 4:2:0, 4:2:2 or 4:4:4 .* got gray .*gray\.mkv.*-pix_fmt yuv420p"):
        assess(videos["gray"], videos["gray"], metrics=("vmaf",))


def _fake_ffmpeg(folder: Path) -> Path:
    """An ``ffmpeg`` that lists filters, none of them libvmaf."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ffmpeg"
    script.write_text("#!/bin/sh\necho ' ... psnr              VV->V      Calculate the PSNR of two video streams.'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


@pytest.mark.skipif(sys.platform == "win32", reason="the fake ffmpeg is a shell script")
def test_no_libvmaf_anywhere_names_both_sources_and_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake_ffmpeg(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))  # imageio-ffmpeg's binary: the fake one too
    with pytest.raises(LibvmafNotFoundError) as info:
        find_ffmpeg_with_libvmaf()
    message = str(info.value)
    assert f"`ffmpeg` on PATH ({fake}) was built without libvmaf" in message
    assert f"imageio-ffmpeg's binary ({fake}) was built without libvmaf" in message
    assert "pip install 'visionbench[vmaf]'" in message
    # Neither on PATH nor installed.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(LibvmafNotFoundError, match=r"`ffmpeg` on PATH is not found, and the imageio-ffmpeg package "
                                                   r"is not installed.*pip install 'visionbench\[vmaf\]'"):
        find_ffmpeg_with_libvmaf()
    # The command line: a clear error, no traceback.
    Image.fromarray(data.camera()[:64, :64]).save(tmp_path / "a.png")
    code = cli.main(["quality", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--metrics", "vmaf", "--quiet",
                     "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "libvmaf" in err and "pip install 'visionbench[vmaf]'" in err and "Traceback" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="the fake ffmpeg is a shell script")
def test_path_comes_first_and_imageio_ffmpeg_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = _ffmpeg()
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    if bundled != imageio_ffmpeg.get_ffmpeg_exe():
        pytest.skip("the FFmpeg with libvmaf here is not imageio-ffmpeg's")
    fake = _fake_ffmpeg(tmp_path / "without")
    monkeypatch.setenv("PATH", str(fake.parent))
    assert find_ffmpeg_with_libvmaf() == bundled  # PATH's lacks libvmaf: imageio-ffmpeg's
    linked = tmp_path / "with" / "ffmpeg"
    linked.parent.mkdir()
    os.symlink(bundled, linked)
    monkeypatch.setenv("PATH", f"{linked.parent}{os.pathsep}{fake.parent}")
    assert find_ffmpeg_with_libvmaf() == str(linked)  # PATH's has libvmaf: it comes first
    monkeypatch.setattr(vmaf_module, "_imageio_ffmpeg_exe", lambda: pytest.fail("imageio-ffmpeg asked again"))
    assert find_ffmpeg_with_libvmaf() == str(linked)  # cached for this PATH


def test_cli_end_to_end_writes_vmaf_per_frame_and_pooled(videos: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    log = _direct_log(tmp_path / "direct", ["-i", str(videos["dist"])], ["-i", str(videos["ref"])])
    run = tmp_path / "run"
    code = cli.main(["quality", str(videos["ref"]), str(videos["dist"]), "--metrics", "psnr,vmaf", "--out", str(run),
                     "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and "vmaf" in printed
    lines = (run / "items.csv").read_text().splitlines()
    assert lines[0] == "item,time,psnr,vmaf,mse" and len(lines) == FRAMES + 1
    assert [float(line.split(",")[3]) for line in lines[1:]] == _log_frames(log)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["vmaf"]["value"] == log["pooled_metrics"]["vmaf"]["mean"]
    assert metrics["vmaf"]["harmonic_mean"] == log["pooled_metrics"]["vmaf"]["harmonic_mean"]
    assert len(metrics["vmaf"]["ci95"]) == 2 and metrics["settings"]["vmaf_model"] == "vmaf_v0.6.1"
    assert metrics["psnr"]["value"] > 0 and (run / "report.html").is_file()
    code = cli.main(["quality", str(videos["ref"]), str(videos["dist"]), "--metrics", "vmaf", "--vmaf-model",
                     "vmaf_v0.6.1neg", "--json", "--out", str(tmp_path / "neg")])
    neg = json.loads(capsys.readouterr().out)
    assert code == 0 and neg["vmaf"]["model"] == "vmaf_v0.6.1neg" and neg["vmaf"]["value"] != metrics["vmaf"]["value"]
