"""``visionbench export`` of a classifier (cnn-small on the digits): the ONNX file with its int8
version through the command line, TorchScript and torch.export through the API; export.json's
fields, the parity check, dynamic batch, the int8 accuracy bound, and ``predict --model``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import visionbench
from visionbench.config import resolve
from visionbench.engine.inference_spec import read_inference_spec
from visionbench.engine.run_model import load_run_model
from visionbench.export import load_exported
from visionbench.export.runtime import sha256_of

from .helpers import run_cli

# The stated bound of the README: int8 (onnxruntime static, calibrated on the train split) keeps
# digits test accuracy within 2 points of the float model.
INT8_ACCURACY_BOUND = 0.02
SUFFIX = {"torchscript": ".pt", "pt2": ".pt2"}


def _run_model(run: Path) -> torch.nn.Module:
    spec = read_inference_spec(run)
    return load_run_model(run / "checkpoints" / "best.safetensors", resolve(run / "config.yaml"), spec,
                          spec.image_size)


def _test_inputs(run: Path, count: int) -> torch.Tensor:
    """``count`` digits test images, preprocessed as the run's inference.json says."""
    from visionbench.data.digits import load_digits

    spec = read_inference_spec(run)
    images = load_digits(seed=0, val_fraction=0.1, test_fraction=0.2).test.images[:count].float() / 255
    return (images - torch.tensor(spec.mean).view(1, -1, 1, 1)) / torch.tensor(spec.std).view(1, -1, 1, 1)


def test_onnx_export_json_describes_the_file_and_its_parity(onnx_export: tuple[Path, dict, str],
                                                            digits_run: Path) -> None:
    folder, info, _ = onnx_export
    assert info["format"] == "onnx" and info["task"] == "classify" and info["opset"] == 18
    assert info["input"] == {"name": "images", "shape": ["batch", 1, 8, 8], "dtype": "float32", "layout": "NCHW",
                             "values": info["input"]["values"]}
    assert info["outputs"] == [{"name": "logits", "shape": ["batch", 10], "dtype": "float32"}]
    assert info["dynamic_axes"] == {"images": {"0": "batch"}, "logits": {"0": "batch"}}
    assert "input size" in info["image_size_fixed_because"]
    assert info["preprocessing"] == json.loads((digits_run / "inference.json").read_text())
    assert json.loads((folder / "inference.json").read_text()) == info["preprocessing"]  # the folder predicts alone
    parity = info["parity"]
    assert parity["passed"] and parity["samples"] == 359 and parity["identical_classes"]
    assert parity["max_abs_diff"]["logits"] <= parity["allowed_abs_diff"]["logits"] < 0.1
    assert parity["differences"] == 0
    for who in ("pytorch", "exported"):
        assert set(parity["latency_ms_per_image"][who]) == {"batch_1", "batch_32"}
        assert all(ms > 0 for ms in parity["latency_ms_per_image"][who].values())
    for name in ("model.onnx", "model.int8.onnx"):
        entry = info["files"][name]
        assert entry["bytes"] == (folder / name).stat().st_size and entry["sha256"] == sha256_of(folder / name)
    assert json.loads((folder / "export.json").read_text()) == info


def test_int8_keeps_digits_accuracy_within_the_stated_bound(onnx_export: tuple[Path, dict, str]) -> None:
    folder, info, _ = onnx_export
    method = info["files"]["model.int8.onnx"]["quantization"]
    assert method["kind"] == "static" and method["calibration"] == {"split": "train", "images": 256}
    assert info["files"]["model.int8.onnx"]["bytes"] < 0.5 * info["files"]["model.onnx"]["bytes"]
    rows = {row["variant"]: row for row in info["compression"]["rows"]}
    float_row, int8_row = rows["onnx"], rows["onnx int8 (static)"]
    assert float_row["value"] == rows["pytorch (run)"]["value"] > 0.8  # the float file scores as the run
    assert float_row["test"]["diff_points"] == 0.0 and float_row["test"]["test"] == "McNemar exact"
    assert abs(int8_row["value"] - float_row["value"]) <= INT8_ACCURACY_BOUND
    assert 0.0 <= int8_row["test"]["p_value"] <= 1.0
    # The table's numbers are those of the evaluation folders, which `visionbench compare` reads too.
    metrics = json.loads((folder / "evaluations" / "onnx-int8" / "metrics.json").read_text())
    assert metrics["accuracy"]["value"] == int8_row["value"]


