"""``compare.html``: the result of ``visionbench compare`` as one self-contained page.

Input: the dict ``visionbench compare`` prints (``{"task": "compare", "runs": [...], "num_samples": N,
"pairs": [{"a", "b", "mcnemar": {"b", "c", "p_value"}, "metrics": {name: {"a", "b", "diff", "ci95",
"p_value", "p_value_holm"}}, "verdict"}], "summary"}``), plus each run's ``metrics.json`` when the
run directory named in ``runs`` still exists (for the intervals of the side-by-side table).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from visionbench.engine import rundir
from visionbench.report import html, plots
from visionbench.report.run_report import Section, read_metrics

REPORT = "compare.html"
ALPHA = 0.05  # significance level of the forest plot's colouring


def _labels(runs: Sequence[str]) -> dict[str, str]:
    """Short display names: each run directory's last component, unless two runs share it."""
    names = [Path(run).name or run for run in runs]
    unique = len(set(names)) == len(names)
    return {run: (name if unique else run) for run, name in zip(runs, names, strict=True)}


def _run_metrics(runs: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """Each run's ``metrics.json``, or ``None`` where the directory or file is gone."""
    return {run: read_metrics(Path(run)) if Path(run).is_dir() else None for run in runs}


def _pair_values(compare: Mapping[str, Any], run: str) -> dict[str, Any]:
    """A run's metric values as the comparison itself reports them (no intervals)."""
    values: dict[str, Any] = {}
    for pair in compare["pairs"]:
        for side in ("a", "b"):
            if pair.get(side) == run:
                values.update({name: entry.get(side) for name, entry in pair.get("metrics", {}).items()})
    return values


def _directions(run_metrics: Mapping[str, Mapping[str, Any] | None]) -> dict[str, bool]:
    """``higher_is_better`` of each metric, as the runs' ``metrics.json`` files state it."""
    found: dict[str, bool] = {}
    for metrics in run_metrics.values():
        for name, entry in html.scalar_metrics(metrics or {}).items():
            if entry.get("higher_is_better") is not None:
                found.setdefault(name, bool(entry["higher_is_better"]))
    return found


# ------------------------------------------------------------------------------------- side by side


def _cell(entry: Any) -> str:
    """``value [low – high]`` from a metrics.json entry, or the bare value from the comparison."""
    if isinstance(entry, Mapping):
        ci = entry.get("ci95")
        return html.number(entry.get("value")) + (f" [{html.interval(ci)}]" if ci else "")
    return html.number(entry)


def _value(entry: Any) -> float:
    """The number inside a cell's source (NaN when missing)."""
    value = entry.get("value") if isinstance(entry, Mapping) else entry
    return math.nan if value is None else float(value)


def _best(entries: Sequence[Any], higher: bool | None, labels: Sequence[str]) -> str:
    """The label of the run with the best value ('' when the direction is unknown or values tie)."""
    values = [_value(e) for e in entries]
    finite = [(v, label) for v, label in zip(values, labels, strict=True) if not math.isnan(v)]
    if higher is None or len(finite) < 2:
        return ""
    best = max(finite, key=lambda item: item[0] if higher else -item[0])
    return "" if sum(v == best[0] for v, _ in finite) > 1 else best[1]


def _side_by_side(compare: Mapping[str, Any], run_metrics: Mapping[str, dict[str, Any] | None]) -> Section:
    runs, labels = list(compare["runs"]), _labels(compare["runs"])
    columns = {run: (html.scalar_metrics(m) if m else _pair_values(compare, run)) for run, m in run_metrics.items()}
    names = list(dict.fromkeys(name for run in runs for name in columns[run]))
    directions = _directions(run_metrics)
    rows = []
    for name in names:
        entries = [columns[run].get(name) for run in runs]
        rows.append((name, html.direction(directions.get(name)), *(_cell(e) for e in entries),
                     _best(entries, directions.get(name), [labels[r] for r in runs])))
    body = html.table(("metric", "better", *(labels[r] for r in runs), "best"), rows, numeric=range(2, 2 + len(runs)))
    missing = [labels[run] for run, metrics in run_metrics.items() if metrics is None]
    note = html.note("Values with their 95% bootstrap intervals from each run's metrics.json." if not missing else
                     f"No {rundir.METRICS} found for {', '.join(missing)}: those columns show the values of the "
                     "comparison, without intervals.")
    return "side-by-side", "Metrics side by side", note + body


# --------------------------------------------------------------------------------------------- pairs


def _difference_label(metrics: Mapping[str, Mapping[str, Any]], a: str, b: str) -> str:
    """``"B − A"`` or ``"A − B"``, whichever the reported differences are (checked on the values)."""
    triples = [(e.get("a"), e.get("b"), e.get("diff")) for e in metrics.values()]
    triples = [(x, y, d) for x, y, d in triples if None not in (x, y, d) and math.isfinite(x + y + d)]
    if triples and all(math.isclose(d, y - x, rel_tol=1e-6, abs_tol=1e-9) for x, y, d in triples):
        return f"{b} − {a}"
    if triples and all(math.isclose(d, x - y, rel_tol=1e-6, abs_tol=1e-9) for x, y, d in triples):
        return f"{a} − {b}"
    return "difference (as reported)"


def _p(entry: Mapping[str, Any]) -> float | None:
    """The Holm-adjusted p-value when given, else the raw one."""
    p = entry.get("p_value_holm")
    return entry.get("p_value") if p is None else p


def _mcnemar_table(mcnemar: Mapping[str, Any], a: str, b: str) -> str:
    rows = [
        (f"{a} right, {b} wrong (b)", html.number(mcnemar.get("b"))),
        (f"{a} wrong, {b} right (c)", html.number(mcnemar.get("c"))),
        ("p-value (exact McNemar test on b and c)", html.number(mcnemar.get("p_value"))),
    ]
    if "p_value_holm" in mcnemar:
        rows.append(("p-value, Holm-adjusted across pairs", html.number(mcnemar["p_value_holm"])))
    return html.table(("McNemar", "value"), rows, numeric=(1,))


def _difference_table(metrics: Mapping[str, Mapping[str, Any]], a: str, b: str, label: str) -> str:
    rows = [
        (name, html.number(e.get("a")), html.number(e.get("b")), html.number(e.get("diff")), html.interval(e.get("ci95")),
         html.number(e.get("p_value")), html.number(e.get("p_value_holm")))
        for name, e in metrics.items()
    ]
    return html.table(("metric", a, b, f"diff ({label})", "95% CI", "p", "p (Holm)"), rows, numeric=range(1, 7))


def _forest(metrics: Mapping[str, Mapping[str, Any]], directions: Mapping[str, bool], label: str) -> str:
    """The forest plot of the pair's differences (HTML), or a note when there is nothing to draw."""
    if not metrics:
        return html.note("No metric differences in this pair.")
    names = [f"{n} ({html.direction(directions[n])[:1]})" if n in directions else n for n in metrics]
    significant = [(_p(e) is not None and _p(e) < ALPHA) for e in metrics.values()]
    png = plots.difference_forest(names, [e.get("diff") for e in metrics.values()],
                                  [e.get("ci95") or [None, None] for e in metrics.values()], significant,
                                  xlabel=label)
    return html.image(png, f"metric differences {label} with 95% intervals")


def _pair_section(index: int, pair: Mapping[str, Any], labels: Mapping[str, str],
                  directions: Mapping[str, bool]) -> Section:
    a, b = labels.get(pair.get("a"), str(pair.get("a"))), labels.get(pair.get("b"), str(pair.get("b")))
    metrics = pair.get("metrics") or {}
    label = _difference_label(metrics, a, b)
    body = html.paragraph(str(pair.get("verdict", "")), "verdict")
    if pair.get("mcnemar"):
        body += "<h3>McNemar's test (paired correctness)</h3>" + _mcnemar_table(pair["mcnemar"], a, b)
    body += "<h3>Metric differences (paired bootstrap)</h3>" + _difference_table(metrics, a, b, label)
    body += html.note(f"Red: p < {ALPHA} (Holm-adjusted where given). Arrows: which direction is better.")
    body += _forest(metrics, directions, label)
    return f"pair-{index}", f"{a} vs {b}", body


# ---------------------------------------------------------------------------------------------- page


def _check_compare(compare: Any) -> None:
    if not isinstance(compare, Mapping) or not isinstance(compare.get("runs"), list) \
            or not isinstance(compare.get("pairs"), list):
        got = sorted(compare) if isinstance(compare, Mapping) else type(compare).__name__
        raise ValueError(f"compare must be the dict of `visionbench compare` with 'runs' and 'pairs' lists; got {got!r}.")


def render_compare_report(compare: Mapping[str, Any]) -> str:
    """The HTML text of the comparison page."""
    _check_compare(compare)
    runs, labels = list(compare["runs"]), _labels(compare["runs"])
    run_metrics = _run_metrics(runs)
    directions = _directions(run_metrics)
    summary_rows = [(labels[r], r, "yes" if run_metrics[r] is not None else "no") for r in runs]
    summary = html.paragraph(str(compare.get("summary", "")), "verdict")
    summary += html.table(("run", "path", rundir.METRICS), summary_rows)
    sections = [("summary", "Summary", summary), _side_by_side(compare, run_metrics)]
    sections += [_pair_section(i, pair, labels, directions) for i, pair in enumerate(compare["pairs"], start=1)]
    subtitle = f"{len(runs)} runs · {compare.get('num_samples', '?')} paired test samples"
    return html.page(f"Comparison of {len(runs)} runs", subtitle, "", sections)


def build_compare_report(compare: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write ``out_dir/compare.html`` from the result of ``visionbench compare``.

    Args:
        compare: the comparison dict (``"runs"``, ``"pairs"``, ``"summary"``, ``"num_samples"``).
        out_dir: where to write (created if needed).

    Returns:
        The path of ``compare.html``.

    Raises:
        ValueError: ``compare`` lacks the ``runs``/``pairs`` lists, or a run's metrics.json is malformed.

    Example:
        >>> build_compare_report(result, "runs/compare-001")  # doctest: +SKIP
        PosixPath('runs/compare-001/compare.html')
    """
    text = render_compare_report(compare)
    return html.write_page(Path(out_dir) / REPORT, text)
