"""``visionbench sweep`` end to end on digits (and one segmentation sweep): reproducible, honest
(no trial reads the test split; the final runs read it once), continued after a kill with the cut
trial resumed bitwise, shared by two worker processes through one SQLite study, grid exact."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.engine.cli_runs import assert_same_checkpoints, finish, start_visionbench
from tests.engine.task_files import write_mask_folder
from visionbench import cli
from visionbench.api import run_sweep
from visionbench.sweep.runner import storage_url
from visionbench.sweep.settings import load_settings
from visionbench.sweep.space import parse_space
from visionbench.sweep.study import RESUMES, open_study

optuna = pytest.importorskip("optuna")

SPACE = "lr: {loguniform: [1.0e-3, 3.0e-2]}\noptimizer: {choice: [sgd, adamw]}\n"
FIXED = {"data": "digits", "model": "mlp", "epochs": 2, "threads": 1, "quiet": True}
DIGITS_VAL, DIGITS_TEST = 180, 359  # the default split of scikit-learn's 1,797 digits


def _space(folder: Path, text: str = SPACE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "space.yaml"
    path.write_text(text)
    return path


def _study(sweep_dir: Path, storage: str | None = None) -> object:
    settings = load_settings(sweep_dir)
    study, _ = open_study(settings, parse_space(settings.space, settings.task),
                          storage_url=storage_url(sweep_dir, storage))
    return study


def _trial_results(sweep_dir: Path) -> list[tuple[str, dict, float | None]]:
    return [(t.state.name, t.params, t.value) for t in _study(sweep_dir).get_trials()]


@pytest.fixture(scope="module")
def digits_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """One 4-trial TPE sweep of lr and optimizer on digits (shared by the tests that read it)."""
    root = tmp_path_factory.mktemp("sweep")
    space = _space(root)
    result = run_sweep(space, out=root / "sweep", trials=4, pruner="none", **FIXED)
    return space, result.sweep_dir, result.summary


def test_the_same_seed_gives_the_same_trials_and_best(digits_sweep: tuple, tmp_path: Path) -> None:
    space, first, summary = digits_sweep
    again = run_sweep(space, out=tmp_path / "again", trials=4, pruner="none", **FIXED)
    assert _trial_results(again.sweep_dir) == _trial_results(first)
    assert again.summary["best"]["params"] == summary["best"]["params"]
    assert again.summary["best"]["value"] == summary["best"]["value"]
    assert len(summary["trials"]) == 4 and {t["state"] for t in summary["trials"]} == {"COMPLETE"}


def test_no_trial_directory_holds_test_results(digits_sweep: tuple) -> None:
    _, sweep_dir, summary = digits_sweep
    test_ids = {line.split(",", 1)[0] for line in
                (sweep_dir / "final" / "default" / "predictions.csv").read_text().splitlines()[1:]}
    assert len(test_ids) == DIGITS_TEST
    for trial in sorted((sweep_dir / "trials").iterdir()):
        metrics = json.loads((trial / "metrics.json").read_text())
        assert metrics["split"] == "val" and metrics["num_samples"] == DIGITS_VAL, trial
        ids = {line.split(",", 1)[0] for line in (trial / "predictions.csv").read_text().splitlines()[1:]}
        assert len(ids) == DIGITS_VAL and not ids & test_ids, trial
    for entry in summary["trials"]:  # the interval of each trial's value is a validation interval
        low, high = entry["ci95"]
        assert low <= entry["value"] <= high


def test_the_final_runs_read_test_once_and_are_compared(digits_sweep: tuple) -> None:
    space, sweep_dir, summary = digits_sweep
    final = summary["final"]
    best_number = summary["best"]["number"]
    assert final["best"]["trial"] == best_number and final["best"]["how"] == "reused"
    assert final["validation"]["best"] == summary["best"]["value"]
    for name in ("best", "default"):
        metrics = json.loads((sweep_dir / "final" / name / "metrics.json").read_text())
        assert metrics["split"] == "test" and metrics["num_samples"] == DIGITS_TEST
        assert final[name]["metrics"]["accuracy"]["value"] == metrics["accuracy"]["value"]
    pair = final["comparison"]
    assert {"mcnemar", "metrics", "verdict"} <= set(pair) and pair["metrics"]["accuracy"]["ci95"]
    # the best trial's checkpoint itself was tested: the final run is a copy, not a retraining
    assert_same_checkpoints(sweep_dir / "trials" / f"trial-{best_number:04d}", sweep_dir / "final" / "best")
    before = {p: p.stat().st_mtime_ns for p in (sweep_dir / "final").glob("*/metrics.json")}
    again = run_sweep(space, out=sweep_dir, trials=4, pruner="none", **FIXED)  # the same command again
    assert {p: p.stat().st_mtime_ns for p in (sweep_dir / "final").glob("*/metrics.json")} == before
    assert again.summary["final"]["comparison"] == pair
    for name in ("sweep.json", "trials.csv", "report.html"):
        assert (sweep_dir / name).stat().st_size > 0


def test_another_search_in_the_same_directory_is_refused(digits_sweep: tuple) -> None:
    space, sweep_dir, _ = digits_sweep
    with pytest.raises(ValueError, match=r"fixed\.epochs: 2 → 3.*only --trials and --workers may change"):
        run_sweep(space, out=sweep_dir, trials=4, pruner="none", **{**FIXED, "epochs": 3})


def test_grid_search_enumerates_exactly_the_grid(tmp_path: Path) -> None:
    space = _space(tmp_path, "optimizer: {choice: [sgd, adamw]}\nbatch_size: {int: [32, 64], step: 32}\n")
    result = run_sweep(space, out=tmp_path / "grid", sampler="grid", pruner="none", **{**FIXED, "epochs": 1})
    seen = [(t["params"]["optimizer"], t["params"]["batch_size"]) for t in result.summary["trials"]]
    assert sorted(seen) == sorted(itertools.product(["sgd", "adamw"], [32, 64]))


def test_the_pruner_stops_poor_trials_after_an_epoch(tmp_path: Path) -> None:
    space = _space(tmp_path, "lr: {loguniform: [1.0e-5, 3.0e-2]}\n")
    result = run_sweep(space, out=tmp_path / "pruned", trials=8, sampler="random", pruner="median",
                       **{**FIXED, "epochs": 4})
    pruned = [t for t in result.summary["trials"] if t["state"] == "PRUNED"]
    assert pruned, [(t["state"], t["value"]) for t in result.summary["trials"]]
    for trial in pruned:  # stopped after a checkpointed epoch, without any evaluation of a split
        run_dir = result.sweep_dir / trial["run_dir"]
        assert not (run_dir / "metrics.json").exists() and (run_dir / "checkpoints" / "last.state.pt").exists()
        assert len(trial["intermediate"]) == trial["epochs"] < 4


def test_two_worker_processes_share_one_sqlite_study(tmp_path: Path) -> None:
    space = _space(tmp_path)
    result = run_sweep(space, out=tmp_path / "two", trials=6, workers=2, pruner="none", **{**FIXED, "epochs": 1})
    trials = _study(result.sweep_dir).get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == len(trials) == 6  # each worker starts its share: never more than --trials
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both processes ran trials
    for trial in complete:  # every trial's run is there, none lost or overwritten by the other worker
        run_dir = result.sweep_dir / trial.user_attrs["run_dir"]
        assert json.loads((run_dir / "metrics.json").read_text())["split"] == "val"
        assert json.loads((run_dir / "history.jsonl").read_text().splitlines()[-1])["val_accuracy"] == trial.value
    assert sorted(p.name for p in (result.sweep_dir / "workers").iterdir()) == ["worker-0.log", "worker-1.log"]


def _wait_for_epochs(history: Path, epochs: int, process: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (history.exists() and len(history.read_text().splitlines()) >= epochs):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sweep did not reach the epoch to kill at"
        time.sleep(0.05)


def test_a_killed_sweep_continues_and_the_cut_trial_resumes_bitwise(tmp_path: Path) -> None:
    space = _space(tmp_path)
    args = ["sweep", "--space", str(space), "--trials", "1", "--pruner", "none", "--data", "digits",
            "--model", "cnn-small", "--epochs", "8", "--threads", "1", "--quiet"]
    finish(start_visionbench(*args, "--out", str(tmp_path / "reference")))
    killed = start_visionbench(*args, "--out", str(tmp_path / "killed"))
    _wait_for_epochs(tmp_path / "killed" / "trials" / "trial-0000" / "history.jsonl", 2, killed)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "final").exists()
    finish(start_visionbench(*args, "--out", str(tmp_path / "killed")))  # the same command again
    trials = _study(tmp_path / "killed").get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"] and trials[1].user_attrs[RESUMES] == 0
    assert trials[1].params == trials[0].params
    assert_same_checkpoints(tmp_path / "reference" / "trials" / "trial-0000", tmp_path / "killed" / "trials" / "trial-0000")
    reference = json.loads((tmp_path / "reference" / "sweep.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "sweep.json").read_text())
    assert resumed["best"]["value"] == reference["best"]["value"]
    assert resumed["final"]["comparison"]["metrics"] == reference["final"]["comparison"]["metrics"]


def test_a_segmentation_sweep_selects_on_validation_miou(tmp_path: Path) -> None:
    data = write_mask_folder(tmp_path / "masks", count=24, size=32)
    space = _space(tmp_path, "lr: {choice: [0.001, 0.01]}\n")
    result = run_sweep(space, out=tmp_path / "seg", task="segment", data=f"masks:{data}", model="unet_small",
                       epochs=1, threads=1, quiet=True, sampler="grid", pruner="none")
    assert result.summary["monitor"] == "val_mIoU" and len(result.summary["trials"]) == 2
    for trial in result.summary["trials"]:
        metrics = json.loads((result.sweep_dir / trial["run_dir"] / "metrics.json").read_text())
        assert metrics["split"] == "val" and metrics["mIoU"]["value"] == pytest.approx(trial["value"], abs=1e-12)
    final = result.summary["final"]
    assert final["headline"] == "mIoU" and final["comparison"]["metrics"]["mIoU"]["ci95"]


def test_a_bad_space_file_is_a_command_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = _space(tmp_path, "box_loss: {choice: [giou]}\n")
    code = cli.main(["sweep", "--space", str(space), "--out", str(tmp_path / "bad"), "--epochs", "1"])
    assert code == 2
    error = capsys.readouterr().err
    assert "box_loss" in error and "--task detect" in error
    assert not (tmp_path / "bad").exists()


def test_two_machines_join_one_study_through_a_shared_storage(tmp_path: Path) -> None:
    """Two commands with one --storage and their own --out (two machines): the trials are shared,
    each waits for the other's before its final step, and a machine whose best trial ran on the
    other retrains it with the same seed, to the same validation value."""
    space = _space(tmp_path)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    args = ["sweep", "--space", str(space), "--trials", "4", "--pruner", "none", "--storage", storage,
            "--data", "digits", "--model", "mlp", "--epochs", "2", "--threads", "1", "--quiet"]
    machines = [start_visionbench(*args, "--out", str(tmp_path / name)) for name in ("a", "b")]
    for machine in machines:
        finish(machine)
    summaries = {name: json.loads((tmp_path / name / "sweep.json").read_text()) for name in ("a", "b")}
    ran = {name: {int(p.name.split("-")[1]) for p in (tmp_path / name / "trials").iterdir()} for name in ("a", "b")}
    assert not ran["a"] & ran["b"] and len(ran["a"] | ran["b"]) >= 4  # every trial ran on one machine
    best = summaries["a"]["best"]
    assert summaries["b"]["best"]["number"] == best["number"]
    for name, summary in summaries.items():
        final = summary["final"]
        assert final["best"]["how"] == ("reused" if best["number"] in ran[name] else "retrained")
        assert final["validation"]["best"] == best["value"]  # a retrained run reproduces the trial
    assert {s["final"]["best"]["how"] for s in summaries.values()} == {"reused", "retrained"}


def test_a_detection_sweep_selects_on_validation_ap50(tmp_path: Path) -> None:
    from tests.engine.task_files import write_coco_shapes

    annotations = write_coco_shapes(tmp_path / "coco", count=24, size=64)
    space = _space(tmp_path, "box_loss: {choice: [giou, smooth_l1]}\n")
    result = run_sweep(space, out=tmp_path / "det", task="detect", data=f"coco:{annotations}", epochs=1,
                       batch_size=8, threads=1, quiet=True, sampler="grid", pruner="none")
    assert result.summary["monitor"] == "val_AP50" and len(result.summary["trials"]) == 2
    for trial in result.summary["trials"]:
        metrics = json.loads((result.sweep_dir / trial["run_dir"] / "metrics.json").read_text())
        assert metrics["split"] == "val" and metrics["AP50"]["value"] == pytest.approx(trial["value"], abs=1e-12)
    assert result.summary["final"]["headline"] == "AP"


def test_ctrl_c_stops_with_a_hint_and_the_same_command_resumes_the_trial(tmp_path: Path) -> None:
    space = _space(tmp_path)
    args = ["sweep", "--space", str(space), "--trials", "1", "--pruner", "none", "--data", "digits",
            "--model", "cnn-small", "--epochs", "8", "--threads", "1", "--quiet", "--out", str(tmp_path / "s")]
    process = start_visionbench(*args)
    _wait_for_epochs(tmp_path / "s" / "trials" / "trial-0000" / "history.jsonl", 2, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "run the same command again to continue the sweep" in err
    finish(start_visionbench(*args))
    trials = _study(tmp_path / "s").get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"] and trials[1].user_attrs[RESUMES] == 0
    assert trials[0].user_attrs["interrupted"] is True
    history = [json.loads(line) for line in (tmp_path / "s" / "trials" / "trial-0000" / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == list(range(1, 9))  # no epoch lost or repeated


def test_a_trial_cut_short_twice_is_queued_again_and_counts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The latest attempt of a run directory decides: a resumption that was itself cut short is
    queued again (it used to be lost), and a failure with an error of its own counts as finished."""
    from visionbench.sweep import study as sweep_study

    study = optuna.create_study()
    host = sweep_study.worker_id()
    lr = {"lr": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)}
    first = study.ask(lr)
    first.set_user_attr(sweep_study.WORKER, host)
    study.tell(first, state=optuna.trial.TrialState.FAIL)  # cut short: no error of its own
    assert sweep_study.recover_dead_trials(study) == [0] and sweep_study.finished_count(study) == 0
    second = study.ask(lr)  # the queued resumption of trial 0, itself cut short
    assert second.user_attrs[sweep_study.RESUMES] == 0 and second.params == first.params
    second.set_user_attr(sweep_study.WORKER, host)
    study.tell(second, state=optuna.trial.TrialState.FAIL)
    assert sweep_study.recover_dead_trials(study) == [1]
    third = study.ask(lr)
    assert third.user_attrs[sweep_study.RESUMES] == 0
    third.set_user_attr(sweep_study.WORKER, host)
    third.set_user_attr(sweep_study.ERROR, "ValueError: a real error")
    study.tell(third, state=optuna.trial.TrialState.FAIL)
    assert sweep_study.recover_dead_trials(study) == [] and sweep_study.finished_count(study) == 1


