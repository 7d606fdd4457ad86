"""``visionbench sweep``: set up the sweep directory, run the trials in K workers, finish, report.

The flow of one command::

    settings  ← the command (fixed options, space, sampler, …), checked against sweep.yaml if any
    workers   ← K processes (1: this one), each opening the study and running trials until
                ``--trials`` are finished (study.StopAtTrials); trials cut short earlier are queued
                again first and resume their run directories (study.recover_dead_trials)
    final     ← best and default configurations evaluated on test once, compared (final.py)
    report    ← sweep.json, trials.csv, report.html (report.py)

Workers split the CPU threads (``--threads`` of each trial = CPUs // K) or take one GPU each
(worker i uses ``cuda:i``). Machines join the same search by running the same command with one
``--storage`` URL (e.g. ``postgresql://…``); each waits for the others' trials before its final step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from visionbench import config as cfg
from visionbench.strict_yaml import read_yaml_file
from visionbench.sweep import study as sweep_study
from visionbench.sweep.settings import (
    DEFAULT_TRIALS,
    PRUNERS,
    SAMPLERS,
    STUDY_NAME,
    SweepSettings,
    check_same_search,
    default_storage,
    direction_of,
    load_settings,
    save_settings,
)
from visionbench.sweep.space import grid_size, parse_space, read_space
from visionbench.sweep.trial import Objective

SPACE_FILE = "space.yaml"  # the space as given, kept in the sweep directory
STORAGE_ENV = "VISIONBENCH_SWEEP_STORAGE"  # how a worker process gets the storage URL (never on its command line)
# Options that change what the loss measures: trials ranked on val_loss with them are not comparable.
LOSS_CHANGING = frozenset({"loss", "label_smoothing", "class_weights"})
WORKER_LOGS = "workers"
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` returns: the sweep directory and its ``sweep.json`` content."""

    sweep_dir: Path
    summary: dict[str, Any]


def default_sweep_dir(space_file: str | Path) -> Path:
    """``runs/sweep-<space file stem>``: the same command always names the same directory, so
    running it again continues the search."""
    return Path("runs") / f"sweep-{Path(space_file).stem}"


def make_settings(space_file: str | Path, sweep_dir: Path, *, config_file: str | Path | None, overrides: dict[str, Any],
                  trials: int | None, sampler: str, pruner: str, workers: int, storage: str | None,
                  study: str) -> tuple[SweepSettings, dict[str, Any]]:
    """The settings of this command and the parsed space; every error names the option or key."""
    if sampler not in SAMPLERS:
        raise ValueError(f"--sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}.")
    if pruner not in PRUNERS:
        raise ValueError(f"--pruner must be one of {', '.join(PRUNERS)}; got {pruner!r}.")
    if trials is not None and trials < 1:
        raise ValueError(f"--trials must be at least 1; got {trials}.")
    base = cfg.resolve(config_file, overrides)
    fixed = {**(cfg.load_yaml(config_file) if config_file else {}), **overrides}
    fixed.pop("task", None)
    space = read_space(space_file, base.task, base=base)
    both = sorted(set(space) & set(fixed))
    if both:
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in both)} must be either fixed on the command "
                         f"line (or in --config) or searched in {str(space_file)!r}, not both. Remove one.")
    if sampler == "grid":
        size = grid_size(space, source=str(space_file))
        trials = size if trials is None else min(trials, size)
    raw = read_yaml_file(Path(space_file), "the space file")  # already checked by read_space
    settings = SweepSettings(
        task=base.task, fixed=fixed, space=raw, trials=trials or DEFAULT_TRIALS, sampler=sampler, pruner=pruner,
        seed=base.seed, storage=redact(storage) if storage else "", study=study, monitor=base.monitor,
        direction=direction_of(base.monitor), workers=workers)
    if base.monitor == "val_loss" and set(space) & LOSS_CHANGING:
        changing = ", ".join(sorted(set(space) & LOSS_CHANGING))
        raise ValueError(f"--monitor val_loss must not rank trials whose loss itself differs; the space searches "
                         f"{changing}. Use --monitor val_accuracy (or val_mIoU), or fix {changing}.")
    return settings, space


