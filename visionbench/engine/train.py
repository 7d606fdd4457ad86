"""The training loop, as small functions: build, step, epoch, validate, checkpoint, test.

:func:`fit` reads top to bottom as the whole recipe. All state needed to continue a run lives in
``checkpoints/last.state.pt`` (model, optimizer, scheduler, scaler, EMA, every RNG, position), so a
run killed at any point and resumed ends with the same weights as one never interrupted.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from visionbench.config import ClassifyConfig
from visionbench.data import ClassificationData, load_dataset, parse_data_spec
from visionbench.data.transforms import (
    TransformedDataset,
    build_preset,
    identity_collate,
    normalization_stats,
    resolve_augment,
)
from visionbench.engine import NonFiniteLossError, rundir
from visionbench.engine import checkpoint as ckpt
from visionbench.engine.determinism import capture_rng_state, restore_rng_state, seed_everything
from visionbench.engine.distributed import DistInfo, barrier, broadcast_object
from visionbench.engine.evaluation import Predictions, classification_report, predict_split
from visionbench.engine.optim import ModelEMA, build_optimizer, lr_factor_fn
from visionbench.engine.sampling import EpochBatchSampler, ShardBatchSampler
from visionbench.losses import create_loss
from visionbench.models import create_model, model_input_size


@dataclass(frozen=True)
class Runtime:
    """How to run (not what to compute): device, loader workers, verbosity, process group."""

    device: torch.device
    workers: int | None = None
    quiet: bool = False
    dist: DistInfo = field(default_factory=DistInfo)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available (this process's local rank under torchrun), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu or auto.")
        if name == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {name!r}.")
    return torch.device(name)


# ----------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataBundle:
    """The dataset with its train and eval views, and the model input size."""

    data: ClassificationData
    train: TransformedDataset
    val: TransformedDataset
    test: TransformedDataset
    image_size: tuple[int, int]
    augment: str


def build_data(config: ClassifyConfig, data: ClassificationData | None = None) -> DataBundle:
    """Load the dataset (unless given) and wrap each split with its transform preset."""
    data = data or load_dataset(
        config.data, seed=config.split_seed, val_fraction=config.val_fraction, test_fraction=config.test_fraction
    )
    kind, _ = parse_data_spec(config.data)
    fixed_size = data.image_size if isinstance(getattr(data.train, "images", None), torch.Tensor) else None
    image_size = model_input_size(config.model, fixed_size, config.image_size)
    mean, std = normalization_stats(kind, data.train, data.in_channels)
    augment = resolve_augment(config.augment, kind)
    common = {"image_size": image_size, "native_size": fixed_size, "mean": mean, "std": std}
    train_preset = build_preset(augment, train=True, **common)
    eval_preset = build_preset(augment, train=False, **common)
    return DataBundle(
        data=data,
        train=TransformedDataset(data.train, train_preset, seed=config.seed),
        val=TransformedDataset(data.val, eval_preset, seed=config.seed),
        test=TransformedDataset(data.test, eval_preset, seed=config.seed),
        image_size=image_size, augment=augment,
    )


def _workers(runtime: Runtime, dataset: TransformedDataset) -> int:
    """Loader workers: as asked, else 0 for in-memory data (workers cost more than they save),
    else up to 4 for files."""
    if runtime.workers is not None:
        return runtime.workers
    if isinstance(getattr(dataset.base, "images", None), torch.Tensor):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _loader(dataset: TransformedDataset, sampler: Any, runtime: Runtime) -> DataLoader:
    workers = _workers(runtime, dataset)
    return DataLoader(
        dataset, sampler=sampler, batch_size=None, collate_fn=identity_collate, num_workers=workers,
        pin_memory=runtime.device.type == "cuda",
        # A private generator: creating the loader must not consume the global RNG, which the
        # checkpoint captures for dropout.
        generator=torch.Generator().manual_seed(0),
    )


def train_loader(bundle: DataBundle, config: ClassifyConfig, runtime: Runtime, *, epoch: int, start_batch: int) -> DataLoader:
    """Loader over this epoch's shuffled (or class-balanced) batches, skipping ``start_batch``."""
    weights = balanced_sample_weights(bundle.data.train.targets(), bundle.data.num_classes) if config.balance else None
    sampler = EpochBatchSampler(
        len(bundle.train), config.batch_size, seed=config.seed, epoch=epoch, start_batch=start_batch,
        rank=runtime.dist.rank, world_size=runtime.dist.world_size, sample_weights=weights,
    )
    return _loader(bundle.train, sampler, runtime)


