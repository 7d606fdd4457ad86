"""Benchmark: ``visionbench train --task detect|segment --data shapes`` end to end, as a user runs it.

Targets (issues 4 and 6), on 2 CPU cores: detection test AP50 >= 0.90 and segmentation test mIoU
>= 0.85, each within 10 minutes of wall clock for the whole command (data generation, training,
validation every epoch, test evaluation with bootstrap intervals, predictions and report).
Prints the wall time, the headline test metric and whether the target is met.

Run: ``.venv/bin/python benchmarks/train_tasks.py [detect] [segment]`` (default: both).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"detect": ("AP50", 0.90), "segment": ("mIoU", 0.85)}
BUDGET_S = 600.0


def run(task: str, out: Path) -> tuple[float, dict]:
    """Wall seconds of the whole command, and its ``metrics.json``."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "visionbench", "train", "--task", task, "--data", "shapes", "--out", str(out),
               "--quiet", "--device", "cpu"]
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    return seconds, json.loads((out / "metrics.json").read_text())


def main() -> None:
    tasks = sys.argv[1:] or list(TARGETS)
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        for task in tasks:
            seconds, metrics = run(task, Path(folder) / task)
            name, target = TARGETS[task]
            value, (low, high) = metrics[name]["value"], metrics[name]["ci95"]
            met = value >= target and seconds <= BUDGET_S
            failed |= not met
            print(f"{task:<8} test {name} {value:.4f} [{low:.4f}, {high:.4f}] in {seconds:.0f} s wall "
                  f"(target {name} >= {target} in <= {BUDGET_S:.0f} s: {'met' if met else 'NOT MET'})", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
