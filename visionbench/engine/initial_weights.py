"""A training run's initial weights: ``--pretrained``, ``--weights NAME`` or ``--weights FILE``.

Below :mod:`visionbench.engine.run_model` (which loads them into a new model) and the tasks'
data code (which takes the weights' preprocessing). The file is found and verified by
:mod:`visionbench.models.pretrained` and fitted by :mod:`visionbench.models.adapt` (head
replaced for another class count, RGB stem adapted); resume, evaluate and predict load their own
run's weights strictly instead.

timm models (``--model timm:NAME``, :mod:`visionbench.models.timm_backend`) take ``--pretrained``
from the local Hugging Face cache (timm's own repo and file for NAME, fetched only with
``--download-weights``) and ``--weights FILE``; their pretrained weights are chosen by the tag in
the name (``timm:resnet18.a1_in1k``), never by ``--weights NAME``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from visionbench.engine import checkpoint as ckpt
from visionbench.models import adapt, pretrained, timm_backend

WEIGHTS_RECORD = "weights.json"  # in the run directory: which initial weights were used
SMALL_DATASET = 1000  # training images below which the log points at available pretrained weights


def weights_enum(config: Any) -> Any | None:
    """The torchvision weights enum ``config`` asks for (``--pretrained``: the model's default;
    ``--weights NAME``: that one), or ``None`` (no weights, a file, or a timm model: see
    :func:`timm_pretrained`).

    Raises:
        ValueError: ``--pretrained`` with ``--weights FILE``, a name the model does not have, or a
            weights name with a timm model.
    """
    weights = config.weights
    named = weights is not None and pretrained.is_weights_name(weights)
    if getattr(config, "pretrained", False) and weights is not None and not named:
        raise ValueError(f"pretrained must be false with --weights FILE; got --pretrained and --weights {weights!r}. "
                         "Give one: --pretrained (the model's default pretrained weights) or --weights FILE.")
    if timm_backend.is_timm_name(config.model):
        if named:
            raise ValueError(
                f"--weights must be a file with --model {config.model}; got the weights name {weights!r}. timm "
                f"models choose their pretrained weights by the tag in the model name: e.g. --model "
                f"timm:resnet18.a1_in1k --pretrained (list the tags with timm.list_pretrained('resnet18*')).")
        return None
    if not (named or getattr(config, "pretrained", False)):
        return None
    if config.task != "classify":  # whole-detector weights carry COCO heads: backbones are what transfers
        raise ValueError(f"--pretrained / --weights NAME must be used with --task classify; got --task {config.task}. "
                         "For a detector or segmenter use --pretrained-backbone, or --weights FILE.")
    return pretrained.resolve_weights(config.model, weights if named else None)


def timm_pretrained(config: Any) -> bool:
    """Whether ``config`` asks for a timm model's pretrained weights from the local Hugging Face cache
    (``--pretrained`` with ``--model timm:NAME``); the option checks are :func:`weights_enum`'s."""
    return timm_backend.is_timm_name(config.model) and bool(getattr(config, "pretrained", False))


def check_available(config: Any) -> None:
    """Fail at once (before any data is loaded) when the pretrained weights ``config`` asks for are
    not in the local cache and may not be downloaded (:func:`visionbench.models.pretrained.locate_weights`,
    :func:`visionbench.models.timm_backend.locate_timm_weights`)."""
    enum = weights_enum(config)  # also refuses contradictory options before the data loads
    if getattr(config, "download_weights", False):
        return
    if timm_pretrained(config):
        timm_backend.locate_timm_weights(config.model)
    elif enum is not None:
        pretrained.locate_weights(enum)


def weights_preprocessing(config: Any) -> dict[str, Any] | None:
    """The evaluation preprocessing of the pretrained weights ``config`` uses (``resize_size``,
    ``crop_size``, ``mean``, ``std``: :func:`visionbench.models.pretrained.preprocessing`, or
    :func:`visionbench.models.timm_backend.timm_preprocessing` for a timm model), or ``None``."""
    enum = weights_enum(config)
    if timm_pretrained(config):
        return timm_backend.timm_preprocessing(config.model)
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