def eval_loader(dataset: TransformedDataset, config: ClassifyConfig, runtime: Runtime) -> DataLoader:
    """Loader over this rank's shard of ``dataset``, in order, each sample once."""
    sampler = ShardBatchSampler(len(dataset), config.eval_batch_size, rank=runtime.dist.rank, world_size=runtime.dist.world_size)
    return _loader(dataset, sampler, runtime)


def balanced_sample_weights(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-sample weights ``1 / count(class)``: every class is drawn equally often."""
    counts = torch.bincount(targets, minlength=num_classes).double()
    return (1.0 / counts.clamp_min(1))[targets]


def balanced_class_weights(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """scikit-learn's ``class_weight="balanced"``: ``n_samples / (n_classes * count)``."""
    counts = torch.bincount(targets, minlength=num_classes).double()
    return (len(targets) / (num_classes * counts.clamp_min(1))).float()


# ----------------------------------------------------------------------------------- model


def build_model(config: ClassifyConfig, data: ClassificationData, image_size: tuple[int, int]) -> nn.Module:
    """The registered model for this data, with ``--weights`` loaded when given."""
    model = create_model(config.model, num_classes=data.num_classes, in_channels=data.in_channels, image_size=image_size[0])
    if config.weights:
        ckpt.load_weights_into(model, ckpt.read_weights(config.weights), config.weights)
    return model


def _autocast_dtype(config: ClassifyConfig, device: torch.device) -> torch.dtype | None:
    """bfloat16 where the GPU has it, else float16 (with a GradScaler); ``None`` (off) on CPU."""
    if not (config.amp and device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# ----------------------------------------------------------------------------------- loop state


@dataclass
class Progress:
    """Where the loop is, and what it has seen: saved in the state file."""

    epoch: int = 0  # epochs fully done
    step_in_epoch: int = 0  # batches of the current epoch done
    global_step: int = 0
    loss_sum: float = 0.0  # current epoch's train loss sum over its samples so far
    loss_count: int = 0
    best_value: float | None = None  # of config.monitor
    best_loss: float | None = None  # val_loss of the best epoch (breaks accuracy ties)
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    finished: bool = False


@dataclass
class Trainer:
    """The objects one training step touches (a plain record, no behaviour of its own)."""

    model: nn.Module  # possibly DDP-wrapped
    core: nn.Module  # the underlying model
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    autocast_dtype: torch.dtype | None


def state_dict(trainer: Trainer, progress: Progress, config: ClassifyConfig) -> dict[str, Any]:
    """Everything needed to continue exactly: see the module docstring."""
    return {
        "format": 1, "model_name": config.model,
        "model": {k: v.detach().cpu() for k, v in trainer.core.state_dict().items()},
        "optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(), "ema": trainer.ema.state_dict() if trainer.ema else None,
        "rng": capture_rng_state(), "progress": dataclasses.asdict(progress),
    }


def restore(trainer: Trainer, state: dict[str, Any], source: str) -> Progress:
    """Load a state written by :func:`state_dict` into ``trainer``; returns the progress."""
    ckpt.load_weights_into(trainer.core, state["model"], source)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.scaler.load_state_dict(state["scaler"])
    if trainer.ema is not None and state["ema"] is not None:
        trainer.ema.load_state_dict(state["ema"])
    restore_rng_state(state["rng"])
    return Progress(**state["progress"])


def save_checkpoint(run_dir: Path, trainer: Trainer, progress: Progress, config: ClassifyConfig, dist: DistInfo) -> None:
    """Write ``last.safetensors`` and ``last.state.pt`` (rank 0 only), each atomically."""
    if not dist.is_main:
        return
    ckpt.save_weights(evaluated_weights(trainer), run_dir / rundir.LAST_WEIGHTS)
    ckpt.save_state(state_dict(trainer, progress, config), run_dir / rundir.LAST_STATE)


def evaluated_weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The weights that are evaluated and exported: the EMA when enabled, else the model's."""
    return trainer.ema.shadow if trainer.ema is not None else trainer.core.state_dict()


# ----------------------------------------------------------------------------------- steps


def train_step(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor, config: ClassifyConfig) -> torch.Tensor:
    """One optimizer step on a batch; returns the detached loss. Raises on a non-finite loss
    *before* the weights change, so the last checkpoint stays good."""
    with torch.autocast(images.device.type, dtype=trainer.autocast_dtype, enabled=trainer.autocast_dtype is not None):
        logits = trainer.model(images)
    loss = trainer.loss_fn(logits.float(), labels)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"loss is {float(loss.detach())}")
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.scaler.scale(loss).backward()
    if config.clip_grad_norm or config.clip_grad_value:
        trainer.scaler.unscale_(trainer.optimizer)
        if config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainer.core.parameters(), config.clip_grad_norm)
        if config.clip_grad_value:
            torch.nn.utils.clip_grad_value_(trainer.core.parameters(), config.clip_grad_value)
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    trainer.scheduler.step()
    if trainer.ema is not None:
        trainer.ema.update(trainer.core)
    return loss.detach()


