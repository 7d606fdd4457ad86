"""Tests of visionbench/compare.py, ``api.compare`` and ``visionbench compare``.

Fake run directories (a ``predictions.csv`` written with the csv module, optionally a
``metrics.json``) cover reading, alignment by id, the error messages, two runs and three runs
with Holm's correction; one end-to-end test trains two tiny runs and compares them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from sklearn.metrics import accuracy_score

import visionbench
from tests.test_cli import run_cli
from visionbench.comparison import compare_runs, format_comparison, read_predictions
from visionbench.engine.rundir import metrics_json_text
from visionbench.metrics.significance import holm

K = 3


def write_run(run_dir: Path, ids: list[str], labels: list[int], preds: list[int], *, probs: bool = True,
              classes: list[str] | None = None) -> Path:
    """A minimal run directory: predictions.csv (as rundir.write_predictions lays it out)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "pred", *([f"prob_{k}" for k in range(K)] if probs else [])])
        for sample_id, label, pred in zip(ids, labels, preds, strict=True):
            row = [0.8 if k == pred else 0.1 for k in range(K)]
            writer.writerow([sample_id, label, pred, *(row if probs else [])])
    if classes is not None:
        (run_dir / "metrics.json").write_text(json.dumps({"task": "classify", "classes": classes}))
    return run_dir


