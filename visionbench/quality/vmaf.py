"""VMAF (Netflix's Video Multi-method Assessment Fusion) through FFmpeg's ``libvmaf`` filter.

VMAF runs on the CPU, inside FFmpeg's libvmaf: nothing here uses a GPU, whatever device torch
has (FFmpeg's separate ``libvmaf_cuda`` filter is not used).

**Binary.** The first FFmpeg that has the ``libvmaf`` filter, of: ``ffmpeg`` on ``PATH``, then the
binary of the optional ``imageio-ffmpeg`` package (``visionbench[vmaf]``; its builds include
libvmaf). Neither having it is a :class:`LibvmafNotFoundError` naming both and the fix. The
choice is cached per ``PATH`` (and ``IMAGEIO_FFMPEG_EXE``), each binary's check per file version.

**Order.** libvmaf's first input is the distorted video (``main``), its second the reference
(``ffmpeg -h filter=libvmaf``); swapping them changes the score. The functions here take
``(ref, dist)`` like every metric of visionbench and hand them to libvmaf in its order.

**Models.** libvmaf's built-in models, by name: ``vmaf_v0.6.1`` (the default; HD TV viewing),
``vmaf_4k_v0.6.1`` (4K TV viewing) and ``vmaf_v0.6.1neg`` (no enhancement gain). The filter names
the model after itself (``model=version=M:name=M``), so the log's per-frame key is the model's
name and says which model scored.

**Frames.** Both videos' timestamps are replaced by frame numbers (``setpts=N/TB``), so libvmaf
pairs frame *i* with frame *i*, as visionbench's other metrics do; ``shortest=1`` stops at the
shorter one and the caller checks the counts (a mismatch is an error, never a repeated frame).

**Pixels.** Videos: the stored planes, unconverted, when both videos have the same pixel format
libvmaf reads (YUV 4:2:0, 4:2:2 or 4:4:4 at 8, 10, 12 or 16 bits); any other format is an error
asking for an explicit conversion (FFmpeg would otherwise insert one silently). Images: converted
here to YUV 4:4:4 at the image's own bit depth (``data_range = 2**bits - 1``; 8, 10, 12 or 16 bits)
with BT.601 studio range, the ``rgb2ycbcr`` convention of ``--channel y-studio``::

    Y  = s·16  + s·219·(0.299 R + 0.587 G + 0.114 B) / data_range
    Cb = s·128 + s·224·(B − Y') / (1.772 · data_range)      s = 2**(bits − 8)
    Cr = s·128 + s·224·(R − Y') / (1.402 · data_range)      Y' = 0.299 R + 0.587 G + 0.114 B

rounded half up (a grayscale image is R = G = B: its chroma is the neutral ``s·128``), and handed
to FFmpeg as raw planes, so no other conversion happens on the way. libvmaf's models read luma.

**Scores.** Parsed from libvmaf's JSON log: per frame ``frames[i].metrics[model]``, pooled
``pooled_metrics[model].mean`` and ``.harmonic_mean`` (libvmaf's ``n / Σ 1/(v + 1) − 1``), all as
libvmaf prints them (6 decimals).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from visionbench._extras import MissingExtraError, install_hint

VMAF_MODELS: tuple[str, ...] = ("vmaf_v0.6.1", "vmaf_4k_v0.6.1", "vmaf_v0.6.1neg")
DEFAULT_VMAF_MODEL = "vmaf_v0.6.1"
VMAF_EXTRA = "vmaf"  # the extra that installs imageio-ffmpeg (pyproject.toml, visionbench/_extras.py)
LOG_NAME = "vmaf.json"  # libvmaf's log, written in a temporary folder (a relative path needs no filter escaping)
# Pixel formats libvmaf takes as they are (any other makes FFmpeg insert a conversion).
LIBVMAF_PIXEL_FORMATS = frozenset(f"yuv{s}p{d}" for s in ("420", "422", "444") for d in ("", "10le", "12le", "16le"))
_IMAGE_FORMATS = {8: "yuv444p", 10: "yuv444p10le", 12: "yuv444p12le", 16: "yuv444p16le"}  # bits -> raw format

Progress = Callable[[Iterable[Any], "int | None"], Iterable[Any]]


class LibvmafNotFoundError(MissingExtraError):
    """No FFmpeg with the libvmaf filter: neither ``ffmpeg`` on PATH nor imageio-ffmpeg's binary."""


