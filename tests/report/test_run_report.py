"""report.html of one run: built from a real tiny run and from synthetic run directories with and
without each optional file; always self-contained, escaped, and written atomically."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import visionbench
from tests.report.page_checks import assert_self_contained, decoded_pngs, headings
from visionbench.engine import rundir
from visionbench.report import build_run_report, html, plots, run_report

HEADINGS = {
    "metrics": "Metrics", "history": "Training curves", "confusion": "Confusion matrix",
    "per_class": "Per-class precision, recall and F1", "roc": "ROC curves", "pr": "Precision–recall curves",
    "reliability": "Calibration (reliability diagram)", "errors": "Worst errors", "config": "Configuration",
}


# ------------------------------------------------------------------------------------- helpers


def synthetic_metrics(classes: list[str], rng: np.random.Generator, *, curves: bool = True) -> dict:
    """A metrics.json shaped like the real one, plus the ROC/PR/reliability keys."""
    k = len(classes)
    matrix = rng.integers(0, 3, size=(k, k)) + np.diag(rng.integers(20, 40, size=k))
    metrics = {"task": "classify", "num_samples": int(matrix.sum()), "split": "test"}
    for name, value, higher in (("accuracy", 0.91, True), ("f1_macro", 0.9, True), ("log_loss", 0.31, False)):
        metrics[name] = {"value": value, "ci95": [value - 0.02, value + 0.02], "higher_is_better": higher}
    metrics["classes"] = classes
    metrics["per_class"] = {n: rng.uniform(0.7, 1, k).tolist() for n in ("precision", "recall", "f1")}
    metrics["per_class"]["support"] = matrix.sum(axis=1).tolist()
    metrics["confusion_matrix"] = matrix.tolist()
    if curves:
        grid = np.linspace(0, 1, 21)
        metrics["roc_curve"] = {c: {"fpr": grid.tolist(), "tpr": (grid ** rng.uniform(0.1, 0.5)).tolist(),
                                    "auc": float(rng.uniform(0.8, 1))} for c in classes}
        metrics["pr_curve"] = {c: {"recall": grid[::-1].tolist(), "precision": (1 - grid[::-1] ** 4 / 2).tolist(),
                                   "ap": float(rng.uniform(0.7, 1))} for c in classes}
        counts = [0, 0, 0, 0, 0, 3, 8, 20, 60, 150]
        metrics["reliability"] = {
            "bin_edges": np.linspace(0, 1, 11).tolist(), "count": counts, "ece": 0.042,
            "confidence": [None] * 5 + [0.55, 0.65, 0.75, 0.85, 0.97],  # empty bins are null
            "accuracy": [None] * 5 + [0.33, 0.5, 0.7, 0.85, 0.95],
        }
    return metrics


def write_examples(run_dir: Path, k: int, channels: int, rng: np.random.Generator, m: int = 12, size: int = 8) -> None:
    """An examples.npz: uint8 images [M, C, H, W] of the most confident mistakes."""
    np.savez(run_dir / run_report.EXAMPLES,
             images=rng.integers(0, 256, size=(m, channels, size, size), dtype=np.uint8),
             ids=np.array([f"sample:{i}" for i in range(m)]), labels=rng.integers(0, k, m),
             preds=rng.integers(0, k, m), confidence=np.sort(rng.uniform(0.5, 1, m))[::-1])


def write_predictions(run_dir: Path, k: int, rng: np.random.Generator, n: int = 60, probs: bool = True) -> None:
    """A predictions.csv with ``id,label,pred[,prob_k…]`` rows, a quarter of them wrong."""
    rows = ["id,label,pred" + "".join(f",prob_{j}" for j in range(k)) * probs]
    for i in range(n):
        p = rng.dirichlet(np.ones(k))
        pred, label = int(p.argmax()), int(p.argmax()) if i % 4 else int(rng.integers(0, k))
        rows.append(f"s{i},{label},{pred}" + "".join(f",{v:.9g}" for v in p) * probs)
    (run_dir / rundir.PREDICTIONS).write_text("\n".join(rows) + "\n")


def make_run(
    path: Path, classes: list[str], *, seed: int = 0, config: bool = True, history: bool = True, metrics: bool = True,
    curves: bool = True, predictions: bool = True, examples: int | None = 1,
) -> Path:
    """A synthetic run directory; each flag leaves out one input. ``examples`` = channels (1, 3) or None."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    if config:
        (path / rundir.CONFIG).write_text(yaml.safe_dump({"task": "classify", "model": "mlp", "data": "digits",
                                                          "epochs": 3, "weights": None, "amp": True}))
    if history:
        for epoch in range(3):
            rundir.append_history(path, {"epoch": epoch, "train_loss": 1.0 / (epoch + 1), "val_loss": 1.2 / (epoch + 1),
                                         "val_accuracy": 0.7 + 0.1 * epoch, "lr": 0.01})
    if metrics:
        rundir.write_metrics(path, synthetic_metrics(classes, rng, curves=curves))
    if predictions:
        write_predictions(path, len(classes), rng)
    if examples:
        write_examples(path, len(classes), examples, rng)
    return path


