"""A training run's initial weights: ``--pretrained``, ``--weights NAME`` or ``--weights FILE``.

Below :mod:`visionbench.engine.run_model` (which loads them into a new model) and the tasks'
data code (which takes the weights' preprocessing). The file is found and verified by
:mod:`visionbench.models.pretrained` and fitted by :mod:`visionbench.models.adapt` (head
replaced for another class count, RGB stem adapted); resume, evaluate and predict load their own
run's weights strictly instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from visionbench.engine import checkpoint as ckpt
from visionbench.models import adapt, pretrained

WEIGHTS_RECORD = "weights.json"  # in the run directory: which initial weights were used
SMALL_DATASET = 1000  # training images below which the log points at available pretrained weights


def weights_enum(config: Any) -> Any | None:
    """The torchvision weights enum ``config`` asks for (``--pretrained``: the model's default;
    ``--weights NAME``: that one), or ``None`` (no weights, or a file).

    Raises:
        ValueError: ``--pretrained`` with ``--weights FILE``, or a name the model does not have.
    """
    weights = config.weights
    named = weights is not None and pretrained.is_weights_name(weights)
    if getattr(config, "pretrained", False) and weights is not None and not named:
        raise ValueError(f"pretrained must be false with --weights FILE; got --pretrained and --weights {weights!r}. "
                         "Give one: --pretrained (torchvision's default weights) or --weights FILE.")
    if not (named or getattr(config, "pretrained", False)):
        return None
    if config.task != "classify":  # whole-detector weights carry COCO heads: backbones are what transfers
        raise ValueError(f"--pretrained / --weights NAME must be used with --task classify; got --task {config.task}. "
                         "For a detector or segmenter use --pretrained-backbone, or --weights FILE.")
    return pretrained.resolve_weights(config.model, weights if named else None)


def check_available(config: Any) -> None:
    """Fail at once (before any data is loaded) when the pretrained weights ``config`` asks for are
    not in the local cache and may not be downloaded (:func:`visionbench.models.pretrained.locate_weights`)."""
    enum = weights_enum(config)
    if enum is not None and not getattr(config, "download_weights", False):
        pretrained.locate_weights(enum)


def weights_preprocessing(config: Any) -> dict[str, Any] | None:
    """The evaluation preprocessing of the pretrained weights ``config`` uses (``resize_size``,
    ``crop_size``, ``mean``, ``std``: :func:`visionbench.models.pretrained.preprocessing`), or ``None``."""
    enum = weights_enum(config)
    return None if enum is None else pretrained.preprocessing(enum)


def pretrained_input(preprocessing: dict[str, Any], image_size: int | None, in_channels: int
                     ) -> tuple[tuple[int, int], int, tuple[float, ...], tuple[float, ...]]:
    """Model input ``(H, W)``, resize side, mean and std of a run on pretrained weights.

    The crop is the weights' (``--image-size`` overrides it, the resize keeps the weights' ratio,
    256/224 for ResNets); one-channel input gets the mean of the RGB statistics, to match the stem
    summed over RGB.
    """
    crop = image_size or preprocessing["crop_size"]
    resize = round(crop * preprocessing["resize_size"] / preprocessing["crop_size"])
    mean, std = tuple(preprocessing["mean"]), tuple(preprocessing["std"])
    if in_channels == 1:
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    return (crop, crop), resize, mean, std


def load_initial_weights(model: nn.Module, config: Any, num_classes: int | None
                         ) -> tuple[pretrained.PretrainedFile, adapt.FitReport] | None:
    """Load the initial weights ``config`` asks for into ``model``, fitted to its classes and channels.

    Returns:
        What was read (name, file, SHA-256) and what was kept, adapted and re-initialised; ``None``
        when the config asks for no initial weights.
    """
    enum = weights_enum(config)
    if enum is not None:
        state, record = pretrained.read_pretrained(enum, download=getattr(config, "download_weights", False))
    elif config.weights:
        path = Path(config.weights)
        state = ckpt.read_weights(path)
        record = pretrained.PretrainedFile(name=config.weights, file=str(path.resolve()),
                                           sha256=pretrained.file_sha256(path))
    else:
        return None
    fitted, report = adapt.fit_state_dict(model.state_dict(), state, record.name, num_classes=num_classes)
    model.load_state_dict(fitted)
    return record, report


def describe(record: pretrained.PretrainedFile, report: adapt.FitReport) -> str:
    """The log line of :func:`load_initial_weights`' result."""
    return f"initial weights {record.name} ({record.file}, sha256 {record.sha256[:16]}…): {report.summary()}"


def write_weights_record(run_dir: Path, record: pretrained.PretrainedFile, report: adapt.FitReport) -> None:
    """Write ``weights.json`` (name, file, SHA-256, URL, and the tensors kept/adapted/re-initialised), atomically."""
    path = run_dir / WEIGHTS_RECORD
    content = {**asdict(record), "kept": len(report.kept), "adapted": report.adapted,
               "reinitialised": report.reinitialised}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def small_dataset_hint(config: Any, train_samples: int) -> str | None:
    """A log line when a small training set (< ``SMALL_DATASET`` images) trains from scratch while
    the model's default pretrained weights are in the local cache; else ``None``."""
    if train_samples >= SMALL_DATASET or config.weights or getattr(config, "pretrained", False):
        return None
    path = pretrained.local_default_weights(config.model)
    if path is None:
        return None
    return (f"only {train_samples} training images and pretrained weights for {config.model} are in the local cache "
            f"({path}): --pretrained usually trains a much better model on so few images")


__all__ = ["SMALL_DATASET", "WEIGHTS_RECORD", "check_available", "describe", "load_initial_weights", "pretrained_input", "small_dataset_hint",
           "weights_enum", "weights_preprocessing", "write_weights_record"]
