"""The run's ``inference.json``: written and read back exactly, and a damaged file is an error that
names the file, the field and how to recover (never a traceback from deep inside predict)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionbench.engine import rundir
from visionbench.engine.inference_spec import InferenceSpec, read_inference_spec, write_inference_spec

SPEC = InferenceSpec(task="segment", classes=("background", "circle"), in_channels=3, image_size=(64, 48),
                     native_size=None, mean=(0.1, 0.2, 0.30000001192092896), std=(0.5, 0.25, 0.125))


def test_spec_round_trips_exactly(tmp_path: Path) -> None:
    write_inference_spec(tmp_path, SPEC)
    assert read_inference_spec(tmp_path) == SPEC
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file, then renamed
    detector = InferenceSpec(task="detect", classes=("a",), in_channels=1, image_size=None, native_size=None,
                             mean=None, std=None)
    write_inference_spec(tmp_path, detector)
    assert read_inference_spec(tmp_path) == detector and detector.num_classes == 1


def test_a_run_without_the_file_reads_as_none(tmp_path: Path) -> None:
    assert read_inference_spec(tmp_path) is None


def test_detection_category_ids_round_trip_and_old_runs_read_them_from_ground_truth(tmp_path: Path) -> None:
    detector = InferenceSpec(task="detect", classes=("cat", "dog"), in_channels=3, image_size=None, native_size=None,
                             mean=None, std=None, category_ids=(3, 7))
    write_inference_spec(tmp_path, detector)
    assert read_inference_spec(tmp_path) == detector
    # An inference.json from before the field: the ids of the run's ground_truth.json, else unknown (None).
    path = tmp_path / rundir.INFERENCE
    raw = json.loads(path.read_text())
    del raw["category_ids"]
    path.write_text(json.dumps(raw))
    assert read_inference_spec(tmp_path).category_ids is None
    truth = {"images": [], "annotations": [], "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]}
    (tmp_path / rundir.GROUND_TRUTH).write_text(json.dumps(truth))
    assert read_inference_spec(tmp_path) == detector
    truth["categories"][1]["name"] = "owl"  # another run's classes: not these ids
    (tmp_path / rundir.GROUND_TRUTH).write_text(json.dumps(truth))
    assert read_inference_spec(tmp_path).category_ids is None
    (tmp_path / rundir.GROUND_TRUTH).write_text("{")
    assert read_inference_spec(tmp_path).category_ids is None


@pytest.mark.parametrize(("change", "message"), [
    ({"task": "track"}, "'task' is 'track'"),
    ({"classes": []}, "'classes' must be a non-empty list"),
    ({"classes": ["a", 2]}, "'classes' must be a non-empty list"),
    ({"in_channels": 4}, "'in_channels' is 4"),
    ({"image_size": [64]}, "'image_size' is \\[64\\]"),
    ({"image_size": [64, 0]}, "'image_size' is \\[64, 0\\]"),
    ({"native_size": [True, 8]}, "'native_size'"),
    ({"mean": [0.1, 0.2]}, "'mean' is \\[0.1, 0.2\\]"),
    ({"std": [0.5, 0.0, 0.1]}, "every value must be positive"),
    ({"std": [0.5, float("nan"), 0.1]}, "'std'"),
    ({"mean": None}, "'mean' and 'std' must both be given or both be null"),
    ({"category_ids": [3]}, "'category_ids' is \\[3\\], not null or one distinct integer id per class"),
    ({"category_ids": [3, 3]}, "'category_ids' is \\[3, 3\\]"),
    ({"category_ids": [3, True]}, "'category_ids'"),
])
def test_a_bad_field_is_named(tmp_path: Path, change: dict, message: str) -> None:
    write_inference_spec(tmp_path, SPEC)
    path = tmp_path / rundir.INFERENCE
    raw = json.loads(path.read_text())
    raw.update(change)
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=message) as error:
        read_inference_spec(tmp_path)
    assert str(path) in str(error.value) and "delete it" in str(error.value)


@pytest.mark.parametrize("text", ["", "{\"task\": ", "[1, 2]", "\udcff"])
def test_not_json_or_not_an_object_is_named(tmp_path: Path, text: str) -> None:
    path = tmp_path / rundir.INFERENCE
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match="inference.json") as error:
        read_inference_spec(tmp_path)
    assert "Restore it" in str(error.value)
