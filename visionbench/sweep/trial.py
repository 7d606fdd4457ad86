"""One trial of a sweep: an ordinary training run that never sees the test split.

A trial's parameters come from the sampler (:func:`visionbench.sweep.space.suggest`) and are
merged over the sweep's fixed options; it trains into ``SWEEP/trials/trial-NNNN`` with
``eval_split="val"``: its best checkpoint is chosen on ``--monitor`` and evaluated on the validation
split (``metrics.json`` says ``"split": "val"``, with bootstrap intervals), and the test split is
never read. Each epoch's validation value goes to the pruner; a pruned trial stops after its
epoch's checkpoint. A trial that resumes a dead one (:data:`~visionbench.sweep.study.RESUMES`)
continues that run directory from its last checkpoint, replaying the epochs already done to the
pruner, and ends bitwise equal to an uninterrupted trial (the engine's exact resume).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from visionbench.engine import rundir
from visionbench.sweep import study as sweep_study
from visionbench.sweep.settings import SweepSettings
from visionbench.sweep.space import suggest, trial_values

TRIALS_DIR = "trials"
DUPLICATE_OF = "duplicate_of"  # user attribute: the complete trial of the same configuration whose result it took


def trial_dir(sweep_dir: Path, number: int) -> Path:
    """``SWEEP/trials/trial-NNNN``: the run directory of trial ``number``."""
    return sweep_dir / TRIALS_DIR / f"trial-{number:04d}"


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The epoch records of ``run_dir/history.jsonl`` (empty when it has none yet)."""
    path = run_dir / rundir.HISTORY
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def metric_key(monitor: str) -> str:
    """``val_accuracy`` → ``accuracy``: the ``metrics.json`` entry of a monitor (intervals live there)."""
    return monitor.removeprefix("val_")


class Objective:
    """The function Optuna calls per trial: train, report to the pruner, return the best value."""

    def __init__(self, settings: SweepSettings, space: dict[str, Any], sweep_dir: Path, *, device: str = "auto",
                 loader_workers: int | None = None, threads: int | None = None) -> None:
        self.settings, self.space, self.sweep_dir = settings, space, sweep_dir
        self.device, self.loader_workers, self.threads = device, loader_workers, threads

    def __call__(self, trial: Any) -> float:
        """Train trial ``trial`` (or resume its run directory) and return its best validation value;
        an error of its own is recorded on it (:data:`~visionbench.sweep.study.ERROR`) and raised."""
        try:
            return self._run(trial)
        except KeyboardInterrupt:  # the next run of the same command resumes it (study.recover_dead_trials)
            trial.set_user_attr(sweep_study.INTERRUPTED, True)
            raise
        except Exception as error:
            if not isinstance(error, sweep_study.optuna_module().TrialPruned):
                trial.set_user_attr(sweep_study.ERROR, f"{type(error).__name__}: {error}"[:2000])
            raise

    def _run(self, trial: Any) -> float:
        from visionbench import api

        optuna = sweep_study.optuna_module()
        params = suggest(trial, self.space)
        same = self._same_configuration(trial, params)
        if same is not None:  # a finite space drawn again: the result is known, training again would repeat it
            for key in ("run_dir", "ci95", "best_epoch", "epochs"):
                if key in same.user_attrs:
                    trial.set_user_attr(key, same.user_attrs[key])
            trial.set_user_attr(DUPLICATE_OF, same.number)
            return float(same.value)
        number = sweep_study.original_number(trial)
        run_dir = trial_dir(self.sweep_dir, number)
        trial.set_user_attr(sweep_study.WORKER, sweep_study.worker_id())
        trial.set_user_attr("run_dir", str(run_dir.relative_to(self.sweep_dir)))
        report = _PrunerReport(trial, self.settings.monitor, optuna)
        history = read_history(run_dir)
        for position, record in enumerate(history):  # a resumed trial: the pruner sees the epochs already done,
            report(record, prune=position == len(history) - 1)  # and decides on the last as it would have
        started = time.perf_counter()
        common = {"device": self.device, "workers": self.loader_workers, "quiet": True, "eval_split": "val",
                  "on_epoch": report}
        try:
            if (run_dir / rundir.LAST_STATE).exists() or (run_dir / rundir.CONFIG).exists():
                result = api.train(resume=run_dir, **common)
            else:
                threads = {"threads": self.threads} if self.threads and "threads" not in self.settings.fixed else {}
                result = api.train(out=run_dir, **common, **threads, **self.settings.trial_overrides(params))
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
            trial.set_user_attr("epochs", len(read_history(run_dir)))
        return self._finish(trial, run_dir, result.metrics)

    def _same_configuration(self, trial: Any, params: dict[str, Any]) -> Any | None:
        """A complete trial trained with exactly ``params`` (not for a resumption: it has its run)."""
        if sweep_study.RESUMES in trial.user_attrs:
            return None
        optuna = sweep_study.optuna_module()
        for other in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if other.number != trial.number and trial_values(other.params, self.space) == params:
                return other
        return None

    def _finish(self, trial: Any, run_dir: Path, metrics: dict[str, Any]) -> float:
        """Record the trial's best epoch and interval; its value is the best validation monitor."""
        history = read_history(run_dir)
        validated = [r for r in history if self.settings.monitor in r]
        if not validated:
            raise ValueError(f"trial {trial.number} ({run_dir}) has no validation value of {self.settings.monitor}; "
                             "the run must validate at least once (check --val-every and --epochs).")
        pick = min if self.settings.direction == "minimize" else max
        best = pick(validated, key=lambda r: r[self.settings.monitor])
        entry = metrics.get(metric_key(self.settings.monitor))
        if isinstance(entry, dict) and entry.get("ci95") is not None:
            trial.set_user_attr("ci95", [float(v) for v in entry["ci95"]])
        trial.set_user_attr("best_epoch", int(best["epoch"]))
        return float(best[self.settings.monitor])


class _PrunerReport:
    """``on_epoch`` of a trial's run: report each validated epoch's monitor and stop when pruned."""

    def __init__(self, trial: Any, monitor: str, optuna: Any) -> None:
        self.trial, self.monitor, self.optuna = trial, monitor, optuna

    def __call__(self, record: dict[str, Any], *, prune: bool = True) -> None:
        """Report ``record``'s monitor at its epoch; raise ``TrialPruned`` when the pruner says so."""
        value = record.get(self.monitor)
        if value is None:  # an epoch --val-every skipped
            return
        self.trial.report(float(value), int(record["epoch"]))
        if prune and self.trial.should_prune():
            raise self.optuna.TrialPruned(f"pruned after epoch {record['epoch']}: {self.monitor} {value:.4f}")


__all__ = ["DUPLICATE_OF", "Objective", "TRIALS_DIR", "metric_key", "read_history", "trial_dir"]
