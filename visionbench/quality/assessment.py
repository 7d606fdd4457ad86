"""Quality of image pairs: two tensors, two images, two folders (paired by relative path) or two
videos (paired frame by frame), per item and pooled.

Conventions, all recorded in the result's ``settings`` and in ``metrics.json``:

- **Data range**: 255 for 8-bit images and videos, ``2**bits - 1`` for deeper videos; 16-bit
  images and float tensors need ``data_range`` (10-, 12- and 16-bit data share one container).
- **Channel** (:mod:`visionbench.quality.color`): ``rgb`` by default for images, ``y`` (the
  stored luma plane) for videos. A grayscale image paired with a colour one is an error in
  ``rgb`` (which channels would be compared is a guess); in ``y`` or ``y-studio`` both are compared
  on luma, the grayscale image standing for R = G = B. Under the ``matlab`` profile images default
  to ``gray-matlab`` (MATLAB's rounded ``rgb2gray``, what its scripts are run on), see
  :func:`~visionbench.quality.color.default_channel`.
- **Crop**: ``crop_border`` pixels removed from each side before any metric.
- **Pooling**: each metric's mean over items with a 95% bootstrap interval over items, and for
  PSNR also ``psnr_pooled_mse``, the PSNR of the mean MSE (what FFmpeg prints for a video).
- **VMAF** (:mod:`visionbench.quality.vmaf`; FFmpeg's libvmaf, on the CPU): ignores ``channel``
  (libvmaf reads the videos' stored YUV, or YUV converted from each image pair as read); its
  entry adds libvmaf's ``harmonic_mean`` and the model (``vmaf_model``).
- **Device**: images and videos are read and decoded on the CPU; with ``device`` each item is
  then moved there and measured there (on a GPU the windowed metrics filter whole planes at once,
  :mod:`visionbench.quality.layout`), and ``settings`` records it. Values agree with the CPU's to
  the last few bits (float64 on both, only summation orders differ; the CUDA tests ask 1e-10
  relative, 1e-7 for NIQE and BRISQUE).

Memory stays bounded: items are processed one at a time, and only the few worst items keep
small thumbnails for the report.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from visionbench.data.pairing import pair_by_relative_path
from visionbench.metrics.stats import bootstrap_means, percentile_interval
from visionbench.quality.catalog import QUALITY_METRICS, check_profile, measure_pair, resolve_metrics
from visionbench.quality.color import check_channel, crop_border, default_channel, to_channel
from visionbench.quality.full_reference import psnr_db_of_mse, ssim_map
from visionbench.quality.vmaf import check_vmaf_model, libvmaf_harmonic_mean, vmaf_image_pair, vmaf_videos

# torchvision's IMG_EXTENSIONS, written out: importing torchvision would add ~160 MiB to every quality run.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
THUMBNAIL_SIDE = 320  # longest side of the report's thumbnails, px
SSIM_MAP_MAX_PIXELS = 2_100_000  # SSIM maps for the report only up to 1080p (bounded memory)

Item = tuple[str, "float | None", torch.Tensor, torch.Tensor]  # name, time in s (videos), ref, dist


@dataclass(frozen=True)
class Example:
    """One of the worst items, small enough for the report: thumbnails on a 0–255 scale."""

    item: str
    value: float
    ref: np.ndarray  # uint8 [h, w] or [h, w, 3]
    dist: np.ndarray
    difference: np.ndarray  # float32 [h, w], |ref − dist| / data_range, mean over channels
    ssim: np.ndarray | None  # float32 [h, w] SSIM map (skimage profile), None above SSIM_MAP_MAX_PIXELS


@dataclass(frozen=True)
class QualityResult:
    """Per-item rows (``{"item", ["time"], metric: value, …, "mse"}``), the pooled values (the
    ``metrics.json`` content), the items found on one side only, the settings used and the worst
    items (by the first metric)."""

    rows: list[dict[str, Any]]
    pooled: dict[str, Any]
    unpaired: dict[str, list[str]]
    settings: dict[str, Any]
    examples: list[Example] = field(default_factory=list)


def assess(
    ref: str | Path | torch.Tensor, dist: str | Path | torch.Tensor, *, metrics: Sequence[str] = ("psnr", "ssim"),
    profile: str = "skimage", channel: str | None = None, crop: int = 0, data_range: float | None = None,
    resize: str | None = None, psnr_cap: float | str | None = None, examples: int = 6,
    progress: Callable[[Iterable[Any], int | None], Iterable[Any]] | None = None, vmaf_model: str = "vmaf_v0.6.1",
    model_files: Mapping[str, str | Path] | None = None, device: str | torch.device | None = None,
) -> QualityResult:
    """Full-reference quality of two tensors, images, folders or videos (see the module docstring).

    Args:
        ref, dist: ``(N, C, H, W)`` tensors, or paths to two images, two folders or two videos.
        metrics: names from :data:`visionbench.quality.catalog.QUALITY_METRICS`.
        profile: ``skimage``, ``matlab`` or ``ffmpeg`` (:mod:`visionbench.quality.catalog`).
        channel: ``rgb``, ``y``, ``y-studio``, ``gray-matlab`` or ``y-matlab``
            (:mod:`visionbench.quality.color`); default ``rgb`` for images (``gray-matlab`` under
            the ``matlab`` profile), ``y`` for videos.
        crop: pixels removed from each border before measuring.
        data_range: value range of the input; required for float tensors and 16-bit images.
        resize: resize each distorted image to its reference's size with this interpolation
            (``bicubic``, ``bilinear``, ``area`` or ``nearest``; antialiased, rounded back to the
            input's integer type). By default a size mismatch is an error: resizing changes what
            is measured, so it is only done when asked.
        psnr_cap: cap PSNR values at this many dB (identical pairs give ``inf`` otherwise), or
            ``"vmaf"`` for libvmaf's cap of ``6 · bits + 12`` dB (60 dB for 8-bit).
        examples: how many of the worst items keep thumbnails for the report.
        progress: wraps the item iterator (e.g. tqdm), given the item count when known.
        vmaf_model: libvmaf's model for the ``vmaf`` metric (:mod:`visionbench.quality.vmaf`):
            ``vmaf_v0.6.1``, ``vmaf_4k_v0.6.1`` or ``vmaf_v0.6.1neg``.
        model_files: metric name → the user's model file: required for ``brisque`` (LIVE's
            ``allmodel``, ``allrange`` beside it) and ``lpips`` (its weights), optional for
            ``niqe`` (an ``.npz``, e.g. LIVE's ``modelparameters.mat`` converted:
            :func:`~visionbench.quality.no_reference.load_niqe_model`); nothing is ever downloaded. No-reference
            metrics (``niqe``, ``brisque``) score ``dist`` alone.
        device: where the metrics run (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``);
            each item, read or decoded on the CPU, is moved there first. ``None`` measures items
            where they are (tensors on their device, files on the CPU). CUDA asked for and not
            available is a ``ValueError``. :func:`visionbench.api.quality` resolves ``"auto"``.

    Returns:
        A :class:`QualityResult`.

    Example:
        >>> x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
        >>> assess(x, x, data_range=1.0).pooled["ssim"]["value"]
        1.0
    """
    functions = resolve_metrics(tuple(metrics), check_profile(profile), model_files)
    target = measuring_device(device)
    vmaf = functions.pop("vmaf", None) is not None  # scored by libvmaf (_VmafScorer), not by a tensor function
    check_vmaf_model(vmaf_model)
    if resize is not None and resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}; got {resize!r}.")
    source = _open_source(ref, dist, channel=channel, data_range=data_range, resize=resize, profile=profile)
    cap = _psnr_cap(psnr_cap, source.data_range)
    settings = {"kind": source.kind, "profile": profile, "channel": source.channel, "data_range": source.data_range,
                "crop_border": crop, "metrics": list(metrics)}
    settings.update({"resize": resize} if resize else {}, **({"psnr_cap_db": cap} if cap is not None else {}))
    scorer = _VmafScorer(vmaf_model, source, crop, progress) if vmaf else None  # a video's VMAF run comes first
    settings.update({"vmaf_model": vmaf_model} if vmaf else {})
    settings.update(_model_settings(metrics, model_files))
    settings.update({"device": str(target)} if target is not None else {})
    worst = _WorstItems(examples, metrics[0], QUALITY_METRICS[metrics[0]].higher_is_better)
    rows = []
    items = progress(source.items, source.count) if progress else source.items
    with _torch_threads(1 if source.kind == "videos" else None):
        for name, time, x, y in items:
            extra = {"vmaf": scorer.score(len(rows), x, y)} if scorer else {}
            if target is not None:  # decoded on the CPU (VMAF above took the pair as read), measured on the device
                x, y = x.to(target), y.to(target)
            rows.append(_measure_item(name, time, x, y, source, crop, functions, profile, worst, cap, metrics, extra))
    if not rows:
        raise ValueError(f"nothing to compare in {str(ref)!r} and {str(dist)!r}.")
    pooled = pool_rows(rows, metrics, data_range=source.data_range, kind=source.kind, psnr_cap=cap)
    if scorer:
        pooled["vmaf"].update(scorer.pooled(rows))
    pooled["settings"] = settings
    return QualityResult(rows=rows, pooled=pooled, unpaired=source.unpaired, settings=settings,
                         examples=worst.examples())


def _measure_item(name: str, time: float | None, x: torch.Tensor, y: torch.Tensor, source: _Source, crop: int,
                  functions: dict[str, Any], profile: str, worst: _WorstItems, cap: float | None,
                  metrics: Sequence[str], extra: dict[str, float]) -> dict[str, Any]:
    """One item's row (channel conversion and crop first); offers it to the worst items. ``extra``
    holds values measured elsewhere (VMAF), placed in ``metrics``' order with the others."""
    x, y = (crop_border(to_channel(v, source.channel, data_range=source.data_range), crop)  # type: ignore[arg-type]
            for v in (x, y))
    row: dict[str, Any] = {"item": name} if time is None else {"item": name, "time": round(time, 6)}
    values = {**measure_pair(x, y, source.data_range, functions, profile), **extra}
    row.update({metric: values[metric] for metric in metrics})  # items.csv's columns: the metrics in order, then mse
    row["mse"] = values["mse"]
    if cap is not None and "psnr" in row:
        row["psnr"] = min(row["psnr"], cap)
    worst.offer(row, x, y, source.data_range)
    return row


