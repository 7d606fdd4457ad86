"""Predictions made by any tool, read from CSV, JSON or NPZ, so visionbench can evaluate them.

Accepted layouts (one row/record per sample):

* CSV with a header: ``id,label,pred`` or ``id,label,prob_0,…,prob_{K-1}`` (both ``pred`` and
  probabilities may be given; ``id`` is optional). visionbench's own ``predictions.csv`` is one.
* JSON: a list of objects ``{"id": …, "label": 3, "pred": 3}`` or ``{"id": …, "label": 3,
  "probs": [0.1, …]}``; or one object of columns ``{"id": [...], "label": [...], "pred": [...],
  "probs": [[...], ...]}``.
* NPZ (``numpy.savez``): arrays ``label`` and ``pred`` and/or ``probs`` ``[N, K]``, optional ``id``;
  read with ``allow_pickle=False``.

When only probabilities are given, ``pred`` is their argmax. Every malformed value is reported
with the file, the line (CSV) or record (JSON/NPZ row) and what to do.
"""

from __future__ import annotations

import csv
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAX_NPZ_BYTES = 8 << 30  # 100 M predictions x 10 float64 probabilities; the declared size is checked first
MAX_NPZ_EXPANSION = 1000  # predictions compress far less (labels ~16x, probabilities ~1x); zeros ~1000x
MAX_CLASSES = 16_384  # K x K int64 confusion matrices stay within 2 GiB; ImageNet-21k's 21,843 classes would not
SUM_TOLERANCE = 1e-4  # largest accepted |row sum - 1|, as the probability metrics (validate_scores) accept


@dataclass(frozen=True)
class PredictionTable:
    """Per-sample predictions: ``ids`` (list of str), ``labels`` and ``preds`` (``int64 [N]``),
    ``probs`` (``float64 [N, K]`` or ``None``) and ``num_classes`` K."""

    ids: list[str]
    labels: torch.Tensor
    preds: torch.Tensor
    probs: torch.Tensor | None
    num_classes: int


def read_predictions_file(path: str | Path, *, num_classes: int | None = None) -> PredictionTable:
    """Read a predictions file (format chosen by its extension: .csv, .json, .npz).

    Args:
        path: the file.
        num_classes: K, needed when some classes appear in neither ``label`` nor ``pred`` (and
            no probability columns say K); default: inferred.

    Raises:
        ValueError: naming the file, the line/record and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"predictions file {str(path)!r} does not exist.")
    readers = {".csv": _read_csv, ".json": _read_json, ".npz": _read_npz}
    if path.suffix.lower() not in readers:
        raise ValueError(f"predictions file must end in .csv, .json or .npz; got {path.name!r}.")
    columns = readers[path.suffix.lower()](path)
    return _to_table(columns, path, num_classes)


def _fail(path: Path, where: str, message: str) -> ValueError:
    return ValueError(f"{path}:{where}: {message}")


def _read_csv(path: Path) -> dict[str, Any]:
    """The columns of a predictions CSV; bad bytes, over-long fields and bad quoting name the line."""
    state: dict[str, Any] = {}
    try:
        return _read_csv_rows(path, state)
    except UnicodeDecodeError:
        line, byte = _first_bad_byte(path)
        raise _fail(path, str(line), f"the file must be UTF-8 text; got byte {byte:#04x}. Save it as UTF-8 (a "
                    "byte-order mark, as Excel writes, is fine).") from None
    except csv.Error as error:
        line = state["reader"].line_num if "reader" in state else 1
        raise _fail(path, str(line), f"the CSV cannot be parsed ({error}). Check the quoting of this line; a single "
                    "field may hold at most 131,072 characters.") from None


def _first_bad_byte(path: Path) -> tuple[int, int]:
    """``(line, byte)`` of the first byte of ``path`` that is not UTF-8 (the error path only: the
    decoder reads ahead in blocks, so its own position does not say which line)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        offset = error.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        return raw.count(b"\n", 0, offset) + 1, raw[offset]
    return 1, 0


