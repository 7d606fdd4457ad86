"""The quality run directory's per-item files: ``items.csv`` and ``examples.npz``.

``examples.npz`` holds the worst items' thumbnails (no pickles: plain arrays only): ``items``
(names), ``values`` (the first metric's value), ``metric`` (its name), and per example ``i``:
``ref_i``, ``dist_i`` (uint8 images), ``difference_i`` (|ref − dist| / data range) and, when it
was computed, ``ssim_i`` (the SSIM map).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionbench.engine.rundir import EXAMPLES


def write_items(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """One CSV row per item (image pair or frame), columns in the rows' order."""
    from visionbench.engine.checkpoint import atomic_write

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = text.getvalue().encode()
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_examples(run_dir: Path, examples: Sequence[Any]) -> None:
    """Write ``examples.npz`` (nothing when there are no examples)."""
    if not examples:
        return
    arrays: dict[str, np.ndarray] = {
        "items": np.array([e.item for e in examples]),
        "values": np.array([e.value for e in examples], dtype=np.float64),
    }
    for i, example in enumerate(examples):
        arrays[f"ref_{i}"], arrays[f"dist_{i}"], arrays[f"difference_{i}"] = example.ref, example.dist, example.difference
        if example.ssim is not None:
            arrays[f"ssim_{i}"] = example.ssim
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    from visionbench.engine.checkpoint import atomic_write

    atomic_write(run_dir / EXAMPLES, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def read_examples(run_dir: Path) -> list[dict[str, Any]]:
    """The examples of ``examples.npz`` as dicts (``item``, ``value``, ``ref``, ``dist``,
    ``difference``, ``ssim`` or None); an empty list when the file is missing or unreadable."""
    path = Path(run_dir) / EXAMPLES
    if not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as data:
            return [{"item": str(item), "value": float(value), "ref": data[f"ref_{i}"], "dist": data[f"dist_{i}"],
                     "difference": data[f"difference_{i}"], "ssim": data[f"ssim_{i}"] if f"ssim_{i}" in data else None}
                    for i, (item, value) in enumerate(zip(data["items"], data["values"], strict=True))]
    except (OSError, ValueError, KeyError):
        return []
