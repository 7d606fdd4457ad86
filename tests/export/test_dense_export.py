"""Export and parity of resnet18, unet_small and tiny_fcos: ONNX for each, TorchScript for the
detector; dynamic batch (1 and 3 images) and, for the segmenter and detector, dynamic
image size; the detector's fixed-size outputs equal the run's own detections."""

from __future__ import annotations

from pathlib import Path

import torch

from visionbench.config import resolve
from visionbench.engine.inference_spec import read_inference_spec
from visionbench.engine.run_model import load_run_model
from visionbench.export import export_run, load_exported
from visionbench.export.runtime import TaskModel

FAST = {"quiet": True, "latency_repeats": 2}


def _run_model(run: Path) -> torch.nn.Module:
    spec = read_inference_spec(run)
    return load_run_model(run / "checkpoints" / "best.safetensors", resolve(run / "config.yaml"), spec,
                          spec.image_size)


def test_resnet18_onnx_passes_parity(resnet_run: Path, tmp_path: Path) -> None:
    result = export_run(resnet_run, format="onnx", out=tmp_path, **FAST)
    parity = result.info["parity"]
    assert parity["passed"] and parity["samples"] == 12 and parity["identical_classes"]
    assert result.info["input"]["shape"] == ["batch", 3, 32, 32]
    model, exported = _run_model(resnet_run), load_exported(result.model_file)
    inputs = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(inputs)
    for batch in (inputs[:1], inputs):
        (logits,) = exported(batch)
        torch.testing.assert_close(logits, expected[: len(batch)], atol=1e-4, rtol=1e-4)


def test_unet_onnx_passes_parity_with_dynamic_batch_and_image_size(segment_run: Path, tmp_path: Path) -> None:
    result = export_run(segment_run, format="onnx", out=tmp_path, **FAST)
    info = result.info
    assert info["parity"]["passed"] and info["parity"]["identical_masks"] and info["parity"]["compared"]["masks"] > 0
    assert info["dynamic_axes"]["images"] == {"0": "batch", "2": "height", "3": "width"}
    assert info["image_size_fixed_because"] is None
    assert info["outputs"] == [{"name": "logits", "shape": ["batch", 4, "height", "width"], "dtype": "float32"}]
    model, exported = _run_model(segment_run), load_exported(result.model_file)
    for shape in ((1, 3, 64, 64), (3, 3, 96, 128)):  # unet_small pads to multiples of 32 itself
        images = torch.randn(*shape)
        with torch.no_grad():
            expected = model(images)
        (logits,) = exported(images)
        assert logits.shape == expected.shape
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
        assert torch.equal(logits.argmax(1), expected.argmax(1))


def _detect_images(run: Path, count: int) -> torch.Tensor:
    """``count`` images of 64 px in [0, 1] (the detector normalises them itself)."""
    from visionbench.data.shapes import generate_shapes_image

    return torch.stack([generate_shapes_image(900 + i, size=64).image.float() / 255 for i in range(count)])


def _check_detector_file(run: Path, model_file: Path, sizes: tuple[int, ...]) -> None:
    """The exported detector, through its task interface, gives the run's detections at batch 1
    and 3 and at each side in ``sizes``."""
    model, exported = _run_model(run), load_exported(model_file)
    adapter = TaskModel(exported, "detect")
    for side in sizes:
        images = torch.nn.functional.interpolate(_detect_images(run, 3), size=(side, side), mode="bilinear")
        for batch in (images[:1], images):
            boxes, scores, labels, counts = exported(batch)
            assert boxes.shape == (len(batch), 100, 4) and scores.shape == labels.shape == (len(batch), 100)
            with torch.no_grad():
                expected = model(list(batch))
            for got, want in zip(adapter(list(batch)), expected, strict=True):
                assert torch.equal(got["labels"], want["labels"])
                torch.testing.assert_close(got["boxes"], want["boxes"], atol=1e-3, rtol=0)
                torch.testing.assert_close(got["scores"], want["scores"], atol=1e-4, rtol=0)
            assert counts.tolist() == [len(w["scores"]) for w in expected]


def test_tiny_fcos_onnx_keeps_nms_in_the_graph_and_passes_parity(detect_run: Path, tmp_path: Path) -> None:
    import onnx

    result = export_run(detect_run, format="onnx", out=tmp_path, **FAST)
    info = result.info
    assert info["parity"]["passed"] and info["parity"]["identical_detections"]
    assert info["parity"]["max_abs_diff"]["boxes"] <= info["parity"]["allowed_abs_diff"]["boxes"]
    assert [o["name"] for o in info["outputs"]] == ["boxes", "scores", "labels", "num_detections"]
    assert info["dynamic_axes"]["images"] == {"0": "batch", "2": "height", "3": "width"}
    ops = {node.op_type for node in onnx.load(str(result.model_file)).graph.node}
    assert "NonMaxSuppression" in ops
    _check_detector_file(detect_run, result.model_file, sizes=(64, 80))


def test_tiny_fcos_torchscript_passes_parity_at_its_traced_size(detect_run: Path, tmp_path: Path) -> None:
    # (torch.export's .pt2 shares the ONNX file's program, checked above; saving and loading a .pt2
    # detector takes 15 s here, so benchmarks/export_models.py checks it instead.)
    result = export_run(detect_run, format="torchscript", out=tmp_path, **FAST)
    assert result.info["parity"]["passed"] and result.info["parity"]["identical_detections"]
    assert result.info["image_size_fixed_because"] == "a TorchScript trace keeps the image size it was traced at"
    _check_detector_file(detect_run, result.model_file, sizes=(64,))
