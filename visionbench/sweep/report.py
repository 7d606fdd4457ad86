"""The outputs of ``visionbench sweep``: ``sweep.json``, ``trials.csv`` and ``report.html``.

Everything works from the plain ``summary`` dict of the sweep runner (see :func:`write_sweep_outputs`);
nothing imports Optuna, so a sweep's report can be rebuilt from its ``sweep.json`` alone::

    write_sweep_outputs(Path("sweeps/s1"), json.loads(Path("sweeps/s1/sweep.json").read_text()))

The page is built like the run and compare reports: :mod:`visionbench.report.html` assembles it (every
user-provided string escaped), plots are Agg figures made with :mod:`visionbench.report.plots`' helpers
and inlined as PNGs, and every file is written atomically. Trials are selected on validation only; the
test split appears only in the final section (one evaluation each of the best and default configurations).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.lines import Line2D

from visionbench.engine.checkpoint import atomic_write
from visionbench.metrics import DETECTION_HIGHER_IS_BETTER, HIGHER_IS_BETTER, SEGMENTATION_HIGHER_IS_BETTER
from visionbench.report import html, plots
from visionbench.sweep.parallel import axis_scale, is_number, parallel_coordinates_plot

SWEEP_JSON = "sweep.json"
TRIALS_CSV = "trials.csv"
REPORT = "report.html"
ALPHA = 0.05  # significance level of the final comparison's sentence (two-sided)
MAX_ERROR = 300  # characters of a failed trial's error shown in the trials table (sweep.json keeps it whole)
TRIAL_COLUMNS = ("number", "state", "value", "ci95_low", "ci95_high", "best_epoch", "epochs", "seconds", "run_dir")
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}  # state: its word
_BEST_CELL = ' style="background:#e3f1e6;font-weight:600"'  # the best trial's row (inline: the page CSS stripes rows)

Section = tuple[str, str, str]  # (anchor, title, body HTML)


# --------------------------------------------------------------------------------------------- input


def _float(value: Any) -> float:
    """``value`` as a float; ``None``, booleans, text and other non-numbers become NaN."""
    return float(value) if is_number(value) else math.nan


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite number."""
    return math.isfinite(_float(value))


def _check_summary(summary: Any) -> None:
    """Raise a ValueError naming the problem unless ``summary`` has a list of trial records."""
    if not isinstance(summary, Mapping) or not isinstance(summary.get("trials"), list):
        got = sorted(summary) if isinstance(summary, Mapping) else type(summary).__name__
        raise ValueError(f"summary must be the sweep runner's dict with a 'trials' list; got {got!r}. "
                         "Pass the dict the runner writes to sweep.json.")
    for index, trial in enumerate(summary["trials"]):
        number = trial.get("number") if isinstance(trial, Mapping) else None
        if not isinstance(number, (int, np.integer)) or isinstance(number, bool):
            raise ValueError(f"summary['trials'][{index}] must be a dict with an integer 'number'; got {trial!r}. "
                             "Pass the trial records of the sweep runner.")


def _trials(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The trial records, sorted by trial number."""
    return sorted(summary["trials"], key=lambda trial: trial["number"])


def _param_names(summary: Mapping[str, Any]) -> list[str]:
    """Parameter names in the space's order, then any other parameter a trial holds (first seen first)."""
    names = [str(name) for name in (summary.get("space") or {})]
    for trial in _trials(summary):
        names += [str(name) for name in (trial.get("params") or {}) if str(name) not in names]
    return names


def _maximize(summary: Mapping[str, Any]) -> bool:
    """Whether a higher monitor value is better: ``direction``, else guessed from the monitor's name."""
    direction = str(summary.get("direction") or "").lower()
    if direction in ("maximize", "minimize"):
        return direction == "maximize"
    return "loss" not in str(summary.get("monitor") or "")


def _state(trial: Mapping[str, Any]) -> str:
    """The trial's state in capitals (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, …)."""
    return str(trial.get("state") or "?").upper()


def _best_number(summary: Mapping[str, Any]) -> int | None:
    """The number of the best trial, or ``None`` when the summary names none."""
    best = summary.get("best")
    return best.get("number") if isinstance(best, Mapping) else None


def _intermediate(trial: Mapping[str, Any]) -> tuple[list[int], list[float]]:
    """The trial's per-epoch validation values, ordered by epoch (keys are epoch numbers, as text in JSON)."""
    points = []
    for key, value in (trial.get("intermediate") or {}).items():
        try:
            points.append((int(key), _float(value)))
        except (TypeError, ValueError):
            raise ValueError(f"trial {trial['number']}: 'intermediate' keys must be epoch numbers; got {key!r}. "
                             "Record the validation value of each epoch under its number.") from None
    points.sort()
    return [epoch for epoch, _ in points], [value for _, value in points]


# ------------------------------------------------------------------------------------ sweep.json


def _json_ready(value: Any, where: str) -> Any:
    """``value`` with NaN/inf turned into ``None``, tuples into lists and numpy scalars/paths into
    their plain forms, so ``json.dumps(..., allow_nan=False)`` accepts it."""
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, Path):
        return str(value)
    raise ValueError(f"summary must be JSON-serialisable; got a {type(value).__name__} at {where}. "
                     "Store numbers, text, lists and dicts only.")


