"""Iterating a DataLoader so that its worker processes end with the loop (kept free of torchvision,
so the file evaluations that use it stay light)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def loader_batches(loader: Any) -> Iterator[Iterator[Any]]:
    """An iterator over ``loader``'s batches whose worker processes are shut down when the block
    ends, on an error too.

    A loop that stops on an error (a bad image in a worker, a NaN loss) leaves its traceback
    holding the loader's iterator in a reference cycle; the workers would then be shut down only
    when the garbage collector next runs, blocking for seconds at some unrelated later point.
    A loader with persistent workers (``persistent_workers``, the training loader of
    :mod:`visionbench.engine.loaders`) keeps them when the block ends normally.

    Example:
        >>> with loader_batches(loader) as batches:  # doctest: +SKIP
        ...     for batch in batches:
        ...         ...
    """
    iterator = iter(loader)
    try:
        yield iterator
    except BaseException:
        _shut_down(loader, iterator)
        raise
    # A loader with persistent workers keeps them for its next pass (the next epoch); others stop now.
    if not getattr(loader, "persistent_workers", False):
        _shut_down(loader, iterator)


def _shut_down(loader: Any, iterator: Any) -> None:
    """Stop ``iterator``'s worker processes (its own shutdown, what its ``__del__`` calls; absent
    without workers), and make a persistent loader start new ones if it is used again."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    if getattr(loader, "_iterator", None) is iterator:
        loader._iterator = None
