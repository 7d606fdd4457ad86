"""Tests of visionbench/sweep/report.py: sweep.json, trials.csv and report.html from hand-built summaries.

No Optuna and no training: summaries are plain dicts shaped like the runner's. The final comparison
is the real pair dict of ``compare_runs`` on two fake run directories (a ``predictions.csv`` each),
so the report reads exactly the keys ``visionbench compare`` produces.
"""

from __future__ import annotations

import copy
import csv
import html as stdlib_html
import json
import math
import re
from pathlib import Path

import pytest

from tests.report.page_checks import assert_self_contained, decoded_pngs, headings
from visionbench.comparison import compare_runs
from visionbench.sweep import report
from visionbench.sweep.report import axis_scale, best_so_far, final_verdict, write_sweep_outputs

SPACE = {"lr": "loguniform [0.0001, 0.1]", "optimizer": "choice [sgd, adamw]"}
HEADINGS = ["Study", "Best trial", "Trials", "Optimisation history", "Intermediate values", "Parameter importance",
            "Parallel coordinates", "Final test evaluation"]


def make_trial(number: int, state: str, lr: float, optimizer: str, value: float | None, epochs: int = 5,
               **extra) -> dict:
    """One trial record as the runner writes it (intermediate values rising to ``value``)."""
    curve = {str(e): (value or 0.5) - 0.02 * (epochs - e) for e in range(1, epochs + 1)}
    record = {"number": number, "state": state, "params": {"lr": lr, "optimizer": optimizer}, "value": value,
              "ci95": None if value is None else [value - 0.02, min(value + 0.02, 1.0)], "best_epoch": epochs - 1,
              "epochs": epochs, "seconds": 3.25 * (number + 1), "run_dir": f"trials/trial-{number:04d}",
              "intermediate": curve if state != "FAIL" else {}}
    record.update(extra)
    return record


def make_summary(**changes) -> dict:
    """A sweep of six trials: three complete (trial 2 best), one pruned, one failed, one running."""
    trials = [
        make_trial(0, "COMPLETE", 0.003, "adamw", 0.91),
        make_trial(1, "PRUNED", 0.0002, "sgd", 0.42, epochs=2),
        make_trial(2, "COMPLETE", 0.01, "sgd", 0.95),
        make_trial(3, "FAIL", 0.09, "adamw", None, epochs=0, error="CUDA <b>out</b> of memory & more"),
        make_trial(4, "COMPLETE", 0.0005, "adamw", 0.88),
        make_trial(5, "RUNNING", 0.02, "sgd", None, epochs=1),
    ]
    summary = {
        "task": "classify", "monitor": "val_accuracy", "direction": "maximize", "sampler": "tpe", "pruner": "asha",
        "seed": 0, "storage": "sqlite:///sweeps/s1/study.db", "study": "visionbench",
        "fixed": {"data": "digits", "epochs": 5}, "space": dict(SPACE), "trials": trials,
        "best": {"number": 2, "params": dict(trials[2]["params"]), "value": 0.95, "ci95": [0.93, 0.97]},
        "importance": {"lr": 0.8, "optimizer": 0.2}, "final": None,
    }
    summary.update(changes)
    return summary


def write_predictions(run_dir: Path, labels: list[int], preds: list[int]) -> Path:
    """A minimal run directory: predictions.csv as rundir.write_predictions lays it out (no probabilities)."""
    run_dir.mkdir(parents=True)
    with open(run_dir / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "pred"])
        writer.writerows([f"img{i:03d}.png", label, pred] for i, (label, pred) in enumerate(zip(labels, preds, strict=True)))
    return run_dir


def metrics_entry(value: float) -> dict:
    return {"value": value, "ci95": [value - 0.03, value + 0.03], "higher_is_better": True}


