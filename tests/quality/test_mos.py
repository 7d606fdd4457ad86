"""Agreement with human scores (`visionbench quality REF DIST --mos scores.csv`): correlations
against scipy (ties included), the logistic fit and its fallbacks, the scores file's errors, and
the workflow end to end on the generated dataset of tests/quality/mos_dataset.py."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import optimize, stats

from tests.quality.mos_dataset import LEVELS, make_mos_dataset
from visionbench import cli
from visionbench.api import quality
from visionbench.quality import mos
from visionbench.quality.mos_scores import prepare_mos, read_scores


def _same(a: float, b: float, tol: float = 1e-12) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def _scipy(function: Any, x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():  # constant input: scipy warns and returns NaN, as we do silently
        warnings.simplefilter("ignore")
        return float(function(x, y).statistic)


# Samples: few distinct values (many ties, constant columns) or continuous values.
_tied = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), min_size=2, max_size=40)
_continuous = st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=2, max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_tied, _continuous))
def test_correlations_equal_scipy_ties_included(pairs: list[tuple[float, float]]) -> None:
    x, y = (np.array(column, dtype=np.float64) for column in zip(*pairs, strict=True))
    assert _same(mos.spearman_rows(x[None], y[None])[0], _scipy(stats.spearmanr, x, y))
    assert _same(mos.kendall_tau_b(x, y)[0], _scipy(stats.kendalltau, x, y))
    assert _same(mos.pearson_rows(x[None], y[None])[0], _scipy(stats.pearsonr, x, y), 1e-10)


@settings(max_examples=60, deadline=None)
@given(_tied, st.integers(0, 2**32 - 1))
def test_resampled_statistics_equal_scipy_on_each_resample(pairs: list[tuple[int, int]], seed: int) -> None:
    """The bootstrap's vectorised statistics (KROCC from draw counts) are scipy's on each resample."""
    x, y = (np.array(column, dtype=np.float64) for column in zip(*pairs, strict=True))
    mapped = 2.0 * x + 1.0 + np.sin(x)  # any fixed mapping
    resampled = mos.bootstrap_statistics(x, y, mapped, resamples=20, seed=seed)
    index = np.random.default_rng(seed).integers(0, x.size, size=(20, x.size))  # the same draws (one block)
    for r, rows in enumerate(index):
        xs, ys, ms = x[rows], y[rows], mapped[rows]
        assert _same(resampled["srocc"][r], _scipy(stats.spearmanr, xs, ys))
        assert _same(resampled["krocc"][r], _scipy(stats.kendalltau, xs, ys))
        assert _same(resampled["plcc"][r], _scipy(stats.pearsonr, ms, ys), 1e-10)
        assert resampled["rmse"][r] == pytest.approx(np.sqrt(np.mean((ms - ys) ** 2)), rel=1e-12)


@pytest.mark.parametrize("truth, low, high", [
    ((60.0, 0.4, 30.0, 0.5, 40.0), 15.0, 45.0),  # PSNR-like, rising, with a linear part
    ((70.0, -12.0, 0.15, -20.0, 50.0), 0.0, 0.35),  # GMSD-like: falling
    ((4.0, 15.0, 0.8, 0.0, 3.0), 0.5, 1.0),  # SSIM-like on a 1–5 scale
])
def test_logistic_fit_recovers_known_parameters(truth: tuple[float, ...], low: float, high: float) -> None:
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(low, high, 200))
    y = mos.logistic5(x, *truth) + rng.normal(0.0, 1e-3 * abs(truth[0]), x.size)
    fit = mos.fit_mapping(x, y)
    assert fit.kind == "logistic5" and fit.notes == ()
    assert np.allclose(fit.params, truth, rtol=2e-2, atol=2e-2 * abs(truth[0]) / (high - low))
    grid = np.linspace(low, high, 50)
    assert np.allclose(fit.predict(grid), mos.logistic5(grid, *truth), atol=5e-3 * abs(truth[0]))
    stored = fit.as_dict()
    assert np.allclose(mos.predict(json.loads(json.dumps(stored)), grid), fit.predict(grid))


def test_fit_falls_back_to_four_parameters_then_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 40)
    y = mos.logistic4(x, 90.0, 10.0, 0.5, 0.1) + rng.normal(0, 0.5, x.size)
    real = optimize.curve_fit

    def no_five(function: Any, *args: Any, **kwargs: Any) -> Any:
        if function is mos.logistic5:
            raise RuntimeError("Optimal parameters not found: maxfev reached")
        return real(function, *args, **kwargs)

    monkeypatch.setattr(optimize, "curve_fit", no_five)
    fit = mos.fit_mapping(x, y)
    assert fit.kind == "logistic4" and "logistic5: did not converge" in fit.notes[0]
    assert np.allclose(fit.params, (90.0, 10.0, 0.5, 0.1), rtol=0.1)

    monkeypatch.setattr(optimize, "curve_fit", lambda function, x, y, p0, **kw: (np.asarray(p0), None))
    y = 3.0 * x + rng.normal(0, 0.1, x.size)  # a line: each start, "converged" where it began, fits worse
    fit = mos.fit_mapping(x, y)
    assert fit.kind == "linear" and [note.split(":")[0] for note in fit.notes] == ["logistic5", "logistic4"]
    assert all("worse fit than a straight line" in note for note in fit.notes)
    slope, intercept = np.polyfit(x, y, 1)
    assert fit.params == pytest.approx((slope, intercept), rel=1e-9)

    def folding(function: Any, *args: Any, **kwargs: Any) -> Any:  # a 5-parameter curve that turns back
        if function is mos.logistic5:
            return np.array([100.0, 8.0, 0.0, -60.0, 50.0]), None
        raise ValueError("Residuals are not finite in the initial point")

    monkeypatch.setattr(optimize, "curve_fit", folding)
    fit = mos.fit_mapping(x, y)
    assert fit.kind == "linear" and "not monotonic" in fit.notes[0] and "logistic4: did not converge" in fit.notes[1]


def test_small_or_constant_samples_never_raise() -> None:
    x, y = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([2.0, 1.0, 4.0, 3.0, 5.0])
    fit = mos.fit_mapping(x, y)
    assert fit.kind == "linear" and fit.notes == ("logistic5: needs at least 7 items, got 5",
                                                  "logistic4: needs at least 6 items, got 5")
    entry = mos.agreement(np.full(6, 0.7), np.arange(6.0), resamples=50)
    assert entry["fit"]["kind"] == "constant" and math.isnan(entry["srocc"]["value"])
    assert math.isnan(entry["plcc"]["value"]) and entry["rmse"]["value"] == pytest.approx(np.std(np.arange(6.0)))
    entry = mos.agreement([1.0, math.inf, 2.0], [1.0, 2.0, 3.0], resamples=50)
    assert entry["n"] == 2 and entry["non_finite_items"] == 1 and "at least 3" in entry["srocc"]["undefined"]


def test_signs_follow_the_metric_and_the_scale() -> None:
    rng = np.random.default_rng(2)
    quality_level = rng.uniform(0, 1, 60)
    values = {"psnr": 20 + 20 * quality_level + rng.normal(0, 1, 60), "gmsd": 0.3 - 0.25 * quality_level}
    higher = {"psnr": True, "gmsd": False}
    as_mos = mos.agreement_section(values, 100 * quality_level, higher_is_better=higher, dmos=False, resamples=100)
    as_dmos = mos.agreement_section(values, 100 - 100 * quality_level, higher_is_better=higher, dmos=True,
                                    resamples=100)
    for metric, expected in (("psnr", 1), ("gmsd", -1)):
        entry, flipped = as_mos["metrics"][metric], as_dmos["metrics"][metric]
        assert entry["direction"] == expected and flipped["direction"] == -expected
        assert np.sign(entry["srocc"]["value"]) == expected and entry["srocc"]["value"] == -flipped["srocc"]["value"]
        assert entry["plcc"]["value"] > 0.9 and flipped["plcc"]["value"] > 0.9
    lines = mos.table_lines({**as_mos, "num_scored": 60})
    assert "gmsd" in lines[3] and f"{-as_mos['metrics']['gmsd']['srocc']['value']:.3f}" in lines[3]


# --- the scores file -----------------------------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("file;mos\na.png;3\n", "must be comma-separated"),
    ("name,mos\na.png,3\n", "has no dist column"),
    ("dist,mos,score\na.png,3,3\n", "more than one score column"),
    ("dist,mos\na.png,3\nb.png,high\nc.png,1\n", "line 3: score 'high' is not a number"),
    ("dist,mos\na.png,3\nb.png,nan\nc.png,1\n", "line 3: score 'nan' is not finite"),
    ("dist,mos\na.png,3\nb.png,2\na.png,1\n", "line 4: 'a.png' is scored again (first on line 2)"),
    ("dist,mos\na.png,3\nb.png,2,7\nc.png,1\n", "line 3: has 3 field(s) but the header has 2"),
    ("dist,mos\n../a.png,3\nb.png,2\nc.png,1\n", "line 2: dist path '../a.png' is not inside DIST"),
    ("dist,mos,type\na.png,3,blur\nb.png,2,\nc.png,1,blur\n", "line 3: the type is empty"),
    ("dist,mos\na.png,3\nb.png,2\n", "has 2 score row(s); correlations need at least 3"),
])
def test_scores_file_errors_name_the_line_and_the_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="scores file .*scores.csv") as error:
        read_scores(path)
    assert message in str(error.value)


def test_scores_file_accepts_bom_case_and_dmos(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_bytes("\ufeffFile,DMOS,Ref,Type,raters\n.\\blur\\a.png,3.5,a.png,blur,20\n\nb.png,2,b.png,noise,19\n"
                     "c.png,1e1,c.png,noise,21\n".encode())
    scores = read_scores(path)
    assert scores.dmos and scores.has_ref and scores.has_type and scores.column == "dmos"
    assert [(r.line, r.dist, r.score, r.type) for r in scores.rows] == [
        (2, "blur/a.png", 3.5, "blur"), (4, "b.png", 2.0, "noise"), (5, "c.png", 10.0, "noise")]
    path.write_text("dist,mos\na.png,1\nb.png,2\nc.png,3\n")
    assert not read_scores(path).dmos and read_scores(path, dmos=False).column == "mos"
    with pytest.raises(ValueError, match="named 'mos' but dmos was asked for"):
        read_scores(path, dmos=True)
    path.write_bytes(b"dist,score\na.png,1\n\xff\xfe.png,2\n")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        read_scores(path)


def _small_folders(root: Path, names: list[str], identical: str | None = None) -> None:
    rng = np.random.default_rng(3)
    for i, name in enumerate(names):
        reference = rng.integers(0, 256, (24, 24), dtype=np.uint8)
        noisy = np.clip(reference + rng.normal(0, 3 + 4 * i, reference.shape), 0, 255).astype(np.uint8)
        for side, image in (("ref", reference), ("dist", reference if name == identical else noisy)):
            (root / side / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / side / name)


def test_scores_and_pairs_must_match_unless_partial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _small_folders(tmp_path, ["a.png", "b.png", "c.png", "d.png", "e.png"], identical="a.png")
    scores = tmp_path / "scores.csv"
    scores.write_text("dist,mos\na.png,90\nb.png,70\nc.png,50\nd.png,30\n")
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    with pytest.raises(ValueError, match=r"1 pair\(s\) of .* have no score in .*\('e.png'\).*--mos-partial"):
        prepare_mos(scores, ref, dist)
    scores.write_text("dist,mos\na.png,90\nb.png,70\nc.png,50\nd.png,30\ne.png,20\nf.png,10\n")
    with pytest.raises(ValueError, match=r"line 7: 1 dist file\(s\) do not exist in DIST .*line 7: 'f.png'"):
        prepare_mos(scores, ref, dist)
    (dist / "f.png").write_bytes((dist / "e.png").read_bytes())
    code = cli.main(["quality", str(ref), str(dist), "--mos", str(scores), "--quiet", "--out", str(tmp_path / "r")])
    assert code == 2 and "scored file(s) have no reference of the same relative path" in capsys.readouterr().err
    code = cli.main(["quality", str(ref), str(dist), "--mos", str(scores), "--mos-partial", "--json",
                     "--out", str(tmp_path / "run")])
    report = json.loads(capsys.readouterr().out)
    section = report["mos"]
    assert code == 0 and section["left_out"] == {"unscored_pairs": [], "unpaired_scores": ["f.png"]}
    assert section["num_scored"] == 5 and section["metrics"]["ssim"]["n"] == 5
    assert section["metrics"]["psnr"]["n"] == 4 and section["metrics"]["psnr"]["non_finite_items"] == 1  # a = ref
    assert any("--mos-partial" in w for w in report["warnings"]) and any("--psnr-cap" in w for w in report["warnings"])
    assert section["metrics"]["ssim"]["srocc"]["value"] == pytest.approx(1.0)  # more noise, lower score


def test_reference_column_names_each_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _small_folders(tmp_path, ["a.png", "b.png", "c.png", "d.png"])
    ref, dist, scores = tmp_path / "ref", tmp_path / "dist", tmp_path / "scores.csv"
    (dist / "blur").mkdir()
    (dist / "blur" / "a_1.png").write_bytes((dist / "a.png").read_bytes())
    scores.write_text("dist,ref,score\nblur/a_1.png,a.png,8\na.png,a.png,9\nb.png,b.png,7\nc.png,c.png,5\n")
    result = quality(ref, dist, mos=scores, out=tmp_path / "run", quiet=True)
    assert [row["item"] for row in result.rows] == ["a.png", "b.png", "blur/a_1.png", "c.png"]  # d.png: unlisted
    assert result.rows[0]["ssim"] == result.rows[2]["ssim"]  # one reference for two distorted files
    assert result.metrics["mos"]["unlisted_images"] == ["d.png"]
    assert result.metrics["unpaired"] == {"reference_only": [], "distorted_only": []}
    assert any("1 image(s) of" in w and "'d.png'" in w for w in result.metrics["warnings"])
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(ref / "small.png")
    scores.write_text("dist,ref,score\na.png,small.png,9\nb.png,b.png,7\nc.png,c.png,5\n")
    code = cli.main(["quality", str(ref), str(dist), "--mos", str(scores), "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "same size" in err and str(ref / "small.png") in err and "visionbench-mos-" not in err
    scores.write_text("dist,ref,score\na.png,a.png,9\nb.png,missing.png,7\nc.png,c.png,5\n")
    with pytest.raises(ValueError, match=r"line 3: 1 ref file\(s\) do not exist in REF .*'missing.png'"):
        prepare_mos(scores, ref, dist)
    with pytest.raises(ValueError, match="--mos compares two folders of images"):
        prepare_mos(scores, ref / "a.png", dist / "a.png")


# --- end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mos")
    make_mos_dataset(root)
    return root


@pytest.fixture(scope="module")
def mos_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`visionbench quality REF DIST --metrics psnr,ssim --mos scores.csv` as a user types it."""
    run = tmp_path_factory.mktemp("run") / "mos"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # capsys is function-scoped; this run is shared by the module
        code = cli.main(["quality", str(dataset / "ref"), str(dataset / "dist"), "--metrics", "psnr,ssim",
                         "--mos", str(dataset / "scores.csv"), "--out", str(run), "--quiet"])
    assert code == 0
    return run, printed.getvalue()


