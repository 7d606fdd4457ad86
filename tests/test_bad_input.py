"""Bad input end to end: each case gives one clear message naming the file/record and the fix,
and nothing already written is lost."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import visionbench
from visionbench import cli
from visionbench.engine import checkpoint as ckpt
from visionbench.engine import classify as engine_classify
from visionbench.engine import rundir
from visionbench.engine import train as engine_train
from visionbench.models import create_model


def _folder_dataset(root: Path, per_class: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("workers", ["0", "1"])
def test_corrupt_image_names_the_file_even_from_a_worker(tmp_path: Path, capsys, workers: str) -> None:
    root = _folder_dataset(tmp_path / "pets")
    for split_file in (root / "cat").iterdir():  # corrupt every cat image so each split hits one
        split_file.write_bytes(b"not a png at all")
        break
    (root / "cat" / "0.png").write_bytes(b"\x89PNG broken")
    code, err = _run_cli(["train", "--data", f"folder:{root}", "--model", "mlp", "--epochs", "1",
                          "--image-size", "16", "--batch-size", "4", "--workers", workers, "--test-fraction", "0.25",
                          "--val-fraction", "0.25", "--quiet", "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert "0.png" in err and "Remove or replace" in err
    assert "Traceback" not in err
    # The failed loop shut its loader workers down at once, not at some later garbage collection
    # (which blocked an unrelated later test for 5 s).
    assert multiprocessing.active_children() == []


def test_empty_class_folder_is_named(tmp_path: Path, capsys) -> None:
    root = _folder_dataset(tmp_path / "pets")
    (root / "bird").mkdir()
    code, err = _run_cli(["train", "--data", f"folder:{root}", "--quiet", "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "bird" in err


def test_missing_idx_file_is_named(tmp_path: Path, capsys) -> None:
    code, err = _run_cli(["train", "--data", f"mnist:{tmp_path}", "--quiet", "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "train-images-idx3-ubyte" in err


def test_weights_from_a_different_model_are_refused(tmp_path: Path, capsys) -> None:
    other = create_model("mlp", num_classes=10, in_channels=1, image_size=8)
    save_file(other.state_dict(), str(tmp_path / "mlp.safetensors"))
    code, err = _run_cli(["train", "--weights", str(tmp_path / "mlp.safetensors"), "--quiet",
                          "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert "does not fit this model" in err and "mlp.safetensors" in err


def test_resume_from_a_checkpoint_of_another_model_is_refused(tmp_path: Path, capsys) -> None:
    run = visionbench.train(model="mlp", epochs=1, out=tmp_path / "run", quiet=True).run_dir
    config = (run / rundir.CONFIG).read_text().replace("model: mlp", "model: cnn-small")
    (run / rundir.CONFIG).write_text(config)
    state = ckpt.load_state(run / rundir.LAST_STATE)
    state["progress"]["finished"] = False
    ckpt.save_state(state, run / rundir.LAST_STATE)
    code, err = _run_cli(["train", "--resume", str(run), "--quiet"], capsys)
    assert code == 2 and "does not fit this model" in err and "last.state.pt" in err


def test_nan_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    real_create_loss = engine_classify.create_loss
    calls = {"n": 0}

    class LossThatTurnsNan(torch.nn.Module):
        def __init__(self, loss: torch.nn.Module) -> None:
            super().__init__()
            self.loss = loss

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            value = self.loss(logits, target)
            if logits.requires_grad:  # count training steps only, not validation
                calls["n"] += 1
                if calls["n"] == 27:
                    return value * float("nan")
            return value

    def loss_that_turns_nan(*args, **kwargs):
        return LossThatTurnsNan(real_create_loss(*args, **kwargs))

    monkeypatch.setattr(engine_classify, "create_loss", loss_that_turns_nan)
    out = tmp_path / "run"
    with pytest.raises(engine_train.NonFiniteLossError, match="loss is nan at epoch 2, step 7.*last good checkpoint"):
        visionbench.train(model="mlp", epochs=3, checkpoint_every=5, out=out, quiet=True, val_fraction=0.1)
    state = ckpt.load_state(out / rundir.LAST_STATE)
    # 20 steps per epoch: the last checkpoint before step 27 is global step 25 (epoch 2, step 5).
    assert state["progress"]["global_step"] == 25 and state["progress"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert all(torch.isfinite(t).all() for t in ckpt.read_weights(out / rundir.BEST_WEIGHTS).values())
    assert len(rundir.read_history(out)) == 1  # the finished epoch's record is kept


def test_weights_that_turn_non_finite_are_never_checkpointed(tmp_path: Path, monkeypatch) -> None:
    """A finite loss can still take a step to NaN/inf weights (here: the weights are poisoned after an
    optimizer step of epoch 2); no checkpoint may then be written, and the last good one stays."""
    real_step = engine_train.train_step
    steps = {"n": 0}

    def step_that_poisons_the_weights(trainer, batch, config, device):  # noqa: ANN001, ANN202
        result = real_step(trainer, batch, config, device)
        steps["n"] += 1
        if steps["n"] == 25:  # epoch 2, step 5 (20 steps per epoch): the step a checkpoint follows
            with torch.no_grad():
                next(trainer.core.parameters()).fill_(float("inf"))
        return result

    monkeypatch.setattr(engine_train, "train_step", step_that_poisons_the_weights)
    out = tmp_path / "run"
    with pytest.raises(engine_train.NonFiniteLossError, match=r"must have finite weights.*last good checkpoint is kept"):
        visionbench.train(model="mlp", epochs=3, checkpoint_every=5, out=out, quiet=True, val_fraction=0.1)
    state = ckpt.load_state(out / rundir.LAST_STATE)
    assert state["progress"]["global_step"] == 20  # the end of epoch 1: the checkpoint at step 25 was refused
    for path in (out / rundir.LAST_WEIGHTS, out / rundir.BEST_WEIGHTS):
        assert not ckpt.non_finite_tensors(ckpt.read_weights(path)), path
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_evaluate_and_predict_refuse_non_finite_weights(tmp_path: Path, capsys) -> None:
    run = visionbench.train(model="mlp", epochs=1, out=tmp_path / "run", quiet=True).run_dir
    weights = ckpt.read_weights(run / rundir.BEST_WEIGHTS)
    next(iter(weights.values())).view(-1)[0] = float("nan")
    ckpt.save_weights(weights, run / rundir.BEST_WEIGHTS)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "digit.png")
    for argv in (["evaluate", str(run), "--out", str(tmp_path / "eval")],
                 ["predict", str(run), str(tmp_path / "digit.png"), "--out", str(tmp_path / "pred")]):
        code, err = _run_cli(argv, capsys)
        assert code == 1 and "best.safetensors" in err and "must have finite weights" in err and "retrain" in err


def test_an_empty_split_is_refused_before_the_first_step(tmp_path: Path, capsys) -> None:
    """One image per class leaves val and test empty; the run used to train to the end and then fail
    with an IndexError, writing no metrics."""
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "data" / name / "x.png")
    code, err = _run_cli(["train", "--data", f"folder:{tmp_path / 'data'}", "--out", str(tmp_path / "run"), "--quiet"],
                         capsys)
    assert code == 2 and "the test split of --data folder:" in err and "2 train / 0 val / 0 test" in err
    assert not (tmp_path / "run" / rundir.CHECKPOINTS).exists()


def test_a_training_split_of_one_class_is_refused() -> None:
    from types import SimpleNamespace

    class Split(list):
        def targets(self) -> torch.Tensor:
            return torch.tensor([label for _, label in self])

    data = SimpleNamespace(train=Split([(None, 1)] * 4), val=Split([(None, 0)]), test=Split([(None, 1)]),
                           classes=["cat", "dog"])
    config = SimpleNamespace(task="classify", data="folder:pets", multilabel=False)
    with pytest.raises(ValueError, match=r"at least 2 classes to train a classifier; got only \['dog'\]"):
        engine_train.check_splits(data, config, "test")
    engine_train.check_splits(SimpleNamespace(**{**vars(data), "train": Split([(None, 0), (None, 1)])}), config, "test")


@pytest.mark.parametrize("kind", ["file", "under_a_file"])
def test_an_out_that_cannot_be_a_folder_is_a_clear_error(tmp_path: Path, capsys, kind: str) -> None:
    """--out an existing file, or a path below one, gave a FileExistsError/NotADirectoryError traceback."""
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = blocker if kind == "file" else blocker / "run"
    code, err = _run_cli(["train", "--model", "mlp", "--epochs", "1", "--quiet", "--out", str(out)], capsys)
    assert code == 2 and "--out must be a folder" in err and str(out) in err
    assert blocker.read_text() == "x"


def test_an_empty_val_split_trains_on_but_says_so(tmp_path: Path) -> None:
    """24 images at --val-fraction 0.1 leave no validation image in any class: the run keeps the last
    epoch (as documented) and the warning reaches the log and metrics.json."""
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "data" / name / f"{i}.png")
    result = visionbench.train(data=f"folder:{tmp_path / 'data'}", model="mlp", epochs=2, batch_size=4, quiet=True,
                               out=tmp_path / "run")
    assert any("val split" in w and "is empty" in w for w in result.metrics["warnings"])


def test_a_full_disk_keeps_the_last_checkpoint_and_says_so(tmp_path: Path, capsys, monkeypatch) -> None:
    """Disk full during a checkpoint write: a clear error (not an OSError traceback), and the last
    good checkpoint is still there to resume from."""
    import errno

    out = tmp_path / "run"
    assert _run_cli(["train", "--model", "mlp", "--epochs", "1", "--quiet", "--out", str(out)], capsys)[0] == 0
    before = ckpt.read_weights(out / rundir.LAST_WEIGHTS)

    def full(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full)
    code, err = _run_cli(["train", "--resume", str(out), "--epochs", "2", "--quiet"], capsys)
    assert code == 2 and "No space left on device" in err and "the previous version is kept" in err
    after = ckpt.read_weights(out / rundir.LAST_WEIGHTS)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not list((out / rundir.CHECKPOINTS).glob(".*.tmp-*"))