def _read_csv_rows(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    # utf-8-sig: Excel's byte-order mark would otherwise glue itself to the first column's name ("\ufeffid")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        state["reader"] = reader
        header = next(reader, None)
        if not header:
            raise _fail(path, "1", "the file is empty; expected a header such as id,label,pred.")
        header = [h.strip() for h in header]
        prob_columns = sorted((h for h in header if h.startswith("prob_")), key=lambda h: _prob_index(h, path))
        _check_header(header, prob_columns, path)
        position = {name: i for i, name in enumerate(header)}
        rows: dict[str, list[Any]] = {"id": [], "label": [], "pred": [], "probs": [], "line": []}
        for line_number, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise _fail(path, str(line_number), f"expected {len(header)} fields as in the header; got {len(row)}.")
            rows["line"].append(str(line_number))
            rows["id"].append(row[position["id"]] if "id" in position else str(len(rows["id"])))
            rows["label"].append(row[position["label"]])
            rows["pred"].append(row[position["pred"]] if "pred" in position else None)
            rows["probs"].append([row[position[c]] for c in prob_columns] if prob_columns else None)
    return rows


def _prob_index(column: str, path: Path) -> int:
    suffix = column[len("prob_"):]
    if not suffix.isdigit():
        raise _fail(path, "1", f"probability columns must be named prob_0..prob_K-1; got {column!r}.")
    return int(suffix)


def _check_header(header: list[str], prob_columns: list[str], path: Path) -> None:
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:  # csv would silently keep the last of the columns
        raise _fail(path, "1", f"column names must be unique; got {repeated!r} more than once in {header!r}.")
    if "label" not in header:
        raise _fail(path, "1", f"the header must have a 'label' column; got {header!r}.")
    if "pred" not in header and not prob_columns:
        raise _fail(path, "1", f"the header must have 'pred' or prob_0..prob_K-1 columns; got {header!r}.")
    expected = [f"prob_{k}" for k in range(len(prob_columns))]
    if prob_columns != expected:
        raise _fail(path, "1", f"probability columns must be prob_0..prob_{len(prob_columns) - 1} without gaps; got {prob_columns!r}.")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _fail(path, "1", f"not valid JSON ({error}).") from None
    except RecursionError:
        raise _fail(path, "1", "the JSON is nested too deeply; expected a list of records or an object of "
                    "columns.") from None
    if isinstance(data, dict):
        return _json_columns(data, path)
    if not isinstance(data, list):
        raise _fail(path, "1", "expected a list of records or an object of columns.")
    rows: dict[str, list[Any]] = {"id": [], "label": [], "pred": [], "probs": [], "line": []}
    for index, record in enumerate(data):
        where = f"record {index}"
        if not isinstance(record, dict) or "label" not in record or ("pred" not in record and "probs" not in record):
            raise _fail(path, where, "each record needs 'label' and 'pred' and/or 'probs'.")
        _check_json_record(record, path, where)
        rows["line"].append(where)
        rows["id"].append(str(record.get("id", index)))
        rows["label"].append(record["label"])
        rows["pred"].append(record.get("pred"))
        rows["probs"].append(record.get("probs"))
    return rows


def _check_json_record(record: dict[str, Any], path: Path, where: str) -> None:
    """JSON ``true``/``false`` are not class indices, and ``probs`` must be a list (an object would be
    read by its keys)."""
    for key in ("label", "pred"):
        if isinstance(record.get(key), bool):
            raise _fail(path, where, f"{key} must be a class index or name; got {record[key]!r}.")
    if record.get("probs") is not None and not isinstance(record["probs"], list):
        raise _fail(path, where, f"probs must be a list of K probabilities; got {type(record['probs']).__name__}.")


def _json_columns(data: dict[str, Any], path: Path) -> dict[str, Any]:
    if "label" not in data or ("pred" not in data and "probs" not in data):
        raise _fail(path, "1", "an object of columns needs 'label' and 'pred' and/or 'probs'.")
    for key in ("id", "label", "pred", "probs"):
        if key in data and not isinstance(data[key], list):
            raise _fail(path, key, f"column {key!r} must be a list (one entry per sample); got "
                        f"{type(data[key]).__name__}.")
    for index in range(len(data["label"])):  # the same checks as for records, per row
        _check_json_record({k: data[k][index] for k in ("label", "pred", "probs") if k in data and
                            index < len(data[k])}, path, f"record {index}")
    n = len(data["label"])
    for key in ("id", "pred", "probs"):
        if key in data and len(data[key]) != n:
            raise _fail(path, key, f"column {key!r} has {len(data[key])} entries but 'label' has {n}.")
    return {
        "id": [str(v) for v in data.get("id", range(n))], "label": list(data["label"]),
        "pred": list(data.get("pred", [None] * n)), "probs": list(data.get("probs", [None] * n)),
        "line": [f"record {i}" for i in range(n)],
    }


def _npz_declared_bytes(path: Path) -> int:
    """The bytes the arrays of an NPZ archive declare in their ``.npy`` headers, read without
    decompressing the data (a 2 MB archive of zeros can declare gigabytes)."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                shape, _, dtype = (np.lib.format.read_array_header_1_0(handle) if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0(handle))
                total += math.prod(shape) * dtype.itemsize
    return total


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        declared = _npz_declared_bytes(path)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise _fail(path, "1", f"cannot read the NPZ archive ({error}); save plain arrays with numpy.savez.") from None
    size = path.stat().st_size
    if declared > MAX_NPZ_BYTES or declared > MAX_NPZ_EXPANSION * size + (1 << 20):
        raise _fail(path, "1", f"the arrays must hold at most {MAX_NPZ_BYTES:,} bytes and at most {MAX_NPZ_EXPANSION}x "
                               f"the file's {size:,} bytes; their headers declare {declared:,}. This is not a "
                               "predictions file of that size: check it, or split the predictions into several files.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as error:
        raise _fail(path, "1", f"cannot read the NPZ archive ({error}); save plain arrays with numpy.savez.") from None
    if "label" not in arrays or ("pred" not in arrays and "probs" not in arrays):
        raise _fail(path, "1", f"the archive needs arrays 'label' and 'pred' and/or 'probs'; got {sorted(arrays)!r}.")
    for name in ("id", "label", "pred"):
        if name in arrays and arrays[name].ndim != 1:
            raise _fail(path, name, f"array {name!r} must be 1-D (one entry per sample); got shape "
                        f"{arrays[name].shape}.")
    n = len(arrays["label"])
    probs = arrays.get("probs")
    if probs is not None and (probs.ndim != 2 or len(probs) != n):
        raise _fail(path, "probs", f"'probs' must be [N, K] with N = {n}; got shape {probs.shape}.")
    return {
        "id": [str(v) for v in arrays.get("id", np.arange(n))], "label": arrays["label"].tolist(),
        "pred": arrays["pred"].tolist() if "pred" in arrays else [None] * n,
        "probs": probs.tolist() if probs is not None else [None] * n,
        "line": [f"row {i}" for i in range(n)],
    }


def _as_int(value: Any, what: str, path: Path, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number != int(number) or number < 0:
        raise _fail(path, where, f"{what} must be a class index (an integer >= 0); got {value!r}.")
    return int(number)


def _as_probs(values: Any, path: Path, where: str) -> list[float]:
    try:
        probs = [float(v) for v in values]
    except (TypeError, ValueError):
        raise _fail(path, where, f"probabilities must be numbers; got {values!r}.") from None
    bad = [p for p in probs if not math.isfinite(p) or p < 0 or p > 1]
    if bad:
        raise _fail(path, where, f"probabilities must be finite and in [0, 1]; got {bad[0]!r}. Apply softmax to scores first.")
    if len(probs) < 2:
        raise _fail(path, where, f"probabilities must give at least 2 classes; got {len(probs)} value(s). For a binary "
                                 "problem write prob_0 = 1 - p and prob_1 = p.")
    total = math.fsum(probs)
    if abs(total - 1) > SUM_TOLERANCE:  # checked here, not by the metrics, so the message names the file and line
        raise _fail(path, where, f"probabilities must sum to 1 (within {SUM_TOLERANCE:g}); got {total!r}. Apply "
                                 "softmax to scores first, or write the probabilities with more digits.")
    return probs


def _to_table(columns: dict[str, Any], path: Path, num_classes: int | None) -> PredictionTable:
    lines = columns["line"]
    if not lines:
        raise _fail(path, "1", "the file holds no predictions.")
    labels = [_as_int(v, "label", path, w) for v, w in zip(columns["label"], lines, strict=True)]
    has_probs = columns["probs"][0] is not None
    probs = [_as_probs(v, path, w) for v, w in zip(columns["probs"], lines, strict=True)] if has_probs else None
    if probs is not None and len({len(p) for p in probs}) != 1:
        width = len(probs[0])
        where = next(w for p, w in zip(probs, lines, strict=True) if len(p) != width)
        raise _fail(path, where, f"every row needs the same number of probabilities ({width}).")
    if columns["pred"][0] is not None:
        preds = [_as_int(v, "pred", path, w) for v, w in zip(columns["pred"], lines, strict=True)]
    else:
        preds = [int(np.argmax(p)) for p in probs]  # type: ignore[union-attr]
    k = _num_classes(labels, preds, probs, num_classes, path, lines)
    ids = [str(i) for i in columns["id"]]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        duplicate, where = next((i, w) for i, w in zip(ids, lines, strict=True) if i in seen or seen.add(i))
        raise _fail(path, where, f"id {duplicate!r} appears twice; ids must identify samples uniquely.")
    return PredictionTable(
        ids=ids, labels=torch.tensor(labels, dtype=torch.int64), preds=torch.tensor(preds, dtype=torch.int64),
        probs=torch.tensor(probs, dtype=torch.float64) if probs is not None else None, num_classes=k,
    )


def _num_classes(labels: list[int], preds: list[int], probs: list[list[float]] | None, given: int | None,
                 path: Path, lines: list[str]) -> int:
    seen = max(max(labels), max(preds)) + 1
    k = len(probs[0]) if probs is not None else (given or seen)
    if given is not None and given != k:
        raise _fail(path, "1", f"the number of classes ({given}, from --num-classes or the run's metrics.json) "
                               f"does not match the {k} probability columns.")
    for values, what in ((labels, "label"), (preds, "pred")):
        for value, where in zip(values, lines, strict=True):
            if value >= k:
                raise _fail(path, where, f"{what} {value} is outside the {k} classes; pass --num-classes K "
                                         "or check the file.")
    if k > MAX_CLASSES:  # the K x K confusion matrices would not fit in memory (a label of 1e6: 7.3 TiB)
        where = lines[max(range(len(labels)), key=lambda i: max(labels[i], preds[i]))]
        raise _fail(path, where, f"the number of classes must be at most {MAX_CLASSES:,}; got {k:,} (the largest "
                                 f"label or prediction + 1, or the columns). Labels are class indices 0..K-1: check "
                                 "this record.")
    return k
