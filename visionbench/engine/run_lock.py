"""One training process per run directory: ``RUN/.lock`` holds ``host:pid`` while a run trains.

A ``--resume`` started while the original still trained ran beside it and duplicated its history
(issue 18). :func:`run_lock` creates the lock file atomically (``O_CREAT | O_EXCL``); a lock whose
process is gone (killed, machine rebooted) is stale and taken over, so a killed run resumes with the
same command. A lock of another machine cannot be checked from here: the message says how to remove it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"


def process_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_is_gone(owner: str) -> bool:
    """Whether ``host:pid`` names a process of this machine that no longer runs (another machine's
    processes cannot be checked: ``False``)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        return False
    return False


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()[:200]
    except FileNotFoundError:
        return ""


@contextmanager
def run_lock(run_dir: Path, *, enabled: bool = True) -> Iterator[None]:
    """Hold ``run_dir/.lock`` for the block (``enabled=False``: other DDP ranks, which rank 0 covers).

    Raises:
        ValueError: another live process holds the lock; the message names it and the lock file.
    """
    if not enabled:
        yield
        return
    path, me = run_dir / LOCK, process_id()
    while True:
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder and not process_is_gone(holder):
                raise ValueError(
                    f"run directory {str(run_dir)!r} must not be trained by two processes at once; process {holder} "
                    f"holds it (lock file {str(path)!r}). Wait for that run to finish or stop it, then run again; "
                    "if no such process runs any more (another machine), delete the lock file.") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(me)
        break
    try:
        yield
    finally:
        if _holder(path) == me:
            path.unlink(missing_ok=True)


__all__ = ["LOCK", "process_id", "process_is_gone", "run_lock"]
