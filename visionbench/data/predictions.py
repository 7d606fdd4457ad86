"""Predictions made by any tool, read from CSV, JSON, NPZ or Parquet, so visionbench can evaluate them.

Accepted layouts (one row/record per sample):

* CSV with a header: ``id,label,pred`` or ``id,label,prob_0,…,prob_{K-1}`` (both ``pred`` and
  probabilities may be given; ``id`` is optional). visionbench's own ``predictions.csv`` is one.
* JSON: a list of objects ``{"id": …, "label": 3, "pred": 3}`` or ``{"id": …, "label": 3,
  "probs": [0.1, …]}``; or one object of columns ``{"id": [...], "label": [...], "pred": [...],
  "probs": [[...], ...]}``.
* NPZ (``numpy.savez``): arrays ``label`` and ``pred`` and/or ``probs`` ``[N, K]``, optional ``id``;
  read with ``allow_pickle=False``.
* Parquet (needs ``pip install 'visionbench[parquet]'``, pyarrow): columns ``label``, ``pred``
  and/or ``prob_0..prob_{K-1}`` (or one list column ``probs``), optional ``id``.

When only probabilities are given, ``pred`` is their argmax. Every malformed value is reported
with the file, the line (CSV) or record (JSON/NPZ/Parquet row) and what to do.

Reading is vectorised: a file is parsed into arrays (CSV by ``numpy.loadtxt``) and checked with
array operations (:func:`_fast_table`). Anything that check cannot vouch for (a quoted CSV field,
a value out of range, a duplicate id, …) sends the file through the careful row-by-row reader,
which accepts exactly what it accepted before and names the file, line and fix of the first
problem. So both paths give the same table, and errors are unchanged; well-formed files are read
at array speed (1M rows x 10 probabilities: about 2 s from CSV instead of 26 s).

Shards (:func:`read_predictions_files`): several files, or a folder of them, are read one by one
and concatenated in the order given (a folder's files by name), so the result, and every metric
and bootstrap interval computed from it, equals that of one file holding the shards one after the
other. An id in two shards is an error naming both files.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import warnings
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
SUFFIXES = (".csv", ".json", ".npz", ".parquet")
MAX_CSV_FIELD = 131_072  # characters; Python's csv module refuses longer fields, and so does the fast path


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
    """Read a predictions file (format chosen by its extension: .csv, .json, .npz, .parquet).

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
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"predictions file must end in .csv, .json or .npz, or .parquet; got {path.name!r}.")
    if suffix in (".npz", ".parquet"):
        arrays = _npz_arrays(path) if suffix == ".npz" else _parquet_arrays(path)
        return _fast_table(_array_columns(arrays), num_classes) or _to_table(_list_columns(arrays), path, num_classes)
    if suffix == ".json":
        columns = _read_json(path)
        return _fast_table(columns, num_classes) or _to_table(columns, path, num_classes)
    fast = _read_csv_arrays(path)
    table = _fast_table(fast, num_classes) if fast is not None else None
    return table or _to_table(_read_csv(path), path, num_classes)


def prediction_paths(specs: str | Path | list[str | Path]) -> list[Path]:
    """The files that ``--pred`` names: files as given, each folder's predictions files (``.csv``,
    ``.json``, ``.npz``, ``.parquet``, by name), and shell patterns (``part-*.csv``) a shell did not
    expand, by name. Raises naming a folder or pattern that holds no predictions file."""
    paths: list[Path] = []
    for spec in specs if isinstance(specs, list | tuple) else [specs]:
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                raise ValueError(f"folder {str(path)!r} holds no predictions file (.csv, .json, .npz, .parquet).")
            paths += found
        elif not path.exists() and glob.has_magic(str(path)):
            found = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
            if not found:
                raise ValueError(f"no predictions file matches {str(path)!r}; check the pattern.")
            paths += found
        else:
            paths.append(path)
    return paths