@pytest.fixture(scope="module")
def final_runs(tmp_path_factory) -> dict[str, dict]:
    """compare_runs pairs of real fake runs: best clearly better, best barely different, and the reverse order."""
    root = tmp_path_factory.mktemp("sweep")
    labels = [i % 3 for i in range(200)]
    perfect = list(labels)
    weak = [label if i % 5 < 3 else (label + 1) % 3 for i, label in enumerate(labels)]  # 60% right
    one_off = [(label + 1) % 3 if i == 0 else label for i, label in enumerate(labels)]  # 199 of 200 right
    dirs = {(name, side): write_predictions(root / name / "final" / side, labels, preds)
            for name, side, preds in (("clear", "best", perfect), ("clear", "default", weak),
                                      ("close", "best", one_off), ("close", "default", perfect))}
    return {
        "significant": compare_runs([dirs["clear", "default"], dirs["clear", "best"]], resamples=200)["pairs"][0],
        "reversed": compare_runs([dirs["clear", "best"], dirs["clear", "default"]], resamples=200)["pairs"][0],
        "not_significant": compare_runs([dirs["close", "default"], dirs["close", "best"]], resamples=200)["pairs"][0],
    }


def final_block(pair: dict) -> dict:
    """The summary's ``final`` dict around a comparison pair (run dirs relative, as the runner records them)."""
    accuracy = pair["metrics"]["accuracy"]
    a_is_best = Path(pair["a"]).name == "best"
    best, default = (accuracy["a"], accuracy["b"]) if a_is_best else (accuracy["b"], accuracy["a"])
    return {"best": {"run_dir": "final/best", "params": {"lr": 0.01, "optimizer": "sgd"},
                     "metrics": {"accuracy": metrics_entry(best), "num_samples": 200}},
            "default": {"run_dir": "final/default", "metrics": {"accuracy": metrics_entry(default)}},
            "headline": "accuracy", "comparison": pair}


def page_text(tmp_path: Path, summary: dict) -> str:
    text = write_sweep_outputs(tmp_path / "sweep", summary)["html"].read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "<script" not in text  # the sweep page has no script at all
    assert headings(text) == HEADINGS
    decoded_pngs(text)  # every inline image is a valid PNG
    return text


def plain(text: str) -> str:
    """The page's text without tags, unescaped (to find sentences across inline markup)."""
    return stdlib_html.unescape(re.sub(r"<[^>]+>", "", text))


# ------------------------------------------------------------------------------------------ the files


def test_three_files_written_and_parse_back(tmp_path: Path) -> None:
    summary = make_summary()
    paths = write_sweep_outputs(tmp_path / "sweep", summary)
    assert paths == {"json": tmp_path / "sweep" / "sweep.json", "csv": tmp_path / "sweep" / "trials.csv",
                     "html": tmp_path / "sweep" / "report.html"}
    assert json.loads(paths["json"].read_text()) == summary
    assert not list((tmp_path / "sweep").glob(".*tmp*"))  # the temporary files were renamed away
    with open(paths["csv"], newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["number", "state", "value", "ci95_low", "ci95_high", "best_epoch", "epochs", "seconds",
                                 "run_dir", "param_lr", "param_optimizer"]
    assert [row["number"] for row in rows] == ["0", "1", "2", "3", "4", "5"]
    assert [row["state"] for row in rows] == ["COMPLETE", "PRUNED", "COMPLETE", "FAIL", "COMPLETE", "RUNNING"]
    first = rows[0]
    assert float(first["value"]) == 0.91 and float(first["ci95_low"]) == 0.91 - 0.02 and first["ci95_high"] == "0.93"
    assert (first["best_epoch"], first["epochs"], first["seconds"]) == ("4", "5", "3.25")
    assert first["run_dir"] == "trials/trial-0000"
    assert float(rows[1]["param_lr"]) == 0.0002 and rows[1]["param_optimizer"] == "sgd"
    assert rows[3]["value"] == rows[3]["ci95_low"] == rows[5]["value"] == ""  # failed and running: no value


def test_trials_sorted_and_csv_quotes_names_with_commas_and_quotes(tmp_path: Path) -> None:
    summary = make_summary(space={'width, "px"': "choice [8, 16]"})
    summary["trials"] = [make_trial(1, "COMPLETE", 0.1, "sgd", 0.7), make_trial(0, "COMPLETE", 0.2, "sgd", 0.8)]
    for trial in summary["trials"]:
        trial["params"] = {'width, "px"': 'a, "quoted" value'}
    summary["best"] = None
    path = write_sweep_outputs(tmp_path, summary)["csv"]
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["number"] for row in rows] == ["0", "1"]
    assert rows[0]['param_width, "px"'] == 'a, "quoted" value'


