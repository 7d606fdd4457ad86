"""The vectorised reading of predictions files (visionbench/data/predictions.py) against the
row-by-row reader it stands in for: on every file the fast path accepts, both give the same table
(ids, labels, predictions, probabilities bit for bit, K); clean files do take the fast path; and
Parquet files read as the same table as the CSV of their rows."""

from __future__ import annotations

import io
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visionbench.data import predictions as P
from visionbench.data.predictions import read_predictions_file

FAST = settings(max_examples=40, deadline=None, database=None)
_ID_CHARS = st.characters(blacklist_characters=',"\r\n\x00', blacklist_categories=("Cs",))


def _same(a: P.PredictionTable, b: P.PredictionTable) -> bool:
    probs_equal = (a.probs is None and b.probs is None) or (
        a.probs is not None and b.probs is not None and torch.equal(a.probs, b.probs))
    return (a.ids == b.ids and torch.equal(a.labels, b.labels) and torch.equal(a.preds, b.preds) and probs_equal
            and a.num_classes == b.num_classes and a.labels.dtype == b.labels.dtype == torch.int64)


def _careful_csv(path: Path, num_classes: int | None = None) -> P.PredictionTable:
    return P._to_table(P._read_csv(path), path, num_classes)


@st.composite
def clean_csv(draw: st.DrawFn) -> str:
    """A well-formed predictions CSV written in one of the ways tools write them."""
    n, k = draw(st.integers(1, 25)), draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.full(k, draw(st.sampled_from([0.2, 1.0, 5.0]))), n)
    digits = draw(st.sampled_from([None, 6, 9, 17]))
    number = draw(st.sampled_from(["{}", "{}.0", " {} ", "+{}", "{}e0"]))
    columns = ["label"] + (["id"] if draw(st.booleans()) else []) + (["x"] if draw(st.booleans()) else [])
    with_probs, with_pred = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
    columns += (["pred"] if with_pred else []) + ([f"prob_{c}" for c in range(k)] if with_probs else [])
    columns = draw(st.permutations(columns))
    ids = draw(st.lists(st.text(_ID_CHARS, max_size=8), min_size=n, max_size=n, unique=True))
    ids = [i for i in ids if i.strip()] if len({i for i in ids if i.strip()}) == n else [f"s{i}" for i in range(n)]
    cell = {"label": lambda r: number.format(labels[r]), "id": lambda r: ids[r], "x": lambda r: "junk#",
            "pred": lambda r: number.format(int(probs[r].argmax()) if with_probs else int(rng.integers(0, k)))}
    for c in range(k):
        cell[f"prob_{c}"] = lambda r, c=c: repr(float(probs[r, c])) if digits is None else f"{probs[r, c]:.{digits}g}"
    lines = [",".join(columns)] + [",".join(cell[name](r) for name in columns) for r in range(n)]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(1, len(lines))), "")  # a blank line, skipped by both readers
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return ("\ufeff" if draw(st.booleans()) else "") + newline.join(lines) + newline


