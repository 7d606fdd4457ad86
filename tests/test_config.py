"""Tests of visionbench/config.py: defaults → YAML → overrides, validation and its messages."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from visionbench import config as cfg
from visionbench.config import (
    ClassifyConfig,
    DetectConfig,
    SegmentConfig,
    config_fields,
    resolve,
    save_yaml,
    settle_batch_size,
)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(config_file: Path | None = None, **overrides) -> str:
    """The message of the ValueError that ``resolve`` must raise."""
    with pytest.raises(ValueError) as info:
        resolve(config_file, overrides or None)
    return str(info.value)


def hint_of(message: str) -> str:
    """The part of a message after ``Did you mean`` (the suggestion), or ''."""
    _, sep, rest = message.partition("Did you mean")
    assert sep, f"no suggestion in {message!r}"
    return rest.split("?")[0]


# ----------------------------------------------------------------------------------- defaults


def test_defaults_are_the_documented_ones():
    config = ClassifyConfig()
    assert config.task == "classify"
    assert config.data == "digits"
    assert config.model == "cnn-small"
    assert config.weights is None
    assert config.epochs == 10
    assert config.batch_size is None and settle_batch_size(config, 10_000) == 64  # unset: 64 on big enough sets
    assert config.lr == pytest.approx(3e-3)
    assert config.optimizer == "adamw"
    assert config.loss == "cross_entropy"
    assert config.schedule == "cosine"
    assert config.seed == 0
    assert config.val_fraction + config.test_fraction < 1


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClassifyConfig().epochs = 3  # type: ignore[misc]


def test_resolve_without_anything_gives_the_defaults():
    assert resolve() == ClassifyConfig()
    assert resolve(None, {}) == ClassifyConfig()


def test_defaults_pass_validation():
    config = ClassifyConfig()
    assert cfg.validate(config) is config


def test_every_field_has_help_text():
    for f in config_fields():
        assert f.metadata.get("help"), f.name
        choices = f.metadata.get("choices")
        if choices:
            assert f.default in choices, f.name


# ----------------------------------------------------------------------------------- precedence


def test_precedence_defaults_then_yaml_then_overrides(tmp_path):
    path = write(tmp_path, "epochs: 5\nlr: 0.01\nmodel: mlp\n")
    from_file = resolve(path)
    assert (from_file.epochs, from_file.lr, from_file.model) == (5, 0.01, "mlp")
    assert from_file.batch_size == ClassifyConfig().batch_size  # untouched key keeps its default

    both = resolve(path, {"epochs": 7, "batch_size": 16})
    assert both.epochs == 7  # the override wins over the file
    assert both.batch_size == 16  # an override of a default
    assert both.lr == 0.01 and both.model == "mlp"  # the file wins over the default


def test_overrides_alone(tmp_path):
    config = resolve(overrides={"epochs": 3, "optimizer": "sgd", "nesterov": True})
    assert (config.epochs, config.optimizer, config.nesterov) == (3, "sgd", True)


def test_int_is_accepted_for_a_float_field_and_becomes_float(tmp_path):
    config = resolve(write(tmp_path, "lr: 1\nwarmup_epochs: 0\n"))
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.warmup_epochs == 0.0 and isinstance(config.warmup_epochs, float)


def test_empty_yaml_file_gives_the_defaults(tmp_path):
    assert resolve(write(tmp_path, "")) == ClassifyConfig()
    assert resolve(write(tmp_path, "# only a comment\n")) == ClassifyConfig()


def test_yaml_scientific_notation_learning_rate(tmp_path):
    # ``lr: 1e-3`` is how nearly every training config writes a learning rate (and ``--lr 1e-3``
    # works on the command line); PyYAML's YAML 1.1 resolver reads it as the *string* '1e-3'.
    config = resolve(write(tmp_path, "lr: 1e-3\nweight_decay: 5e-4\n"))
    assert config.lr == pytest.approx(1e-3)
    assert config.weight_decay == pytest.approx(5e-4)


def test_optional_fields_accept_null(tmp_path):
    config = resolve(write(tmp_path, "clip_grad_norm: null\nimage_size: null\nweights: null\n"))
    assert config.clip_grad_norm is None and config.image_size is None and config.weights is None
    config = resolve(overrides={"clip_grad_norm": 1.0, "image_size": 32})
    assert config.clip_grad_norm == 1.0 and config.image_size == 32


def test_null_for_a_required_field_is_refused(tmp_path):
    message = error_of(write(tmp_path, "epochs: null\n"))
    assert "epochs" in message
    # batch_size is not required: null leaves it to the run (the task's default, lowered on small sets).
    assert resolve(write(tmp_path, "batch_size: null\n")).batch_size is None


# ----------------------------------------------------------------------------------- unknown keys


def test_unknown_key_in_yaml_names_it_suggests_and_lists_valid_keys(tmp_path):
    path = write(tmp_path, "epoch: 3\n")
    message = error_of(path)
    assert "'epoch'" in message
    assert "'epochs'" in hint_of(message)
    assert str(path) in message
    for f in config_fields():
        assert f.name in message, f.name  # every valid key is listed


def test_unknown_key_in_overrides_names_it_suggests_and_lists_valid_keys():
    message = error_of(epoch=3)
    assert "'epoch'" in message
    assert "'epochs'" in hint_of(message)
    for name in ("batch_size", "lr", "optimizer", "label_smoothing"):
        assert name in message


def test_unknown_key_with_no_close_match_still_lists_valid_keys():
    message = error_of(zzzzqqq=1)
    assert "'zzzzqqq'" in message
    assert "epochs" in message and "batch_size" in message


@pytest.mark.parametrize("text, key", [("10: 3\n", "10"), ("on: 3\n", "True")])
def test_non_string_yaml_key_is_a_clear_error(tmp_path, text, key):
    # YAML 1.1 reads ``on:``/``yes:``/``no:`` keys as booleans and ``10:`` as an int; an unknown key
    # of any type must be reported as such, not crash in the close-match suggestion.
    message = error_of(write(tmp_path, text))
    assert key in message
    assert "epochs" in message  # the valid keys are listed


# ----------------------------------------------------------------------------------- choices


def test_bad_choice_lists_choices_and_suggests_adamw(tmp_path):
    message = error_of(write(tmp_path, "optimizer: adamm\n"))
    assert "optimizer" in message and "'adamm'" in message
    for choice in ("sgd", "adam", "adamw"):
        assert f"'{choice}'" in message
    assert "'adamw'" in hint_of(message)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("schedule", "cosin", "cosine"),
        ("monitor", "val_acuracy", "val_accuracy"),
        ("augment", "standart", "standard"),
    ],
)
def test_bad_choice_suggestions(key, value, expected):
    message = error_of(**{key: value})
    assert key in message and repr(value) in message
    assert repr(expected) in hint_of(message)


# ----------------------------------------------------------------------------------- types


@pytest.mark.parametrize(
    "text, key, shown",
    [
        ('epochs: "ten"\n', "epochs", "'ten'"),
        ("lr: true\n", "lr", "True"),
        ("epochs: 2.5\n", "epochs", "2.5"),
        ("epochs: true\n", "epochs", "True"),
        ("nesterov: 1\n", "nesterov", "1"),
        ("model: 18\n", "model", "18"),
        ("batch_size: [64]\n", "batch_size", "[64]"),
    ],
)
def test_wrong_type_in_yaml_is_a_clear_error(tmp_path, text, key, shown):
    path = write(tmp_path, text)
    message = error_of(path)
    assert key in message and shown in message
    assert str(path) in message


def test_wrong_type_in_overrides_is_a_clear_error():
    message = error_of(epochs="ten")
    assert "epochs" in message and "int" in message and "'ten'" in message
    message = error_of(lr=True)
    assert "lr" in message and "float" in message


# ----------------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    "text, key",
    [
        ("label_smoothing: 1.5\n", "label_smoothing"),
        ("label_smoothing: -0.1\n", "label_smoothing"),
        ("val_fraction: 0.5\ntest_fraction: 0.5\n", "val_fraction + test_fraction"),
        ("val_fraction: 0.7\ntest_fraction: 0.6\n", "val_fraction + test_fraction"),
        ("epochs: 0\n", "epochs"),
        ("epochs: -3\n", "epochs"),
        ("batch_size: 0\n", "batch_size"),
        ("eval_batch_size: 0\n", "eval_batch_size"),
        ("lr: 0\n", "lr"),
        ("lr: -0.1\n", "lr"),
        ("ema_decay: 1.0\n", "ema_decay"),
        ("warmup_epochs: -1\n", "warmup_epochs"),
        ("weight_decay: -0.001\n", "weight_decay"),
        ("image_size: 1\n", "image_size"),
        ("clip_grad_norm: 0\n", "clip_grad_norm"),
    ],
)
def test_out_of_range_value_is_a_clear_error(tmp_path, text, key):
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(key + " must be"), message
    assert str(path) in message


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_learning_rate_is_refused(value):
    # ``lr <= 0`` is False for NaN, so the positivity check alone lets NaN through.
    message = error_of(lr=value)
    assert "lr" in message


def test_val_plus_test_fraction_message_shows_the_sum():
    message = error_of(val_fraction=0.5, test_fraction=0.5)
    assert "val_fraction + test_fraction" in message and "1.0" in message


# ----------------------------------------------------------------------------------- registries


def test_misspelt_model_suggests_the_close_name(tmp_path):
    message = error_of(write(tmp_path, "model: resnet19\n"))
    assert "'resnet19'" in message
    assert "'resnet18'" in hint_of(message)
    assert "visionbench list models" in message


def test_misspelt_dataset_suggests_the_close_name():
    message = error_of(data="digitz")
    assert "'digitz'" in message
    assert "'digits'" in hint_of(message)
    assert "visionbench list datasets" in message


def test_misspelt_loss_suggests_the_close_name():
    message = error_of(loss="cross_entropi")
    assert "'cross_entropy'" in hint_of(message)


def test_dataset_path_rules():
    assert "needs a path" in error_of(data="folder")
    assert "takes no path" in error_of(data="digits:/tmp")
    assert resolve(overrides={"data": "folder:/some/where"}).data == "folder:/some/where"


# ----------------------------------------------------------------------------------- the file


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int")])
def test_yaml_that_is_not_a_mapping_names_the_file(tmp_path, text, kind):
    path = write(tmp_path, text)
    message = error_of(path)
    assert str(path) in message and "mapping" in message and kind in message


def test_invalid_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "epochs: [1, 2\n")
    message = error_of(path)
    assert str(path) in message and "must be valid YAML" in message and "line 2" in message


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere" / "config.yaml"
    message = error_of(path)
    assert str(path) in message and "must exist; got no such file" in message


@pytest.mark.parametrize(
    "template",
    [
        '!!python/object/apply:os.system ["touch {marker}"]\n',
        'epochs: !!python/object/apply:os.system ["touch {marker}"]\n',
        'model: !!python/object/apply:subprocess.check_output [["touch", "{marker}"]]\n',
    ],
)
def test_python_object_tag_is_refused_and_runs_nothing(tmp_path, template):
    marker = tmp_path / "PWNED"
    path = write(tmp_path, template.format(marker=marker))
    message = error_of(path)
    assert str(path) in message
    assert not marker.exists()


def test_load_yaml_returns_the_mapping(tmp_path):
    assert cfg.load_yaml(write(tmp_path, "epochs: 3\nmodel: mlp\n")) == {"epochs": 3, "model": "mlp"}
    assert cfg.load_yaml(write(tmp_path, "")) == {}


# ----------------------------------------------------------------------------------- save / load


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "epochs": 3,
            "lr": 1e-5,
            "model": "mlp",
            "optimizer": "sgd",
            "nesterov": True,
            "clip_grad_norm": 1.0,
            "image_size": 32,
            "weights": "init.safetensors",
            "warmup_epochs": 0.5,
            "label_smoothing": 0.0,
            "val_fraction": 0.15,
            "test_fraction": 0.25,
            "schedule": "onecycle",
            "ema": True,
            "ema_decay": 0.99,
            "balance": True,
            "data": "folder:/data/pets",
            "seed": 123,
            "amp": False,
        },
    ],
)
def test_save_yaml_then_resolve_round_trips(tmp_path, overrides):
    config = resolve(overrides=overrides)
    path = tmp_path / "config.yaml"
    save_yaml(config, path)
    again = resolve(path)
    assert again == config
    for f in config_fields():
        assert type(getattr(again, f.name)) is type(getattr(config, f.name)), f.name


def test_save_yaml_writes_fields_in_declaration_order(tmp_path):
    path = tmp_path / "config.yaml"
    save_yaml(ClassifyConfig(), path)
    keys = [line.split(":")[0] for line in path.read_text().splitlines() if line and not line.startswith(" ")]
    assert keys == [f.name for f in config_fields()]


# ----------------------------------------------------------------------------------- tasks


def test_task_in_yaml_picks_that_tasks_config_and_defaults(tmp_path):
    config = resolve(write(tmp_path, "task: detect\nepochs: 3\n"))
    assert isinstance(config, DetectConfig) and config.epochs == 3
    assert (config.data, config.model, config.monitor) == ("shapes", "tiny_fcos", "val_AP50")


@pytest.mark.parametrize(("task", "cls", "model"), [("detect", DetectConfig, "tiny_fcos"),
                                                     ("segment", SegmentConfig, "unet_small")])
def test_task_override_picks_that_tasks_config(task, cls, model):
    config = resolve(None, {"task": task})
    assert type(config) is cls and config.model == model and config.data == "shapes"


@pytest.mark.parametrize(("overrides", "words"), [
    ({"task": "detect", "label_smoothing": 0.1}, ["'label_smoothing'", "does not apply to task 'detect'", "classify"]),
    ({"task": "segment", "protocol": "voc07"}, ["'protocol'", "does not apply to task 'segment'", "detect"]),
    ({"task": "detect", "model": "resnet18"}, ["'resnet18' is a classifier", "--task detect", "tiny_fcos"]),
    ({"model": "unet_small"}, ["'unet_small' is a segmenter", "--task classify"]),
    ({"task": "segment", "data": "digits"}, ["'digits' serves --task classify", "masks", "shapes"]),
    ({"task": "classify", "data": "shapes"}, ["'shapes' serves --task detect / segment"]),
    ({"task": "segment", "loss": "hinge"}, ["unknown segmentation loss 'hinge'"]),
    ({"task": "detect", "monitor": "val_accuracy"}, ["monitor must be one of", "val_AP50"]),
    ({"task": "detect", "val_every": 0}, ["val_every must be >= 1"]),
    ({"task": "detect", "score_threshold": 1.5}, ["score_threshold must be in [0, 1]"]),
])
def test_task_specific_options_are_checked(overrides, words):
    message = error_of(**overrides)
    for word in words:
        assert word in message, (word, message)


def test_override_task_wins_over_the_file(tmp_path):
    # the file asks for detection, the command line for classify: classify it is.
    config = resolve(write(tmp_path, "task: detect\n"), {"task": "classify"})
    assert config.task == "classify"


def test_unknown_task_lists_the_tasks():
    message = error_of(task="regress")
    assert "'regress'" in message and "classify" in message


def test_unhashable_task_value_is_a_clear_error(tmp_path):
    message = error_of(write(tmp_path, "task: [classify]\n"))
    assert "task" in message


# ----------------------------------------------------------------------------------- detection box loss


def test_box_loss_defaults_to_the_models_own_and_is_saved(tmp_path):
    assert DetectConfig().box_loss == "auto"  # tiny_fcos' own: GIoU
    config = resolve(overrides={"task": "detect", "box_loss": "ciou"})
    save_yaml(config, tmp_path / "config.yaml")
    assert "box_loss: ciou" in (tmp_path / "config.yaml").read_text()
    assert resolve(tmp_path / "config.yaml").box_loss == "ciou"


def test_a_bad_box_loss_names_the_file_and_the_choices(tmp_path):
    message = error_of(write(tmp_path, "task: detect\nbox_loss: gio\n"))
    assert "box_loss must be one of ['auto', 'giou', 'diou', 'ciou', 'iou', 'smooth_l1']; got 'gio'" in message
    assert str(tmp_path / "config.yaml") in message and "Did you mean 'giou'" in message


def test_a_box_loss_for_a_model_with_its_own_loss_is_refused(tmp_path):
    message = error_of(write(tmp_path, "task: detect\nmodel: retinanet_resnet50_fpn\nbox_loss: diou\n"))
    assert "box_loss must be auto for model 'retinanet_resnet50_fpn'" in message
    assert str(tmp_path / "config.yaml") in message and "--box-loss applies to tiny_fcos" in message
    assert resolve(overrides={"task": "detect", "model": "retinanet_resnet50_fpn"}).box_loss == "auto"


def test_box_loss_is_an_option_of_detection_only():
    assert "does not apply to task 'classify'" in error_of(box_loss="giou")


@pytest.mark.parametrize("text, refused", [
    ("a: &x [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &y [*x, *x, *x, *x, *x, *x, *x, *x, *x]\nc: [*y, *y, *y, *y, *y, *y]\n",
     "anchor or alias"),
    ("epochs: 3\nepochs: 5\n", "the key 'epochs' a second time"),
])
def test_aliases_and_repeated_keys_are_refused_before_they_expand(tmp_path, text, refused):
    """A 'billion laughs' config (a 399-byte one built a 522 MB error message at 2.4 GB) and a key
    given twice (PyYAML keeps the last silently) are refused, naming the file and the line."""
    path = write(tmp_path, text)
    message = error_of(path)
    assert str(path) in message and refused in message and "line " in message and len(message) < 500


def test_an_oversized_config_is_refused_before_parsing(tmp_path):
    path = write(tmp_path, "epochs: 3\n" + "#" * (1 << 20) + "\n")
    message = error_of(path)
    assert str(path) in message and "at most 1048576 bytes" in message


def test_a_config_that_is_a_directory_or_not_utf8_names_the_file(tmp_path):
    assert "must be a file; got a directory" in error_of(tmp_path)
    path = tmp_path / "latin1.yaml"
    path.write_bytes("model: caf\xe9\n".encode("latin-1"))
    assert str(path) in error_of(path) and "must be UTF-8" in error_of(path)


@pytest.mark.parametrize("overrides, message", [
    ({"lr_gamma": -1.0}, "lr_gamma must be in (0, 1]"),
    ({"lr_gamma": 0.0}, "lr_gamma must be in (0, 1]"),
    ({"lr_step_epochs": -2}, "lr_step_epochs must be >= 1"),
    ({"lr": 1e308}, "lr must be <= 100"),
    ({"lr": float("inf")}, "lr must be a finite number"),
    ({"weight_decay": float("nan")}, "weight_decay must be a finite number"),
    ({"momentum": float("-inf")}, "momentum must be a finite number"),
])
def test_out_of_range_numbers_are_refused_before_training(overrides, message):
    """A negative gamma trained with a negative LR, lr_step_epochs -2 drove it to 3e-23 and --lr 1e308
    gave a traceback (issue 18): every number is checked for its range and finiteness."""
    assert message in error_of(**overrides)


def test_an_unavailable_device_is_a_clear_error():
    from visionbench.engine.runtime import resolve_device

    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="MPS backend is not available"):
            resolve_device("mps")
    with pytest.raises(ValueError, match="CUDA is not available|GPUs visible here"):
        resolve_device("cuda:99")