def sweep_json_text(summary: Mapping[str, Any]) -> str:
    """The text of ``sweep.json``: the summary as given, with NaN and infinities as ``null``.

    Raises:
        ValueError: a value is not JSON data (the message names where it is).
    """
    return json.dumps(_json_ready(summary, "summary"), indent=2, allow_nan=False) + "\n"


# ------------------------------------------------------------------------------------- trials.csv


def _csv_cell(value: Any) -> str:
    """A CSV cell: numbers exactly (``repr`` round-trips floats), missing or NaN as empty, lists/dicts as JSON."""
    value = value.item() if isinstance(value, np.generic) else value  # numpy 2 reprs np.float64(0.1) otherwise
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(_json_ready(value, "summary"))
    return repr(value) if isinstance(value, float) else str(value)


def trials_csv_rows(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of ``trials.csv``: one row per trial, by number; parameters as ``param_<name>``
    columns in the space's order (empty where a trial has no value).

    Raises:
        ValueError: ``summary`` has no list of trial records.
    """
    _check_summary(summary)
    names = _param_names(summary)
    header = [*TRIAL_COLUMNS, *(f"param_{name}" for name in names)]
    rows = []
    for trial in _trials(summary):
        ci = trial.get("ci95") if isinstance(trial.get("ci95"), (list, tuple)) and len(trial["ci95"]) == 2 else None
        params = {str(key): value for key, value in (trial.get("params") or {}).items()}
        cells = [trial["number"], _state(trial), trial.get("value"), ci[0] if ci else None, ci[1] if ci else None,
                 trial.get("best_epoch"), trial.get("epochs"), trial.get("seconds"), trial.get("run_dir")]
        rows.append([_csv_cell(cell) for cell in (*cells, *(params.get(name) for name in names))])
    return header, rows


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write the CSV atomically; the csv module quotes names and values holding commas or quotes."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    atomic_write(path, write)


# -------------------------------------------------------------------------------------- formatting


def _param_text(value: Any) -> str:
    """A parameter value for a table: floats to 4 significant digits, anything else as written."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _value_text(value: Any, ci: Any) -> str:
    """``value [low – high]`` (plain text), or just the value when its interval is unknown."""
    text = html.number(_float(value))
    return text + (f" [{html.interval(ci)}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 else "")


def _redacted(storage: Any) -> str:
    """A storage URL with its password replaced by ``***`` (a report is shared more widely than a study)."""
    return re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", str(storage))


def _p_text(value: Any) -> str:
    """A p-value to 3 significant digits (``1.65e-24``, not ``0.0000``); ``—`` when missing."""
    return f"{_float(value):.3g}" if _finite(value) else "—"


def _points(value: float) -> str:
    """A difference of fractions as signed percentage points, e.g. ``+1.20``, as ``visionbench compare`` writes it."""
    return f"{100 * value:+.2f}"


# ---------------------------------------------------------------------------------------- header


def state_counts(trials: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many trials are in each state: ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, plus any other found."""
    counts = dict.fromkeys(STATES, 0)
    for trial in trials:
        counts[_state(trial)] = counts.get(_state(trial), 0) + 1
    return counts


def _cards(summary: Mapping[str, Any], counts: Mapping[str, int]) -> str:
    """Boxes with the trial counts and the best validation value (HTML)."""
    boxes = [(STATES.get(state, state.lower()), str(count), "trials") for state, count in counts.items()]
    best = summary.get("best")
    if isinstance(best, Mapping):
        boxes.insert(0, (f"best {summary.get('monitor', 'value')} (trial {best.get('number')})",
                         html.number(_float(best.get("value"))), f"95% CI {html.interval(best.get('ci95'))}"))
    items = "".join(f'<div class="card"><div class="name">{html.escape(name)}</div><div class="value">'
                    f'{html.escape(value)}</div><div class="ci">{html.escape(under)}</div></div>'
                    for name, value, under in boxes)
    return f'<div class="cards">{items}</div>'


def _subtitle(summary: Mapping[str, Any], count: int) -> str:
    """One line: task, monitor and direction, sampler, pruner, seed and the number of trials."""
    direction = "maximize" if _maximize(summary) else "minimize"
    return (f"task {summary.get('task', '?')} · {summary.get('monitor', '?')} ({direction}) · sampler "
            f"{summary.get('sampler', '?')} · pruner {summary.get('pruner', '?')} · seed {summary.get('seed', '?')} · "
            f"{count} trials")


def _study_section(summary: Mapping[str, Any], counts: Mapping[str, int]) -> Section:
    settings = {"task": summary.get("task"), "monitor": summary.get("monitor"),
                "direction": "maximize" if _maximize(summary) else "minimize", "sampler": summary.get("sampler"),
                "pruner": summary.get("pruner"), "seed": summary.get("seed"), "study": summary.get("study"),
                "storage": _redacted(summary.get("storage")),
                "trials": ", ".join(f"{count} {STATES.get(state, state.lower())}" for state, count in counts.items())}
    body = html.config_table(settings)
    fixed = summary.get("fixed") or {}
    body += "<h3>Fixed options</h3>" + (html.config_table(fixed) if fixed else
                                        html.note("No option was fixed on the command line: every trial starts "
                                                  "from the train defaults."))
    space = summary.get("space") or {}
    body += "<h3>Search space</h3>" + (html.table(("parameter", "distribution"), space.items()) if space else
                                       html.note("The summary holds no search space."))
    return "study", "Study", body


# ------------------------------------------------------------------------------------ best trial


def _best_section(summary: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> Section:
    best = summary.get("best")
    monitor = summary.get("monitor", "value")
    if not isinstance(best, Mapping):
        why = "no trial has completed yet" if not any(_state(t) == "COMPLETE" for t in trials) else \
            "the summary names no best trial"
        return "best", "Best trial", html.note(f"No best trial: {why}.")
    record = next((t for t in trials if t["number"] == best.get("number")), {})
    rows = [("trial", best.get("number")), (f"{monitor}", _value_text(best.get("value"), best.get("ci95"))),
            ("best epoch / epochs run", f"{_param_text(record.get('best_epoch'))} / {_param_text(record.get('epochs'))}"),
            ("run directory", _param_text(record.get("run_dir")))]
    params = best.get("params") or record.get("params") or {}
    body = html.table(("", "best trial"), rows)
    body += "<h3>Parameters</h3>" + (html.table(("parameter", "value"), ((k, _param_text(v)) for k, v in params.items()))
                                     if params else html.note("The best trial has no parameters."))
    body += html.note(f"Chosen on {monitor} on the validation split only; the test split is not used to pick it.")
    return "best", "Best trial", body


# ---------------------------------------------------------------------------------------- trials


def _trial_note(trial: Mapping[str, Any]) -> str:
    """What to know about a trial beyond its numbers: the error of a failed one, cut to ``MAX_ERROR``."""
    if _state(trial) == "FAIL":
        error = str(trial.get("error") or "no error recorded")
        return error if len(error) <= MAX_ERROR else error[: MAX_ERROR - 1] + "…"
    return "still running" if _state(trial) == "RUNNING" else ""


def _trials_section(summary: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> Section:
    if not trials:
        return "trials", "Trials", html.note("No trial has started yet.")
    names, best = _param_names(summary), _best_number(summary)
    headers = ("#", "state", *names, f"{summary.get('monitor', 'value')} [95% CI]", "best epoch / epochs",
               "pruned", "time (s)", "run directory", "note")
    numeric = {0, len(names) + 2, len(names) + 3, len(names) + 5}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    lines = []
    for trial in trials:
        params = {str(k): v for k, v in (trial.get("params") or {}).items()}
        is_best = trial["number"] == best
        cells = (trial["number"], _state(trial) + (" ★ best" if is_best else ""),
                 *(_param_text(params.get(name)) for name in names), _value_text(trial.get("value"), trial.get("ci95")),
                 f"{_param_text(trial.get('best_epoch'))} / {_param_text(trial.get('epochs'))}",
                 "yes" if _state(trial) == "PRUNED" else "no", html.number(_float(trial.get("seconds")), 1),
                 _param_text(trial.get("run_dir")), _trial_note(trial))
        style, num, row_class = (_BEST_CELL, ' class="num"', ' class="best"' if is_best else "")
        row = "".join(f"<td{num if i in numeric else ''}{style if is_best else ''}>{html.escape(cell)}</td>"
                      for i, cell in enumerate(cells))
        lines.append(f"<tr{row_class}>{row}</tr>\n")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>\n{''.join(lines)}</tbody></table>"
    lead = html.note("One row per trial, by number; the best trial is highlighted. A pruned trial's value is the "
                     "last one it reported before it was stopped.")
    return "trials", "Trials", lead + table


# ------------------------------------------------------------------------------------------ plots


def _finish(axes: Any, xs: Sequence[float], ys: Sequence[float], *, xlabel: str, ylabel: str, title: str,
            handles: Sequence[Any] | None = None) -> None:
    """Ranges that stay readable for one x or equal ys, integer x ticks, labels, grid and legend."""
    finite = np.array(ys, dtype=np.float64)[np.isfinite(np.array(ys, dtype=np.float64))]
    if finite.size and np.ptp(finite) == 0:  # all equal: matplotlib's own range is ±0.04 of nothing
        pad = max(abs(float(finite[0])) * 0.05, 0.01)
        axes.set_ylim(float(finite[0]) - pad, float(finite[0]) + pad)
    if len(set(xs)) == 1:
        axes.set_xlim(xs[0] - 1, xs[0] + 1)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set(xlabel=xlabel, ylabel=plots._plain(ylabel), title=title)
    axes.grid(alpha=0.3)
    axes.legend(**({"handles": handles} if handles is not None else {}), fontsize=8)


def best_so_far(values: Sequence[float], *, maximize: bool) -> np.ndarray:
    """The best value up to each position: the running maximum when ``maximize``, else the running minimum."""
    values = np.asarray(values, dtype=np.float64)
    return np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)


def history_plot(trials: Sequence[Mapping[str, Any]], *, monitor: str, maximize: bool) -> bytes:
    """Each complete trial's value by trial number, pruned trials' last values as crosses, and the best
    value so far as a step line (the highest when ``maximize``, else the lowest); PNG bytes."""
    complete = [(t["number"], _float(t.get("value"))) for t in trials if _state(t) == "COMPLETE" and _finite(t.get("value"))]
    pruned = [(t["number"], _float(t.get("value"))) for t in trials if _state(t) == "PRUNED" and _finite(t.get("value"))]
    figure = plots._figure(8, 3.8)
    axes = figure.subplots()
    if complete:
        x, y = np.array(complete).T
        axes.plot(x, y, "o", color="C0", markersize=5, label="complete")
        axes.step(x, best_so_far(y, maximize=maximize), where="post", color="C3", linewidth=1.5, label="best so far")
    if pruned:
        x, y = np.array(pruned).T
        axes.plot(x, y, "x", color="0.5", markersize=6, label="pruned (last value reported)")
    _finish(axes, [n for n, _ in complete + pruned], [v for _, v in complete + pruned], xlabel="trial", ylabel=monitor,
            title=f"Optimisation history ({'higher' if maximize else 'lower'} is better)")
    return plots._png(figure)


def _history_section(summary: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> Section:
    plotted = [t for t in trials if _state(t) in ("COMPLETE", "PRUNED") and _finite(t.get("value"))]
    if not plotted:
        return "history", "Optimisation history", html.note("Nothing to plot yet: no trial has completed or reported "
                                                            "a validation value.")
    monitor, maximize = str(summary.get("monitor", "value")), _maximize(summary)
    png = history_plot(trials, monitor=monitor, maximize=maximize)
    lead = html.note(f"Dots: complete trials; crosses: pruned trials; red steps: the best {monitor} so far "
                     f"({'highest' if maximize else 'lowest'}).")
    return "history", "Optimisation history", lead + html.image(png, f"{monitor} per trial and best so far")


def intermediate_plot(trials: Sequence[Mapping[str, Any]], *, monitor: str, best: int | None) -> bytes:
    """The per-epoch validation curve of every trial: complete ones solid and coloured, pruned ones dashed
    grey, running ones dotted, the best trial thick and black; PNG bytes."""
    figure = plots._figure(8, 4.0)
    axes = figure.subplots()
    styles = {"COMPLETE": ("-", None, 0.8), "PRUNED": ("--", "0.6", 0.6), "RUNNING": (":", "C1", 0.9)}
    values_seen, epochs_seen = [], []
    for index, trial in enumerate(trials):
        epochs, values = _intermediate(trial)
        if not epochs:
            continue
        line, colour, alpha = styles.get(_state(trial), (":", "0.7", 0.6))
        width = 1.0
        if trial["number"] == best:
            line, colour, alpha, width = "-", "black", 1.0, 2.5
        axes.plot(epochs, values, line, marker="o", markersize=2.5, color=colour or f"C{index % 10}", alpha=alpha,
                  linewidth=width)
        values_seen += values
        epochs_seen += epochs
    handles = [Line2D([], [], linestyle=style, color=colour or "C0", label=state.lower())
               for state, (style, colour, _) in styles.items() if any(_state(t) == state for t in trials)]
    if best is not None:
        handles.append(Line2D([], [], color="black", linewidth=2.5, label=f"best trial ({best})"))
    _finish(axes, epochs_seen, values_seen, xlabel="epoch", ylabel=monitor,
            title="Validation value per epoch of each trial", handles=handles)
    return plots._png(figure)


def _intermediate_section(summary: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> Section:
    if not any(_intermediate(t)[0] for t in trials):
        return "intermediate", "Intermediate values", html.note("No trial has reported a per-epoch validation value "
                                                                "yet.")
    monitor = str(summary.get("monitor", "value"))
    png = intermediate_plot(trials, monitor=monitor, best=_best_number(summary))
    lead = html.note("The value the pruner saw after each epoch. Dashed grey: trials it stopped early (pruned).")
    return "intermediate", "Intermediate values", lead + html.image(png, f"{monitor} per epoch of every trial")


def importance_plot(importance: Mapping[str, Any]) -> bytes:
    """Horizontal bars of each parameter's importance, the most important at the top; PNG bytes."""
    items = sorted(((str(k), _float(v)) for k, v in importance.items()), key=lambda item: -np.nan_to_num(item[1]))
    figure = plots._figure(7, 0.4 * len(items) + 1.4)
    axes = figure.subplots()
    y = np.arange(len(items))[::-1]
    axes.barh(y, [value for _, value in items], color="C0")
    for row, (_, value) in zip(y, items, strict=True):
        axes.text(value if math.isfinite(value) else 0, row, f" {value:.3f}", va="center", fontsize=8)
    axes.set_yticks(y, [plots._plain(name, 30) for name, _ in items], fontsize=8)
    axes.set(xlabel="importance", title="Parameter importance", ylim=(-0.7, len(items) - 0.3))
    axes.set_xlim(0, max(max((v for _, v in items if math.isfinite(v)), default=0) * 1.2, 1e-9))
    axes.grid(axis="x", alpha=0.3)
    return plots._png(figure)


def _importance_section(summary: Mapping[str, Any]) -> Section:
    importance = summary.get("importance")
    if not isinstance(importance, Mapping) or not importance:
        return "importance", "Parameter importance", html.note(
            "No parameter importance in this sweep (it needs several complete trials and more than one parameter).")
    lead = html.note("How much of the variation of the validation value across complete trials each parameter "
                     "explains (Optuna's importance evaluator). It describes this search, not the test split.")
    return "importance", "Parameter importance", lead + html.image(importance_plot(importance), "parameter importance")


# ------------------------------------------------------------------------------ parallel coordinates


def _parallel_section(summary: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> Section:
    title = "Parallel coordinates"
    names = _param_names(summary)
    done = [t for t in trials if _state(t) == "COMPLETE" and _finite(t.get("value"))]
    if not names:
        return "parallel", title, html.note("No parameter was searched: nothing to draw.")
    if not done:
        return "parallel", title, html.note("No complete trial with a validation value yet: nothing to draw.")
    monitor, space = str(summary.get("monitor", "value")), summary.get("space") or {}
    values = [_float(t["value"]) for t in done]
    params = [{str(k): ("null" if v is None else v) for k, v in (t.get("params") or {}).items()} for t in done]
    scales = [axis_scale(name, [p.get(name) for p in params], space.get(name)) for name in names]  # None: absent
    scales.append(axis_scale(f"{monitor}", values))
    notes = ["One line per complete trial (pruned trials stopped early and are left out), coloured by its "
             "validation value. Numeric parameters are scaled to their range (log scale where marked), choices "
             "are evenly spaced."]
    if len(done) == 1:
        notes.append("Only one complete trial: a single line, no comparison yet.")
    if len(names) == 1:
        notes.append("Only one parameter was searched: the plot shows it against the objective.")
    if len(set(values)) == 1 and len(done) > 1:
        notes.append(f"Every complete trial has the same {monitor}: the colours carry no ranking.")
    png = parallel_coordinates_plot(scales, values, monitor=monitor, maximize=_maximize(summary))
    return "parallel", title, "".join(html.note(n) for n in notes) + html.image(png, "parallel coordinates")


# ------------------------------------------------------------------------------------- final test


def _higher_is_better(name: str, *entries: Any) -> bool:
    """A metric's direction: as its metrics.json entries state it, else visionbench's tables (higher by default)."""
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("higher_is_better") is not None:
            return bool(entry["higher_is_better"])
    known = {**HIGHER_IS_BETTER, **DETECTION_HIGHER_IS_BETTER, **SEGMENTATION_HIGHER_IS_BETTER}
    return bool(known.get(name, True))


def _same_run(path: Any, run_dir: Any) -> bool:
    """Whether a path named in the comparison is ``run_dir`` (one may be relative, the other absolute)."""
    if not path or not run_dir:
        return False
    a, b = Path(str(path)).parts, Path(str(run_dir)).parts
    shorter = min(len(a), len(b))
    return shorter > 0 and a[len(a) - shorter:] == b[len(b) - shorter:]


def best_side(pair: Mapping[str, Any], final: Mapping[str, Any]) -> str | None:
    """Which side of the comparison pair (``"a"`` or ``"b"``) is the best configuration's final run.

    Matched on the run directories (either may be relative); ``None`` when they do not tell.
    """
    best_dir, default_dir = (final.get("best") or {}).get("run_dir"), (final.get("default") or {}).get("run_dir")
    for side, other in (("a", "b"), ("b", "a")):
        if _same_run(pair.get(side), best_dir) and not _same_run(pair.get(other), best_dir):
            return side
        if _same_run(pair.get(other), default_dir) and not _same_run(pair.get(side), default_dir):
            return side
    return None


def _oriented(entry: Mapping[str, Any], side: str) -> tuple[float, float, float, list[float] | None]:
    """``(best, default, best − default, its 95% CI)`` of a pair's metric entry (``diff`` is ``b − a``)."""
    other = "a" if side == "b" else "b"
    sign = 1.0 if side == "b" else -1.0
    diff = sign * _float(entry.get("diff"))
    ci = entry.get("ci95")
    oriented = sorted((sign * _float(ci[0]), sign * _float(ci[1]))) if isinstance(ci, (list, tuple)) and len(ci) == 2 \
        else None
    return _float(entry.get(side)), _float(entry.get(other)), diff, oriented


def final_verdict(metric: str, diff: float, ci95: Sequence[float] | None, p_value: float | None, test: str,
                  higher_is_better: bool) -> str:
    """One honest sentence on the test comparison: which run is better on ``metric`` and whether the
    difference is significant (``p < ALPHA`` and the 95% interval excluding 0), whatever the outcome.

    Args:
        metric: the headline test metric.
        diff: best configuration − default on the test split.
        ci95: the difference's 95% interval (or ``None``).
        p_value: the p-value of the test named by ``test`` (or ``None``).
        test: ``"McNemar"`` or ``"paired bootstrap"``.
        higher_is_better: the metric's direction.
    """
    if not math.isfinite(_float(diff)):
        return f"The test comparison has no difference on {metric} to report (a value is missing)."
    low, high = (_float(ci95[0]), _float(ci95[1])) if ci95 else (math.nan, math.nan)
    has_ci, has_p = math.isfinite(low) and math.isfinite(high), math.isfinite(_float(p_value))
    if diff == 0:
        lead = f"On the test split the best configuration and the default score the same on {metric}"
    else:
        tuned_wins = (diff > 0) == higher_is_better
        winner, loser = ("best configuration", "default") if tuned_wins else ("default", "best configuration")
        lead = f"On the test split the {winner} is better than the {loser} on {metric}"
    details = [f"best − default = {_points(diff)} points"]
    if has_ci:
        details.append(f"95% CI [{_points(low)}, {_points(high)}]")
    if has_p:
        details.append(f"{test} p = {_p_text(p_value)}")
    sentence = f"{lead} ({', '.join(details)})"
    if not has_p and not has_ci:
        return sentence + "; without a p-value or an interval, whether the difference is significant is unknown."
    significant_p = has_p and _float(p_value) < ALPHA
    excludes = has_ci and (low > 0 or high < 0)
    p_text = (f"p < {ALPHA}" if significant_p else f"p ≥ {ALPHA}") if has_p else "no p-value"
    ci_text = ("the interval excludes 0" if excludes else "the interval includes 0") if has_ci else "no interval"
    if (significant_p or not has_p) and (excludes or not has_ci):
        verdict = f"; the difference is significant ({p_text}, {ci_text})."
        if diff != 0 and (diff > 0) != higher_is_better:
            verdict += " The configuration selected on validation did worse on test than the default."
        return sentence + verdict
    if not significant_p and not excludes:
        return sentence + f"; the difference is not significant ({p_text}, {ci_text}): this test split cannot tell " \
                          "the two apart."
    return sentence + f"; the evidence is mixed ({p_text} but {ci_text}): treat the difference as uncertain."


def _final_metrics_table(final: Mapping[str, Any]) -> str:
    """Each test metric of the best configuration and of the default, with intervals (HTML)."""
    best = html.scalar_metrics((final.get("best") or {}).get("metrics") or {})
    default = html.scalar_metrics((final.get("default") or {}).get("metrics") or {})
    names = list(dict.fromkeys([n for n in (final.get("headline"),) if n in best or n in default] + [*best, *default]))
    if not names:
        return html.note("The final runs report no test metric.")
    rows = [(name, html.direction(_higher_is_better(name, best.get(name), default.get(name))),
             _value_text(best[name].get("value"), best[name].get("ci95")) if name in best else "—",
             _value_text(default[name].get("value"), default[name].get("ci95")) if name in default else "—")
            for name in names]
    dirs = [(final.get(run) or {}).get("run_dir") for run in ("best", "default")]
    return html.table(("test metric", "better", f"best configuration ({_param_text(dirs[0])}) [95% CI]",
                       f"default ({_param_text(dirs[1])}) [95% CI]"), rows, numeric=(2, 3))


def _p_and_test(pair: Mapping[str, Any], metric: str, entry: Mapping[str, Any]) -> tuple[float, str]:
    """The p-value behind the sentence: McNemar's for accuracy when the pair has it (as ``compare`` does),
    else the paired bootstrap's."""
    mcnemar = pair.get("mcnemar")
    if metric == "accuracy" and isinstance(mcnemar, Mapping) and _finite(mcnemar.get("p_value")):
        return _float(mcnemar["p_value"]), "McNemar"
    return _float(entry.get("p_value")), "paired bootstrap"


def _comparison_html(final: Mapping[str, Any], pair: Mapping[str, Any]) -> str:
    """The honest sentence, the difference table, McNemar's counts and the forest plot (HTML)."""
    side = best_side(pair, final)
    metrics = pair.get("metrics") or {}
    if side is None:
        return html.note(f"The comparison's runs ({pair.get('a')}, {pair.get('b')}) cannot be matched to the best "
                         f"configuration ({(final.get('best') or {}).get('run_dir')}) and the default "
                         f"({(final.get('default') or {}).get('run_dir')}): no verdict is drawn.")
    if not metrics:
        return html.note("The comparison holds no metric difference.")
    headline = final.get("headline") if final.get("headline") in metrics else next(iter(metrics))
    best_metrics = (final.get("best") or {}).get("metrics") or {}
    rows, diffs, intervals, significant, labels = [], [], [], [], []
    for name, entry in metrics.items():
        best, default, diff, ci = _oriented(entry, side)
        p, _ = _p_and_test(pair, name, entry)
        rows.append((name, html.number(best), html.number(default), html.number(diff), html.interval(ci),
                     _p_text(entry.get("p_value"))))
        diffs.append(diff if math.isfinite(diff) else None)
        intervals.append(ci or [None, None])
        significant.append(math.isfinite(p) and p < ALPHA)
        labels.append(f"{name} ({html.direction(_higher_is_better(name, best_metrics.get(name)))[:1]})")
    best, default, diff, ci = _oriented(metrics[headline], side)
    p, test = _p_and_test(pair, headline, metrics[headline])
    sentence = final_verdict(headline, diff, ci, p, test, _higher_is_better(headline, best_metrics.get(headline)))
    body = html.paragraph(sentence, "verdict")
    if final.get("headline") not in metrics:
        body += html.note(f"The headline metric {final.get('headline')!r} is not in the comparison; the sentence "
                          f"uses {headline}.")
    body += html.table(("metric", "best configuration", "default", "best − default", "95% CI", "p (bootstrap)"), rows,
                       numeric=range(1, 6))
    mcnemar = pair.get("mcnemar")
    if isinstance(mcnemar, Mapping):
        only_a, only_b = mcnemar.get("b"), mcnemar.get("c")  # b: A right and B wrong; c: A wrong and B right
        only_best, only_default = (only_a, only_b) if side == "a" else (only_b, only_a)
        body += html.table(("McNemar (paired correctness)", "value"), [
            ("samples only the best configuration got right", html.number(only_best)),
            ("samples only the default got right", html.number(only_default)),
            ("p-value (exact McNemar test)", _p_text(mcnemar.get("p_value")))], numeric=(1,))
    if any(d is not None for d in diffs):
        body += html.image(plots.difference_forest(labels, diffs, intervals, significant, xlabel="best − default"),
                           "test metric differences, best configuration − default, with 95% intervals")
    return body


def _validation_line(final: Mapping[str, Any], monitor: str) -> str:
    """The selection figures: the best trial's and the default configuration's best validation value."""
    validation = final.get("validation")
    if not isinstance(validation, Mapping) or not all(_finite(validation.get(k)) for k in ("best", "default")):
        return ""
    return (f"<p>On validation ({html.escape(monitor)}, what the search selected on): best configuration "
            f"{_float(validation['best']):.4f}, default configuration {_float(validation['default']):.4f}.</p>")


def _final_section(summary: Mapping[str, Any]) -> Section:
    title = "Final test evaluation"
    monitor = summary.get("monitor", "value")
    final = summary.get("final")
    if not isinstance(final, Mapping):
        return "final", title, html.note("No final test runs yet: the best configuration and the default are "
                                         "evaluated on the test split once the search has finished.")
    body = html.note(f"Trials were selected on validation only ({monitor}); the test split was evaluated once per "
                     "final run: once for the best configuration, once for the default configuration.")
    body += _validation_line(final, monitor)
    body += _final_metrics_table(final)
    params = (final.get("best") or {}).get("params") or {}
    if params:
        body += "<h3>Best configuration</h3>" + html.table(("parameter", "value"),
                                                           ((k, _param_text(v)) for k, v in params.items()))
    body += "<h3>Paired comparison on the test split</h3>"
    pair = final.get("comparison")
    body += _comparison_html(final, pair) if isinstance(pair, Mapping) else html.note(
        "No paired comparison of the two final runs in this summary.")
    return "final", title, body


# ---------------------------------------------------------------------------------------------- page


def render_sweep_report(summary: Mapping[str, Any]) -> str:
    """The HTML text of the sweep's ``report.html``.

    Raises:
        ValueError: ``summary`` has no list of trial records, or a record is malformed.
    """
    _check_summary(summary)
    trials = _trials(summary)
    counts = state_counts(trials)
    sections = [_study_section(summary, counts), _best_section(summary, trials), _trials_section(summary, trials),
                _history_section(summary, trials), _intermediate_section(summary, trials),
                _importance_section(summary), _parallel_section(summary, trials), _final_section(summary)]
    header = _cards(summary, counts)
    if not counts["COMPLETE"]:
        header += html.note("No trial has completed yet: the sections below show what there is so far.")
    return html.page(f"Sweep report: {summary.get('study') or 'sweep'}", _subtitle(summary, len(trials)), header,
                     sections)


def write_sweep_outputs(sweep_dir: Path, summary: dict[str, Any]) -> dict[str, Path]:
    """Write ``sweep.json``, ``trials.csv`` and ``report.html`` of a sweep into ``sweep_dir``.

    All three are built in memory first, then each is written atomically (temporary file, then
    ``os.replace``), so a malformed summary leaves the previous outputs as they were.

    Args:
        sweep_dir: the sweep's directory (created if needed).
        summary: the runner's plain dict: ``task``, ``monitor``, ``direction``, ``sampler``,
            ``pruner``, ``seed``, ``storage``, ``study``, ``fixed``, ``space`` (``{name: description}``),
            ``trials`` (``number``, ``state``, ``params``, ``value``, ``ci95``, ``best_epoch``, ``epochs``,
            ``seconds``, ``run_dir``, ``intermediate``, ``error``), ``best``, ``importance`` and ``final``
            (``best``/``default`` runs with test ``metrics``, ``headline`` and the ``comparison`` pair
            of :func:`visionbench.comparison.compare_runs`).

    Returns:
        ``{"json": sweep.json, "csv": trials.csv, "html": report.html}`` paths.

    Raises:
        ValueError: ``summary`` has no list of trial records, a record is malformed, or a value is
            not JSON data (the message names it).

    """
    sweep_dir = Path(sweep_dir)
    _check_summary(summary)
    json_text = sweep_json_text(summary)
    header, rows = trials_csv_rows(summary)
    page = render_sweep_report(summary)
    paths = {"json": sweep_dir / SWEEP_JSON, "csv": sweep_dir / TRIALS_CSV, "html": sweep_dir / REPORT}
    atomic_write(paths["json"], lambda tmp: tmp.write_text(json_text, encoding="utf-8"))
    _write_csv(paths["csv"], header, rows)
    html.write_page(paths["html"], page)
    return paths
