"""Agreement of a quality metric with human scores (MOS or DMOS): rank and linear correlations,
the VQEG logistic mapping, bootstrap intervals over images. Pure NumPy/SciPy: no files, no torch
(the scores file and the pairing are :mod:`visionbench.quality.mos_scores`).

**Statistics** of one metric, on the items whose metric value is finite:

- ``srocc``: Spearman's rank correlation (average ranks for ties), as ``scipy.stats.spearmanr``;
- ``krocc``: Kendall's tau-b (ties in either variable handled as tau-b does), as
  ``scipy.stats.kendalltau``;
- ``plcc``: Pearson's r between the scores and the metric mapped onto the score scale by the
  fitted function below, as ``scipy.stats.pearsonr``;
- ``rmse``: the root mean squared difference between the scores and that mapped metric,
  ``sqrt(mean((Q(x) - score)²))`` (divided by n, not by n minus the parameter count).

**Signs.** SROCC and KROCC are stored with their natural sign: negative for a lower-is-better
metric (``gmsd``, ``mse``) against MOS, or a higher-is-better one against DMOS. ``direction``
(``+1`` or ``-1``) is the sign they have when the metric agrees with the scores; tables print
``direction × value``, which is what IQA papers print as |SROCC| whenever the sign is the expected
one (a negative printed value means the metric ranks the images the wrong way round). PLCC is
positive whenever the fit follows the data, since the mapping takes the sign.

**The mapping** (VQEG FR-TV Phase II; Sheikh et al. 2006) is the 5-parameter logistic
``Q(x) = b1·(1/2 − 1/(1 + exp(b2·(x − b3)))) + b4·x + b5``, fitted by least squares with
``scipy.optimize.curve_fit`` (Levenberg–Marquardt, at most 5,000 evaluations) on the metric
standardised to mean 0 and standard deviation 1, so one set of starting values suits PSNR in dB
and SSIM alike; the parameters are stored converted back to the metric's own units. Starting
values, in those units, with ``s = ±1`` the sign of the straight-line slope:

1. data-centred: ``b1 = max(score) − min(score)``, ``b2 = s/std(x)``, ``b3 = mean(x)``, ``b4 = 0``,
   ``b5 = mean(score)`` (the curve starts through the centre of the data);
2. if that fails, the common choice of IQA code: ``b1 = max(score)``, ``b2 = s/std(x)``,
   ``b3 = mean(x)``, ``b4 = 0``, ``b5 = 0.1``.

A fit is **used** when ``curve_fit`` converges to finite parameters, the curve is monotonic
between the smallest and the largest metric value (a mapping that folds back would reward a
metric for ranking images wrongly; with ``b4`` free the 5-parameter curve can fold on small
data), and its residual sum of squares is no larger than a straight line's (the 5-parameter
function contains the line, ``b1 = 0``, so a worse fit is a local minimum). Otherwise (or with fewer than 7 items, two more
than the parameters) the 4-parameter logistic ``Q(x) = (b1 − b2)/(1 + exp(−(x − b3)/|b4|)) + b2``
is tried under the same rule (start ``b1``, ``b2`` = the highest and lowest score in the slope's
order, ``b3 = mean(x)``, ``b4 = std(x)``; at least 6 items), then the least-squares straight line,
which always succeeds. Nothing raises: the kind used (``logistic5``, ``logistic4``, ``linear``, or
``constant`` when the metric has one value for every item) and why each earlier kind was not
used are recorded.

**Intervals** are 95% percentile intervals of 1,000 bootstrap resamples of the images (seeded;
the same resamples for every statistic and metric). SROCC is recomputed on every resample
vectorised over resamples (``rankdata(axis=1)``); KROCC from each resample's draw counts
(the counts weight a precomputed pairwise concordance matrix: an exact tau-b of the resample,
up to 1,500 items, a loop of ``kendalltau`` above); PLCC and RMSE keep the mapping fitted on all
images fixed and resample the (mapped metric, score) pairs. Refitting per resample was measured
at 1–5 ms a fit (1–5 s per metric for 1,000 resamples) and, on resamples of 32 images, did not
converge in about 30% of them, which would mix mapping kinds within one interval; so the PLCC and
RMSE intervals leave out the uncertainty of the fit itself. The per-type breakdown uses the
mapping fitted on all images (a type often has fewer images than parameters) and resamples the
images of that type.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from visionbench._extras import import_optional

DEFAULT_RESAMPLES = 1000


def _scipy(name: str) -> Any:
    """``scipy.<name>`` (``optimize``, ``special``, ``stats``): SciPy is the ``visionbench[mos]``
    extra, needed only for agreement with human scores (its ``curve_fit`` is the field's fit)."""
    return import_optional(f"scipy.{name}", extra="mos", purpose="agreement with human scores (--mos)")

LEVEL = 0.95
MIN_ITEMS = 3  # fewer scored items than this: correlations are undefined (NaN)
MAX_EVALUATIONS = 5000  # curve_fit's maxfev
KENDALL_MATRIX_MAX = 1500  # above this many items, bootstrap KROCC loops over kendalltau (n² memory)
_BLOCK_ELEMENTS = 1 << 18  # resampled values per block (R_block × n)
STATISTICS = ("srocc", "krocc", "plcc", "rmse")


# --- correlations, vectorised over rows ----------------------------------------------------------


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of ``a`` with the same row of ``b`` (``[R, n]`` each): ``[R]``.

    As ``scipy.stats.pearsonr``: centred, normalised (each norm taken of the deviations divided by
    their largest magnitude, so tiny or huge values neither underflow nor overflow), clipped to
    [−1, 1], exactly ±1 for two items; NaN for a row in which either variable is constant
    (checked exactly, not through a rounded mean).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    am, bm = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        for deviations in (am, bm):
            largest = np.abs(deviations).max(axis=1, keepdims=True)
            deviations /= largest * np.linalg.norm(deviations / largest, axis=1, keepdims=True)
        r = np.clip(np.einsum("ij,ij->i", am, bm), -1.0, 1.0)
    if a.shape[1] == 2:
        r = np.round(r)
    constant = (a == a[:, :1]).all(axis=1) | (b == b[:, :1]).all(axis=1)
    r[constant] = np.nan
    return r


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation of each row pair (``[R, n]`` each): Pearson's r of the average
    ranks, as ``scipy.stats.spearmanr``; NaN for a constant row."""
    return pearson_rows(_scipy("stats").rankdata(x, axis=1), _scipy("stats").rankdata(y, axis=1))


def kendall_tau_b(x: np.ndarray, y: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """Kendall's tau-b of ``x`` and ``y`` (``[n]``) for each row of ``counts`` (``[R, n]``: how
    many times each item is in that sample, e.g. a bootstrap resample; None: each item once).

    A sample with repeated items is the list in which item ``i`` appears ``counts[i]`` times; its
    pairs of distinct items ``i < j`` number ``counts[i]·counts[j]`` and all share the sign of
    ``(x_i − x_j)(y_i − y_j)``, and copies of one item are tied in both variables. So with
    ``C = sign(Δx)·sign(Δy)``, ``Ax = |sign(Δx)|`` and ``Ay = |sign(Δy)|`` (pairwise ``n × n``),
    ``tau_b = (wᵀCw/2) / sqrt(wᵀAx w/2) / sqrt(wᵀAy w/2)``, exactly what ``scipy.stats.kendalltau``
    computes on the expanded sample (concordant minus discordant pairs over the square roots of
    the pairs not tied in x and not tied in y). NaN when a sample is constant in either variable.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    weights = np.ones((1, x.size)) if counts is None else np.asarray(counts, dtype=np.float64)
    sign_x, sign_y = np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :])

    def quadratic(matrix: np.ndarray) -> np.ndarray:
        return np.einsum("ri,ri->r", weights @ matrix, weights) / 2

    concordance, untied_x, untied_y = quadratic(sign_x * sign_y), quadratic(np.abs(sign_x)), quadratic(np.abs(sign_y))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = concordance / np.sqrt(untied_x) / np.sqrt(untied_y)
    tau[(untied_x == 0) | (untied_y == 0)] = np.nan
    return np.clip(tau, -1.0, 1.0)


