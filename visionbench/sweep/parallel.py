"""The sweep report's parallel-coordinates plot: one vertical axis per parameter and the objective.

:func:`axis_scale` maps each trial's value of a parameter to a height in [0, 1] (numeric ranges
linearly, ``loguniform`` ranges on a log scale, choices evenly spaced in the space's order) and
:func:`parallel_coordinates_plot` draws one line per trial, coloured by its value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from visionbench.report import plots


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (booleans are choices, not numbers)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class AxisScale:
    """One vertical axis of the parallel-coordinates plot.

    Attributes:
        name: the parameter (or the monitor).
        kind: ``"categorical"``, ``"log"``, ``"linear"`` or ``"constant"`` (one value: drawn at 0.5).
        positions: each trial's height on the axis, in [0, 1]; NaN where the trial has no value.
        ticks: ``(height, label)`` pairs written beside the axis.
    """

    name: str
    kind: str
    positions: list[float]
    ticks: list[tuple[float, str]]


def _bracket_items(spec: str) -> list[str]:
    """The comma-separated items inside the first ``[...]`` of a space description, quotes removed."""
    match = re.search(r"\[(.*)\]", spec)
    if not match or not match.group(1).strip():
        return []
    return [item.strip().strip("'\"") for item in match.group(1).split(",")]


def _numeric_bounds(spec: str) -> tuple[float, float] | None:
    """``(low, high)`` of a description like ``loguniform [0.0001, 0.1]``, or ``None`` when it has none."""
    items = _bracket_items(spec)
    try:
        low, high = float(items[0]), float(items[1])
    except (IndexError, ValueError):
        return None
    return (low, high) if low <= high else None


def _choice_text(value: Any) -> str:
    """A choice as the space's description writes it (YAML: ``true``, ``null``, ``sgd``, ``0.1``)."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def _categorical_scale(name: str, values: Sequence[Any], spec: str) -> AxisScale:
    """Choices at evenly spaced heights, in the space's order, then any other value seen."""
    labels = _bracket_items(spec) if re.search(r"choice|categorical", spec, re.IGNORECASE) else []
    labels += list(dict.fromkeys(_choice_text(v) for v in values if v is not None and _choice_text(v) not in labels))
    spacing = 1.0 / (len(labels) - 1) if len(labels) > 1 else 0.0
    height = {label: (i * spacing if len(labels) > 1 else 0.5) for i, label in enumerate(labels)}
    positions = [math.nan if v is None else height[_choice_text(v)] for v in values]
    return AxisScale(name, "categorical", positions, [(height[label], label) for label in labels])


def axis_scale(name: str, values: Sequence[Any], spec: str | None = None) -> AxisScale:
    """Map one parameter's values (one per trial, ``None`` where absent) to heights in [0, 1].

    Categorical parameters (``choice``/``categorical`` in ``spec``, or any value that is not a
    number) get evenly spaced heights labelled with their choices. Numeric ones are scaled linearly
    between the space's bounds (``[low, high]`` in ``spec``, widened to the values seen) or the values'
    own range, on a log10 scale when ``spec`` says ``log`` (e.g. ``loguniform``) and every value is
    positive. One distinct value is drawn at 0.5.

    Args:
        name: the axis title.
        values: the parameter's value per trial.
        spec: the search space's description of the parameter, e.g. ``"loguniform [0.0001, 0.1]"``.

    Returns:
        The :class:`AxisScale`.
    """
    spec = str(spec or "")
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    values = [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values]
    if re.search(r"choice|categorical", spec, re.IGNORECASE) or not all(is_number(v) for v in present):
        return _categorical_scale(name, values, spec)
    if not present:
        return AxisScale(name, "constant", [math.nan] * len(values), [])
    numbers = [float(v) for v in present]
    low, high = min(numbers), max(numbers)
    bounds = _numeric_bounds(spec)
    if bounds:
        low, high = min(low, bounds[0]), max(high, bounds[1])
    log = "log" in spec.lower() and low > 0
    forward = math.log10 if log else float
    if forward(high) == forward(low):
        return AxisScale(name, "constant", [math.nan if v is None else 0.5 for v in values], [(0.5, f"{low:.4g}")])
    span = forward(high) - forward(low)
    positions = [math.nan if v is None else (forward(float(v)) - forward(low)) / span for v in values]
    ticks = []
    for height in (0.0, 0.25, 0.5, 0.75, 1.0):
        at = forward(low) + height * span
        ticks.append((height, f"{(10 ** at if log else at):.3g}"))
    return AxisScale(name, "log" if log else "linear", positions, ticks)


def parallel_coordinates_plot(scales: Sequence[AxisScale], values: Sequence[float], *, monitor: str,
                              maximize: bool) -> bytes:
    """One line per trial across ``scales`` (left to right, one position per trial; the last is usually the
    objective), coloured by ``values`` with a colorbar labelled ``monitor``, the best lines drawn last; PNG bytes."""
    count = len(scales)
    figure = plots._figure(max(6.0, 1.7 * count + 2.0), 4.8)
    axes = figure.subplots()
    low, high = float(np.min(values)), float(np.max(values))
    if low == high:  # one trial, or every value equal: a colour scale of nonzero width around it
        low, high = low - max(abs(low) * 0.05, 0.01), high + max(abs(high) * 0.05, 0.01)
    norm, cmap = Normalize(low, high), colormaps["viridis" if maximize else "viridis_r"]
    order = np.argsort(values) if maximize else np.argsort(values)[::-1]  # worst first: the best lines lie on top
    for trial in order:
        heights = [scale.positions[trial] for scale in scales]
        axes.plot(range(count), heights, "-o", markersize=3, color=cmap(norm(values[trial])), alpha=0.85,
                  linewidth=1.3)
    for x, scale in enumerate(scales):
        axes.axvline(x, color="0.3", linewidth=1)
        for height, label in scale.ticks:
            axes.text(x + 0.04, height, plots._plain(label, 16), fontsize=7, va="center", ha="left",
                      bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})
    names = [plots._plain(s.name, 18) + (" (log)" if s.kind == "log" else "") for s in scales]
    axes.set_xticks(range(count), names, rotation=plots._rotation(names), fontsize=8)
    axes.set(xlim=(-0.3, count - 0.4), ylim=(-0.06, 1.06), yticks=[], title="Parallel coordinates (complete trials)")
    for side in ("left", "right", "top"):
        axes.spines[side].set_visible(False)
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=f"{plots._plain(monitor)}", shrink=0.9)
    return plots._png(figure)


__all__ = ["AxisScale", "axis_scale", "is_number", "parallel_coordinates_plot"]
