"""Hostile inputs for the text readers, generated in a temporary folder (no binary blobs).

Each entry point has a list of :class:`Case`: ``build(folder)`` writes the input and returns what
the entry point is called with; ``expect`` is ``"error"`` (a ``ValueError`` whose message names
``file`` and every marker of ``where``) or ``"ok"`` (accepted, and ``check(result)`` holds).
``bug`` marks a case that reveals a defect (the test keeps the expected outcome, strictly xfailed).
Binary formats (NPZ, IDX, CIFAR, masks) are in :mod:`tests.hostile.corpus_binary`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class Case:
    """One hostile input and its expected outcome (see the module docstring)."""

    id: str
    build: Callable[[Path], Any]
    expect: str = "error"
    where: tuple[str, ...] = ()
    file: str | None = None  # the file name the message must contain; default: the built path's name
    check: Callable[[Any], bool] | None = None
    bug: str | None = None


def error(id: str, build: Callable[[Path], Any], *where: str, file: str | None = None, bug: str | None = None) -> Case:
    """A case that must raise a ValueError naming the file and ``where``."""
    return Case(id, build, "error", tuple(where), file, None, bug)


def ok(id: str, build: Callable[[Path], Any], check: Callable[[Any], bool], *, bug: str | None = None) -> Case:
    """A case that must be accepted, with ``check(result)`` true."""
    return Case(id, build, "ok", (), None, check, bug)


def writer(name: str, content: str | bytes) -> Callable[[Path], Path]:
    """A build function writing ``content`` (text as UTF-8) to ``folder/name``."""
    def build(folder: Path) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path
    return build


def png_bytes(mode: str = "L", size: tuple[int, int] = (4, 4), value: Any = 0, fmt: str = "PNG") -> bytes:
    """A small image encoded by Pillow."""
    buffer = io.BytesIO()
    Image.new(mode, size, value).save(buffer, format=fmt)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ predictions CSV / JSON

_CSV_OK = "id,label,pred\na,0,1\nb,2,2\n"


def prediction_text_cases() -> list[Case]:
    """read_predictions_file on CSV and JSON text."""
    c, j = "p.csv", "p.json"
    labels = lambda t: t.labels.tolist()  # noqa: E731
    cases = [
        ok("csv-valid", writer(c, _CSV_OK), lambda t: t.ids == ["a", "b"] and t.preds.tolist() == [1, 2]),
        ok("csv-bom", writer(c, "\ufeff" + _CSV_OK), lambda t: t.ids == ["a", "b"]),
        ok("csv-crlf", writer(c, _CSV_OK.replace("\n", "\r\n")), lambda t: labels(t) == [0, 2]),
        ok("csv-blank-lines", writer(c, "id,label,pred\n\na,1,1\n\n \nb,0,0\n"), lambda t: labels(t) == [1, 0]),
        ok("csv-header-spaces", writer(c, " id , label , pred \na,1,0\n"), lambda t: t.preds.tolist() == [0]),
        ok("csv-label-1.0", writer(c, "label,pred\n1.0,0\n"), lambda t: labels(t) == [1]),
        ok("csv-probs", writer(c, "label,prob_0,prob_1\n1,0.25,0.75\n"), lambda t: t.preds.tolist() == [1]),
        ok("csv-quoted-newline-id", writer(c, 'id,label,pred\n"a\nb",1,1\n'), lambda t: t.ids == ["a\nb"]),
        error("csv-empty", writer(c, ""), ":1:"),
        error("csv-bom-only", writer(c, "\ufeff"), ":1:"),
        error("csv-header-only", writer(c, "id,label,pred\n"), "no predictions"),
        error("csv-no-label", writer(c, "id,pred\na,1\n"), ":1:", "label"),
        error("csv-no-pred", writer(c, "id,label\na,1\n"), ":1:"),
        error("csv-extra-field", writer(c, "id,label,pred\na,1,1\nb,1,1,9\n"), ":3:"),
        error("csv-missing-field", writer(c, "id,label,pred\na,1,1\nb,1\n"), ":3:"),
        error("csv-label-word", writer(c, "id,label,pred\na,x,1\n"), ":2:"),
        error("csv-label-negative", writer(c, "id,label,pred\na,-1,1\n"), ":2:"),
        error("csv-label-nan", writer(c, "id,label,pred\na,nan,1\n"), ":2:"),
        error("csv-label-inf", writer(c, "id,label,pred\na,inf,1\n"), ":2:"),
        error("csv-label-1e400", writer(c, "id,label,pred\na,1e400,1\n"), ":2:"),
        error("csv-label-2**63", writer(c, f"id,label,pred\na,{2**63},1\n"), ":2:"),
        error("csv-label-empty", writer(c, "id,label,pred\na,,1\n"), ":2:"),
        error("csv-pred-fraction", writer(c, "id,label,pred\na,1,0.5\n"), ":2:"),
        error("csv-prob-nan", writer(c, "label,prob_0,prob_1\n1,nan,0.5\n"), ":2:"),
        error("csv-prob-inf", writer(c, "label,prob_0,prob_1\n1,inf,0\n"), ":2:"),
        error("csv-prob-negative", writer(c, "label,prob_0,prob_1\n1,-0.5,1.5\n"), ":2:"),
        error("csv-prob-sum", writer(c, "label,prob_0,prob_1\n1,0.5,0.5\n0,0.1,0.1\n"), ":3:"),
        error("csv-prob-gap", writer(c, "label,prob_0,prob_2\n1,0.5,0.5\n"), ":1:"),
        error("csv-prob-bad-name", writer(c, "label,prob_a,prob_1\n1,0.5,0.5\n"), ":1:"),
        error("csv-one-prob", writer(c, "label,prob_0\n0,1\n"), ":2:"),
        error("csv-too-many-classes", writer(c, "label," + ",".join(f"prob_{k}" for k in range(16_385)) + "\n0,1"
                                              + ",0" * 16_384 + "\n"), ":"),
        error("csv-non-utf8-line-3", writer(c, b"id,label,pred\na,1,1\n\xff\xfe,0,0\n"), ":3:"),
        error("csv-field-too-long", writer(c, "id,label,pred\n" + "x" * 200_000 + ",1,1\n"), ":2:"),
        error("csv-unterminated-quote", writer(c, 'id,label,pred\n"a,1,1\n'), ":"),
        error("csv-duplicate-id", writer(c, "id,label,pred\na,1,1\na,0,0\n"), ":3:"),
        error("csv-duplicate-label-column", writer(c, "id,label,label,pred\na,0,1,1\n"), ":1:"),
        ok("json-records", writer(j, json.dumps([{"id": "a", "label": 1, "probs": [0.2, 0.8]}])),
           lambda t: t.preds.tolist() == [1]),
        ok("json-columns", writer(j, json.dumps({"label": [1, 0], "pred": [1, 1]})), lambda t: t.ids == ["0", "1"]),
        ok("json-bom", writer(j, "\ufeff" + json.dumps([{"label": 0, "pred": 0}, {"label": 1, "pred": 1}])),
           lambda t: labels(t) == [0, 1]),
        ok("json-label-string-number", writer(j, json.dumps([{"label": "3", "pred": 3}])), lambda t: labels(t) == [3]),
        error("json-empty", writer(j, ""), ":1:"),
        error("json-truncated", writer(j, '[{"label": 1, "pred"'), ":1:"),
        error("json-nested-deep", writer(j, "[" * 100_000 + "]" * 100_000), ":1:"),
        error("json-scalar", writer(j, "5"), ":1:"),
        error("json-string", writer(j, '"label"'), ":1:"),
        error("json-non-utf8", writer(j, b'[{"label": 1, "pred": 1, "id": "\xff"}]'), ":1:"),
        error("json-record-not-object", writer(j, '[{"label": 1, "pred": 1}, 7]'), "record 1"),
        error("json-record-no-label", writer(j, '[{"label": 1, "pred": 1}, {"pred": 1}]'), "record 1"),
        error("json-label-nan", writer(j, '[{"label": NaN, "pred": 1}]'), "record 0"),
        error("json-label-1e400", writer(j, '[{"label": 1e400, "pred": 1}]'), "record 0"),
        error("json-label-2**64", writer(j, f'[{{"label": {2**64}, "pred": 1}}]'), "record 0"),
        error("json-label-list", writer(j, '[{"label": [1], "pred": 1}]'), "record 0"),
        error("json-label-null", writer(j, '[{"label": null, "pred": 1}]'), "record 0"),
        error("json-label-true", writer(j, '[{"label": true, "pred": 1}]'), "record 0"),
        error("json-probs-scalar", writer(j, '[{"label": 1, "probs": 0.5}]'), "record 0"),
        error("json-probs-string", writer(j, '[{"label": 1, "probs": "0.5"}]'), "record 0"),
        error("json-probs-object", writer(j, '[{"label": 1, "probs": {"0": 0.3, "1": 0.7}}]'), "record 0"),
        error("json-pred-missing-in-second", writer(j, '[{"label": 1, "pred": 1}, {"label": 0, "probs": [1, 0]}]'),
              "record 1"),
        error("json-columns-label-scalar", writer(j, '{"label": 1, "pred": [1]}'), "label"),
        error("json-columns-length", writer(j, '{"label": [1, 0], "pred": [1]}'), "pred"),
        error("json-columns-id-scalar", writer(j, '{"label": [1], "pred": [1], "id": "a"}'), "id"),
        error("json-columns-empty", writer(j, '{"label": [], "pred": []}'), "no predictions"),
        error("json-columns-probs-scalars", writer(j, '{"label": [1], "probs": [0.5]}'), "record 0"),
        error("json-duplicate-id", writer(j, '[{"id": 1, "label": 1, "pred": 1}, {"id": "1", "label": 0, "pred": 0}]'),
              "record 1"),
        error("json-probs-ragged", writer(j, '[{"label": 1, "probs": [0.5, 0.5]}, {"label": 0, "probs": [1, 0, 0]}]'),
              "record 1"),
        error("wrong-extension", writer("p.txt", _CSV_OK)),
    ]
    return cases


# ------------------------------------------------------------------------------------ COCO ground truth

def coco_data(**changes: Any) -> dict[str, Any]:
    """A valid COCO instances dict (2 images, 2 annotations, 2 categories) with ``changes`` applied;
    a key ``"ann0"`` / ``"img0"`` / ``"cat0"`` merges into the first record of that list."""
    data: dict[str, Any] = {
        "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8},
                   {"id": 2, "file_name": "b.png", "width": 8, "height": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 3]},
                        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 4, 4]}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    for key, value in changes.items():
        if key in ("ann0", "img0", "cat0"):
            section = {"ann0": "annotations", "img0": "images", "cat0": "categories"}[key]
            record = data[section][0]
            for field, new in value.items():
                if new is _DROP:
                    record.pop(field, None)
                else:
                    record[field] = new
        else:
            data[key] = value
    return data


_DROP = object()


def coco_writer(name: str = "gt.json", **changes: Any) -> Callable[[Path], Path]:
    """A build function writing :func:`coco_data` (``allow_nan``: NaN/Infinity written as JSON does)."""
    return writer(name, json.dumps(coco_data(**changes)))


def coco_ground_truth_cases() -> list[Case]:
    """load_coco_ground_truth on a file."""
    a0 = "annotations[0]"
    cases = [
        ok("valid", coco_writer(), lambda g: g.bbox.tolist()[0] == [1, 1, 2, 3] and g.area.tolist() == [6, 16]),
        ok("empty-lists", coco_writer(images=[], annotations=[], categories=[]), lambda g: len(g.image_id) == 0),
        ok("ids-2**63-1", coco_writer(img0={"id": 2**63 - 1}, ann0={"image_id": 2**63 - 1}),
           lambda g: int(g.image_ids[0]) == 2**63 - 1),
        ok("extra-keys", coco_writer(info={"x": [1]}, ann0={"segmentation": [[0, 0, 1, 1]]}),
           lambda g: len(g.ann_id) == 2),
        ok("iscrowd-true", coco_writer(ann0={"iscrowd": True}), lambda g: g.iscrowd.tolist() == [True, False]),
        ok("area-given", coco_writer(ann0={"area": 1.5}), lambda g: g.area.tolist()[0] == 1.5),
        ok("zero-size-box", coco_writer(ann0={"bbox": [1, 1, 0, 0]}), lambda g: g.area.tolist()[0] == 0),
        error("empty-file", writer("gt.json", "")),
        error("whitespace", writer("gt.json", " \n\t")),
        error("truncated", writer("gt.json", json.dumps(coco_data())[:-7])),
        error("non-utf8", writer("gt.json", b'{"images": [], "x": "\xff"}')),
        error("bom", writer("gt.json", "\ufeff" + json.dumps(coco_data()))),
        error("nested-deep", writer("gt.json", '{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")),
        error("top-level-list", writer("gt.json", "[]")),
        error("top-level-string", writer("gt.json", '"images"')),
        error("images-dict", coco_writer(images={}), "images"),
        error("annotations-missing", writer("gt.json", json.dumps({"images": [], "categories": []})), "annotations"),
        error("categories-null", coco_writer(categories=None), "categories"),
        error("image-id-string", coco_writer(img0={"id": "1"}), "images[0]"),
        error("image-id-float", coco_writer(img0={"id": 1.0}), "images[0]"),
        error("image-id-bool", coco_writer(img0={"id": True}), "images[0]"),
        error("image-id-null", coco_writer(img0={"id": None}), "images[0]"),
        error("image-id-missing", coco_writer(img0={"id": _DROP}), "images[0]"),
        error("image-id-2**63", coco_writer(img0={"id": 2**63}), "images[0]"),
        error("image-id-below-int64", coco_writer(img0={"id": -(2**63) - 1}), "images[0]"),
        error("image-not-object", coco_writer(images=[7]), "images[0]"),
        error("image-id-duplicate", coco_writer(images=[{"id": 1}, {"id": 1}]), "images[1]"),
        error("ann-id-duplicate", coco_writer(ann0={"id": 2}), "annotations[1]"),
        error("ann-id-missing", coco_writer(ann0={"id": _DROP}), a0),
        error("ann-image-unknown", coco_writer(ann0={"image_id": 9}), a0, "image_id"),
        error("ann-category-unknown", coco_writer(ann0={"category_id": 9}), a0, "category_id"),
        error("ann-category-id-2**63", coco_writer(ann0={"category_id": 2**63}), a0),
        error("category-negative", coco_writer(cat0={"id": -1}, ann0={"category_id": -1}), "-1"),
        error("bbox-w-negative", coco_writer(ann0={"bbox": [0, 0, -1, 2]}), a0, "bbox"),
        error("bbox-h-negative", coco_writer(ann0={"bbox": [0, 0, 1, -2]}), a0, "bbox"),
        error("bbox-nan", writer("gt.json", json.dumps(coco_data(ann0={"bbox": [float("nan"), 0, 1, 1]}))), a0),
        error("bbox-inf", writer("gt.json", json.dumps(coco_data(ann0={"bbox": [0, 0, float("inf"), 1]}))), a0),
        error("bbox-1e400", writer("gt.json", json.dumps(coco_data()).replace("[1, 1, 2, 3]", "[1, 1, 1e400, 3]")), a0),
        error("bbox-three", coco_writer(ann0={"bbox": [0, 0, 1]}), a0),
        error("bbox-string", coco_writer(ann0={"bbox": "0 0 1 1"}), a0),
        error("bbox-bools", coco_writer(ann0={"bbox": [True, 0, 1, 1]}), a0),
        error("bbox-null", coco_writer(ann0={"bbox": None}), a0),
        error("bbox-nested", coco_writer(ann0={"bbox": [[0, 0], [1, 1]]}), a0),
        error("bbox-missing", coco_writer(ann0={"bbox": _DROP}), a0),
        error("area-negative", coco_writer(ann0={"area": -1}), a0, "area"),
        error("area-string", coco_writer(ann0={"area": "6"}), a0, "area"),
        error("area-nan", writer("gt.json", json.dumps(coco_data(ann0={"area": float("nan")}))), a0, "area"),
        error("iscrowd-2", coco_writer(ann0={"iscrowd": 2}), a0, "iscrowd"),
        error("iscrowd-string", coco_writer(ann0={"iscrowd": "1"}), a0, "iscrowd"),
        error("ignore-list", coco_writer(ann0={"ignore": [0]}), a0, "ignore"),
    ]
    return cases


def coco_results_cases() -> list[Case]:
    """load_coco_results(file, ground truth of :func:`coco_data`)."""
    r = "res.json"
    row = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.9}

    def rows(**change: Any) -> str:
        return json.dumps([row, {**row, **change}])

    return [
        ok("valid", writer(r, json.dumps([row])), lambda res: res.score.tolist() == [0.9]),
        ok("empty-list", writer(r, "[]"), lambda res: len(res.score) == 0),
        ok("score-int", writer(r, rows(score=1)), lambda res: res.score.tolist() == [0.9, 1.0]),
        error("empty-file", writer(r, "")),
        error("truncated", writer(r, rows()[:-3])),
        error("object", writer(r, json.dumps(coco_data()))),
        error("record-scalar", writer(r, "[1]"), "results[0]"),
        error("image-unknown", writer(r, rows(image_id=9)), "results[1]"),
        error("category-unknown", writer(r, rows(category_id=9)), "results[1]"),
        error("image-id-string", writer(r, rows(image_id="1")), "results[1]"),
        error("image-id-2**63", writer(r, rows(image_id=2**63)), "results[1]"),
        error("score-nan", writer(r, rows(score=float("nan"))), "results[1]"),
        error("score-string", writer(r, rows(score="0.5")), "results[1]"),
        error("score-missing", writer(r, json.dumps([row, {k: v for k, v in row.items() if k != "score"}])),
              "results[1]"),
        error("bbox-w-negative", writer(r, rows(bbox=[0, 0, -2, 2])), "results[1]"),
        error("bbox-short", writer(r, rows(bbox=[0, 0, 2])), "results[1]"),
        error("bbox-inf", writer(r, rows(bbox=[0, 0, float("inf"), 2])), "results[1]"),
        error("nested-deep", writer(r, "[" * 100_000 + "]" * 100_000)),
    ]


def coco_dataset_cases() -> list[Case]:
    """read_detection("coco:FILE") with its images folder: the checks beyond the JSON."""
    def layout(data: dict[str, Any], files: dict[str, bytes] | None = None) -> Callable[[Path], str]:
        def build(folder: Path) -> str:
            (folder / "images").mkdir()
            for name, content in (files if files is not None else {"a.png": png_bytes(size=(8, 8)),
                                                                     "b.png": png_bytes(size=(8, 8))}).items():
                (folder / "images" / name).write_bytes(content)
            (folder / "gt.json").write_text(json.dumps(data))
            return f"coco:{folder / 'gt.json'}"
        return build

    def coco_case(id: str, *where: str, bug: str | None = None, **changes: Any) -> Case:
        return error(id, layout(coco_data(**changes)), *where, file="gt.json", bug=bug)

    no_size = {"width": _DROP, "height": _DROP}  # the size is then read from the image header
    return [
        ok("valid", layout(coco_data()), lambda d: len(d) == 2 and d.annotations().records[0].boxes.tolist()
           == [[1, 1, 3, 4]]),
        ok("box-outside-is-clamped", layout(coco_data(ann0={"bbox": [6, 6, 5, 5]})),
           lambda d: d.annotations().records[0].boxes.tolist() == [[6, 6, 8, 8]]),
        ok("size-from-header", layout(coco_data(img0={"width": _DROP, "height": _DROP})),
           lambda d: (d.annotations().records[0].height, d.annotations().records[0].width) == (8, 8)),
        error("top-level-list", lambda folder: f"coco:{writer('gt.json', '[]')(folder)}", file="gt.json"),
        coco_case("file-name-missing", "images[0]", img0={"file_name": _DROP}),
        coco_case("file-name-number", "images[0]", img0={"file_name": 5}),
        coco_case("file-name-empty", "images[0]", img0={"file_name": ""}),
        coco_case("file-name-duplicate", "b.png", images=[{"id": 1, "file_name": "b.png"},
                                                          {"id": 2, "file_name": "b.png"}]),
        coco_case("image-missing", "c.png", img0={"file_name": "c.png"}),
        coco_case("width-zero", "images[0]", img0={"width": 0}),
        coco_case("width-string", "images[0]", img0={"width": "8"}),
        coco_case("width-bool", "images[0]", img0={"width": True}),
        coco_case("no-images", "at least one image", images=[], annotations=[]),
        error("image-corrupt", layout(coco_data(img0=no_size), {"a.png": b"not an image", "b.png": png_bytes()}),
              "a.png", file="a.png"),
        error("image-truncated-header", layout(coco_data(img0=no_size), {"a.png": png_bytes()[:12],
                                                                        "b.png": png_bytes()}), "a.png", file="a.png"),
        coco_case("bbox-w-negative", "annotations[0]", ann0={"bbox": [0, 0, -1, 1]}),
    ]