def test_onnx_file_takes_any_batch_and_gives_the_run_logits(onnx_export: tuple[Path, dict, str],
                                                            digits_run: Path) -> None:
    folder, _, _ = onnx_export
    model, exported = _run_model(digits_run), load_exported(folder / "model.onnx")
    inputs = _test_inputs(digits_run, 3)
    with torch.no_grad():
        expected = model(inputs)
    for batch in (inputs[:1], inputs):
        (logits,) = exported(batch)
        assert logits.shape == (len(batch), 10)
        torch.testing.assert_close(logits, expected[: len(batch)], atol=1e-4, rtol=1e-4)
        assert torch.equal(logits.argmax(1), expected[: len(batch)].argmax(1))


@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
def test_torchscript_and_pt2_exports_pass_parity_with_dynamic_batch(fmt: str, digits_run: Path,
                                                                    tmp_path: Path) -> None:
    result = visionbench.export(digits_run, format=fmt, out=tmp_path / f"model{SUFFIX[fmt]}", quiet=True)
    assert result.model_file.is_file() and result.info["parity"]["passed"]
    assert result.info["parity"]["identical_classes"] and result.info["dynamic_axes"]["images"] == {"0": "batch"}
    exported, model = load_exported(result.model_file), _run_model(digits_run)
    inputs = _test_inputs(digits_run, 3)
    with torch.no_grad():
        expected = model(inputs)
    for batch in (inputs[:1], inputs):
        (logits,) = exported(batch)
        torch.testing.assert_close(logits, expected[: len(batch)], atol=1e-5, rtol=1e-5)


def test_predict_with_the_exported_file_alone_matches_the_run(onnx_export: tuple[Path, dict, str],
                                                              digits_run: Path, tmp_path: Path) -> None:
    from visionbench.data.digits import load_digits

    folder, _, _ = onnx_export
    images = load_digits(seed=0, val_fraction=0.1, test_fraction=0.2).test.images[:4, 0].numpy()
    for i, image in enumerate(images):
        Image.fromarray(image.astype(np.uint8)).save(tmp_path / f"d{i}.png")
    moved = tmp_path / "elsewhere"  # only the export folder's three files: no run, no data
    moved.mkdir()
    for name in ("model.onnx", "export.json", "inference.json"):
        (moved / name).write_bytes((folder / name).read_bytes())
    code, out, err = run_cli(["predict", "--model", str(moved / "model.onnx"), *[str(tmp_path / f"d{i}.png")
                                                                                  for i in range(4)]])
    assert code == 0, err
    by_run = visionbench.predict(digits_run, [tmp_path / f"d{i}.png" for i in range(4)], out=tmp_path / "p", device="cpu")
    lines = [line for line in out.splitlines() if line.endswith(")")]
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == [row["pred"] for row in by_run.rows]
    assert (moved / "predict" / "predictions.csv").is_file()


def test_export_command_prints_a_summary_and_the_table(digits_run: Path, tmp_path: Path) -> None:
    code, out, err = run_cli(["export", str(digits_run), "--format", "torchscript", "--evaluate", "--quiet",
                              "--out", str(tmp_path)])
    assert code == 0, err
    assert f"exported {tmp_path / 'model.pt'} (torchscript; input images float32 ['batch', 1, 8, 8])" in out
    assert "parity on the test split (359 images): passed" in out
    assert "latency pytorch: batch 1" in out and "latency exported: batch 1" in out
    assert "torchscript " in out and "McNemar exact" in out and err == ""
