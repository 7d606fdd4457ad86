"""Videos for quality assessment: decoded frame by frame with PyAV, never loaded whole.

PyAV is the optional ``visionbench[video]`` extra, imported when the first video is opened.

Two videos are paired frame by frame (frame *i* of the reference with frame *i* of the
distorted video, as FFmpeg's ``ssim``/``psnr`` filters pair them). Sizes and frame rates must
match, and so must frame counts: a mismatch found in the headers is an error before any work,
one found while decoding is an error naming both counts.

Planes: ``channel="y"`` takes the luma plane exactly as decoded (for YUV or gray pixel formats;
the values FFmpeg and VMAF compare), converted from RGB with BT.601 only for RGB pixel formats;
``channel="rgb"`` converts each frame to 8-bit RGB with FFmpeg's swscale (stated: it is a
conversion, not the stored samples). The data range follows the stored bit depth
(``2**bits - 1``: 255 for 8-bit, 1023 for 10-bit).

Decoding runs in a background thread (PyAV releases the GIL while it decodes) and hands over at
most :data:`QUEUE_FRAMES` frame pairs at a time, so memory stays bounded on long 4K videos.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from visionbench._extras import import_optional
from visionbench.quality.color import to_channel

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".nut"}
QUEUE_FRAMES = 4  # frame pairs decoded ahead of the metric computation


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video's first video stream."""

    path: Path
    width: int
    height: int
    frames: int | None  # None when the container does not say
    rate: Fraction | None
    pix_fmt: str
    bits: int


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video file (by its suffix)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's size, frame count, rate and pixel format; a clear error for unreadable files
    (and a :class:`~visionbench._extras.MissingExtraError` naming ``visionbench[video]`` without PyAV)."""
    path = Path(path)
    av = _pyav(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{str(path)!r} has no video stream. Give a video file.")
            stream = container.streams.video[0]
            context = stream.codec_context
            pix_fmt = context.pix_fmt or "unknown"
            bits = max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8) if context.pix_fmt else 8
            return VideoInfo(path=path, width=context.width, height=context.height, frames=stream.frames or None,
                             rate=stream.average_rate, pix_fmt=pix_fmt, bits=bits)
    except av.FFmpegError as error:
        raise ValueError(f"cannot read video {str(path)!r}: {error}. Check the file (is it complete?).") from None


def check_videos_match(ref: VideoInfo, dist: VideoInfo) -> None:
    """Raise a ``ValueError`` naming both files when size, frame rate or frame count differ."""
    names = f"{str(ref.path)!r} and {str(dist.path)!r}"
    if (ref.width, ref.height) != (dist.width, dist.height):
        raise ValueError(f"videos must have the same frame size; got {ref.width}x{ref.height} and "
                         f"{dist.width}x{dist.height} in {names}. Scale the distorted video to the reference first.")
    if ref.rate and dist.rate and ref.rate != dist.rate:
        raise ValueError(f"videos must have the same frame rate; got {float(ref.rate):g} and {float(dist.rate):g} fps "
                         f"in {names}. Frames would be paired out of time; resample one of them first.")
    if ref.frames and dist.frames and ref.frames != dist.frames:
        raise ValueError(f"videos must have the same number of frames; got {ref.frames} and {dist.frames} in {names}. "
                         "Trim them to the same frames first.")
    if ref.bits != dist.bits:
        raise ValueError(f"videos must have the same bit depth; got {ref.bits} and {dist.bits} bits in {names}.")


def frame_planes(frame: object, channel: str, bits: int) -> torch.Tensor:
    """One decoded PyAV frame as ``(1, C, H, W)``: the stored Y plane, or RGB (see the module)."""
    name = frame.format.name  # type: ignore[attr-defined]
    stored_luma = name.startswith(("yuv", "yuvj", "gray", "nv", "p0", "p2"))
    if channel == "y" and stored_luma:
        plane = frame.planes[0]  # type: ignore[attr-defined]
        dtype = np.uint8 if bits <= 8 else np.dtype("<u2")
        rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // np.dtype(dtype).itemsize)
        return torch.from_numpy(rows[:, : plane.width].copy())[None, None]
    rgb = frame.to_ndarray(format="rgb24")  # type: ignore[attr-defined]
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    return image if channel == "rgb" else to_channel(image, channel, data_range=255)  # type: ignore[arg-type]


def _pyav(path: Path) -> ModuleType:
    """PyAV, the optional ``visionbench[video]`` extra (imported on first use: most runs read no video)."""
    return import_optional("av", extra="video", purpose=f"reading video {str(path)!r}")


def _decoded_frames(path: Path) -> Iterator[object]:
    av = _pyav(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame/slice threads inside FFmpeg's decoder
            yield from container.decode(stream)
    except av.FFmpegError as error:
        raise ValueError(f"cannot decode video {str(path)!r}: {error}. The file may be corrupt or truncated.") from None


def paired_frames(ref: VideoInfo, dist: VideoInfo, *, channel: str) -> Iterator[tuple[int, float, torch.Tensor, torch.Tensor]]:
    """``(frame index, time in s, ref (1, C, H, W), dist (1, C, H, W))`` for every frame pair.

    Raises:
        ValueError: when one video ends before the other (both counts named) or cannot be decoded.
    """
    if channel not in ("rgb", "y"):
        raise ValueError(f"channel for videos must be 'y' (the stored luma plane) or 'rgb'; got {channel!r}. "
                         "A YUV video's Y plane is already studio-range luma: use channel='y'.")
    pairs: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
    stop = threading.Event()
    worker = threading.Thread(target=_decode_pairs, args=(ref, dist, channel, pairs, stop), daemon=True)
    worker.start()
    try:
        while True:
            item = pairs.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a worker waiting on a full queue
            try:
                pairs.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)


def _decode_pairs(ref: VideoInfo, dist: VideoInfo, channel: str, pairs: queue.Queue, stop: threading.Event) -> None:
    """Decode both videos in lock step into ``pairs`` (ends with ``None`` or an exception)."""
    try:
        ref_frames, dist_frames = _decoded_frames(ref.path), _decoded_frames(dist.path)
        index = 0
        while not stop.is_set():
            a, b = next(ref_frames, None), next(dist_frames, None)
            if a is None or b is None:
                if a is not None or b is not None:
                    longer, shorter = (ref, dist) if a is not None else (dist, ref)
                    rest = 1 + sum(1 for _ in (ref_frames if a is not None else dist_frames))
                    raise ValueError(f"videos must have the same number of frames; {str(shorter.path)!r} has {index} "
                                     f"and {str(longer.path)!r} has {index + rest}. Trim them to the same frames first.")
                break
            time = float(a.time) if a.time is not None else index / float(ref.rate or 1)
            pairs.put((index, time, frame_planes(a, channel, ref.bits), frame_planes(b, channel, dist.bits)))
            index += 1
        pairs.put(None)
    except BaseException as error:  # handed to the consumer, which re-raises it
        pairs.put(error)