def redact(url: str) -> str:
    """A storage URL without its password (``postgresql://user:***@host/db``): what files record."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def storage_url(sweep_dir: Path, storage: str | None) -> str:
    """The storage to open: ``--storage`` as given, else SQLite in the sweep directory (found from
    the directory each time, so a moved sweep directory still continues)."""
    return storage or default_storage(sweep_dir)


def prepare_sweep_dir(sweep_dir: Path, settings: SweepSettings, space_file: str | Path) -> SweepSettings:
    """Create ``sweep_dir`` with ``sweep.yaml`` and ``space.yaml``, or check that it holds this search;
    returns the settings to run (the saved ones with this command's ``trials`` and ``workers``)."""
    saved = load_settings(sweep_dir)
    if saved is not None:
        check_same_search(saved, settings, sweep_dir)
        settings = dataclasses.replace(saved, trials=settings.trials, workers=settings.workers)
    elif sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise ValueError(f"--out {str(sweep_dir)!r} must be a new or empty directory for a new sweep; it holds other "
                         "files and no sweep.yaml. Give another --out.")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if saved is None:
        (sweep_dir / SPACE_FILE).write_text(Path(space_file).read_text(encoding="utf-8"), encoding="utf-8")
    save_settings(settings, sweep_dir)
    return settings


def worker_devices(device: str, workers: int | None) -> tuple[int, list[str]]:
    """``(K, device of each worker)``: one worker per visible GPU on CUDA (unless ``workers`` says),
    else ``workers`` (default 1) on the CPU."""
    import torch

    on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if on_cuda and device in ("auto", "cuda"):
        gpus = torch.cuda.device_count()
        count = workers or gpus
        return count, [f"cuda:{i % gpus}" for i in range(count)]
    count = workers or 1
    return count, [device] * count


def threads_per_worker(workers: int) -> int | None:
    """Torch threads of each of ``workers`` trials running at once: ``None`` (the trial's own
    ``--threads auto``) for one worker or when ``OMP_NUM_THREADS`` is set (it then applies to each
    trial), else this process's cores split evenly, at least 1 (K jobs each on all cores would
    oversubscribe them, which made epochs many times slower: ``benchmarks/RESULTS.md``, threads)."""
    if workers == 1 or os.environ.get("OMP_NUM_THREADS"):
        return None
    from visionbench.engine.threads import cpu_cores

    return max(1, cpu_cores() // workers)


def _settings_and_space(sweep_dir: Path) -> tuple[SweepSettings, dict[str, Any]]:
    """The saved settings of ``sweep_dir`` and its space, checked against the fixed options."""
    settings = load_settings(sweep_dir)
    if settings is None:
        raise ValueError(f"{str(sweep_dir)!r} must be a sweep directory (with sweep.yaml); it has none. Start the "
                         "sweep with `visionbench sweep --space SPACE.yaml --out DIR`.")
    space = parse_space(settings.space, settings.task, source=str(sweep_dir / SPACE_FILE), base=settings.base_config())
    return settings, space


def run_worker(sweep_dir: Path, *, storage: str, max_trials: int | None, worker: int = 0, device: str = "auto",
               loader_workers: int | None = None, threads: int | None = None, progress: bool = False) -> None:
    """Run at most ``max_trials`` trials of the sweep in ``sweep_dir`` in this process, stopping
    earlier once the study has its ``--trials`` (queued resumptions first).

    A trial that raises is recorded as failed with its error (the search goes on); Ctrl-C stops
    the worker (the trial is resumed by the next command).
    """
    settings, space = _settings_and_space(sweep_dir)
    study, _ = sweep_study.open_study(settings, space, storage_url=storage, worker=worker)
    objective = Objective(settings, space, sweep_dir, device=device, loader_workers=loader_workers, threads=threads)
    callbacks: list[Any] = [sweep_study.StopAtTrials(settings.trials)]
    bar = None
    if progress:
        bar = tqdm(total=settings.trials, initial=min(sweep_study.finished_count(study), settings.trials),
                   desc="trials", file=sys.stderr, dynamic_ncols=True)
        callbacks.append(lambda s, t: bar.update(min(sweep_study.finished_count(s), settings.trials) - bar.n))
    try:
        study.optimize(objective, n_trials=max_trials, callbacks=callbacks, catch=(Exception,), gc_after_trial=True)
    finally:
        if bar is not None:
            bar.close()


def run_workers(sweep_dir: Path, devices: list[str], *, storage: str, loader_workers: int | None,
                threads: int | None, quiet: bool) -> None:
    """Recover trials cut short, then run the trials still needed in up to ``len(devices)`` workers:
    in this process for one, else as ``python -m visionbench.sweep.worker`` processes logging to
    ``SWEEP/workers/worker-i.log``, each given its share of the trials (so none starts a trial more
    than ``--trials`` asks for)."""
    settings, space = _settings_and_space(sweep_dir)
    study, _ = sweep_study.open_study(settings, space, storage_url=storage)  # creates it before any worker
    sweep_study.recover_dead_trials(study)
    optuna = sweep_study.optuna_module()
    queued = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    needed = sweep_study.remaining_trials(study, settings.trials) + queued
    count = min(len(devices), needed)
    if count == 0:
        return
    shares = [needed // count + (1 if i < needed % count else 0) for i in range(count)]
    if count == 1:
        run_worker(sweep_dir, storage=storage, max_trials=shares[0], device=devices[0], loader_workers=loader_workers,
                   threads=threads, progress=not quiet)
        return
    logs = sweep_dir / WORKER_LOGS
    logs.mkdir(exist_ok=True)
    environment = {**os.environ, STORAGE_ENV: storage}
    processes = []
    for index in range(count):
        command = [sys.executable, "-m", "visionbench.sweep.worker", str(sweep_dir), "--device", devices[index],
                   "--worker", str(index), "--max-trials", str(shares[index])]
        command += ["--threads", str(threads)] if threads else []
        command += ["--loader-workers", str(loader_workers)] if loader_workers is not None else []
        log = open(logs / f"worker-{index}.log", "a", encoding="utf-8")  # noqa: SIM115 - closed below
        processes.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment), log, index))
    try:
        _watch(study, settings.trials, [p for p, _, _ in processes], quiet)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM to this process alone: the workers stop their trials too
        for process, _, _ in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        raise
    finally:
        for process, log, _ in processes:
            process.wait()
            log.close()
    failed = [f"worker {index} (exit {process.returncode}, see {logs / f'worker-{index}.log'})"
              for process, _, index in processes if process.returncode != 0]
    if failed:
        raise RuntimeError(f"sweep workers failed: {', '.join(failed)}. Fix the cause and run the same command again "
                           "to continue the search.")