def fake_runs(tmp_path: Path, accuracies: list[float], n: int = 120, seed: int = 0) -> list[Path]:
    """Runs on the same ``n`` samples, each right on about the given share of them."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (n,), generator=g)
    ids = [f"img{i:04d}.png" for i in range(n)]
    dirs = []
    for index, accuracy in enumerate(accuracies):
        right = torch.rand(n, generator=g) < accuracy
        preds = torch.where(right, labels, (labels + 1 + torch.randint(0, K - 1, (n,), generator=g)) % K)
        dirs.append(write_run(tmp_path / f"run{index}", ids, labels.tolist(), preds.tolist()))
    return dirs


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default runs/ lands in the scratch directory


# --------------------------------------------------------------------------------------------
# read_predictions
# --------------------------------------------------------------------------------------------


def test_read_predictions_round_trip(tmp_path: Path) -> None:
    run = write_run(tmp_path / "a", ["x", "y", "z"], [0, 2, 1], [0, 1, 1], classes=["cat", "dog", "eel"])
    ids, labels, preds, probs, classes = read_predictions(run)
    assert ids == ["x", "y", "z"] and labels.tolist() == [0, 2, 1] and preds.tolist() == [0, 1, 1]
    assert probs.shape == (3, K) and probs[1].tolist() == pytest.approx([0.1, 0.8, 0.1])
    assert classes == ["cat", "dog", "eel"]


def test_read_predictions_without_probs_or_metrics(tmp_path: Path) -> None:
    run = write_run(tmp_path / "a", ["x", "y"], [0, 2], [1, 1], probs=False)
    result = read_predictions(run)
    assert result.probs is None and result.classes == ["0", "1", "2"]


def test_missing_predictions_says_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a run with predictions"):
        read_predictions(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        read_predictions(tmp_path / "nowhere")


@pytest.mark.parametrize("bad_row, message", [
    ("b,one,1,0.1,0.8,0.1", r"predictions.csv:3: label must be a class index .*got 'one'"),
    ("b,1,-2,0.1,0.8,0.1", r"predictions.csv:3: pred must be a class index .*got '-2'"),
    ("b,1,1,0.1,0.8", r"predictions.csv:3: expected 6 fields as in the header; got 5"),
    ("b,1,1,0.1,nan,0.1", r"predictions.csv:3: probabilities must be finite"),
    ("a,1,1,0.1,0.8,0.1", r"predictions.csv:3: id 'a' appears twice"),
    ("b,7,1,0.1,0.8,0.1", r"predictions.csv:3: label 7 is outside the 3 classes"),
])
def test_malformed_row_names_the_line(tmp_path: Path, bad_row: str, message: str) -> None:
    run = tmp_path / "a"
    run.mkdir()
    (run / "predictions.csv").write_text(f"id,label,pred,prob_0,prob_1,prob_2\na,0,0,0.8,0.1,0.1\n{bad_row}\n")
    with pytest.raises(ValueError, match=message):
        read_predictions(run)


def test_bad_header_names_line_one(tmp_path: Path) -> None:
    run = tmp_path / "a"
    run.mkdir()
    (run / "predictions.csv").write_text("id,target,pred\na,0,0\n")
    with pytest.raises(ValueError, match=r"predictions.csv:1: the header must have a 'label' column"):
        read_predictions(run)


# --------------------------------------------------------------------------------------------
# compare_runs
# --------------------------------------------------------------------------------------------


def test_two_runs(tmp_path: Path) -> None:
    a, b = fake_runs(tmp_path, [0.6, 0.9])
    result = compare_runs([a, b], resamples=300)
    assert result["task"] == "compare" and result["runs"] == [str(a), str(b)] and result["num_samples"] == 120
    json.loads(metrics_json_text(result))  # JSON-serialisable
    (pair,) = result["pairs"]
    _, labels, preds_a, _, _ = read_predictions(a)
    _, _, preds_b, _, _ = read_predictions(b)
    right_a, right_b = preds_a == labels, preds_b == labels
    assert pair["mcnemar"]["b"] == int((right_a & ~right_b).sum()) and pair["mcnemar"]["c"] == int((~right_a & right_b).sum())
    acc = pair["metrics"]["accuracy"]
    assert acc["a"] == pytest.approx(accuracy_score(labels, preds_a)) and acc["b"] == pytest.approx(accuracy_score(labels, preds_b))
    assert acc["diff"] == pytest.approx(acc["b"] - acc["a"])
    assert list(pair["metrics"]) == ["accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro"]
    for entry in [pair["mcnemar"], *pair["metrics"].values()]:
        assert entry["p_value_holm"] == entry["p_value"]  # one pair: nothing to correct
    assert pair["verdict"].startswith(f"{b} is better than {a} on accuracy by +")
    assert "McNemar p=" in pair["verdict"] and result["summary"] == pair["verdict"]
    text = format_comparison(result)
    assert text.splitlines()[0] == pair["verdict"]
    assert "B-A (pt)" in text and "f1_macro" in text and "McNemar exact" in text


def test_alignment_by_id_ignores_row_order(tmp_path: Path) -> None:
    a, b = fake_runs(tmp_path, [0.6, 0.7])
    lines = (b / "predictions.csv").read_text().splitlines()
    (b / "predictions.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    shuffled = compare_runs([a, b], resamples=100)
    again = compare_runs(fake_runs(tmp_path / "again", [0.6, 0.7]), resamples=100)
    assert shuffled["pairs"][0]["metrics"] == again["pairs"][0]["metrics"]
    assert shuffled["pairs"][0]["mcnemar"] == again["pairs"][0]["mcnemar"]


def test_no_difference_verdict(tmp_path: Path) -> None:
    a, b = fake_runs(tmp_path, [0.7, 0.7])
    same = read_predictions(a)
    write_run(tmp_path / "copy", same.ids, same.labels.tolist(), same.preds.tolist())
    result = compare_runs([a, tmp_path / "copy"], resamples=100)
    pair = result["pairs"][0]
    assert pair["verdict"].startswith("no significant difference at 5%")
    assert pair["mcnemar"] == {"b": 0, "c": 0, "p_value": 1.0, "p_value_holm": 1.0}
    assert all(m["diff"] == 0 and m["p_value"] == 1.0 for m in pair["metrics"].values())


def test_three_runs_are_holm_corrected(tmp_path: Path) -> None:
    runs = fake_runs(tmp_path, [0.5, 0.55, 0.9])
    result = compare_runs(runs, resamples=200)
    pairs = result["pairs"]
    assert [(p["a"], p["b"]) for p in pairs] == [(str(runs[0]), str(runs[1])), (str(runs[0]), str(runs[2])),
                                                 (str(runs[1]), str(runs[2]))]
    for name in ["accuracy", "f1_macro"]:
        raw = [p["metrics"][name]["p_value"] for p in pairs]
        assert [p["metrics"][name]["p_value_holm"] for p in pairs] == holm(raw)
    assert [p["mcnemar"]["p_value_holm"] for p in pairs] == holm([p["mcnemar"]["p_value"] for p in pairs])
    assert "Holm-adjusted" in pairs[1]["verdict"] and pairs[1]["verdict"].startswith(f"{runs[2]} is better than {runs[0]}")
    assert result["summary"].startswith("3 runs, 3 pairs") and str(runs[2]) in result["summary"]
    text = format_comparison(result)
    assert text.splitlines()[0] == result["summary"] and "p Holm" in text


def test_mismatched_ids_error_counts_and_examples(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", ["s1", "s2", "s3", "s4"], [0, 1, 2, 0], [0, 1, 2, 0])
    b = write_run(tmp_path / "b", ["s1", "s2", "t3", "t4", "t5"], [0, 1, 2, 0, 1], [0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=r"got 2 ids only in .*a \('s3', 's4'\) and 3 only in .*b \('t3', 't4', 't5'\)"):
        compare_runs([a, b])


def test_differing_labels_error_names_the_id(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", ["s1", "s2", "s3"], [0, 1, 2], [0, 1, 2])
    b = write_run(tmp_path / "b", ["s3", "s2", "s1"], [2, 2, 0], [2, 1, 0])
    with pytest.raises(ValueError, match=r"got label 1 in .*a and 2 in .*b for id 's2'"):
        compare_runs([a, b])


def test_needs_two_runs(tmp_path: Path) -> None:
    (a,) = fake_runs(tmp_path, [0.5])
    with pytest.raises(ValueError, match="at least 2 run directories; got 1"):
        compare_runs([a])


# --------------------------------------------------------------------------------------------
# api.compare and the command line
# --------------------------------------------------------------------------------------------


def test_cli_json_prints_compare_json(tmp_path: Path) -> None:
    a, b = fake_runs(tmp_path, [0.6, 0.8])
    out_dir = tmp_path / "cmp"
    code, out, err = run_cli(["compare", str(a), str(b), "--json", "--out", str(out_dir), "--resamples", "200"])
    assert code == 0, err
    assert err == ""  # --json is quiet
    printed = json.loads(out)
    assert printed == json.loads((out_dir / "compare.json").read_text())
    assert printed == json.loads((out_dir / "metrics.json").read_text())
    assert printed["resamples"] == 200 and len(printed["pairs"]) == 1


def test_cli_text_output_and_default_run_dir(tmp_path: Path) -> None:
    a, b = fake_runs(tmp_path, [0.6, 0.8])
    code, out, err = run_cli(["compare", str(a), str(b), "--quiet", "--resamples", "100"])
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"{b} is better than {a}") or "no significant" in out.splitlines()[0]
    assert out.rstrip().endswith("run directory: runs/compare-001")
    assert (Path("runs/compare-001/compare.json")).is_file()


def test_cli_errors_exit_2_without_writing(tmp_path: Path) -> None:
    a, b = fake_runs(tmp_path, [0.6, 0.8])
    code, _, err = run_cli(["compare", str(a)])
    assert code == 2 and "at least 2 run directories" in err
    code, _, err = run_cli(["compare", str(a), str(tmp_path / "missing")])
    assert code == 2 and "does not exist" in err and not Path("runs").exists()
    code, _, err = run_cli(["compare", str(a), str(b), "--resamples", "0"])
    assert code == 2 and "must be >= 1" in err
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "compare.json").write_text("{}")
    code, _, err = run_cli(["compare", str(a), str(b), "--out", str(taken)])
    assert code == 2 and "holds compare.json" in err and (taken / "compare.json").read_text() == "{}"


def test_end_to_end_two_trained_runs(tmp_path: Path) -> None:
    # Two seeds share the test split (split_seed stays 0), so they can be compared.
    first = visionbench.train(model="mlp", epochs=1, seed=0, out=tmp_path / "a", quiet=True)
    second = visionbench.train(model="mlp", epochs=1, seed=1, out=tmp_path / "b", quiet=True)
    from visionbench import api

    result = api.compare([first.run_dir, second.run_dir], out=tmp_path / "cmp", resamples=200, quiet=True)
    pair = result.result["pairs"][0]
    assert result.result["num_samples"] == first.metrics["num_samples"]
    assert pair["metrics"]["accuracy"]["a"] == pytest.approx(first.metrics["accuracy"]["value"])
    assert pair["metrics"]["accuracy"]["b"] == pytest.approx(second.metrics["accuracy"]["value"])
    assert pair["metrics"]["f1_macro"]["a"] == pytest.approx(first.metrics["f1_macro"]["value"])
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["pairs"][0]["verdict"] == pair["verdict"]
