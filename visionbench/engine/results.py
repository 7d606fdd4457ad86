"""A run's test results on disk and on the console: ``metrics.json``, the task's outputs, the
report page, and the short metrics table printed after a run.

Below the training loop and the task modules: each task's ``evaluate_and_write`` ends in
:func:`finish_test`, and ``visionbench evaluate`` prints :func:`format_metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from visionbench.engine import rundir
from visionbench.engine.distributed import barrier, broadcast_object
from visionbench.engine.runtime import Runtime

# The metrics printed after a run, per task, in this order; a report without a task of these
# prints every metric that has an interval.
HEADLINES: dict[str, tuple[str, ...]] = {
    "classify": ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro"),
    "detect": ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"),
    "classify_multilabel": ("mAP", "f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "hamming_loss"),
    "segment": ("mIoU", "fwIoU", "pixel_accuracy", "mean_class_accuracy", "dice_mean", "mIoU_per_image"),
}


def finish_test(report: dict[str, Any] | None, write_outputs: Callable[[Path], None] | None, run_dir: Path,
                runtime: Runtime, log: rundir.RunLog) -> dict[str, Any]:
    """Rank 0 writes ``metrics.json``, the task's outputs (``write_outputs(run_dir)``) and the
    report; every rank returns rank 0's metrics (the others may pass ``None``: the report is
    computed once, on rank 0)."""
    if report is not None and log.warnings:  # what the run warned about (e.g. too few steps per epoch) stays with its results
        report["warnings"] = [*report.get("warnings", []), *log.warnings]
    if runtime.dist.is_main:
        assert report is not None and write_outputs is not None, "rank 0 computes the report"
        write_outputs(run_dir)
        rundir.write_metrics(run_dir, report)
        log.file(format_metrics(report))
        write_report(run_dir, log)
    barrier(runtime.dist)
    return broadcast_object(report, runtime.dist)


def write_report(run_dir: Path, log: rundir.RunLog) -> None:
    """Build ``report.html``; a failure here is logged, never allowed to lose the run's results."""
    from visionbench.report import build_run_report

    try:
        build_run_report(run_dir)
    except Exception as error:  # noqa: BLE001 - the metrics are already written; say why the page is missing
        log(f"report.html could not be built: {error}")


def format_metrics(report: dict[str, Any]) -> str:
    """The test metrics as a short human table."""
    lines = [f"{report.get('split', 'test')} metrics ({report['num_samples']} samples, 95% bootstrap intervals):"]
    headline = HEADLINES.get("classify_multilabel" if report.get("multilabel") else report.get("task", "classify"))
    names = headline or [k for k, v in report.items() if isinstance(v, dict) and "value" in v and "ci95" in v]
    for name in names:
        if name not in report:
            continue
        entry = report[name]
        if entry.get("value") is None or entry["value"] != entry["value"]:  # NaN: say why, not "nan [nan, nan]"
            reason = entry.get("undefined")
            lines.append(f"  {name:<18} undefined" + (f": {reason}" if reason else ""))
            continue
        low, high = entry["ci95"] if entry.get("ci95") else (float("nan"), float("nan"))
        lines.append(f"  {name:<18} {entry['value']:.4f}  [{low:.4f}, {high:.4f}]")
    return "\n".join(lines)


__all__ = ["HEADLINES", "finish_test", "format_metrics", "write_report"]