def test_nan_and_infinity_become_null_in_sweep_json(tmp_path: Path) -> None:
    summary = make_summary()
    summary["trials"][0]["value"] = math.nan
    summary["trials"][0]["ci95"] = [-math.inf, math.inf]
    summary["importance"] = {"lr": math.nan, "optimizer": 1.0}
    paths = write_sweep_outputs(tmp_path, summary)

    def refuse(constant: str) -> None:
        raise AssertionError(f"sweep.json holds {constant}, which is not JSON")

    loaded = json.loads(paths["json"].read_text(), parse_constant=refuse)
    assert loaded["trials"][0]["value"] is None and loaded["trials"][0]["ci95"] == [None, None]
    assert loaded["importance"] == {"lr": None, "optimizer": 1.0}
    with open(paths["csv"], newline="") as handle:
        assert next(csv.DictReader(handle))["value"] == ""


def test_malformed_summary_raises_and_keeps_previous_outputs(tmp_path: Path) -> None:
    paths = write_sweep_outputs(tmp_path, make_summary())
    before = {name: path.read_bytes() for name, path in paths.items()}
    with pytest.raises(ValueError, match="'trials' list"):
        write_sweep_outputs(tmp_path, {"task": "classify"})
    broken = make_summary()
    broken["fixed"]["data"] = object()
    with pytest.raises(ValueError, match=r"JSON-serialisable; got a object at summary\['fixed'\]\['data'\]"):
        write_sweep_outputs(tmp_path, broken)
    broken = make_summary()
    broken["trials"][1]["number"] = "one"
    with pytest.raises(ValueError, match=r"summary\['trials'\]\[1\] must be a dict with an integer 'number'"):
        write_sweep_outputs(tmp_path, broken)
    assert {name: path.read_bytes() for name, path in paths.items()} == before


# -------------------------------------------------------------------------------------------- the page


def test_page_shows_header_trials_best_and_plots(tmp_path: Path) -> None:
    summary = make_summary(storage="postgresql://alice:s3cret@db.example/optuna")
    text = page_text(tmp_path, summary)
    assert len(decoded_pngs(text)) == 4  # history, intermediate values, importance, parallel coordinates
    words = plain(text)
    for expected in ("task classify", "val_accuracy (maximize)", "sampler tpe", "pruner asha", "seed 0",
                     "3 complete, 1 pruned, 1 failed, 1 running", "loguniform [0.0001, 0.1]", "digits"):
        assert expected in words, expected
    assert "s3cret" not in text and "postgresql://alice:***@db.example/optuna" in words
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", text.split('<section id="trials">')[1].split("</section>")[0])
    assert [re.search(r"<td[^>]*>(\d+)</td>", row).group(1) for row in rows[1:]] == ["0", "1", "2", "3", "4", "5"]
    best_rows = re.findall(r'<tr class="best">(.*?)</tr>', text)
    assert len(best_rows) == 1 and ">2<" in best_rows[0] and "★ best" in best_rows[0]
    assert "0.9500 [0.9300 – 0.9700]" in best_rows[0]  # the value with its interval
    assert "4 / 5" in best_rows[0]  # best epoch / epochs run
    assert "CUDA &lt;b&gt;out&lt;/b&gt; of memory &amp; more" in text and "<b>out" not in text
    best_section = plain(text.split('<section id="best">')[1].split("</section>")[0])
    assert "trials/trial-0002" in best_section and "0.01" in best_section and "sgd" in best_section