def train_epoch(
    trainer: Trainer, bundle: DataBundle, config: ClassifyConfig, runtime: Runtime, progress: Progress,
    run_dir: Path, bar: tqdm,
) -> None:
    """The rest of epoch ``progress.epoch``, checkpointing every ``config.checkpoint_every`` steps."""
    loader = train_loader(bundle, config, runtime, epoch=progress.epoch, start_batch=progress.step_in_epoch)
    trainer.model.train()
    device = runtime.device
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        try:
            loss = train_step(trainer, images, labels, config)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(
                f"{error} at epoch {progress.epoch + 1}, step {progress.step_in_epoch + 1}; training stopped. "
                f"The last good checkpoint is kept in {run_dir / rundir.CHECKPOINTS}. Lower --lr, set "
                "--clip-grad-norm, or check the data for NaN/inf values."
            ) from None
        progress.loss_sum += float(loss) * len(labels)
        progress.loss_count += len(labels)
        progress.step_in_epoch += 1
        progress.global_step += 1
        bar.update(1)
        if progress.global_step % 10 == 0:
            bar.set_postfix(loss=f"{progress.loss_sum / progress.loss_count:.4f}", refresh=False)
        if config.checkpoint_every and progress.global_step % config.checkpoint_every == 0:
            save_checkpoint(run_dir, trainer, progress, config, runtime.dist)


def _eval_model(trainer: Trainer, config: ClassifyConfig, data: ClassificationData, image_size: tuple[int, int]) -> nn.Module:
    """The module that validation runs: the EMA weights in a copy, else the model itself."""
    if trainer.ema is None:
        return trainer.core
    model = create_model(config.model, num_classes=data.num_classes, in_channels=data.in_channels, image_size=image_size[0])
    model.load_state_dict(trainer.ema.shadow)
    return model.to(next(trainer.core.parameters()).device)


def improved(config: ClassifyConfig, record: dict[str, Any], progress: Progress) -> bool:
    """Whether this epoch's ``record`` beats the best so far on ``config.monitor``.

    Accuracy on a small validation split ties often (e.g. 1.0 for several epochs); a tie is
    broken by the lower validation loss, so the better-converged weights are kept rather than
    the first to reach the tie.
    """
    if progress.best_value is None:
        return True
    value = record[config.monitor]
    if config.monitor == "val_loss":
        return value < progress.best_value
    if value != progress.best_value:
        return value > progress.best_value
    return progress.best_loss is not None and record["val_loss"] < progress.best_loss


# ----------------------------------------------------------------------------------- fit


