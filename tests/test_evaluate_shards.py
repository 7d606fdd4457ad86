"""`visionbench evaluate --pred` on shards (several files, a folder, a pattern) and with `--resamples`.

The merged evaluation must equal the evaluation of one file holding the shards one after the
other: every metric's value and interval, the curves and the tables, exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from visionbench import api, cli
from visionbench.config import resolve

N, K, RESAMPLES = 900, 6, 200


def _rows(seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, N)
    logits = rng.normal(size=(N, K)) + 1.5 * np.eye(K)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return [f"s{i},{labels[i]}," + ",".join(repr(float(p)) for p in probs[i]) for i in range(N)]


HEADER = "id,label," + ",".join(f"prob_{c}" for c in range(K))


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def _scored(metrics: dict) -> dict:
    """metrics.json without what names the input."""
    return {key: value for key, value in metrics.items() if key != "split"}


def test_three_shards_equal_one_file_exactly(tmp_path: Path) -> None:
    rows = _rows()
    whole = api.evaluate(pred=_write(tmp_path / "all.csv", rows), out=tmp_path / "whole", quiet=True,
                         resamples=RESAMPLES).metrics
    shards = tmp_path / "shards"
    shards.mkdir()
    cuts = [0, 250, 620, N]
    paths = [_write(shards / f"part-{i}.csv", rows[cuts[i]:cuts[i + 1]]) for i in range(3)]
    for pred in (paths, shards, str(shards / "part-*.csv")):
        merged = api.evaluate(pred=pred, out=tmp_path / f"merged-{len(list(tmp_path.iterdir()))}", quiet=True,
                              resamples=RESAMPLES).metrics
        assert json.dumps(_scored(merged), sort_keys=True) == json.dumps(_scored(whole), sort_keys=True)
        assert merged["split"] == "predictions files (3 shards)"
    for name in ("roc_auc_macro", "average_precision_macro", "log_loss", "ece", "accuracy", "top5_accuracy"):
        low, high = whole[name]["ci95"]
        assert low < whole[name]["value"] < high, name


def test_shards_of_other_formats_merge_too(tmp_path: Path) -> None:
    rows = _rows(1)
    whole = api.evaluate(pred=_write(tmp_path / "all.csv", rows), out=tmp_path / "whole", quiet=True,
                         resamples=50).metrics
    table = [row.split(",") for row in rows]
    first = table[:400]
    np.savez(tmp_path / "b.npz", id=np.array([r[0] for r in first]), label=np.array([int(r[1]) for r in first]),
             probs=np.array([[float(v) for v in r[2:]] for r in first]))
    records = [{"id": r[0], "label": int(r[1]), "probs": [float(v) for v in r[2:]]} for r in table[400:]]
    (tmp_path / "c.json").write_text(json.dumps(records))
    merged = api.evaluate(pred=[tmp_path / "b.npz", tmp_path / "c.json"], out=tmp_path / "merged", quiet=True,
                          resamples=50).metrics
    assert json.dumps(_scored(merged), sort_keys=True) == json.dumps(_scored(whole), sort_keys=True)


def test_an_id_in_two_shards_names_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _rows()
    a = _write(tmp_path / "a.csv", rows[:10])
    b = _write(tmp_path / "b.csv", rows[5:20])
    code = cli.main(["evaluate", "--pred", str(a), str(b), "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "id 's5' appears in two shards" in err and str(a) in err and str(b) in err


def test_shards_must_agree_on_their_columns(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", _rows()[:10])
    (tmp_path / "b.csv").write_text("id,label,pred\nz,0,1\n")
    with pytest.raises(ValueError, match=r"every shard must hold probabilities, or none; .*a\.csv.*b\.csv"):
        api.evaluate(pred=[a, tmp_path / "b.csv"], out=tmp_path / "run", quiet=True)
    (tmp_path / "c.csv").write_text("id,label,prob_0,prob_1\nz,0,0.5,0.5\n")
    with pytest.raises(ValueError, match=r"same probability columns; .*a\.csv has 6 and .*c\.csv has 2"):
        api.evaluate(pred=[a, tmp_path / "c.csv"], out=tmp_path / "run2", quiet=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no predictions file"):
        api.evaluate(pred=tmp_path / "empty", quiet=True)
    with pytest.raises(ValueError, match=r"takes one --pred path"):
        api.evaluate(pred=[a, a], task="detect", gt=a, quiet=True)


def test_resamples_zero_via_the_cli_gives_values_without_intervals(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "p.csv", _rows()[:300])
    code = cli.main(["evaluate", "--pred", str(path), "--resamples", "0", "--json", "--quiet",
                     "--out", str(tmp_path / "run")])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    with_intervals = api.evaluate(pred=path, out=tmp_path / "run2", quiet=True, resamples=20).metrics
    for name, entry in printed.items():
        if isinstance(entry, dict) and "ci95" in entry:
            assert all(bound is None or math.isnan(bound) for bound in entry["ci95"]), name
            assert entry["value"] == with_intervals[name]["value"], name
    assert "resamples: 0" in (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(ValueError, match=r"resamples must be in \[0, 1,000,000\]"):
        api.evaluate(pred=path, quiet=True, resamples=-1)
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses it, with the usage
        cli.main(["evaluate", "--pred", str(path), "--resamples", "-3"])
    assert exit_info.value.code == 2 and "--resamples: must be >= 0" in capsys.readouterr().err


def test_train_resamples_option_is_validated() -> None:
    assert resolve(overrides={"resamples": 0}).resamples == 0
    assert resolve().resamples == 1000
    with pytest.raises(ValueError, match=r"resamples must be in \[0, 1,000,000\] .* got -1"):
        resolve(overrides={"resamples": -1})
