"""Helpers for engine tests that run ``python -m visionbench`` in subprocesses and compare the
checkpoints of an interrupted and an uninterrupted run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from visionbench.engine import rundir


def start_visionbench(*args: str) -> subprocess.Popen:
    """``python -m visionbench ARGS`` in the background, on one thread (the same count in every run)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "visionbench", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    """Wait for ``process``; assert it succeeded; return its stdout and stderr."""
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    return out + err


def assert_same_checkpoints(reference: Path, interrupted: Path) -> None:
    """The last and best weights of two runs are bitwise equal, tensor by tensor."""
    for name in (rundir.LAST_WEIGHTS, rundir.BEST_WEIGHTS):
        expected, actual = load_file(str(reference / name)), load_file(str(interrupted / name))
        assert expected.keys() == actual.keys()
        for key in expected:
            assert torch.equal(expected[key], actual[key]), f"{name}:{key} differs after resume"