def test_user_strings_are_escaped(tmp_path: Path) -> None:
    summary = make_summary()
    evil = "<script>alert(1)</script>"
    summary["trials"][0]["params"]["optimizer"] = evil
    summary["trials"][0]["run_dir"] = "trials/<img src=x onerror=alert(1)>"
    summary["space"]["optimizer"] = f"choice [sgd, {evil}]"
    summary["fixed"]["data"] = 'folder:"><script>'
    text = page_text(tmp_path, summary)
    assert "<script" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def test_final_significant_comparison_says_best_is_better(tmp_path: Path, final_runs: dict) -> None:
    text = page_text(tmp_path, make_summary(final=final_block(final_runs["significant"])))
    words = plain(text)
    assert "On the test split the best configuration is better than the default on accuracy" in words
    assert "best − default = +40.00 points" in words and "McNemar p = " in words
    assert "the difference is significant (p < 0.05, the interval excludes 0)" in words
    assert "Trials were selected on validation only (val_accuracy); the test split was evaluated once per final run" \
        in words
    assert "samples only the best configuration got right" in words
    final = words.split("Final test evaluation")[-1]
    assert "1.0000 [0.9700 – 1.0300]" in final and "0.6000 [0.5700 – 0.6300]" in final  # test metrics with intervals
    assert len(decoded_pngs(text)) == 5  # + the forest plot of the test differences


def test_final_comparison_orientation_follows_run_directories(tmp_path: Path, final_runs: dict) -> None:
    # compare_runs was given [best, default]: its diff is default − best, and the report turns it around.
    words = plain(page_text(tmp_path, make_summary(final=final_block(final_runs["reversed"]))))
    assert "On the test split the best configuration is better than the default on accuracy" in words
    assert "best − default = +40.00 points" in words


def test_final_non_significant_comparison_says_so(tmp_path: Path, final_runs: dict) -> None:
    words = plain(page_text(tmp_path, make_summary(final=final_block(final_runs["not_significant"]))))
    assert "On the test split the default is better than the best configuration on accuracy" in words
    assert "best − default = -0.50 points" in words
    assert "the difference is not significant (p ≥ 0.05, the interval includes 0): this test split cannot tell the " \
           "two apart" in words


def test_final_default_significantly_better_is_reported(tmp_path: Path, final_runs: dict) -> None:
    final = final_block(final_runs["significant"])
    final["best"]["run_dir"], final["default"]["run_dir"] = "final/default", "final/best"  # the tuned run lost
    final["best"]["metrics"], final["default"]["metrics"] = final["default"]["metrics"], final["best"]["metrics"]
    words = plain(page_text(tmp_path, make_summary(final=final)))
    assert "On the test split the default is better than the best configuration on accuracy" in words
    assert "the difference is significant" in words
    assert "The configuration selected on validation did worse on test than the default." in words


def test_dense_pair_uses_the_bootstrap_and_reports_mixed_evidence(tmp_path: Path) -> None:
    # The keys of a segmentation pair of compare_runs: no McNemar, bootstrap p per metric.
    pair = {"a": "/abs/sweeps/s1/final/default", "b": "/abs/sweeps/s1/final/best", "metrics": {
        "mIoU": {"a": 0.80, "b": 0.83, "diff": 0.03, "ci95": [-0.001, 0.06], "p_value": 0.04, "p_value_holm": 0.04},
        "dice_mean": {"a": 0.85, "b": 0.86, "diff": 0.01, "ci95": [-0.01, 0.03], "p_value": 0.3, "p_value_holm": 0.3}},
        "verdict": "no significant difference at 5% between A and B on mIoU"}
    final = {"best": {"run_dir": "final/best", "metrics": {"mIoU": metrics_entry(0.83)}},
             "default": {"run_dir": "final/default", "metrics": {"mIoU": metrics_entry(0.80)}},
             "headline": "mIoU", "comparison": pair}
    words = plain(page_text(tmp_path, make_summary(task="segment", monitor="val_loss", direction="minimize",
                                                   final=final)))
    assert "the best configuration is better than the default on mIoU (best − default = +3.00 points, 95% CI " \
           "[-0.10, +6.00], paired bootstrap p = 0.04)" in words
    assert "the evidence is mixed (p < 0.05 but the interval includes 0)" in words
    assert "McNemar" not in words.split("Paired comparison on the test split")[1]