# --- the mapping ---------------------------------------------------------------------------------


def logistic5(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """VQEG's 5-parameter logistic ``b1·(1/2 − 1/(1 + exp(b2·(x − b3)))) + b4·x + b5`` (overflow-free)."""
    return b1 * (0.5 - _scipy("special").expit(-b2 * (x - b3))) + b4 * x + b5


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG's 4-parameter logistic ``(b1 − b2)/(1 + exp(−(x − b3)/|b4|)) + b2`` (overflow-free)."""
    return (b1 - b2) * _scipy("special").expit((x - b3) / np.abs(b4)) + b2


def linear(x: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """The straight line ``slope·x + intercept``."""
    return slope * x + intercept


def constant(x: np.ndarray, value: float) -> np.ndarray:
    """``value`` everywhere (the mapping of a metric with a single value)."""
    return np.full(np.shape(x), value, dtype=np.float64)


FIT_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "logistic5": logistic5, "logistic4": logistic4, "linear": linear, "constant": constant,
}
PARAMETER_NAMES = {"logistic5": ("b1", "b2", "b3", "b4", "b5"), "logistic4": ("b1", "b2", "b3", "b4"),
                   "linear": ("slope", "intercept"), "constant": ("value",)}


@dataclass(frozen=True)
class Fit:
    """A fitted mapping from metric values to the score scale: its kind (a key of
    :data:`FIT_FUNCTIONS`), its parameters in the metric's units, and why the kinds tried before
    it were not used."""

    kind: str
    params: tuple[float, ...]
    notes: tuple[str, ...] = ()

    def predict(self, x: Any) -> np.ndarray:
        """The mapped values ``Q(x)``."""
        return FIT_FUNCTIONS[self.kind](np.asarray(x, dtype=np.float64), *self.params)

    def as_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` form: ``kind``, ``params`` by name, and ``notes``."""
        return {"kind": self.kind, "params": dict(zip(PARAMETER_NAMES[self.kind], self.params, strict=True)),
                "notes": list(self.notes)}


def predict(fit: dict[str, Any], x: Any) -> np.ndarray:
    """``Q(x)`` of a fit in its ``metrics.json`` form (:meth:`Fit.as_dict`), e.g. for the report's curve."""
    params = [fit["params"][name] for name in PARAMETER_NAMES[fit["kind"]]]
    return FIT_FUNCTIONS[fit["kind"]](np.asarray(x, dtype=np.float64), *params)


def fit_mapping(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> Fit:
    """The mapping of metric values ``x`` onto scores ``y`` (see the module docstring): the
    5-parameter logistic, else the 4-parameter one, else a straight line. Never raises for
    finite input of at least two items."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    centre, scale = float(x.mean()), float(x.std())
    if x.min() == x.max() or not scale > 0:  # exactly: a rounded std of equal values need not be 0
        return Fit("constant", (float(y.mean()),), ("the metric has the same value for every item",))
    z = (x - centre) / scale  # standardised: one set of starting values for every metric's units
    slope, intercept = np.polyfit(z, y, 1)
    line_sse = float(np.sum((linear(z, slope, intercept) - y) ** 2))
    tolerance = line_sse * 1e-6 + 1e-12 * max(float(np.sum((y - y.mean()) ** 2)), 1e-300)
    sign = 1.0 if slope >= 0 else -1.0
    high, low = float(y.max()), float(y.min())
    right, left = (high, low) if sign > 0 else (low, high)  # logistic4's b1 is its value far right, b2 far left
    candidates = (
        ("logistic5", [(high - low, sign, 0.0, 0.0, float(y.mean())), (high, sign, 0.0, 0.0, 0.1)]),
        ("logistic4", [(right, left, 0.0, 1.0)]),
    )
    notes = []
    for kind, starts in candidates:
        needed = len(starts[0]) + 2
        if z.size < needed:
            notes.append(f"{kind}: needs at least {needed} items, got {z.size}")
            continue
        params, reason = _fit_from_starts(FIT_FUNCTIONS[kind], z, y, starts, line_sse + tolerance)
        if params is not None:
            return Fit(kind, _to_metric_units(kind, params, centre, scale), tuple(notes))
        notes.append(f"{kind}: {reason}")
    return Fit("linear", _to_metric_units("linear", (slope, intercept), centre, scale), tuple(notes))


def _fit_from_starts(function: Callable[..., np.ndarray], z: np.ndarray, y: np.ndarray,
                     starts: Sequence[Sequence[float]], limit: float) -> tuple[tuple[float, ...] | None, str]:
    """The first start's fit that is monotonic over ``z`` with a residual sum of squares at most
    ``limit``; else None and why the last start failed."""
    reason = ""
    for start in starts:
        with warnings.catch_warnings():  # covariance warnings: the covariance is not used
            warnings.simplefilter("ignore", _scipy("optimize").OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                params, _ = _scipy("optimize").curve_fit(function, z, y, p0=list(start), maxfev=MAX_EVALUATIONS)
            except (RuntimeError, ValueError, TypeError, np.linalg.LinAlgError) as error:
                reason = f"did not converge ({str(error).strip().splitlines()[0]})"
                continue
        if not np.all(np.isfinite(params)):
            reason = "converged to non-finite parameters"
            continue
        if not _monotonic(function, params, z):
            reason = "the fitted curve is not monotonic over the data"
            continue
        if not float(np.sum((function(z, *params) - y) ** 2)) <= limit:
            reason = "converged to a worse fit than a straight line (a local minimum)"
            continue
        return tuple(float(p) for p in params), ""
    return None, reason


def _to_metric_units(kind: str, params: Sequence[float], centre: float, scale: float) -> tuple[float, ...]:
    """Parameters fitted on ``z = (x − centre)/scale`` rewritten for ``x`` itself (the same curve)."""
    if kind == "logistic5":
        b1, b2, b3, b4, b5 = params
        return (b1, b2 / scale, centre + scale * b3, b4 / scale, b5 - b4 * centre / scale)
    if kind == "logistic4":
        b1, b2, b3, b4 = params
        return (b1, b2, centre + scale * b3, scale * abs(b4))
    slope, intercept = params
    return (float(slope / scale), float(intercept - slope * centre / scale))


def _monotonic(function: Callable[..., np.ndarray], params: Sequence[float], z: np.ndarray) -> bool:
    """Whether the fitted curve only rises or only falls between the smallest and largest value."""
    values = function(np.linspace(z.min(), z.max(), 512), *params)
    steps = np.diff(values)
    slack = 1e-9 * max(float(np.ptp(values)), 1e-300)
    return bool(np.all(steps >= -slack) or np.all(steps <= slack))


# --- one metric's agreement ----------------------------------------------------------------------


def _statistics(x: np.ndarray, y: np.ndarray, mapped: np.ndarray) -> dict[str, float]:
    """SROCC, KROCC, PLCC and RMSE of one sample (the point estimates)."""
    return {"srocc": float(spearman_rows(x[None], y[None])[0]), "krocc": float(kendall_tau_b(x, y)[0]),
            "plcc": float(pearson_rows(mapped[None], y[None])[0]),
            "rmse": float(np.sqrt(np.mean((mapped - y) ** 2)))}


def bootstrap_statistics(x: np.ndarray, y: np.ndarray, mapped: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """SROCC, KROCC, PLCC and RMSE of ``resamples`` bootstrap resamples of the items: ``[R]`` each.

    The resamples are index draws of ``numpy.random.default_rng(seed)`` in blocks; the mapping
    stays fixed (``mapped`` = the fitted values of the items, see the module docstring).
    """
    n = x.size
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // n)
    out = {name: np.empty(resamples, dtype=np.float64) for name in STATISTICS}
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        index = rng.integers(0, n, size=(count, n))
        part = slice(start, start + count)
        xs, ys, ms = x[index], y[index], mapped[index]
        out["srocc"][part] = spearman_rows(xs, ys)
        out["plcc"][part] = pearson_rows(ms, ys)
        out["rmse"][part] = np.sqrt(np.mean((ms - ys) ** 2, axis=1))
        if n <= KENDALL_MATRIX_MAX:
            counts = np.stack([np.bincount(row, minlength=n) for row in index])
            out["krocc"][part] = kendall_tau_b(x, y, counts)
        else:  # the n × n matrices would not fit comfortably; kendalltau is O(n log n) per resample
            out["krocc"][part] = [_scipy("stats").kendalltau(a, b).statistic for a, b in zip(xs, ys, strict=True)]
    return out


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float]:
    """The central ``level`` percentile interval of bootstrap values (NaNs left out; NaNs if none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [math.nan, math.nan]
    tail = (1.0 - level) / 2
    return [float(v) for v in np.quantile(finite, [tail, 1.0 - tail])]


def agreement(values: Sequence[float], scores: Sequence[float], *, direction: int = 1, fit: Fit | None = None,
              resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """One metric's agreement with the scores: ``{"n", "direction", "srocc", "krocc", "plcc",
    "rmse", "fit"}``, each statistic ``{"value", "ci95"}``.

    Args:
        values, scores: the metric and the score of each item (items with a non-finite metric
            value are left out and counted in ``non_finite_items``).
        direction: the sign SROCC and KROCC have when the metric agrees with the scores.
        fit: the mapping to use (e.g. the one fitted on all types, for a per-type row); fitted
            here when None.
        resamples, seed: the bootstrap resamples.
    """
    x, y = np.asarray(values, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    keep = np.isfinite(x)
    x, y = x[keep], y[keep]
    entry: dict[str, Any] = {"n": int(x.size), "direction": direction}
    if not keep.all():
        entry["non_finite_items"] = int((~keep).sum())
    if x.size < MIN_ITEMS:
        return entry | _undefined(f"needs at least {MIN_ITEMS} scored items with a finite value; got {x.size}")
    own_fit = fit is None
    fit = fit_mapping(x, y) if fit is None else fit
    mapped = fit.predict(x)
    point = _statistics(x, y, mapped)
    resampled = bootstrap_statistics(x, y, mapped, resamples=resamples, seed=seed)
    for name in STATISTICS:
        entry[name] = {"value": point[name], "ci95": percentile_interval(resampled[name])}
    if own_fit:
        entry["fit"] = fit.as_dict()
    return entry


def direction_of(higher_is_better: bool, dmos: bool) -> int:
    """The sign of SROCC/KROCC when a metric agrees with the scores: +1 when the metric and the
    score scale point the same way (both higher = better), −1 otherwise."""
    return 1 if higher_is_better != dmos else -1


def agreement_section(values: dict[str, Sequence[float]], scores: Sequence[float], *,
                      higher_is_better: dict[str, bool], dmos: bool, types: Sequence[str] | None = None,
                      resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """The ``metrics.json`` ``mos`` results: ``{"metrics": {metric: agreement}, "per_type":
    {type: {metric: agreement}}}`` (``per_type`` only with ``types``).

    Args:
        values: per metric, its value for each scored item (in the order of ``scores``).
        scores: the items' scores; ``dmos`` says lower is better.
        higher_is_better: per metric, its direction.
        types: the items' distortion types, for the per-type breakdown (which maps with the fit
            of all items).
    """
    y = np.asarray(scores, dtype=np.float64)
    section: dict[str, Any] = {"metrics": {}}
    fits: dict[str, Fit | None] = {}
    for metric, column in values.items():
        direction = direction_of(higher_is_better[metric], dmos)
        entry = agreement(column, y, direction=direction, resamples=resamples, seed=seed)
        section["metrics"][metric] = entry
        fits[metric] = _fit_of(entry)
    if types is not None:
        labels = np.asarray(types, dtype=object)
        section["per_type"] = {}
        for kind in sorted(set(types)):
            chosen = labels == kind
            section["per_type"][kind] = {
                metric: _type_agreement(np.asarray(column, dtype=np.float64)[chosen], y[chosen],
                                        direction_of(higher_is_better[metric], dmos), fits[metric], resamples, seed)
                for metric, column in values.items()}
    return section


def _fit_of(entry: dict[str, Any]) -> Fit | None:
    """The :class:`Fit` of an agreement entry (None when there was too little data to fit)."""
    fit = entry.get("fit")
    if fit is None:
        return None
    return Fit(fit["kind"], tuple(fit["params"][name] for name in PARAMETER_NAMES[fit["kind"]]), tuple(fit["notes"]))


def _undefined(reason: str) -> dict[str, Any]:
    """Every statistic undefined (NaN) for ``reason``."""
    return {name: {"value": math.nan, "ci95": [math.nan, math.nan], "undefined": reason} for name in STATISTICS}


def _type_agreement(x: np.ndarray, y: np.ndarray, direction: int, fit: Fit | None, resamples: int,
                    seed: int) -> dict[str, Any]:
    """One type's agreement, mapped with the fit of all items (undefined when there was none)."""
    if fit is None:
        return {"n": int(np.isfinite(x).sum()), "direction": direction,
                **_undefined("too few scored items of all types to fit a mapping")}
    return agreement(x, y, direction=direction, fit=fit, resamples=resamples, seed=seed)


# --- printing ------------------------------------------------------------------------------------


def _cell(entry: dict[str, Any], sign: int = 1) -> str:
    """``value [low, high]`` to 3 decimals, multiplied by ``sign`` (the interval reordered)."""
    value = entry.get("value")
    if value is None or not math.isfinite(value):
        return "—"
    low, high = sorted(sign * (v if v is not None else math.nan) for v in entry["ci95"])
    interval = f" [{low:.3f}, {high:.3f}]" if math.isfinite(low) and math.isfinite(high) else ""
    return f"{sign * value:.3f}{interval}"


def table_lines(section: dict[str, Any]) -> list[str]:
    """The console table of a ``mos`` section: one line per metric (SROCC and KROCC signed by
    ``direction``, as papers print |SROCC|), then SROCC per distortion type."""
    scale = section.get("scale", "mos").upper()
    lines = [f"agreement with {scale} ({section.get('scores_file', 'scores')}; {section.get('num_scored')} scored "
             f"pair(s); 95% intervals over {section.get('resamples', DEFAULT_RESAMPLES)} bootstrap resamples)",
             f"{'metric':<8} {'n':>4}  {'SROCC':<24} {'KROCC':<24} {'PLCC':<24} {'RMSE':<24} fit"]
    for metric, entry in section["metrics"].items():
        sign = entry.get("direction", 1)
        cells = [_cell(entry[name], sign if name in ("srocc", "krocc") else 1) for name in STATISTICS]
        fit = entry.get("fit", {}).get("kind", "—")
        lines.append(f"{metric:<8} {entry['n']:>4}  " + " ".join(f"{c:<24}" for c in cells) + f" {fit}")
    if any(entry.get("direction", 1) < 0 for entry in section["metrics"].values()):
        lines.append("SROCC/KROCC are multiplied by -1 where lower metric values (or DMOS) mean better quality.")
    per_type = section.get("per_type")
    if per_type:
        metrics = list(section["metrics"])
        lines.append("SROCC per distortion type:")
        lines.append((f"{'type':<12} {'n':>4}  " + " ".join(f"{m:<24}" for m in metrics)).rstrip())
        for kind, entries in per_type.items():
            n = max(e["n"] for e in entries.values())
            cells = [_cell(entries[m]["srocc"], entries[m].get("direction", 1)) for m in metrics]
            lines.append(f"{kind[:12]:<12} {n:>4}  " + " ".join(f"{c:<24}" for c in cells).rstrip())
    return lines
