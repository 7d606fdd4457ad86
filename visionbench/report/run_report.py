"""``report.html`` of one run, built only from the files of its run directory.

Inputs (each optional, each section shown only when its input exists): ``config.yaml``,
``history.jsonl``, ``metrics.json`` (scalar metrics, ``per_class``, ``confusion_matrix``,
``roc_curve``, ``pr_curve``, ``reliability``), ``predictions.csv``, ``examples.npz`` and
``saliency/index.json`` with its Grad-CAM panels (:mod:`visionbench.explain.run_examples`). A run
evaluated from another tool's predictions has no history and no images; its report simply lists
those sections as not shown, with the reason.

Reading only files (never the model, the data or the code that made them) means the report of any
run, old or new, can be rebuilt at any time::

    from visionbench.report import build_run_report
    build_run_report("runs/digits-cnn-small-001")   # → runs/digits-cnn-small-001/report.html
"""

from __future__ import annotations

import csv
import heapq
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from visionbench.engine import rundir
from visionbench.engine.rundir import EXAMPLES, REPORT
from visionbench.report import html, plots

# Shown as headline cards when present, in this order (classification, detection, segmentation).
HEADLINE = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "AP", "AP50", "mIoU", "dice_mean")
MAX_MISTAKES = 20  # rows of the most-confident-mistakes table read from predictions.csv
MAX_EXAMPLES = 32  # images in the worst-errors grid

Section = tuple[str, str, str]  # (anchor, title, body HTML)


@dataclass(frozen=True)
class Mistake:
    """One misclassified row of ``predictions.csv``."""

    confidence: float | None  # probability of the predicted class; None without probability columns
    sample_id: str
    label: int
    pred: int


@dataclass(frozen=True)
class PredictionSummary:
    """What the report takes from ``predictions.csv``: counts and the most confident mistakes."""

    total: int
    wrong: int
    mistakes: list[Mistake]  # most confident first
    has_probs: bool


@dataclass(frozen=True)
class RunFiles:
    """The parsed run-directory files; ``None`` (or empty history) where a file is absent."""

    run_dir: Path
    config: dict[str, Any] | None
    history: list[dict[str, Any]]
    metrics: dict[str, Any] | None
    predictions: PredictionSummary | None
    examples: dict[str, np.ndarray] | None

    @property
    def task(self) -> str:
        """The task recorded in ``metrics.json`` (``"classify"`` when absent)."""
        return (self.metrics or {}).get("task", "classify")

    @property
    def multilabel(self) -> bool:
        """Whether ``metrics.json`` is of a multi-label run (no confusion matrix, ROC, calibration or errors)."""
        return bool((self.metrics or {}).get("multilabel"))

    @property
    def classes(self) -> list[str]:
        """Class names from ``metrics.json`` (or ``"0".."K-1"`` from the confusion matrix)."""
        metrics = self.metrics or {}
        if metrics.get("classes"):
            return [str(c) for c in metrics["classes"]]
        return [str(i) for i in range(len(metrics.get("confusion_matrix") or []))]

    def class_name(self, index: int) -> str:
        """The name of class ``index``, or the number itself when out of range."""
        classes = self.classes
        return classes[index] if 0 <= index < len(classes) else str(index)


# -------------------------------------------------------------------------------------------- reading


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}). Re-run `visionbench evaluate` to rewrite it.") from None


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """``config.yaml`` as a dict (``yaml.safe_load``), or ``None`` when absent."""
    path = run_dir / rundir.CONFIG
    if not path.is_file():
        return None
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a mapping of options; got {type(config).__name__}.")
    return config


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """``metrics.json`` as a dict, or ``None`` when absent."""
    path = run_dir / rundir.METRICS
    if not path.is_file():
        return None
    metrics = _read_json(path)
    if not isinstance(metrics, dict):
        raise ValueError(f"{path} must hold a JSON object of metrics; got {type(metrics).__name__}.")
    return metrics


