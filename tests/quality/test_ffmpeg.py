"""The ``ffmpeg`` profile against the real FFmpeg binary (imageio-ffmpeg's), on seeded raw videos.

Each video is written as ``rawvideo`` and measured by one FFmpeg run with both filters chained
(``ssim`` with a stats file, then ``psnr``, then ``metadata=print``). What FFmpeg prints bounds the
comparison: the SSIM stats file prints the double values with ``%f`` (6 decimals, so within 5e-7
of FFmpeg's value) and so do the summary lines; the ``lavfi.psnr.*`` frame metadata are float32
values printed with ``%f`` (within 2.4e-6 dB at 30 to 60 dB), the most precise per-frame PSNR
FFmpeg prints (its stats file has 2 decimals). Hence SSIM within 1e-6, its dB within 1e-6 (which
checks ``All`` to ~1e-9 when it is near 1), per-frame PSNR within 1e-4 dB and the summary's PSNR
within 1e-6 dB. A slow loop transcription of the C code checks the float32 arithmetic to 1e-12.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visionbench.quality.ffmpeg import (
    FFmpegSummary,
    ffmpeg_frame_scores,
    ffmpeg_summary,
    psnr_ffmpeg_db,
    psnr_ffmpeg_plane_mse,
    ssim_constants,
    ssim_ffmpeg_plane,
)

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

# pix_fmt: (plane order in the file as (letter, log2 chroma subsampling), max_value)
FORMATS = {
    "gray": ((("Y", 0),), 255),
    "gray10le": ((("Y", 0),), 1023),
    "gray16le": ((("Y", 0),), 65535),
    "yuv420p": ((("Y", 0), ("U", 1), ("V", 1)), 255),
    "yuv444p": ((("Y", 0), ("U", 0), ("V", 0)), 255),
    "yuv420p10le": ((("Y", 0), ("U", 1), ("V", 1)), 1023),
    "gbrp": ((("G", 0), ("B", 0), ("R", 0)), 255),  # stored G, B, R; FFmpeg reports R, G, B
}
DISTORTIONS = ("noise", "blur", "blocky", "same")  # frame i gets DISTORTIONS[i % 4]


def _plane(rng: np.random.Generator, h: int, w: int, frame: int, max_value: int) -> np.ndarray:
    """A smooth gradient with a sine texture and mild noise, integer samples in [0, max_value]."""
    yy, xx = np.mgrid[0:h, 0:w]
    phase = rng.uniform(0, 2 * np.pi)
    base = (0.5 + 0.25 * np.sin(xx / (4 + frame) + phase) * np.cos(yy / 6) + 0.2 * xx / w - 0.15 * yy / h
            + rng.normal(0, 0.02, (h, w)))
    return np.clip(np.round(base * max_value), 0, max_value)


def _distort(plane: np.ndarray, kind: str, rng: np.random.Generator, max_value: int) -> np.ndarray:
    if kind == "noise":
        out = plane + rng.normal(0, 0.04 * max_value, plane.shape)
    elif kind == "blur":  # 3x3 box with the edge repeated
        padded = np.pad(plane, 1, mode="edge")
        out = sum(padded[i : i + plane.shape[0], j : j + plane.shape[1]] for i in range(3) for j in range(3)) / 9
    elif kind == "blocky":  # 8x8 block means, coarsely quantised
        h, w = plane.shape
        padded = np.pad(plane, ((0, -h % 8), (0, -w % 8)), mode="edge")
        means = padded.reshape(padded.shape[0] // 8, 8, -1, 8).mean(axis=(1, 3))
        step = max_value / 24
        out = np.round(np.kron(means, np.ones((8, 8)))[:h, :w] / step) * step
    else:
        out = plane
    return np.clip(np.round(out), 0, max_value)


def _video(pix_fmt: str, w: int, h: int, frames: int, seed: int, kinds: tuple[str, ...] = DISTORTIONS):
    """Reference and distorted planes ``{letter: int64 array (N, H_p, W_p)}`` in file order."""
    layout, max_value = FORMATS[pix_fmt]
    rng = np.random.default_rng(seed)
    ref, dist = {}, {}
    for letter, shift in layout:
        hp, wp = -(-h >> shift), -(-w >> shift)  # AV_CEIL_RSHIFT
        planes = [_plane(rng, hp, wp, i, max_value) for i in range(frames)]
        ref[letter] = np.stack(planes).astype(np.int64)
        dist[letter] = np.stack([_distort(p, kinds[i % len(kinds)], rng, max_value)
                                 for i, p in enumerate(planes)]).astype(np.int64)
    return ref, dist, max_value


def _write_raw(path: Path, planes: dict[str, np.ndarray], max_value: int) -> None:
    dtype = np.uint8 if max_value == 255 else np.dtype("<u2")
    frames = len(next(iter(planes.values())))
    path.write_bytes(b"".join(planes[k][i].astype(dtype).tobytes() for i in range(frames) for k in planes))


def _run_ffmpeg(tmp_path: Path, pix_fmt: str, w: int, h: int, ref: dict, dist: dict, max_value: int) -> dict:
    """FFmpeg's per-frame SSIM stats, per-frame PSNR metadata and the two summary lines, parsed."""
    _write_raw(tmp_path / "ref.raw", ref, max_value)
    _write_raw(tmp_path / "dist.raw", dist, max_value)
    raw = ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{w}x{h}"]
    graph = "[1:v]split[r1][r2];[0:v][r1]ssim=stats_file=ssim.log[m];[m][r2]psnr,metadata=mode=print:file=meta.txt"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", *raw, "-i", "dist.raw", *raw, "-i",
               "ref.raw", "-lavfi", graph, "-f", "null", "-"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    ssim_rows = []
    for line in (tmp_path / "ssim.log").read_text().splitlines():  # n:1 Y:0.99 U:0.99 V:0.99 All:0.99 (30.35)
        row = {key: float(value) for key, value in re.findall(r"(\w+):(\S+)", line)}
        row["dB"] = float(re.search(r"\((\S+)\)", line).group(1))
        ssim_rows.append(row)
    meta: list[dict[str, float]] = []
    for line in (tmp_path / "meta.txt").read_text().splitlines():
        if line.startswith("frame:"):
            meta.append({})
        elif line.startswith("lavfi.psnr."):
            key, value = line[len("lavfi.psnr."):].split("=")
            meta[-1][key] = float(value)
    ssim_line = re.search(r"SSIM (.*)$", done.stderr, re.M).group(1)  # Y:0.99 (35.0) ... All:0.99 (35.1)
    psnr_line = re.search(r"PSNR (.*)$", done.stderr, re.M).group(1)  # y:42.9 ... average:42.9 min:38.1 max:inf
    return {
        "ssim": ssim_rows,
        "psnr": meta,
        "ssim_summary": {k: (float(v), float(db)) for k, v, db in re.findall(r"(\w+):(\S+) \((\S+)\)", ssim_line)},
        "psnr_summary": {k: float(v) for k, v in re.findall(r"(\w+):(\S+)", psnr_line)},
    }


