"""Report plots: each function takes plain Python/numpy data and returns the bytes of one PNG.

Figures are built on :class:`matplotlib.figure.Figure` with an explicit ``FigureCanvasAgg``, never
through ``pyplot``, so importing this module selects no backend and touches no global state
(``rcParams`` included); plots can be drawn from threads and from headless machines.

Every text drawn from user data (class names, ids) goes through :func:`_plain`, so a ``$`` in a
class name is printed as written instead of starting matplotlib's mathtext.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100  # pixels per inch of every PNG
MAX_LEGEND = 10  # curves named in a legend; the rest are drawn in grey
MAX_ANNOTATED_CLASSES = 20  # confusion-matrix cells carry their number up to this many classes
MAX_TICK_CLASSES = 60  # class names on the axes up to this many classes
MIN_IMAGE_PIXELS = 96  # example images are upscaled (nearest neighbour) to at least this size
CELL_MIN_WIDTH = 180  # pixels per example cell, room for a "true / pred (confidence)" caption
CAPTION_HEIGHT = 40  # pixels under each example for two caption lines
CELL_PADDING = 10  # pixels around each example
_CURVE_COLOURS = [*(f"C{i}" for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)), "black"]  # no grey: grey marks the unnamed


def _plain(text: Any, limit: int = 40) -> str:
    """``text`` as matplotlib shows it literally: ``$`` escaped, cut to ``limit`` characters."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _figure(width: float, height: float) -> Figure:
    """A new figure (inches) with an Agg canvas attached and constrained layout."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    """The figure as PNG bytes (no timestamp or software tag, so equal plots give equal bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _rotation(names: Sequence[str]) -> int:
    """Tick-label rotation: upright when the names are short enough to sit side by side."""
    return 90 if sum(len(n) + 1 for n in names) > 50 else 0


def _finite(values: Sequence[Any]) -> np.ndarray:
    """``float64`` array with ``None`` (JSON's NaN) turned back into NaN."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def _score(value: Any) -> float:
    """A curve's AUC/AP as a float; missing or undefined becomes NaN."""
    return math.nan if value is None else float(value)


# ----------------------------------------------------------------------------------- training curves


def training_curves(history: Sequence[Mapping[str, Any]]) -> bytes:
    """Train/val loss (left) and validation metrics (right) per epoch.

    Args:
        history: ``history.jsonl`` records, each with ``epoch`` and any of ``train_loss``,
            ``val_loss``, ``val_<metric>`` (missing or ``None`` values leave a gap).

    Returns:
        PNG bytes.
    """
    return _png(training_curves_figure(history))


def _flat_range(values: np.ndarray, *, scores: bool, one_epoch: bool) -> tuple[float, float] | None:
    """A y range for curves too short or flat to scale by (one epoch, or every value equal):
    ``[0, 1]`` for scores in [0, 1], ``[0, 1.25 · max]`` for a loss; ``None`` otherwise (autoscale)."""
    finite = values[np.isfinite(values)]
    if not one_epoch and finite.size and np.ptp(finite) > 0:
        return None
    if scores and (finite.size == 0 or (finite.min() >= 0 and finite.max() <= 1)):
        return (0.0, 1.02)
    top = float(finite.max()) if finite.size else 1.0
    return (min(0.0, 1.25 * top), max(1.25 * top, 0.0) or 1.0)


def training_curves_figure(history: Sequence[Mapping[str, Any]]) -> Figure:
    """The figure of :func:`training_curves` (axes ``[loss, metrics]``), for tests that check
    what it shows: a run of one epoch gets markers and a range that fits the task (``[0, 1]``
    for metrics), not matplotlib's ±0.04 around a single point."""
    epochs = [record.get("epoch", i + 1) for i, record in enumerate(history)]  # numbered from 1
    figure = _figure(10, 3.6)
    loss_axes, metric_axes = figure.subplots(1, 2)
    for key, style in (("train_loss", "o-"), ("val_loss", "s--")):
        if any(key in record for record in history):
            loss_axes.plot(epochs, _finite([r.get(key) for r in history]), style, label=key, markersize=4)
    loss_axes.set(xlabel="epoch", ylabel="loss", title="Loss")
    metric_keys = sorted({k for r in history for k in r if k.startswith("val_") and k != "val_loss"})
    for key in metric_keys:
        metric_axes.plot(epochs, _finite([r.get(key) for r in history]), "o-", label=key, markersize=4)
    metric_axes.set(xlabel="epoch", title="Validation metrics")
    for axes, scores in ((loss_axes, False), (metric_axes, True)):
        axes.grid(alpha=0.3)
        lines = axes.get_lines()
        if lines:
            values = np.concatenate([np.asarray(line.get_ydata(), float) for line in lines])
            y_range = _flat_range(values, scores=scores, one_epoch=len(set(epochs)) == 1)
            if y_range is not None:
                axes.set_ylim(*y_range)
            axes.legend(fontsize=8)
        if len(set(epochs)) == 1:  # one epoch: a readable x range around it, not ±0.04
            axes.set_xlim(epochs[0] - 1, epochs[0] + 1)
        axes.xaxis.get_major_locator().set_params(integer=True)
    return figure


# ---------------------------------------------------------------------------------- confusion matrix


def _row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the true class's support); empty rows stay 0."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix, dtype=np.float64), where=totals > 0)


def _annotate_cells(axes: Any, values: np.ndarray, fmt: str) -> None:
    """Write each non-zero cell's value, white on dark cells."""
    high = values.max() if values.size else 0
    for (row, col), value in np.ndenumerate(values):
        if value:
            colour = "white" if value > 0.5 * high else "black"
            axes.text(col, row, format(value, fmt), ha="center", va="center", fontsize=8, color=colour)


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], *, normalize: bool = False) -> bytes:
    """Confusion-matrix heatmap: counts, or each row divided by its sum (the true class's support).

    Args:
        matrix: ``int [K, K]``; row = true class, column = predicted class.
        classes: the K class names.
        normalize: divide each row by its sum, so the diagonal is each class's recall.

    Returns:
        PNG bytes. Cells carry their number up to 20 classes, axes carry names up to 60.
    """
    k = len(classes)
    counts = np.asarray(matrix, dtype=np.int64).reshape(k, k)
    values = _row_normalised(counts) if normalize else counts
    side = min(max(4.8, 0.3 * k + 1.8), 11.0)  # inches; two fit side by side up to 10 classes
    figure = _figure(side + 0.6, side)
    axes = figure.subplots()
    image = axes.imshow(values, cmap="Blues", interpolation="nearest", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=axes, shrink=0.8)
    title = "Normalised by true class (row sums = 1)" if normalize else "Counts"
    axes.set(xlabel="predicted class", ylabel="true class", title=title)
    if k <= MAX_ANNOTATED_CLASSES:
        _annotate_cells(axes, values, ".2f" if normalize else "d")
    if k <= MAX_TICK_CLASSES:
        names = [_plain(c, 16) for c in classes]
        axes.set_xticks(range(k), names, rotation=_rotation(names), fontsize=8)
        axes.set_yticks(range(k), names, fontsize=8)
    return _png(figure)