def _prediction_columns(header: Sequence[str], path: Path) -> tuple[int, int, int | None, list[int]]:
    """Indices of ``id``, ``label``, ``pred`` (or None) and the ``prob_k`` columns, in k order."""
    if "id" not in header or "label" not in header:
        raise ValueError(f"{path} must have a header with 'id' and 'label' columns; got {list(header)}.")
    probs = sorted((int(name[5:]), i) for i, name in enumerate(header) if name.startswith("prob_") and name[5:].isdigit())
    pred = header.index("pred") if "pred" in header else None
    if pred is None and not probs:
        raise ValueError(f"{path} needs a 'pred' column or 'prob_0'..'prob_K-1' columns; got {list(header)}.")
    return header.index("id"), header.index("label"), pred, [i for _, i in probs]


def _parse_prediction(row: Sequence[str], columns: tuple[int, int, int | None, list[int]]) -> Mistake:
    """One CSV row as (confidence, id, label, pred)."""
    id_col, label_col, pred_col, prob_cols = columns
    probs = [float(row[i]) for i in prob_cols]
    pred = int(row[pred_col]) if pred_col is not None else int(np.argmax(probs))
    confidence = probs[pred] if 0 <= pred < len(probs) else None
    return Mistake(confidence, row[id_col], int(row[label_col]), pred)


def read_predictions(run_dir: Path, limit: int = MAX_MISTAKES) -> PredictionSummary | None:
    """Counts and the ``limit`` most confident mistakes of ``predictions.csv``, or ``None``.

    A well-formed file is read at once with the vectorised predictions reader (a million rows in
    about 2 s); one it refuses is read row by row, which tolerates what the report does not need
    (say, rows that do not sum to 1) and names the first row it cannot read.
    """
    path = run_dir / rundir.PREDICTIONS
    if not path.is_file():
        return None
    summary = _summary_of_valid_file(path, limit)
    return summary if summary is not None else _streamed_summary(path, limit)


def _summary_of_valid_file(path: Path, limit: int) -> PredictionSummary | None:
    """:func:`read_predictions` by array operations, or ``None`` when the strict reader refuses the file."""
    from visionbench.data.predictions import read_predictions_file

    try:
        table = read_predictions_file(path)
    except ValueError:
        return None
    labels, preds = table.labels.numpy(), table.preds.numpy()
    wrong = np.flatnonzero(labels != preds)
    if table.probs is None:
        confidence = np.full(wrong.size, -1.0)
    else:
        confidence = table.probs.numpy()[wrong, preds[wrong]]
    order = np.lexsort((wrong, -confidence))[:limit]  # most confident first, then file order
    mistakes = [Mistake(None if table.probs is None else float(confidence[i]), table.ids[wrong[i]],
                        int(labels[wrong[i]]), int(preds[wrong[i]])) for i in order]
    return PredictionSummary(len(labels), int(wrong.size), mistakes, has_probs=table.probs is not None)


def _streamed_summary(path: Path, limit: int) -> PredictionSummary:
    """:func:`read_predictions` one row at a time (files the strict reader refuses)."""
    total, wrong, heap = 0, 0, []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        columns = _prediction_columns(next(reader, []), path)
        for line, row in enumerate(reader, start=2):
            try:
                record = _parse_prediction(row, columns)
            except (ValueError, IndexError) as error:
                raise ValueError(f"{path}:{line}: cannot read the row ({error}). Each row needs id, label, pred "
                                 "and prob_k values as written by `visionbench train`.") from None
            total += 1
            if record.label != record.pred:
                wrong += 1
                key = -1.0 if record.confidence is None else record.confidence
                heapq.heappush(heap, (key, line, record))
                if len(heap) > limit:
                    heapq.heappop(heap)
    mistakes = [record for _, _, record in sorted(heap, key=lambda item: (-item[0], item[1]))]
    return PredictionSummary(total, wrong, mistakes, has_probs=bool(columns[3]))


