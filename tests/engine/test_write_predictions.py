"""``predictions.csv`` is written a block at a time; :mod:`csv` must read back every id and value."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from visionbench.engine import rundir


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, None])
def test_predictions_csv_reads_back_exactly_with_the_csv_module(tmp_path: Path, dtype: torch.dtype | None) -> None:
    ids = ["a", "b,c", 'q"x', "line\nbreak", " sp ", "", "ü", "r\rx"] * 9000  # more than one block
    n = len(ids)
    g = torch.Generator().manual_seed(0)
    probs = None if dtype is None else torch.rand(n, 5, generator=g, dtype=dtype)
    labels, preds = torch.randint(0, 5, (n,), generator=g), torch.randint(0, 5, (n,), generator=g)
    path = tmp_path / "predictions.csv"
    rundir.write_predictions(path, ids, labels, preds, probs)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "label", "pred", *(f"prob_{k}" for k in range(0 if probs is None else 5))]
    assert [r[0] for r in rows[1:]] == ids
    assert [int(r[1]) for r in rows[1:]] == labels.tolist() and [int(r[2]) for r in rows[1:]] == preds.tolist()
    if probs is not None:  # 9 (float32) or 17 (float64) significant digits round-trip exactly
        read = torch.tensor([[float(v) for v in r[3:]] for r in rows[1:]], dtype=torch.float64).to(dtype)
        assert torch.equal(read, probs)