def test_workers_check_the_space_with_the_fixed_options(tmp_path: Path) -> None:
    """nesterov is only valid with --optimizer sgd: the space passes with the fixed options, and the
    workers must check it the same way (they used to check it against the defaults and fail)."""
    space = _space(tmp_path, "nesterov: {choice: [true, false]}\n")
    result = run_sweep(space, out=tmp_path / "s", trials=2, sampler="grid", pruner="none", optimizer="sgd",
                       **{**FIXED, "epochs": 1})
    assert sorted(t["params"]["nesterov"] for t in result.summary["trials"]) == [False, True]


def test_val_loss_cannot_rank_trials_whose_loss_differs(tmp_path: Path) -> None:
    space = _space(tmp_path, "label_smoothing: {uniform: [0.0, 0.2], step: 0.1}\n")
    with pytest.raises(ValueError, match=r"--monitor val_loss must not rank trials whose loss itself differs"):
        run_sweep(space, out=tmp_path / "s", trials=2, monitor="val_loss", **FIXED)


def test_a_sweep_whose_every_trial_fails_says_why(tmp_path: Path) -> None:
    space = _space(tmp_path)
    with pytest.raises(ValueError, match=r"every trial of the sweep .* failed.*first error: .*missing\.safetensors"):
        run_sweep(space, out=tmp_path / "s", trials=2, pruner="none", weights=str(tmp_path / "missing.safetensors"),
                  **FIXED)
    summary = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert [t["state"] for t in summary["trials"]] == ["FAIL", "FAIL"] and "missing.safetensors" in summary["trials"][0]["error"]


def test_a_configuration_drawn_again_takes_the_known_result_without_training(tmp_path: Path) -> None:
    """A finite space makes TPE and random draw the same configuration again; it used to be trained
    again (and again) to the same result."""
    space = _space(tmp_path, "optimizer: {choice: [sgd, adamw]}\n")
    result = run_sweep(space, out=tmp_path / "s", trials=5, sampler="random", pruner="none", **{**FIXED, "epochs": 1})
    trials = _study(result.sweep_dir).get_trials()
    repeats = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert len(repeats) == 3 and len(list((result.sweep_dir / "trials").iterdir())) == 2
    for trial in repeats:
        original = trials[trial.user_attrs["duplicate_of"]]
        assert trial.params == original.params and trial.value == original.value
        assert trial.user_attrs["run_dir"] == original.user_attrs["run_dir"]
    assert result.summary["final"]["best"]["how"] == "reused"