def read_predictions_files(paths: list[str | Path], *, num_classes: int | None = None) -> PredictionTable:
    """Read shards of one set of predictions and concatenate them in the order given.

    Each shard is read and checked as by :func:`read_predictions_file`; the shards must agree on
    their columns (all with probabilities, of the same K, or all without), and an id may appear in
    only one of them. The result equals :func:`read_predictions_file` of one file holding the
    shards' rows one after the other, so metrics and intervals computed from it do too.

    Raises:
        ValueError: naming the shard (and line) of a problem, or both shards of a repeated id.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("give at least one predictions file.")
    tables = [read_predictions_file(path, num_classes=num_classes) for path in paths]
    if len(tables) == 1:
        return tables[0]
    with_probs = [t.probs is not None for t in tables]
    if any(with_probs) and not all(with_probs):
        i, j = with_probs.index(True), with_probs.index(False)
        raise ValueError(f"every shard must hold probabilities, or none; {paths[i]} does and {paths[j]} does not. "
                         "Write the same columns in every shard.")
    k = max(t.num_classes for t in tables)
    if all(with_probs) and any(t.num_classes != k for t in tables):
        other = next(i for i, t in enumerate(tables) if t.num_classes != k)
        first = next(i for i, t in enumerate(tables) if t.num_classes == k)
        raise ValueError(f"every shard must have the same probability columns; {paths[first]} has {k} and "
                         f"{paths[other]} has {tables[other].num_classes}.")
    _check_unique_ids(tables, paths)
    return PredictionTable(
        ids=[i for t in tables for i in t.ids], labels=torch.cat([t.labels for t in tables]),
        preds=torch.cat([t.preds for t in tables]),
        probs=torch.cat([t.probs for t in tables]) if all(with_probs) else None, num_classes=k,
    )


def _check_unique_ids(tables: list[PredictionTable], paths: list[Path]) -> None:
    """An id in two shards is an error naming both (each shard's own ids are unique already)."""
    total = sum(len(t.ids) for t in tables)
    if len(set().union(*(t.ids for t in tables))) == total:
        return
    owner: dict[str, int] = {}
    for index, table in enumerate(tables):
        for sample_id in table.ids:
            if sample_id in owner:
                raise ValueError(f"id {sample_id!r} appears in two shards, {paths[owner[sample_id]]} and "
                                 f"{paths[index]}; ids must identify samples uniquely across shards (a shard "
                                 "given twice?).")
            owner[sample_id] = index


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


def _check_header(header: list[str], prob_columns: list[str], path: Path, *, list_column: bool = False) -> None:
    """The column names are unique and name the label and the predictions (``list_column``: a
    Parquet list column ``probs`` holds the probabilities)."""
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:  # csv would silently keep the last of the columns
        raise _fail(path, "1", f"column names must be unique; got {repeated!r} more than once in {header!r}.")
    if "label" not in header:
        raise _fail(path, "1", f"the header must have a 'label' column; got {header!r}.")
    if "pred" not in header and not prob_columns and not list_column:
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


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a predictions NPZ, their sizes, names and shapes checked."""
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
    for name in ("id", "pred"):
        if name in arrays and len(arrays[name]) != n:
            raise _fail(path, name, f"array {name!r} has {len(arrays[name])} entries but 'label' has {n}.")
    return arrays


def _list_columns(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Arrays (NPZ, Parquet) as the row-by-row reader's columns: Python values, rows named ``row i``."""
    n = len(arrays["label"])
    probs = arrays.get("probs")
    return {
        "id": [str(v) for v in arrays.get("id", np.arange(n))], "label": arrays["label"].tolist(),
        "pred": arrays["pred"].tolist() if "pred" in arrays else [None] * n,
        "probs": probs.tolist() if probs is not None else [None] * n,
        "line": [f"row {i}" for i in range(n)],
    }


def _array_columns(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Arrays (NPZ, Parquet) as :func:`_fast_table`'s columns; ids as the row-by-row reader writes them."""
    ids = arrays.get("id")
    if ids is not None:
        ids = ids.tolist() if ids.dtype.kind == "U" else [str(v) for v in ids]
    return {"id": ids, "label": arrays["label"], "pred": arrays.get("pred"), "probs": arrays.get("probs")}


def _parquet_arrays(path: Path) -> dict[str, np.ndarray]:
    """The columns of a predictions Parquet file as arrays (the layout of :func:`_npz_arrays`)."""
    from visionbench._extras import import_optional

    parquet = import_optional("pyarrow.parquet", extra="parquet", purpose=f"reading the Parquet file {path.name!r}")
    import pyarrow as pa

    try:
        table = parquet.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise _fail(path, "1", f"cannot read the Parquet file ({error}); write it with pyarrow or pandas.") from None
    names = [str(name) for name in table.column_names]
    prob_columns = sorted((h for h in names if h.startswith("prob_")), key=lambda h: _prob_index(h, path))
    if "probs" in names and prob_columns:
        raise _fail(path, "1", "give the probabilities as prob_0..prob_K-1 columns or one list column 'probs', "
                               "not both.")
    _check_header(names, prob_columns, path, list_column="probs" in names)
    arrays = {name: _parquet_column(table, name, path) for name in ("id", "label", "pred") if name in names}
    if prob_columns:
        arrays["probs"] = np.stack([_parquet_column(table, c, path) for c in prob_columns], axis=1)
    elif "probs" in names:
        arrays["probs"] = _parquet_list_column(table.column("probs"), path)
    return arrays


def _parquet_column(table: Any, name: str, path: Path) -> np.ndarray:
    """One flat column as a NumPy array; ids as text; a missing (null) id is an error naming its row."""
    column = table.column(name)
    if name == "id" and column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise _fail(path, f"row {row}", "the id is missing (null); give every sample an id, or drop the id column.")
    values = column.to_numpy(zero_copy_only=False)  # nulls of numbers become NaN: reported by their row
    if values.dtype == object and name == "id":
        values = np.array([str(v) for v in values])
    return values


def _parquet_list_column(column: Any, path: Path) -> np.ndarray:
    """A list column ``probs`` as ``float64 [N, K]``; rows of other lengths (or missing) name their row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
            or pa.types.is_fixed_size_list(column.type)):
        raise _fail(path, "probs", f"column 'probs' must hold a list of K probabilities per row; got {column.type}.")
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise _fail(path, f"row {row}", "the probabilities are missing (null); give K probabilities in every row.")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if lengths.size and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise _fail(path, f"row {row}", f"every row needs the same number of probabilities ({int(lengths[0])}).")
    values = column.flatten().to_numpy(zero_copy_only=False)  # missing values become NaN, reported by row
    return values.reshape(len(column), int(lengths[0]) if lengths.size else 0)


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


# --------------------------------------------------------------------------------------------
# Vectorised reading: arrays checked at once; anything unusual goes to the row-by-row reader
# --------------------------------------------------------------------------------------------


def _read_csv_arrays(path: Path) -> dict[str, Any] | None:
    """The columns of a plain predictions CSV parsed by ``numpy.loadtxt``, or ``None`` when the file
    needs the csv module (quotes, NUL bytes, fields longer than it accepts, a bad header, bad
    UTF-8, rows it cannot parse): the row-by-row reader then reads it, or names its problem."""
    raw = path.read_bytes()
    # Quotes, NUL bytes and lone carriage returns are where the csv module and loadtxt could differ.
    if b'"' in raw or b"\x00" in raw or raw.count(b"\r") != raw.count(b"\r\n") or not raw.strip():
        return None
    breaks = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == ord("\n"))
    longest = int(np.diff(np.concatenate([[-1], breaks, [len(raw)]])).max())  # bytes >= characters
    if longest > MAX_CSV_FIELD:
        return None
    header_line = raw.split(b"\n", 1)[0]
    try:
        header = [h.strip() for h in header_line.decode("utf-8-sig").rstrip("\r").split(",")]
        prob_columns = sorted((h for h in header if h.startswith("prob_")), key=lambda h: _prob_index(h, path))
        _check_header(header, prob_columns, path)
    except (UnicodeDecodeError, ValueError):
        return None  # the row-by-row reader raises the same error, naming the line
    width = min(longest, 32)  # ids longer than the longest line cannot exist; longer guesses cost memory
    kinds = {"id": f"U{width}", "label": "f8", "pred": "f8", **dict.fromkeys(prob_columns, "f8")}
    dtype = [(f"c{i}", kinds.get(name, "U1")) for i, name in enumerate(header)]  # other columns: not read
    field = {name: f"c{i}" for i, name in enumerate(header)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": a header alone
            rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=dtype, comments=None, quotechar=None,
                              encoding="utf-8", ndmin=1)
    except (ValueError, UnicodeDecodeError):
        return None
    if rows.size == 0:
        return None
    ids = None
    if "id" in field:
        ids = rows[field["id"]]
        if ids.size and int(np.char.str_len(ids).max()) >= width:  # maybe cut off: read the ids alone, whole
            ids = np.loadtxt(path, delimiter=",", skiprows=1, dtype=str, usecols=[header.index("id")],
                             comments=None, quotechar=None, encoding="utf-8", ndmin=1)
        ids = ids.tolist()
    probs = np.stack([rows[field[c]] for c in prob_columns], axis=1) if prob_columns else None
    return {"id": ids, "label": rows[field["label"]], "pred": rows[field["pred"]] if "pred" in field else None,
            "probs": probs}


def _numbers(values: Any, ndim: int) -> np.ndarray | None:
    """``values`` as float64 with ``ndim`` dimensions, or ``None`` when they are not plain numbers
    (strings, None, ragged lists: the row-by-row reader judges those)."""
    if isinstance(values, list):
        if not values or values[0] is None:
            return None
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            return None
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "biuf" or values.ndim != ndim:
        return None
    return values.astype(np.float64, copy=False)


def _absent(values: Any) -> bool:
    """No such column: ``None``, or a list whose first entry is ``None`` (how the row-by-row reader decides)."""
    return values is None or (isinstance(values, list) and (not values or values[0] is None))


def _class_indices(values: Any) -> np.ndarray | None:
    """Class indices as int64, or ``None`` unless every value is an integer in [0, MAX_CLASSES)."""
    numbers = _numbers(values, 1)
    if numbers is None or not ((numbers >= 0) & (numbers < MAX_CLASSES) & (numbers == np.floor(numbers))).all():
        return None  # NaN fails every comparison
    return numbers.astype(np.int64)


def _checked_probs(values: Any) -> np.ndarray | None:
    """``[N, K]`` probabilities, K >= 2, each in [0, 1], rows summing to 1 within SUM_TOLERANCE
    (by ``math.fsum``, as the row-by-row reader), else ``None``."""
    probs = _numbers(values, 2)
    if probs is None or probs.shape[1] < 2 or probs.shape[1] > MAX_CLASSES or not ((probs >= 0) & (probs <= 1)).all():
        return None
    gap = np.abs(probs.sum(axis=1) - 1)
    # A sum of K values in [0, 1] is within K * 2**-52 of the exact sum: rows that close to the
    # tolerance are decided by math.fsum, exactly as the row-by-row reader decides them.
    close = np.flatnonzero(np.abs(gap - SUM_TOLERANCE) <= 1e-9)
    gap[close] = [abs(math.fsum(row) - 1) for row in probs[close].tolist()]
    return probs if (gap <= SUM_TOLERANCE).all() else None


def _fast_table(columns: dict[str, Any], num_classes: int | None) -> PredictionTable | None:
    """The table of ``columns`` checked with array operations, or ``None`` when some value needs
    the row-by-row reader (which then accepts it, or names the file, line and fix)."""
    labels = _class_indices(columns["label"])
    if labels is None or labels.size == 0:
        return None
    probs = None if _absent(columns["probs"]) else _checked_probs(columns["probs"])
    if probs is None and not _absent(columns["probs"]):
        return None
    if _absent(columns["pred"]):
        if probs is None:
            return None
        preds = probs.argmax(axis=1)  # the first largest, as the row-by-row reader's np.argmax
    else:
        preds = _class_indices(columns["pred"])
    if preds is None or preds.shape != labels.shape or (probs is not None and len(probs) != len(labels)):
        return None
    k = probs.shape[1] if probs is not None else (num_classes or int(max(labels.max(), preds.max())) + 1)
    if (num_classes is not None and num_classes != k) or k > MAX_CLASSES or max(labels.max(), preds.max()) >= k:
        return None
    ids = columns["id"] if columns["id"] is not None else [str(i) for i in range(labels.size)]
    if len(ids) != labels.size or len(set(ids)) != len(ids):
        return None
    return PredictionTable(ids=list(ids), labels=torch.from_numpy(labels), preds=torch.from_numpy(preds.astype(np.int64)),
                           probs=torch.from_numpy(probs.copy()) if probs is not None else None, num_classes=k)
