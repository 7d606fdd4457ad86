"""Multi-label training end to end (``--multilabel`` on a label CSV) and its option checks.

Synthetic data: 32-px images on a dark noisy background; label k is "a bright square in quadrant k"
(4 labels, each present with probability 1/2, independently), so the labels are learnable.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import visionbench
from visionbench.engine import rundir

QUADRANTS = ((0, 0), (0, 16), (16, 0), (16, 16))  # (row, column) of each quadrant's corner


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``labels.csv`` (``image,labels`` layout) and 240 PNGs."""
    root = tmp_path_factory.mktemp("squares")
    rng = np.random.default_rng(0)
    rows = ["image,labels"]
    for i in range(240):
        image = rng.integers(0, 60, size=(32, 32, 3), dtype=np.uint8)
        present = [k for k in range(4) if rng.random() < 0.5]
        for k in present:
            top, left = QUADRANTS[k]
            image[top + 4: top + 12, left + 4: left + 12] = 230
        Image.fromarray(image).save(root / f"{i:03d}.png")
        rows.append(f"{i:03d}.png,{';'.join(f'q{k}' for k in present)}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, squares: Path) -> visionbench.TrainResult:
    """One short multi-label run, shared by the tests that read it."""
    return visionbench.train(data=f"csv:{squares}/labels.csv", multilabel=True, model="cnn-small", epochs=4,
                             augment="none", monitor="val_mAP", out=tmp_path_factory.mktemp("ml") / "run", quiet=True)


def test_multilabel_run_learns_and_writes_its_files(trained: visionbench.TrainResult, squares: Path) -> None:
    result = trained
    metrics = result.metrics
    assert metrics["multilabel"] is True and metrics["classes"] == ["q0", "q1", "q2", "q3"]
    # Chance: mAP ~ 0.5 (label frequency), subset accuracy ~ 1/16.
    assert metrics["mAP"]["value"] > 0.8
    assert metrics["f1_micro"]["value"] > 0.6
    for name in ("f1_macro", "f1_samples", "subset_accuracy", "hamming_loss", "precision_micro", "recall_macro"):
        low, high = metrics[name]["ci95"]
        assert low <= metrics[name]["value"] <= high
    assert "confusion_matrix" not in metrics and sorted(metrics["per_class"]) == ["ap", "f1", "precision", "recall",
                                                                               "support"]
    history = [json.loads(line) for line in (result.run_dir / rundir.HISTORY).read_text().splitlines()]
    assert {"val_mAP", "val_accuracy", "val_loss"} <= set(history[-1])
    with open(result.run_dir / rundir.PREDICTIONS, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == metrics["num_samples"] == 48
    assert {"id", "labels", "predicted", "true_0", "true_3", "prob_0", "prob_3"} <= set(table[0])
    with open(squares / "labels.csv", newline="") as handle:
        truth = dict(csv.reader(handle))  # image -> "q0;q2"
    for row in table:
        assert row["labels"] == truth[row["id"]]  # ids are the CSV's image cells
        assert all(row[f"true_{k}"] == str(int(f"q{k}" in row["labels"].split(";"))) for k in range(4))
        assert all(0.0 <= float(row[f"prob_{k}"]) <= 1.0 for k in range(4))
    page = (result.run_dir / "report.html").read_text()
    assert "Confusion matrix" not in page and "Per-class" in page


@pytest.mark.parametrize(("options", "match"), [
    ({"multilabel": False}, "Add --multilabel"),
    ({"multilabel": True, "loss": "focal"}, "--loss must be bce"),
    ({"multilabel": True, "balance": True}, "--balance must be off"),
])
def test_options_that_do_not_apply_are_refused(tmp_path: Path, squares: Path, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        visionbench.train(data=f"csv:{squares}/labels.csv", model="mlp", epochs=1, out=tmp_path / "run", quiet=True,
                          **options)


def test_multilabel_needs_label_csv_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs multi-label data"):
        visionbench.train(data="digits", multilabel=True, model="mlp", epochs=1, out=tmp_path / "run", quiet=True)


def test_predict_gives_the_labels_above_threshold(trained: visionbench.TrainResult, squares: Path,
                                                  tmp_path: Path) -> None:
    with open(squares / "labels.csv", newline="") as handle:
        truth = dict(csv.reader(handle))
    files = [squares / name for name in ("000.png", "001.png", "002.png", "003.png")]
    result = visionbench.predict(trained.run_dir, [str(f) for f in files], out=tmp_path / "pred")
    for row, path in zip(result.rows, files, strict=True):
        assert [name for name, _ in row["probabilities"]] == ["q0", "q1", "q2", "q3"]
        assert all(p >= 0.5 for _, p in row["labels"])
        assert sorted(name for name, _ in row["labels"]) == sorted(filter(None, truth[path.name].split(";")))
    with open(tmp_path / "pred" / "predictions.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["file", "labels", "prob_q0", "prob_q1", "prob_q2", "prob_q3"] and len(table) == 4