def test_final_verdict_directions_ties_and_missing_statistics() -> None:
    lower = final_verdict("log_loss", -0.05, [-0.08, -0.02], 0.001, "paired bootstrap", higher_is_better=False)
    assert lower.startswith("On the test split the best configuration is better than the default on log_loss")
    assert "the difference is significant" in lower
    tie = final_verdict("accuracy", 0.0, [-0.01, 0.01], 1.0, "McNemar", higher_is_better=True)
    assert "score the same on accuracy" in tie and "not significant" in tie
    unknown = final_verdict("accuracy", 0.02, None, None, "McNemar", higher_is_better=True)
    assert "whether the difference is significant is unknown" in unknown
    assert "no difference on accuracy to report" in final_verdict("accuracy", math.nan, None, None, "McNemar", True)


def test_unmatched_comparison_runs_render_a_note(tmp_path: Path, final_runs: dict) -> None:
    final = final_block(final_runs["significant"])
    final["best"]["run_dir"], final["default"]["run_dir"] = "elsewhere/x", "elsewhere/y"
    for run in ("best", "default"):
        final[run]["metrics"] = {}
    words = plain(page_text(tmp_path, make_summary(final=final)))
    assert "cannot be matched to the best configuration" in words and "no verdict is drawn" in words


# ----------------------------------------------------------------------------------- degenerate sweeps


def _no_trials() -> dict:
    return make_summary(trials=[], best=None, importance=None)


def _nothing_complete() -> dict:
    summary = make_summary(best=None, importance=None)
    summary["trials"] = [t for t in summary["trials"] if t["state"] in ("FAIL", "RUNNING")]
    return summary


def _one_trial_one_parameter() -> dict:
    trial = make_trial(0, "COMPLETE", 0.01, "sgd", 0.9, epochs=1)
    trial["params"] = {"lr": 0.01}
    return make_summary(space={"lr": "loguniform [0.0001, 0.1]"}, trials=[trial], importance=None,
                        best={"number": 0, "params": {"lr": 0.01}, "value": 0.9, "ci95": None})


def _all_equal() -> dict:
    summary = make_summary()
    for trial in summary["trials"]:
        if trial["state"] == "COMPLETE":
            trial["value"], trial["intermediate"] = 0.9, {"1": 0.9, "2": 0.9}
    return summary


def _no_parameters() -> dict:
    summary = make_summary(space={}, importance={})
    for trial in summary["trials"]:
        trial["params"] = {}
    return summary


@pytest.mark.parametrize(("build", "notes"), [
    (_no_trials, ["No trial has started yet.", "No best trial: no trial has completed yet.", "Nothing to plot yet",
                  "No trial has reported a per-epoch validation value yet.", "No parameter importance",
                  "No complete trial with a validation value yet", "No final test runs yet"]),
    (_nothing_complete, ["No trial has completed yet: the sections below", "No best trial: no trial has completed yet",
                         "Nothing to plot yet", "No complete trial with a validation value yet"]),
    (_one_trial_one_parameter, ["Only one complete trial", "Only one parameter was searched"]),
    (_all_equal, ["Every complete trial has the same val_accuracy"]),
    (_no_parameters, ["No parameter was searched: nothing to draw.", "The summary holds no search space.",
                      "No parameter importance"]),
], ids=["no-trials", "nothing-complete", "one-trial-one-parameter", "all-values-equal", "no-parameters"])
def test_degenerate_sweeps_render_notes(tmp_path: Path, build, notes: list[str]) -> None:
    summary = build()
    original = copy.deepcopy(summary)
    words = plain(page_text(tmp_path, summary))
    for note in notes:
        assert note in words, note
    assert summary == original  # the summary is not modified


def test_final_without_comparison_and_without_metrics(tmp_path: Path) -> None:
    final = {"best": {"run_dir": "final/best", "params": {"lr": 0.01}, "metrics": {}},
             "default": {"run_dir": "final/default", "metrics": {}}, "headline": "accuracy", "comparison": None}
    words = plain(page_text(tmp_path, make_summary(final=final)))
    assert "The final runs report no test metric." in words
    assert "No paired comparison of the two final runs in this summary." in words