# ------------------------------------------------------------------------------------ per-class bars


def per_class_bars(per_class: Mapping[str, Sequence[Any]], classes: Sequence[str],
                   names: Sequence[str] = ("precision", "recall", "f1")) -> bytes:
    """Grouped bars of per-class scores in [0, 1] (precision, recall and F1 by default; IoU and
    Dice for segmentation).

    Args:
        per_class: ``{name: [K]}`` for the ``names`` (``None`` draws no bar).
        classes: the K class names.
        names: which lists of ``per_class`` to draw, in order.

    Returns:
        PNG bytes.
    """
    k = len(classes)
    figure = _figure(min(max(7, 0.45 * k + 2), 24), 3.8)
    axes = figure.subplots()
    names = [n for n in names if n in per_class]
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        axes.bar(np.arange(k) + (i - (len(names) - 1) / 2) * width, _finite(per_class[name]), width, label=name)
    names = [_plain(c, 16) for c in classes]
    axes.set_xticks(range(k), names, rotation=_rotation(names), fontsize=8)
    axes.set(ylim=(0, 1.0), ylabel="score", xlim=(-0.6, k - 0.4))
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=max(len(names), 1), frameon=False)
    return _png(figure)


# ------------------------------------------------------------------------------------- ROC / PR curves


def lowest_scoring(curves: Mapping[str, Mapping[str, Any]], score_key: str, limit: int = MAX_LEGEND) -> list[str]:
    """The names of the ``limit`` curves with the lowest ``score_key`` (undefined scores last)."""
    order = sorted(curves, key=lambda name: (math.isnan(_score(curves[name].get(score_key))),
                                            _score(curves[name].get(score_key))))
    return order[:limit]