def _ours(ref: dict, dist: dict, max_value: int, pix_fmt: str) -> tuple[dict, dict, tuple[str, ...]]:
    """Our per-frame scores and summary, planes in FFmpeg's reporting order (R, G, B for gbrp)."""
    letters = ("R", "G", "B") if pix_fmt == "gbrp" else tuple(ref)
    names = letters if pix_fmt == "gbrp" else None
    scores = ffmpeg_frame_scores([torch.from_numpy(ref[k]) for k in letters],
                                 [torch.from_numpy(dist[k]) for k in letters], max_value=max_value, names=names)
    return scores, ffmpeg_summary(scores, max_value=max_value), letters


def _assert_matches_ffmpeg(tmp_path: Path, pix_fmt: str, w: int, h: int, frames: int, seed: int,
                           kinds: tuple[str, ...] = DISTORTIONS) -> None:
    ref, dist, max_value = _video(pix_fmt, w, h, frames, seed, kinds)
    theirs = _run_ffmpeg(tmp_path, pix_fmt, w, h, ref, dist, max_value)
    scores, summary, letters = _ours(ref, dist, max_value, pix_fmt)
    assert len(theirs["ssim"]) == len(theirs["psnr"]) == frames
    for i in range(frames):
        row, meta = theirs["ssim"][i], theirs["psnr"][i]
        for letter in letters:
            assert float(scores[f"ssim_{letter}"][i]) == pytest.approx(row[letter], abs=1e-6, rel=0)
            assert float(scores[f"mse_{letter.lower()}"][i]) == pytest.approx(meta[f"mse.{letter.lower()}"], abs=1e-6,
                                                                              rel=1e-6)
            assert float(scores[f"psnr_{letter.lower()}"][i]) == pytest.approx(meta[f"psnr.{letter.lower()}"],
                                                                               abs=1e-4, rel=0)
        assert float(scores["ssim_All"][i]) == pytest.approx(row["All"], abs=1e-6, rel=0)
        assert float(scores["ssim_dB"][i]) == pytest.approx(row["dB"], abs=1e-6, rel=0)
        assert float(scores["mse_avg"][i]) == pytest.approx(meta["mse_avg"], abs=1e-6, rel=1e-6)
        assert float(scores["psnr_avg"][i]) == pytest.approx(meta["psnr_avg"], abs=1e-4, rel=0)
    for letter in (*letters, "All"):
        value, db = theirs["ssim_summary"][letter]
        assert summary[f"ssim_{letter}"] == pytest.approx(value, abs=1e-6, rel=0)
        assert summary[f"ssim_{letter}_dB"] == pytest.approx(db, abs=1e-6, rel=0)
    psnr_line = theirs["psnr_summary"]
    for letter in letters:
        assert summary[f"psnr_{letter.lower()}"] == pytest.approx(psnr_line[letter.lower()], abs=1e-6, rel=0)
    for key in ("average", "min", "max"):
        assert summary[f"psnr_{key}"] == pytest.approx(psnr_line[key], abs=1e-6, rel=0)
    assert summary["frames"] == frames


