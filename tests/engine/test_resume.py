"""Exact resume: a run SIGKILLed mid-epoch and resumed ends with bitwise-equal weights."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.engine.cli_runs import assert_same_checkpoints, finish, start_visionbench
from visionbench.engine import checkpoint as ckpt
from visionbench.engine import rundir

# Small batches give many steps per epoch, so the kill lands mid-epoch; EMA, light augmentation
# and dropout exercise every piece of state the checkpoint must carry.
TRAIN_ARGS = [
    "train", "--data", "digits", "--model", "cnn-small", "--epochs", "3", "--batch-size", "16",
    "--checkpoint-every", "7", "--ema", "--augment", "light", "--quiet", "--seed", "3",
]


def _progress(run_dir: Path) -> dict | None:
    path = run_dir / rundir.LAST_STATE
    if not path.exists():
        return None
    return ckpt.load_state(path)["progress"]


def _kill_mid_epoch(run_dir: Path, args: list[str] = TRAIN_ARGS) -> dict:
    """Start training, SIGKILL it right after a checkpoint inside the second epoch."""
    process = start_visionbench(*args, "--out", str(run_dir))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        progress = _progress(run_dir)
        if progress and progress["epoch"] == 1 and progress["step_in_epoch"] > 0:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return progress
        time.sleep(0.01)
    process.kill()
    pytest.fail("the run ended before a mid-epoch checkpoint was seen: " + process.stderr.read())


def _history_without_timing(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in rundir.read_history(run_dir)]


def test_sigkill_mid_epoch_then_resume_gives_bitwise_equal_weights(tmp_path: Path) -> None:
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    reference_process = start_visionbench(*TRAIN_ARGS, "--out", str(reference))
    progress = _kill_mid_epoch(interrupted)
    finish(reference_process)
    assert not (interrupted / rundir.METRICS).exists(), "the kill must land before the run finished"
    assert progress["epoch"] == 1 and 0 < progress["step_in_epoch"]

    finish(start_visionbench("train", "--resume", str(interrupted), "--quiet"))

    assert_same_checkpoints(reference, interrupted)
    assert _history_without_timing(reference) == _history_without_timing(interrupted)
    assert (reference / rundir.PREDICTIONS).read_text() == (interrupted / rundir.PREDICTIONS).read_text()
    expected_metrics = json.loads((reference / rundir.METRICS).read_text())
    assert json.loads((interrupted / rundir.METRICS).read_text()) == expected_metrics


def test_kill_during_weights_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.safetensors"
    good = {"w": torch.arange(6.0).reshape(2, 3)}
    ckpt.save_weights(good, path)

    def die_half_way(tensors: dict, filename: str, metadata: dict | None = None) -> None:
        save_file(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as handle:  # the process dies with half the file written
            handle.truncate(os.path.getsize(filename) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", die_half_way)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_weights({"w": torch.zeros(2, 3)}, path)
    assert torch.equal(ckpt.read_weights(path)["w"], good["w"])


def test_kill_just_before_rename_keeps_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.state.pt"
    ckpt.save_state({"progress": {"epoch": 1}}, path)

    def die(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_state({"progress": {"epoch": 2}}, path)
    assert ckpt.load_state(path) == {"progress": {"epoch": 1}}
    assert [p.name for p in tmp_path.iterdir()] == ["last.state.pt"]


def test_temporary_files_of_a_process_killed_mid_write_are_removed_on_resume(tmp_path: Path) -> None:
    """A SIGKILL inside a checkpoint write leaves `.last.state.pt.tmp-PID` (a finally never runs);
    they piled up across restarts (issue 18). The next run on the directory removes them and says so."""
    import visionbench

    run = visionbench.train(model="mlp", epochs=1, out=tmp_path / "run", quiet=True).run_dir
    leftovers = [run / rundir.CHECKPOINTS / name for name in (".last.state.pt.tmp-4242", ".best.safetensors.tmp-77")]
    for path in leftovers:
        path.write_bytes(b"half a checkpoint")
    visionbench.train(resume=run, epochs=2, quiet=True)
    assert not any(path.exists() for path in leftovers)
    assert "removed .last.state.pt.tmp-4242" in (run / rundir.LOG).read_text()


# Policy augmentation, random erasing, and MixUp/CutMix switching per batch: every draw must be
# keyed by (seed, epoch, batch) for the resumed run to replay them. A 20% training split (23 steps
# per epoch) keeps the per-image policies cheap.
MIXING_ARGS = [
    "train", "--data", "digits", "--model", "cnn-small", "--epochs", "2", "--batch-size", "16",
    "--test-fraction", "0.7", "--checkpoint-every", "7", "--augment", "randaugment", "--random-erase", "0.25", "--mixup", "0.2",
    "--cutmix", "1.0", "--quiet", "--seed", "5",
]


def test_resume_with_randaugment_erasing_mixup_and_cutmix_is_bitwise_equal(tmp_path: Path) -> None:
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    reference_process = start_visionbench(*MIXING_ARGS, "--out", str(reference))
    progress = _kill_mid_epoch(interrupted, MIXING_ARGS)
    finish(reference_process)
    assert not (interrupted / rundir.METRICS).exists(), "the kill must land before the run finished"
    assert progress["epoch"] == 1 and 0 < progress["step_in_epoch"]

    finish(start_visionbench("train", "--resume", str(interrupted), "--quiet"))

    expected, actual = load_file(str(reference / rundir.LAST_WEIGHTS)), load_file(str(interrupted / rundir.LAST_WEIGHTS))
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), f"{key} differs after resume"
    assert _history_without_timing(reference) == _history_without_timing(interrupted)
    assert (reference / rundir.PREDICTIONS).read_text() == (interrupted / rundir.PREDICTIONS).read_text()


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_checkpoints_the_current_step_and_resume_is_bitwise_equal(
        tmp_path: Path, signal_number: int) -> None:
    """Ctrl-C (SIGINT) or torchrun's SIGTERM used to exit without a checkpoint, losing up to an epoch:
    now the step in progress finishes, a checkpoint of exactly that step is written, the process exits
    130 with the resume hint, and the resumed run ends bitwise equal to an uninterrupted one."""
    args = [a for a in TRAIN_ARGS if a not in ("--checkpoint-every", "7")]  # only the signal may write mid-epoch
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    reference_process = start_visionbench(*args, "--out", str(reference))
    process = start_visionbench(*args, "--out", str(stopped))
    deadline = time.monotonic() + 240
    while not (stopped / rundir.HISTORY).exists():  # the first epoch is done: the signal lands in the second
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    time.sleep(0.05)
    process.send_signal(signal_number)
    _, err = process.communicate(timeout=120)
    finish(reference_process)
    assert process.returncode == 130, err
    assert "a checkpoint of that step is in" in err or "its checkpoint is in" in err, err
    assert f"visionbench train --resume {stopped}" in err
    progress = _progress(stopped)
    history = rundir.read_history(stopped)
    assert progress["global_step"] > history[-1]["step"] or progress["epoch"] == len(history)  # nothing lost
    assert not (stopped / rundir.METRICS).exists()
    finish(start_visionbench("train", "--resume", str(stopped), "--quiet"))
    assert_same_checkpoints(reference, stopped)
    assert _history_without_timing(reference) == _history_without_timing(stopped)


def test_a_resume_while_the_run_trains_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path: Path) -> None:
    """A --resume started beside the running original duplicated its history (issue 18): the run
    directory is locked while it trains; the lock of a killed process is stale and taken over."""
    run = tmp_path / "run"
    process = start_visionbench(*TRAIN_ARGS[:6], "30", *TRAIN_ARGS[7:], "--out", str(run))
    deadline = time.monotonic() + 120
    while not (run / rundir.LAST_STATE).exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    assert (run / ".lock").read_text().endswith(f":{process.pid}")
    second = start_visionbench("train", "--resume", str(run), "--quiet")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and "must not be trained by two processes at once" in err and str(process.pid) in err
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = _progress(run)["epoch"]  # the killed process left its lock behind: stale, taken over
    finish(start_visionbench("train", "--resume", str(run), "--epochs", str(done + 1), "--quiet"))
    assert not (run / ".lock").exists() and (run / rundir.METRICS).exists()