# ------------------------------------------------------------------------------------- real run


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real") / "run"
    return visionbench.train(model="mlp", epochs=2, out=out, quiet=True).run_dir


def test_real_run_report(real_run: Path) -> None:
    path = build_run_report(real_run)
    assert path == real_run / "report.html"
    text = path.read_text(encoding="utf-8")
    assert_self_contained(text)
    metrics = json.loads((real_run / rundir.METRICS).read_text())
    expected = ["Metrics", "Training curves", "Confusion matrix", "Per-class precision, recall and F1"]
    expected += [HEADINGS[k] for k, key in (("roc", "roc_curve"), ("pr", "pr_curve"), ("reliability", "reliability"))
                 if key in metrics]
    expected += ["Worst errors", "Configuration"]
    assert headings(text) == expected
    assert len(decoded_pngs(text)) >= 3
    assert "accuracy" in text and "95% CI" in text and f"{metrics['accuracy']['value']:.4f}" in text


# ------------------------------------------------------------------------------------- synthetic runs


@pytest.mark.parametrize(("k", "channels"), [(2, 1), (30, 3)])
def test_every_section_when_every_file_exists(tmp_path: Path, k: int, channels: int) -> None:
    run = make_run(tmp_path / "run", [f"class {i}" for i in range(k)], examples=channels)
    text = build_run_report(run).read_text(encoding="utf-8")
    assert_self_contained(text)
    assert headings(text) == list(HEADINGS.values())
    assert "Not in this report" not in text
    # training, confusion (counts, normalised), per-class, ROC, PR, reliability, examples
    assert len(decoded_pngs(text)) == 8
    assert "The 12 most confident mistakes of 12 stored" in text
    assert re.search(r"\d+ of 60 predictions in predictions.csv are wrong; the \d+ most confident:", text)
    if k > plots.MAX_LEGEND:
        assert "30 classes: the 10 with the lowest AUC are coloured and named" in text
        assert "the 10 with the lowest AP" in text


@pytest.mark.parametrize(("drop", "gone", "reasons"), [
    ({"history": False, "config": False}, ["history", "config"],
     ["Training curves: no history.jsonl", "Configuration: no config.yaml"]),
    ({"curves": False, "examples": None, "predictions": False}, ["roc", "pr", "reliability", "errors"],
     ["no &#x27;roc_curve&#x27; in metrics.json", "no &#x27;pr_curve&#x27;", "no &#x27;reliability&#x27;",
      "Worst errors: no examples.npz and no predictions.csv"]),
])
def test_missing_inputs_skip_their_sections_with_a_note(tmp_path: Path, drop: dict, gone: list, reasons: list) -> None:
    run = make_run(tmp_path / "run", ["a", "b", "c"], **drop)
    text = build_run_report(run).read_text(encoding="utf-8")
    assert_self_contained(text)
    assert headings(text) == [title for key, title in HEADINGS.items() if key not in gone]
    assert "Not in this report" in text and all(reason in text for reason in reasons)
    decoded_pngs(text)


