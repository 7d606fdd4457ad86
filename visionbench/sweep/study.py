"""The Optuna side of a sweep: storage, sampler, pruner, the study, and which trials count.

Everything that scales goes through Optuna's own engines: the study lives in an RDB storage
(SQLite in the sweep directory by default, any SQLAlchemy URL such as ``postgresql://…`` with
``--storage``), so worker processes and machines join one study by opening the same URL. Trials
carry a heartbeat; a trial whose worker died (killed, machine lost) is failed by Optuna once its
heartbeat is stale, or at once when this machine sees that its process is gone, and a new trial
with the same parameters is queued that **resumes** the dead one's run directory (``resumes``).

Optuna is imported inside the functions (the ``visionbench[sweep]`` extra).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from visionbench._extras import import_optional
from visionbench.engine.run_lock import process_id, process_is_gone
from visionbench.sweep.settings import SweepSettings

HEARTBEAT_SECONDS = 10  # a running trial records a heartbeat this often …
GRACE_SECONDS = 60  # … and is failed (then resumed by a new trial) when none came for this long
RESUMES = "resumes"  # user attribute: the trial number whose run directory this trial continues
WORKER = "worker"  # user attribute: "host:pid" of the process running the trial
INTERRUPTED = "interrupted"  # user attribute: the trial stopped on Ctrl-C / SIGTERM (resumed on the next run)
# Extra Optuna startup trials do not pay off for sweeps of a few dozen trials; TPE's default is 10.
_ASHA_REDUCTION = 3


def optuna_module(purpose: str = "visionbench sweep") -> Any:
    """``optuna``, or a :class:`~visionbench._extras.MissingExtraError` naming ``visionbench[sweep]``."""
    optuna = import_optional("optuna", extra="sweep", purpose=purpose)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own log says what happens
    return optuna


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Silence Optuna's ``ExperimentalWarning`` in the block: heartbeats are "experimental" in its
    terms (the interface may change), which a sweep's user cannot act on."""
    optuna = optuna_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
        yield


def open_storage(url: str) -> Any:
    """An Optuna RDB storage at ``url`` with heartbeats, whose stale trials are queued again."""
    optuna = optuna_module()
    # SQLite serialises writers: wait for the lock rather than fail when workers write together.
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    with quiet_experimental():
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS,
                                          grace_period=GRACE_SECONDS, heartbeat_stale_trial_callback=requeue)


def make_sampler(settings: SweepSettings, space: dict[str, Any], offset: int = 0) -> Any:
    """The sampler ``settings`` names, seeded with ``settings.seed + offset`` (``offset``: the trials
    already in the study, so a restarted sweep does not draw its first trials' parameters again)."""
    optuna = optuna_module()
    seed = settings.seed + offset
    if settings.sampler == "grid":
        from visionbench.sweep.space import grid_values

        return optuna.samplers.GridSampler(grid_values(space), seed=settings.seed)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str) -> Any:
    """``asha`` (successive halving over epochs), ``median`` (stop below the median of earlier trials
    at the same epoch, after 3 trials and 1 epoch) or ``none``."""
    optuna = optuna_module()
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=_ASHA_REDUCTION)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def open_study(settings: SweepSettings, space: dict[str, Any]) -> tuple[Any, Any]:
    """``(study, storage)`` of ``settings``: the study created on first use, else loaded, its sampler
    seeded past the trials it already has."""
    optuna = optuna_module()
    storage = open_storage(settings.storage)
    study = optuna.create_study(storage=storage, study_name=settings.study, direction=settings.direction,
                                pruner=make_pruner(settings.pruner), load_if_exists=True)
    study.sampler = make_sampler(settings, space, offset=len(study.get_trials(deepcopy=False)))
    return study, storage


def worker_id() -> str:
    """``host:pid`` of this process, recorded on the trials it runs."""
    return process_id()


def original_number(trial: Any) -> int:
    """The trial number whose run directory ``trial`` uses: its own, or the one it resumes."""
    return int(trial.user_attrs.get(RESUMES, trial.number))


def requeue(study: Any, trial: Any) -> None:
    """Queue a trial with ``trial``'s parameters that resumes its run directory (Optuna calls this
    for a trial whose heartbeat went stale; :func:`recover_dead_trials` for the others)."""
    study.enqueue_trial(trial.params, user_attrs={RESUMES: original_number(trial)})


def recover_dead_trials(study: Any, storage: Any) -> list[int]:
    """Fail the running trials whose process on this machine is gone, and queue every trial that was
    cut short (those, and trials stopped by Ctrl-C) again, once; returns the trial numbers queued.

    A trial of another machine is left to its heartbeat (:data:`GRACE_SECONDS`).
    """
    optuna = optuna_module()
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    resumed = {int(t.user_attrs[RESUMES]) for t in trials if RESUMES in t.user_attrs}
    queued = []
    for trial in trials:
        dead = trial.state == state.RUNNING and process_is_gone(str(trial.user_attrs.get(WORKER, "")))
        if dead:
            storage.set_trial_state_values(trial._trial_id, state=state.FAIL)
        interrupted = trial.state == state.FAIL and trial.user_attrs.get(INTERRUPTED)
        if (dead or interrupted) and original_number(trial) not in resumed:
            requeue(study, trial)
            resumed.add(original_number(trial))
            queued.append(trial.number)
    return queued


def finished_count(study: Any) -> int:
    """Trials that count towards ``--trials``: complete, pruned, and failed ones that no later trial
    resumes (a trial that will be resumed is not finished)."""
    optuna = optuna_module()
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    resumed = {int(t.user_attrs[RESUMES]) for t in trials if RESUMES in t.user_attrs}
    return sum(1 for t in trials if t.state in (state.COMPLETE, state.PRUNED)
               or (t.state == state.FAIL and original_number(t) not in resumed and not t.user_attrs.get(INTERRUPTED)))


def pending_count(study: Any) -> int:
    """Trials queued or running (in any process or machine)."""
    optuna = optuna_module()
    state = optuna.trial.TrialState
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state in (state.WAITING, state.RUNNING))


class StopAtTrials:
    """An ``optimize`` callback that stops the study once :func:`finished_count` reaches ``trials``
    (Optuna's ``MaxTrialsCallback`` would also count failed trials that are being resumed)."""

    def __init__(self, trials: int) -> None:
        self.trials = trials

    def __call__(self, study: Any, trial: Any) -> None:
        if finished_count(study) + _running_others(study) >= self.trials:
            study.stop()


def _running_others(study: Any) -> int:
    """Trials other workers are running now: they will finish, so this worker need not start more."""
    optuna = optuna_module()
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING)


__all__ = ["GRACE_SECONDS", "HEARTBEAT_SECONDS", "INTERRUPTED", "RESUMES", "StopAtTrials", "WORKER", "finished_count",
           "make_pruner", "make_sampler", "open_storage", "open_study", "optuna_module", "original_number",
           "pending_count", "recover_dead_trials", "requeue", "worker_id"]