@FAST
@given(text=clean_csv())
def test_clean_csv_takes_the_fast_path_and_equals_the_careful_reader(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.csv"
        path.write_text(text, encoding="utf-8")
        columns = P._read_csv_arrays(path)
        assert columns is not None
        fast = P._fast_table(columns, None)
        assert fast is not None
        assert _same(fast, _careful_csv(path))
        assert _same(read_predictions_file(path), fast)


_CELLS = st.one_of(st.integers(-2, 5).map(str), st.sampled_from(
    ["", " ", "nan", "inf", "-0", "1e400", "0.5", "0.25", "0.75", "1", "1.0", "x", "1_0", "\ufeff", "١", " 2 ", "#"]))


@settings(max_examples=150, deadline=None, database=None)
@given(header=st.lists(st.sampled_from(["id", "label", "pred", "prob_0", "prob_1", "prob_2", "x"]), min_size=1,
                       max_size=5),
       rows=st.lists(st.lists(_CELLS, min_size=1, max_size=6), max_size=5), num_classes=st.sampled_from([None, 3]))
def test_whatever_the_fast_path_accepts_the_careful_reader_reads_the_same(header: list[str], rows: list[list[str]],
                                                                          num_classes: int | None) -> None:
    text = "\n".join(",".join(cells) for cells in [header, *rows]) + "\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.csv"
        path.write_text(text, encoding="utf-8")
        columns = P._read_csv_arrays(path)
        fast = P._fast_table(columns, num_classes) if columns is not None else None
        if fast is not None:
            assert _same(fast, _careful_csv(path, num_classes))
        try:
            expected = _careful_csv(path, num_classes)
        except ValueError as error:
            with pytest.raises(ValueError) as info:
                read_predictions_file(path, num_classes=num_classes)
            assert str(info.value) == str(error)  # the same message, line and fix
        else:
            assert _same(read_predictions_file(path, num_classes=num_classes), expected)


def test_sums_at_the_tolerance_are_decided_exactly_as_before(tmp_path: Path) -> None:
    """Rows whose sum is within rounding of 1 +- 1e-4 are decided by math.fsum, as the row-by-row
    reader decides them (accepted or refused alike)."""
    rows = []
    for offset in np.linspace(-3e-16, 3e-16, 7).tolist():
        high = 0.3 + P.SUM_TOLERANCE + offset
        rows.append([0.7, high])
        rows.append([0.7, 0.3 - P.SUM_TOLERANCE - offset])
    for i, row in enumerate(rows):
        path = tmp_path / f"p{i}.csv"
        path.write_text("label,prob_0,prob_1\n0," + ",".join(repr(v) for v in row) + "\n")
        accepted = abs(math.fsum(row) - 1) <= P.SUM_TOLERANCE
        if accepted:
            assert _same(read_predictions_file(path), _careful_csv(path))
        else:
            with pytest.raises(ValueError, match="must sum to 1"):
                read_predictions_file(path)


@st.composite
def npz_arrays(draw: st.DrawFn) -> dict[str, np.ndarray]:
    n, k = draw(st.integers(1, 20)), draw(st.integers(2, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from([np.int8, np.uint16, np.int64, np.float32, np.float64]))
    arrays = {"label": rng.integers(0, k, n).astype(kind)}
    if draw(st.booleans()):
        arrays["probs"] = rng.dirichlet(np.ones(k), n).astype(draw(st.sampled_from([np.float32, np.float64])))
    if "probs" not in arrays or draw(st.booleans()):
        arrays["pred"] = rng.integers(0, k, n).astype(kind)
    ids = draw(st.sampled_from([None, "int", "float", "str"]))
    if ids is not None:
        arrays["id"] = {"int": np.arange(n) * 7, "float": np.arange(n) / 4, "str": np.array([f"x{i}" for i in range(n)])}[ids]
    return arrays


@FAST
@given(arrays=npz_arrays())
def test_npz_fast_table_equals_the_careful_reader(arrays: dict[str, np.ndarray]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.npz"
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path.write_bytes(buffer.getvalue())
        loaded = P._npz_arrays(path)
        fast = P._fast_table(P._array_columns(loaded), None)
        careful = P._to_table(P._list_columns(loaded), path, None)
        assert fast is not None and _same(fast, careful)


@FAST
@given(arrays=npz_arrays(), records=st.booleans())
def test_json_fast_table_equals_the_careful_reader(arrays: dict[str, np.ndarray], records: bool) -> None:
    columns = {name: values.tolist() for name, values in arrays.items()}
    if records:
        data: object = [{name: columns[name][i] for name in columns} for i in range(len(columns["label"]))]
    else:
        data = columns
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.json"
        path.write_text(json.dumps(data))
        read = P._read_json(path)
        fast = P._fast_table(read, None)
        assert fast is not None and _same(fast, P._to_table(read, path, None))


def test_parquet_reads_as_the_csv_of_its_rows(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(3)
    labels, probs = rng.integers(0, 4, 50), rng.dirichlet(np.ones(4), 50)
    ids = [f"img{i}" for i in range(50)]
    (tmp_path / "p.csv").write_text("id,label," + ",".join(f"prob_{c}" for c in range(4)) + "\n" + "".join(
        f"{ids[i]},{labels[i]}," + ",".join(repr(float(v)) for v in probs[i]) + "\n" for i in range(50)))
    expected = read_predictions_file(tmp_path / "p.csv")
    columns = {"id": ids, "label": labels, **{f"prob_{c}": probs[:, c] for c in range(4)}}
    parquet.write_table(pa.table(columns), tmp_path / "columns.parquet")
    parquet.write_table(pa.table({"id": ids, "label": labels, "probs": probs.tolist()}), tmp_path / "list.parquet")
    for name in ("columns.parquet", "list.parquet"):
        assert _same(read_predictions_file(tmp_path / name), expected), name


def test_parquet_errors_name_the_file_and_row(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    cases = {
        "null-label": ({"label": [0, None], "pred": [0, 1]}, r"null-label\.parquet:row 1: label must be a class index"),
        "ragged": ({"label": [0, 1], "probs": [[0.5, 0.5], [1.0]]}, r"ragged\.parquet:row 1: every row needs the same"),
        "no-pred": ({"label": [0, 1]}, r"no-pred\.parquet:1: the header must have 'pred'"),
        "null-id": ({"id": ["a", None], "label": [0, 1], "pred": [0, 1]}, r"null-id\.parquet:row 1: the id is missing"),
        "both": ({"label": [0], "probs": [[1.0, 0.0]], "prob_0": [1.0], "prob_1": [0.0]}, r"both\.parquet:1: give"),
    }
    for name, (columns, match) in cases.items():
        parquet.write_table(pa.table(columns), tmp_path / f"{name}.parquet")
        with pytest.raises(ValueError, match=match):
            read_predictions_file(tmp_path / f"{name}.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=r"bad\.parquet:1: cannot read the Parquet file"):
        read_predictions_file(tmp_path / "bad.parquet")


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from visionbench._extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    (tmp_path / "p.parquet").write_bytes(b"PAR1")
    with pytest.raises(MissingExtraError, match=r"p\.parquet.*pip install 'visionbench\[parquet\]'"):
        read_predictions_file(tmp_path / "p.parquet")
    (tmp_path / "p.csv").write_text("label,pred\n0,0\n")
    assert read_predictions_file(tmp_path / "p.csv").labels.tolist() == [0]  # the other formats need no pyarrow
