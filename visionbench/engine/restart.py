"""The same ``visionbench train … --out X`` run again continues the unfinished run in ``X``.

``torchrun --max-restarts N`` restarts its workers with the very same arguments, and a failed
run is retried with the same command: so a command whose ``--out`` already holds a run with a
checkpoint continues it, exactly as ``--resume X`` would, when the configuration asked for is
the one the run was started with. When it is not, the command is refused with the options that
differ, since continuing would silently train something else than what was asked.

The comparison leaves out what does not change the result (``threads``, ``download_weights``)
and a batch size left to its default (the run's ``config.yaml`` holds the size then chosen).
Only rank 0 reads the run directory (:func:`visionbench.engine.distributed.main_then_broadcast`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from visionbench import config as cfg
from visionbench.engine import rundir

# Options that do not change what is trained or measured: a restart may differ in them.
RUNTIME_ONLY = ("threads", "download_weights")


def config_differences(saved: Any, requested: Any) -> list[tuple[str, Any, Any]]:
    """``(option, saved value, requested value)`` for each option of ``requested`` that differs
    from the run's ``saved`` configuration (a different task is one difference: ``task``)."""
    if type(saved) is not type(requested):
        return [("task", saved.task, requested.task)]
    saved_values, requested_values = dataclasses.asdict(saved), dataclasses.asdict(requested)
    out = []
    for name, value in requested_values.items():
        if name in RUNTIME_ONLY or (name == "batch_size" and value is None):
            continue
        if saved_values.get(name) != value:
            out.append((name, saved_values.get(name), value))
    return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def continue_or_refuse(path: Path, requested: Any) -> Any:
    """The saved configuration of the run in ``path`` when ``requested`` is the same, to continue it.

    Raises:
        ValueError: the configurations differ; the message lists each option with both values and
            says how to continue the run as it was, or to start another.
    """
    saved = cfg.resolve(path / rundir.CONFIG)
    differences = config_differences(saved, requested)
    if not differences:
        return saved
    lines = "\n".join(f"  {_flag(name)}: the run has {old!r}, this command gives {new!r}"
                      for name, old, new in differences)
    raise ValueError(
        f"{str(path)!r} holds a run started with other options, so this command cannot continue it:\n{lines}\n"
        f"Run the run's own command again (or `visionbench train --resume {path}`, with --epochs N to train longer), "
        "or give another --out for a new run.")


__all__ = ["RUNTIME_ONLY", "config_differences", "continue_or_refuse"]
