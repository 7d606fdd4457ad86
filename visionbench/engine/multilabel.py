"""Multi-label classification in the training loop (``--multilabel``): several labels per image.

The model is the classifier of single-label runs with one output per label; each output is its own
yes/no decision (sigmoid), trained with binary cross entropy on multi-hot targets ``[N, L]``, and
a label is predicted when its probability is ``>= THRESHOLD``. :func:`with_multilabel` wraps the
classification hooks so that ``ClassifyConfig.multilabel`` picks these steps; the single-label
code is untouched. Validation reports ``val_loss``, ``val_accuracy`` (exact-match ratio) and
``val_mAP``; the test split writes ``metrics.json`` (:func:`~visionbench.metrics.multilabel.multilabel_report`)
and ``predictions.csv`` with the true labels and every label's probability.
"""

from __future__ import annotations

import csv
import dataclasses
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionbench.config import ClassifyConfig
from visionbench.data.multilabel import is_multilabel
from visionbench.engine import rundir
from visionbench.engine.batches import loader_batches
from visionbench.engine.distributed import DistInfo, gather_objects
from visionbench.engine.loaders import DataBundle, eval_loader
from visionbench.engine.results import finish_test
from visionbench.engine.runtime import Runtime, autocast_dtype
from visionbench.engine.task import TaskHooks
from visionbench.losses import create_loss
from visionbench.metrics import UndefinedMetricWarning, scores
from visionbench.metrics.multilabel import multilabel_metric_tensors, multilabel_report

THRESHOLD = 0.5  # decision threshold of every label
LOSS = "bce"  # the one loss of multi-hot targets; the single-label default cross_entropy stands for it


def check_config(config: ClassifyConfig, data: Any) -> None:
    """Refuse options that do not apply to multi-label data (or multi-label options without it)."""
    if not config.multilabel:
        if is_multilabel(data):
            raise ValueError(f"--data {config.data} has several labels per image; got a single-label run. "
                             "Add --multilabel.")
        if config.monitor == "val_mAP":
            raise ValueError("--monitor val_mAP needs --multilabel; got a single-label run. Use val_accuracy or val_loss.")
        return
    if not is_multilabel(data):
        raise ValueError(f"--multilabel needs multi-label data (csv:LABELS.csv[:IMAGES], or folder:ROOT with each image "
                         f"in every one of its label folders); got --data {config.data}. Use a label CSV or a label "
                         "folder tree, or drop --multilabel.")
    if config.loss not in ("cross_entropy", LOSS):
        raise ValueError(f"--loss must be {LOSS} with --multilabel (one sigmoid per label); got {config.loss!r}. "
                         f"Use --loss {LOSS}.")
    unusable = [name for name, on in (("--balance", config.balance), ("--class-weights balanced", config.class_weights
                != "none"), ("--mixup", config.mixup > 0), ("--cutmix", config.cutmix > 0)) if on]
    if unusable:
        raise ValueError(f"{', '.join(unusable)} must be off with --multilabel (they assume one class per image); got "
                         "them on. Remove them.")


def build_data(single: Any) -> Any:
    """The classification ``build_data`` with the multi-label checks first."""

    def build(config: ClassifyConfig, data: Any = None) -> DataBundle:
        from visionbench.data import load_dataset

        # config.multilabel decides how a folder: tree is read (label folders, not class folders).
        data = data or load_dataset(config.data, seed=config.split_seed, val_fraction=config.val_fraction,
                                    test_fraction=config.test_fraction, multilabel=config.multilabel)
        check_config(config, data)
        return single(config, data)

    return build


def build_loss(config: ClassifyConfig, bundle: DataBundle) -> nn.Module:
    """Binary cross entropy on logits over the L labels (label smoothing does not apply)."""
    return create_loss(LOSS, num_classes=bundle.data.num_classes)