def read_examples(run_dir: Path) -> dict[str, np.ndarray] | None:
    """``examples.npz`` (``images`` uint8 [M, C, H, W], ``ids``, ``labels``, ``preds``, ``confidence``), or ``None``."""
    path = run_dir / EXAMPLES
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:  # never unpickle: the file may come from anywhere
            examples = {name: archive[name] for name in archive.files}
    except ValueError as error:
        raise ValueError(f"cannot read {path}: {error}. Save ids as a str array (np.array(ids, dtype=str)).") from None
    images = examples.get("images")
    if images is None or images.ndim != 4 or images.shape[1] not in (1, 3) or images.dtype != np.uint8:
        shape = None if images is None else (images.shape, str(images.dtype))
        raise ValueError(f"{path}: 'images' must be uint8 [M, C, H, W] with C = 1 or 3; got {shape}.")
    for name in ("ids", "labels", "preds", "confidence"):
        if name in examples and len(examples[name]) != len(images):
            raise ValueError(f"{path}: '{name}' has {len(examples[name])} entries for {len(images)} images.")
    return examples


def read_run_files(run_dir: Path) -> RunFiles:
    """Parse every report input of ``run_dir``.

    Raises:
        ValueError: ``run_dir`` is missing, holds none of config.yaml/metrics.json/history.jsonl, or a
            file is malformed (the message names the file and the fix).
    """
    if not run_dir.is_dir():
        raise ValueError(f"run directory {str(run_dir)!r} does not exist. Give a directory made by `visionbench train`.")
    metrics = read_metrics(run_dir)
    single = not (metrics or {}).get("multilabel")  # multi-label predictions.csv has no label/pred columns
    files = RunFiles(run_dir, read_config(run_dir), rundir.read_history(run_dir), metrics,
                     read_predictions(run_dir) if single else None, read_examples(run_dir) if single else None)
    if files.config is None and files.metrics is None and not files.history:
        raise ValueError(f"{str(run_dir)!r} holds no {rundir.CONFIG}, {rundir.METRICS} or {rundir.HISTORY}; "
                         "give a run directory made by `visionbench train` or `visionbench evaluate`.")
    return files


# ------------------------------------------------------------------------------------------- sections


def _metrics_section(files: RunFiles) -> Section | str:
    metrics = files.metrics
    if metrics is None or not html.scalar_metrics(metrics):
        return f"Metrics: no {rundir.METRICS} with scalar metrics in this run directory."
    samples = metrics.get("num_samples")
    split = metrics.get("split", "test")
    lead = html.note(f"Computed on {samples} {split} samples; 95% intervals by bootstrap over samples."
                     if samples is not None else "95% intervals by bootstrap over samples.")
    return "metrics", "Metrics", lead + html.metrics_table(metrics)


def _best_epoch_note(history: Sequence[Mapping[str, Any]]) -> str:
    """One line: the number of epochs and the best validation accuracy (when recorded)."""
    scored = [(r["val_accuracy"], r.get("epoch", i + 1)) for i, r in enumerate(history)
              if r.get("val_accuracy") is not None]
    if not scored:
        return f"{len(history)} epochs recorded."
    best, epoch = max(scored, key=lambda item: (item[0], -item[1]))
    return f"{len(history)} epochs recorded; best val_accuracy {best:.4f} at epoch {epoch}."


def _training_section(files: RunFiles) -> Section | str:
    if not files.history:
        return f"Training curves: no {rundir.HISTORY} (a run evaluated from predictions has no training history)."
    body = html.note(_best_epoch_note(files.history))
    body += html.image(plots.training_curves(files.history), "training and validation loss and metrics per epoch")
    return "training", "Training curves", body


def _confusion_section(files: RunFiles) -> Section | str:
    if files.multilabel:
        return ""  # labels are independent yes/no decisions: no K x K confusion
    matrix = (files.metrics or {}).get("confusion_matrix")
    if not matrix:
        return f"Confusion matrix: no 'confusion_matrix' in {rundir.METRICS}."
    body = html.note("Rows: true class; columns: predicted class. Normalised: each row divided by the class's "
                     "number of samples, so the diagonal is each class's recall.")
    labels = [str(c) for c in (files.metrics or {}).get("confusion_labels") or files.classes]  # detection: + background
    body += html.row(html.image(plots.confusion_matrix(matrix, labels), "confusion matrix, counts"),
                     html.image(plots.confusion_matrix(matrix, labels, normalize=True),
                                "confusion matrix normalised by true class"))
    return "confusion", "Confusion matrix", body


