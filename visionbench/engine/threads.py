"""CPU threads of the main process: ``--threads auto|N``, resolved once and applied around a job.

torch's default (one intra-op thread per core, OpenMP threads that spin while they wait) is fast
on an idle machine and very slow on a busy one: each parallel region waits for its slowest
thread, and a thread that has lost its core to another process holds all the others up. The
measurements behind the ``auto`` rule are in ``benchmarks/RESULTS.md`` ("threads"); the script
that takes them is ``benchmarks/threads.py``.

This module imports torch only inside :func:`torch_threads`, so the command line can resolve
threads without paying for torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

AUTO = "auto"


def cpu_cores() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's or ``taskset``'s share),
    else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _env_threads(env: Mapping[str, str]) -> int | None:
    """``OMP_NUM_THREADS`` as a positive count (the first level of a nested ``"4,2"``), else ``None``."""
    text = env.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def auto_threads(cores: int, env: Mapping[str, str], distributed: bool) -> int:
    """The thread count ``--threads auto`` chooses for the main process.

    1. An explicit ``OMP_NUM_THREADS`` wins: the user, or ``torchrun`` (which sets 1 per process
       when it starts several), asked for that.
    2. Otherwise half the process's share of the cores, at least 1 and at most 8.

    Why (``benchmarks/RESULTS.md``, "threads"; ``benchmarks/threads.py``, quiet 2- and 12-CPU
    slices of a 16-core machine, training steps of ``visionbench train`` and ``--task detect``):

    - torch's default (one thread per core) collapses as soon as a second job shares the cores:
      two trainings at once took 4–22× (2 CPUs) and 49–53× (12 CPUs) longer than the best
      setting, because OpenMP threads spin at every barrier and wait for the slowest, and a thread
      whose core another process holds stalls them all. The project's 2-core machine under load
      3–8 showed the same: one detection epoch 178–231 s with 2 threads, 13–16 s with 1.
    - Half the cores was the best or within 7% of it on 12 CPUs, quiet and loaded; 1 thread was
      2.3–3.5× slower there. On 2 CPUs, 1 thread (= half) was the fastest loaded and 12–34% slower
      than 2 threads quiet: a small loss against a large one.
    - ``OMP_WAIT_POLICY=PASSIVE`` rescues the oversubscribed default (22× → 1.5×) but made the
      half-the-cores setting 20–80% slower, so it is left to the user (see the README).

    The cap of 8 is a guess beyond the measured 12 CPUs: small models gain little from more.

    Args:
        cores: the CPUs this process may use (:func:`cpu_cores`).
        env: the environment (``os.environ``).
        distributed: whether this is one of several processes (``WORLD_SIZE`` > 1); they share the
            machine's cores (``LOCAL_WORLD_SIZE`` per machine, as torchrun sets it).

    Example:
        >>> auto_threads(2, {}, False), auto_threads(12, {}, False), auto_threads(16, {"OMP_NUM_THREADS": "3"}, False)
        (1, 6, 3)
    """
    explicit = _env_threads(env)
    if explicit is not None:
        return explicit
    share = cores
    if distributed:
        local = env.get("LOCAL_WORLD_SIZE", "")
        share = cores // int(local) if local.isdigit() and int(local) > 0 else 1
    return max(1, min(8, share // 2))


def parse_threads(value: Any) -> int | str:
    """``"auto"``, or a positive thread count from an int or a string of digits; raises ``ValueError``
    (without naming a source: :mod:`visionbench.config` adds that) for anything else."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"threads must be 'auto' or a positive integer; got {value!r}")


def resolve_threads(setting: int | str, *, cores: int | None = None, env: Mapping[str, str] | None = None) -> int:
    """The thread count of ``setting`` (``"auto"`` or N) on this machine, in this environment."""
    setting = parse_threads(setting)
    if setting != AUTO:
        return int(setting)
    env = os.environ if env is None else env
    distributed = int(env.get("WORLD_SIZE", "1") or "1") > 1
    return auto_threads(cpu_cores() if cores is None else cores, env, distributed)


def describe_threads(setting: int | str, count: int, env: Mapping[str, str] | None = None) -> str:
    """Human words for the log: the count and where it came from, e.g.
    ``"1 thread (--threads auto, 2 CPU cores)"``."""
    env = os.environ if env is None else env
    origin = [f"--threads {setting}"]
    if parse_threads(setting) == AUTO:
        explicit = _env_threads(env)
        origin.append(f"OMP_NUM_THREADS={explicit}" if explicit is not None else f"{cpu_cores()} CPU cores")
    if env.get("OMP_WAIT_POLICY"):
        origin.append(f"OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']}")
    return f"{count} thread{'s' if count != 1 else ''} ({', '.join(origin)})"


def apply_threads(setting: int | str) -> int:
    """Set torch's intra-op threads to ``setting``'s count; returns the count it replaced, for
    :func:`restore_threads`, so a Python caller's own setting survives a ``visionbench.train()`` call.

    Inter-op threads (used by TorchScript forks and a few ops, not by the training loop) are set to
    the same count when torch still allows it: only once per process, before any inter-op work;
    later calls leave them as they are.
    """
    import torch

    count = resolve_threads(setting)
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    if torch.get_num_interop_threads() != count:
        try:
            torch.set_num_interop_threads(count)
        except RuntimeError:  # already set, or inter-op work already ran: too late, and harmless
            pass
    return previous


def restore_threads(previous: int) -> None:
    """Put back the intra-op count :func:`apply_threads` replaced."""
    import torch

    torch.set_num_threads(previous)


@contextmanager
def torch_threads(setting: int | str) -> Iterator[int]:
    """Run the block with torch's threads set to ``setting``'s count (see :func:`apply_threads`);
    yields the count and restores the previous intra-op count on exit."""
    import torch

    previous = apply_threads(setting)
    try:
        yield torch.get_num_threads()
    finally:
        restore_threads(previous)
