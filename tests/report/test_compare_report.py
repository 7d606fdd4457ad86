"""compare.html: the result of `visionbench compare` with each run's metrics side by side."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.report.page_checks import assert_self_contained, decoded_pngs, headings
from tests.report.test_run_report import make_run
from visionbench.report import build_compare_report, compare_report, html


def pair(a: str, b: str, *, sign: int = 1, holm: bool = True) -> dict:
    """One pair of a compare result; ``diff`` is ``b - a`` (sign=1) or ``a - b`` (sign=-1)."""
    values = {"accuracy": (0.91, 0.93, 0.001), "f1_macro": (0.9, 0.89, 0.4), "log_loss": (0.31, 0.35, 0.02)}
    metrics = {
        name: {"a": x, "b": y, "diff": sign * (y - x), "ci95": [sign * (y - x) - 0.01, sign * (y - x) + 0.01],
               "p_value": p, "p_value_holm": min(1.0, 3 * p) if holm else None}
        for name, (x, y, p) in values.items()
    }
    return {"a": a, "b": b, "mcnemar": {"b": 4, "c": 11, "p_value": 0.1185}, "metrics": metrics,
            "verdict": f"{Path(b).name} is more accurate than {Path(a).name} (p = 0.003, Holm)."}


def compare_result(runs: list[str], **kwargs) -> dict:
    pairs = [pair(runs[i], runs[j], **kwargs) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    return {"task": "compare", "runs": runs, "num_samples": 359, "pairs": pairs,
            "summary": "Runs differ in accuracy; see each pair."}


@pytest.fixture
def runs(tmp_path: Path) -> list[str]:
    # Synthetic run directories (no curves, no images: only metrics.json matters here).
    return [str(make_run(tmp_path / name, ["a", "b"], seed=i, history=False, curves=False, predictions=False,
                         examples=None))
            for i, name in enumerate(("baseline", "run <b>&"))]


def test_compare_report_sections_tables_and_plots(tmp_path: Path, runs: list[str]) -> None:
    missing = str(tmp_path / "deleted-run")
    path = build_compare_report(compare_result([*runs, missing]), tmp_path / "out")
    assert path == tmp_path / "out" / "compare.html"
    text = path.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert headings(text) == ["Summary", "Metrics side by side", "baseline vs run <b>&", "baseline vs deleted-run",
                              "run <b>& vs deleted-run"]
    assert len(decoded_pngs(text)) == 3  # one forest plot per pair
    assert "Runs differ in accuracy; see each pair." in text
    assert "0.9100 [0.8900 – 0.9300]" in text  # a run's value with its interval, from its metrics.json
    assert "No metrics.json found for deleted-run" in text
    assert "run &lt;b&gt;&amp; right, deleted-run wrong (b)" in text and "<b>&" not in text
    assert "diff (run &lt;b&gt;&amp; − baseline)" in text  # direction read off the values: b − a


def test_difference_direction_and_missing_holm(tmp_path: Path, runs: list[str]) -> None:
    text = build_compare_report(compare_result(runs, sign=-1, holm=False), tmp_path).read_text(encoding="utf-8")
    assert "diff (baseline − run &lt;b&gt;&amp;)" in text
    assert re.search(r"<td class=\"num\">—</td></tr>", text)  # p (Holm) not given
    assert_self_contained(text)


def test_best_column_follows_direction() -> None:
    entries = [{"value": 0.3}, {"value": 0.2}]
    assert compare_report._best(entries, True, ["x", "y"]) == "x"
    assert compare_report._best(entries, False, ["x", "y"]) == "y"
    assert compare_report._best(entries, None, ["x", "y"]) == ""
    assert compare_report._best([0.5, 0.5], True, ["x", "y"]) == ""  # tie: no winner


def test_written_atomically(tmp_path: Path, runs: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_atomic_write = html.atomic_write
    monkeypatch.setattr(html, "atomic_write", lambda path, write: (calls.append(path), real_atomic_write(path, write)))
    build_compare_report(compare_result(runs), tmp_path / "out")
    assert calls == [tmp_path / "out" / "compare.html"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["compare.html"]


@pytest.mark.parametrize("bad", [None, [], {"runs": ["a"]}, {"pairs": []}, {"runs": "a", "pairs": []}])
def test_not_a_compare_result(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="'runs' and 'pairs' lists"):
        build_compare_report(bad, tmp_path)


def test_runs_without_pairs_or_metrics(tmp_path: Path) -> None:
    compare = {"task": "compare", "runs": [str(tmp_path / "x")], "num_samples": 0, "pairs": [], "summary": ""}
    text = build_compare_report(compare, tmp_path).read_text(encoding="utf-8")
    assert headings(text) == ["Summary", "Metrics side by side"]
    assert not decoded_pngs(text) and "No metrics.json found for x" in text