@pytest.mark.parametrize(("pix_fmt", "w", "h", "frames"), [
    ("gray", 64, 48, 4),
    ("gray", 67, 53, 5),
    ("gray", 8, 8, 3),  # one 8x8 window
    ("gray", 40, 37, 3),  # (W >> 2) - 1 windows per row = 9, 10, 12: every tail length of the SIMD loop
    ("gray", 44, 35, 3),
    ("gray", 52, 41, 3),
    ("yuv420p", 67, 53, 4),  # chroma 34x27
    ("yuv420p", 130, 98, 3),  # chroma 65x49
    ("yuv420p", 17, 19, 3),  # chroma 9x10: one window row and column
    ("yuv444p", 67, 53, 4),
    ("yuv444p", 130, 98, 3),
    ("gbrp", 67, 53, 3),
    ("gray10le", 67, 53, 4),  # >8-bit: its own constants and float32 row sums
    ("gray16le", 64, 48, 3),
    ("yuv420p10le", 130, 98, 3),
])
def test_per_frame_and_summary_equal_ffmpeg(tmp_path: Path, pix_fmt: str, w: int, h: int, frames: int) -> None:
    _assert_matches_ffmpeg(tmp_path, pix_fmt, w, h, frames, seed=w * h + frames)


def test_full_hd_frame_equals_ffmpeg(tmp_path: Path) -> None:
    _assert_matches_ffmpeg(tmp_path, "yuv420p", 1920, 1080, 1, seed=7, kinds=("noise",))


def test_identical_video_prints_inf(tmp_path: Path) -> None:
    """FFmpeg has no PSNR cap: MSE 0 prints ``inf`` per frame and in the summary, SSIM 1 and dB ``inf``."""
    ref, dist, max_value = _video("yuv420p", 67, 53, 3, seed=3, kinds=("same",))
    theirs = _run_ffmpeg(tmp_path, "yuv420p", 67, 53, ref, dist, max_value)
    scores, summary, _ = _ours(ref, dist, max_value, "yuv420p")
    assert all(math.isinf(meta["psnr_avg"]) and meta["mse_avg"] == 0 for meta in theirs["psnr"])
    assert all(row["All"] == 1 and math.isinf(row["dB"]) for row in theirs["ssim"])
    assert math.isinf(theirs["psnr_summary"]["average"]) and math.isinf(theirs["ssim_summary"]["All"][1])
    assert torch.all(scores["psnr_avg"] == math.inf) and torch.all(scores["psnr_y"] == math.inf)
    assert torch.all(scores["ssim_All"] == 1) and torch.all(scores["ssim_dB"] == math.inf)
    assert summary["psnr_average"] == summary["psnr_min"] == summary["psnr_max"] == math.inf
    assert summary["ssim_All"] == 1 and summary["ssim_All_dB"] == math.inf