def measuring_device(device: str | torch.device | None) -> torch.device | None:
    """The device :func:`assess` measures on (``None``: where each item already is); a clear
    ``ValueError`` for an unknown name, or for CUDA when this machine has none."""
    if device is None:
        return None
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be cpu, cuda or cuda:N (or None: where the data is); got {device!r}.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available here; measure on the CPU "
                         "(device='cpu', --device cpu) or with --device auto.")
    return resolved


def _model_settings(metrics: Sequence[str], model_files: Mapping[str, str | Path] | None) -> dict[str, Any]:
    """What the settings record of the models used: the user's files, and NIQE's default model."""
    recorded: dict[str, Any] = {}
    if model_files:
        recorded["model_files"] = {name: str(path) for name, path in model_files.items()}
    if "niqe" in metrics and "niqe" not in (model_files or {}):
        from visionbench.quality.niqe_model import SOURCE

        recorded["niqe_model"] = SOURCE
    return recorded


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Run torch's CPU ops on ``count`` threads for a while (None: unchanged).

    Videos are decoded by FFmpeg's own threads in parallel with the metrics; torch's OpenMP
    threads competing with them for the same cores wait on each other at every small op (10× and
    worse slowdowns measured on 2 cores), so video metrics run on one torch thread.
    """
    if count is None or torch.get_num_threads() <= count:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _VmafScorer:
    """VMAF per item (:mod:`visionbench.quality.vmaf`, libvmaf on the CPU). Videos: one libvmaf run
    over both files before any frame is decoded here, its scores taken by frame index (so VMAF can
    rank the worst frames too); images and tensors: one run per pair, as read and cropped (before
    any channel conversion: libvmaf gets YUV made from the samples themselves)."""

    def __init__(self, model: str, source: _Source, crop: int,
                 progress: Callable[[Iterable[Any], int | None], Iterable[Any]] | None) -> None:
        self.model, self.data_range, self.crop = model, source.data_range, crop
        self.videos = source.videos
        self.video = vmaf_videos(*source.videos, model=model, crop=crop, progress=progress) if source.videos else None
        self.last = self.video

    def score(self, index: int, x: torch.Tensor, y: torch.Tensor) -> float:
        """Item ``index``'s VMAF (``x``, ``y``: the pair as read, before channel conversion and crop)."""
        if self.video is not None:
            if index >= len(self.video.frames):
                raise ValueError(self._count_error(f"at least {index + 1}"))
            return self.video.frames[index]
        self.last = vmaf_image_pair(crop_border(x, self.crop), crop_border(y, self.crop), self.data_range,
                                    model=self.model)
        return self.last.frames[0]

    def _count_error(self, decoded: str) -> str:
        ref, dist = self.videos  # type: ignore[misc]
        scored = len(self.video.frames)  # type: ignore[union-attr]
        return (f"libvmaf scored {scored} frame pairs of {str(ref.path)!r} and {str(dist.path)!r} "
                f"but {decoded} were decoded; frames cannot be paired by index. Check that both videos decode "
                "completely (ffmpeg -i FILE -f null -) and have the same number of frames.")

    def pooled(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """What ``metrics.json``'s ``vmaf`` entry adds to the mean and interval over items: for videos
        the mean (replacing ours, equal to it within the log's 6 decimals) and harmonic mean as libvmaf
        reports them; for images libvmaf's harmonic-mean formula over the items; the model and inputs."""
        if self.video is not None:
            if len(rows) != len(self.video.frames):
                raise ValueError(self._count_error(str(len(rows))))
            pix_fmt = self.videos[0].pix_fmt  # type: ignore[index]
            entry = {"value": self.video.mean, "harmonic_mean": self.video.harmonic_mean,
                     "pooling": "libvmaf's pooled mean and harmonic mean over frames",
                     "input": f"the stored {pix_fmt} planes"}
        else:
            bits = round(math.log2(self.data_range + 1))
            entry = {"harmonic_mean": libvmaf_harmonic_mean([row["vmaf"] for row in rows]),
                     "pooling": "mean over items; harmonic mean n / sum(1 / (v + 1)) - 1, as libvmaf's",
                     "input": f"YUV 4:4:4, {bits}-bit, BT.601 studio range, converted from each image pair"}
        last: Any = self.last
        entry.update(model=self.model, libvmaf_version=last.libvmaf_version, ffmpeg=last.ffmpeg)
        return entry


# --- sources -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    kind: str  # "tensors", "images", "folders" or "videos"
    items: Iterator[Item]
    count: int | None
    channel: str
    data_range: float
    unpaired: dict[str, list[str]]
    videos: tuple[Any, Any] | None = None  # the two probed VideoInfo of a "videos" source (for VMAF's own run)


def _psnr_cap(cap: float | str | None, data_range: float) -> float | None:
    """The PSNR cap in dB: a number, or libvmaf's ``6 · bits + 12`` for ``"vmaf"``."""
    if cap is None:
        return None
    if cap == "vmaf":
        bits = math.log2(data_range + 1)
        if bits != int(bits):
            raise ValueError(f"psnr_cap='vmaf' needs an integer bit depth (data range 2**bits - 1); got data range "
                             f"{data_range:g}. Give the cap in dB instead.")
        return 6.0 * bits + 12.0
    if isinstance(cap, str) or not cap > 0:
        raise ValueError(f"psnr_cap must be a positive number of dB or 'vmaf'; got {cap!r}.")
    return float(cap)


def _open_source(ref: Any, dist: Any, *, channel: str | None, data_range: float | None,
                 resize: str | None = None, profile: str = "skimage") -> _Source:
    """The items to compare, and the settings they imply (``channel=None``: the profile's default)."""
    no_unpaired: dict[str, list[str]] = {"reference_only": [], "distorted_only": []}
    if isinstance(ref, torch.Tensor) or isinstance(dist, torch.Tensor):
        return _tensor_source(ref, dist, channel=channel, data_range=data_range, resize=resize, profile=profile)
    ref, dist = Path(ref), Path(dist)
    from visionbench.quality.video import check_videos_match, is_video, paired_frames, probe_video

    if ref.is_file() and dist.is_file() and (is_video(ref) or is_video(dist)):
        if not (is_video(ref) and is_video(dist)):
            raise ValueError(f"give two videos or two images; got {str(ref)!r} and {str(dist)!r}.")
        if resize:
            raise ValueError("resize is for images; scale the distorted video to the reference's frame size first "
                             "(e.g. ffmpeg -vf scale=W:H), so the scaler is the one you choose.")
        ref_info, dist_info = probe_video(ref), probe_video(dist)
        check_videos_match(ref_info, dist_info)
        channel = check_channel(channel or default_channel(profile, video=True))
        frames = ((str(i), t, x, y) for i, t, x, y in paired_frames(ref_info, dist_info, channel=channel))
        bits = 8 if channel == "rgb" else ref_info.bits
        return _Source("videos", frames, ref_info.frames, channel, data_range or float(2**bits - 1), no_unpaired,
                       videos=(ref_info, dist_info))
    pairs, unpaired = _image_pairs(ref, dist)
    channel = check_channel(channel or default_channel(profile))
    items = _image_items(pairs, data_range, resize, channel)
    first = next(items)  # read the first pair now: its bit depth fixes the data range
    kind = "images" if ref.is_file() else "folders"
    return _Source(kind, _prepend(first, items), len(pairs), channel, first[2], unpaired)


def _prepend(first: tuple[str, float | None, float, torch.Tensor, torch.Tensor],
             rest: Iterator[tuple[str, float | None, float, torch.Tensor, torch.Tensor]]) -> Iterator[Item]:
    """The image items as ``(name, None, ref, dist)``, the already-read first one included."""
    name, time, _, x, y = first
    yield name, time, x, y
    for name, time, _, x, y in rest:
        yield name, time, x, y


def _tensor_source(ref: Any, dist: Any, *, channel: str | None, data_range: float | None,
                   resize: str | None, profile: str = "skimage") -> _Source:
    if not (isinstance(ref, torch.Tensor) and isinstance(dist, torch.Tensor)):
        raise TypeError("give two tensors or two paths, not one of each.")
    if resize and ref.ndim == dist.ndim == 4 and ref.shape[:2] == dist.shape[:2]:
        dist = resize_like(dist, ref.shape[-2:], resize)
    if ref.shape != dist.shape or ref.ndim != 4:
        raise ValueError(f"tensors must both be (N, C, H, W) of the same shape; got {tuple(ref.shape)} and "
                         f"{tuple(dist.shape)}.")
    range_ = _default_range(ref.dtype, data_range, "the tensors")
    items = ((str(i), None, ref[i : i + 1], dist[i : i + 1]) for i in range(ref.shape[0]))
    no_unpaired: dict[str, list[str]] = {"reference_only": [], "distorted_only": []}
    channel = check_channel(channel or default_channel(profile, channels=ref.shape[1]))
    return _Source("tensors", items, ref.shape[0], channel, range_, no_unpaired)


def _default_range(dtype: torch.dtype, data_range: float | None, where: str) -> float:
    """``data_range`` if given, 255 for uint8, else an error saying what to pass."""
    if data_range is not None:
        if not data_range > 0:
            raise ValueError(f"data_range must be > 0; got {data_range!r}.")
        return float(data_range)
    if dtype == torch.uint8:
        return 255.0
    raise ValueError(f"data_range must be given for {dtype} data ({where}): e.g. 1.0 for floats in [0, 1], 1023 for "
                     "10-bit, 4095 for 12-bit, 65535 for 16-bit samples (--data-range on the command line).")


def read_image(path: Path) -> np.ndarray:
    """``uint8``/``uint16`` ``[H, W]`` (grayscale) or ``uint8 [H, W, 3]``; a clear error names an
    unreadable file. 16-bit grayscale stays 16-bit (its data range must then be given). An alpha
    channel is dropped only when fully opaque; transparent pixels are an error."""
    _refuse_sixteen_bit_colour_png(path)
    try:
        with Image.open(path) as image:
            if image.mode.startswith("I;16"):
                return np.asarray(image, dtype=np.uint16)
            if image.mode == "I":  # 32-bit integers: kept only when they fit 16 bits (a cast would wrap them)
                values = np.asarray(image, dtype=np.int64)
                if values.size and (values.min() < 0 or values.max() > 65535):
                    raise ValueError(f"image {str(path)!r} holds 32-bit integers from {values.min()} to {values.max()}; "
                                     "quality metrics read samples of up to 16 bits. Rescale it to 0..65535 (or 8 "
                                     "bits) first.")
                return values.astype(np.uint16)
            if image.mode == "F":  # float samples keep their values; --data-range says their range
                return np.asarray(image, dtype=np.float32)
            if "A" in image.getbands() or "transparency" in image.info:
                alpha = np.asarray(image.convert("RGBA"))[..., 3]
                if alpha.min() < 255:  # dropping a real alpha channel would change what is compared
                    raise ValueError(f"image {str(path)!r} has transparent pixels (alpha < 255); quality metrics "
                                     "compare colour channels only. Composite it onto a background first.")
            gray = image.mode in ("L", "1", "LA")
            return np.asarray(image.convert("L" if gray else "RGB"))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read image {str(path)!r}: {error}. Check the file or remove it.") from None


def _refuse_sixteen_bit_colour_png(path: Path) -> None:
    """Pillow reads a 16-bit RGB(A) PNG (48/64-bit) as 8 bits per channel: refuse it rather than
    compare silently reduced samples (its IHDR: bit depth at byte 24, colour type at byte 25)."""
    if path.suffix.lower() != ".png":
        return
    with open(path, "rb") as handle:
        header = handle.read(26)
    if len(header) == 26 and header[:8] == b"\x89PNG\r\n\x1a\n" and header[24] == 16 and header[25] in (2, 6):
        raise ValueError(f"image {str(path)!r} is a 16-bit colour PNG, which would be read at 8 bits per channel; "
                         "quality metrics here read colour at 8 bits and grayscale at 16. Convert it to 8-bit RGB, or "
                         "compare 16-bit grayscale PNGs (e.g. one per channel) with --data-range 65535.")


def _image_pairs(ref: Path, dist: Path) -> tuple[list[tuple[str, Path, Path]], dict[str, list[str]]]:
    """``(relative name, ref file, dist file)`` for two files or two folders, and the unpaired."""
    if ref.is_file() and dist.is_file():
        return [(dist.name, ref, dist)], {"reference_only": [], "distorted_only": []}
    if not (ref.is_dir() and dist.is_dir()):
        raise ValueError(f"give two image files, two folders or two videos; got {str(ref)!r} and {str(dist)!r}.")

    pairs, ref_only, dist_only = pair_by_relative_path(ref, dist, IMAGE_SUFFIXES)
    if not pairs:
        raise ValueError(f"no image of {str(ref)!r} has a counterpart with the same relative path in {str(dist)!r}.")
    return pairs, {"reference_only": ref_only, "distorted_only": dist_only}


def _image_items(pairs: list[tuple[str, Path, Path]], data_range: float | None, resize: str | None,
                 channel: str = "rgb") -> Iterator[Any]:
    """``(name, None, data range, ref, dist)`` per pair, read lazily, one pair in memory at a time."""
    for name, ref_path, dist_path in pairs:
        ref, dist = read_image(ref_path), read_image(dist_path)
        if ref.dtype != dist.dtype:
            raise ValueError(f"images must have the same bit depth; got {ref.dtype} in {ref_path} and {dist.dtype} "
                             f"in {dist_path}. Convert one of them first.")
        x, y = _to_pair(ref, dist, ref_path, dist_path, resize, channel)
        yield name, None, _default_range(x.dtype, data_range, f"{ref_path} is 16-bit"), x, y


def _to_pair(ref: np.ndarray, dist: np.ndarray, ref_path: Path, dist_path: Path,
             resize: str | None = None, channel: str = "rgb") -> tuple[torch.Tensor, torch.Tensor]:
    if ref.ndim != dist.ndim:
        if channel == "rgb":  # comparing gray with colour in RGB would measure the colour as distortion
            kinds = {2: "grayscale", 3: "RGB"}
            raise ValueError(f"images must have the same channels; got {kinds[ref.ndim]} {ref_path} and "
                             f"{kinds[dist.ndim]} {dist_path}. Convert one of them first (e.g. both to grayscale), or "
                             "compare luma with --channel y (the grayscale image read as R = G = B).")
        # Luma: the grayscale image as R = G = B, whose BT.601 luma is itself.
        ref, dist = (np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in (ref, dist))
    if ref.shape != dist.shape and not resize:
        raise ValueError(f"images must have the same size; got {ref.shape[1]}x{ref.shape[0]} in {ref_path} and "
                         f"{dist.shape[1]}x{dist.shape[0]} in {dist_path}. Resize or crop the distorted image to the "
                         "reference first, or ask for it explicitly with --resize bicubic.")

    def nchw(a: np.ndarray) -> torch.Tensor:
        # uint8 stays; uint16 becomes int32 (torch's uint16 lacks arithmetic); float samples stay float
        kind = a.dtype if a.dtype == np.uint8 else (np.float64 if a.dtype.kind == "f" else np.int32)
        a = np.ascontiguousarray(a).astype(kind)
        return torch.from_numpy(a).permute(2, 0, 1)[None] if a.ndim == 3 else torch.from_numpy(a)[None, None]

    x, y = nchw(ref), nchw(dist)
    return x, resize_like(y, x.shape[-2:], resize) if resize and y.shape != x.shape else y


RESIZE_MODES = ("bicubic", "bilinear", "area", "nearest")


def resize_like(image: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """``image`` ``(N, C, h, w)`` resized to ``size`` = (H, W) with ``mode`` (antialiased when
    shrinking), rounded and clamped back to an integer input's type."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    modes = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
             "nearest": InterpolationMode.NEAREST_EXACT}
    if mode == "area":
        resized = torch.nn.functional.interpolate(image.double(), size=tuple(size), mode="area")
    else:
        resized = F.resize(image.double(), list(size), interpolation=modes[mode], antialias=mode != "nearest")
    if image.is_floating_point():
        return resized.to(image.dtype)
    info = torch.iinfo(image.dtype)
    return resized.round().clamp(info.min, info.max).to(image.dtype)


# --- pooling and the worst items -----------------------------------------------------------------


def pool_rows(rows: list[dict[str, Any]], metrics: Sequence[str], *, data_range: float, kind: str,
              psnr_cap: float | None = None) -> dict[str, Any]:
    """``metrics.json`` content: each metric's mean over items with a bootstrap interval over items,
    and the PSNR of the mean MSE. Infinite PSNRs (identical pairs) are left out of the mean and
    counted; the mean is ``inf`` when every pair is identical."""
    unit = "frames" if kind == "videos" else "items"
    pooled: dict[str, Any] = {"task": "quality", "num_samples": len(rows), "pooling": f"mean over {unit}"}
    for metric in metrics:
        values = torch.tensor([row[metric] for row in rows], dtype=torch.float64)
        finite = values[torch.isfinite(values)]
        interval = percentile_interval(bootstrap_means(finite)) if len(finite) > 1 else (math.nan, math.nan)
        entry: dict[str, Any] = {"value": float(finite.mean()) if len(finite) else math.inf, "ci95": list(interval),
                                 "higher_is_better": QUALITY_METRICS[metric].higher_is_better}
        if len(finite) < len(values):
            entry["non_finite_items"] = len(values) - len(finite)
        pooled[metric] = entry
    if "psnr" in metrics:
        mean_mse = float(np.mean([row["mse"] for row in rows]))
        pooled_psnr = psnr_db_of_mse(mean_mse, data_range)
        pooled["psnr_pooled_mse"] = {"value": pooled_psnr if psnr_cap is None else min(pooled_psnr, psnr_cap), "ci95": None,
                                     "higher_is_better": True, "definition": f"PSNR of the mean MSE over {unit}"}
    return pooled


class _WorstItems:
    """Keeps thumbnails of the ``limit`` worst items by one metric (a bounded heap)."""

    def __init__(self, limit: int, metric: str, higher_is_better: bool) -> None:
        self.limit, self.metric, self.sign = limit, metric, 1.0 if higher_is_better else -1.0
        self.heap: list[tuple[float, int, Example]] = []  # (−badness, order, example): heap[0] is the least bad
        self.offered = 0  # tie-break, so examples never get compared

    def offer(self, row: dict[str, Any], x: torch.Tensor, y: torch.Tensor, data_range: float) -> None:
        """Keep ``row``'s item if it is among the worst so far (thumbnails made only then)."""
        value = row[self.metric]
        if self.limit <= 0 or not math.isfinite(value):
            return
        badness = -self.sign * value
        if len(self.heap) == self.limit and -self.heap[0][0] >= badness:
            return
        example = make_example(row["item"], value, x.cpu(), y.cpu(), data_range)  # thumbnails are NumPy arrays
        self.offered += 1
        entry = (-badness, self.offered, example)
        if len(self.heap) < self.limit:
            heapq.heappush(self.heap, entry)
        else:
            heapq.heapreplace(self.heap, entry)

    def examples(self) -> list[Example]:
        """Worst first."""
        return [e for _, _, e in sorted(self.heap, key=lambda t: t[0])]


def make_example(item: str, value: float, x: torch.Tensor, y: torch.Tensor, data_range: float) -> Example:
    """Thumbnails of one pair ``(1, C, H, W)``: both images, the difference map and the SSIM map."""
    scale = 255.0 / data_range
    h, w = x.shape[-2:]
    factor = max(1, math.ceil(max(h, w) / THUMBNAIL_SIDE))

    def shrink(plane: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
        """Area-average ``plane(top, bottom)`` (float ``(1, 1, rows, W)``) over bands of rows, so a
        4K image is never converted to float whole."""
        band = factor * max(1, 2_000_000 // (w * factor * factor))  # ~2M samples per band
        parts = [plane(top, min(top + band, h)) for top in range(0, h, band)]
        parts = [torch.nn.functional.avg_pool2d(p, factor, ceil_mode=True) if factor > 1 else p for p in parts]
        return torch.cat(parts, dim=2)

    def picture(v: torch.Tensor) -> np.ndarray:
        planes = [shrink(lambda a, b, c=c: v[:, c : c + 1, a:b].float() * scale) for c in range(v.shape[1])]
        image = torch.cat(planes, dim=1).round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
        return image[..., 0] if image.shape[2] == 1 else image

    def absolute_difference(top: int, bottom: int) -> torch.Tensor:
        planes = (x[:, c : c + 1, top:bottom].float() - y[:, c : c + 1, top:bottom].float() for c in range(x.shape[1]))
        return sum(p.abs() for p in planes) / (x.shape[1] * data_range)  # type: ignore[return-value]

    difference = shrink(absolute_difference)[0, 0]
    similarity = None
    if h * w <= SSIM_MAP_MAX_PIXELS and min(h, w) >= 11:
        full_map = ssim_map(x.double(), y.double(), data_range=data_range).mean(dim=1, keepdim=True)
        similarity = shrink(lambda top, bottom: full_map[:, :, top:bottom])[0, 0].float().numpy()
    return Example(item=item, value=value, ref=picture(x), dist=picture(y),
                   difference=difference.float().numpy(), ssim=similarity)