def _per_class_section(files: RunFiles) -> Section | str:
    per_class = (files.metrics or {}).get("per_class")
    if not per_class:
        return f"Per-class precision, recall and F1: no 'per_class' in {rundir.METRICS}."
    task = files.task
    if task != "classify" or files.multilabel:  # detection, segmentation, multi-label: a table of the lists
        columns = [n for n, v in per_class.items() if isinstance(v, list)]
        count = max((len(per_class[n]) for n in columns), default=0)
        names = files.classes if len(files.classes) == count else [str(i) for i in range(count)]
        rows = [(names[i], *(html.number(per_class[n][i]) if i < len(per_class[n]) else "—" for n in columns))
                for i in range(count)]
        table = html.table(("class", *columns), rows, numeric=range(1, len(columns) + 1))
        if task == "segment" and "iou" in per_class:
            bars = plots.per_class_bars(per_class, names, names=("iou", "dice"))
            table = html.image(bars, "per-class IoU and Dice") + table
        return "per-class", "Per-class metrics", table
    classes = files.classes
    names = [n for n in ("precision", "recall", "f1", "support") if n in per_class]
    rows = [(c, *(html.number(per_class[n][i]) for n in names)) for i, c in enumerate(classes)]
    body = html.image(plots.per_class_bars(per_class, classes), "per-class precision, recall and F1")
    body += html.table(("class", *names), rows, numeric=range(1, len(names) + 1))
    return "per-class", "Per-class precision, recall and F1", body


def _curve_note(curves: Mapping[str, Any], score_key: str) -> str:
    """Which classes the plot names, when there are too many for one legend."""
    if len(curves) <= plots.MAX_LEGEND:
        return f"One-vs-rest curve per class; the legend gives each class's {score_key.upper()}."
    named = ", ".join(plots.lowest_scoring(curves, score_key))
    return (f"{len(curves)} classes: the {plots.MAX_LEGEND} with the lowest {score_key.upper()} are coloured and "
            f"named ({named}); the others are drawn in grey.")


def _curve_section(files: RunFiles, key: str, score_key: str, anchor: str, title: str,
                   draw: Callable[[Mapping[str, Any]], bytes]) -> Section | str:
    curves = (files.metrics or {}).get(key)
    if not curves:
        return f"{title}: no '{key}' in {rundir.METRICS} (it needs predicted probabilities)."
    return anchor, title, html.note(_curve_note(curves, score_key)) + html.image(draw(curves), title)


def _roc_section(files: RunFiles) -> Section | str:
    if files.task != "classify" or files.multilabel:
        return ""  # detection and segmentation have no ROC curves: nothing to say is missing
    return _curve_section(files, "roc_curve", "auc", "roc", "ROC curves", plots.roc_curves)


def _pr_section(files: RunFiles) -> Section | str:
    if files.task == "segment":
        return ""
    draw = plots.pr_curves
    if files.task == "detect":
        draw = partial(plots.pr_curves, title="Per class at IoU 0.5 (COCO's 101 recall points; legend: AP50)")
    return _curve_section(files, "pr_curve", "ap", "pr", "Precision–recall curves", draw)


def _calibration_section(files: RunFiles) -> Section | str:
    if files.task != "classify" or files.multilabel:
        return ""
    reliability = (files.metrics or {}).get("reliability")
    if not reliability:
        return f"Calibration: no 'reliability' in {rundir.METRICS} (it needs predicted probabilities)."
    body = html.note("Bars: accuracy of the samples whose confidence falls in each bin; a calibrated model's bars "
                     "reach the diagonal. Bottom: samples per bin. ECE is the count-weighted mean gap.")
    body += html.image(plots.reliability_diagram(reliability), "reliability diagram")
    return "calibration", "Calibration (reliability diagram)", body


