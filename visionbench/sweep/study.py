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
import time
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
ERROR = "error"  # user attribute: the trial's own error (a failed trial without it was cut short: resumed)
_WORKER_SEED_STRIDE = 7919  # sampler seeds of workers started together lie this far apart
_CREATE_ATTEMPTS = 5
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


def make_sampler(settings: SweepSettings, space: dict[str, Any], offset: int = 0, worker: int = 0) -> Any:
    """The sampler ``settings`` names, seeded with ``settings.seed + offset`` (``offset``: the trials
    already in the study, so a restarted sweep does not draw its first trials' parameters again) and
    apart for each ``worker`` (workers opening the study together would otherwise draw in lockstep)."""
    optuna = optuna_module()
    seed = settings.seed + offset + _WORKER_SEED_STRIDE * worker
    if settings.sampler == "grid":
        from visionbench.sweep.space import grid_values

        return optuna.samplers.GridSampler(grid_values(space), seed=settings.seed)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: a running trial counts as a poor result, so parallel workers spread out
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(name: str) -> Any:
    """``asha`` (successive halving over epochs), ``median`` (stop below the median of earlier trials
    at the same epoch, after 3 trials and 1 epoch) or ``none``."""
    optuna = optuna_module()
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=_ASHA_REDUCTION)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def open_study(settings: SweepSettings, space: dict[str, Any], *, storage_url: str, worker: int = 0
               ) -> tuple[Any, Any]:
    """``(study, storage)`` of ``settings`` at ``storage_url``: the study created on first use, else
    loaded, its sampler seeded past the trials it already has and apart for ``worker``.

    Two processes creating one study's tables at once can collide (the losing one sees an integrity
    or "already exists" error from the database); the creation is retried, then the study loaded.
    """
    optuna = optuna_module()
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            storage = open_storage(storage_url)
            study = optuna.create_study(storage=storage, study_name=settings.study, direction=settings.direction,
                                        pruner=make_pruner(settings.pruner), load_if_exists=True)
            break
        except Exception as error:  # noqa: BLE001 - SQLAlchemy's errors: retried, then raised as they are
            if attempt == _CREATE_ATTEMPTS - 1 or not type(error).__module__.startswith(("sqlalchemy", "optuna")):
                raise
            time.sleep(0.2 * (attempt + 1))
    study.sampler = make_sampler(settings, space, offset=len(study.get_trials(deepcopy=False)), worker=worker)
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


def latest_attempts(trials: list[Any]) -> dict[int, Any]:
    """For each trial run directory (original number), its latest attempt (the highest trial number)."""
    latest: dict[int, Any] = {}
    for trial in trials:
        number = original_number(trial)
        if number not in latest or trial.number > latest[number].number:
            latest[number] = trial
    return latest


def cut_short(trial: Any) -> bool:
    """Whether a failed trial stopped without an error of its own (Ctrl-C, SIGTERM, its process
    killed, its heartbeat lost): its run directory is to be resumed, not given up."""
    return trial.state.name == "FAIL" and ERROR not in trial.user_attrs


def recover_dead_trials(study: Any) -> list[int]:
    """Fail the running trials whose process on this machine is gone, then queue once more every
    trial of this machine whose latest attempt was cut short; returns the trial numbers queued.

    Called once per command, before its workers start (two workers recovering at once would queue
    one trial twice). Another machine's trials are left to it, or to their heartbeat
    (:data:`GRACE_SECONDS`).
    """
    optuna = optuna_module()
    state = optuna.trial.TrialState
    host = worker_id().rpartition(":")[0]
    for trial in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        if process_is_gone(str(trial.user_attrs.get(WORKER, ""))):
            try:
                study.tell(trial.number, state=state.FAIL)
            except (RuntimeError, ValueError):  # finished meanwhile (its heartbeat, another command)
                pass
    queued = []
    for trial in latest_attempts(study.get_trials(deepcopy=False)).values():
        mine = str(trial.user_attrs.get(WORKER, "")).rpartition(":")[0] == host
        if cut_short(trial) and mine:
            requeue(study, trial)
            queued.append(trial.number)
    return queued


def finished_count(study: Any) -> int:
    """Run directories done with, which count towards ``--trials``: latest attempts that completed,
    were pruned, or failed with an error of their own (a trial cut short is still to be resumed)."""
    return sum(1 for t in latest_attempts(study.get_trials(deepcopy=False)).values()
               if t.state.name in ("COMPLETE", "PRUNED") or (t.state.name == "FAIL" and not cut_short(t)))


def pending_count(study: Any) -> int:
    """Trials queued or running (in any process or machine)."""
    optuna = optuna_module()
    state = optuna.trial.TrialState
    return len(study.get_trials(deepcopy=False, states=(state.WAITING, state.RUNNING)))


def remaining_trials(study: Any, trials: int) -> int:
    """How many more trials to start for ``trials`` to be finished: not counting those running or
    queued (they will finish, and queued ones are started first)."""
    optuna = optuna_module()
    running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
    return max(0, trials - finished_count(study) - running)


class StopAtTrials:
    """An ``optimize`` callback that stops the study once :func:`finished_count` reaches ``trials``
    (Optuna's ``MaxTrialsCallback`` would also count failed trials that are being resumed)."""

    def __init__(self, trials: int) -> None:
        self.trials = trials

    def __call__(self, study: Any, trial: Any) -> None:
        """Stop ``study.optimize`` when no more trials need starting (called after each trial)."""
        if remaining_trials(study, self.trials) == 0 and not _waiting(study):
            study.stop()


def _waiting(study: Any) -> bool:
    """Whether trials are queued (resumptions): they run before the study stops."""
    optuna = optuna_module()
    return bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


__all__ = ["ERROR", "GRACE_SECONDS", "HEARTBEAT_SECONDS", "INTERRUPTED", "RESUMES", "StopAtTrials", "WORKER", "cut_short",
           "finished_count", "latest_attempts", "make_pruner", "make_sampler", "open_storage", "open_study",
           "optuna_module", "original_number", "pending_count", "quiet_experimental", "recover_dead_trials",
           "remaining_trials", "requeue", "worker_id"]