def fit(config: ClassifyConfig, run_dir: Path, runtime: Runtime, *, resume: bool) -> dict[str, Any]:
    """Train ``config`` into ``run_dir``, evaluate the best checkpoint on test, write the results.

    Returns:
        The ``metrics.json`` content.
    """
    dist, device = runtime.dist, runtime.device
    log = rundir.RunLog(run_dir / rundir.LOG if dist.is_main else None, quiet=runtime.quiet or not dist.is_main)
    seed_everything(config.seed, deterministic=config.deterministic)
    bundle = build_data(config)
    data = bundle.data
    log(f"data {data.name}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test, "
        f"{data.num_classes} classes, input {data.in_channels}x{bundle.image_size[0]}x{bundle.image_size[1]}, "
        f"augment={bundle.augment}")
    trainer = build_trainer(config, bundle, device, dist.world_size)
    progress = Progress()
    state_path = run_dir / rundir.LAST_STATE
    if resume and state_path.exists():
        progress = restore(trainer, ckpt.load_state(state_path), str(state_path))
        log(f"resumed at epoch {progress.epoch + 1}, step {progress.step_in_epoch}")
    elif resume:
        log("no checkpoint yet in this run; starting from the beginning")
    if dist.is_main:
        rundir.truncate_history(run_dir, progress.epoch)
    if dist.enabled:
        trainer.model = nn.parallel.DistributedDataParallel(
            trainer.core, device_ids=[device.index] if device.type == "cuda" else None
        )
    if not progress.finished:
        run_epochs(trainer, bundle, config, runtime, progress, run_dir, log)
    return test_best(config, bundle, run_dir, runtime, log)


def build_trainer(config: ClassifyConfig, bundle: DataBundle, device: torch.device, world_size: int = 1) -> Trainer:
    """Model, loss, optimizer, schedule, scaler and EMA, ready on ``device``."""
    data = bundle.data
    model = build_model(config, data, bundle.image_size).to(device)
    weights = balanced_class_weights(data.train.targets(), data.num_classes) if config.class_weights == "balanced" else None
    loss_fn = create_loss(config.loss, num_classes=data.num_classes, label_smoothing=config.label_smoothing, class_weights=weights).to(device)
    optimizer = build_optimizer(
        config.optimizer, model.parameters(), lr=config.lr, momentum=config.momentum,
        nesterov=config.nesterov, weight_decay=config.weight_decay,
    )
    steps_per_epoch = EpochBatchSampler.batches_per_epoch(len(bundle.train), config.batch_size, world_size)
    factor = lr_factor_fn(
        config.schedule, total_steps=config.epochs * steps_per_epoch,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
        step_every=config.lr_step_epochs * steps_per_epoch, gamma=config.lr_gamma,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    autocast_dtype = _autocast_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    ema = ModelEMA(model, config.ema_decay) if config.ema else None
    return Trainer(model, model, loss_fn, optimizer, scheduler, scaler, ema, autocast_dtype)


def run_epochs(
    trainer: Trainer, bundle: DataBundle, config: ClassifyConfig, runtime: Runtime, progress: Progress,
    run_dir: Path, log: rundir.RunLog,
) -> None:
    """Epoch after epoch: train, validate, record, keep the best, checkpoint, maybe stop early."""
    dist = runtime.dist
    writer = _tensorboard(run_dir, progress.global_step) if dist.is_main else None
    val_loader = eval_loader(bundle.val, config, runtime)
    steps = EpochBatchSampler.batches_per_epoch(len(bundle.train), config.batch_size, dist.world_size)
    show_bar = dist.is_main and not runtime.quiet and sys.stderr.isatty()
    try:
        while progress.epoch < config.epochs:
            started = time.perf_counter()
            with tqdm(total=steps, initial=progress.step_in_epoch, desc=f"epoch {progress.epoch + 1}/{config.epochs}",
                      disable=not show_bar, leave=False, file=sys.stderr, dynamic_ncols=True) as bar:
                train_epoch(trainer, bundle, config, runtime, progress, run_dir, bar)
            val = predict_split(_eval_model(trainer, config, bundle.data, bundle.image_size), val_loader,
                                trainer.loss_fn, device=runtime.device, dist=dist, autocast_dtype=trainer.autocast_dtype)
            record = epoch_record(progress, trainer, val, time.perf_counter() - started)
            stop = finish_epoch(record, trainer, progress, config, run_dir, dist, writer)
            log(format_record(record, config.epochs))
            if stop:
                log(f"early stopping: {config.monitor} did not improve for {config.early_stopping} epochs")
                break
        progress.finished = True
        save_checkpoint(run_dir, trainer, progress, config, dist)
    finally:
        if writer is not None:
            writer.close()


def epoch_record(progress: Progress, trainer: Trainer, val: Predictions, seconds: float) -> dict[str, Any]:
    """The ``history.jsonl`` line of the epoch just trained."""
    val_accuracy = float((val.preds == val.labels).double().mean()) if val.labels.numel() else float("nan")
    return {
        "epoch": progress.epoch, "step": progress.global_step,
        "train_loss": progress.loss_sum / max(progress.loss_count, 1),
        "val_loss": val.loss if val.labels.numel() else float("nan"), "val_accuracy": val_accuracy,
        "lr": trainer.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3),
    }


