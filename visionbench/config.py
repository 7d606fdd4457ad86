"""Typed run configuration: defaults → ``--config file.yaml`` → command-line flags, resolved once.

One frozen dataclass per task (``ClassifyConfig``, ``DetectConfig``, ``SegmentConfig``, sharing the
fields of ``TrainConfig``). Each field carries its help text and,
where it has a fixed set of values, its choices, so the CLI, the YAML loader and the validation
all read the same source. The resolved config is saved as ``config.yaml`` in the run directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionbench.strict_yaml import dump_yaml, read_yaml_file

TASKS = ("classify", "detect", "segment")


def _opt(default: Any, help: str, choices: tuple[Any, ...] | None = None, *, unset: Any = None) -> Any:
    """A config field; ``unset``: what a ``None`` default stands for until the run settles it
    (``batch_size``: the task's usual batch, lowered on small training sets)."""
    return field(default=default, metadata={"help": help, "choices": choices, "unset": unset})


# Unless --batch-size is given, a training set too small for MIN_STEPS_PER_EPOCH steps at the task's
# usual batch gets a smaller batch (see settle_batch_size): 84 images at batch 64 made 2 steps per
# epoch and a model that predicted one class (issue 11). The run's config.yaml holds the batch used.
MIN_STEPS_PER_EPOCH = 20
MIN_AUTO_BATCH_SIZE = 8  # smaller batches make BatchNorm statistics too noisy to choose unasked
_BATCH_HELP = ("samples per step, per process; when not given, the default is lowered (not below 8) on small training "
               "sets so that an epoch has at least 20 steps")


@dataclass(frozen=True)
class TrainConfig:
    """The options every task shares: data, model, optimisation, schedule, checkpoints, seeds.

    Each task's config adds its own options and its own defaults (a field redeclared in a task's
    config keeps its place and changes its default).
    """

    task: str = _opt("classify", "what to train", TASKS)
    data: str = _opt("digits", "dataset: digits | folder:PATH | mnist:PATH | cifar10:PATH (detect: shapes | coco:JSON[:IMAGES] "
                     "| voc:PATH | yolo:DATA.yaml; segment: shapes | masks:PATH | voc:PATH | coco:JSON[:IMAGES])")
    model: str = _opt("cnn-small", "model name (see `visionbench list models`)")
    weights: str | None = _opt(None, "initial weights: a local .safetensors or .pt state dict (heads of another class "
                               "count are replaced, RGB stems adapted; a timm checkpoint for timm:NAME), or a "
                               "torchvision weights name (IMAGENET1K_V1)")
    pretrained: bool = _opt(False, "start from the model's default pretrained weights, read from the local torch hub "
                            "cache ($TORCH_HOME/hub/checkpoints) or, for timm:NAME[.TAG], the local Hugging Face "
                            "cache; never downloaded unless --download-weights")
    download_weights: bool = _opt(False, "let --pretrained / --weights NAME download a missing weights file into the "
                                  "torch hub or Hugging Face cache (off: fail naming the file and the command that "
                                  "fetches it)")
    epochs: int = _opt(10, "passes over the training split")
    batch_size: int | None = _opt(None, _BATCH_HELP, unset=64)
    lr: float = _opt(3e-3, "peak learning rate (reached after warmup)")
    optimizer: str = _opt("adamw", "optimizer", ("sgd", "adam", "adamw"))
    momentum: float = _opt(0.9, "SGD momentum")
    nesterov: bool = _opt(False, "SGD Nesterov momentum")
    weight_decay: float = _opt(5e-4, "L2 / decoupled weight decay")
    freeze_backbone: bool = _opt(False, "fine-tuning: train only the head (the backbone's weights and batch-norm "
                                 "statistics stay as loaded)")
    unfreeze_at: int = _opt(0, "with --freeze-backbone: train the backbone too from this epoch on (1-based; 0: never)")
    backbone_lr_scale: float = _opt(1.0, "the backbone's learning rate is --lr times this (e.g. 0.1 to fine-tune "
                                    "gently); the head's is --lr")
    schedule: str = _opt("cosine", "LR schedule", ("constant", "cosine", "step", "onecycle"))
    warmup_epochs: float = _opt(1.0, "linear LR warmup length, in epochs")
    lr_step_epochs: int = _opt(3, "for schedule=step: epochs between LR drops")
    lr_gamma: float = _opt(0.1, "for schedule=step: LR multiplier at each drop")
    clip_grad_norm: float | None = _opt(None, "clip the global gradient norm to this value")
    clip_grad_value: float | None = _opt(None, "clip each gradient element to [-v, v]")
    amp: bool = _opt(True, "mixed precision (bfloat16/float16 autocast) when on CUDA; ignored on CPU")
    ema: bool = _opt(False, "keep an exponential moving average of weights and evaluate it")
    ema_decay: float = _opt(0.999, "EMA decay per step")
    early_stopping: int = _opt(0, "stop after this many epochs without improvement of --monitor (0: off)")
    monitor: str = _opt("val_accuracy", "validation metric choosing the best checkpoint", ("val_accuracy", "val_loss"))
    augment: str = _opt("auto", "augmentation preset (auto picks per dataset)", ("auto", "none", "light", "standard"))
    image_size: int | None = _opt(None, "side of the square model input (default: native size, or the model's minimum)")
    val_fraction: float = _opt(0.1, "share of samples for validation when the dataset has no val split")
    test_fraction: float = _opt(0.2, "share of samples for test when the dataset has no test split")
    seed: int = _opt(0, "seed of initialisation, data order, augmentation and dropout")
    split_seed: int = _opt(0, "seed of the train/val/test split; fixed apart from --seed so runs share a test set")
    checkpoint_every: int = _opt(0, "also checkpoint every N steps within an epoch (0: once per epoch)")
    eval_batch_size: int = _opt(256, "samples per evaluation step")
    val_every: int = _opt(1, "validate every N epochs (and after the last); best checkpoints come from validated epochs")
    deterministic: bool = _opt(True, "deterministic kernels (cuDNN); --no-deterministic also turns cuDNN's autotuner on")
    channels_last: bool = _opt(False, "train in channels-last (NHWC) memory order, which GPU tensor cores prefer "
                                      "(off: not measured on a GPU yet; on the CPU 1.45x faster for cnn-small at "
                                      "32 px, 0.9x as fast for resnet18)")
    compile: bool = _opt(False, "torch.compile the training forward and backward (compiled at the first step; a run "
                                "is resumed bitwise only with the same setting)")
    sync_bn: bool = _opt(False, "DDP: batch-norm statistics over the batches of every process (SyncBatchNorm; on "
                                "CPU our own all-reduce batch norm), not per process; no effect on one process")
    resamples: int = _opt(1000, "bootstrap resamples behind each test metric's confidence interval (0: no intervals); "
                               "their time grows with samples x resamples")
    threads: int | str = _opt("auto", "CPU threads of the main process: a count N, or auto: OMP_NUM_THREADS if set, "
                                      "else half the CPU cores (1 to 8), fast also on a busy machine")


@dataclass(frozen=True)
class ClassifyConfig(TrainConfig):
    """Everything that determines the result of a classification run."""

    loss: str = _opt("cross_entropy", "loss (see `visionbench list losses`)")
    label_smoothing: float = _opt(0.1, "cross-entropy label smoothing in [0, 1)")
    class_weights: str = _opt("none", "loss class weights: none, or balanced (inverse class frequency)", ("none", "balanced"))
    balance: bool = _opt(False, "class-balanced sampling (each class drawn equally often)")
    multilabel: bool = _opt(False, "several labels per image (--data csv:LABELS.csv[:IMAGES], or folder:ROOT with "
                            "an image in each of its label folders): one sigmoid per label, BCE loss, a label is "
                            "predicted when its probability is >= 0.5")
    monitor: str = _opt("val_accuracy", "validation metric choosing the best checkpoint (with --multilabel: "
                        "val_accuracy is the exact-match ratio; val_mAP the mean AP over labels)",
                        ("val_accuracy", "val_loss", "val_mAP"))
    augment: str = _opt("auto", "augmentation preset (auto picks per dataset); randaugment, trivialaugment and "
                        "autoaugment (ImageNet policy) add that policy to standard",
                        ("auto", "none", "light", "standard", "randaugment", "trivialaugment", "autoaugment"))
    random_erase: float = _opt(0.0, "probability of erasing a random rectangle of each training image (0: off)")
    mixup: float = _opt(0.0, "MixUp alpha of Beta(alpha, alpha) per batch (0: off; typical 0.2)")
    cutmix: float = _opt(0.0, "CutMix alpha of Beta(alpha, alpha) per batch (0: off; typical 1.0); "
                         "with --mixup too, each batch uses one of them at random")


# Detection defaults: the recipe that trains tiny_fcos to AP50 >= 0.90 on shapes in minutes on 2 CPU
# cores (benchmarks/train_shapes_detector.py): AdamW 3e-3, weight decay 0.05, batch 32, 22 epochs,
# ~100 warmup steps, gradient norm clipped at 10, horizontal and vertical flips.
@dataclass(frozen=True)
class DetectConfig(TrainConfig):
    """Everything that determines the result of a detection run."""

    task: str = _opt("detect", "what to train", TASKS)
    data: str = _opt("shapes", "dataset: shapes | coco:ANNOTATIONS.json[:IMAGES] | voc:PATH | yolo:DATA.yaml")
    model: str = _opt("tiny_fcos", "detector name (see `visionbench list models`)")
    epochs: int = _opt(22, "passes over the training split")
    batch_size: int | None = _opt(None, _BATCH_HELP.replace("samples", "images", 1), unset=32)
    weight_decay: float = _opt(0.05, "L2 / decoupled weight decay (none on norms and biases)")
    warmup_epochs: float = _opt(1.6, "linear LR warmup length, in epochs")
    clip_grad_norm: float | None = _opt(10.0, "clip the global gradient norm to this value")
    monitor: str = _opt("val_AP50", "validation metric choosing the best checkpoint", ("val_AP50", "val_AP"))
    augment: str = _opt("auto", "augmentation preset: flip (h+v), standard (flip, scale jitter, crop, colour)",
                        ("auto", "none", "flip", "standard"))
    image_size: int | None = _opt(None, "side the images are resized to (default: as stored)")
    eval_batch_size: int = _opt(64, "images per evaluation step")
    score_threshold: float = _opt(0.5, "score at which precision/recall/F1 and the confusion matrix are reported")
    protocol: str = _opt("pycocotools", "evaluation protocol of the test metrics",
                         ("pycocotools", "coco-fixed", "voc07", "voc12"))
    box_loss: str = _opt("auto", "box regression loss (see `visionbench list losses`): auto keeps the model's own "
                         "(tiny_fcos: giou); tiny_fcos also takes diou, ciou, iou or smooth_l1",
                         ("auto", "giou", "diou", "ciou", "iou", "smooth_l1"))
    pretrained_backbone: bool = _opt(False, "torchvision detectors: start the backbone from its ImageNet weights, "
                                     "read from the local torch hub cache (never downloaded unless --download-weights)")


# Segmentation defaults: the recipe that trains unet_small to mIoU >= 0.85 on shapes in minutes on
# 2 CPU cores (benchmarks/train_shapes_segmenter.py): AdamW 5e-3, weight decay 1e-4, batch 16,
# 17 epochs, CE + Dice, horizontal flips.
@dataclass(frozen=True)
class SegmentConfig(TrainConfig):
    """Everything that determines the result of a semantic segmentation run."""

    task: str = _opt("segment", "what to train", TASKS)
    data: str = _opt("shapes", "dataset: shapes | masks:PATH | voc:PATH | coco:ANNOTATIONS.json[:IMAGES]")
    model: str = _opt("unet_small", "segmenter name (see `visionbench list models`)")
    epochs: int = _opt(17, "passes over the training split")
    batch_size: int | None = _opt(None, _BATCH_HELP.replace("samples", "images", 1), unset=16)
    lr: float = _opt(5e-3, "peak learning rate (reached after warmup)")
    weight_decay: float = _opt(1e-4, "L2 / decoupled weight decay (none on norms and biases)")
    warmup_epochs: float = _opt(0.5, "linear LR warmup length, in epochs")
    monitor: str = _opt("val_mIoU", "validation metric choosing the best checkpoint", ("val_mIoU", "val_loss"))
    augment: str = _opt("auto", "augmentation preset: flip (horizontal), standard (flip, scale, crop, colour)",
                        ("auto", "none", "flip", "standard"))
    image_size: int | None = _opt(None, "side the images and masks are resized to (default: as stored)")
    eval_batch_size: int = _opt(32, "images per evaluation step")
    loss: str = _opt("ce_dice", "pixel loss (see `visionbench list losses`)")
    class_weights: str = _opt("none", "cross-entropy class weights: none, or balanced (inverse pixel frequency)",
                              ("none", "balanced"))
    ignore_index: int = _opt(255, "mask value left out of the loss and the metrics")
    pretrained_backbone: bool = _opt(False, "torchvision segmenters: start the backbone from its ImageNet weights, "
                                     "read from the local torch hub cache (never downloaded unless --download-weights)")


CONFIG_CLASSES: dict[str, type[TrainConfig]] = {
    "classify": ClassifyConfig, "detect": DetectConfig, "segment": SegmentConfig,
}
AnyConfig = ClassifyConfig | DetectConfig | SegmentConfig


def usual_batch_size(config: AnyConfig) -> int:
    """The task's batch size when none is given, before :func:`settle_batch_size` lowers it."""
    return next(f for f in config_fields(type(config)) if f.name == "batch_size").metadata["unset"]


def settle_batch_size(config: AnyConfig, train_samples: int, world_size: int = 1) -> int:
    """The batch size a run of ``config`` on ``train_samples`` training samples uses.

    A given ``batch_size`` is used as given. Unset (``None``), it is the task's usual batch (64
    classify, 32 detect, 16 segment), lowered when an epoch would have fewer than
    ``MIN_STEPS_PER_EPOCH`` steps to the largest batch that gives that many, but not below
    ``MIN_AUTO_BATCH_SIZE``.

    Example:
        >>> settle_batch_size(ClassifyConfig(), 84), settle_batch_size(ClassifyConfig(), 1258)
        (8, 64)
    """
    if config.batch_size is not None:
        return config.batch_size
    usual = usual_batch_size(config)
    if math.ceil(train_samples / (usual * world_size)) >= MIN_STEPS_PER_EPOCH:
        return usual
    return max(MIN_AUTO_BATCH_SIZE, min(usual, train_samples // (MIN_STEPS_PER_EPOCH * world_size)))


def config_fields(cls: type = ClassifyConfig) -> list[dataclasses.Field]:
    """The dataclass fields, in declaration order."""
    return list(dataclasses.fields(cls))


def all_option_fields() -> list[dataclasses.Field]:
    """Every task's fields, once each (the first task's declaration), for the command line."""
    seen: dict[str, dataclasses.Field] = {}
    for cls in CONFIG_CLASSES.values():
        for f in config_fields(cls):
            seen.setdefault(f.name, f)
    return list(seen.values())


ALL_OPTIONS = frozenset(f.name for f in all_option_fields())


def _coerce(name: str, value: Any, annotation: str, source: str) -> Any:
    """Check ``value`` against the field's annotation (as written in the source, e.g. ``"int | None"``)."""
    if value is None:
        if "None" in annotation:
            return None
        raise ValueError(f"{name} must not be empty; got None in {source}. Remove the key to use the default.")
    base = annotation.replace(" | None", "")
    if base == "bool":
        if isinstance(value, bool):
            return value
    elif base == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base == "float":
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" (no dot) as a string; accept what float() accepts.
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number; got {value!r} in {source}.")
            return float(value)
    elif base == "str":
        if isinstance(value, str):
            return value
    elif base == "int | str":  # e.g. threads: a count, or a word such as "auto" (checked by validate)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError(f"{name} must be an integer or a word; got {value!r} in {source}.")
    raise ValueError(f"{name} must be {base}; got {value!r} in {source}.")


MAX_LR = 100.0  # the largest --lr accepted
MAX_RESAMPLES = 1_000_000  # bootstrap resamples: beyond, a percentile interval no longer changes, the time does


def validate(config: AnyConfig, source: str = "the configuration") -> AnyConfig:
    """Check every value's type, choices and range; return ``config`` unchanged if valid."""
    for f in config_fields(type(config)):
        value = _coerce(f.name, getattr(config, f.name), str(f.type), source)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"{f.name} must be one of {list(choices)}; got {value!r} in {source}.{hint}")
    for f in config_fields(type(config)):  # NaN or inf in any number: a traceback or a silent divergence later
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number; got {value!r} in {source}.")
    positive = ("epochs", "batch_size", "eval_batch_size", "lr")
    for name in positive:
        if getattr(config, name) is not None and getattr(config, name) <= 0:  # batch_size None: settled by the run
            raise ValueError(f"{name} must be > 0; got {getattr(config, name)!r} in {source}.")
    checks = [
        ("lr", config.lr <= MAX_LR, f"<= {MAX_LR:g} (larger steps diverge with every optimizer here)"),
        ("lr_gamma", 0 < config.lr_gamma <= 1, "in (0, 1] (the step schedule multiplies the lr by it)"),
        ("lr_step_epochs", config.lr_step_epochs >= 1, ">= 1 (epochs between lr drops of the step schedule)"),
        ("label_smoothing", 0 <= getattr(config, "label_smoothing", 0) < 1, "in [0, 1)"),
        ("random_erase", 0 <= getattr(config, "random_erase", 0) <= 1, "in [0, 1]"),
        ("mixup", getattr(config, "mixup", 0) >= 0, ">= 0 (0: off; typical 0.2)"),
        ("cutmix", getattr(config, "cutmix", 0) >= 0, ">= 0 (0: off; typical 1.0)"),
        ("val_every", config.val_every >= 1, ">= 1"),
        ("resamples", 0 <= config.resamples <= MAX_RESAMPLES, f"in [0, {MAX_RESAMPLES:,}] (0: no intervals)"),
        ("score_threshold", 0 <= getattr(config, "score_threshold", 0) <= 1, "in [0, 1]"),
        ("ignore_index", getattr(config, "ignore_index", 255) >= 0, ">= 0"),
        ("val_fraction", 0 <= config.val_fraction < 1, "in [0, 1)"),
        ("test_fraction", 0 <= config.test_fraction < 1, "in [0, 1)"),
        ("val_fraction + test_fraction", config.val_fraction + config.test_fraction < 1, "< 1"),
        ("ema_decay", 0 < config.ema_decay < 1, "in (0, 1)"),
        ("warmup_epochs", config.warmup_epochs >= 0, ">= 0"),
        ("weight_decay", config.weight_decay >= 0, ">= 0"),
        ("early_stopping", config.early_stopping >= 0, ">= 0"),
        ("checkpoint_every", config.checkpoint_every >= 0, ">= 0"),
        ("unfreeze_at", config.unfreeze_at >= 0, ">= 0 (0: never; else the 1-based epoch that unfreezes)"),
        ("backbone_lr_scale", config.backbone_lr_scale >= 0, ">= 0 (1: the same lr as the head)"),
        ("image_size", config.image_size is None or config.image_size >= 2, ">= 2"),
        ("clip_grad_norm", config.clip_grad_norm is None or config.clip_grad_norm > 0, "> 0"),
        ("clip_grad_value", config.clip_grad_value is None or config.clip_grad_value > 0, "> 0"),
        ("momentum", 0 <= config.momentum < 1, "in [0, 1)"),
        ("threads", config.threads == "auto" or (isinstance(config.threads, int) and config.threads >= 1),
         "'auto' or an integer >= 1 (e.g. 1)"),
        ("optimizer (with --nesterov)", not config.nesterov or config.optimizer == "sgd",
         "sgd (Nesterov momentum is an SGD option)"),
        ("momentum (with --nesterov)", not config.nesterov or config.momentum > 0, "> 0"),
    ]
    for name, ok, constraint in checks:
        if not ok:
            value = eval_name(config, name)
            raise ValueError(f"{name} must be {constraint}; got {value!r} in {source}.")
    _check_names(config)
    _check_model_options(config, source)
    return config


def _check_names(config: TrainConfig) -> None:
    """The dataset spec, model and loss exist and serve ``config.task``."""
    from visionbench.data import parse_data_spec
    from visionbench.losses import LOSSES, SEGMENTATION_LOSSES
    from visionbench.models import MODELS

    parse_data_spec(config.data, task=config.task)
    MODELS.check(config.model)
    model_task = MODELS.info(config.model).get("task", "classify")
    if model_task != config.task:
        default = CONFIG_CLASSES[config.task]().model
        examples = ", ".join([f"{default} (the default)"] + [n for n in MODELS.names_for(config.task) if n != default][:3])
        raise ValueError(f"model {config.model!r} is a {_TASK_NOUNS[model_task]} and cannot be trained with --task "
                         f"{config.task}. Choose a {_TASK_NOUNS[config.task]}, e.g. {examples} "
                         "(`visionbench list models`).")
    if config.task == "classify":
        LOSSES.check(config.loss)
        mixing = getattr(config, "mixup", 0) > 0 or getattr(config, "cutmix", 0) > 0
        if mixing and not LOSSES.info(config.loss).get("soft_targets", False):
            takes = ", ".join(n for n in LOSSES.names() if LOSSES.info(n).get("soft_targets", False))
            raise ValueError(f"loss must take soft targets with --mixup/--cutmix; got {config.loss!r}. "
                             f"Use one of {takes}, or turn mixup and cutmix off (0).")
    elif config.task == "segment":
        SEGMENTATION_LOSSES.check(config.loss)



def _check_model_options(config: TrainConfig, source: str) -> None:
    """The model takes the options the config chooses (``box_loss`` other than ``auto``)."""
    from visionbench.models._registry import check_model_options

    box_loss = getattr(config, "box_loss", "auto")
    if box_loss != "auto":
        check_model_options(config.model, {"box_loss": box_loss}, source)


_TASK_NOUNS = {"classify": "classifier", "detect": "detector", "segment": "segmenter"}


def eval_name(config: AnyConfig, name: str) -> Any:
    """Value of a field, or of a ``"a + b"`` sum of fields (for error messages)."""
    if "+" not in name:  # one field, maybe not a number (threads: 'four')
        return getattr(config, name.split(" ")[0])
    return sum(getattr(config, part.strip().split(" ")[0]) for part in name.split("+"))


def merge(config: AnyConfig, overrides: dict[str, Any], source: str) -> AnyConfig:
    """``config`` with ``overrides`` applied; unknown keys are an error naming the valid ones."""
    valid = {f.name for f in config_fields(type(config))}
    for key in overrides:
        if key not in valid and key in ALL_OPTIONS:
            tasks = [t for t, c in CONFIG_CLASSES.items() if key in {f.name for f in config_fields(c)}]
            raise ValueError(f"option {key!r} (in {source}) does not apply to task {config.task!r}; it is an option of "
                             f"--task {' / '.join(tasks)}. Remove it.")
        if key not in valid:
            close = difflib.get_close_matches(str(key), sorted(valid), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown configuration key {key!r} in {source}.{hint} Valid keys: {', '.join(sorted(valid))}.")
    coerced = {}
    types = {f.name: str(f.type) for f in config_fields(type(config))}
    for key, value in overrides.items():
        coerced[key] = _coerce(key, value, types[key], source)
    return dataclasses.replace(config, **coerced)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of options (``--config``, a run's ``config.yaml``) safely and strictly:
    at most 1 MiB, no object construction, no anchors/aliases (an alias bomb expands a few hundred
    bytes to gigabytes), no repeated keys (:func:`visionbench.strict_yaml.read_yaml_file`)."""
    path = Path(path)
    data = read_yaml_file(path, "the config file", hint="A config file is one `option: value` line per option.")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of key: value; got {type(data).__name__}.")
    return data


def resolve(config_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> AnyConfig:
    """Defaults, then the YAML file, then ``overrides`` (flags or keyword arguments); validated.

    Example:
        >>> resolve(overrides={"epochs": 3}).epochs
        3
    """
    file_values = load_yaml(config_file) if config_file else {}
    task = (overrides or {}).get("task") or file_values.get("task") or "classify"
    where = "the command line" if (overrides or {}).get("task") else (str(config_file) if "task" in file_values
                                                                        else "the defaults")
    if not isinstance(task, str) or task not in CONFIG_CLASSES:
        raise ValueError(f"task must be one of {list(TASKS)}; got {task!r} in {where}.")
    config = CONFIG_CLASSES[task]()
    file_values = {k: v for k, v in file_values.items() if k != "task"}  # the task is resolved above
    if file_values:
        try:
            config = validate(merge(config, file_values, str(config_file)), str(config_file))
        except ValueError as error:  # names (model, data) are checked by their registries: say which file
            if str(config_file) in str(error):
                raise
            raise ValueError(f"{config_file}: {error}") from None
    if overrides:
        config = merge(config, overrides, "the command line")
    return validate(config, "the command line" if overrides else "the defaults")


def save_yaml(config: AnyConfig, path: Path) -> None:
    """Write the resolved configuration as YAML, in field order."""
    path.write_text(dump_yaml(dataclasses.asdict(config)))
