"""Detection class ids: what a user reads (``metrics.json`` per-class ids, ``ground_truth.json``,
``predictions.json``) uses the dataset's own category ids, here 3, 7, 9; the contiguous class
indices stay internal."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

import visionbench
from visionbench.data.detection_formats import load_detection_data
from visionbench.engine.detect import (
    GROUND_TRUTH_JSON,
    PREDICTIONS_JSON,
    _evaluator,
    category_ids,
    write_detection_outputs,
)
from visionbench.engine.file_evaluation import detection_metrics, evaluate_detection_files
from visionbench.engine.inference_spec import read_inference_spec

CATEGORIES = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 9, "name": "owl"}]


def _coco_dataset(root: Path, count: int = 10) -> Path:
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(count):
        Image.new("RGB", (40, 40), (10 * i, 0, 0)).save(root / "images" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 40, "height": 40})
        category = CATEGORIES[i % 3]["id"]
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": category, "bbox": [4, 4, 20, 16],
                            "area": 320.0, "iscrowd": 0})
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return path


def test_a_runs_outputs_and_metrics_use_the_datasets_category_ids(tmp_path: Path) -> None:
    data = load_detection_data(f"coco:{_coco_dataset(tmp_path / 'coco')}", seed=0, val_fraction=0.2,
                               test_fraction=0.4)
    assert category_ids(data) == [3, 7, 9]
    assert category_ids(SimpleNamespace(test=[], train=[], classes=["a", "b"])) == [1, 2]  # shapes: index + 1

    # The test split's predictions as the training loop makes them: class indices 0..K-1.
    outputs = []
    for index in range(len(data.test)):
        _, target = data.test[index]
        boxes = torch.as_tensor(target["boxes"]).float()
        prediction = {"boxes": boxes + 1, "scores": torch.full((len(boxes),), 0.9), "labels": target["labels"]}
        outputs.append((index, prediction, {**target, "image_size": (40, 40)}))
    evaluator = _evaluator(len(data.classes))
    evaluator.update([p for _, p, _ in outputs], [t for _, _, t in outputs])
    metrics = detection_metrics(evaluator, dict(enumerate(data.classes)), category_ids=category_ids(data),
                                resamples=0)
    assert metrics["per_class"]["category_id"] == [3, 7, 9] and metrics["classes"] == ["cat", "dog", "owl"]

    write_detection_outputs(tmp_path, outputs, SimpleNamespace(data=data), list(data.classes))
    truth = json.loads((tmp_path / GROUND_TRUTH_JSON).read_text())
    assert truth["categories"] == CATEGORIES
    expected = {CATEGORIES[int(label)]["id"] for _, _, t in outputs for label in t["labels"]}
    assert {a["category_id"] for a in truth["annotations"]} == expected
    assert {r["category_id"] for r in json.loads((tmp_path / PREDICTIONS_JSON).read_text())} == expected
    # The files evaluated as any tool's: the same ids and numbers.
    again = evaluate_detection_files(tmp_path / GROUND_TRUTH_JSON, tmp_path / PREDICTIONS_JSON, resamples=0)
    assert again["per_class"]["category_id"] == metrics["per_class"]["category_id"]
    assert np.allclose(np.array(again["per_class"]["AP"], float), np.array(metrics["per_class"]["AP"], float),
                       equal_nan=True)


def test_predict_writes_the_datasets_category_ids(tmp_path: Path) -> None:
    # detections.json labels are the ids of the run's ground_truth.json (3, 7, 9), not the model's
    # class indices 0..2, with the class names that go with them there.
    spec = _coco_dataset(tmp_path / "coco", count=12)
    run = visionbench.train(data=f"coco:{spec}", task="detect", epochs=1, batch_size=4, eval_batch_size=8,
                            val_fraction=0.25, test_fraction=0.25, device="cpu", quiet=True, out=tmp_path / "run").run_dir
    assert read_inference_spec(run).category_ids == (3, 7, 9)
    images = sorted((tmp_path / "coco" / "images").glob("*.png"))[:3]
    visionbench.predict(run, images, out=tmp_path / "pred", score_threshold=0.0)
    rows = json.loads((tmp_path / "pred" / "detections.json").read_text())
    categories = json.loads((run / GROUND_TRUTH_JSON).read_text())["categories"]
    assert categories == CATEGORIES
    found = [{"id": i, "name": n} for r in rows for i, n in zip(r["labels"], r["classes"], strict=True)]
    assert found and all(item in categories for item in found)
