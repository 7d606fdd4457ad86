"""Trained runs shared by the export tests, each trained once per session and kept tiny: the
embedded digits (cnn-small, 2 epochs), a 3-class folder of 32-pixel images (resnet18), and
64-pixel shapes written as files for the segmenter (unet_small) and the detector (tiny_fcos)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import visionbench
from tests.engine.task_files import write_coco_shapes, write_mask_folder

from .helpers import run_cli, write_colour_folder

FAST = {"quiet": True, "device": "cpu"}


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cnn-small on the digits, 2 epochs (about 0.98 test accuracy, 3 s)."""
    out = tmp_path_factory.mktemp("export-runs") / "digits"
    return visionbench.train(data="digits", model="cnn-small", epochs=2, out=out, **FAST).run_dir


@pytest.fixture(scope="session")
def resnet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet18 (random init) on 24 training images of 32 px, 1 epoch."""
    root = write_colour_folder(tmp_path_factory.mktemp("colours"))
    out = tmp_path_factory.mktemp("export-runs") / "resnet18"
    return visionbench.train(data=f"folder:{root}", model="resnet18", image_size=32, epochs=1, batch_size=8,
                             out=out, **FAST).run_dir


@pytest.fixture(scope="session")
def segment_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """unet_small on 48 shapes images of 64 px (masks folder), 1 epoch."""
    spec = "masks:" + str(write_mask_folder(tmp_path_factory.mktemp("masks")))
    out = tmp_path_factory.mktemp("export-runs") / "segment"
    return visionbench.train(task="segment", data=spec, epochs=1, batch_size=8, eval_batch_size=16, out=out,
                             **FAST).run_dir


@pytest.fixture(scope="session")
def detect_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_fcos on 60 shapes images of 64 px (COCO files), 2 epochs, inputs resized to 64 px
    (a fixed size, which TorchScript's trace needs)."""
    spec = "coco:" + str(write_coco_shapes(tmp_path_factory.mktemp("coco")))
    out = tmp_path_factory.mktemp("export-runs") / "detect"
    return visionbench.train(task="detect", data=spec, epochs=2, batch_size=8, eval_batch_size=16, image_size=64,
                             out=out, **FAST).run_dir


@pytest.fixture(scope="session")
def onnx_export(digits_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """``visionbench export RUN --format onnx --quantize int8 --out DIR --json`` of the digits run →
    (folder, export.json, stderr)."""
    folder = tmp_path_factory.mktemp("digits-onnx")
    code, out, err = run_cli(["export", str(digits_run), "--format", "onnx", "--quantize", "int8", "--out",
                              str(folder), "--json"])
    assert code == 0, err
    return folder, json.loads(out), err
