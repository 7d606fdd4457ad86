"""Hypothesis fuzzing of the text parsers: a clear ValueError or a result, never another exception
(issue 18). Each test writes its input into one temporary file per example."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from visionbench.config import resolve
from visionbench.data._detection_yolo import _read_yolo_labels
from visionbench.data.predictions import read_predictions_file
from visionbench.metrics.detection import load_coco_ground_truth

# database=None: no .hypothesis folder is written into the working directory
FUZZ = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_CELLS = st.one_of(st.integers(-3, 5).map(str), st.sampled_from(["", "nan", "inf", "-0", "1e400", "0.5", "x", "\ufeff",
                                                                   '"', "a,b", "1.0", " 2 "]),
                   st.text(max_size=6))
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                         st.sampled_from(["id", "label", "pred", "probs", "x"]), inner, max_size=4), max_leaves=20)


def _read_or_refuse(read, path: Path) -> None:
    """Call ``read(path)``: a ValueError must name the file; any other exception propagates (fails)."""
    try:
        read(path)
    except ValueError as error:
        assert path.name in str(error), str(error)


@FUZZ
@given(header=st.lists(st.sampled_from(["id", "label", "pred", "prob_0", "prob_1", "prob_2", "x"]), min_size=1,
                       max_size=5),
       rows=st.lists(st.lists(_CELLS, min_size=0, max_size=6), max_size=5))
def test_predictions_csv(header: list[str], rows: list[list[str]]) -> None:
    text = "\n".join(",".join(cells) for cells in [header, *rows]) + "\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.csv"
        path.write_text(text, encoding="utf-8")
        _read_or_refuse(read_predictions_file, path)


@FUZZ
@given(data=_JSON)
def test_predictions_json(data: object) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        _read_or_refuse(read_predictions_file, path)


_IDS = st.one_of(st.integers(-2, 3), st.just(2**63), st.sampled_from([None, "1", 1.0, True]))
_BOXES = st.one_of(st.lists(st.one_of(st.integers(-2, 5), st.floats(allow_nan=True, allow_infinity=True)),
                            min_size=0, max_size=5), st.sampled_from([None, "0 0 1 1", [[0, 0], [1, 1]]]))
_ANNOTATIONS = st.lists(st.fixed_dictionaries({"id": _IDS, "image_id": _IDS, "category_id": _IDS}, optional={
    "bbox": _BOXES, "area": st.one_of(st.floats(), st.integers(-1, 3), st.just("1")),
    "iscrowd": st.sampled_from([0, 1, 2, True, "1", None])}), max_size=4)


@FUZZ
@given(images=st.lists(st.fixed_dictionaries({"id": _IDS}), max_size=3), annotations=_ANNOTATIONS,
       categories=st.lists(st.fixed_dictionaries({"id": _IDS}), max_size=3), drop=st.sampled_from(
           [None, "images", "annotations", "categories"]))
def test_coco_ground_truth(images: list, annotations: list, categories: list, drop: str | None) -> None:
    data = {"images": images, "annotations": annotations, "categories": categories}
    data.pop(drop, None)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gt.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        _read_or_refuse(load_coco_ground_truth, path)


@FUZZ
@given(lines=st.lists(st.lists(_CELLS, max_size=7).map(" ".join), max_size=5))
def test_yolo_label_lines(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.txt"
        path.write_text("\n".join(lines), encoding="utf-8")
        try:
            labels, boxes = _read_yolo_labels(path, {0: 0, 1: 1})
        except ValueError as error:
            assert "x.txt" in str(error), str(error)
            return
        assert len(labels) == len(boxes) and ((boxes >= 0) & (boxes <= 1)).all()


_YAML_VALUES = st.sampled_from(["3", "0", "-1", "3.5", ".nan", "'3'", "[3]", "{a: 1}", "null", "true", "1e-3",
                                "&a 1", "*a", "!!python/name:os.system", "[", "sgd", "auto", "0.5"])


@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(["epochs", "lr", "optimizer", "threads", "val_fraction", "task",
                                                 "bogus", "batch_size", "1", "<<"]), _YAML_VALUES), max_size=4),
       prefix=st.sampled_from(["", "\ufeff", "- ", "---\n"]))
def test_config_yaml(pairs: list[tuple[str, str]], prefix: str) -> None:
    text = prefix + "".join(f"{key}: {value}\n" for key, value in pairs)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            resolve(path)
        except ValueError as error:  # a clear error names the config file
            assert str(path) in str(error), str(error)
