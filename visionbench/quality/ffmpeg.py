"""The ``ffmpeg`` profile: exactly what FFmpeg's ``ssim`` and ``psnr`` video filters compute.

Reproduced from ``libavfilter/vf_ssim.c`` and ``libavfilter/vf_psnr.c`` (FFmpeg 5 to 9; checked
against the FFmpeg 9.0 binary that ``imageio-ffmpeg`` ships), per plane of integer samples:

**SSIM** (Loren Merritt's x264 approximation). Sums ``Σa, Σb, Σ(a²+b²), Σab`` over the 4×4 blocks
that fit the plane (``W >> 2`` by ``H >> 2``; the last ``W % 4`` columns and ``H % 4`` rows are never
read). Each SSIM window is 2×2 neighbouring blocks (8×8 pixels, on a 4-pixel grid), so there are
``((W >> 2) - 1) * ((H >> 2) - 1)`` windows and a plane under 8×8 has none (FFmpeg reports nan; we
raise). Per window, in integers, with ``c1 = int(.01*.01*max*max*64 + .5)`` and
``c2 = int(.03*.03*max*max*64*63 + .5)`` (416 and 235963 for 8-bit)::

    vars  = 64*Σ(a²+b²) - Σa² - Σb²        covar = 64*Σab - Σa*Σb
    ssim  = float(2*Σa*Σb + c1) * float(2*covar + c2) / (float(Σa² + Σb² + c1) * float(vars + c2))

each product and the quotient in float32, as the C code (and its SSE4 twin) does. The plane's
SSIM is the float64 sum of the window values divided by the window count; for more than 8 bits the
C code first adds each row of windows in a float32 accumulator (``ssim_endn_16bit``), which we
reproduce. The frame's ``All`` is ``Σ coef_p * ssim_p`` with ``coef_p = (double)(H_p*W_p) / Σ H*W``
(plane-size weights, so Y counts 4× each chroma plane in 4:2:0), and ``dB = 10 log10(1 / (1 - All))``
(inf when ``|1 - All| <= 1e-9``). The summary FFmpeg prints is the mean over frames of each
plane and of ``All``, with ``dB = 10 log10(n / (n - Σ ssim))``.

**PSNR**. Per plane, ``MSE = Σ (a - b)² / (W*H)`` with an exact integer sum; the frame's
``mse_avg = Σ weight_p * MSE_p`` (the same plane-size weights); ``PSNR = 10 log10(max² / MSE)``.
Identical planes give ``MSE = 0`` and FFmpeg prints ``inf``: it has no cap, and neither have we.
The summary: per plane and ``average`` the PSNR of the mean MSE over frames (not the mean of the
per-frame PSNRs), ``min``/``max`` the PSNR of the largest/smallest per-frame ``mse_avg``.

All results are float64 and agree with FFmpeg's to ~1e-12 (the only differences are float64
summation orders), far below what it prints (``%f``: 6 decimals).

Videos are streamed: compute :func:`ffmpeg_frame_scores` on a few frames at a time and feed them
to an :class:`FFmpegSummary`; its ``compute()`` gives the summary line.

Example:
    >>> y = torch.randint(0, 256, (2, 48, 64), dtype=torch.uint8)
    >>> scores = ffmpeg_frame_scores([y], [y.flip(-1)])
    >>> sorted(scores)
    ['mse_avg', 'mse_y', 'psnr_avg', 'psnr_y', 'ssim_All', 'ssim_Y', 'ssim_dB']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from visionbench.quality.full_reference import psnr_db_of_mse

DEFAULT_NAMES = ("Y", "U", "V", "A")  # FFmpeg's component letters for YUV(A) and gray formats
SSIM_DB_EPS = 1e-9  # ssim_db(): |weight - ssim| <= 1e-9 counts as identical (inf dB)
_STRIP_BLOCKS = 64  # block rows (256 pixel rows) per strip: its temporaries stay in cache on 1080p (L2/L3)
_RESERVED = {"all", "db", "avg", "average", "min", "max"}  # names FFmpeg's keys already use


def _check_max_value(max_value: int) -> int:
    """``max_value`` must be ``2**bits - 1`` for a bit depth FFmpeg's filters accept (8 to 16)."""
    if isinstance(max_value, bool) or not isinstance(max_value, int) or max_value not in {
            2**bits - 1 for bits in range(8, 17)}:
        raise ValueError(f"max_value must be 2**bits - 1 for a bit depth of 8 to 16 (255, 511, 1023, ..., 65535); got "
                         f"{max_value!r}. Use 255 for 8-bit video, 1023 for 10-bit.")
    return max_value