@dataclass(frozen=True)
class VmafScores:
    """libvmaf's scores of one run: per frame, and pooled as libvmaf reports them."""

    model: str
    frames: list[float]
    mean: float
    harmonic_mean: float
    libvmaf_version: str
    ffmpeg: str  # the binary that ran


def check_vmaf_model(model: str) -> str:
    """``model`` itself if it is one of :data:`VMAF_MODELS`, else a ``ValueError`` listing them."""
    if model not in VMAF_MODELS:
        raise ValueError(f"vmaf model must be one of {', '.join(VMAF_MODELS)} (libvmaf's built-in models); got "
                         f"{model!r}.")
    return model


# --- finding FFmpeg ------------------------------------------------------------------------------

_FOUND: dict[tuple[str, str], str] = {}  # (PATH, IMAGEIO_FFMPEG_EXE) -> binary with libvmaf
_CHECKED: dict[tuple[str, int, int], str | None] = {}  # (binary, mtime, size) -> None if it has libvmaf, else why not


def libvmaf_problem(exe: str) -> str | None:
    """``None`` when ``exe`` is an FFmpeg with the ``libvmaf`` filter, else why not (one phrase).

    Runs ``exe -hide_banner -filters`` once per version of the file (path, mtime and size).
    """
    try:
        stat = os.stat(exe)
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    key = (exe, stat.st_mtime_ns, stat.st_size)
    if key not in _CHECKED:
        _CHECKED[key] = _run_filter_list(exe)
    return _CHECKED[key]


def _run_filter_list(exe: str) -> str | None:
    try:
        done = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        return f"does not run ({error})"
    if done.returncode != 0:
        return f"failed listing its filters (exit code {done.returncode})"
    # A filter line is " <flags> <name> <in>-><out> <description>", e.g. " .. libvmaf  VV->V  Calculate…".
    if re.search(r"^\s*\S+\s+libvmaf\s", done.stdout, flags=re.MULTILINE):
        return None
    return "was built without libvmaf"


def _imageio_ffmpeg_exe() -> tuple[str | None, str]:
    """imageio-ffmpeg's binary, or ``None`` and why there is none."""
    try:
        import imageio_ffmpeg
    except ModuleNotFoundError:
        return None, "is not installed"
    try:
        return imageio_ffmpeg.get_ffmpeg_exe(), ""
    except RuntimeError as error:  # no binary for this platform, or IMAGEIO_FFMPEG_EXE names a missing file
        return None, f"has no usable binary ({error})"


def find_ffmpeg_with_libvmaf() -> str:
    """The FFmpeg binary that runs VMAF: ``ffmpeg`` on PATH if it has libvmaf, else imageio-ffmpeg's.

    Raises:
        LibvmafNotFoundError: when neither has the libvmaf filter; the message names both, what each
            lacks, and how to install one.
    """
    key = (os.environ.get("PATH", ""), os.environ.get("IMAGEIO_FFMPEG_EXE", ""))
    if key in _FOUND:
        return _FOUND[key]
    on_path = shutil.which("ffmpeg")
    path_problem = libvmaf_problem(on_path) if on_path else "is not found"
    if path_problem is None:
        _FOUND[key] = on_path  # type: ignore[assignment]
        return _FOUND[key]
    bundled, bundled_problem = _imageio_ffmpeg_exe()
    if bundled is not None:
        bundled_problem = libvmaf_problem(bundled) or ""
        if not bundled_problem:
            _FOUND[key] = bundled
            return bundled
    path_name = f"`ffmpeg` on PATH ({on_path})" if on_path else "`ffmpeg` on PATH"
    bundled_name = f"imageio-ffmpeg's binary ({bundled})" if bundled else "the imageio-ffmpeg package"
    raise LibvmafNotFoundError(
        f"VMAF needs an FFmpeg with the libvmaf filter, and none was found: {path_name} {path_problem}, and "
        f"{bundled_name} {bundled_problem}. Install imageio-ffmpeg, whose FFmpeg includes libvmaf, with "
        f"`{install_hint(VMAF_EXTRA)}` (or `pip install -U imageio-ffmpeg`), or put an FFmpeg built with "
        "--enable-libvmaf first on PATH.")


