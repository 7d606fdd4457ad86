"""The ``report.html`` of a quality run, built only from its files: ``config.yaml``,
``metrics.json``, ``items.csv`` and ``examples.npz``.

Sections: the pooled metrics with their intervals and conventions, the agreement with human
scores (runs with ``--mos``: each metric against the scores with its fitted curve, the correlation
table and its per-type breakdown), each metric per frame (videos) or per item (folders), the worst
items side by side with their difference and SSIM maps, the unpaired files, and the settings.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from visionbench.engine.rundir import QUALITY_ITEMS as ITEMS
from visionbench.engine.rundir import REPORT
from visionbench.report import html, plots
from visionbench.report.run_report import read_config, read_metrics

MAX_ITEM_TABLE = 30  # worst items listed in the table


def _read_items(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / ITEMS
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: _number(v) if k not in ("item", "type") else v for k, v in row.items()}  # type: distortion type
                for row in csv.DictReader(handle)]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _settings_line(settings: dict[str, Any]) -> str:
    return (f"profile {settings.get('profile')}, channel {settings.get('channel')}, data range "
            f"{settings.get('data_range')}, crop border {settings.get('crop_border')} px; "
            f"{settings.get('kind')} compared")


def _metrics_section(metrics: dict[str, Any]) -> tuple[str, str, str]:
    settings = metrics.get("settings", {})
    notes = [html.note(f"{metrics.get('pooling', 'mean over items')}, with 95% bootstrap intervals over items; "
                       + _settings_line(settings))]
    for name, entry in html.scalar_metrics(metrics).items():
        if isinstance(entry, dict) and entry.get("definition"):
            notes.append(html.note(f"{name}: {entry['definition']}."))
        if isinstance(entry, dict) and entry.get("non_finite_items"):
            notes.append(html.note(f"{name}: {entry['non_finite_items']} identical pair(s) (infinite value) are left "
                                   "out of the mean."))
    return "metrics", "Metrics", html.metrics_table(metrics) + "".join(notes)


def _per_item_section(rows: list[dict[str, Any]], metrics: list[str], kind: str) -> tuple[str, str, str] | str:
    if len(rows) < 2:
        return "Per-item plot: only one pair was compared."
    frames = kind == "videos"
    png = plots.quality_per_item(rows, metrics, frames=frames)
    title = "Per frame" if frames else "Per item"
    return "per-item", title, html.image(png, f"{title.lower()} values")


def _worst_section(examples: list[dict[str, Any]], rows: list[dict[str, Any]], metric: str,
                   higher_is_better: bool) -> tuple[str, str, str] | str:
    if not examples:
        return "Worst items: no thumbnails in this run directory (examples.npz)."
    parts = [html.note(f"The {len(examples)} items with the {'lowest' if higher_is_better else 'highest'} {metric}, "
                       "worst first: reference, distorted, absolute difference, and the SSIM map (skimage profile; "
                       "left out above 1080p).")]
    for example in examples:
        title = f"{example['item']}: {metric} = {example['value']:.4f}"
        parts.append(html.image(plots.quality_example(example["ref"], example["dist"], example["difference"],
                                                      example["ssim"], title=title), title))
    ordered = sorted((r for r in rows if math.isfinite(r.get(metric, math.nan))), key=lambda r: r[metric],
                     reverse=not higher_is_better)[:MAX_ITEM_TABLE]
    columns = [c for c in rows[0] if c != "item"] if rows else []
    parts.append(html.table(["item", *columns], ([r["item"], *(html.number(r[c]) for c in columns)] for r in ordered),
                            numeric=range(1, len(columns) + 1)))
    return "worst", "Worst items", "".join(parts)


def _mos_cell(entry: dict[str, Any], sign: int = 1) -> list[str]:
    """A statistic's value and interval as table cells, multiplied by ``sign``."""
    value = entry.get("value")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ["—", f"undefined: {entry['undefined']}" if entry.get("undefined") else "—"]
    low, high = sorted(sign * (math.nan if v is None else v) for v in entry.get("ci95") or [None, None])
    return [html.number(sign * value), html.interval([low, high])]


def _mos_rows(entries: dict[str, Any], first: list[str]) -> list[list[str]]:
    """Table rows ``first + [n, SROCC, CI, KROCC, CI, PLCC, CI, RMSE, CI]`` per metric entry."""
    rows = []
    for metric, entry in entries.items():
        sign = entry.get("direction", 1)
        cells = [*first, metric, str(entry.get("n"))]
        for name in ("srocc", "krocc", "plcc", "rmse"):
            cells += _mos_cell(entry[name], sign if name in ("srocc", "krocc") else 1)
        rows.append(cells)
    return rows


