"""The sweep summary: the study's trials as plain data, the final runs, and the files written from it.

:func:`build_summary` turns the finished study into the ``summary`` dict that ``sweep.json`` holds
and :func:`visionbench.sweep.report.write_sweep_outputs` renders (trials, best trial, parameter
importance, the final test comparison). It runs the final step (:mod:`visionbench.sweep.final`)
when at least one trial completed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from visionbench.sweep import study as sweep_study
from visionbench.sweep.final import run_final
from visionbench.sweep.report import write_sweep_outputs
from visionbench.sweep.settings import SweepSettings
from visionbench.sweep.space import trial_values
from visionbench.sweep.trial import read_history, trial_dir


def trial_entry(trial: Any, sweep_dir: Path, monitor: str, space: dict[str, Any]) -> dict[str, Any]:
    """One frozen Optuna trial as the report's trials table has it (its parameters as trained)."""
    number = sweep_study.original_number(trial)
    value = trial.value if trial.state.name == "COMPLETE" else None
    if trial.state.name == "PRUNED" and trial.intermediate_values:  # its last reported value
        value = trial.intermediate_values[max(trial.intermediate_values)]
    intermediate = {str(step): float(v) for step, v in sorted(trial.intermediate_values.items())}
    if not intermediate:  # a resumed trial reports again; an older record keeps the curve
        intermediate = {str(r["epoch"]): float(r[monitor]) for r in read_history(trial_dir(sweep_dir, number))
                        if monitor in r}
    entry = {"number": trial.number, "state": trial.state.name, "params": trial_values(trial.params, space),
             "value": None if value is None or not math.isfinite(value) else float(value),
             "ci95": trial.user_attrs.get("ci95"), "best_epoch": trial.user_attrs.get("best_epoch"),
             "epochs": trial.user_attrs.get("epochs"), "seconds": trial.user_attrs.get("seconds"),
             "run_dir": trial.user_attrs.get("run_dir"), "intermediate": intermediate}
    if sweep_study.RESUMES in trial.user_attrs:
        entry["resumes"] = int(trial.user_attrs[sweep_study.RESUMES])
    if trial.state.name == "FAIL":
        entry["error"] = (str(trial.user_attrs[sweep_study.ERROR]) if sweep_study.ERROR in trial.user_attrs
                          else "cut short (Ctrl-C, SIGTERM or a killed process); resumed by a later trial")
    return entry


def parameter_importance(study: Any, seed: int) -> dict[str, float] | None:
    """Optuna's fANOVA importance of each parameter for the objective (``None`` with fewer than two
    complete trials or when it cannot be computed: every trial equal, one parameter value only)."""
    optuna = sweep_study.optuna_module()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return None
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        return {name: float(v) for name, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()}
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None


def best_trial(study: Any) -> Any | None:
    """The complete trial with the best value (``None`` when no trial completed)."""
    optuna = sweep_study.optuna_module()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return None
    return study.best_trial


def build_summary(settings: SweepSettings, sweep_dir: Path, study: Any, space: dict[str, Any], *,
                  run: dict[str, Any]) -> dict[str, Any]:
    """The sweep's summary (final runs included when a trial completed), written as ``sweep.json``,
    ``trials.csv`` and ``report.html`` in ``sweep_dir``."""
    best = best_trial(study)
    trials = [trial_entry(t, sweep_dir, settings.monitor, space) for t in study.get_trials(deepcopy=False)]
    params = None if best is None else trial_values(best.params, space)
    summary: dict[str, Any] = {
        "task": settings.task, "monitor": settings.monitor, "direction": settings.direction,
        "sampler": settings.sampler, "pruner": settings.pruner, "seed": settings.seed,
        "storage": settings.storage or "sqlite:///study.db (in this folder)", "study": settings.study, "fixed": dict(settings.fixed),
        "space": {name: param.describe() for name, param in space.items()}, "trials": trials,
        "best": None if best is None else {"number": best.number, "params": params, "value": best.value,
                                           "ci95": best.user_attrs.get("ci95"),
                                           "run_dir": best.user_attrs.get("run_dir")},
        "importance": parameter_importance(study, settings.seed),
        "final": None,
    }
    if best is not None:
        summary["final"] = run_final(settings, sweep_dir, best, params, run)
    write_sweep_outputs(sweep_dir, summary)
    return summary


__all__ = ["best_trial", "build_summary", "parameter_importance", "trial_entry"]