# --- running libvmaf -----------------------------------------------------------------------------


def vmaf_filter(model: str, *, crop: int = 0, n_threads: int = 1) -> str:
    """The ``-filter_complex`` graph: input 0 is the distorted video, input 1 the reference.

    Each input gets frame-number timestamps (index pairing) and, with ``crop``, ``crop`` pixels cut
    from each side (``exact=1``: at odd offsets too, in subsampled formats); libvmaf writes its
    JSON log to :data:`LOG_NAME` in the working directory.
    """
    model = check_vmaf_model(model)
    cut = f",crop=iw-{2 * crop}:ih-{2 * crop}:{crop}:{crop}:exact=1" if crop else ""
    # `\\:` is one escaped ':' after the graph's and the options' unescaping: model's value holds "version=M:name=M".
    options = (f"model=version={model}\\\\:name={model}:log_fmt=json:log_path={LOG_NAME}:n_threads={n_threads}"
               ":shortest=1")
    return f"[0:v]setpts=N/TB{cut}[dist];[1:v]setpts=N/TB{cut}[ref];[dist][ref]libvmaf={options}"


def vmaf_command(exe: str, ref_input: Sequence[str], dist_input: Sequence[str], graph: str) -> list[str]:
    """The FFmpeg command line: ``ref_input`` and ``dist_input`` are each ``[..., "-i", file]``
    (options before ``-i`` describe raw input); the distorted one comes first, as libvmaf wants."""
    return [exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-progress", "pipe:1",
            *dist_input, *ref_input, "-filter_complex", graph, "-f", "null", "-"]


def run_libvmaf(command: Sequence[str], folder: Path, what: str, *, frames: int | None = None,
                progress: Progress | None = None) -> dict[str, Any]:
    """Run ``command`` in ``folder`` (no time limit: long videos take long) and return libvmaf's log.

    Args:
        command: from :func:`vmaf_command`.
        folder: the working directory, where libvmaf writes :data:`LOG_NAME`.
        what: the inputs, for error messages (``"'ref.mp4' and 'dist.mp4'"``).
        frames: the expected frame count, for the progress bar.
        progress: wraps an iterator of one item per frame scored (e.g. tqdm), fed from FFmpeg's
            ``-progress`` lines.

    Raises:
        ValueError: FFmpeg failed; the message has the end of its error output.
    """
    with open(folder / "ffmpeg.err", "w+b") as errors:
        process = subprocess.Popen(list(command), cwd=folder, stdout=subprocess.PIPE, stderr=errors,
                                   stdin=subprocess.DEVNULL, text=True)
        try:
            ticks = _frame_ticks(process.stdout)  # type: ignore[arg-type]
            for _ in progress(ticks, frames) if progress else ticks:
                pass
            code = process.wait()
        finally:
            if process.poll() is None:  # interrupted (Ctrl-C, an error in the progress bar): do not leave it running
                process.kill()
                process.wait()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip()
    if code != 0 or not (folder / LOG_NAME).is_file():
        tail = " | ".join(message.splitlines()[-6:]) or "no error output"
        raise ValueError(f"FFmpeg's libvmaf failed on {what} (exit code {code}): {tail}. Check that both decode "
                         "(ffmpeg -i FILE -f null -) and have the same frame size.")
    return json.loads((folder / LOG_NAME).read_text())


def _frame_ticks(lines: IO[str]) -> Iterator[None]:
    """One ``None`` per frame FFmpeg reports done (``frame=N`` lines of ``-progress``), until it ends."""
    done = 0
    for line in lines:
        if line.startswith("frame="):
            count = int(line.split("=", 1)[1].strip() or 0)
            for _ in range(count - done):
                yield None
            done = max(done, count)