def _ssim_plane_loop(a: np.ndarray, b: np.ndarray, max_value: int) -> float:
    """Slow transcription of ``ssim_plane``/``ssim_plane_16bit`` for one frame: Python integers and
    numpy float32 scalars, windows visited in the C order."""
    c1, c2 = ssim_constants(max_value)
    h4, w4 = a.shape[0] >> 2, a.shape[1] >> 2
    f32 = np.float32
    total = 0.0
    for y in range(1, h4):
        row = f32(0.0)  # the >8-bit code adds a row of windows in float32
        row_double = 0.0
        for x in range(w4 - 1):
            wa = a[4 * (y - 1) : 4 * y + 4, 4 * x : 4 * x + 8].astype(object)
            wb = b[4 * (y - 1) : 4 * y + 4, 4 * x : 4 * x + 8].astype(object)
            s1, s2, ss, s12 = int(wa.sum()), int(wb.sum()), int((wa * wa + wb * wb).sum()), int((wa * wb).sum())
            variance = ss * 64 - s1 * s1 - s2 * s2
            covariance = s12 * 64 - s1 * s2
            value = (f32(2 * s1 * s2 + c1) * f32(2 * covariance + c2)) / (f32(s1 * s1 + s2 * s2 + c1)
                                                                          * f32(variance + c2))
            row = f32(row + value)
            row_double += float(value)
        total += float(row) if max_value > 255 else row_double
    return total / ((w4 - 1) * (h4 - 1))


