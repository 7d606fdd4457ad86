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

    Example:
        >>> with loader_batches(loader) as batches:  # doctest: +SKIP
        ...     for batch in batches:
        ...         ...
    """
    iterator = iter(loader)
    try:
        yield iterator
    finally:
        # The multiprocessing iterator's own shutdown (what its __del__ calls); absent without workers.
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
