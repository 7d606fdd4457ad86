"""`visionbench evaluate --pred FILE`: another tool's predictions, evaluated like a trained run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from visionbench import api, cli


def _probability_file(path: Path, n: int = 300, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    rows = ["id,label," + ",".join(f"prob_{c}" for c in range(k))]
    rows += [f"s{i},{labels[i]}," + ",".join(repr(float(p)) for p in probs[i]) for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return labels, probs


def test_probability_file_metrics_equal_scikit_learn(tmp_path: Path) -> None:
    labels, probs = _probability_file(tmp_path / "p.csv")
    result = api.evaluate(pred=tmp_path / "p.csv", out=tmp_path / "run", quiet=True)
    m, preds = result.metrics, probs.argmax(axis=1)
    assert m["accuracy"]["value"] == skm.accuracy_score(labels, preds)
    assert m["f1_macro"]["value"] == skm.f1_score(labels, preds, average="macro")
    assert m["roc_auc_macro"]["value"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr"), rel=1e-12)
    onehot = label_binarize(labels, classes=range(4))
    assert m["average_precision_macro"]["value"] == pytest.approx(skm.average_precision_score(onehot, probs), rel=1e-12)
    assert m["log_loss"]["value"] == pytest.approx(skm.log_loss(labels, probs), rel=1e-12)
    for name in ("accuracy", "roc_auc_macro", "log_loss", "ece"):
        low, high = m[name]["ci95"]
        assert low <= m[name]["value"] <= high, name
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.yaml", "metrics.json", "predictions.csv", "report.html", "log.txt"} <= files
    assert "ROC curves" in (tmp_path / "run" / "report.html").read_text()


def test_pred_only_file_with_num_classes_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.csv").write_text("id,label,pred\na,0,0\nb,1,2\nc,2,2\n")
    code = cli.main(["evaluate", "--pred", str(tmp_path / "p.csv"), "--num-classes", "5", "--json", "--quiet",
                     "--out", str(tmp_path / "run")])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(printed["confusion_matrix"]) == 5 and "roc_auc_macro" not in printed
    # scikit-learn averages over labels=range(5): classes 3 and 4 count as 0
    assert printed["recall_macro"]["value"] == skm.recall_score([0, 1, 2], [0, 2, 2], labels=range(5),
                                                                average="macro", zero_division=0)


@pytest.mark.parametrize(("text", "match"), [
    ("id,label,pred\na,0,x\n", r"p\.csv:2: pred must be a class index"),
    ("id,label,prob_0,prob_1\na,0,0.5,0.6\n", r"p\.csv:2: probabilities must sum to 1"),
    ("id,label,prob_0,prob_1\na,0,nan,0.5\n", r"p\.csv:2: probabilities must be finite"),
])
def test_bad_files_give_one_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, match: str) -> None:
    (tmp_path / "p.csv").write_text(text)
    code = cli.main(["evaluate", "--pred", str(tmp_path / "p.csv"), "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert re.search(match, err), err


def test_run_or_pred_but_not_both_and_no_model_to_reevaluate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either RUN_DIR .* or --pred FILE"):
        api.evaluate()
    (tmp_path / "p.csv").write_text("id,label,pred\na,0,0\nb,1,1\n")
    run = api.evaluate(pred=tmp_path / "p.csv", out=tmp_path / "run", quiet=True).run_dir
    with pytest.raises(ValueError, match="either RUN_DIR .* or --pred FILE"):
        api.evaluate(run, pred=tmp_path / "p.csv")
    with pytest.raises(ValueError, match="has no model to re-evaluate"):
        api.evaluate(run)
