"""The quality report's plot of agreement with human scores: each metric against the scores, with
the fitted mapping (:mod:`visionbench.quality.mos`). Built like every plot of
:mod:`visionbench.report.plots` (an Agg canvas, no ``pyplot``, user text drawn as written)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from visionbench.report.plots import _figure, _plain, _png

COLUMNS = 3  # panels per row
CURVE_POINTS = 256


def metric_vs_scores(rows: Sequence[Mapping[str, Any]], section: Mapping[str, Any]) -> bytes:
    """One panel per metric of ``section["metrics"]``: its value against the score of each scored
    item (coloured by distortion type when the rows have one) and the fitted curve.

    Args:
        rows: ``items.csv`` rows with the metric columns, ``score`` and optionally ``type``
            (unscored or non-finite items are left out).
        section: ``metrics.json``'s ``mos`` section.

    Returns:
        PNG bytes.
    """
    from visionbench.quality.mos import predict

    metrics = list(section["metrics"])
    columns = min(COLUMNS, len(metrics))
    lines = math.ceil(len(metrics) / columns)
    figure = _figure(3.6 * columns + 0.6, 3.2 * lines + 0.3)
    axes_grid = figure.subplots(lines, columns, squeeze=False)
    types = sorted({str(row["type"]) for row in rows if row.get("type") not in (None, "")})
    scale = str(section.get("scale", "mos")).upper()
    for index, axes in enumerate(axes_grid.flat):
        if index >= len(metrics):
            axes.set_axis_off()
            continue
        metric = metrics[index]
        entry = section["metrics"][metric]
        points = [(float(row[metric]), float(row["score"]), str(row.get("type") or "")) for row in rows
                  if _finite(row.get(metric)) and _finite(row.get("score"))]
        for number, kind in enumerate(types or [""]):
            chosen = [(x, y) for x, y, t in points if t == kind or not types]
            if chosen:
                xs, ys = zip(*chosen, strict=True)
                axes.scatter(xs, ys, s=14, alpha=0.8, color=f"C{number % 10}", label=_plain(kind) if types else None)
        fit = entry.get("fit")
        if fit and points:
            xs = np.array([x for x, _, _ in points])
            grid = np.linspace(xs.min(), xs.max(), CURVE_POINTS)
            axes.plot(grid, predict(fit, grid), color="black", linewidth=1.2, label=f"fit ({fit['kind']})")
        srocc, plcc = entry["srocc"].get("value"), entry["plcc"].get("value")
        sign = entry.get("direction", 1)
        title = f"{metric}: SROCC {_text(srocc, sign)}, PLCC {_text(plcc, 1)}"
        axes.set_title(_plain(title, 60), fontsize=9)
        axes.set(xlabel=_plain(metric), ylabel=scale)
        axes.grid(alpha=0.3)
        if index == 0 and (types or fit):
            axes.legend(fontsize=7, loc="best")
    return _png(figure)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _text(value: Any, sign: int) -> str:
    return f"{sign * value:.3f}" if _finite(value) else "—"