def _curves(
    curves: Mapping[str, Mapping[str, Any]], *, x_key: str, y_key: str, score_key: str, title: str,
    xlabel: str, ylabel: str, diagonal: bool,
) -> bytes:
    """One line per class; past ``MAX_LEGEND`` classes only the lowest-scoring ones are named."""
    figure = _figure(6.4, 5.2)
    axes = figure.subplots()
    named = lowest_scoring(curves, score_key)
    for name, curve in curves.items():
        if name not in named:
            axes.plot(_finite(curve[x_key]), _finite(curve[y_key]), color="0.8", linewidth=0.8)
    for i, name in enumerate(named):
        score = _score(curves[name].get(score_key))
        label = f"{_plain(name, 24)} ({score_key.upper()} {score:.3f})"
        axes.plot(_finite(curves[name][x_key]), _finite(curves[name][y_key]),
                  color=_CURVE_COLOURS[i % 10], linewidth=1.5, label=label)
    if diagonal:
        axes.plot([0, 1], [0, 1], ":", color="0.5", linewidth=1)
    if len(curves) > len(named):
        title += f"\n{len(named)} of {len(curves)} classes named (lowest {score_key.upper()}); others in grey"
    axes.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), xlabel=xlabel, ylabel=ylabel, title=title)
    axes.grid(alpha=0.3)
    if named:
        axes.legend(fontsize=7, loc="lower right" if diagonal else "lower left")
    return _png(figure)


def roc_curves(roc: Mapping[str, Mapping[str, Any]]) -> bytes:
    """One-vs-rest ROC curve per class.

    Args:
        roc: ``{class_name: {"fpr": [...], "tpr": [...], "auc": float}}`` (``metrics.json["roc_curve"]``).

    Returns:
        PNG bytes; with more than 10 classes the 10 with the lowest AUC are coloured and named.
    """
    return _curves(roc, x_key="fpr", y_key="tpr", score_key="auc", title="ROC curves (one vs rest)",
                   xlabel="false positive rate", ylabel="true positive rate", diagonal=True)


def pr_curves(pr: Mapping[str, Mapping[str, Any]], *, title: str = "Precision–recall curves (one vs rest)") -> bytes:
    """Precision–recall curve per class (one vs rest for classification; per category at one IoU
    threshold for detection, as ``title`` says).

    Args:
        pr: ``{class_name: {"recall": [...], "precision": [...], "ap": float}}`` (``metrics.json["pr_curve"]``).

    Returns:
        PNG bytes; with more than 10 classes the 10 with the lowest AP are coloured and named.
    """
    return _curves(pr, x_key="recall", y_key="precision", score_key="ap", title=title,
                   xlabel="recall", ylabel="precision", diagonal=False)


# ------------------------------------------------------------------------------- reliability diagram


def reliability_diagram(reliability: Mapping[str, Any]) -> bytes:
    """Accuracy per confidence bin against the diagonal (top) and the samples per bin (bottom).

    Args:
        reliability: ``{"bin_edges": [B+1], "confidence": [B], "accuracy": [B], "count": [B],
            "ece": float}`` (``metrics.json["reliability"]``); empty bins may hold ``None``.

    Returns:
        PNG bytes. A perfectly calibrated model's bars touch the diagonal.
    """
    edges = _finite(reliability["bin_edges"])
    left, width = edges[:-1], np.diff(edges)
    accuracy, confidence = _finite(reliability["accuracy"]), _finite(reliability["confidence"])
    counts = _finite(reliability["count"])
    figure = _figure(6.4, 6.2)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.bar(left, np.nan_to_num(accuracy), width, align="edge", edgecolor="C0", alpha=0.75, label="accuracy")
    top.plot(confidence, accuracy, "o", color="C3", markersize=4, label="mean confidence of the bin")
    top.plot([0, 1], [0, 1], "--", color="0.4", linewidth=1, label="perfect calibration")
    ece = _score(reliability.get("ece"))
    top.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="accuracy", title=f"Reliability diagram (ECE {ece:.4f})")
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    bottom.bar(left, np.nan_to_num(counts), width, align="edge", color="0.55")
    for x, w, n in zip(left, width, counts, strict=True):
        if n > 0:
            bottom.text(x + w / 2, n, f"{int(n)}", ha="center", va="bottom", fontsize=7)
    bottom.set(xlabel="confidence (probability of the predicted class)", ylabel="samples",
               ylim=(0, max(np.nanmax(counts, initial=0), 1) * 1.25))
    return _png(figure)