def test_run_evaluated_from_predictions_only(tmp_path: Path) -> None:
    # Another tool's predictions: metrics and predictions.csv without probabilities; no history, no images.
    run = make_run(tmp_path / "run", ["a", "b"], config=False, history=False, curves=False, predictions=False,
                   examples=None)
    write_predictions(run, 2, np.random.default_rng(1), probs=False)
    text = build_run_report(run).read_text(encoding="utf-8")
    assert headings(text) == ["Metrics", "Confusion matrix", "Per-class precision, recall and F1", "Worst errors"]
    assert "No examples.npz in this run directory" in text
    assert "predictions in predictions.csv are wrong" in text and "—" in text  # confidence unknown


def test_text_from_files_is_escaped(tmp_path: Path) -> None:
    classes = ["<b>&", "cat $x$", "dog"]
    run = make_run(tmp_path / "run", classes, curves=False)
    (run / rundir.CONFIG).write_text(yaml.safe_dump({"task": "classify", "model": "<script>alert(1)</script>"}))
    text = build_run_report(run).read_text(encoding="utf-8")
    assert "&lt;b&gt;&amp;" in text
    assert "<b>&" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script" not in text
    assert len(decoded_pngs(text)) == 5  # "$x$" drawn as text, not mathtext


def test_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path / "run", ["a", "b"], history=False, curves=False)
    calls = []
    real_atomic_write = html.atomic_write
    monkeypatch.setattr(html, "atomic_write", lambda path, write: (calls.append(path), real_atomic_write(path, write)))
    build_run_report(run)
    assert calls == [run / "report.html"]
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_failure_leaves_previous_report_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path / "run", ["a", "b"])
    (run / "report.html").write_text("previous report")

    def broken(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(plots, "per_class_bars", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        build_run_report(run)
    assert (run / "report.html").read_text() == "previous report"


# ------------------------------------------------------------------------------------- bad input


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        build_run_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no config.yaml, metrics.json or history.jsonl"):
        build_run_report(tmp_path / "empty")


def test_malformed_files_are_named(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", ["a", "b"])
    (run / rundir.PREDICTIONS).write_text("id,label,pred\ns0,1,0\ns1,one,0\n")
    with pytest.raises(ValueError, match=r"predictions.csv:3: cannot read the row"):
        build_run_report(run)
    (run / rundir.PREDICTIONS).unlink()
    np.savez(run / run_report.EXAMPLES, images=np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"'images' must be uint8 \[M, C, H, W\]"):
        build_run_report(run)
    np.savez(run / run_report.EXAMPLES, images=np.zeros((2, 1, 8, 8), np.uint8), ids=np.array([{"x": 1}] * 2))
    with pytest.raises(ValueError, match="Save ids as a str array"):  # never unpickled
        build_run_report(run)
    (run / rundir.METRICS).write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json is not valid JSON"):
        build_run_report(run)


# ------------------------------------------------------------------------------------- plots


def test_example_grid_upscales_small_images_by_nearest_neighbour() -> None:
    gray = np.zeros((3, 1, 8, 8), np.uint8)
    gray[:, :, ::2, ::2] = 255
    png = plots.example_grid(gray, ["0 / 1 (0.99)"] * 3)
    assert Image.open(io.BytesIO(png)).format == "PNG"
    pixels = plots._upscaled_rgb(gray[0])
    assert pixels.shape == (96, 96, 3)
    assert np.array_equal(pixels[:12, :12], np.full((12, 12, 3), 255)) and not pixels[12:24, :12].any()  # 12×12 blocks
    assert plots._upscaled_rgb(np.zeros((3, 32, 16), np.uint8)).shape == (96, 48, 3)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        plots._upscaled_rgb(np.zeros((2, 8, 8), np.uint8))


def test_import_and_plots_leave_matplotlib_global_state_alone(tmp_path: Path) -> None:
    code = (
        "import sys, matplotlib; before = matplotlib.rcParams.copy()\n"
        "from visionbench.report import plots\n"
        "plots.training_curves([{'epoch': 0, 'train_loss': 1.0}])\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        # dict.__eq__: RcParams' own == reads 'backend', which would resolve (and so change) it
        "assert dict.__eq__(matplotlib.rcParams, before)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
