"""Tests of visionbench/cli.py: help, list, errors (exit code 2, no traceback), a real run and its files.

Everything runs in-process through ``visionbench.cli.main`` except one subprocess call each of the
console script and ``python -m visionbench``. The one training run is shared by the module.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from visionbench.cli import main
from visionbench.config import ClassifyConfig, DetectConfig, SegmentConfig, config_fields

NUM_TEST = 359  # digits test split with the default seed and fractions
NUM_CLASSES = 10


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` → (exit code, stdout, stderr); argparse's ``SystemExit`` counts as a return."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Run in a scratch directory (a default ``runs/`` would land there) with wide help output."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real ``train --json --quiet`` run: (exit code, stdout, stderr, run dir)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code, out, err = run_cli(
        ["train", "--data", "digits", "--model", "mlp", "--epochs", "1", "--out", str(run_dir), "--json", "--quiet"]
    )
    return code, out, err, run_dir


def read_predictions(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


# ----------------------------------------------------------------------------------- help


def test_train_help_lists_every_option():
    code, out, err = run_cli(["train", "--help"])
    assert code == 0, err
    for option in (
        "--task",
        "--data",
        "--model",
        "--epochs",
        "--batch-size",
        "--lr",
        "--optimizer",
        "--loss",
        "--seed",
        "--device",
        "--workers",
        "--out",
        "--config",
        "--resume",
        "--quiet",
        "--json",
    ):
        assert option in out, option
    for f in [f for cls in (ClassifyConfig, DetectConfig, SegmentConfig) for f in config_fields(cls)]:
        assert flag(f.name) in out, f.name
        if str(f.type) == "bool":
            assert "--no-" + f.name.replace("_", "-") in out, f.name


def test_train_help_shows_defaults_and_choices():
    code, out, _ = run_cli(["train", "--help"])
    assert code == 0
    assert "sgd" in out and "adamw" in out  # optimizer choices
    assert "cosine" in out and "onecycle" in out  # schedule choices
    text = " ".join(out.split())  # argparse wraps help lines
    assert "defaults: classify 10, detect 22, segment 17" in text  # epochs, per task
    assert "default: 'cosine'" in text  # the same for every task
    assert "only --task detect" in text  # --protocol, --score-threshold


def test_top_level_help_names_the_commands():
    code, out, _ = run_cli(["--help"])
    assert code == 0
    for command in ("train", "evaluate", "list"):
        assert command in out


def test_version():
    from visionbench import __version__

    code, out, _ = run_cli(["--version"])
    assert code == 0 and __version__ in out


def test_console_script_help(tmp_path):
    script = Path(sys.executable).parent / "visionbench"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "evaluate" in done.stdout
    assert "Traceback" not in done.stderr


def test_python_m_help(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "visionbench", "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "evaluate" in done.stdout
    assert "Traceback" not in done.stderr


# ----------------------------------------------------------------------------------- list


def listed_names(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "what, expected",
    [
        ("models", {"cnn-small", "mlp", "resnet18"}),
        ("datasets", {"digits", "folder", "mnist", "cifar10"}),
        ("losses", {"cross_entropy", "focal", "bce"}),
    ],
)
def test_list_prints_the_registered_names(what, expected):
    code, out, err = run_cli(["list", what])
    assert code == 0, err
    names = listed_names(out)
    assert expected <= set(names)
    if what != "losses":  # losses: classification's, then detection's, then segmentation's, each sorted
        assert names == sorted(names)


def test_list_matches_the_registries():
    from visionbench.data import DATASETS
    from visionbench.losses import DETECTION_LOSSES, LOSSES, SEGMENTATION_LOSSES
    from visionbench.models import MODELS

    for what, names in (("models", MODELS.names()), ("datasets", DATASETS.names()),
                        ("losses", LOSSES.names() + DETECTION_LOSSES.names() + SEGMENTATION_LOSSES.names())):
        _, out, _ = run_cli(["list", what])
        assert listed_names(out) == names, what


def test_list_names_each_entrys_task():
    _, out, _ = run_cli(["list", "models", "tiny_fcos"])
    assert out.split()[:2] == ["tiny_fcos", "detect"]
    _, out, _ = run_cli(["list", "datasets", "shapes"])
    assert out.split()[:2] == ["shapes", "detect/segment"]
    _, out, _ = run_cli(["list", "losses", "ce_dice"])
    assert out.split()[:2] == ["ce_dice", "segment"]
    _, out, _ = run_cli(["list", "losses", "*iou"])
    assert [line.split()[:3] for line in out.splitlines()] == [[name, "detect", "(box)"] for name in
                                                               ("ciou", "diou", "giou", "iou")]
    _, out, _ = run_cli(["list", "losses", "sigmoid_focal"])
    assert out.split()[:3] == ["sigmoid_focal", "detect", "(class)"]


def test_list_models_filters_with_a_pattern():
    code, out, _ = run_cli(["list", "models", "resnet*"])
    assert code == 0
    names = listed_names(out)
    assert names and all(name.startswith("resnet") for name in names)
    assert "resnet18" in names and "cnn-small" not in names


def test_list_with_a_pattern_matching_nothing_prints_nothing():
    code, out, _ = run_cli(["list", "losses", "zzz*"])
    assert code == 0 and out.strip() == ""


# ----------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--epochs", "ten"], ["--epochs", "ten"]),
        (["train", "--optimizer", "adamm"], ["--optimizer", "adamm"]),
        (["train", "--label-smoothing", "1.5"], ["label_smoothing", "1.5"]),
        (["train", "--epochs", "0"], ["epochs", "0"]),
        (["train", "--batch-size", "-4"], ["batch_size"]),
        (["train", "--val-fraction", "0.6", "--test-fraction", "0.5"], ["val_fraction + test_fraction"]),
        (["train", "--model", "resnet19"], ["resnet19", "resnet18"]),
        (["train", "--data", "digitz"], ["digitz", "digits"]),
        (["train", "--loss", "crossentropy"], ["crossentropy", "cross_entropy"]),
        (["train", "--device", "tpu"], ["tpu"]),
        (["train", "--config", "missing.yaml"], ["missing.yaml"]),
        (["train", "--no-such-flag"], ["--no-such-flag"]),
        (["list", "widgets"], ["widgets"]),
        (["evaluate"], ["RUN_DIR"]),
    ],
)
def test_bad_values_exit_2_with_a_message_and_no_traceback(tmp_path, argv, words):
    code, out, err = run_cli(argv)
    assert code == 2
    assert out == ""
    assert "error" in err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "runs").exists()  # nothing was written


def test_bad_yaml_config_exits_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("epoch: 3\n")
    code, _, err = run_cli(["train", "--config", str(tmp_path / "bad.yaml")])
    assert code == 2 and "'epochs'" in err and "Traceback" not in err


def test_option_of_another_task_exits_2_naming_it():
    code, _, err = run_cli(["train", "--task", "detect", "--label-smoothing", "0.1"])
    assert code == 2 and "Traceback" not in err
    assert "'label_smoothing'" in err and "does not apply to task 'detect'" in err


def test_resume_of_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(["train", "--resume", str(tmp_path / "empty")])
    assert code == 2 and out == ""
    assert "not a visionbench run directory" in err and "Traceback" not in err


def test_resume_of_a_missing_directory(tmp_path):
    code, _, err = run_cli(["train", "--resume", str(tmp_path / "nowhere")])
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def test_evaluate_of_a_directory_that_is_not_a_run(tmp_path):
    code, _, err = run_cli(["evaluate", str(tmp_path)])
    assert code == 2 and "not a visionbench run directory" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------- a real run


def test_train_json_stdout_is_exactly_metrics_json(trained):
    code, out, err, run_dir = trained
    assert code == 0, err
    metrics = json.loads(out)  # the whole of stdout is one JSON document
    assert out == (run_dir / "metrics.json").read_text()
    assert metrics["task"] == "classify"
    assert metrics["num_samples"] == NUM_TEST
    accuracy = metrics["accuracy"]
    assert set(accuracy) >= {"value", "ci95", "higher_is_better"}
    assert accuracy["higher_is_better"] is True
    low, high = accuracy["ci95"]
    assert 0 <= low <= accuracy["value"] <= high <= 1
    assert accuracy["value"] > 0.5  # one epoch of an MLP learns the digits well beyond chance
    matrix = metrics["confusion_matrix"]
    assert len(matrix) == NUM_CLASSES and all(len(row) == NUM_CLASSES for row in matrix)
    assert sum(map(sum, matrix)) == NUM_TEST
    assert sum(matrix[k][k] for k in range(NUM_CLASSES)) / NUM_TEST == pytest.approx(accuracy["value"], abs=1e-12)
    assert "per_class" in metrics


def test_train_writes_the_run_directory(trained):
    code, _, err, run_dir = trained
    assert code == 0, err
    for name in (
        "config.yaml",
        "history.jsonl",
        "metrics.json",
        "predictions.csv",
        "log.txt",
        "checkpoints/best.safetensors",
        "checkpoints/last.safetensors",
        "checkpoints/last.state.pt",
    ):
        assert (run_dir / name).is_file(), name
        assert (run_dir / name).stat().st_size > 0, name
    events = list((run_dir / "tensorboard").glob("events.out.tfevents*"))
    assert events, "no TensorBoard events file"
    history = [line for line in (run_dir / "history.jsonl").read_text().splitlines() if line.strip()]
    assert len(history) == 1
    record = json.loads(history[0])
    assert record["epoch"] == 1 and math.isfinite(record["train_loss"])  # epochs are numbered from 1
    assert not list(run_dir.rglob("*.tmp")), "a temporary checkpoint file was left behind"


def test_saved_config_is_the_resolved_one(trained):
    from visionbench.config import resolve

    _, _, _, run_dir = trained
    config = resolve(run_dir / "config.yaml")
    assert (config.data, config.model, config.epochs) == ("digits", "mlp", 1)
    # The batch size left unset is saved as the run settled it (digits: the default 64).
    assert config == resolve(overrides={"data": "digits", "model": "mlp", "epochs": 1, "batch_size": 64})


def test_predictions_csv_recomputes_the_metrics(trained):
    _, _, _, run_dir = trained
    header, rows = read_predictions(run_dir / "predictions.csv")
    assert header == ["id", "label", "pred", *(f"prob_{k}" for k in range(NUM_CLASSES))]
    assert len(rows) == NUM_TEST
    assert len({row[0] for row in rows}) == NUM_TEST  # one row per sample
    correct = 0
    for row in rows:
        label, pred = int(row[1]), int(row[2])
        probs = [float(p) for p in row[3:]]
        assert len(probs) == NUM_CLASSES
        assert pred == max(range(NUM_CLASSES), key=probs.__getitem__)
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert 0 <= label < NUM_CLASSES
        correct += label == pred
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert correct / NUM_TEST == pytest.approx(metrics["accuracy"]["value"], abs=1e-12)
    # The per-class support is the label count of the file.
    labels = [int(row[1]) for row in rows]
    support = metrics["per_class"]["support"]
    assert support == [labels.count(k) for k in range(NUM_CLASSES)]


def test_out_that_already_holds_a_run_of_other_options_is_refused(trained):
    _, _, _, run_dir = trained
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    code, out, err = run_cli(
        ["train", "--data", "digits", "--model", "mlp", "--epochs", "2", "--out", str(run_dir), "--quiet"]
    )
    assert code == 2 and out == ""
    assert "holds a run started with other options" in err and "Traceback" not in err
    assert "--epochs: the run has 1, this command gives 2" in err and "--resume" in err
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # nothing already written is lost or changed


def test_resume_with_training_options_is_refused(trained):
    _, _, _, run_dir = trained
    before = (run_dir / "metrics.json").read_bytes()
    code, out, err = run_cli(["train", "--resume", str(run_dir), "--lr", "0.1"])  # --epochs alone is allowed
    assert code == 2 and out == ""
    assert "--lr" in err and "Traceback" not in err
    assert (run_dir / "metrics.json").read_bytes() == before


def test_evaluate_gives_the_training_runs_accuracy(trained, tmp_path):
    _, train_out, _, run_dir = trained
    out_dir = tmp_path / "evaluated"
    code, out, err = run_cli(["evaluate", str(run_dir), "--out", str(out_dir), "--json"])
    assert code == 0, err
    metrics, trained_metrics = json.loads(out), json.loads(train_out)
    assert metrics["accuracy"]["value"] == trained_metrics["accuracy"]["value"]
    assert metrics["confusion_matrix"] == trained_metrics["confusion_matrix"]
    assert metrics["num_samples"] == NUM_TEST
    assert out == (out_dir / "metrics.json").read_text()
    for name in ("config.yaml", "predictions.csv"):
        assert (out_dir / name).is_file(), name
    _, rows = read_predictions(out_dir / "predictions.csv")
    _, trained_rows = read_predictions(run_dir / "predictions.csv")
    assert [row[:3] for row in rows] == [row[:3] for row in trained_rows]


def test_evaluate_on_data_of_another_size_warns_and_uses_the_runs_input_size(trained, tmp_path):
    from tests.data.test_mnist import make_mnist

    _, _, _, run_dir = trained
    mnist = make_mnist(tmp_path / "mnist", n_train=20, n_test=10)  # 28x28, the run was trained on 8x8 digits
    code, out, err = run_cli(["evaluate", str(run_dir), "--data", f"mnist:{mnist}", "--out", str(tmp_path / "e")])
    assert code == 0, err
    assert "warning: the images of mnist:" in err and "28x28" in err and "trained on 8x8" in err
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert len(metrics["warnings"]) == 1 and "resized to the model's 8x8 input" in metrics["warnings"][0]
    assert metrics["num_samples"] == 10
    from PIL import Image

    for name in ("a", "b", "c"):  # three classes where the run has ten: refused
        (tmp_path / "three" / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), 40 * i).save(tmp_path / "three" / name / f"{i}.png")
    code, _, err = run_cli(["evaluate", str(run_dir), "--data", f"folder:{tmp_path / 'three'}", "--out",
                            str(tmp_path / "e3")])
    assert code == 2 and "must have the run's 10 classes; got 3" in err


def test_python_api_train(tmp_path, trained):
    import visionbench

    out_dir = tmp_path / "api-run"
    result = visionbench.train(data="digits", model="mlp", epochs=1, out=out_dir, quiet=True)
    assert Path(result.run_dir) == out_dir
    assert result.metrics["task"] == "classify"
    assert result.metrics["num_samples"] == NUM_TEST
    assert json.loads((out_dir / "metrics.json").read_text())["accuracy"] == result.metrics["accuracy"]
    assert result.config.epochs == 1 and result.config.model == "mlp"
    # The same configuration through the CLI gives the same result (deterministic given a seed).
    _, cli_out, _, _ = trained
    assert result.metrics["accuracy"]["value"] == json.loads(cli_out)["accuracy"]["value"]
    assert not (tmp_path / "runs").exists()


def test_list_metrics_covers_every_task_and_quality():
    code, out, _ = run_cli(["list", "metrics"])
    names = listed_names(out)
    assert code == 0 and {"accuracy", "AP50", "ARl", "mIoU", "dice_mean", "ssim", "gmsd", "vif_p"} <= set(names)
    assert "gmsd                     lower is better" in out and "(detect)" in out and "(segment)" in out