def _short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _caption(files: RunFiles, examples: Mapping[str, np.ndarray], i: int) -> str:
    """``true / pred (confidence)`` over the sample id, for image ``i``."""
    true = files.class_name(int(examples["labels"][i])) if "labels" in examples else "?"
    pred = files.class_name(int(examples["preds"][i])) if "preds" in examples else "?"
    text = f"{_short(true, 12)} / {_short(pred, 12)}"
    if "confidence" in examples:
        text += f" ({float(examples['confidence'][i]):.2f})"
    if "ids" in examples:
        text += "\n" + _short(str(examples["ids"][i]), 22)
    return text


def _example_grid(files: RunFiles) -> str:
    """The image grid of ``examples.npz`` (HTML), or a note when the file is absent or empty."""
    examples = files.examples
    if examples is None:
        return html.note(f"No {EXAMPLES} in this run directory: no images to show.")
    count = min(len(examples["images"]), MAX_EXAMPLES)
    if count == 0:
        return html.note(f"{EXAMPLES} holds no images (no test sample was misclassified).")
    if "captions" in examples:  # detection and segmentation: drawn images with their own captions
        captions = [str(examples["captions"][i]) + ("\n" + _short(str(examples["ids"][i]), 22) if "ids" in examples
                                                     else "") for i in range(count)]
        lead = html.note(str(examples["description"]) if "description" in examples else "")
        wide = examples["images"].shape[3] > 2 * examples["images"].shape[2]  # image | truth | prediction panels
        grid = plots.example_grid(examples["images"][:count], captions, columns=2 if wide else 4)
        return lead + html.image(grid, "worst images")
    captions = [_caption(files, examples, i) for i in range(count)]
    lead = html.note(f"The {count} most confident mistakes of {len(examples['images'])} stored, "
                     "captioned true / predicted (confidence of the prediction).")
    return lead + html.image(plots.example_grid(examples["images"][:count], captions), "worst misclassified images")


def _mistakes_table(files: RunFiles) -> str:
    """The most confident mistakes read from ``predictions.csv`` (HTML), or an empty string."""
    summary = files.predictions
    if summary is None:
        return ""
    lead = html.note(f"{summary.wrong} of {summary.total} predictions in {rundir.PREDICTIONS} are wrong"
                     + (f"; the {len(summary.mistakes)} most confident:" if summary.mistakes else "."))
    rows = [(m.sample_id, files.class_name(m.label), files.class_name(m.pred), html.number(m.confidence, 3))
            for m in summary.mistakes]
    return lead + (html.table(("id", "true", "predicted", "confidence"), rows, numeric=(3,)) if rows else "")


def _errors_section(files: RunFiles) -> Section | str:
    if files.multilabel:
        return ""
    if files.examples is None and files.predictions is None:
        return f"Worst errors: no {EXAMPLES} and no {rundir.PREDICTIONS} in this run directory."
    return "errors", "Worst errors", _example_grid(files) + _mistakes_table(files)


SALIENCY_DIR, SALIENCY_INDEX = "saliency", "index.json"  # written by visionbench.explain.run_examples


def read_saliency(run_dir: Path) -> dict[str, Any] | str | None:
    """``saliency/index.json`` with its panels' PNG bytes under ``"pngs"``; ``None`` when absent; a
    sentence saying what is wrong when the index is malformed (the rest of the report still builds)."""
    path = run_dir / SALIENCY_DIR / SALIENCY_INDEX
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        names = [item["file"] for item in index["items"]]
    except (ValueError, KeyError, TypeError) as error:
        return f"{path} is not a valid explanations index ({error}); train or evaluate the run again to rewrite it."
    # Plain file names of this folder only: an index never makes the report read files elsewhere.
    if not all(isinstance(n, str) and n.endswith(".png") and Path(n).name == n for n in names):
        return f"{path} names files outside its folder; train or evaluate the run again to rewrite it."
    missing = [n for n in names if not (path.parent / n).is_file()]
    if missing:
        return f"{path} lists {len(missing)} panel(s) that are missing (e.g. {missing[0]}); evaluate the run again."
    return dict(index, pngs=[(path.parent / n).read_bytes() for n in names])


