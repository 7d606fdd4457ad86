"""Shared fixtures for the model tests (classifiers, detectors, segmenters)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    # Big models (ResNet-50, VGG-16) on a shared 2-core machine: one intra-op thread avoids OpenMP
    # spin-waiting against other processes (several times faster under load, about equal when idle).
    # Module scope: each test module sets it on entry and restores the previous count on exit.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
