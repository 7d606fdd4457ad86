"""Detection and segmentation through the one training loop: ``train --task detect|segment``
writes a complete run directory whose files other tools (and our file evaluation) reproduce,
resumes exactly after a SIGKILL, trains under torchrun (gloo) with metrics equal to one process,
and ``predict`` draws boxes and writes colour-coded masks."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

import visionbench
from visionbench.engine import checkpoint as ckpt
from visionbench.engine import rundir
from visionbench.engine.detect import GROUND_TRUTH_JSON, PREDICTIONS_JSON, image_errors
from visionbench.engine.file_evaluation import DETECTION_NAMES, SEGMENTATION_NAMES
from visionbench.engine.inference_spec import read_inference_spec
from visionbench.engine.masks import palette
from visionbench.engine.segment import MASKS_DIR

from .task_files import write_coco_shapes, write_mask_folder


@pytest.fixture(scope="module")
def coco_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "coco:" + str(write_coco_shapes(tmp_path_factory.mktemp("coco")))


@pytest.fixture(scope="module")
def masks_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "masks:" + str(write_mask_folder(tmp_path_factory.mktemp("masks")))


DETECT = {"task": "detect", "epochs": 2, "batch_size": 8, "eval_batch_size": 16, "quiet": True, "device": "cpu"}
SEGMENT = {"task": "segment", "epochs": 2, "batch_size": 8, "eval_batch_size": 16, "quiet": True, "device": "cpu"}


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory: pytest.TempPathFactory, coco_spec: str) -> visionbench.TrainResult:
    return visionbench.train(data=coco_spec, out=tmp_path_factory.mktemp("runs") / "detect", **DETECT)


@pytest.fixture(scope="module")
def segment_run(tmp_path_factory: pytest.TempPathFactory, masks_spec: str) -> visionbench.TrainResult:
    return visionbench.train(data=masks_spec, out=tmp_path_factory.mktemp("runs") / "segment", **SEGMENT)


# ----------------------------------------------------------------------------------- detection


def test_detect_run_writes_metrics_with_intervals_predictions_and_report(detect_run: visionbench.TrainResult) -> None:
    run, metrics = detect_run.run_dir, detect_run.metrics
    assert metrics["task"] == "detect" and metrics["split"] == "test" and metrics["num_samples"] == 12
    for name in DETECTION_NAMES:
        entry = metrics[name]
        assert set(entry) >= {"value", "ci95", "higher_is_better"}
        if not math.isnan(entry["value"]):
            low, high = entry["ci95"]
            assert low <= entry["value"] + 1e-12 and entry["value"] <= high + 1e-12
    assert metrics["classes"] == ["circle", "square", "triangle"]
    assert metrics["confusion_labels"] == ["circle", "square", "triangle", "background"]
    assert json.loads((run / rundir.METRICS).read_text()) == json.loads(rundir.metrics_json_text(metrics))
    history = rundir.read_history(run)
    assert len(history) == 2 and all("val_AP50" in r and "val_AP" in r for r in history)
    examples = np.load(run / rundir.EXAMPLES)
    assert examples["images"].dtype == np.uint8 and examples["images"].shape[1:] == (3, 192, 192)
    assert len(examples["captions"]) == len(examples["images"]) > 0
    page = (run / "report.html").read_text()
    assert "Precision" in page and "true boxes green" in page


def test_detect_run_files_reproduce_its_metrics_in_other_tools(detect_run: visionbench.TrainResult,
                                                               tmp_path: Path) -> None:
    # The run's COCO results and ground truth, evaluated from the files (pycocotools' own reading
    # of them), give the run's numbers bit for bit: boxes are written unrounded.
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    run = detect_run.run_dir
    rows = json.loads((run / PREDICTIONS_JSON).read_text())
    assert rows and {"image_id", "category_id", "bbox", "score"} <= set(rows[0])
    # One set of category ids everywhere a user reads them: the dataset's own (1..3 in its file).
    file_ids = [c["id"] for c in json.loads((run / GROUND_TRUTH_JSON).read_text())["categories"]]
    assert detect_run.metrics["per_class"]["category_id"] == file_ids == [1, 2, 3]
    gt = COCO(str(run / GROUND_TRUTH_JSON))
    evaluation = COCOeval(gt, gt.loadRes(str(run / PREDICTIONS_JSON)), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    for name, value in zip(DETECTION_NAMES, evaluation.stats, strict=True):
        ours = detect_run.metrics[name]["value"]
        assert (value == -1 and math.isnan(ours)) or value == ours, (name, value, ours)
    again = visionbench.evaluate(task="detect", gt=run / GROUND_TRUTH_JSON, pred=run / PREDICTIONS_JSON,
                                 out=tmp_path / "eval", quiet=True)
    for name in DETECTION_NAMES:
        ours, theirs = detect_run.metrics[name]["value"], again.metrics[name]["value"]
        assert (math.isnan(ours) and math.isnan(theirs)) or ours == theirs, (name, ours, theirs)


def test_image_errors_count_matches_by_class_iou_and_score() -> None:
    target = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]),
              "labels": torch.tensor([0, 1, 1]), "iscrowd": torch.tensor([False, False, True])}
    prediction = {"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 31], [60, 60, 70, 70]]),
                  "scores": torch.tensor([0.9, 0.8, 0.7, 0.1]), "labels": torch.tensor([0, 0, 0, 1])}
    # a hit; a duplicate (false positive); a box of the wrong class (false positive, and a miss);
    # a low score (not counted); the crowd box is neither matched nor missed.
    assert image_errors(prediction, target, 0.5) == (1, 2, 1)
    assert image_errors(prediction, target, 0.0) == (1, 3, 1)


# ----------------------------------------------------------------------------------- segmentation


def test_segment_run_writes_metrics_masks_and_report(segment_run: visionbench.TrainResult, masks_spec: str,
                                                     tmp_path: Path) -> None:
    run, metrics = segment_run.run_dir, segment_run.metrics
    assert metrics["task"] == "segment" and metrics["classes"] == ["background", "circle", "square", "triangle"]
    for name in SEGMENTATION_NAMES:
        assert set(metrics[name]) >= {"value", "ci95"}
    assert "mean over images" in metrics["mIoU_per_image"]["definition"]
    history = rundir.read_history(run)
    assert len(history) == 2 and all("val_mIoU" in r and math.isfinite(r["val_loss"]) for r in history)
    written = sorted(p.name for p in (run / MASKS_DIR).iterdir())
    assert len(written) == metrics["num_samples"] > 0
    with Image.open(run / MASKS_DIR / written[0]) as image:
        assert image.mode == "P" and image.getpalette()[:12] == palette()[:4].flatten().tolist()
    # The predicted PNGs evaluated against the true masks give the run's numbers exactly.
    again = visionbench.evaluate(task="segment", gt=Path(masks_spec.partition(":")[2]) / "masks", pred=run / MASKS_DIR,
                                 num_classes=4, out=tmp_path / "eval", quiet=True, allow_partial=True)
    assert len(again.metrics["unpaired"]["ground_truth_only"]) == 48 - metrics["num_samples"]
    assert again.metrics["confusion_matrix"] == metrics["confusion_matrix"]
    for name in ("mIoU", "fwIoU", "pixel_accuracy", "dice_mean", "mIoU_per_image"):
        assert again.metrics[name]["value"] == metrics[name]["value"]
    page = (run / "report.html").read_text()
    assert "IoU" in page and "true mask" in page


def test_segment_monitor_val_loss_keeps_the_lowest_loss_epoch(masks_spec: str, tmp_path: Path) -> None:
    from safetensors import safe_open

    run = visionbench.train(data=masks_spec, out=tmp_path / "run", monitor="val_loss", **dict(SEGMENT, epochs=3)).run_dir
    losses = [r["val_loss"] for r in rundir.read_history(run)]
    with safe_open(str(run / rundir.BEST_WEIGHTS), "pt") as best:
        assert int(best.metadata()["epoch"]) == losses.index(min(losses)) + 1  # epochs are numbered from 1


def test_palette_is_the_voc_colour_map() -> None:
    colours = palette()
    assert colours[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert colours[15].tolist() == [192, 128, 128]  # VOC's "person"
    assert len({tuple(c) for c in colours.tolist()}) == 256


# ----------------------------------------------------------------------------------- predict


def test_predict_draws_boxes_and_writes_masks(detect_run: visionbench.TrainResult,
                                              segment_run: visionbench.TrainResult, coco_spec: str,
                                              masks_spec: str, tmp_path: Path) -> None:
    images = sorted((Path(coco_spec.partition(":")[2]).parent / "images").glob("*.png"))[:3]
    result = visionbench.predict(detect_run.run_dir, images, out=tmp_path / "boxes", score_threshold=0.05)
    assert [Path(r["file"]).name for r in result.rows] == [p.name for p in images]
    listed = json.loads((tmp_path / "boxes" / "detections.json").read_text())
    assert listed == result.rows
    for path in images:
        with Image.open(tmp_path / "boxes" / path.name) as drawn:
            assert drawn.size == (64, 64)
    masks = sorted((Path(masks_spec.partition(":")[2]) / "images").glob("*.png"))[:2]
    result = visionbench.predict(segment_run.run_dir, [masks[0].parent], out=tmp_path / "masks")
    assert len(result.rows) == 48
    with Image.open(tmp_path / "masks" / masks[0].name) as mask:
        assert mask.mode == "P" and mask.size == (64, 64)
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 1, 2, 3}
    assert (tmp_path / "masks" / (masks[0].stem + "_overlay.png")).is_file()


def _without_training_data(run: Path, copy: Path) -> Path:
    """A copy of ``run`` whose config names training data that no longer exists."""
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("predict"))
    config = yaml.safe_load((copy / "config.yaml").read_text())
    kind, _, _ = config["data"].partition(":")
    config["data"] = f"{kind}:{copy / 'moved-away'}"
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    return copy


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_predict_needs_no_training_data(task: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # inference.json carries the classes, input size and normalisation, so a run predicts after its
    # data has moved, and predicts exactly what it predicts with the data in place.
    run = request.getfixturevalue(f"{task}_run").run_dir
    spec = read_inference_spec(run)
    assert spec is not None and spec.task == task and spec.classes
    assert (spec.mean is None) == (task == "detect")  # torchvision's detectors normalise their own input
    source = request.getfixturevalue("coco_spec" if task == "detect" else "masks_spec")
    folder = Path(source.partition(":")[2])
    images = sorted(((folder.parent if task == "detect" else folder) / "images").glob("*.png"))[:3]
    here = visionbench.predict(run, images, out=tmp_path / "here", score_threshold=0.05)
    moved = _without_training_data(run, tmp_path / "run")
    away = visionbench.predict(moved, images, out=tmp_path / "away", score_threshold=0.05)
    assert [dict(r, mask=None) for r in away.rows] == [dict(r, mask=None) for r in here.rows]
    for path in images:
        name = path.name if task == "detect" else path.stem + ".png"
        assert (tmp_path / "away" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()
    # A run made before inference.json rebuilds the data, and so needs it.
    (moved / "inference.json").unlink()
    with pytest.raises(ValueError, match="moved-away"):
        visionbench.predict(moved, images, out=tmp_path / "old")


def test_predict_classify_and_bad_inputs(tmp_path: Path) -> None:
    run = visionbench.train(data="digits", model="mlp", epochs=1, out=tmp_path / "digits", quiet=True).run_dir
    image = tmp_path / "seven.png"
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(image)
    result = visionbench.predict(run, [image], out=tmp_path / "pred")
    assert len(result.rows[0]["top"]) == 5 and result.rows[0]["pred"] in [str(k) for k in range(10)]
    assert (tmp_path / "pred" / "predictions.csv").read_text().startswith("file,pred,probability,top1")
    with pytest.raises(ValueError, match="does not exist"):
        visionbench.predict(run, [tmp_path / "missing.png"])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png"):
        visionbench.predict(run, [tmp_path / "broken.png"])
    spec = read_inference_spec(run)
    assert spec is not None and spec.in_channels == 1 and spec.native_size == (8, 8) and len(spec.classes) == 10


def test_predict_classify_needs_no_training_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "pets" / name / f"{i}.png")
    run = visionbench.train(data=f"folder:{tmp_path / 'pets'}", model="mlp", epochs=1, image_size=16, batch_size=4,
                            val_fraction=0.25, test_fraction=0.25, out=tmp_path / "run", quiet=True).run_dir
    spec = read_inference_spec(run)
    assert spec is not None and spec.classes == ("cat", "dog") and spec.image_size == (16, 16)
    images = sorted((tmp_path / "pets" / "dog").glob("*.png"))[:3]
    here = visionbench.predict(run, images, out=tmp_path / "here")
    moved = _without_training_data(run, tmp_path / "moved")
    assert visionbench.predict(moved, images, out=tmp_path / "away").rows == here.rows
    raw = json.loads((moved / rundir.INFERENCE).read_text())
    (moved / rundir.INFERENCE).write_text(json.dumps(dict(raw, task="detect")))
    with pytest.raises(ValueError, match="is for task 'detect'"):
        visionbench.predict(moved, images, out=tmp_path / "wrong")


# ----------------------------------------------------------------------------------- resume and DDP


def _visionbench(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "visionbench", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_sigkill_mid_epoch_then_resume_gives_bitwise_equal_weights(task: str, tmp_path: Path, coco_spec: str,
                                                                   masks_spec: str) -> None:
    data = coco_spec if task == "detect" else masks_spec
    args = ["train", "--task", task, "--data", data, "--epochs", "2", "--batch-size", "8", "--checkpoint-every", "2",
            "--augment", "standard", "--image-size", "64", "--ema", "--quiet", "--device", "cpu", "--seed", "5"]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    reference_process = _visionbench(*args, "--out", str(reference))
    process = _visionbench(*args, "--out", str(interrupted))
    deadline, killed = time.monotonic() + 300, None
    while time.monotonic() < deadline and process.poll() is None:
        state = interrupted / rundir.LAST_STATE
        progress = ckpt.load_state(state)["progress"] if state.exists() else None
        if progress and progress["epoch"] == 1 and progress["step_in_epoch"] > 0:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed = progress
            break
        time.sleep(0.01)
    assert killed is not None, "the run ended before a mid-epoch checkpoint was seen"
    _finish(reference_process)
    _finish(_visionbench("train", "--resume", str(interrupted), "--quiet", "--device", "cpu"))
    for name in (rundir.LAST_WEIGHTS, rundir.BEST_WEIGHTS):
        expected, actual = load_file(str(reference / name)), load_file(str(interrupted / name))
        for key in expected:
            assert torch.equal(expected[key], actual[key]), f"{name}:{key} differs after resume"
    strip = lambda run: [{k: v for k, v in r.items() if k != "seconds"} for r in rundir.read_history(run)]  # noqa: E731
    assert strip(reference) == strip(interrupted)
    assert json.loads((reference / rundir.METRICS).read_text()) == json.loads((interrupted / rundir.METRICS).read_text())


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_torchrun_two_processes_matches_single_process_evaluation(task: str, tmp_path: Path, coco_spec: str,
                                                                  masks_spec: str, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    # Exact equality needs each image's forward pass to be the same computation in both evaluations:
    # one image per batch and one thread (other batch shapes or thread counts round differently on
    # some CPUs, which reorders near-tied detection scores and flips near-tied pixels).
    data = coco_spec if task == "detect" else masks_spec
    trained = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "visionbench",
         "train", "--task", task, "--data", data, "--epochs", "1", "--batch-size", "8", "--eval-batch-size", "1",
         "--out", str(trained), "--json", "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the run's --threads auto: 1, as in each torchrun process
    single = visionbench.evaluate(trained, out=tmp_path / "single", device="cpu", quiet=True).metrics
    single = json.loads(rundir.metrics_json_text(single))  # NaN as JSON's null, as printed
    assert printed["num_samples"] == single["num_samples"]
    names = DETECTION_NAMES if task == "detect" else SEGMENTATION_NAMES
    for name in names:
        assert printed[name]["value"] == single[name]["value"], name
    assert printed["confusion_matrix"] == single["confusion_matrix"]


# ----------------------------------------------------------------------------------- compare


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_compare_detection_and_segmentation_runs(task: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    first = request.getfixturevalue(f"{task}_run")
    data = request.getfixturevalue("coco_spec" if task == "detect" else "masks_spec")
    options = dict(DETECT if task == "detect" else SEGMENT, epochs=1, seed=1)
    second = visionbench.train(data=data, out=tmp_path / "second", **options)
    result = visionbench.compare([first.run_dir, second.run_dir], out=tmp_path / "cmp", quiet=True, resamples=200)
    compared = result.metrics if hasattr(result, "metrics") else result
    pair = compared["pairs"][0]
    names = DETECTION_NAMES if task == "detect" else ("mIoU", "fwIoU", "pixel_accuracy", "mean_class_accuracy",
                                                       "dice_mean")
    for name in names:
        entry = pair["metrics"][name]
        a, b = first.metrics[name]["value"], second.metrics[name]["value"]
        if not math.isnan(a):
            assert entry["a"] == a and entry["b"] == b  # compare reads the runs' files: the same numbers
            low, high = entry["ci95"]
            assert low <= entry["diff"] + 1e-9 and entry["diff"] <= high + 1e-9 and 0 < entry["p_value"] <= 1
    assert "mcnemar" not in pair and ("AP" if task == "detect" else "mIoU") in pair["verdict"]
    assert (tmp_path / "cmp" / "compare.html").is_file()
    with pytest.raises(ValueError, match="one task"):
        visionbench.compare([first.run_dir, visionbench.train(data="digits", model="mlp", epochs=1, quiet=True,
                                                              out=tmp_path / "digits").run_dir], out=tmp_path / "x")


def test_detect_with_image_size_is_measured_on_the_stored_images(coco_spec: str, tmp_path: Path) -> None:
    # The model sees 96x96 images; the ground truth written and evaluated is the file's 64x64 boxes,
    # and the predictions are mapped back onto the stored pixels.
    run = visionbench.train(data=coco_spec, out=tmp_path / "run", image_size=96, **dict(DETECT, epochs=1)).run_dir
    written = json.loads((run / GROUND_TRUTH_JSON).read_text())
    source = json.loads(Path(coco_spec.partition(":")[2]).read_text())
    by_name = {image["file_name"]: image["id"] for image in source["images"]}
    boxes = {}
    for annotation in source["annotations"]:
        boxes.setdefault(annotation["image_id"], []).append(annotation["bbox"])
    assert {(image["height"], image["width"]) for image in written["images"]} == {(64, 64)}
    for image in written["images"]:
        expected = sorted(boxes.get(by_name[image["file_name"]], []))
        got = sorted(a["bbox"] for a in written["annotations"] if a["image_id"] == image["id"])
        assert np.allclose(got, expected, atol=1e-4)
    predicted = np.array([row["bbox"] for row in json.loads((run / PREDICTIONS_JSON).read_text())])
    if len(predicted):
        assert predicted[:, 0].min() >= 0 and (predicted[:, 0] + predicted[:, 2]).max() <= 64 + 1e-3
