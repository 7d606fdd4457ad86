"""Settings shared by the whole test suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for the suite's in-process work, unless ``OMP_NUM_THREADS`` says otherwise.

    The tensors here are small: extra OpenMP threads gain little on an idle machine and cost several
    times the run time on a busy one (each parallel region waits for its slowest thread; see
    ``visionbench/engine/threads.py``). One thread also makes every in-process comparison run the same
    kernels whatever the machine's core count. Subprocesses set ``OMP_NUM_THREADS`` themselves.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