def test_end_to_end_agreement_equals_scipy_on_the_run_files(dataset: Path, mos_run: tuple[Path, str]) -> None:
    run, printed = mos_run
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "items.csv", newline="") as handle:
        items = list(csv.DictReader(handle))
    with open(dataset / "scores.csv", newline="") as handle:
        truth = {row["dist"]: row for row in csv.DictReader(handle)}
    section = metrics["mos"]
    assert section["scale"] == "mos" and section["num_scored"] == len(items) == 32 and section["resamples"] == 1000
    assert {row["item"] for row in items} == set(truth)
    assert all(float(row["score"]) == float(truth[row["item"]]["mos"]) for row in items)
    score = np.array([float(row["score"]) for row in items])
    for metric in ("psnr", "ssim"):
        entry = section["metrics"][metric]
        values = np.array([float(row[metric]) for row in items])
        assert entry["n"] == 32 and entry["direction"] == 1
        assert entry["srocc"]["value"] == pytest.approx(stats.spearmanr(values, score).statistic, abs=1e-12)
        assert entry["krocc"]["value"] == pytest.approx(stats.kendalltau(values, score).statistic, abs=1e-12)
        mapped = mos.predict(entry["fit"], values)
        assert entry["plcc"]["value"] == pytest.approx(stats.pearsonr(mapped, score).statistic, abs=1e-10)
        assert entry["rmse"]["value"] == pytest.approx(np.sqrt(np.mean((mapped - score) ** 2)), rel=1e-9)
        assert entry["srocc"]["value"] > 0.8 and entry["plcc"]["value"] > 0.85  # scores fall with the level
        for name in mos.STATISTICS:
            low, high = entry[name]["ci95"]
            assert low <= entry[name]["value"] <= high
        assert entry["fit"]["kind"] in ("logistic5", "logistic4")
        for kind in LEVELS:
            per_type = section["per_type"][kind][metric]
            chosen = [i for i, row in enumerate(items) if row["type"] == kind]
            assert per_type["n"] == 16 and "fit" not in per_type
            assert per_type["srocc"]["value"] == pytest.approx(
                stats.spearmanr(values[chosen], score[chosen]).statistic, abs=1e-12)
    assert metrics["settings"]["mos"] == str(dataset / "scores.csv") and metrics["unpaired"]["distorted_only"] == []
    assert "agreement with MOS" in printed and "SROCC per distortion type:" in printed
    assert f"{section['metrics']['psnr']['srocc']['value']:.3f}" in printed
    report = (run / "report.html").read_text()
    assert "Agreement with human scores (MOS)" in report and 'alt="metrics against MOS with the fitted curves"' in report
    assert report.count("<td>blur</td>") == 2 and report.count("<td>noise</td>") == 2  # the per-type table


def test_dmos_scale_flips_the_signs(dataset: Path, mos_run: tuple[Path, str], tmp_path: Path) -> None:
    with open(dataset / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    (tmp_path / "dmos.csv").write_text("dist,ref,score\n" + "".join(
        f"{row['dist']},{row['ref']},{100 - float(row['mos'])}\n" for row in rows))
    result = quality(dataset / "ref", dataset / "dist", metrics=("psnr", "ssim"), mos=tmp_path / "dmos.csv",
                     dmos=True, out=tmp_path / "run", quiet=True)
    reference = json.loads((mos_run[0] / "metrics.json").read_text())["mos"]["metrics"]
    section = result.metrics["mos"]
    assert section["scale"] == "dmos" and "per_type" not in section
    for metric in ("psnr", "ssim"):
        entry = section["metrics"][metric]
        assert entry["direction"] == -1
        assert entry["srocc"]["value"] == pytest.approx(-reference[metric]["srocc"]["value"], abs=1e-12)
        assert entry["plcc"]["value"] == pytest.approx(reference[metric]["plcc"]["value"], abs=1e-4)  # mirrored fit
