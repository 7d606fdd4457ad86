"""`visionbench predict` outputs: ``predictions.csv`` rows as wide as its header, and a warning
naming each input far from the size of the run's training images."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from visionbench.engine.inference_spec import InferenceSpec
from visionbench.engine.predict import predict_files

# A classification run on 8x8 RGB images of three classes, as inference.json describes it.
SPEC = InferenceSpec(task="classify", classes=("a", "b", "c"), in_channels=3, image_size=(8, 8), native_size=(8, 8),
                     mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
CONFIG = SimpleNamespace(task="classify")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3)).eval()


def _image(path: Path, side: int) -> Path:
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_predictions_csv_rows_match_the_header_with_fewer_classes_than_top_k(tmp_path: Path) -> None:
    paths = [_image(tmp_path / "x.png", 8), _image(tmp_path / "y.png", 8)]
    predict_files(CONFIG, SPEC, _model(), paths, tmp_path / "out", device=torch.device("cpu"))
    with open(tmp_path / "out" / "predictions.csv", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["file", "pred", "probability", "top1", "top2", "top3"]
    assert len(rows) == 2 and all(len(row) == len(header) for row in rows)
    assert sum(float(cell.split(":")[1]) for cell in rows[0][3:]) == pytest.approx(1.0, abs=1e-5)


def test_an_input_far_from_the_training_size_is_named_in_a_warning(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    paths = [_image(tmp_path / "photo.png", 512), _image(tmp_path / "near.png", 12)]
    output = predict_files(CONFIG, SPEC, _model(), paths, tmp_path / "out", device=torch.device("cpu"))
    assert len(output.warnings) == 1
    message = output.warnings[0]
    assert "photo.png" in message and "512x512" in message and "8x8" in message and "resized" in message
    assert output.rows[0]["warning"] == message and "warning" not in output.rows[1]
    # A spec without one stored training size (images of many sizes) has nothing to compare with.
    mixed = InferenceSpec(**{**SPEC.__dict__, "native_size": None})
    assert predict_files(CONFIG, mixed, _model(), paths, tmp_path / "out2", device=torch.device("cpu")).warnings == []