def load_initial_weights(model: nn.Module, config: Any, num_classes: int | None, *, image_size: int | None = None
                         ) -> tuple[pretrained.PretrainedFile, adapt.FitReport] | None:
    """Load the initial weights ``config`` asks for into ``model``, fitted to its classes and channels
    (and, for timm models of a fixed input size, to the ``image_size`` they were built for).

    Returns:
        What was read (name, file, SHA-256) and what was kept, adapted and re-initialised; ``None``
        when the config asks for no initial weights.
    """
    enum = weights_enum(config)
    if timm_pretrained(config):
        state, record = _read_timm_pretrained(config.model, download=getattr(config, "download_weights", False),
                                              image_size=image_size)
    elif enum is not None:
        state, record = pretrained.read_pretrained(enum, download=getattr(config, "download_weights", False))
    elif config.weights and timm_backend.is_timm_name(config.model):
        state, record = _read_timm_file(model, config.model, Path(config.weights), image_size=image_size)
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


def _read_timm_pretrained(name: str, *, download: bool, image_size: int | None
                          ) -> tuple[dict[str, Any], pretrained.PretrainedFile]:
    """``timm:NAME``'s default pretrained weights from the local Hugging Face cache (fetched only when
    ``download``), through timm's own loading, and what a run records of them."""
    repo, filename, path = timm_backend.locate_timm_weights(name, download=download)
    state = timm_backend.timm_pretrained_state(name, path, image_size=image_size)
    # The snapshot path names the repo and file (…/models--timm--NAME/snapshots/<commit>/model.safetensors);
    # resolving its symlink would record only a content-addressed blob.
    record = pretrained.PretrainedFile(name=name, file=str(path.absolute()), sha256=pretrained.file_sha256(path),
                                       url=timm_backend.hf_url(repo, filename))
    return state, record


def _read_timm_file(model: nn.Module, name: str, path: Path, *, image_size: int | None
                    ) -> tuple[dict[str, Any], pretrained.PretrainedFile]:
    """``--weights FILE`` for ``timm:NAME``: the file's state dict, in the model's key layout, and its record.

    A file whose tensor names are exactly the model's (a run of ours on this timm model, or a timm
    state dict saved from the same architecture) is used as it is: timm's conversions would leave
    it unchanged, and timm's loader, which builds NAME with its pretrained 1000 classes and RGB,
    would refuse a run's head of other classes or 1-channel stem. Any other file (an original or
    older checkpoint layout) goes through timm's own loading and key conversions
    (:func:`visionbench.models.timm_backend.timm_pretrained_state`); :func:`adapt.fit_state_dict`
    then fits the head and stem either way.
    """
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist. Give a .safetensors or .pth file; timm's own "
                         f"pretrained weights come with --pretrained and a tag in the name (timm:resnet18.a1_in1k).")
    state = ckpt.read_weights(path)
    if set(state) != set(model.state_dict()):
        try:
            state = timm_backend.timm_pretrained_state(name, path, image_size=image_size)
        except (RuntimeError, KeyError) as error:  # timm's strict load_state_dict: other tensors or shapes
            raise ValueError(f"initial weights {str(path)!r} must be a checkpoint of {name}; timm cannot load them: "
                             f"{str(error).splitlines()[0]}. Use weights saved from the same --model.") from None
    record = pretrained.PretrainedFile(name=str(path), file=str(path.resolve()), sha256=pretrained.file_sha256(path))
    return state, record


def describe(record: pretrained.PretrainedFile, report: adapt.FitReport) -> str:
    """The log line of :func:`load_initial_weights`' result."""
    return f"initial weights {record.name} ({record.file}, sha256 {record.sha256[:16]}…): {report.summary()}"


def write_weights_record(run_dir: Path, record: pretrained.PretrainedFile, report: adapt.FitReport) -> None:
    """Write ``weights.json`` (name, file, SHA-256, URL, and the tensors kept/adapted/re-initialised), atomically."""
    path = run_dir / WEIGHTS_RECORD
    content = {**asdict(record), "kept": len(report.kept), "adapted": report.adapted,
               "reinitialised": report.reinitialised, "dropped": report.dropped}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def small_dataset_hint(config: Any, train_samples: int) -> str | None:
    """A log line when a small training set (< ``SMALL_DATASET`` images) trains from scratch while
    the model's default pretrained weights are in the local cache; else ``None``."""
    if train_samples >= SMALL_DATASET or config.weights or getattr(config, "pretrained", False):
        return None
    if timm_backend.is_timm_name(config.model):
        path = timm_backend.cached_timm_weights(config.model)
    else:
        path = pretrained.local_default_weights(config.model)
    if path is None:
        return None
    return (f"only {train_samples} training images and pretrained weights for {config.model} are in the local cache "
            f"({path}): --pretrained usually trains a much better model on so few images")


__all__ = ["SMALL_DATASET", "WEIGHTS_RECORD", "check_available", "describe", "load_initial_weights", "pretrained_input", "small_dataset_hint",
           "timm_pretrained", "weights_enum", "weights_preprocessing", "write_weights_record"]
