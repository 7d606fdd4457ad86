"""Ctrl-C and SIGTERM during training: finish the step, write a checkpoint, then stop.

A ``KeyboardInterrupt`` raised in the middle of a step would leave the optimizer half-way, so the
signal only sets a flag (:class:`StopRequest`); the training loop looks at it after every step and,
when set, writes an exact mid-epoch checkpoint and raises :class:`TrainingInterrupted` (a
``KeyboardInterrupt``). ``--resume`` then continues from that step, losing nothing. A second
Ctrl-C stops at once (the previous handler is back). ``torchrun`` stops its workers with SIGTERM,
which is handled the same way.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint (the message says where)."""


class StopRequest:
    """While active (``with StopRequest() as stop:``), SIGINT and SIGTERM set ``stop.signal``
    instead of interrupting; outside the main thread (where handlers cannot be set) it does nothing."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in HANDLED:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.signal is not None:  # asked twice: stop now
            self._restore()
            raise KeyboardInterrupt
        self.signal = number

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._restore()

    @property
    def name(self) -> str:
        """``"SIGINT"`` / ``"SIGTERM"`` of the request (empty when none came)."""
        return signal.Signals(self.signal).name if self.signal is not None else ""


__all__ = ["StopRequest", "TrainingInterrupted"]
