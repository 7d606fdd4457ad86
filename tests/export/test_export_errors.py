"""What goes wrong is said clearly: truncated, corrupt or unknown model files, a missing ``[export]``
extra, options that cannot work, and a parity failure, which is an error that ``export.json``
records and ``predict --model`` then refuses."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

import visionbench
from visionbench._extras import MissingExtraError
from visionbench.export import ParityError, load_exported
from visionbench.export.parity import ParityCheck
from visionbench.export.runtime import ExportedModel

from .helpers import run_cli


def _copy_export(folder: Path, target: Path) -> Path:
    """The float ONNX model of an export folder, with its export.json and inference.json, in ``target``."""
    target.mkdir()
    for name in ("model.onnx", "export.json", "inference.json"):
        shutil.copy(folder / name, target / name)
    return target / "model.onnx"


def test_a_truncated_file_is_named_against_export_json(onnx_export: tuple[Path, dict, str], tmp_path: Path) -> None:
    model = _copy_export(onnx_export[0], tmp_path / "copy")
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.onnx' must match the export\.json beside it .*truncated or corrupt"):
        load_exported(model)
    code, _, err = run_cli(["predict", "--model", str(model), str(model)])  # the model fails before the image
    assert code == 2 and "truncated or corrupt" in err and "Traceback" not in err


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_an_unreadable_file_without_export_json_is_named_with_the_fix(onnx_export: tuple[Path, dict, str],
                                                                      tmp_path: Path, damage: str) -> None:
    model = tmp_path / "alone.onnx"
    data = (onnx_export[0] / "model.onnx").read_bytes()
    model.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\x08\x07not an onnx model" * 50)
    with pytest.raises(ValueError, match=r"alone\.onnx' must be a readable onnx model.*visionbench export RUN "
                                         r"--format onnx"):
        load_exported(model)


@pytest.mark.parametrize(("suffix", "fmt"), [(".pt", "torchscript"), (".pt2", "pt2")])
def test_truncated_torchscript_and_pt2_files_are_refused_clearly(digits_run: Path, tmp_path: Path, suffix: str,
                                                                 fmt: str) -> None:
    result = visionbench.export(digits_run, format=fmt, out=tmp_path / "export", quiet=True)
    broken = tmp_path / f"broken{suffix}"
    data = result.model_file.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"broken\{suffix}' must be a readable {fmt} model.*truncated"):
        load_exported(broken)


def test_missing_and_unknown_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nothing\.onnx' does not exist"):
        load_exported(tmp_path / "nothing.onnx")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"model file must end in \.onnx, \.pt, \.pt2"):
        load_exported(tmp_path / "weights.bin")


def test_onnx_without_the_export_extra_names_it(digits_run: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'visionbench\[export\]'"):
        visionbench.export(digits_run, format="onnx", out=tmp_path, quiet=True)
    code, _, err = run_cli(["export", str(digits_run), "--out", str(tmp_path)])
    assert code == 1 and "pip install 'visionbench[export]'" in err and "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "pt2", "--quantize", "int8"], "Give --format onnx --quantize int8"),
    (["--prune", "1.5"], "--prune must be a fraction between 0 and 1"),
    (["--format", "onnx", "--out", "model.pt2"], "--out must end in .onnx for --format onnx"),
])
def test_options_that_cannot_work_are_refused(digits_run: Path, tmp_path: Path, args: list[str], message: str) -> None:
    if "--out" in args:
        args = [*args[:-1], str(tmp_path / args[-1])]
    code, _, err = run_cli(["export", str(digits_run), *args])
    assert code == 2 and message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_half_without_cuda_is_refused(digits_run: Path) -> None:
    code, _, err = run_cli(["export", str(digits_run), "--half"])
    assert code == 2 and "--half makes a float16 model for CUDA" in err


def test_a_parity_failure_is_an_error_recorded_in_export_json(digits_run: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from visionbench.export import pipeline

    def skewed(path: Path, **kwargs: object) -> ExportedModel:  # a runtime that adds 0.5 to every logit of class 3
        loaded = load_exported(path, **kwargs)

        def run(images: torch.Tensor) -> tuple[torch.Tensor, ...]:
            (logits,) = loaded(images)
            return (logits + 0.5 * (torch.arange(logits.shape[1]) == 3),)

        return ExportedModel(loaded.path, loaded.format, loaded.device, loaded.dtype, run)

    monkeypatch.setattr(pipeline, "load_exported", skewed)
    with pytest.raises(ParityError, match=r"model\.pt' must give the run's outputs on its test split within the "
                                          r"tolerance; got largest differences logits 0\.5"):
        visionbench.export(digits_run, format="torchscript", out=tmp_path, quiet=True)
    info = json.loads((tmp_path / "export.json").read_text())
    assert info["parity"]["passed"] is False and info["parity"]["max_abs_diff"]["logits"] == pytest.approx(0.5)
    monkeypatch.undo()
    code, _, err = run_cli(["predict", "--model", str(tmp_path / "model.pt"), str(tmp_path / "model.pt")])
    assert code == 2 and "failed its parity check" in err


def test_parity_counts_near_ties_and_refuses_real_differences() -> None:
    reference = torch.tensor([[2.0, 1.0, 0.0], [1.0, 1.0002, 0.0]])  # the second image is a near-tie
    check = ParityCheck("classify")
    check.update(reference, reference + torch.tensor([[0.0, 0.0, 0.0], [0.0004, 0.0, 0.0]]))
    result = check.result()
    assert result["passed"] and result["differences_at_ties"] == 1 and not result["identical_classes"]
    check.update(reference, torch.tensor([[0.0, 2.0, 0.0], [1.0, 1.0002, 0.0]]))
    with pytest.raises(ParityError, match=r"got largest differences logits 2"):
        check.check("m.onnx")


def test_detection_parity_matches_reordered_ties_and_flags_missing_boxes() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])
    reference = {"boxes": boxes, "scores": torch.tensor([0.9, 0.5, 0.5]), "labels": torch.tensor([0, 1, 2])}
    swapped = {"boxes": boxes[[0, 2, 1]], "scores": torch.tensor([0.9, 0.5, 0.5]), "labels": torch.tensor([0, 2, 1])}
    check = ParityCheck("detect", score_threshold=0.05, rows=100)
    check.update([reference], [swapped])  # equal scores in another order: the same detections
    assert check.result()["passed"] and check.result()["identical_detections"]
    missing = {key: value[:2] for key, value in reference.items()}
    check.update([reference], [missing])
    assert not check.result()["passed"] and check.result()["differences"] == 1


def test_detection_parity_allows_nms_decisions_at_its_iou_threshold_only() -> None:
    # B overlaps A (same class, higher score) at IoU 0.6 + 1e-5: whether NMS at 0.6 suppresses B is
    # rounding, so a side without B is a tie. C overlaps A at IoU 0.5: dropping C is a real difference.
    shift_b, shift_c = 24.999, 100 / 3  # IoU of [0, 100] and [s, 100 + s] (height 10) is (100 - s) / (100 + s)
    boxes = torch.tensor([[0.0, 0, 100, 10], [shift_b, 0, 100 + shift_b, 10], [shift_c, 0, 100 + shift_c, 10]])
    reference = {"boxes": boxes, "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([0, 0, 0])}
    check = ParityCheck("detect", score_threshold=0.05, rows=100, nms_iou=0.6)
    check.update([reference], [{key: value[[0, 2]] for key, value in reference.items()}])
    assert check.result()["passed"] and check.result()["differences_at_ties"] == 1
    check.update([reference], [{key: value[[0, 1]] for key, value in reference.items()}])
    assert not check.result()["passed"] and check.result()["differences"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: --half makes and checks a float16 CUDA model")
def test_half_on_cuda_writes_a_float16_file_that_keeps_the_accuracy(digits_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "half"
    code, _, err = run_cli(["export", str(digits_run), "--format", "torchscript", "--half", "--out", str(out)])
    assert code == 0, err
    info = json.loads((out / "export.json").read_text())
    fp16 = [name for name, entry in info["files"].items() if "float16" in json.dumps(entry)]
    assert fp16, info["files"]
    rows = {row["variant"]: row for row in info["compression"]["rows"]}
    half_row = next(row for label, row in rows.items() if "fp16" in label)
    assert abs(half_row["value"] - rows["pytorch (run)"]["value"]) <= 0.02  # the stated int8/fp16 bound on digits