def parse_vmaf_log(log: dict[str, Any], model: str, *, ffmpeg: str = "") -> VmafScores:
    """Per-frame and pooled VMAF of a libvmaf JSON log whose model was named ``model``.

    Raises:
        ValueError: when the log lacks the model's scores (another model scored) or frames are missing.
    """
    try:
        frames = sorted(log["frames"], key=lambda frame: frame["frameNum"])
        numbers = [frame["frameNum"] for frame in frames]
        values = [float(frame["metrics"][model]) for frame in frames]
        pooled = log["pooled_metrics"][model]
        mean, harmonic = float(pooled["mean"]), float(pooled["harmonic_mean"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"libvmaf's log has no {model!r} scores (missing {error}); it was not written by this "
                         f"model. Run again with model {model!r}.") from None
    if numbers != list(range(len(values))):
        raise ValueError(f"libvmaf's log skips frames (frame numbers {numbers[:5]}…); frames cannot be paired by "
                         "index.")
    return VmafScores(model=model, frames=values, mean=mean, harmonic_mean=harmonic,
                      libvmaf_version=str(log.get("version", "")), ffmpeg=ffmpeg)


def libvmaf_harmonic_mean(values: Sequence[float]) -> float:
    """libvmaf's harmonic mean of scores that may be 0: ``n / Σ 1/(v + 1) − 1``."""
    if not values:
        raise ValueError("libvmaf_harmonic_mean needs at least one value.")
    return len(values) / math.fsum(1.0 / (v + 1.0) for v in values) - 1.0


# --- videos --------------------------------------------------------------------------------------


def check_vmaf_pixel_formats(ref: Any, dist: Any) -> str:
    """The pixel format both videos (:class:`~visionbench.quality.video.VideoInfo`) hand to libvmaf
    unconverted; a ``ValueError`` naming the files when they differ or libvmaf cannot read it."""
    names = f"{str(ref.path)!r} and {str(dist.path)!r}"
    if ref.pix_fmt != dist.pix_fmt:
        raise ValueError(f"VMAF needs both videos in the same pixel format; got {ref.pix_fmt} and {dist.pix_fmt} in "
                         f"{names}. Convert one explicitly, e.g. ffmpeg -i DIST -pix_fmt {ref.pix_fmt} -c:v ffv1 "
                         "out.mkv.")
    if ref.pix_fmt not in LIBVMAF_PIXEL_FORMATS:
        raise ValueError(f"VMAF reads YUV 4:2:0, 4:2:2 or 4:4:4 video at 8, 10, 12 or 16 bits; got {ref.pix_fmt} in "
                         f"{names}. Convert both explicitly (the conversion changes the luma VMAF measures), e.g. "
                         "ffmpeg -i IN -pix_fmt yuv420p -c:v ffv1 out.mkv.")
    return ref.pix_fmt


def vmaf_videos(ref: Any, dist: Any, *, model: str = DEFAULT_VMAF_MODEL, crop: int = 0,
                progress: Progress | None = None, n_threads: int | None = None) -> VmafScores:
    """VMAF of two videos (:class:`~visionbench.quality.video.VideoInfo`), frame *i* with frame *i*.

    Args:
        ref, dist: the reference and the distorted video, probed.
        model: one of :data:`VMAF_MODELS`.
        crop: pixels cut from each side of both videos first.
        progress: wraps the frames as they are scored (see :func:`run_libvmaf`).
        n_threads: libvmaf's threads; default the CPU count.

    Returns:
        :class:`VmafScores`; its frame count is not checked here (the caller compares it with the
        frames decoded).
    """
    check_vmaf_pixel_formats(ref, dist)
    exe = find_ffmpeg_with_libvmaf()
    graph = vmaf_filter(model, crop=crop, n_threads=n_threads or os.cpu_count() or 1)
    command = vmaf_command(exe, ["-i", str(Path(ref.path).resolve())], ["-i", str(Path(dist.path).resolve())], graph)
    with tempfile.TemporaryDirectory(prefix="visionbench-vmaf-") as folder:
        log = run_libvmaf(command, Path(folder), f"{str(ref.path)!r} and {str(dist.path)!r}", frames=ref.frames,
                          progress=progress)
    return parse_vmaf_log(log, model, ffmpeg=exe)


# --- images --------------------------------------------------------------------------------------


def image_bits(data_range: float) -> int:
    """The bit depth of ``data_range = 2**bits - 1``: 8, 10, 12 or 16 (libvmaf's), else a ``ValueError``."""
    bits = math.log2(data_range + 1)
    if bits not in _IMAGE_FORMATS:
        raise ValueError(f"VMAF needs 8-, 10-, 12- or 16-bit samples (data range 255, 1023, 4095 or 65535); got data "
                         f"range {data_range:g}. Give the data range of the images' bit depth.")
    return int(bits)


def image_yuv444(image: torch.Tensor, data_range: float) -> np.ndarray:
    """One image ``(1, C, H, W)`` (C = 1 or 3, integer samples) as YUV 4:4:4 planes ``uint16 [3, H, W]``
    at its bit depth, BT.601 studio range (the module's formulas), rounded half up."""
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
        raise ValueError(f"VMAF takes one grayscale or RGB image (1, 1 or 3, H, W); got shape {tuple(image.shape)}.")
    if image.is_floating_point():
        raise ValueError("VMAF needs integer samples (libvmaf reads 8- to 16-bit video); got float values. Quantise "
                         "them first, e.g. (x * 255).round().to(torch.uint8) for data in [0, 1].")
    bits = image_bits(data_range)
    scale = 2.0 ** (bits - 8)
    planes = image[0].to(torch.float64).numpy()
    if planes.min() < 0 or planes.max() > data_range:
        raise ValueError(f"VMAF needs samples in [0, {data_range:g}] (the data range); got [{planes.min():g}, "
                         f"{planes.max():g}]. Give the data range of the images' bit depth.")
    if planes.shape[0] == 1:
        luma = planes[0]
        cb = cr = np.full_like(luma, 128.0 * scale)
    else:
        red, green, blue = planes
        luma = 0.299 * red + 0.587 * green + 0.114 * blue
        cb = 128.0 * scale + 224.0 * scale * (blue - luma) / (1.772 * data_range)
        cr = 128.0 * scale + 224.0 * scale * (red - luma) / (1.402 * data_range)
    y = 16.0 * scale + 219.0 * scale * luma / data_range
    return np.floor(np.stack([y, cb, cr]) + 0.5).clip(0, data_range).astype(np.uint16)


def _write_raw(path: Path, planes: np.ndarray, bits: int) -> list[str]:
    """Write ``planes`` as raw video; the FFmpeg input options that read them back."""
    data = planes.astype(np.uint8) if bits == 8 else planes.astype("<u2")
    path.write_bytes(np.ascontiguousarray(data).tobytes())
    height, width = planes.shape[1:]
    return ["-f", "rawvideo", "-pix_fmt", _IMAGE_FORMATS[bits], "-s", f"{width}x{height}", "-i", path.name]


def vmaf_image_pair(ref: torch.Tensor, dist: torch.Tensor, data_range: float, *,
                    model: str = DEFAULT_VMAF_MODEL) -> VmafScores:
    """VMAF of one image pair ``(1, C, H, W)`` as a one-frame video (the module's conversion to YUV).

    Raises:
        ValueError: for different shapes, float samples or a data range that is no libvmaf bit depth.
    """
    if ref.shape != dist.shape:
        raise ValueError(f"VMAF needs two images of the same shape; got {tuple(ref.shape)} and {tuple(dist.shape)}.")
    bits = image_bits(data_range)
    exe = find_ffmpeg_with_libvmaf()
    with tempfile.TemporaryDirectory(prefix="visionbench-vmaf-") as name:
        folder = Path(name)
        ref_input = _write_raw(folder / "ref.yuv", image_yuv444(ref, data_range), bits)
        dist_input = _write_raw(folder / "dist.yuv", image_yuv444(dist, data_range), bits)
        command = vmaf_command(exe, ref_input, dist_input, vmaf_filter(model))
        log = run_libvmaf(command, folder, "an image pair")
    scores = parse_vmaf_log(log, model, ffmpeg=exe)
    if len(scores.frames) != 1:
        raise ValueError(f"libvmaf scored {len(scores.frames)} frames of a one-frame image pair; expected 1.")
    return scores


def vmaf(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0, *,
         model: str = DEFAULT_VMAF_MODEL) -> torch.Tensor:
    """VMAF of each image pair of two ``(N, C, H, W)`` integer tensors (reference first), float64 ``[N]``.

    Each pair is scored as a one-frame video (see the module docstring); not differentiable.

    Example:
        >>> x = torch.randint(0, 256, (1, 3, 48, 64), dtype=torch.uint8)
        >>> float(vmaf(x, x)[0]) > 90  # doctest: +SKIP
        True
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"tensors must both be (N, C, H, W) of the same shape; got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}.")
    values = [vmaf_image_pair(x[i : i + 1], y[i : i + 1], data_range, model=model).frames[0] for i in range(x.shape[0])]
    return torch.tensor(values, dtype=torch.float64)
