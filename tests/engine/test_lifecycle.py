"""A run's life as a new user meets it: a failed start retried with the same command, a finished
run trained longer with ``--resume RUN --epochs N``, epochs numbered from 1 in every file, and a
small training set that gets a smaller default batch and a warning instead of collapsing silently."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from safetensors import safe_open

import visionbench
from visionbench import cli
from visionbench.config import ClassifyConfig, DetectConfig, SegmentConfig, settle_batch_size
from visionbench.engine import checkpoint as ckpt
from visionbench.engine import rundir
from visionbench.engine.optim import lr_factor_fn

DIGITS = {"model": "mlp", "quiet": True, "device": "cpu"}


def write_folder(root: Path, per_class: int = 40, size: int = 8) -> Path:
    """Three classes of ``per_class`` random PNGs: 120 images, 84 of them for training (70%)."""
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("data") / "pets")


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return visionbench.train(data="digits", epochs=2, out=tmp_path_factory.mktemp("runs") / "two", **DIGITS).run_dir


# ------------------------------------------------------------------------------ a failed start


def test_a_run_that_failed_before_its_first_checkpoint_restarts_with_the_same_command(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "pets", per_class=10)
    bad = data / "a" / "03.png"
    good = bad.read_bytes()
    for path in data.rglob("*.png"):  # every image unreadable: the first batch fails, whatever the split
        path.write_bytes(b"not an image")
    options = {"data": f"folder:{data}", "epochs": 1, "batch_size": 4, "out": tmp_path / "run", **DIGITS}
    with pytest.raises(ValueError, match="readable image"):
        visionbench.train(**options)
    assert rundir.never_checkpointed(tmp_path / "run")
    for path in data.rglob("*.png"):
        path.write_bytes(good)

    result = visionbench.train(**options)  # the same command: refused before ("Use --resume")

    log = (result.run_dir / rundir.LOG).read_text()
    assert "stopped: image must be a readable image" in log and "starting it over" in log
    assert [r["epoch"] for r in rundir.read_history(result.run_dir)] == [1]
    # Issue 16: the same command again continues the run (as --resume would: torchrun --max-restarts
    # restarts with the same arguments); this one is finished, so its best checkpoint is evaluated again.
    again = visionbench.train(**options)
    assert json.dumps(again.metrics) == json.dumps(result.metrics)  # NaN-safe: the same numbers again
    assert [r["epoch"] for r in rundir.read_history(result.run_dir)] == [1]
    log = (result.run_dir / rundir.LOG).read_text()
    assert "holds this command's run: continuing it" in log and "the run is finished (1 epochs" in log
    # Other options are refused, naming each difference; nothing of the run changes.
    before = {p: p.read_bytes() for p in result.run_dir.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="started with other options") as refused:
        visionbench.train(**{**options, "epochs": 3, "lr": 0.01})
    assert "--epochs: the run has 1, this command gives 3" in str(refused.value)
    assert "--lr: the run has 0.003, this command gives 0.01" in str(refused.value)
    assert {p: p.read_bytes() for p in result.run_dir.rglob("*") if p.is_file()} == before


# ------------------------------------------------------------------------------ train longer


def test_resume_with_epochs_trains_a_finished_run_longer_on_the_longer_schedule(
    two_epochs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(two_epochs, run)
    assert cli.main(["train", "--resume", str(run), "--epochs", "4"]) == 0
    err = capsys.readouterr().err
    assert "training to 4 epochs (2 done)" in err and "epoch 3/4" in err and "epoch 4/4" in err
    history = rundir.read_history(run)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert history[:2] == rundir.read_history(two_epochs)
    assert yaml.safe_load((run / rundir.CONFIG).read_text())["epochs"] == 4
    # The LR after epoch 3 is the one a 4-epoch cosine run has at that step (README: `--resume RUN_DIR --epochs N`).
    config = ClassifyConfig(epochs=4)
    steps = history[0]["step"]
    factor = lr_factor_fn("cosine", total_steps=4 * steps, warmup_steps=round(config.warmup_epochs * steps))
    assert history[2]["lr"] == pytest.approx(config.lr * factor(3 * steps), rel=1e-6)
    assert history[2]["lr"] > history[1]["lr"] == 0.0  # the finished 2-epoch schedule had reached 0

    assert cli.main(["train", "--resume", str(run), "--epochs", "4"]) == 2
    assert "--epochs must be more than the 4 epochs" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(run), "--epochs", "6", "--lr", "0.1"]) == 2
    assert "only --epochs N may be given" in capsys.readouterr().err


def test_resuming_a_finished_run_says_so_and_how_to_extend_it(two_epochs: Path, tmp_path: Path) -> None:
    run = shutil.copytree(two_epochs, tmp_path / "run")
    visionbench.train(resume=run, quiet=True)
    log = (run / rundir.LOG).read_text()
    assert "the run is finished (2 epochs, best epoch" in log and f"--resume {run} --epochs N (N > 2)" in log
    assert "epoch 3" not in log  # not "resumed at epoch 3" of a 2-epoch run
    assert rundir.read_history(run) == rundir.read_history(two_epochs)


# ------------------------------------------------------------------------------ one numbering


def test_epochs_are_numbered_from_1_in_history_log_checkpoint_and_report(two_epochs: Path) -> None:
    history = rundir.read_history(two_epochs)
    raw = [json.loads(line)["epoch"] for line in (two_epochs / rundir.HISTORY).read_text().splitlines()]
    assert raw == [1, 2]
    log = (two_epochs / rundir.LOG).read_text()
    assert "epoch 1/2" in log and "epoch 2/2" in log and "epoch 0" not in log
    state = ckpt.load_state(two_epochs / rundir.LAST_STATE)["progress"]
    with safe_open(str(two_epochs / rundir.BEST_WEIGHTS), "pt") as best:
        best_epoch = int(best.metadata()["epoch"])
    accuracies = [r["val_accuracy"] for r in history]
    assert best_epoch == state["best_epoch"] == history[accuracies.index(max(accuracies))]["epoch"]
    page = (two_epochs / rundir.REPORT).read_text()
    assert f"at epoch {best_epoch}." in page


def test_old_runs_numbered_from_0_read_and_resume_as_numbered_from_1(two_epochs: Path, tmp_path: Path) -> None:
    run = shutil.copytree(two_epochs, tmp_path / "old")
    # What an older visionbench wrote: history from epoch 0, state format 1 with best_epoch from 0.
    records = [json.loads(line) for line in (run / rundir.HISTORY).read_text().splitlines()]
    (run / rundir.HISTORY).write_text("".join(json.dumps({**r, "epoch": r["epoch"] - 1}) + "\n" for r in records))
    state = ckpt.load_state(run / rundir.LAST_STATE)
    best = state["progress"]["best_epoch"]
    state["format"], state["progress"]["best_epoch"] = 1, best - 1
    ckpt.save_state(state, run / rundir.LAST_STATE)
    assert rundir.read_history(run) == rundir.read_history(two_epochs)
    from visionbench.report import build_run_report

    build_run_report(run)
    assert f"at epoch {best}." in (run / rundir.REPORT).read_text()

    visionbench.train(resume=run, quiet=True)  # a finished run: says so, with its best epoch
    assert f"the run is finished (2 epochs, best epoch {best})" in (run / rundir.LOG).read_text()
    assert [json.loads(line)["epoch"] for line in (run / rundir.HISTORY).read_text().splitlines()] == [1, 2]


# ------------------------------------------------------------------------------ small training sets


@pytest.mark.parametrize(("config", "samples", "world", "expected"), [
    (ClassifyConfig(), 1258, 1, 64),  # digits: 20 steps at the default
    (ClassifyConfig(), 84, 1, 8),  # 4 would give 21 steps, but not below 8
    (ClassifyConfig(), 500, 1, 25),  # the largest batch with 20 steps
    (ClassifyConfig(), 1000, 2, 25),  # per process: 2 x 25 samples a step
    (ClassifyConfig(batch_size=64), 84, 1, 64),  # given: used as given
    (DetectConfig(), 2000, 1, 32),
    (SegmentConfig(), 200, 1, 10),
])
def test_settle_batch_size(config, samples: int, world: int, expected: int) -> None:
    assert settle_batch_size(config, samples, world) == expected


def test_small_training_set_gets_a_smaller_default_batch_and_a_recorded_warning(folder: Path, tmp_path: Path) -> None:
    result = visionbench.train(data=f"folder:{folder}", epochs=1, out=tmp_path / "auto", **DIGITS)
    assert result.config.batch_size == 8
    assert yaml.safe_load((result.run_dir / rundir.CONFIG).read_text())["batch_size"] == 8
    assert rundir.read_history(result.run_dir)[0]["step"] == math.ceil(84 / 8)
    log = (result.run_dir / rundir.LOG).read_text()
    assert "batch size 8, lowered from the default 64 so that 84 training samples make 11 steps" in log
    warnings = json.loads((result.run_dir / rundir.METRICS).read_text())["warnings"]
    assert len(warnings) == 1 and "only 11 optimizer steps per epoch" in warnings[0] and "--batch-size 4" in warnings[0]
    assert "warning: only 11 optimizer steps" in log

    given = visionbench.train(data=f"folder:{folder}", epochs=1, batch_size=64, out=tmp_path / "given", **DIGITS)
    assert given.config.batch_size == 64 and "lowered" not in (given.run_dir / rundir.LOG).read_text()
    assert "only 2 optimizer steps per epoch" in given.metrics["warnings"][0]


def test_enough_steps_no_warning(two_epochs: Path) -> None:
    assert "warnings" not in json.loads((two_epochs / rundir.METRICS).read_text())
    assert "warning" not in (two_epochs / rundir.LOG).read_text()
    assert yaml.safe_load((two_epochs / rundir.CONFIG).read_text())["batch_size"] == 64