def finish_epoch(
    record: dict[str, Any], trainer: Trainer, progress: Progress, config: ClassifyConfig, run_dir: Path,
    dist: DistInfo, writer: Any,
) -> bool:
    """Record the epoch, keep the best weights, checkpoint; return whether to stop early."""
    value = record[config.monitor]
    has_val = value == value  # NaN without a validation split: every epoch counts as the best
    better = (not has_val) or improved(config, record, progress)
    if better:
        progress.best_epoch, progress.epochs_without_improvement = progress.epoch, 0
        progress.best_value, progress.best_loss = (value, record["val_loss"]) if has_val else (None, None)
    else:
        progress.epochs_without_improvement += 1
    if dist.is_main:
        rundir.append_history(run_dir, record)
        if writer is not None:
            for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
                writer.add_scalar(key.replace("_", "/", 1), record[key], record["epoch"] + 1)
            writer.flush()
        if better:
            ckpt.save_weights(evaluated_weights(trainer), run_dir / rundir.BEST_WEIGHTS, {"epoch": str(progress.epoch)})
    progress.epoch += 1
    progress.step_in_epoch, progress.loss_sum, progress.loss_count = 0, 0.0, 0
    stop = bool(config.early_stopping) and progress.epochs_without_improvement >= config.early_stopping
    progress.finished = stop or progress.epoch >= config.epochs
    save_checkpoint(run_dir, trainer, progress, config, dist)
    return stop


def format_record(record: dict[str, Any], epochs: int) -> str:
    """One human line per epoch."""
    return (f"epoch {record['epoch'] + 1}/{epochs}  train_loss {record['train_loss']:.4f}  "
            f"val_loss {record['val_loss']:.4f}  val_accuracy {record['val_accuracy']:.4f}  ({record['seconds']:.1f}s)")