@settings(max_examples=25, deadline=None)
@given(st.integers(8, 37), st.integers(8, 37), st.sampled_from([255, 1023, 65535]), st.integers(0, 2**31 - 1))
def test_equal_to_a_loop_transcription_of_the_c_code(h: int, w: int, max_value: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, max_value + 1, (2, h, w))
    b = np.clip(a + rng.integers(-max_value // 8, max_value // 8 + 1, a.shape), 0, max_value)
    b[1] = rng.integers(0, max_value + 1, (h, w))  # unrelated content: SSIM near 0, covariance of either sign
    ours = ssim_ffmpeg_plane(torch.from_numpy(a), torch.from_numpy(b), max_value=max_value)
    expected = [_ssim_plane_loop(a[i], b[i], max_value) for i in range(2)]
    assert ours.tolist() == pytest.approx(expected, abs=1e-12, rel=0)


def test_constants_match_the_hard_coded_8_bit_ones() -> None:
    assert ssim_constants(255) == (416, 235963)  # vf_ssim.asm: ssim_c1 416, ssim_c2 235963


@settings(max_examples=20, deadline=None)
@given(st.integers(8, 40), st.integers(8, 40), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_mse_is_the_exact_integer_mean_and_frame_scores_agree(h: int, w: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 256, (2, n, h, w), dtype=np.uint8)
    expected = ((a.astype(np.int64) - b) ** 2).sum(axis=(1, 2)) / (h * w)
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    assert psnr_ffmpeg_plane_mse(x, y).tolist() == expected.tolist()
    scores = ffmpeg_frame_scores([x], [y])  # its MSE comes from the SSIM block sums plus the edges
    assert scores["mse_y"].tolist() == expected.tolist()
    assert torch.equal(scores["ssim_Y"], ssim_ffmpeg_plane(x, y))
    assert torch.equal(scores["psnr_y"], psnr_ffmpeg_db(scores["mse_y"]))


def test_every_integer_dtype_gives_the_same_values() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 1024, (2, 2, 21, 30))
    expected = ssim_ffmpeg_plane(torch.from_numpy(a), torch.from_numpy(b), max_value=1023)
    for dtype in (torch.int16, torch.int32, torch.uint16, torch.float32, torch.float64):
        x, y = torch.from_numpy(a).to(dtype), torch.from_numpy(b).to(dtype)
        assert torch.equal(ssim_ffmpeg_plane(x, y, max_value=1023), expected)
        assert torch.equal(psnr_ffmpeg_plane_mse(x, y), psnr_ffmpeg_plane_mse(torch.from_numpy(a), torch.from_numpy(b)))
    small = (torch.from_numpy(a) // 4).to(torch.uint8), (torch.from_numpy(b) // 4).to(torch.uint8)
    for dtype in (torch.float32, torch.float64, torch.int64):  # the 8-bit path; the width 30 is not a multiple of 4
        assert torch.equal(ssim_ffmpeg_plane(*small), ssim_ffmpeg_plane(small[0].to(dtype), small[1].to(dtype)))


def test_streaming_and_merging_equal_one_call() -> None:
    ref, dist, _ = _video("yuv420p", 36, 26, 5, seed=11)
    planes = [(torch.from_numpy(ref[k]), torch.from_numpy(dist[k])) for k in "YUV"]
    whole = ffmpeg_frame_scores([r for r, _ in planes], [d for _, d in planes])
    streamed, first, second = FFmpegSummary(), FFmpegSummary(), FFmpegSummary()
    for start, stop in ((0, 1), (1, 3), (3, 5)):
        chunk = ffmpeg_frame_scores([r[start:stop] for r, _ in planes], [d[start:stop] for _, d in planes])
        for key, values in chunk.items():
            assert torch.equal(values, whole[key][start:stop])
        streamed.update(chunk)
        (first if stop <= 1 else second).update(chunk)
    assert streamed.compute() == ffmpeg_summary(whole)  # same additions in the same order
    first.merge(second)
    merged, expected = first.compute(), ffmpeg_summary(whole)
    assert merged.keys() == expected.keys()
    assert all(merged[k] == pytest.approx(expected[k], rel=1e-12) for k in expected)
    assert expected["psnr_max"] == math.inf  # frame 3 is identical ("same"): FFmpeg prints max:inf


def test_weights_are_plane_areas() -> None:
    rng = np.random.default_rng(5)
    y = [torch.from_numpy(rng.integers(0, 256, (1, h, w), dtype=np.uint8)) for h, w in ((20, 24), (10, 12), (10, 12))]
    z = [torch.from_numpy(rng.integers(0, 256, p.shape, dtype=np.uint8)) for p in y]
    scores = ffmpeg_frame_scores(y, z)
    weights = (480 / 720, 120 / 720, 120 / 720)
    assert float(scores["ssim_All"][0]) == pytest.approx(sum(w * float(scores[f"ssim_{k}"][0]) for w, k in
                                                             zip(weights, "YUV", strict=True)), rel=1e-15)
    assert float(scores["mse_avg"][0]) == pytest.approx(sum(w * float(scores[f"mse_{k}"][0]) for w, k in
                                                            zip(weights, "yuv", strict=True)), rel=1e-15)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda x: ssim_ffmpeg_plane(x, x[:, :-1]), ValueError, "same shape"),
    (lambda x: ssim_ffmpeg_plane(x[0], x[0]), ValueError, r"\(N, H, W\)"),
    (lambda x: ssim_ffmpeg_plane(x.float() + 0.5, x.float()), ValueError, "integer sample values"),
    (lambda x: ssim_ffmpeg_plane(x.int() * 8, x.int()), ValueError, r"\[0, 255\]"),
    (lambda x: ssim_ffmpeg_plane(x, x, max_value=1000), ValueError, "2\\*\\*bits - 1"),
    (lambda x: ssim_ffmpeg_plane(x[:, :7], x[:, :7]), ValueError, "at least 8x8"),
    (lambda x: ssim_ffmpeg_plane(x.numpy(), x), TypeError, "torch.Tensor"),
    (lambda x: ssim_ffmpeg_plane(x > 0, x > 0), TypeError, "integer samples"),
    (lambda x: ffmpeg_frame_scores([x], []), ValueError, "same number"),
    (lambda x: ffmpeg_frame_scores([x, x[:1]], [x, x[:1]]), ValueError, "same number of frames"),
    (lambda x: ffmpeg_frame_scores([x, x], [x, x], names=("Y", "y")), ValueError, "distinct"),
    (lambda x: ffmpeg_frame_scores([x, x[:, :6, :6]], [x, x[:, :6, :6]]), ValueError, "plane U: .*8x8"),
    (lambda x: FFmpegSummary().compute(), ValueError, "no frames"),
    (lambda x: FFmpegSummary().update({"psnr_y": x}), ValueError, "ffmpeg_frame_scores"),
])
def test_bad_input_gets_a_clear_error(call, error: type, match: str) -> None:
    x = torch.randint(0, 256, (2, 16, 16), dtype=torch.uint8)
    with pytest.raises(error, match=match):
        call(x)
