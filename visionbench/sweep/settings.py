"""What a sweep is: its settings, saved as ``sweep.yaml`` in the sweep directory.

A sweep directory holds one search. Its first command writes ``sweep.yaml`` (task, the training
options fixed on the command line, the search space, sampler, pruner, seed, storage, study name,
monitor and direction); every later command on the same directory (a restart after a kill, another
worker, a machine joining through ``--storage``) must ask for the same search, or it is refused with
the options that differ. Only ``--trials`` may grow (to search longer) and ``--workers`` change.

Pure data and YAML; no Optuna, no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionbench import config as cfg
from visionbench.strict_yaml import dump_yaml, read_yaml_file

SETTINGS_FILE = "sweep.yaml"
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("asha", "median", "none")
STUDY_NAME = "visionbench"
DEFAULT_TRIALS = 20  # TPE's first 10 trials are random; 20 leaves 10 guided ones
# Options that may differ between commands on one sweep: how much to search and how many at once.
_MAY_CHANGE = ("trials", "workers")


@dataclass(frozen=True)
class SweepSettings:
    """One search, as ``sweep.yaml`` records it.

    Attributes:
        task: ``classify``, ``detect`` or ``segment``.
        fixed: the training options every trial shares (the command line's and ``--config``'s),
            as ``visionbench train`` keyword arguments.
        space: the search space as written in the space file (``{field: {kind: …}}``).
        trials: how many finished trials (complete, pruned, or failed for good) end the search.
        sampler, pruner: Optuna's ``tpe``/``random``/``grid`` and ``asha``/``median``/``none``.
        seed: the sampler's seed (the trials' training seed is ``fixed``'s, the config's default).
        storage: the Optuna storage URL (default: SQLite in the sweep directory).
        study: the Optuna study name inside the storage.
        monitor: the validation metric trials are selected on (``val_accuracy``, ``val_loss``, …).
        direction: ``maximize``, or ``minimize`` for losses.
        workers: trials run at once by this command (not part of the search's identity).
    """

    task: str
    fixed: dict[str, Any]
    space: dict[str, Any]
    trials: int
    sampler: str = "tpe"
    pruner: str = "asha"
    seed: int = 0
    storage: str = ""
    study: str = STUDY_NAME
    monitor: str = "val_accuracy"
    direction: str = "maximize"
    workers: int = 1

    def trial_overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """The ``visionbench.train`` keyword arguments of a trial with ``params``."""
        return {**self.fixed, "task": self.task, **params}

    def base_config(self) -> cfg.AnyConfig:
        """The default configuration the search is compared with: ``fixed`` alone."""
        return cfg.resolve(overrides={**self.fixed, "task": self.task})


def direction_of(monitor: str) -> str:
    """``minimize`` for loss monitors, else ``maximize``."""
    return "minimize" if monitor.endswith("loss") else "maximize"


def default_storage(sweep_dir: Path) -> str:
    """The SQLite URL of ``sweep_dir/study.db`` (absolute, so workers in other folders find it)."""
    return f"sqlite:///{(sweep_dir / 'study.db').resolve()}"


def save_settings(settings: SweepSettings, sweep_dir: Path) -> None:
    """Write ``sweep.yaml`` atomically."""
    path = sweep_dir / SETTINGS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump_yaml(dataclasses.asdict(settings)), encoding="utf-8")
    tmp.replace(path)


def load_settings(sweep_dir: Path) -> SweepSettings | None:
    """The settings in ``sweep_dir/sweep.yaml``, or ``None`` when the directory holds no sweep yet."""
    path = sweep_dir / SETTINGS_FILE
    if not path.is_file():
        return None
    data = read_yaml_file(path, "the sweep's settings (sweep.yaml)")
    known = {f.name for f in dataclasses.fields(SweepSettings)}
    if not isinstance(data, dict) or not {"task", "fixed", "space", "trials"} <= set(data) or set(data) - known:
        raise ValueError(f"{str(path)!r} must be the sweep.yaml a sweep wrote; it holds something else. Restore it or "
                         "start a new sweep with another --out.")
    return SweepSettings(**data)


def differences(saved: SweepSettings, asked: SweepSettings) -> list[str]:
    """What ``asked`` changes in the search ``saved`` describes (``trials``/``workers`` aside), as
    ``"name: saved → asked"`` lines; empty when the two are the same search."""
    lines = []
    for f in dataclasses.fields(SweepSettings):
        if f.name in _MAY_CHANGE:
            continue
        before, after = getattr(saved, f.name), getattr(asked, f.name)
        if isinstance(before, dict) and isinstance(after, dict):
            for key in sorted(set(before) | set(after), key=str):
                if before.get(key, "(unset)") != after.get(key, "(unset)"):
                    lines.append(f"{f.name}.{key}: {before.get(key, '(unset)')!r} → {after.get(key, '(unset)')!r}")
        elif before != after:
            lines.append(f"{f.name}: {before!r} → {after!r}")
    return lines


def check_same_search(saved: SweepSettings, asked: SweepSettings, sweep_dir: Path) -> None:
    """Refuse a command that asks ``sweep_dir``'s study for another search (its options differ).

    Raises:
        ValueError: naming every option that differs, and the two ways out.
    """
    changed = differences(saved, asked)
    if changed:
        raise ValueError(
            f"sweep directory {str(sweep_dir)!r} holds another search; the options must be those it was started "
            f"with to continue it. Differences (saved → this command): {'; '.join(changed)}. Run the original "
            "command again (only --trials and --workers may change), or give another --out for a new sweep.")


__all__ = ["DEFAULT_TRIALS", "PRUNERS", "SAMPLERS", "SETTINGS_FILE", "STUDY_NAME", "SweepSettings", "check_same_search",
           "default_storage", "differences", "direction_of", "load_settings", "save_settings"]