def _mos_section(metrics: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[str, str, str]:
    from visionbench.report.mos_plots import metric_vs_scores

    section = metrics["mos"]
    scale = str(section.get("scale", "mos")).upper()
    headers = ["metric", "n", "SROCC", "95% CI", "KROCC", "95% CI", "PLCC", "95% CI", "RMSE", "95% CI"]
    numeric = range(1, len(headers))
    parts = [html.note(f"{section.get('num_scored')} scored pair(s) of {section.get('scores_file')} "
                       f"({scale}: {'higher' if section.get('higher_score_is_better', True) else 'lower'} is better). "
                       "SROCC and KROCC are multiplied by −1 for metrics whose lower values mean better quality (and "
                       "for DMOS), as papers print |SROCC|: a negative value means the metric ranks the images the "
                       "wrong way round. PLCC and RMSE compare the scores with the metric mapped by the fitted curve "
                       "(VQEG 5-parameter logistic; 4-parameter or linear when it fails). 95% intervals over "
                       f"{section.get('resamples')} bootstrap resamples of the images, the mapping held fixed.")]
    if any(isinstance(r.get("score"), float) and math.isfinite(r["score"]) for r in rows):
        parts.append(html.image(metric_vs_scores(rows, section), f"metrics against {scale} with the fitted curves"))
    parts.append(html.table(headers, _mos_rows(section["metrics"], []), numeric=numeric))
    fits = [[metric, entry["fit"]["kind"], ", ".join(f"{k} = {v:.6g}" for k, v in entry["fit"]["params"].items()),
             "; ".join(entry["fit"]["notes"]) or "—"] for metric, entry in section["metrics"].items() if entry.get("fit")]
    if fits:
        parts.append(html.table(["metric", "fit", "parameters (metric units)", "earlier fits not used"], fits))
    if section.get("per_type"):
        parts.append(html.note("Per distortion type, each with the mapping fitted on all images."))
        type_rows = [row for kind, entries in section["per_type"].items() for row in _mos_rows(entries, [kind])]
        parts.append(html.table(["type", *headers], type_rows, numeric=range(2, len(headers) + 1)))
    return "mos", f"Agreement with human scores ({scale})", "".join(parts)


def _unpaired_section(metrics: dict[str, Any]) -> tuple[str, str, str] | str:
    unpaired = metrics.get("unpaired") or {}
    left, right = unpaired.get("reference_only", []), unpaired.get("distorted_only", [])
    if not left and not right:
        return "Unpaired files: none (every file has its counterpart)."
    rows = [[name, "reference only"] for name in left] + [[name, "distorted only"] for name in right]
    return "unpaired", "Unpaired files", html.table(["file", "found in"], rows)


def render_quality_report(run_dir: Path) -> str:
    """The HTML text of a quality run's report."""
    from visionbench.quality.report_files import read_examples

    metrics = read_metrics(run_dir)
    if metrics is None or metrics.get("task") != "quality":
        raise ValueError(f"{run_dir} is not a quality run directory (no metrics.json with task 'quality').")
    config = read_config(run_dir) or {}
    settings = metrics.get("settings", {})
    names = list(settings.get("metrics") or [k for k in html.scalar_metrics(metrics) if k != "psnr_pooled_mse"])
    rows = _read_items(run_dir)
    first = names[0] if names else "ssim"
    higher = bool(metrics.get(first, {}).get("higher_is_better", True))
    sections, notes = [], []
    for result in (_metrics_section(metrics), *([_mos_section(metrics, rows)] if metrics.get("mos") else []),
                   _per_item_section(rows, names, settings.get("kind", "")),
                   _worst_section(read_examples(run_dir), rows, first, higher), _unpaired_section(metrics),
                   ("config", "Settings", html.config_table(config))):
        (notes.append if isinstance(result, str) else sections.append)(result)
    subtitle = f"{config.get('ref', '?')} vs {config.get('dist', '?')} · {metrics.get('num_samples')} pair(s) · {run_dir}"
    header = (html.warnings(metrics.get("warnings")) + html.cards(metrics, [n for n in names if n in metrics][:4])
              + html.skipped(notes))
    return html.page(f"Quality report: {run_dir.name}", subtitle, header, sections)


def build_quality_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` for a quality run (atomically); returns its path."""
    run_dir = Path(run_dir)
    return html.write_page(run_dir / REPORT, render_quality_report(run_dir))