def _saliency_section(files: RunFiles) -> Section | str:
    if files.task not in ("classify", "segment") or files.multilabel:
        return ""
    saliency = read_saliency(files.run_dir)
    if saliency is None:  # runs from before explanations, and runs of predictions files: nothing to say
        return ""
    if isinstance(saliency, str):
        return f"Explanations: {saliency}"
    if saliency.get("skipped"):
        return f"Explanations: none for this model: {saliency['skipped']}"
    lead = html.note(str(saliency.get("description", "")) + " Colours: jet, red = strongest evidence for the class.")
    pictures = [html.image(png, f"{item.get('kind', '')} {item.get('id', '')}")
                for png, item in zip(saliency["pngs"], saliency["items"], strict=True)]
    return "explanations", "Explanations (Grad-CAM)", lead + html.row(*pictures)


def _config_section(files: RunFiles) -> Section | str:
    if files.config is None:
        return f"Configuration: no {rundir.CONFIG} in this run directory."
    return "config", "Configuration", html.config_table(files.config)


SECTIONS: tuple[Callable[[RunFiles], Section | str], ...] = (
    _metrics_section, _training_section, _confusion_section, _per_class_section, _roc_section, _pr_section,
    _calibration_section, _errors_section, _saliency_section, _config_section,
)


# --------------------------------------------------------------------------------------------- page


def _subtitle(files: RunFiles) -> str:
    """One line: task, model, data, epochs, samples and where the run lives."""
    config, metrics = files.config or {}, files.metrics or {}
    parts = [f"task {config.get('task') or metrics.get('task') or '?'}"]
    parts += [f"{key} {config[key]}" for key in ("model", "data") if config.get(key) is not None]
    if files.history:
        parts.append(f"{len(files.history)} epochs")
    if metrics.get("num_samples") is not None:
        parts.append(f"{metrics['num_samples']} {metrics.get('split', 'test')} samples")
    return " · ".join(parts) + f" · {files.run_dir}"


def _headline(metrics: Mapping[str, Any] | None) -> str:
    """Cards for the headline metrics (or the first four scalar metrics)."""
    if not metrics:
        return ""
    scalars = html.scalar_metrics(metrics)
    names = [n for n in HEADLINE if n in scalars][:4] or list(scalars)[:4]
    return html.cards(metrics, names)


def render_run_report(files: RunFiles) -> str:
    """The HTML text of the report of ``files`` (every section whose input exists)."""
    sections: list[Section] = []
    notes: list[str] = []
    for build in SECTIONS:
        result = build(files)
        if result:  # "" is a section that does not apply to the task: neither shown nor noted
            (notes.append if isinstance(result, str) else sections.append)(result)
    header = html.warnings((files.metrics or {}).get("warnings")) + _headline(files.metrics) + html.skipped(notes)
    return html.page(f"Run report: {files.run_dir.name}", _subtitle(files), header, sections)


def build_run_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html``: one self-contained page built only from the run's files.

    Every plot and table is made in memory first, then the page is written atomically (temporary
    file + rename), so a failure leaves any previous report untouched.

    Args:
        run_dir: a run directory (``config.yaml``, ``metrics.json``, … as written by
            ``visionbench train`` or ``evaluate``).

    Returns:
        The path of ``report.html``.

    Raises:
        ValueError: ``run_dir`` is not a run directory, or one of its files is malformed.

    Example:
        >>> build_run_report("runs/digits-mlp-001")  # doctest: +SKIP
        PosixPath('runs/digits-mlp-001/report.html')
    """
    run_dir = Path(run_dir)
    text = render_run_report(read_run_files(run_dir))
    return html.write_page(run_dir / REPORT, text)