def _tensorboard(run_dir: Path, purge_step: int) -> Any:
    """A TensorBoard writer in ``run_dir/tensorboard`` (imported lazily: it is slow to import)."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step or None)


def test_best(config: ClassifyConfig, bundle: DataBundle, run_dir: Path, runtime: Runtime, log: rundir.RunLog) -> dict[str, Any]:
    """Evaluate ``best.safetensors`` on the test split; rank 0 writes metrics and predictions."""
    barrier(runtime.dist)
    best = run_dir / rundir.BEST_WEIGHTS
    model = build_model(dataclasses.replace(config, weights=None), bundle.data, bundle.image_size)
    ckpt.load_weights_into(model, ckpt.read_weights(best), str(best))
    return evaluate_and_write(model.to(runtime.device), config, bundle, run_dir, runtime, log)


def evaluate_and_write(
    model: nn.Module, config: ClassifyConfig, bundle: DataBundle, run_dir: Path, runtime: Runtime, log: rundir.RunLog
) -> dict[str, Any]:
    """Test-split predictions and metrics of ``model``, written to ``run_dir`` by rank 0."""
    loss_fn = create_loss(config.loss, num_classes=bundle.data.num_classes, label_smoothing=config.label_smoothing).to(runtime.device)
    predictions = predict_split(model, eval_loader(bundle.test, config, runtime), loss_fn,
                                device=runtime.device, dist=runtime.dist, autocast_dtype=_autocast_dtype(config, runtime.device))
    report = classification_report(predictions.labels, predictions.preds, predictions.probs, bundle.data.classes,
                                   seed=config.seed)
    report["split"] = "test"
    if runtime.dist.is_main:
        ids = [bundle.data.test.ids[i] for i in predictions.indices.tolist()]
        rundir.write_predictions(run_dir / rundir.PREDICTIONS, ids, predictions.labels, predictions.preds, predictions.probs)
        rundir.write_metrics(run_dir, report)
        write_worst_examples(run_dir / rundir.EXAMPLES, bundle.data.test, predictions)
        log.file(format_metrics(report))
        write_report(run_dir, log)
    barrier(runtime.dist)
    return broadcast_object(report, runtime.dist)


# Images kept for the report's worst-errors grid; larger images are resized to this side so the
# file stays small (the report reads only run-directory files, so the images must be saved).
WORST_EXAMPLES, EXAMPLE_SIDE = 32, 96


def write_worst_examples(path: Path, test_set: Any, predictions: Predictions, *, count: int = WORST_EXAMPLES) -> None:
    """Save the most confident mistakes (raw test images, before normalisation) to ``examples.npz``:
    ``images`` uint8 ``[M, C, H, W]``, ``ids``, ``labels``, ``preds``, ``confidence``."""
    import numpy as np
    from torchvision.transforms.v2 import functional as tvf

    confidence = predictions.probs.max(dim=1).values
    wrong = torch.nonzero(predictions.preds != predictions.labels).flatten()
    worst = wrong[torch.argsort(confidence[wrong], descending=True, stable=True)][:count]
    images = [test_set[int(predictions.indices[p])][0] for p in worst.tolist()]
    if len({tuple(image.shape) for image in images}) > 1 or any(max(i.shape[-2:]) > EXAMPLE_SIDE for i in images):
        images = [tvf.resize(image, [EXAMPLE_SIDE, EXAMPLE_SIDE], antialias=True) for image in images]
    channels = images[0].shape[0] if images else 1
    np.savez(
        path,
        images=torch.stack(images).numpy() if images else np.zeros((0, channels, 1, 1), dtype=np.uint8),
        ids=np.array([test_set.ids[int(predictions.indices[p])] for p in worst.tolist()], dtype=str),
        labels=predictions.labels[worst].numpy(), preds=predictions.preds[worst].numpy(),
        confidence=confidence[worst].double().numpy(),
    )


def write_report(run_dir: Path, log: rundir.RunLog) -> None:
    """Build ``report.html``; a failure here is logged, never allowed to lose the run's results."""
    from visionbench.report import build_run_report

    try:
        build_run_report(run_dir)
    except Exception as error:  # noqa: BLE001 - the metrics are already written; say why the page is missing
        log(f"report.html could not be built: {error}")


def format_metrics(report: dict[str, Any]) -> str:
    """The test metrics as a short human table."""
    lines = [f"test metrics ({report['num_samples']} samples, 95% bootstrap intervals):"]
    headline = HEADLINE_METRICS.get(report.get("task", "classify"))
    names = headline or [k for k, v in report.items() if isinstance(v, dict) and "value" in v and "ci95" in v]
    for name in names:
        if name not in report:
            continue
        entry = report[name]
        low, high = entry["ci95"] if entry.get("ci95") else (float("nan"), float("nan"))
        lines.append(f"  {name:<18} {entry['value']:.4f}  [{low:.4f}, {high:.4f}]")
    return "\n".join(lines)


# The metrics printed after a run, per task; other tasks print every scalar of metrics.json.
HEADLINE_METRICS = {"classify": ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro")}
