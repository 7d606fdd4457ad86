"""Tests of visionbench/sweep/space.py: parsing and checking search spaces, suggestions, grids."""

from __future__ import annotations

import dataclasses
import itertools
import math
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from visionbench import config as cfg
from visionbench.sweep import space as sp
from visionbench.sweep.space import Param, grid_size, grid_values, parse_space, read_space, suggest

EXAMPLE = """\
lr: {loguniform: [1.0e-4, 1.0e-1]}
weight_decay: {uniform: [0.0, 1.0e-3]}
label_smoothing: {uniform: [0.0, 0.2], step: 0.05}   # a step makes a float range discrete (gridable)
batch_size: {int: [16, 128], step: 16}
epochs: {int: [3, 10]}
optimizer: {choice: [sgd, adamw]}
model: {choice: [cnn-small, resnet18]}
"""


@pytest.fixture(scope="module")
def optuna() -> Any:
    """optuna (the [sweep] extra), quiet."""
    module = pytest.importorskip("optuna")
    module.logging.set_verbosity(module.logging.WARNING)
    return module


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Param]:
    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text(EXAMPLE)
    return read_space(path, "classify")


def write(tmp_path: Path, text: str | bytes, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------- parsing


def test_the_example_file_parses_in_file_order(example: dict[str, Param]) -> None:
    assert list(example) == ["lr", "weight_decay", "label_smoothing", "batch_size", "epochs", "optimizer", "model"]
    assert example["lr"] == Param("lr", "loguniform", 1e-4, 0.1, log=True)
    assert example["weight_decay"] == Param("weight_decay", "uniform", 0.0, 1e-3)
    assert example["label_smoothing"] == Param("label_smoothing", "uniform", 0.0, 0.2, step=0.05)
    assert example["batch_size"] == Param("batch_size", "int", 16, 128, step=16)
    assert example["epochs"] == Param("epochs", "int", 3, 10, step=1)
    assert example["optimizer"] == Param("optimizer", "choice", choices=("sgd", "adamw"))
    assert example["model"] == Param("model", "choice", choices=("cnn-small", "resnet18"))


def test_describe(example: dict[str, Param]) -> None:
    assert [p.describe() for p in example.values()] == [
        "loguniform [0.0001, 0.1]", "uniform [0.0, 0.001]", "uniform [0.0, 0.2] step 0.05", "int [16, 128] step 16",
        "int [3, 10]", "choice [sgd, adamw]", "choice [cnn-small, resnet18]"]
    assert Param("image_size", "int", 8, 64, step=1, log=True).describe() == "int [8, 64] log"
    assert Param("image_size", "choice", choices=(None, 32)).describe() == "choice [null, 32]"
    assert Param("ema", "choice", choices=(True, False)).describe() == "choice [true, false]"


def test_values_take_the_field_type() -> None:
    """Float fields read YAML 1.1's string "1e-4" and integers as floats; null is a choice of optional fields."""
    space = parse_space({"lr": {"uniform": ["1e-4", 1], "step": "1e-4"},
                         "warmup_epochs": {"choice": [0, "1e-1", 2.5]},
                         "image_size": {"choice": [None, 32]},
                         "clip_grad_norm": {"choice": [None, 1]},
                         "ema": {"choice": [True, False]}}, "classify")
    assert space["lr"] == Param("lr", "uniform", 1e-4, 1.0, step=1e-4)
    assert all(type(v) is float for v in (space["lr"].low, space["lr"].high, space["lr"].step))
    assert space["warmup_epochs"].choices == (0.0, 0.1, 2.5)
    assert all(type(v) is float for v in space["warmup_epochs"].choices)
    assert space["image_size"].choices == (None, 32)
    assert space["clip_grad_norm"].choices == (None, 1.0)
    assert space["ema"].choices == (True, False)


def test_each_task_parses_its_own_options() -> None:
    assert parse_space({"box_loss": {"choice": ["giou", "ciou"]}}, "detect")["box_loss"].choices == ("giou", "ciou")
    assert parse_space({"loss": {"choice": ["ce_dice"]}}, "segment")["loss"].choices == ("ce_dice",)
    assert parse_space({"image_size": {"int": [8, 64], "log": True}}, "segment")["image_size"].log


def test_a_value_valid_with_another_swept_value_is_accepted() -> None:
    """nesterov needs optimizer sgd: accepted when the optimizer is swept over sgd too."""
    space = parse_space({"nesterov": {"choice": [True, False]}, "optimizer": {"choice": ["sgd", "adamw"]}}, "classify")
    assert space["nesterov"].choices == (True, False)


def test_values_are_checked_with_the_base_config() -> None:
    base = dataclasses.replace(cfg.ClassifyConfig(), optimizer="sgd", nesterov=True)
    assert parse_space({"nesterov": {"choice": [True]}}, "classify", base=base)
    with pytest.raises(ValueError, match=r"key 'momentum' .*got 0\.0 \(the low end of the range\).*--nesterov"):
        parse_space({"momentum": {"uniform": [0.0, 0.9]}}, "classify", base=base)
    detector = dataclasses.replace(cfg.DetectConfig(), model="fasterrcnn_mobilenet_v3_large_fpn")
    with pytest.raises(ValueError, match=r"key 'box_loss' .*got 'giou' \(a choice\).*box_loss must be auto"):
        parse_space({"box_loss": {"choice": ["auto", "giou"]}}, "detect", base=detector)
    assert parse_space({"box_loss": {"choice": ["auto", "giou"]}, "model": {"choice": ["tiny_fcos"]}}, "detect",
                       base=detector)
    with pytest.raises(ValueError, match="base configuration must be of --task detect"):
        parse_space({"lr": {"uniform": [0.1, 0.2]}}, "detect", base=base)


# ------------------------------------------------------------------------------------------- SWEEPABLE


def test_every_field_is_either_sweepable_or_refused_with_a_reason() -> None:
    run_options = {"out", "resume", "config", "device", "workers", "quiet", "json"}  # not config fields
    assert set(sp.NOT_SWEEPABLE) - cfg.ALL_OPTIONS == run_options
    for task, cls in cfg.CONFIG_CLASSES.items():
        names = {f.name for f in cfg.config_fields(cls)}
        assert set(sp.SWEEPABLE[task]) == names - set(sp.NOT_SWEEPABLE)
    required = {"task", "data", "out", "resume", "device", "quiet", "monitor", "val_fraction", "test_fraction",
                "split_seed", "seed"}
    assert required <= set(sp.NOT_SWEEPABLE)
    assert all(len(reason) > 20 for reason in sp.NOT_SWEEPABLE.values())
    assert {"lr", "model", "optimizer", "batch_size", "epochs"} <= set(sp.SWEEPABLE["classify"])


@pytest.mark.parametrize("key", sorted(sp.NOT_SWEEPABLE))
def test_refused_fields_say_why_and_what_to_do(key: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_space({key: {"choice": ["x"]}}, "classify")
    message = str(info.value)
    assert message.startswith(f"space.yaml: key {key!r} must not be swept: {sp.NOT_SWEEPABLE[key]}")
    assert "set it once for every trial" in message


# ------------------------------------------------------------------------------------------- errors

ERRORS = [  # (id, space, task, key, fragments of the message: what was wrong and what to do)
    ("unknown", {"lrr": {"uniform": [0.1, 0.2]}}, "classify", "lrr",
     ["unknown name", "Did you mean 'lr'?", "Options of --task classify that can be swept", "weight_decay"]),
    ("dashes", {"batch-size": {"int": [8, 16]}}, "classify", "batch-size", ["Did you mean 'batch_size'?"]),
    ("other task", {"box_loss": {"choice": ["giou"]}}, "classify", "box_loss",
     ["'box_loss', a --task detect option; this sweep trains --task classify", "Remove it, or sweep --task detect"]),
    ("other tasks", {"loss": {"choice": ["ce_dice"]}}, "detect", "loss",
     ["a --task classify / segment option", "sweep --task classify / segment"]),
    ("uniform on int", {"epochs": {"uniform": [1, 3]}}, "classify", "epochs",
     ["must use int", "Write `epochs: {int: [low, high]}`"]),
    ("loguniform on int", {"batch_size": {"loguniform": [8, 64]}}, "classify", "batch_size",
     ["must use int", "add `log: true` for a log scale"]),
    ("int on float", {"lr": {"int": [1, 3]}}, "classify", "lr",
     ["must use uniform or loguniform", "`lr: {uniform: [low, high], step: 1}`"]),
    ("range on str", {"optimizer": {"uniform": [1, 3]}}, "classify", "optimizer",
     ["must use choice", "Write `optimizer: {choice: [...]}`"]),
    ("range on bool", {"ema": {"int": [0, 1]}}, "classify", "ema", ["must use choice", "`ema: {choice: [...]}`"]),
    ("float choice on int", {"epochs": {"choice": [1, 2.5]}}, "classify", "epochs",
     ["list only int values", "got 2.5 (float)", "with a value of type int"]),
    ("null on a required field", {"epochs": {"choice": [None, 3]}}, "classify", "epochs",
     ["list only int values", "got null", "with a value of type int"]),
    ("number choice on str", {"optimizer": {"choice": ["sgd", 1]}}, "classify", "optimizer",
     ["list only str values", "got 1 (int)", "quote words"]),
    ("word choice on bool", {"ema": {"choice": [True, "yes"]}}, "classify", "ema",
     ["list only bool values", "got 'yes' (str)"]),
    ("word choice on float", {"lr": {"choice": [0.1, "fast"]}}, "classify", "lr",
     ["list only float values", "got 'fast'"]),
    ("inverted", {"lr": {"uniform": [0.2, 0.1]}}, "classify", "lr", ["have low < high", "[0.2, 0.1]", "smaller value first"]),
    ("empty range", {"epochs": {"int": [3, 3]}}, "classify", "epochs", ["have low < high", "set it in --config"]),
    ("loguniform at 0", {"lr": {"loguniform": [0, 1]}}, "classify", "lr", ["above 0", "low 0.0", "low end > 0"]),
    ("loguniform below 0", {"weight_decay": {"loguniform": [-1, 1]}}, "classify", "weight_decay", ["above 0", "low -1.0"]),
    ("step 0", {"lr": {"uniform": [0.1, 0.2], "step": 0}}, "classify", "lr", ["step 0.0", "positive step"]),
    ("negative step", {"epochs": {"int": [1, 5], "step": -1}}, "classify", "epochs", ["step -1", "positive step"]),
    ("step over the range", {"label_smoothing": {"uniform": [0.0, 0.2], "step": 0.3}}, "classify", "label_smoothing",
     ["(0, 0.2]", "step 0.3", "no larger than the range"]),
    ("step just over the range", {"lr": {"uniform": [0.01, 0.011], "step": 0.0011}}, "classify", "lr",
     ["(0, 0.001]", "step 0.0011"]),
    ("step not fitting", {"label_smoothing": {"uniform": [0.0, 0.2], "step": 0.03}}, "classify", "label_smoothing",
     ["multiple of the step", "Change high to 0.18"]),
    ("int step not fitting", {"batch_size": {"int": [16, 100], "step": 16}}, "classify", "batch_size",
     ["multiple of the step", "Change high to 96"]),
    ("float int step", {"batch_size": {"int": [16, 128], "step": 1.5}}, "classify", "batch_size",
     ["whole number", "got 1.5", "Write step as a whole number"]),
    ("log with step", {"batch_size": {"int": [16, 128], "step": 16, "log": True}}, "classify", "batch_size",
     ["not combine log: true with a step", "Remove the step"]),
    ("log from 0", {"unfreeze_at": {"int": [0, 8], "log": True}}, "classify", "unfreeze_at",
     ["low end >= 1 with log: true", "Start the range at 1"]),
    ("log not bool", {"epochs": {"int": [1, 8], "log": "yes"}}, "classify", "epochs", ["log true or false", "log: true"]),
    ("log on uniform", {"lr": {"uniform": [0.1, 0.2], "log": True}}, "classify", "lr",
     ["only the keys uniform, step", "got 'log'", "Use `loguniform: [low, high]`"]),
    ("step on loguniform", {"lr": {"loguniform": [0.1, 0.2], "step": 0.1}}, "classify", "lr",
     ["only the keys loguniform", "got 'step'", "A log range has no step"]),
    ("step on choice", {"optimizer": {"choice": ["sgd"], "step": 1}}, "classify", "optimizer",
     ["only the keys choice", "remove the other keys"]),
    ("unknown extra key", {"lr": {"uniform": [0.1, 0.2], "steps": 0.1}}, "classify", "lr", ["got 'steps'", "Remove 'steps'"]),
    ("empty choice", {"optimizer": {"choice": []}}, "classify", "optimizer", ["non-empty list", "got []", "{choice: [a, b]}"]),
    ("choice not a list", {"optimizer": {"choice": "sgd"}}, "classify", "optimizer", ["non-empty list", "got 'sgd'"]),
    ("duplicate choice", {"optimizer": {"choice": ["sgd", "adamw", "sgd"]}}, "classify", "optimizer",
     ["list each value once", "'sgd' twice", "Remove the repeated 'sgd'"]),
    ("duplicate after conversion", {"lr": {"choice": [0.1, "1e-1"]}}, "classify", "lr", ["list each value once", "twice"]),
    ("no distribution", {"lr": {}}, "classify", "lr", ["exactly one of choice, uniform, loguniform or int", "none of them",
                                                        "one distribution per option"]),
    ("two distributions", {"lr": {"uniform": [0.1, 0.2], "loguniform": [0.1, 0.2]}}, "classify", "lr",
     ["got 2: uniform, loguniform", "one distribution per option"]),
    ("not a mapping", {"lr": 0.1}, "classify", "lr", ["be a mapping with one of", "got 0.1", "belongs in --config"]),
    ("bounds not a pair", {"lr": {"uniform": [0.1]}}, "classify", "lr", ["a list [low, high]", "got [0.1]"]),
    ("bounds a string", {"epochs": {"int": "3-10"}}, "classify", "epochs", ["a list [low, high]", "got '3-10'"]),
    ("bound not a number", {"lr": {"uniform": ["small", 0.2]}}, "classify", "lr",
     ["finite number such as 1.0e-4 as low", "got 'small'", "Write low as"]),
    ("bound infinite", {"lr": {"uniform": [0.1, math.inf]}}, "classify", "lr", ["finite number", "got inf"]),
    ("bound a bool", {"lr": {"uniform": [False, 0.2]}}, "classify", "lr", ["finite number", "got False"]),
    ("float bound on int", {"epochs": {"int": [1.5, 3]}}, "classify", "epochs", ["whole number such as 16 as low",
                                                                                 "got 1.5", "Write low as a whole number"]),
    ("config refuses a choice", {"optimizer": {"choice": ["sgd", "foo"]}}, "classify", "optimizer",
     ["got 'foo' (a choice)", "['sgd', 'adam', 'adamw']", "Remove 'foo' from the choices"]),
    ("config refuses the low end", {"lr": {"uniform": [-1, 1]}}, "classify", "lr",
     ["got -1.0 (the low end of the range)", "lr must be > 0", "Narrow the range"]),
    ("config refuses the high end", {"label_smoothing": {"uniform": [0.0, 1.0]}}, "classify", "label_smoothing",
     ["got 1.0 (the high end of the range)", "in [0, 1)", "Narrow the range"]),
    ("config refuses batch 0", {"batch_size": {"int": [0, 64], "step": 8}}, "classify", "batch_size",
     ["got 0 (the low end of the range)", "batch_size must be > 0"]),
    ("model of another task", {"model": {"choice": ["cnn-small", "tiny_fcos"]}}, "classify", "model",
     ["got 'tiny_fcos'", "is a detector", "Remove 'tiny_fcos' from the choices"]),
    ("unknown model", {"model": {"choice": ["resnet18", "resnet19"]}}, "classify", "model",
     ["got 'resnet19'", "Remove 'resnet19'"]),
    ("two-option check", {"nesterov": {"choice": [True, False]}}, "classify", "nesterov",
     ["got true (a choice)", "optimizer (with --nesterov) must be sgd", "change the other option the check names"]),
]


@pytest.mark.parametrize(("space", "task", "key", "fragments"), [case[1:] for case in ERRORS],
                         ids=[case[0] for case in ERRORS])
def test_errors_name_the_key_and_the_fix(space: dict[str, Any], task: str, key: str, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        parse_space(space, task)
    message = str(info.value)
    assert message.startswith(f"space.yaml: key {key!r} must "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize(("mapping", "fragments"), [
    ([{"lr": {"uniform": [0.1, 0.2]}}], ["a mapping of option: distribution", "got list", "one `option: {kind: [...]}`"]),
    ({}, ["at least one option", "got an empty mapping", "Add e.g."]),
    ({1: {"int": [1, 2]}}, ["every key must be an option name", "got 1 (int)", "Write the option's name"]),
], ids=["not a mapping", "empty", "key not a name"])
def test_space_errors_name_the_source(mapping: Any, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        parse_space(mapping, "classify", source="my-space.yaml")
    assert str(info.value).startswith("my-space.yaml: ")
    assert all(fragment in str(info.value) for fragment in fragments), str(info.value)


def test_unknown_task() -> None:
    with pytest.raises(ValueError, match=r"task must be one of \['classify', 'detect', 'segment'\]; got 'pose'"):
        parse_space({"lr": {"uniform": [0.1, 0.2]}}, "pose")


# ------------------------------------------------------------------------------------------- files

FILE_ERRORS = [  # (id, content or None for a missing file, fragments)
    ("missing", None, ["must exist", "Check the path"]),
    ("empty", "", ["empty file", "Add one line per option"]),
    ("only comments", "# nothing yet\n", ["empty file"]),
    ("a list", "- lr\n- epochs\n", ["a mapping of option: distribution", "got list"]),
    ("a scalar", "lr\n", ["a mapping of option: distribution", "got str"]),
    ("not UTF-8", b"lr: {choice: [caf\xe9]}\n", ["must be UTF-8 text", "byte 0xe9 at offset 17", "Save it as UTF-8"]),
    ("invalid YAML", "lr: {uniform: [0.1, 0.2]\n", ["must be valid YAML", "Fix the YAML syntax"]),
    ("aliases", "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n",
     ["must not use an anchor or alias", "line 1", "Write each value out"]),
    ("anchor alone", "epochs: {int: [3, 10]}\nlr: &lr {uniform: [0.1, 0.2]}\n", ["anchor or alias", "line 2"]),
    ("repeated key", "lr: {uniform: [0.1, 0.2]}\nlr: {uniform: [0.2, 0.3]}\n",
     ["must not use the key 'lr' a second time", "line 2"]),
    ("too large", "# padding\n" * (sp.MAX_SPACE_BYTES // 10 + 1), ["at most 1048576 bytes", "right file"]),
    ("deeply nested", "lr: " + "[" * 5000 + "]" * 5000 + "\n", ["nested too deeply", "one `option: {kind: [...]}` line"]),
    ("bad entry", "lr: {uniform: [0.1, 0.2]}\nepochs: {uniform: [1, 3]}\n", ["key 'epochs' must use int"]),
]


@pytest.mark.parametrize(("content", "fragments"), [case[1:] for case in FILE_ERRORS], ids=[c[0] for c in FILE_ERRORS])
def test_file_errors_name_the_file(tmp_path: Path, content: str | bytes | None, fragments: list[str]) -> None:
    path = tmp_path / "space.yaml" if content is None else write(tmp_path, content)
    with pytest.raises(ValueError) as info:
        read_space(path, "classify")
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert all(fragment in message for fragment in fragments), message


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be a file; got a directory"):
        read_space(tmp_path, "classify")


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffepochs: {int: [3, 10]}\n".encode())
    assert read_space(path, "classify")["epochs"].high == 10


def test_the_module_works_without_optuna() -> None:
    """Reading, checking and gridding a space never imports optuna (the [sweep] extra)."""
    code = ("import sys; sys.modules['optuna'] = None\n"
            "from visionbench.sweep.space import parse_space, grid_values\n"
            "space = parse_space({'epochs': {'int': [3, 5]}, 'optimizer': {'choice': ['sgd']}}, 'classify')\n"
            "assert grid_values(space) == {'epochs': [3, 4, 5], 'optimizer': ['sgd']}\n"
            "assert 'optuna' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------------------- suggest


def test_suggest_stays_in_bounds_on_the_grid_with_the_field_types(optuna: Any, example: dict[str, Param]) -> None:
    space = {**example, **parse_space({"image_size": {"choice": [None, 32]}, "warmup_epochs": {"choice": [0, 1.5]},
                                       "unfreeze_at": {"int": [1, 64], "log": True}}, "classify")}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    smoothing_grid = {0.0, 0.05, 0.1, 0.15, 0.2}
    seen_smoothing = set()
    for _ in range(40):
        trial = study.ask()
        values = suggest(trial, space)
        study.tell(trial, 0.0)
        assert list(values) == list(space)
        assert type(values["lr"]) is float and 1e-4 <= values["lr"] <= 0.1
        assert type(values["weight_decay"]) is float and 0.0 <= values["weight_decay"] <= 1e-3
        assert type(values["label_smoothing"]) is float and values["label_smoothing"] in smoothing_grid  # exact
        assert type(values["batch_size"]) is int and values["batch_size"] in range(16, 129, 16)
        assert type(values["epochs"]) is int and 3 <= values["epochs"] <= 10
        assert values["optimizer"] in ("sgd", "adamw") and values["model"] in ("cnn-small", "resnet18")
        assert values["image_size"] in (None, 32)
        assert type(values["warmup_epochs"]) is float and values["warmup_epochs"] in (0.0, 1.5)
        assert type(values["unfreeze_at"]) is int and 1 <= values["unfreeze_at"] <= 64
        seen_smoothing.add(values["label_smoothing"])
        cfg.validate(cfg.merge(cfg.ClassifyConfig(), values, "the trial"))  # the overrides make a valid config
    assert seen_smoothing == smoothing_grid  # 0.15 came out as 0.15, not Optuna's 0.15000000000000002


# ------------------------------------------------------------------------------------------- grids


def test_grid_values_are_exact_decimals() -> None:
    space = parse_space({"label_smoothing": {"uniform": [0.0, 0.2], "step": 0.05},
                         "lr": {"uniform": [0.1, 0.7], "step": 0.1},
                         "batch_size": {"int": [16, 64], "step": 16},
                         "image_size": {"int": [30, 33]},
                         "optimizer": {"choice": ["sgd", "adamw"]}}, "classify")
    grid = grid_values(space)
    assert grid == {"label_smoothing": [0.0, 0.05, 0.1, 0.15, 0.2], "lr": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
                    "batch_size": [16, 32, 48, 64], "image_size": [30, 31, 32, 33], "optimizer": ["sgd", "adamw"]}
    assert grid_size(space) == 5 * 7 * 4 * 4 * 2


def test_grid_sampler_enumerates_exactly_the_grid(optuna: Any) -> None:
    space = parse_space({"label_smoothing": {"uniform": [0.0, 0.2], "step": 0.05},
                         "batch_size": {"int": [16, 48], "step": 16},
                         "optimizer": {"choice": ["sgd", "adamw"]},
                         "image_size": {"choice": [None, 32]}}, "classify")
    grid = grid_values(space)
    suggested: list[tuple[Any, ...]] = []

    def objective(trial: Any) -> float:
        suggested.append(tuple(suggest(trial, space).values()))
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    study.optimize(objective, n_trials=grid_size(space))
    assert grid_size(space) == 5 * 3 * 2 * 2 == len(suggested)
    assert sorted(suggested, key=repr) == sorted(itertools.product(*grid.values()), key=repr)
    assert {tuple(t.params[k] for k in space) for t in study.trials} == set(itertools.product(*grid.values()))


@pytest.mark.parametrize(("spec", "fix"), [
    ({"weight_decay": {"uniform": [0.0, 1e-3]}}, "Add `step: X` to the range"),
    ({"lr": {"loguniform": [1e-4, 1e-1]}}, "List the values to try with `choice:"),
])
def test_a_continuous_range_has_no_grid(spec: dict[str, Any], fix: str) -> None:
    space = parse_space({"epochs": {"int": [3, 4]}, **spec}, "classify")
    key = next(iter(spec))
    for function in (grid_values, grid_size):
        with pytest.raises(ValueError) as info:
            function(space)
        assert f"key {key!r} must have a finite set of values for a grid search" in str(info.value)
        assert "a continuous range" in str(info.value) and fix in str(info.value)


def test_a_huge_grid_is_counted_but_not_listed() -> None:
    space = parse_space({"epochs": {"int": [1, 10**9]}}, "classify")
    assert grid_size(space) == 10**9
    with pytest.raises(ValueError, match=r"key 'epochs' must have at most 10000 values .*Use a larger step"):
        grid_values(space)


# ------------------------------------------------------------------------------------------- property

decimal_steps = st.integers(1, 200).map(lambda n: Decimal(n) / 1000)  # 0.001 … 0.2


@st.composite
def range_specs(draw: Any) -> tuple[str, dict[str, Any]]:
    """A valid range of a random kind on an option whose config check it passes."""
    kind = draw(st.sampled_from(["uniform", "uniform_step", "loguniform", "int", "int_step", "int_log"]))
    if kind == "uniform":
        low = draw(st.floats(0, 10, allow_subnormal=False))
        high = draw(st.floats(low, 20, allow_subnormal=False).filter(lambda h: h > low))
        return "weight_decay", {"uniform": [low, high]}
    if kind == "uniform_step":
        low, step = Decimal(draw(st.integers(0, 1000))) / 100, draw(decimal_steps)
        high = low + draw(st.integers(1, 50)) * step
        return "weight_decay", {"uniform": [float(low), float(high)], "step": float(step)}
    if kind == "loguniform":
        low = 10.0 ** draw(st.integers(-8, 0))
        return "lr", {"loguniform": [low, min(low * draw(st.floats(1.01, 1e4)), 100.0)]}  # config: lr <= 100
    low = draw(st.integers(1, 500))
    if kind == "int_log":
        return "epochs", {"int": [low, low + draw(st.integers(1, 10**6))], "log": True}
    step = draw(st.integers(1, 50)) if kind == "int_step" else 1
    return "epochs", {"int": [low, low + step * draw(st.integers(1, 100))], "step": step}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=range_specs(), seed=st.integers(0, 2**31 - 1))
def test_any_valid_range_parses_and_suggest_stays_in_it(optuna: Any, spec: tuple[str, dict[str, Any]], seed: int) -> None:
    key, distribution = spec
    param = parse_space({key: distribution}, "classify")[key]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(3):
        trial = study.ask()
        value = suggest(trial, {key: param})[key]
        study.tell(trial, 0.0)
        assert param.low <= value <= param.high
        assert type(value) is (int if param.kind == "int" else float)
        if param.step is not None and param.kind == "uniform":
            assert value in grid_values({key: param})[key]  # exactly on the decimal grid
        elif param.kind == "int":
            assert (value - param.low) % param.step == 0


def test_trial_values_are_the_values_suggest_trained_with() -> None:
    """Optuna stores a stepped float as it computed it; the final retraining and the report must use
    the value the trial trained with (what ``suggest`` returned)."""
    import optuna

    from visionbench.sweep.space import trial_values

    space = parse_space({"label_smoothing": {"uniform": [0.0, 0.2], "step": 0.05},
                         "batch_size": {"int": [32, 128], "step": 32}, "optimizer": {"choice": ["sgd", "adamw"]}},
                        "classify")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(30):
        trial = study.ask()
        trained = suggest(trial, space)
        study.tell(trial, 0.0)
        assert trial_values(study.trials[-1].params, space) == trained
    assert trial_values({"label_smoothing": 0.15000000000000002}, space) == {"label_smoothing": 0.15}
