"""The run directory: the one place a run's files live, and the unit other commands take.

Layout (``runs/<name>/``): ``config.yaml``, ``history.jsonl``, ``metrics.json``,
``predictions.csv``, ``checkpoints/{best,last}.safetensors`` + ``checkpoints/last.state.pt``,
``tensorboard/``, ``log.txt``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import torch

CONFIG = "config.yaml"
HISTORY = "history.jsonl"
METRICS = "metrics.json"
INFERENCE = "inference.json"  # classes, input size, normalisation: what `predict` needs of the data
GROUND_TRUTH = "ground_truth.json"  # detection: the test split's boxes as COCO instances
PREDICTIONS = "predictions.csv"
LOG = "log.txt"
EXAMPLES = "examples.npz"
REPORT = "report.html"
QUALITY_ITEMS = "items.csv"  # quality runs: one row per image pair or frame
CHECKPOINTS = "checkpoints"
BEST_WEIGHTS = f"{CHECKPOINTS}/best.safetensors"
LAST_WEIGHTS = f"{CHECKPOINTS}/last.safetensors"
LAST_STATE = f"{CHECKPOINTS}/last.state.pt"


def new_run_dir(root: Path, stem: str) -> Path:
    """A fresh ``root/<stem>-NNN`` directory (created), numbered after the existing ones."""
    root.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "run"
    taken = [int(m.group(1)) for p in root.iterdir() if (m := re.fullmatch(re.escape(stem) + r"-(\d+)", p.name))]
    number = max(taken, default=0) + 1
    while True:
        path = root / f"{stem}-{number:03d}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another process took it between listing and mkdir
            number += 1


def never_checkpointed(path: Path) -> bool:
    """Whether ``path`` holds a training run that failed before its first checkpoint (and so has
    nothing to resume): a ``config.yaml`` but neither ``last.state.pt`` nor ``metrics.json``."""
    return (path / CONFIG).is_file() and not (path / LAST_STATE).exists() and not (path / METRICS).exists()


def clear_for_restart(path: Path) -> None:
    """Remove what a run that never checkpointed wrote (config, history, inference spec, best
    weights, TensorBoard events), so the same ``--out`` starts over cleanly. ``log.txt`` is kept
    (the failed attempt's lines, then the new ones); other files are left alone."""
    for name in (CONFIG, HISTORY, INFERENCE):
        (path / name).unlink(missing_ok=True)
    for folder in (CHECKPOINTS, "tensorboard"):
        if (path / folder).is_dir():
            shutil.rmtree(path / folder)


def check_run_dir(path: Path) -> Path:
    """Raise a clear error unless ``path`` is a visionbench run directory."""
    if not path.is_dir():
        raise ValueError(f"run directory {str(path)!r} does not exist. Give a directory made by `visionbench train`.")
    if not (path / CONFIG).is_file():
        raise ValueError(
            f"{str(path)!r} is not a visionbench run directory (no {CONFIG}). "
            "Give a directory made by `visionbench train`, e.g. runs/digits-cnn-small-001."
        )
    return path


class RunLog:
    """Writes timestamped lines to ``log.txt`` and, unless quiet, to stderr; keeps the warnings,
    which the run also records in ``metrics.json`` (``"warnings"``)."""

    def __init__(self, path: Path | None, *, quiet: bool, stream: TextIO | None = None) -> None:
        self.path, self.quiet, self.stream = path, quiet, stream  # None: sys.stderr as it is when logging
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        """Log ``"warning: " + message`` and keep ``message`` for ``metrics.json``."""
        self.warnings.append(message)
        self(f"warning: {message}")

    def __call__(self, message: str) -> None:
        """Log one message to the file and, unless quiet, to the stream."""
        self.file(message)
        if not self.quiet:
            print(message, file=self.stream or sys.stderr, flush=True)

    def file(self, message: str) -> None:
        """Log one message to ``log.txt`` only (e.g. what the CLI prints on stdout itself)."""
        if self.path is not None:
            with open(self.path, "a") as handle:
                handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def append_history(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one epoch's record to ``history.jsonl``."""
    with open(run_dir / HISTORY, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def truncate_history(run_dir: Path, epochs_done: int) -> None:
    """Keep only the records of epochs ``1..epochs_done`` (a resumed run redoes the rest); a file of
    an older run numbered from 0 is rewritten numbered from 1."""
    path = run_dir / HISTORY
    if not path.exists():
        return
    kept = [record for record in read_history(run_dir) if record["epoch"] <= epochs_done]
    path.write_text("".join(json.dumps(record) + "\n" for record in kept))


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """All records of ``history.jsonl``, epochs numbered from 1 (the first epoch is ``epoch: 1``).

    Older runs numbered epochs from 0; their records are renumbered here, so
    every reader (report, resume) sees one numbering. A file numbered from 1 never holds epoch 0.
    """
    path = run_dir / HISTORY
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    if any(record.get("epoch") == 0 for record in records):
        records = [{**record, "epoch": record["epoch"] + 1} if isinstance(record.get("epoch"), int) else record
                   for record in records]
    return records


def _json_safe(value: Any) -> Any:
    """NaN/inf become ``null`` so the file stays valid JSON for every reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def metrics_json_text(metrics: dict[str, Any]) -> str:
    """The exact text of ``metrics.json`` (also what ``--json`` prints)."""
    return json.dumps(_json_safe(metrics), indent=2)


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json``."""
    (run_dir / METRICS).write_text(metrics_json_text(metrics) + "\n")


def write_predictions(
    path: Path, ids: list[str], labels: torch.Tensor, preds: torch.Tensor, probs: torch.Tensor | None
) -> None:
    """One CSV row per sample: ``id,label,pred`` and, with probabilities, ``prob_0..prob_{K-1}``.

    float32 probabilities are written with 9 significant digits and float64 ones with 17, which
    round-trips them exactly, so every metric can be recomputed from the file. Rows are formatted
    a block at a time with one ``%`` format each (a million rows of 10 classes in about 4 s, in
    bounded memory); ids that need CSV quoting (a comma, quote or line break) are quoted as
    :mod:`csv` would quote them.
    """
    digits = 17 if probs is not None and probs.dtype == torch.float64 else 9
    width = probs.shape[1] if probs is not None else 0
    row_format = "%s,%d,%d" + f",%.{digits}g" * width
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerow(["id", "label", "pred", *(f"prob_{k}" for k in range(width))])
        for start in range(0, len(ids), _ROWS_PER_BLOCK):
            stop = min(start + _ROWS_PER_BLOCK, len(ids))
            block_ids = [_csv_field(i) for i in ids[start:stop]]
            block_labels, block_preds = labels[start:stop].tolist(), preds[start:stop].tolist()
            block_probs = probs[start:stop].tolist() if probs is not None else [[]] * (stop - start)
            handle.write("".join(row_format % (i, label, pred, *row) + "\r\n" for i, label, pred, row in
                                 zip(block_ids, block_labels, block_preds, block_probs, strict=True)))


_ROWS_PER_BLOCK = 65_536


def _csv_field(value: str) -> str:
    """``value`` as :class:`csv.writer` writes a field: quoted, quotes doubled, when it must be."""
    value = str(value)
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value
