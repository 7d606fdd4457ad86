"""The end of a sweep: the best configuration and the default, each evaluated on test once, compared.

The search selects on validation only; the test split is read here and nowhere else:

* ``SWEEP/final/best``: the best trial's run reused — its directory copied (the trial's own stays
  validation-only) and its best checkpoint evaluated on the test split — or, when the trial ran on
  another machine and its directory is not here, the configuration retrained with the same seed;
* ``SWEEP/final/default``: the fixed options alone (every searched option at its default), trained
  and evaluated on test;
* the two compared with :func:`visionbench.comparison.compare_runs` (McNemar's exact test and the
  paired bootstrap on the same test images), whatever the result.

Running the sweep command again reuses finished final runs (a test evaluation is never repeated)
and resumes interrupted ones; when more trials changed the best trial, the old ``final/best`` is
kept as ``final/best-was-trial-NNNN``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from visionbench.engine import rundir
from visionbench.engine.results import HEADLINES
from visionbench.sweep.settings import SweepSettings
from visionbench.sweep.trial import read_history, trial_dir

FINAL_DIR = "final"
SOURCE_FILE = "sweep_source.json"  # in final/best: which trial it is


def tested_metrics(run_dir: Path) -> dict[str, Any] | None:
    """``run_dir``'s ``metrics.json`` when it holds test-split results, else ``None``."""
    path = run_dir / rundir.METRICS
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text(encoding="utf-8"))
    return metrics if metrics.get("split", "test") == "test" else None


def _train_or_resume(run_dir: Path, overrides: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The test metrics of ``run_dir``: reused when already evaluated, resumed when interrupted,
    else trained from ``overrides``."""
    from visionbench import api

    done = tested_metrics(run_dir)
    if done is not None:
        return done
    if (run_dir / rundir.CONFIG).exists():
        return api.train(resume=run_dir, **run).metrics
    return api.train(out=run_dir, **run, **overrides).metrics


# What a run needs to be resumed (and so evaluated on test); its validation outputs stay behind,
# since they would read as the run's results until the test evaluation replaced them.
_RESUMABLE = (rundir.CONFIG, rundir.HISTORY, rundir.INFERENCE, rundir.LOG, "weights.json")


def _copy_trial(source: Path, target: Path) -> None:
    """Copy the parts of a finished trial's run directory that resume it: checkpoints, config,
    history, inference spec, log and initial-weights record."""
    target.mkdir(parents=True)
    shutil.copytree(source / rundir.CHECKPOINTS, target / rundir.CHECKPOINTS)
    for name in _RESUMABLE:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)


def final_best(settings: SweepSettings, sweep_dir: Path, best: Any, params: dict[str, Any], run: dict[str, Any]
               ) -> tuple[Path, dict[str, Any]]:
    """``final/best`` for trial ``best`` (a frozen Optuna trial, trained with ``params``): its test
    metrics, evaluated once."""
    from visionbench.sweep.study import original_number

    target = sweep_dir / FINAL_DIR / "best"
    number = original_number(best)
    source_file = target / SOURCE_FILE
    if target.exists():
        recorded = json.loads(source_file.read_text(encoding="utf-8")) if source_file.is_file() else {}
        if recorded.get("trial") != number:  # more trials found a better one: keep the old, start anew
            old = sweep_dir / FINAL_DIR / f"best-was-trial-{int(recorded.get('trial', -1)):04d}"
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
    if not target.exists():
        # a trial that took an equal configuration's result names that trial's run directory
        source = sweep_dir / best.user_attrs["run_dir"] if "run_dir" in best.user_attrs else trial_dir(sweep_dir, number)
        if (source / rundir.BEST_WEIGHTS).is_file() and (source / rundir.LAST_STATE).is_file():
            _copy_trial(source, target)
            how = "reused"
        else:  # the trial ran on another machine: the same configuration and seed, trained here
            target.mkdir(parents=True)
            how = "retrained"
        source_file.write_text(json.dumps({"trial": number, "params": params, "how": how}, indent=1) + "\n",
                               encoding="utf-8")
    return target, _train_or_resume(target, settings.trial_overrides(params), run)


def final_default(settings: SweepSettings, sweep_dir: Path, run: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """``final/default``: the fixed options alone, trained and evaluated on test once."""
    target = sweep_dir / FINAL_DIR / "default"
    return target, _train_or_resume(target, {**settings.fixed, "task": settings.task}, run)


def headline_metric(settings: SweepSettings, metrics: dict[str, Any]) -> str:
    """The metric a final comparison leads with: the task's first headline metric."""
    key = "classify_multilabel" if metrics.get("multilabel") else settings.task
    return HEADLINES[key][0]


def run_final(settings: SweepSettings, sweep_dir: Path, best: Any, params: dict[str, Any], run: dict[str, Any]
              ) -> dict[str, Any]:
    """Both final runs and their paired comparison (default = A, best = B), as the sweep summary's
    ``final`` entry."""
    from visionbench.comparison import compare_runs

    best_dir, best_metrics = final_best(settings, sweep_dir, best, params, run)
    default_dir, default_metrics = final_default(settings, sweep_dir, run)
    comparison = compare_runs([default_dir, best_dir], seed=settings.seed)
    source = json.loads((best_dir / SOURCE_FILE).read_text(encoding="utf-8"))
    return {
        "validation": {"best": best_validation(best_dir, settings), "default": best_validation(default_dir, settings)},
        "best": {"run_dir": str(best_dir.relative_to(sweep_dir)), "trial": source["trial"], "how": source["how"],
                 "params": params, "metrics": _intervals(best_metrics)},
        "default": {"run_dir": str(default_dir.relative_to(sweep_dir)), "metrics": _intervals(default_metrics)},
        "headline": headline_metric(settings, best_metrics),
        "comparison": comparison["pairs"][0],
    }


def best_validation(run_dir: Path, settings: SweepSettings) -> float | None:
    """The best validation value of ``settings.monitor`` over ``run_dir``'s epochs (what a trial is
    selected on), or ``None`` when it never validated."""
    values = [r[settings.monitor] for r in read_history(run_dir) if settings.monitor in r]
    if not values:
        return None
    return float(min(values) if settings.direction == "minimize" else max(values))


def _intervals(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics of ``metrics.json`` that carry a value and an interval."""
    return {k: {"value": v["value"], "ci95": v.get("ci95")} for k, v in metrics.items()
            if isinstance(v, dict) and "value" in v}


__all__ = ["FINAL_DIR", "SOURCE_FILE", "final_best", "final_default", "headline_metric", "run_final", "tested_metrics"]
