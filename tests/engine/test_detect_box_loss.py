"""``train --task detect --box-loss NAME``: the flag reaches the model through the config, is saved in
the run's ``config.yaml``, and the run's model is rebuilt with it; bad choices fail before any
run directory is made."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pytest
import yaml

from visionbench.cli import main
from visionbench.config import resolve
from visionbench.engine import rundir
from visionbench.engine.inference_spec import read_inference_spec
from visionbench.engine.run_model import load_run_model

from .task_files import write_coco_shapes


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` → (exit code, stderr); argparse's ``SystemExit`` counts as a return."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, err.getvalue()


@pytest.fixture(scope="module")
def coco_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "coco:" + str(write_coco_shapes(tmp_path_factory.mktemp("coco"), count=24))


def detect_args(coco_spec: str, out: Path, *extra: str) -> list[str]:
    return ["train", "--task", "detect", "--data", coco_spec, "--epochs", "1", "--batch-size", "8",
            "--eval-batch-size", "16", "--out", str(out), "--quiet", "--device", "cpu", *extra]


def test_the_box_loss_flag_trains_is_saved_and_rebuilds(coco_spec: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, err = run_cli(detect_args(coco_spec, run, "--box-loss", "smooth_l1"))
    assert code == 0, err
    assert yaml.safe_load((run / rundir.CONFIG).read_text())["box_loss"] == "smooth_l1"
    assert all(math.isfinite(record["train_loss"]) for record in rundir.read_history(run))
    config = resolve(run / rundir.CONFIG)
    spec = read_inference_spec(run)
    model = load_run_model(run / rundir.BEST_WEIGHTS, config, spec, spec.image_size)
    assert model.box_loss.name == "smooth_l1"


@pytest.mark.parametrize(("extra", "words"), [
    (["--box-loss", "gio"], ["--box-loss: invalid choice: 'gio'", "giou"]),
    (["--model", "fasterrcnn_mobilenet_v3_large_fpn", "--box-loss", "diou"],
     ["box_loss must be auto for model 'fasterrcnn_mobilenet_v3_large_fpn'", "--box-loss applies to tiny_fcos"]),
])
def test_a_bad_box_loss_fails_before_the_run_starts(coco_spec: str, tmp_path: Path, extra: list[str],
                                                    words: list[str]) -> None:
    code, err = run_cli(detect_args(coco_spec, tmp_path / "run", *extra))
    assert code == 2 and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "run" / rundir.CONFIG).exists()
