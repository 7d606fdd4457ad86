"""The HTML reports: one self-contained page per run, and one per comparison.

Reports read only run-directory files (``config.yaml``, ``history.jsonl``, ``metrics.json``,
``predictions.csv``, ``examples.npz``), never the model or the data, so they can be rebuilt for any
run, old or new. Plots are PNGs drawn with matplotlib's Agg canvas (no ``pyplot``, no global state)
and inlined, so the page needs no other file and no network.

The two builders are imported lazily, so that ``visionbench.report.plots`` alone does not pull in
torch (which the run-directory helpers need).

Example:
    >>> from visionbench.report import build_run_report
    >>> build_run_report("runs/digits-mlp-001")  # doctest: +SKIP
    PosixPath('runs/digits-mlp-001/report.html')
"""

from __future__ import annotations

from typing import Any

_BUILDERS = {"build_run_report": "run_report", "build_compare_report": "compare_report",
             "build_quality_report": "quality_report"}


def __getattr__(name: str) -> Any:
    if name in _BUILDERS:
        import importlib

        return getattr(importlib.import_module(f"visionbench.report.{_BUILDERS[name]}"), name)
    raise AttributeError(f"module 'visionbench.report' has no attribute {name!r}")


__all__ = ["build_compare_report", "build_quality_report", "build_run_report"]