# ------------------------------------------------------------------------- plot helpers (pure mapping)


def test_axis_scale_places_categorical_parameters_evenly_in_the_space_order() -> None:
    scale = axis_scale("optimizer", ["adamw", "sgd", None, "adamw"], "choice [sgd, adamw]")
    assert scale.kind == "categorical"
    assert scale.positions[:2] + scale.positions[3:] == [1.0, 0.0, 1.0] and math.isnan(scale.positions[2])
    assert scale.ticks == [(0.0, "sgd"), (1.0, "adamw")]
    three = axis_scale("optimizer", ["adam"], "choice [sgd, adam, adamw]")  # unseen choices keep their place
    assert three.positions == [0.5] and three.ticks == [(0.0, "sgd"), (0.5, "adam"), (1.0, "adamw")]
    numeric_choice = axis_scale("batch", [64, 16], "choice [16, 32, 64]")
    assert numeric_choice.kind == "categorical" and numeric_choice.positions == [1.0, 0.0]
    text_values = axis_scale("aug", ["light", "none", "light"])  # no description: text values are choices
    assert text_values.kind == "categorical" and text_values.positions == [0.0, 1.0, 0.0]
    assert axis_scale("ema", [True]).ticks == [(0.5, "true")]  # a single choice sits in the middle
    # Booleans and numbers are matched to the choices as the space describes them (YAML text, see space.py).
    flags = axis_scale("ema", [True, False, True], "choice [false, true]")
    assert flags.positions == [1.0, 0.0, 1.0] and flags.ticks == [(0.0, "false"), (1.0, "true")]
    sizes = axis_scale("drop", [0.1, 0.3], "choice [0.1, 0.2, 0.3]")
    assert sizes.positions == [0.0, 1.0] and [label for _, label in sizes.ticks] == ["0.1", "0.2", "0.3"]


def test_axis_scale_uses_a_log_scale_for_log_ranges() -> None:
    scale = axis_scale("lr", [1e-4, 1e-3, 1e-2, 1e-1], "loguniform [0.0001, 0.1]")
    assert scale.kind == "log"
    assert scale.positions == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert scale.ticks[0] == (0.0, "0.0001") and scale.ticks[-1] == (1.0, "0.1")
    assert scale.ticks[2] == (0.5, "0.00316")  # the geometric middle, not the arithmetic one
    inside = axis_scale("lr", [1e-3], "float [1e-05, 0.1] log")  # bounds from the space, a "log" marker
    assert inside.kind == "log" and inside.positions == pytest.approx([0.5])


def test_axis_scale_linear_constant_and_missing_values() -> None:
    linear = axis_scale("momentum", [5, 10, None], "uniform [0, 10]")
    assert linear.kind == "linear" and linear.positions[:2] == [0.5, 1.0] and math.isnan(linear.positions[2])
    widened = axis_scale("momentum", [20.0], "uniform [0, 10]")  # a value outside the bounds widens the axis
    assert widened.positions == [1.0] and widened.ticks[-1] == (1.0, "20")
    observed = axis_scale("wd", [0.1, 0.3, 0.2])  # no description: the values' own range
    assert observed.positions == pytest.approx([0.0, 1.0, 0.5])
    constant = axis_scale("val_accuracy", [0.9, 0.9])
    assert constant.kind == "constant" and constant.positions == [0.5, 0.5]
    assert axis_scale("lr", [1e-3, 1e-2], "loguniform [0, 0.1]").kind == "linear"  # log of 0 is undefined
    assert axis_scale("empty", [None, None], "uniform [0, 1]").kind == "constant"


def test_best_so_far_respects_the_direction() -> None:
    assert best_so_far([0.5, 0.7, 0.6, 0.9], maximize=True).tolist() == [0.5, 0.7, 0.7, 0.9]
    assert best_so_far([0.5, 0.7, 0.4, 0.9], maximize=False).tolist() == [0.5, 0.5, 0.4, 0.4]


def test_module_does_not_import_optuna() -> None:
    source = Path(report.__file__).read_text()
    assert not re.search(r"^\s*(import|from)\s+optuna", source, re.MULTILINE)