# ------------------------------------------------------------------------------------ example images


def _upscaled_rgb(image: np.ndarray) -> np.ndarray:
    """``uint8 [C, H, W]`` (C = 1 or 3) → ``uint8 [H', W', 3]``, upscaled by a whole factor (nearest neighbour)."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"example images must be uint8 [M, C, H, W] with C = 1 or 3; got an image of shape {image.shape}")
    scale = max(1, math.ceil(MIN_IMAGE_PIXELS / max(image.shape[1:])))
    image = image.repeat(scale, axis=1).repeat(scale, axis=2)  # whole pixels: an 8×8 digit stays sharp
    return np.repeat(image, 3, axis=0).transpose(1, 2, 0) if image.shape[0] == 1 else image.transpose(1, 2, 0)


def _mosaic(tiles: Sequence[np.ndarray], columns: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Tiles ``[h, w, 3]`` on a white canvas, each framed and centred in its cell with room for a caption.

    Returns:
        The canvas ``uint8 [H, W, 3]`` and, per tile, the pixel (x centre, y) where its caption starts.
    """
    h, w = tiles[0].shape[:2]
    cell_w, cell_h = max(w + 2 * CELL_PADDING, CELL_MIN_WIDTH), h + CAPTION_HEIGHT + CELL_PADDING
    rows = math.ceil(len(tiles) / columns)
    canvas = np.full((rows * cell_h, columns * cell_w, 3), 255, dtype=np.uint8)
    anchors = []
    for i, tile in enumerate(tiles):
        y, x = (i // columns) * cell_h + CELL_PADDING, (i % columns) * cell_w + (cell_w - w) // 2
        canvas[y - 1: y + h + 1, x - 1: x + w + 1] = 190  # a grey frame, visible around white images
        canvas[y: y + h, x: x + w] = tile
        anchors.append((x + w // 2, y + h + 3))
    return canvas, anchors


def example_grid(images: np.ndarray, captions: Sequence[str], *, columns: int = 6) -> bytes:
    """A grid of images, each with a caption (e.g. ``"true / pred (0.97)"``).

    The images are laid out in one pixel mosaic drawn 1:1 (one axes, not one per image), so the
    PNG shows every source pixel as an exact block.

    Args:
        images: ``uint8 [M, C, H, W]``, M >= 1, C = 1 (grayscale) or 3 (RGB); small images are
            upscaled by nearest neighbour to at least 96 pixels, so that 8×8 digits stay sharp.
        captions: M captions, shown as written (newlines allowed).
        columns: images per row.

    Returns:
        PNG bytes.
    """
    tiles = [_upscaled_rgb(np.asarray(image, dtype=np.uint8)) for image in images]
    canvas, anchors = _mosaic(tiles, max(1, min(columns, len(tiles))))
    height, width = canvas.shape[:2]
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)  # one figure pixel per canvas pixel
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(canvas, interpolation="nearest")
    axes.set_axis_off()
    for (x, y), caption in zip(anchors, captions, strict=False):
        axes.text(x, y, _plain(caption, 80), ha="center", va="top", fontsize=8, color="#b22222", linespacing=1.3)
    return _png(figure)


# ------------------------------------------------------------------------------------------- compare


def difference_forest(
    names: Sequence[str], diffs: Sequence[Any], intervals: Sequence[Sequence[Any]], significant: Sequence[bool],
    *, xlabel: str,
) -> bytes:
    """A forest plot: each metric's difference between two runs with its 95% interval, and 0.

    Args:
        names: metric labels, top to bottom.
        diffs: the differences (``None`` draws nothing).
        intervals: ``[low, high]`` per metric.
        significant: draw the metric in colour (significant) or grey.
        xlabel: what the difference is, e.g. ``"B − A"``.

    Returns:
        PNG bytes.
    """
    n = len(names)
    figure = _figure(7.5, 0.42 * n + 1.4)
    axes = figure.subplots()
    y = np.arange(n)[::-1]
    values = _finite(diffs)
    lows, highs = _finite([i[0] for i in intervals]), _finite([i[1] for i in intervals])
    for row, value, low, high, sig in zip(y, values, lows, highs, significant, strict=True):
        colour = "C3" if sig else "0.45"
        if not (math.isnan(low) or math.isnan(high)):
            axes.plot([low, high], [row, row], color=colour, linewidth=2)
        axes.plot([value], [row], "o", color=colour, markersize=6)
    axes.axvline(0, color="0.2", linewidth=1, linestyle="--")
    axes.set_yticks(y, [_plain(name, 30) for name in names], fontsize=8)
    axes.set(xlabel=xlabel, ylim=(-0.7, n - 0.3), title="Metric differences with 95% intervals (red: significant)")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


# ------------------------------------------------------------------------------------------- quality


def quality_per_item(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], *, frames: bool) -> bytes:
    """Each metric per item: a line over frame numbers for videos, points per item otherwise.

    Args:
        rows: ``items.csv`` rows (``item`` and one value per metric; ``inf`` PSNRs are left out).
        metrics: the metric columns to draw (one panel each, at most 4).
        frames: whether the items are video frames (drawn as a line).

    Returns:
        PNG bytes.
    """
    return _png(quality_per_item_figure(rows, metrics, frames=frames))


def quality_per_item_figure(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], *, frames: bool) -> Figure:
    """The figure of :func:`quality_per_item`; each legend sits right of its panel, outside the
    data, so it never hides a point (the worst item included)."""
    metrics = list(metrics)[:4]
    figure = _figure(10, 2.4 * len(metrics) + 0.4)
    axes_list = figure.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    positions = np.arange(len(rows))
    for axes, metric in zip(axes_list, metrics, strict=True):
        values = _finite([_score(row.get(metric)) for row in rows])
        values[~np.isfinite(values)] = np.nan
        axes.plot(positions, values, "-" if frames else "o", markersize=3, linewidth=1)
        finite = values[np.isfinite(values)]
        if finite.size:
            axes.axhline(float(finite.mean()), color="C3", linestyle="--", linewidth=1, label=f"mean {finite.mean():.4g}")
            axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        axes.set(ylabel=_plain(metric))
        axes.grid(alpha=0.3)
    axes_list[-1].set(xlabel="frame" if frames else "item (in items.csv order)")
    return figure