def _watch(study: Any, trials: int, processes: list[subprocess.Popen], quiet: bool) -> None:
    """Show the study's finished trials until every worker process has exited."""
    with tqdm(total=trials, desc="trials", file=sys.stderr, dynamic_ncols=True, disable=quiet) as bar:
        while any(p.poll() is None for p in processes):
            bar.update(min(sweep_study.finished_count(study), trials) - bar.n)
            time.sleep(POLL_SECONDS)
        bar.update(min(sweep_study.finished_count(study), trials) - bar.n)


def wait_for_other_machines(sweep_dir: Path, devices: list[str], *, storage: str, loader_workers: int | None,
                            threads: int | None, quiet: bool) -> Any:
    """Wait until no trial of the study is queued or running (other machines' included), running
    what is still needed here; returns the study."""
    optuna = sweep_study.optuna_module()
    settings, space = _settings_and_space(sweep_dir)
    last_count = -1
    while True:
        study, _ = sweep_study.open_study(settings, space, storage_url=storage)
        with sweep_study.quiet_experimental():
            optuna.storages.fail_stale_trials(study)
        count, pending = sweep_study.finished_count(study), sweep_study.pending_count(study)
        waiting = bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
        short = count < settings.trials and not pending and count != last_count  # e.g. a trial cut short here
        if waiting or short:
            last_count = count
            run_workers(sweep_dir, devices, storage=storage, loader_workers=loader_workers, threads=threads,
                        quiet=quiet)
            continue
        if not pending:
            return study
        if not quiet:
            print(f"waiting for {pending} trial(s) running elsewhere…", file=sys.stderr)
        time.sleep(sweep_study.HEARTBEAT_SECONDS)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (torchrun, a job scheduler) stops the sweep as Ctrl-C does: trials resumable."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(number: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(space_file: str | Path, *, config_file: str | Path | None = None, out: str | Path | None = None,
              trials: int | None = None, sampler: str = "tpe", pruner: str = "asha", workers: int | None = None,
              storage: str | None = None, study: str = STUDY_NAME, device: str = "auto",
              loader_workers: int | None = None, quiet: bool = False, **overrides: Any) -> SweepResult:
    """Search ``space_file``'s options over ``trials`` training runs, then test the best once.

    See :mod:`visionbench.sweep` for the whole picture; the Python API is
    :func:`visionbench.run_sweep`.
    """
    from visionbench.sweep.summary import build_summary

    sweep_study.optuna_module()  # a missing extra fails before anything is written
    sweep_dir = Path(out) if out is not None else default_sweep_dir(space_file)
    count, devices = worker_devices(device, workers)
    settings, space = make_settings(space_file, sweep_dir, config_file=config_file, overrides=overrides, trials=trials,
                                    sampler=sampler, pruner=pruner, workers=count, storage=storage, study=study)
    settings = prepare_sweep_dir(sweep_dir, settings, space_file)
    url = storage_url(sweep_dir, storage)
    threads = None if "threads" in settings.fixed else threads_per_worker(count)
    try:
        with _sigterm_as_interrupt():
            run_workers(sweep_dir, devices, storage=url, loader_workers=loader_workers, threads=threads, quiet=quiet)
            finished = wait_for_other_machines(sweep_dir, devices, storage=url, loader_workers=loader_workers,
                                               threads=threads, quiet=quiet)
    except KeyboardInterrupt:
        print(f"\ninterrupted; run the same command again to continue the sweep in {sweep_dir} (a trial cut short "
              "resumes from its last checkpoint)", file=sys.stderr)
        raise
    # The final runs train quietly: the sweep's own lines say what they found.
    summary = build_summary(settings, sweep_dir, finished, space, run={"device": devices[0], "workers": loader_workers,
                                                                        "quiet": True})
    if summary["best"] is None:
        errors = [t.get("error") for t in summary["trials"] if t.get("error")]
        raise ValueError(f"every trial of the sweep in {sweep_dir} failed, so there is no best configuration; the "
                         f"first error: {errors[0] if errors else 'none recorded'}. Fix it and run the same command "
                         "again (trials.csv and report.html list every trial).")
    return SweepResult(sweep_dir=sweep_dir, summary=summary)


__all__ = ["SweepResult", "default_sweep_dir", "make_settings", "prepare_sweep_dir", "run_sweep", "run_worker",
           "run_workers", "threads_per_worker", "worker_devices"]
