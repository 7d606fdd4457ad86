"""`visionbench evaluate --task detect|segment --gt … --pred …`: other tools' files, exact metrics."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionbench import cli


def _coco_files(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    images = [{"id": i, "width": 100, "height": 80, "file_name": f"{i}.png"} for i in range(1, 21)]
    annotations, results = [], []
    for image in images:
        for _ in range(rng.integers(1, 4)):
            x, y, w, h = (float(v) for v in (rng.uniform(0, 60), rng.uniform(0, 40), rng.uniform(8, 40), rng.uniform(8, 40)))
            category = int(rng.integers(1, 3))
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": category,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            jitter = rng.normal(0, 2, 4)
            results.append({"image_id": image["id"], "category_id": category, "score": float(rng.uniform(0.3, 1)),
                            "bbox": [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]})
        results.append({"image_id": image["id"], "category_id": 1, "score": float(rng.uniform(0, 0.5)),
                        "bbox": [float(rng.uniform(0, 80)), float(rng.uniform(0, 60)), 10.0, 10.0]})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}]}
    (root / "gt.json").write_text(json.dumps(gt))
    (root / "pred.json").write_text(json.dumps(results))
    return root / "gt.json", root / "pred.json"


def test_detection_files_equal_pycocotools(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_path, pred_path = _coco_files(tmp_path)
    code = cli.main(["evaluate", "--task", "detect", "--gt", str(gt_path), "--pred", str(pred_path), "--json",
                     "--out", str(tmp_path / "run")])
    metrics = json.loads(capsys.readouterr().out)
    assert code == 0 and metrics["task"] == "detect" and metrics["num_samples"] == 20
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        evaluation = COCOeval(coco, coco.loadRes(str(pred_path)), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    for name, expected in zip(names, evaluation.stats, strict=True):
        value = metrics[name]["value"]
        assert (value is None or value != value) if expected == -1 else value == expected, name
    low, high = metrics["AP"]["ci95"]
    assert low <= metrics["AP"]["value"] <= high
    assert metrics["classes"] == ["circle", "square"] and metrics["confusion_labels"][-1] == "background"
    curve = metrics["pr_curve"]["circle"]
    assert len(curve["recall"]) == 101 and curve["ap"] == metrics["per_class"]["AP50"][0]
    assert curve["precision"] == evaluation.eval["precision"][0, :, 0, 0, -1].tolist()
    report = (tmp_path / "run" / "report.html").read_text()
    assert "Precision–recall curves" in report and "Confusion matrix" in report


def test_detection_file_errors_name_the_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt_path, _ = _coco_files(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]))
    code = cli.main(["evaluate", "--task", "detect", "--gt", str(gt_path), "--pred", str(tmp_path / "bad.json"),
                     "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.json" in err and "999" in err and "Traceback" not in err
    code = cli.main(["evaluate", "--task", "detect", "--pred", str(tmp_path / "bad.json"), "--quiet"])
    assert code == 2 and "--gt" in capsys.readouterr().err


def _mask_folders(root: Path, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    truths, preds = [], []
    for i in range(6):
        truth = rng.integers(0, k, (24, 32)).astype(np.uint8)
        truth[rng.random(truth.shape) < 0.05] = 255
        pred = np.where(rng.random(truth.shape) < 0.8, truth % 255, rng.integers(0, k, truth.shape)).astype(np.uint8)
        pred[truth == 255] = rng.integers(0, k)
        for side, mask in (("gt", truth), ("pred", pred)):
            (root / side).mkdir(exist_ok=True)
            image = Image.fromarray(mask)
            if side == "pred" and i % 2:  # palette PNGs hold class indices too
                image = image.convert("P")
            image.save(root / side / f"img{i}.png")
        truths.append(truth)
        preds.append(pred)
    return np.stack(truths), np.stack(preds)


def test_segmentation_masks_equal_scikit_learn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.metrics import accuracy_score, jaccard_score

    truths, preds = _mask_folders(tmp_path)
    Image.fromarray(truths[0]).save(tmp_path / "gt" / "unpaired.png")
    code = cli.main(["evaluate", "--task", "segment", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
                     "--num-classes", "4", "--allow-partial", "--json", "--out", str(tmp_path / "run")])
    metrics = json.loads(capsys.readouterr().out)
    counted = truths != 255
    t, p = truths[counted].astype(int), preds[counted].astype(int)
    assert code == 0 and metrics["num_samples"] == 6
    assert metrics["mIoU"]["value"] == pytest.approx(jaccard_score(t, p, average="macro", labels=range(4)), abs=1e-15)
    assert metrics["pixel_accuracy"]["value"] == pytest.approx(accuracy_score(t, p), abs=1e-15)
    assert metrics["unpaired"] == {"ground_truth_only": ["unpaired"], "prediction_only": []}
    report = (tmp_path / "run" / "report.html").read_text()
    assert "Per-class metrics" in report and "per-class IoU and Dice" in report and "Confusion matrix" in report


def test_segmentation_unpaired_masks_are_refused_or_scored_with_a_loud_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truths, _ = _mask_folders(tmp_path)
    for i in range(6, 10):  # four ground-truth masks nobody predicted
        Image.fromarray(truths[0]).save(tmp_path / "gt" / f"img{i}.png")
    argv = ["evaluate", "--task", "segment", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
            "--num-classes", "4"]
    code = cli.main([*argv, "--out", str(tmp_path / "refused")])
    err = capsys.readouterr().err
    assert code == 2 and "4 of 10" in err and "'img6'" in err and "--allow-partial" in err
    assert not (tmp_path / "refused" / "metrics.json").exists()

    Image.fromarray(truths[0]).save(tmp_path / "pred" / "extra.png")  # a prediction without ground truth
    code = cli.main([*argv, "--allow-partial", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 0 and "6 of 10 images" in err, err
    assert "warning: scored 6 of 10 ground-truth masks" in err and "'img6', 'img7', 'img8', …" in err
    assert "warning: 1 predicted masks" in err and "'extra'" in err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_samples"] == 6 and metrics["num_ground_truth"] == 10 and len(metrics["warnings"]) == 2
    assert metrics["unpaired"]["ground_truth_only"] == ["img6", "img7", "img8", "img9"]
    assert "scored 6 of 10" in (tmp_path / "run" / "report.html").read_text()


def test_segmentation_bad_masks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _mask_folders(tmp_path)
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "pred" / "img0.png")
    code = cli.main(["evaluate", "--task", "segment", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
                     "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "img0.png" in err and "palette" in err
    Image.fromarray(np.zeros((20, 32), np.uint8)).save(tmp_path / "pred" / "img0.png")
    code = cli.main(["evaluate", "--task", "segment", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
                     "--quiet", "--out", str(tmp_path / "r2")])
    assert code == 2 and "same size" in capsys.readouterr().err
    Image.fromarray(np.full((24, 32), 9, np.uint8)).save(tmp_path / "pred" / "img0.png")
    code = cli.main(["evaluate", "--task", "segment", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
                     "--num-classes", "4", "--quiet", "--out", str(tmp_path / "r3")])
    err = capsys.readouterr().err
    assert code == 2 and "img0" in err and "9" in err


def test_convert_command_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from visionbench.data.detection_formats import read_detection

    gt_path, _ = _coco_files(tmp_path)
    (tmp_path / "images").mkdir()
    for i in range(1, 21):
        Image.fromarray(np.full((80, 100, 3), 40 * (i % 5), np.uint8)).save(tmp_path / "images" / f"{i}.png")
    code = cli.main(["convert", f"coco:{gt_path}:{tmp_path / 'images'}", "--to", "yolo", "--out", str(tmp_path / "yolo")])
    written = capsys.readouterr().out.split("wrote ")[-1].strip()
    assert code == 0 and written.startswith("yolo:")
    back = read_detection(written).annotations()
    original = read_detection(f"coco:{gt_path}:{tmp_path / 'images'}").annotations()
    assert len(back.records) == len(original.records) == 20
    code = cli.main(["convert", "coco:missing.json", "--to", "voc", "--out", str(tmp_path / "voc")])
    assert code == 2 and "missing.json" in capsys.readouterr().err


def test_a_16_bit_mask_value_is_refused_before_any_matrix_is_allocated(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A mask value of 40000 made the inferred class count 40001 and tried to allocate 12.8 GB (issue 18)."""
    _mask_folders(tmp_path)
    Image.fromarray(np.full((24, 32), 40000, np.uint16)).save(tmp_path / "pred" / "img0.png")
    code = cli.main(["evaluate", "--task", "segment", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
                     "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "class indices below 4096; got 40000" in err and "img0.png" in err and "--num-classes" in err


def test_images_without_any_detection_are_counted_and_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A results file cut off after a few images used to be scored silently (issue 18): the images with
    objects but no detection are now counted in metrics.json and warned about on the console."""
    gt_path, pred_path = _coco_files(tmp_path)
    results = json.loads(pred_path.read_text())
    dropped = {1, 2}
    pred_path.write_text(json.dumps([r for r in results if r["image_id"] not in dropped]))
    code = cli.main(["evaluate", "--task", "detect", "--gt", str(gt_path), "--pred", str(pred_path),
                     "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert code == 0 and metrics["images_without_results"] == 2
    assert "2 of 20 ground-truth images with objects have no detection in pred.json (image_id 1, 2)" in err
    assert metrics["warnings"] == [line for line in metrics["warnings"] if "no detection" in line]


def test_coco_ids_beyond_int64_are_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An id of 2**63 gave an OverflowError traceback (issue 18)."""
    gt_path, pred_path = _coco_files(tmp_path)
    gt = json.loads(gt_path.read_text())
    gt["images"][0]["id"] = 2**63
    gt_path.write_text(json.dumps(gt))
    code = cli.main(["evaluate", "--task", "detect", "--gt", str(gt_path), "--pred", str(pred_path),
                     "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "must be an integer below 2**63" in err and "gt.json" in err