def quality_example(ref: np.ndarray, dist: np.ndarray, difference: np.ndarray, ssim: np.ndarray | None,
                    *, title: str) -> bytes:
    """One item side by side: reference, distorted, difference map and (when given) SSIM map.

    Args:
        ref, dist: ``uint8 [h, w]`` or ``[h, w, 3]`` thumbnails.
        difference: ``[h, w]`` |ref − dist| as a fraction of the data range.
        ssim: ``[h, w]`` SSIM map or None.
        title: shown above the row (user text, drawn as written).

    Returns:
        PNG bytes.
    """
    panels = 4 if ssim is not None else 3
    figure = _figure(3.3 * panels, 3.3 * ref.shape[0] / max(ref.shape[1], 1) + 0.8)
    axes_list = figure.subplots(1, panels, squeeze=False)[0]
    for axes, image, name in ((axes_list[0], ref, "reference"), (axes_list[1], dist, "distorted")):
        axes.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        axes.set_title(name, fontsize=9)
    shown = axes_list[2].imshow(difference, cmap="magma", vmin=0, vmax=max(float(np.max(difference)), 1e-6))
    axes_list[2].set_title("|reference − distorted| / range", fontsize=9)
    figure.colorbar(shown, ax=axes_list[2], fraction=0.046, pad=0.02)
    if ssim is not None:
        shown = axes_list[3].imshow(ssim, cmap="viridis", vmin=min(0.0, float(np.min(ssim))), vmax=1)
        axes_list[3].set_title("SSIM map", fontsize=9)
        figure.colorbar(shown, ax=axes_list[3], fraction=0.046, pad=0.02)
    for axes in axes_list:
        axes.set_axis_off()
    figure.suptitle(_plain(title, 100), fontsize=10)
    return _png(figure)
