"""The ``reduction`` argument every loss function takes, and its check, in one place."""

from __future__ import annotations

from typing import Literal

Reduction = Literal["mean", "sum", "none"]

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str, unit: str) -> None:
    """Refuse a ``reduction`` other than ``"mean"``, ``"sum"`` or ``"none"``.

    Args:
        reduction: the value given.
        unit: what ``"none"`` keeps one loss for (``"sample"``, ``"box"``, ``"pixel"``), for the message.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}. Use 'none' for per-{unit} losses.")