_WIDER = {torch.uint16: torch.int32, torch.uint32: torch.int64, torch.uint64: torch.int64}


def _check_planes(x: torch.Tensor, y: torch.Tensor, max_value: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference and distorted planes: same ``(N, H, W)`` shape, integer values in ``[0, max_value]``.

    Returns them with torch's barely supported uint16/32/64 widened to a signed dtype.
    """
    for name, plane in (("reference", x), ("distorted", y)):
        if not isinstance(plane, torch.Tensor):
            raise TypeError(f"the {name} plane must be a torch.Tensor; got {type(plane).__name__}. "
                            "Use torch.from_numpy(array).")
        if plane.dtype == torch.bool or plane.is_complex():
            raise TypeError(f"the {name} plane must hold integer samples (uint8, int or float); got {plane.dtype}.")
    if x.ndim != 3 or x.shape != y.shape or x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"planes must be two non-empty (N, H, W) tensors of the same shape; got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}. Add a frame dimension with plane[None].")
    x, y = x.to(_WIDER.get(x.dtype, x.dtype)), y.to(_WIDER.get(y.dtype, y.dtype))
    if x.dtype == torch.uint8 and y.dtype == torch.uint8:
        return x, y  # every uint8 value is a valid sample at every depth: skip the scans
    for name, plane in (("reference", x), ("distorted", y)):
        if plane.is_floating_point() and not bool(torch.all(plane == plane.round())):
            raise ValueError(f"the {name} plane must hold integer sample values (FFmpeg's filters read integers); "
                             "got non-integer or non-finite values. Quantise first, e.g. (x * 255).round().")
        if max_value is not None and plane.numel() and not (0 <= float(plane.min()) and float(plane.max()) <= max_value):
            raise ValueError(f"the {name} plane's samples must lie in [0, {max_value}] (max_value); got "
                             f"[{float(plane.min()):g}, {float(plane.max()):g}]. Pass the bit depth's max_value.")
    return x, y


def ssim_constants(max_value: int = 255) -> tuple[int, int]:
    """FFmpeg's integer ``(c1, c2)``: ``(K·max)²`` scaled by the window's 64 and 64·63 sample counts.

    Written as in ``ssim_end1x``: ``(int64_t)(.01*.01*max*max*64 + .5)``, evaluated left to right in
    double, so ``(416, 235963)`` for 8-bit (the constants ``ssim_end1`` and the SSE4 code hard-code).
    """
    c1 = int(.01 * .01 * max_value * max_value * 64 + .5)
    c2 = int(.03 * .03 * max_value * max_value * 64 * 63 + .5)
    return c1, c2


def _block_sums(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Sums over each whole 4×4 block: ``(4, N, H >> 2, W >> 2)`` of ``Σa, Σb, Σ(a²+b²), Σab``.

    ``dtype`` must hold the sums exactly: float32 for 8-bit (a window's ``Σ(a²+b²) <= 64·2·255²
    < 2**24``), float64 above (``< 2**40``). Strips of block rows keep the per-pixel temporaries in
    cache, and rows then columns are added as strided views (faster than ``sum`` over a size-4 dim).
    """
    n, h, w = x.shape
    h4, w4 = h >> 2, w >> 2
    out = torch.empty((4, n, h4, w4), dtype=dtype)
    for start in range(0, h4, _STRIP_BLOCKS):
        stop = min(start + _STRIP_BLOCKS, h4)
        a = x[:, 4 * start : 4 * stop, : 4 * w4].to(dtype)  # (N, 4·S, 4·W4)
        b = y[:, 4 * start : 4 * stop, : 4 * w4].to(dtype)
        squares = a * a
        squares.addcmul_(b, b)
        for index, quantity in enumerate((a, b, squares, a * b)):
            rows = quantity.reshape(n, stop - start, 4, 4 * w4)  # (N, S, 4, 4·W4): the 4 rows of each block row
            row_sum = rows[:, :, 0] + rows[:, :, 1]
            row_sum += rows[:, :, 2]
            row_sum += rows[:, :, 3]
            block = out[index, :, start:stop]  # (N, S, W4): then the 4 columns of each block
            torch.add(row_sum[..., 0::4], row_sum[..., 1::4], out=block)
            block += row_sum[..., 2::4]
            block += row_sum[..., 3::4]
    return out


def _to_float32(values: torch.Tensor) -> torch.Tensor:
    """C's ``(float)`` of an integer: one round-to-nearest (int64 via float64, exact below ``2**53``)."""
    if values.dtype == torch.int32:
        return values.to(torch.float32)
    return values.to(torch.float64).to(torch.float32)


def _window_ssim(blocks: torch.Tensor, max_value: int) -> torch.Tensor:
    """SSIM of every 8×8 window, float32 ``(N, (H >> 2) - 1, (W >> 2) - 1)``, as ``ssim_end1(x)``."""
    pairs = blocks[:, :, :-1] + blocks[:, :, 1:]  # block rows y-1 and y (C: sum0 + sum1)
    # The integer part in C's types: int for 8-bit (the largest term, 64·Σ(a²+b²) <= 64·64·2·255²,
    # is below 2**31), int64_t above.
    windows = (pairs[..., :-1] + pairs[..., 1:]).to(torch.int64 if max_value > 255 else torch.int32)
    s1, s2, ss, s12 = windows  # blocks i and i+1 of those rows
    c1, c2 = ssim_constants(max_value)
    s1s2 = s1 * s2
    s1s1_s2s2 = s1 * s1 + s2 * s2
    variance = ss * 64 - s1s1_s2s2
    covariance = s12 * 64 - s1s2
    # Then four int-to-float conversions, two float32 products and a float32 quotient.
    numerator = _to_float32(2 * s1s2 + c1) * _to_float32(2 * covariance + c2)
    denominator = _to_float32(s1s1_s2s2 + c1) * _to_float32(variance + c2)
    return numerator / denominator


def _plane_ssim_and_sse(x: torch.Tensor, y: torch.Tensor, max_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over a validated plane pair: SSIM ``[N]`` and the exact sum of squared errors ``[N]`` (float64)."""
    n, h, w = x.shape
    h4, w4 = h >> 2, w >> 2
    if h4 < 2 or w4 < 2:
        raise ValueError(f"FFmpeg's SSIM needs planes of at least 8x8 pixels (one 8x8 window; FFmpeg itself reports "
                         f"nan); got {h}x{w}. Compare larger frames or leave this plane out.")
    wide = max_value > 255
    blocks = _block_sums(x, y, torch.float64 if wide else torch.float32)
    values = _window_ssim(blocks, max_value)  # (N, H4-1, W4-1) float32
    if wide:
        # ssim_endn_16bit adds one row of windows into a float32 accumulator, left to right.
        row_sums = torch.zeros(values.shape[:2], dtype=torch.float32)
        for column in values.unbind(-1):
            row_sums += column
        total = row_sums.to(torch.float64).sum(-1)
    else:
        total = values.to(torch.float64).sum(dim=(1, 2))
    ssim = total / ((w4 - 1) * (h4 - 1))
    # Σ(a-b)² = Σ(a²+b²) - 2Σab per block (exact in the block dtype), summed in int64, plus the
    # bottom rows and right columns that the blocks miss.
    sse = (blocks[2] - 2 * blocks[3]).to(torch.int64).sum(dim=(1, 2)).to(torch.float64)
    sse += _sse(x[:, 4 * h4 :], y[:, 4 * h4 :]) + _sse(x[:, : 4 * h4, 4 * w4 :], y[:, : 4 * h4, 4 * w4 :])
    return ssim, sse


def _sse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact ``Σ (a - b)²`` per frame, float64 ``[N]`` (int32 squares for uint8, int64 otherwise),
    in strips of rows that stay in cache."""
    dtype = torch.int32 if x.dtype == torch.uint8 and y.dtype == torch.uint8 else torch.int64
    total = torch.zeros(x.shape[0], dtype=torch.int64)
    for start in range(0, x.shape[1], 4 * _STRIP_BLOCKS):
        diff = x[:, start : start + 4 * _STRIP_BLOCKS].to(dtype) - y[:, start : start + 4 * _STRIP_BLOCKS].to(dtype)
        diff.mul_(diff)
        total += diff.flatten(1).sum(1, dtype=torch.int64)
    return total.to(torch.float64)


def ssim_ffmpeg_plane(x: torch.Tensor, y: torch.Tensor, *, max_value: int = 255) -> torch.Tensor:
    """FFmpeg's SSIM of one plane per frame (the ``lavfi.ssim.Y`` value; see the module docstring).

    Args:
        x, y: reference and distorted plane, ``(N, H, W)`` with ``H, W >= 8``: uint8, or any integer
            or float dtype holding integers in ``[0, max_value]``.
        max_value: ``2**bits - 1`` of the video's bit depth (255, 1023, ..., 65535); above 255 the
            ``>8``-bit code path (its own constants and float32 row sums) is reproduced.

    Returns:
        float64 ``[N]``, in ``[-1, 1]``; 1 for identical planes.
    """
    max_value = _check_max_value(max_value)
    x, y = _check_planes(x, y, max_value)
    return _plane_ssim_and_sse(x, y, max_value)[0]


def psnr_ffmpeg_plane_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """FFmpeg's per-plane MSE per frame: the exact integer ``Σ (a - b)²`` over all ``W·H`` samples / ``(W·H)``.

    Args:
        x, y: reference and distorted plane, ``(N, H, W)``, uint8 or integer-valued int/float.

    Returns:
        float64 ``[N]`` (``lavfi.psnr.mse.y``); :func:`psnr_ffmpeg_db` turns it into dB.
    """
    x, y = _check_planes(x, y, None)
    return _sse(x, y) / (x.shape[1] * x.shape[2])


def psnr_ffmpeg_db(mse: torch.Tensor, *, max_value: int = 255) -> torch.Tensor:
    """``10 log10(max² / mse)`` as FFmpeg's ``get_psnr``: ``inf`` for ``mse == 0`` (FFmpeg has no cap).

    Args:
        mse: float64 MSE values, any shape.
        max_value: ``2**bits - 1``.

    Returns:
        float64 dB, same shape.
    """
    mse = torch.as_tensor(mse, dtype=torch.float64)
    return 10 * torch.log10(float(max_value * max_value) / mse)  # x / 0 = inf, log10(inf) = inf


def ssim_ffmpeg_db(ssim: torch.Tensor, *, weight: float = 1.0) -> torch.Tensor:
    """FFmpeg's ``ssim_db``: ``10 log10(weight / (weight - ssim))``, ``inf`` when ``|weight - ssim| <= 1e-9``.

    ``weight`` is 1 for one frame's value and the frame count for a sum over frames.
    """
    ssim = torch.as_tensor(ssim, dtype=torch.float64)
    gap = weight - ssim
    return torch.where(gap.abs() > SSIM_DB_EPS, 10 * torch.log10(weight / gap), math.inf)


def plane_weights(shapes: Sequence[tuple[int, int]]) -> list[float]:
    """FFmpeg's per-plane weights ``(double)(H_p * W_p) / Σ H * W`` (``coefs``/``planeweight``)."""
    total = sum(h * w for h, w in shapes)
    return [float(h * w) / total for h, w in shapes]


def _check_names(names: Sequence[str] | None, count: int) -> tuple[str, ...]:
    if names is None:
        if count > len(DEFAULT_NAMES):
            raise ValueError(f"give at most {len(DEFAULT_NAMES)} planes (FFmpeg's maximum); got {count}.")
        return DEFAULT_NAMES[:count]
    names = tuple(names)
    lowered = [str(name).lower() for name in names]
    if (len(names) != count or not all(isinstance(n, str) and n for n in names) or len(set(lowered)) != count
            or _RESERVED & set(lowered)):
        raise ValueError(f"names must be {count} distinct non-empty strings, one per plane, none of "
                         f"{sorted(_RESERVED)}; got {names!r}. E.g. names=('R', 'G', 'B') for RGB planes.")
    return names


def ffmpeg_frame_scores(
    ref_planes: Sequence[torch.Tensor],
    dist_planes: Sequence[torch.Tensor],
    *,
    max_value: int = 255,
    names: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-frame SSIM and PSNR of a video's planes, as FFmpeg's ``ssim`` and ``psnr`` filters report them.

    Args:
        ref_planes, dist_planes: the planes of N frames, each ``(N, H_p, W_p)`` with integer samples
            in ``[0, max_value]`` (e.g. Y ``(N, H, W)`` and U, V ``(N, ceil(H/2), ceil(W/2))`` for
            yuv420p, one plane for gray). Each plane at least 8×8 (SSIM's window).
        max_value: ``2**bits - 1`` for the samples' bit depth (one depth for all planes, as in FFmpeg).
        names: one letter per plane; default ``("Y", "U", "V", "A")[:P]``. Use ``("R", "G", "B")``
            for RGB planes (FFmpeg names ``gbrp`` components R, G, B).

    Returns:
        ``{name: float64 Tensor[N]}`` with FFmpeg's names (``lavfi.ssim.*``, ``lavfi.psnr.*`` and its
        stats files): ``ssim_<Name>`` per plane (``ssim_Y``), ``ssim_All`` (plane-size-weighted mean),
        ``ssim_dB`` (of ``ssim_All``), ``mse_<name>`` and ``psnr_<name>`` per plane with the name in
        lower case (``mse_y``, ``psnr_y``), ``mse_avg`` (plane-size-weighted MSE) and ``psnr_avg``
        (its PSNR). PSNR is ``inf`` where the MSE is 0.
    """
    max_value = _check_max_value(max_value)
    ref_planes, dist_planes = list(ref_planes), list(dist_planes)
    if not ref_planes or len(ref_planes) != len(dist_planes):
        raise ValueError(f"ref_planes and dist_planes must hold the same number (>= 1) of planes; got "
                         f"{len(ref_planes)} and {len(dist_planes)}.")
    names = _check_names(names, len(ref_planes))
    for index, name in enumerate(names):
        try:
            ref_planes[index], dist_planes[index] = _check_planes(ref_planes[index], dist_planes[index], max_value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"plane {name}: {error}") from None
    frames = {x.shape[0] for x in ref_planes}
    if len(frames) != 1:
        raise ValueError(f"every plane must hold the same number of frames; got {[x.shape[0] for x in ref_planes]}.")
    weights = plane_weights([tuple(x.shape[1:]) for x in ref_planes])
    scores: dict[str, torch.Tensor] = {}
    ssim_all = torch.zeros(frames.pop(), dtype=torch.float64)
    mse_avg = torch.zeros_like(ssim_all)
    mses = []
    for name, weight, x, y in zip(names, weights, ref_planes, dist_planes, strict=True):
        try:
            ssim, sse = _plane_ssim_and_sse(x, y, max_value)
        except ValueError as error:
            raise ValueError(f"plane {name}: {error}") from None
        mse = sse / (x.shape[1] * x.shape[2])
        scores[f"ssim_{name}"] = ssim
        ssim_all += weight * ssim  # do_ssim: ssimv += coefs[i] * c[i], planes in order
        mse_avg += mse * weight  # do_psnr: mse += comp_mse[c] * planeweight[c]
        mses.append(mse)
    scores["ssim_All"] = ssim_all
    scores["ssim_dB"] = ssim_ffmpeg_db(ssim_all)
    for name, mse in zip(names, mses, strict=True):
        scores[f"mse_{name.lower()}"] = mse
        scores[f"psnr_{name.lower()}"] = psnr_ffmpeg_db(mse, max_value=max_value)
    scores["mse_avg"] = mse_avg
    # average_max = lrint(Σ max_p * weight_p), which is max_value when all planes share one depth.
    scores["psnr_avg"] = psnr_ffmpeg_db(mse_avg, max_value=max_value)
    return scores


def _ssim_db_float(total: float, weight: float) -> float:
    return 10 * math.log10(weight / (weight - total)) if abs(weight - total) > SSIM_DB_EPS else math.inf


class FFmpegSummary:
    """Streaming accumulator of the summary lines FFmpeg logs at the end of a sequence.

    ``update`` takes the dicts :func:`ffmpeg_frame_scores` returns (any number of frames each, in
    order) and keeps only FFmpeg's running sums (per-plane SSIM sums, the ``All`` sum, per-plane and
    average MSE sums, the smallest and largest per-frame ``mse_avg``), so memory is constant; two
    accumulators over consecutive parts ``merge`` into the one over the whole.

    Example:
        >>> summary = FFmpegSummary(max_value=255)
        >>> for ref, dist in chunks:  # doctest: +SKIP
        ...     summary.update(ffmpeg_frame_scores([ref], [dist]))
        >>> summary.compute()["psnr_average"]  # doctest: +SKIP
    """

    def __init__(self, *, max_value: int = 255) -> None:
        self.max_value = _check_max_value(max_value)
        self.names: tuple[str, ...] | None = None
        self.frames = 0
        self.ssim_sums: dict[str, float] = {}
        self.ssim_all_sum = 0.0
        self.mse_sums: dict[str, float] = {}
        self.mse_avg_sum = 0.0
        self.min_mse = math.inf
        self.max_mse = -math.inf

    def _adopt_names(self, names: tuple[str, ...]) -> None:
        if self.names is None:
            self.names = names
            self.ssim_sums = dict.fromkeys(names, 0.0)
            self.mse_sums = dict.fromkeys(names, 0.0)
        elif names != self.names:
            raise ValueError(f"every update must hold the same planes; got {names!r} after {self.names!r}.")

    def update(self, scores: Mapping[str, torch.Tensor]) -> None:
        """Add the frames of one :func:`ffmpeg_frame_scores` result (in frame order)."""
        names = tuple(key[5:] for key in scores if key.startswith("ssim_") and key not in ("ssim_All", "ssim_dB"))
        needed = ["ssim_All", "mse_avg", *(f"mse_{name.lower()}" for name in names)]
        if not names or any(key not in scores for key in needed):
            raise ValueError(f"scores must be a dict from ffmpeg_frame_scores (with ssim_<plane>, ssim_All, mse_<plane> "
                             f"and mse_avg); got keys {sorted(scores)!r}.")
        self._adopt_names(names)
        # Added one frame at a time in double, as do_ssim/do_psnr do.
        for name in names:
            for value in scores[f"ssim_{name}"].tolist():
                self.ssim_sums[name] += value
            for value in scores[f"mse_{name.lower()}"].tolist():
                self.mse_sums[name] += value
        for value in scores["ssim_All"].tolist():
            self.ssim_all_sum += value
        mse_avg = scores["mse_avg"].tolist()
        for value in mse_avg:
            self.mse_avg_sum += value
            self.min_mse = min(self.min_mse, value)
            self.max_mse = max(self.max_mse, value)
        self.frames += len(mse_avg)

    def merge(self, other: FFmpegSummary) -> None:
        """Fold in an accumulator over the frames that follow this one's."""
        if other.max_value != self.max_value:
            raise ValueError(f"cannot merge summaries of different max_value; got {self.max_value} and {other.max_value}.")
        if other.names is None:
            return
        self._adopt_names(other.names)
        for name in other.names:
            self.ssim_sums[name] += other.ssim_sums[name]
            self.mse_sums[name] += other.mse_sums[name]
        self.ssim_all_sum += other.ssim_all_sum
        self.mse_avg_sum += other.mse_avg_sum
        self.min_mse = min(self.min_mse, other.min_mse)
        self.max_mse = max(self.max_mse, other.max_mse)
        self.frames += other.frames

    def compute(self) -> dict[str, float]:
        """The numbers of FFmpeg's two summary lines (``SSIM Y:… (dB) … All:… (dB)`` and
        ``PSNR y:… average:… min:… max:…``).

        Returns:
            ``frames``; ``ssim_<Name>`` (mean over frames) and ``ssim_<Name>_dB`` per plane,
            ``ssim_All`` and ``ssim_All_dB``; ``psnr_<name>`` per plane and ``psnr_average`` (the PSNR
            of the mean MSE), ``psnr_min`` (of the worst frame) and ``psnr_max`` (of the best; ``inf``
            if one frame is identical).
        """
        if self.frames == 0 or self.names is None:
            raise ValueError("no frames were added (FFmpeg prints no summary then); call update() first.")
        n, result = self.frames, {"frames": self.frames}
        for name in self.names:
            result[f"ssim_{name}"] = self.ssim_sums[name] / n
            result[f"ssim_{name}_dB"] = _ssim_db_float(self.ssim_sums[name], n)
        result["ssim_All"] = self.ssim_all_sum / n
        result["ssim_All_dB"] = _ssim_db_float(self.ssim_all_sum, n)
        for name in self.names:
            result[f"psnr_{name.lower()}"] = psnr_db_of_mse(self.mse_sums[name] / n, self.max_value)
        result["psnr_average"] = psnr_db_of_mse(self.mse_avg_sum / n, self.max_value)
        result["psnr_min"] = psnr_db_of_mse(self.max_mse, self.max_value)
        result["psnr_max"] = psnr_db_of_mse(self.min_mse, self.max_value)
        return result


def ffmpeg_summary(scores: Mapping[str, torch.Tensor], *, max_value: int = 255) -> dict[str, float]:
    """FFmpeg's end-of-sequence summary of per-frame scores (all frames in one dict).

    Args:
        scores: the dict :func:`ffmpeg_frame_scores` returns, over the whole sequence.
        max_value: the one passed to :func:`ffmpeg_frame_scores`.

    Returns:
        The dict of :meth:`FFmpegSummary.compute`.
    """
    summary = FFmpegSummary(max_value=max_value)
    summary.update(scores)
    return summary.compute()
