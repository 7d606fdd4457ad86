"""Predictions files of any tool: CSV, JSON and NPZ, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from visionbench.data.predictions import read_predictions_file


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_with_preds(tmp_path: Path) -> None:
    table = read_predictions_file(_write_csv(tmp_path / "p.csv", "id,label,pred\na,0,1\nb,2,2\n"))
    assert table.ids == ["a", "b"] and table.labels.tolist() == [0, 2] and table.preds.tolist() == [1, 2]
    assert table.probs is None and table.num_classes == 3


def test_csv_with_probabilities_and_quoted_ids(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "p.csv", 'id,label,prob_0,prob_1\n"x,1",1,0.25,0.75\ny,0,0.9,0.1\n')
    table = read_predictions_file(path)
    assert table.ids == ["x,1", "y"] and table.preds.tolist() == [1, 0]
    assert torch.equal(table.probs, torch.tensor([[0.25, 0.75], [0.9, 0.1]], dtype=torch.float64))


def test_num_classes_for_classes_in_neither_column(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "p.csv", "label,pred\n0,1\n1,1\n")
    assert read_predictions_file(path).num_classes == 2
    assert read_predictions_file(path, num_classes=5).num_classes == 5
    assert read_predictions_file(path).ids == ["0", "1"]  # no id column: row numbers


def test_json_records_and_columns(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps([{"id": "a", "label": 1, "probs": [0.2, 0.8]},
                                                 {"id": "b", "label": 0, "probs": [0.6, 0.4]}]))
    records = read_predictions_file(tmp_path / "r.json")
    assert records.preds.tolist() == [1, 0]
    (tmp_path / "c.json").write_text(json.dumps({"id": ["a", "b"], "label": [1, 0], "pred": [1, 1]}))
    columns = read_predictions_file(tmp_path / "c.json")
    assert columns.preds.tolist() == [1, 1] and columns.probs is None


def test_npz(tmp_path: Path) -> None:
    np.savez(tmp_path / "p.npz", label=np.array([0, 1, 2]), probs=np.eye(3)[[0, 2, 2]], id=np.array(["a", "b", "c"]))
    table = read_predictions_file(tmp_path / "p.npz")
    assert table.preds.tolist() == [0, 2, 2] and table.ids == ["a", "b", "c"]


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "p.npz", label=np.array([0, 1], dtype=object), pred=np.array([0, 1]))
    with pytest.raises(ValueError, match="p.npz"):
        read_predictions_file(tmp_path / "p.npz")


@pytest.mark.parametrize(("text", "match"), [
    ("", r"p\.csv:1: the file is empty"),
    ("id,pred\na,1\n", r"p\.csv:1: .*'label' column"),
    ("id,label\na,1\n", r"p\.csv:1: .*'pred' or prob_0"),
    ("id,label,prob_0,prob_2\na,1,0.5,0.5\n", r"without gaps"),
    ("id,label,pred\na,1,1\nb,1\n", r"p\.csv:3: expected 3 fields"),
    ("id,label,pred\na,1,1\nb,x,1\n", r"p\.csv:3: label must be a class index.*'x'"),
    ("id,label,pred\na,1,-1\n", r"p\.csv:2: pred must be a class index"),
    ("id,label,pred\na,1,1.5\n", r"p\.csv:2: pred must be a class index"),
    ("id,label,prob_0,prob_1\na,1,nan,0.5\n", r"p\.csv:2: probabilities must be finite"),
    ("id,label,prob_0,prob_1\na,1,1.5,0.5\n", r"p\.csv:2: .*softmax"),
    ("id,label,prob_0,prob_1\na,3,0.5,0.5\n", r"p\.csv:2: label 3 is outside the 2 classes"),
    ("id,label,prob_0,prob_1\na,1,0.5,0.5\nb,0,0.3,0.3\n", r"p\.csv:3: probabilities must sum to 1 .*got 0\.6"),
    ("id,label,prob_0,prob_1\na,1,-0.5,1.5\n", r"p\.csv:2: probabilities must be finite and in \[0, 1\]; got -0\.5"),
    ("id,label,prob_0\na,0,1.0\n", r"p\.csv:2: probabilities must give at least 2 classes"),
    ("id,label,pred\na,1,1\na,0,0\n", r"p\.csv:3: id 'a' appears twice"),
    ("id,label,pred\n", r"holds no predictions"),
])
def test_malformed_csv_names_file_line_and_problem(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read_predictions_file(_write_csv(tmp_path / "p.csv", text))


def test_other_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        read_predictions_file(tmp_path / "missing.csv")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(ValueError, match=r"\.csv, \.json or \.npz"):
        read_predictions_file(tmp_path / "p.txt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_predictions_file(tmp_path / "bad.json")
    (tmp_path / "r.json").write_text(json.dumps([{"label": 1, "pred": 1}, {"label": 1}]))
    with pytest.raises(ValueError, match="record 1"):
        read_predictions_file(tmp_path / "r.json")
    path = _write_csv(tmp_path / "k.csv", "label,prob_0,prob_1\n0,0.5,0.5\n")
    with pytest.raises(ValueError, match=r"number of classes \(3, from --num-classes.*does not match the 2 probability columns"):
        read_predictions_file(path, num_classes=3)


def test_probabilities_not_summing_to_one_name_the_record(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps([{"label": 1, "probs": [0.2, 0.8]}, {"label": 0, "probs": [0.2, 0.2]}]))
    with pytest.raises(ValueError, match=r"r\.json:record 1: probabilities must sum to 1"):
        read_predictions_file(tmp_path / "r.json")
    np.savez(tmp_path / "p.npz", label=np.array([0, 1]), probs=np.array([[0.5, 0.5], [0.9, 0.3]]))
    with pytest.raises(ValueError, match=r"p\.npz:row 1: probabilities must sum to 1"):
        read_predictions_file(tmp_path / "p.npz")


def test_a_csv_with_a_byte_order_mark_keeps_its_id_column(tmp_path: Path) -> None:
    """Excel writes UTF-8 CSV with a byte-order mark; it used to glue itself to 'id', silently
    dropping the id column (ids became row numbers)."""
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffid,label,pred\nimg_a,1,1\nimg_b,0,1\n".encode())
    table = read_predictions_file(path)
    assert list(table.ids) == ["img_a", "img_b"]


@pytest.mark.parametrize("content, match", [
    (b"id,label,pred\na,1,1\nb,0,\xff\n", r":3: the file must be UTF-8 text; got byte 0xff"),
    (b"id,label,pred\na,1,1\n" + b'b,0,"' + b"x" * 140_000 + b'"\n', r":3: the CSV cannot be parsed.*131,072"),
])
def test_undecodable_or_oversized_csv_names_the_file_and_line(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=str(path).replace(".", r"\.") + match):
        read_predictions_file(path)


@pytest.mark.parametrize("payload, match", [
    ({"label": 1, "pred": [1]}, r"label: column 'label' must be a list"),
    ({"label": [1, 0], "pred": 1}, r"pred: column 'pred' must be a list"),
])
def test_scalar_json_columns_are_clear_errors(tmp_path: Path, payload: dict, match: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=match):
        read_predictions_file(path)


def test_deeply_nested_json_and_scalar_npz_arrays_are_clear_errors(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_predictions_file(deep)
    npz = tmp_path / "p.npz"
    np.savez(npz, label=np.array(1), pred=np.array([1]))
    with pytest.raises(ValueError, match=r"label: array 'label' must be 1-D"):
        read_predictions_file(npz)


def test_an_absurd_label_is_refused_before_any_allocation(tmp_path: Path) -> None:
    """A label of 1,000,000 tried to allocate a 7.28 TiB confusion matrix (issue 18)."""
    path = _write_csv(tmp_path / "p.csv", "id,label,pred\na,0,1\nb,1000000,1\nc,1,0\n")
    with pytest.raises(ValueError, match=r"p\.csv:3: the number of classes must be at most 16,384; got 1,000,001"):
        read_predictions_file(path)


def test_an_npz_declaring_far_more_than_it_holds_is_refused_before_loading(tmp_path: Path) -> None:
    """A 2 MB NPZ reached 2.8 GB before any check (issue 18): the sizes its headers declare are read
    first, without decompressing anything."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (300_000_000,)})
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("label.npy", header.getvalue() + bytes(4096))
        archive.writestr("pred.npy", header.getvalue() + bytes(4096))
    with pytest.raises(ValueError, match=r"bomb\.npz:1: the arrays must hold at most .*declare 4,800,000,000"):
        read_predictions_file(path)
