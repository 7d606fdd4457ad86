"""DDP on CPU: torchrun with 2 gloo processes trains, and its test metrics equal a
single-process evaluation of the same weights (each test sample counted once)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from visionbench.engine import rundir


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_two_processes_matches_single_process_evaluation(tmp_path: Path) -> None:
    trained, evaluated = tmp_path / "ddp", tmp_path / "single"
    result = _run(
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "visionbench", "train", "--data", "digits", "--model", "cnn-small", "--epochs", "2",
        "--out", str(trained), "--json", "--device", "cpu",
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)  # rank 0 alone prints, and only the JSON
    assert printed == json.loads((trained / rundir.METRICS).read_text())
    assert len(rundir.read_history(trained)) == 2  # rank 0 alone writes

    result = _run(sys.executable, "-m", "visionbench", "evaluate", str(trained), "--out", str(evaluated),
                  "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    single = json.loads(result.stdout)
    assert printed["num_samples"] == single["num_samples"] == 359
    assert printed["confusion_matrix"] == single["confusion_matrix"]
    for name in ("accuracy", "f1_macro", "precision_macro", "recall_macro"):
        assert printed[name]["value"] == single[name]["value"]

    def rows(run: Path) -> list[list[str]]:
        with open(run / rundir.PREDICTIONS) as handle:
            return list(csv.reader(handle))

    ddp_rows, single_rows = rows(trained), rows(evaluated)
    assert [r[0] for r in ddp_rows] == [r[0] for r in single_rows]  # same ids, same order, no duplicates
    assert len({r[0] for r in ddp_rows[1:]}) == 359
    assert [r[1:3] for r in ddp_rows] == [r[1:3] for r in single_rows]