@torch.no_grad()
def predict_probs(model: nn.Module, loader: Any, loss_fn: nn.Module, *, device: torch.device, dist: DistInfo,
                  amp: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``(indices [N], targets float [N, L], sigmoid probabilities float32 [N, L], mean loss)`` over
    ``loader`` (this rank's contiguous shard), gathered from every rank in dataset order."""
    was_training = model.training
    model.eval()
    chunks, loss_sum, seen = [], 0.0, 0
    start = loader.sampler.start
    with loader_batches(loader) as batches:
        for images, targets in batches:
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits = model(images.to(device, non_blocking=True))
            logits = logits.float()
            loss_sum += float(loss_fn(logits, targets.to(device).float())) * len(targets)
            chunks.append((torch.arange(start + seen, start + seen + len(targets)), targets.float().cpu(),
                           torch.sigmoid(logits).cpu()))
            seen += len(targets)
    model.train(was_training)
    gathered = gather_objects((chunks, loss_sum), dist)
    parts, total_loss = [c for part in gathered for c in part[0]], sum(part[1] for part in gathered)
    if not parts:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, 0), torch.zeros(0, 0), float("nan")
    index, targets, probs = (torch.cat([c[i] for c in parts]) for i in range(3))
    return index, targets, probs, total_loss / len(index)


def validate(model: nn.Module, loader: Any, trainer: Any, runtime: Runtime, bundle: DataBundle) -> dict[str, float]:
    """``val_loss``, ``val_accuracy`` (exact match of the whole label set) and ``val_mAP``."""
    _, targets, probs, loss = predict_probs(model, loader, trainer.loss_fn, device=runtime.device, dist=runtime.dist,
                                            amp=trainer.autocast_dtype)
    if not len(targets):
        return {"val_loss": float("nan"), "val_accuracy": float("nan"), "val_mAP": float("nan")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # labels absent from a small val split
        values = multilabel_metric_tensors(probs, targets.long(), threshold=THRESHOLD, zero_division=0)
    return {"val_loss": loss, "val_accuracy": float(values["subset_accuracy"]), "val_mAP": float(values["mAP"])}


def pr_curves(probs: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Per-label precision-recall curves for the report (labels with a positive and a negative)."""
    from visionbench.engine.evaluation import _thin

    curves = {}
    for label, name in enumerate(classes):
        positive = targets[:, label].bool()
        if positive.all() or not positive.any():
            continue
        precision, recall, _ = scores.precision_recall_curve(probs[:, label], positive)
        recall_l, precision_l = _thin([recall, precision])
        curves[name] = {"recall": recall_l, "precision": precision_l,
                        "ap": float(scores.average_precision(probs[:, label], positive.long()))}
    return curves


def write_predictions(path: Path, ids: list[str], targets: torch.Tensor, probs: torch.Tensor, classes: list[str]) -> None:
    """``predictions.csv``: ``id``, ``labels`` and ``predicted`` (names joined by ``;``), then ``true_k``
    (0/1) and ``prob_k`` for each label k, probabilities with 9 significant digits (exact float32)."""
    count = len(classes)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "labels", "predicted", *(f"true_{k}" for k in range(count)),
                         *(f"prob_{k}" for k in range(count))])
        for sample_id, truth, row in zip(ids, targets.long().tolist(), probs.tolist(), strict=True):
            true_names = ";".join(c for c, t in zip(classes, truth, strict=True) if t)
            predicted = ";".join(c for c, p in zip(classes, row, strict=True) if p >= THRESHOLD)
            writer.writerow([sample_id, true_names, predicted, *truth, *(f"{p:.9g}" for p in row)])


def evaluate_and_write(model: nn.Module, config: ClassifyConfig, bundle: DataBundle, run_dir: Path, runtime: Runtime,
                       log: rundir.RunLog) -> dict[str, Any]:
    """Test-split metrics with bootstrap intervals, ``predictions.csv``, written by rank 0."""
    loss_fn = build_loss(config, bundle).to(runtime.device)
    index, targets, probs, _ = predict_probs(model, eval_loader(bundle.test, config, runtime), loss_fn,
                                             device=runtime.device, dist=runtime.dist,
                                             amp=autocast_dtype(config.amp, runtime.device))
    classes = bundle.data.classes
    if not len(index):
        raise ValueError(f"the test split of {config.data} must hold at least one image; got 0. Raise --test-fraction.")
    report = multilabel_report(probs, targets.long(), classes, threshold=THRESHOLD, resamples=config.resamples,
                               seed=config.seed)
    report["split"] = runtime.eval_split
    report["pr_curve"] = pr_curves(probs, targets, classes)

    def write(run_dir: Path) -> None:
        ids = [bundle.data.test.ids[i] for i in index.tolist()]
        write_predictions(run_dir / rundir.PREDICTIONS, ids, targets, probs, classes)

    return finish_test(report, write, run_dir, runtime, log)


def predicted_row(path: Path, probs: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """``visionbench predict``'s result for one image: ``labels`` (``[name, probability]`` of the labels
    at or above :data:`THRESHOLD`, most probable first) and every label's ``probabilities``."""
    pairs = [[name, float(p)] for name, p in zip(classes, probs.tolist(), strict=True)]
    chosen = sorted((pair for pair in pairs if pair[1] >= THRESHOLD), key=lambda pair: -pair[1])
    return {"file": str(path), "labels": chosen, "probabilities": pairs}


def write_predicted_csv(path: Path, rows: list[dict[str, Any]], classes: list[str]) -> None:
    """``predict``'s ``predictions.csv``: ``file``, ``labels`` (the predicted names joined by ``;``) and
    one ``prob_<label>`` column per label."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "labels", *(f"prob_{name}" for name in classes)])
        for row in rows:
            writer.writerow([row["file"], ";".join(name for name, _ in row["labels"]),
                             *(f"{p:.6f}" for _, p in row["probabilities"])])


def _pick(single: Any, multi: Any, *, config_at: int | None) -> Any:
    """A hook that calls ``multi`` on multi-label runs and ``single`` otherwise, told by the config
    (positional argument ``config_at``) or, for ``validate`` (no config), by its bundle's data."""

    def hook(*args: Any, **kwargs: Any) -> Any:
        on = args[config_at].multilabel if config_at is not None else is_multilabel(args[-1].data)
        return (multi if on else single)(*args, **kwargs)

    return hook


def with_multilabel(single: TaskHooks) -> TaskHooks:
    """The classification hooks, with the multi-label steps taken when ``config.multilabel`` is on."""
    return dataclasses.replace(
        single,
        build_data=build_data(single.build_data),
        build_loss=_pick(single.build_loss, build_loss, config_at=0),
        sample_weights=_pick(single.sample_weights, lambda config, bundle: None, config_at=0),
        validate=_pick(single.validate, validate, config_at=None),
        evaluate_and_write=_pick(single.evaluate_and_write, evaluate_and_write, config_at=1),
    )


__all__ = ["THRESHOLD", "check_config", "evaluate_and_write", "predict_probs", "predicted_row", "validate",
           "with_multilabel", "write_predicted_csv", "write_predictions"]
