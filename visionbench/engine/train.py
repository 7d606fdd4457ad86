"""The training loop of every task, as small functions: build, step, epoch, validate, checkpoint, test.

:func:`fit` reads top to bottom as the whole recipe; what differs between classification,
detection and segmentation comes from the task's :class:`~visionbench.engine.task.TaskHooks`. All
state needed to continue a run lives in ``checkpoints/last.state.pt`` (model, optimizer,
scheduler, scaler, EMA, every RNG, position), so a run killed at any point and resumed ends with
the same weights as one never interrupted.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from visionbench.config import MIN_STEPS_PER_EPOCH, AnyConfig, save_yaml, settle_batch_size, usual_batch_size
from visionbench.engine import NonFiniteLossError, classify, detect, finetune, initial_weights, rundir, segment
from visionbench.engine import checkpoint as ckpt
from visionbench.engine.batches import loader_batches
from visionbench.engine.determinism import capture_rng_state, restore_rng_state, seed_everything
from visionbench.engine.device_habits import compiled, configure_backends, prepare_model
from visionbench.engine.distributed import DistInfo, barrier, main_then_broadcast
from visionbench.engine.inference_spec import inference_spec, write_inference_spec
from visionbench.engine.interrupt import StopRequest, TrainingInterrupted
from visionbench.engine.loaders import DataBundle, close_train_loader, eval_loader, train_loader
from visionbench.engine.loss_tally import CHECK_EVERY, LossTally
from visionbench.engine.multilabel import with_multilabel
from visionbench.engine.optim import ModelEMA, build_optimizer, lr_factor_fn, scale_backbone_lr
from visionbench.engine.run_model import build_model, build_model_and_weights, load_run_model
from visionbench.engine.runtime import Runtime, autocast_dtype, resolve_device
from visionbench.engine.sampling import EpochBatchSampler
from visionbench.engine.sync_bn import count_batchnorms, use_sync_batchnorm
from visionbench.engine.task import TaskHooks
from visionbench.engine.threads import describe_threads
from visionbench.losses.device_checks import device_asserts
from visionbench.models.classifiers import model_for_weights

__all__ = ["DataBundle", "Runtime", "build_data", "build_model", "build_trainer", "fit", "resolve_device"]


# Multi-label classification (--multilabel) is classification with its own steps where labels differ.
_TASK_HOOKS: dict[str, TaskHooks] = {"classify": with_multilabel(classify.HOOKS), "detect": detect.HOOKS, "segment": segment.HOOKS}


def task_hooks(task: str) -> TaskHooks:
    """The :class:`~visionbench.engine.task.TaskHooks` of ``task`` (``"classify"``, ``"detect"`` or ``"segment"``)."""
    if task not in _TASK_HOOKS:
        raise ValueError(f"task must be one of {list(_TASK_HOOKS)}; got {task!r}.")
    return _TASK_HOOKS[task]


def build_data(config: AnyConfig) -> DataBundle:
    """The task's dataset, its splits wrapped as batch datasets (see :mod:`visionbench.engine.loaders`)."""
    return task_hooks(config.task).build_data(config)


# ----------------------------------------------------------------------------------- loop state


STATE_FORMAT = 2  # of last.state.pt; 2: Progress.best_epoch counted from 1 (format 1: from 0)


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
    best_epoch: int = 0  # number of the best epoch, counted from 1 as everywhere a user reads it; 0: none yet
    epochs_without_improvement: int = 0
    dropped_boxes: int = 0  # detection: boxes augmentation removed in the current epoch
    finished: bool = False


@dataclass
class Trainer:
    """The objects one training step touches (a plain record, no behaviour of its own)."""

    model: nn.Module  # possibly DDP-wrapped
    core: nn.Module  # the underlying model
    loss_fn: nn.Module | None  # None: the model returns its own losses (detectors)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    autocast_dtype: torch.dtype | None
    batch_loss: Callable[..., tuple[torch.Tensor, int]]  # the task's: (trainer, batch, device) -> (loss, samples)
    sample_weights: torch.Tensor | None  # training sampling weights (fixed for the run), None: uniform
    initial_weights: Any = None  # (record, report) of the --pretrained / --weights loaded, None: random init


def state_dict(trainer: Trainer, progress: Progress, config: AnyConfig) -> dict[str, Any]:
    """Everything needed to continue exactly: see the module docstring."""
    return {
        "format": STATE_FORMAT, "model_name": config.model,
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
    progress = dict(state["progress"])
    if state.get("format", 1) < 2:  # format 1 counted best_epoch from 0 (-1: none yet)
        progress["best_epoch"] += 1
    return Progress(**progress)


def save_checkpoint(run_dir: Path, trainer: Trainer, progress: Progress, config: AnyConfig, dist: DistInfo) -> None:
    """Write ``last.safetensors`` and ``last.state.pt`` (rank 0 only), each atomically."""
    if not dist.is_main:
        return
    weights = evaluated_weights(trainer)
    check_trained_weights(trainer, progress, run_dir)  # a checkpoint is written only if every tensor is finite
    ckpt.save_weights(weights, run_dir / rundir.LAST_WEIGHTS)
    ckpt.save_state(state_dict(trainer, progress, config), run_dir / rundir.LAST_STATE)


def check_trained_weights(trainer: Trainer, progress: Progress, run_dir: Path) -> None:
    """Refuse to checkpoint weights that became NaN or inf (a finite loss can still take a step too
    large, e.g. with a huge --lr): training stops and the last good checkpoint stays in place."""
    where = f"the model at epoch {progress.epoch + (0 if progress.step_in_epoch == 0 else 1)}, step {progress.global_step}"
    fix = (f"Training stopped without writing it; the last good checkpoint is kept in {run_dir / rundir.CHECKPOINTS}. "
           "Lower --lr, set --clip-grad-norm, or check the data for NaN/inf values.")
    ckpt.check_finite_weights(trainer.core.state_dict(), where, fix)
    if trainer.ema is not None:
        ckpt.check_finite_weights(trainer.ema.shadow, f"the EMA of {where}", fix)


def evaluated_weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The weights that are evaluated and exported: the EMA when enabled, else the model's."""
    return trainer.ema.shadow if trainer.ema is not None else trainer.core.state_dict()


# ----------------------------------------------------------------------------------- steps


def train_step(trainer: Trainer, batch: Any, config: AnyConfig, device: torch.device) -> tuple[torch.Tensor, int]:
    """One optimizer step on a batch; returns the detached loss and the batch's sample count.
    On the CPU, raises on a non-finite loss *before* the weights change; on a GPU that check would
    wait for every step, so :class:`~visionbench.engine.loss_tally.LossTally` makes it every few
    steps and before each checkpoint, which therefore stays good too."""
    with device_asserts():  # the loss checks its labels on the GPU without waiting for it
        loss, count = trainer.batch_loss(trainer, batch, device)
    if device.type == "cpu" and not torch.isfinite(loss):
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
    return loss.detach(), count


def train_epoch(
    trainer: Trainer, bundle: DataBundle, config: AnyConfig, runtime: Runtime, progress: Progress,
    run_dir: Path, bar: tqdm, stop: StopRequest | None = None,
) -> None:
    """The rest of epoch ``progress.epoch``, checkpointing every ``config.checkpoint_every`` steps,
    and after the current step when ``stop`` has a signal (then raises :class:`TrainingInterrupted`)."""
    loader = train_loader(bundle, config, runtime, epoch=progress.epoch, start_batch=progress.step_in_epoch,
                          sample_weights=trainer.sample_weights)
    trainer.model = compiled(trainer.model, config)  # --compile: once, at the run's first epoch
    trainer.model.train()
    finetune.apply_epoch(trainer, config, progress.epoch, runtime.device)  # after train(): frozen norms stay in eval
    tally = LossTally(progress, runtime.device)  # the loss stays on the device: no wait for the GPU per step
    with loader_batches(loader) as batches:
        for batch in batches:
            try:
                loss, count = train_step(trainer, batch, config, runtime.device)
            except NonFiniteLossError as error:
                raise _stopped(f"{error} at epoch {progress.epoch + 1}, step {progress.step_in_epoch + 1}", run_dir
                               ) from None
            tally.add(loss, count)
            progress.loss_count += count
            progress.dropped_boxes += getattr(batch, "dropped_boxes", 0)
            progress.step_in_epoch += 1
            progress.global_step += 1
            bar.update(1)
            checkpoint = bool(config.checkpoint_every) and progress.global_step % config.checkpoint_every == 0
            stopping = stop is not None and stop.signal is not None
            if progress.global_step % CHECK_EVERY == 0 or checkpoint or stopping:  # checkpoints follow a check
                _flush(tally, progress, run_dir)
            if progress.global_step % CHECK_EVERY == 0:
                bar.set_postfix(loss=f"{progress.loss_sum / progress.loss_count:.4f}", refresh=False)
            if checkpoint:
                save_checkpoint(run_dir, trainer, progress, config, runtime.dist)
            if stopping:
                save_checkpoint(run_dir, trainer, progress, config, runtime.dist)
                raise TrainingInterrupted(f"{stop.name}: stopped after epoch {progress.epoch + 1}, step "
                                          f"{progress.step_in_epoch}; a checkpoint of that step is in "
                                          f"{run_dir / rundir.CHECKPOINTS}")
    _flush(tally, progress, run_dir)
    if progress.epoch + 1 >= config.epochs:  # the last epoch: its loader's persistent workers end now
        close_train_loader(bundle)


def _flush(tally: LossTally, progress: Progress, run_dir: Path) -> None:
    """``tally`` into ``progress``, or the run stopped on the non-finite loss it found."""
    try:
        tally.flush(progress)
    except NonFiniteLossError as error:
        raise _stopped(str(error), run_dir) from None


def _stopped(what: str, run_dir: Path) -> NonFiniteLossError:
    """The error that stops a run on a non-finite loss: ``what`` happened, and what to do."""
    return NonFiniteLossError(f"{what}; training stopped. The last good checkpoint is kept in "
                              f"{run_dir / rundir.CHECKPOINTS}. Lower --lr, set --clip-grad-norm, or check the data "
                              "for NaN/inf values.")


def _eval_model(trainer: Trainer, config: AnyConfig, bundle: DataBundle) -> nn.Module:
    """The module that validation runs: the EMA weights in a copy, else the model itself."""
    if trainer.ema is None:
        return trainer.core
    model = copy.deepcopy(trainer.core)  # the trained network itself, whichever its model name built
    model.load_state_dict(trainer.ema.shadow)
    return model


def improved(config: AnyConfig, record: dict[str, Any], progress: Progress) -> bool:
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
    loss = record.get("val_loss", math.nan)
    return progress.best_loss is not None and loss < progress.best_loss


# ----------------------------------------------------------------------------------- fit


def fit(config: AnyConfig, run_dir: Path, runtime: Runtime, *, resume: bool, extend: bool = False
        ) -> tuple[dict[str, Any], AnyConfig]:
    """Train ``config`` into ``run_dir``, evaluate the best checkpoint on test, write the results.

    Args:
        resume: continue from the run's last checkpoint (from the beginning when it has none).
        extend: with ``resume``, ``config.epochs`` was given to train longer (see :func:`resume_progress`).

    Returns:
        The ``metrics.json`` content, and the config as run (batch size settled), also saved as
        ``config.yaml``.
    """
    dist, device = runtime.dist, runtime.device
    log = rundir.RunLog(run_dir / rundir.LOG if dist.is_main else None, quiet=runtime.quiet or not dist.is_main)
    # First, so a slow run shows at once where it runs and how many threads it uses (issue 11).
    processes = f", {dist.world_size} processes" if dist.enabled else ""
    log(f"device {device}{processes}, {describe_threads(config.threads, torch.get_num_threads())}")
    seed_everything(config.seed, deterministic=config.deterministic)
    if dist.is_main:  # a process killed inside a checkpoint write left its temporary file (the run is locked now)
        for path in ckpt.remove_stale_temporaries(run_dir / rundir.CHECKPOINTS):
            log(f"removed {path.name}, left by a process stopped while writing a checkpoint")
    initial_weights.check_available(config)  # a missing weights file fails before the data loads
    bundle = build_data(config)
    if dist.is_main:  # what `visionbench predict` needs, so the run predicts without its training data
        write_inference_spec(run_dir, inference_spec(config.task, bundle))
    data = bundle.data
    size = f"{bundle.image_size[0]}x{bundle.image_size[1]}" if bundle.image_size else "HxW as stored"
    log(f"data {data.name}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test, "
        f"{data.num_classes} classes, input {data.in_channels}x{size}, augment={bundle.augment}")
    check_splits(data, config, runtime.eval_split)  # before the first step, not after the whole run
    if len(data.val) == 0:  # allowed (every epoch then counts as the best), but never silent
        log.warn(f"the val split of --data {config.data} is empty ({len(data.train)} train / 0 val / {len(data.test)} "
                 f"test at --val-fraction {config.val_fraction}): nothing is validated and the last epoch's weights are "
                 "kept as the best; raise --val-fraction (or add a val/ folder) to select on validation.")
    config = with_batch_size(config, len(bundle.train), dist.world_size, log)
    hint = initial_weights.small_dataset_hint(config, len(data.train))
    if hint:
        log(hint)
    # Rank 0 alone reads the run directory and broadcasts what it read (no shared filesystem).
    resumed = main_then_broadcast(lambda: _read_last_state(run_dir), dist) if resume else None
    trainer = build_trainer(config, bundle, device, dist.world_size,
                            resumed_weights=resumed["model"] if resumed else None)
    if trainer.initial_weights is not None:
        log(initial_weights.describe(*trainer.initial_weights))
        if dist.is_main:  # which weights the run started from: name, file, SHA-256
            initial_weights.write_weights_record(run_dir, *trainer.initial_weights)
    progress = resume_progress(trainer, config, run_dir, log, resumed, extend=extend) if resume else Progress()
    if dist.is_main:
        save_yaml(config, run_dir / rundir.CONFIG)  # as run: the batch size chosen, the epochs extended
        rundir.truncate_history(run_dir, progress.epoch)
    if dist.enabled and config.sync_bn:  # before DDP wraps it: the parameters stay the optimizer's
        trainer.core = use_sync_batchnorm(trainer.core, device)
        log(f"--sync-bn: {count_batchnorms(trainer.core)} batch norms use the statistics of all "
            f"{dist.world_size} processes' batches")
    elif config.sync_bn:
        log("--sync-bn has no effect on one process")
    if dist.enabled:
        trainer.model = nn.parallel.DistributedDataParallel(
            trainer.core, device_ids=[device.index] if device.type == "cuda" else None
        )
    if not progress.finished:
        run_epochs(trainer, bundle, config, runtime, progress, run_dir, log)
    return test_best(config, bundle, run_dir, runtime, log), config


def _read_last_state(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``last.state.pt``, or ``None`` when it has none yet."""
    path = run_dir / rundir.LAST_STATE
    return ckpt.load_state(path) if path.exists() else None


def check_splits(data: Any, config: AnyConfig, eval_split: str) -> None:
    """Refuse data the run cannot use to the end: an empty train or evaluated split
    (found today only after training, as an error with nothing written), or a classification
    training split of a single class.

    Raises:
        ValueError: naming the dataset, the split sizes and what to change.
    """
    sizes = {name: len(getattr(data, name)) for name in ("train", "val", "test")}
    counts = f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test"
    for name in dict.fromkeys(("train", eval_split)):  # an empty val split: validate_epoch reports it
        if sizes[name] == 0:
            raise ValueError(f"the {name} split of --data {config.data} must hold at least one sample; got none "
                             f"({counts}). Add data, or change --val-fraction / --test-fraction (a class with a single "
                             "image cannot reach every split).")
    if config.task == "classify" and not getattr(config, "multilabel", False) and hasattr(data.train, "targets"):
        present = sorted({int(t) for t in data.train.targets().tolist()})
        if len(present) < 2:
            names = [data.classes[i] for i in present]
            raise ValueError(f"the training split of --data {config.data} must hold at least 2 classes to train a "
                             f"classifier; got only {names} ({counts}). Add images of the other classes.")


def with_batch_size(config: AnyConfig, train_samples: int, world_size: int, log: rundir.RunLog) -> AnyConfig:
    """``config`` with its batch size settled (:func:`~visionbench.config.settle_batch_size`), the
    choice logged when the default was lowered, and a warning when an epoch has too few steps."""
    batch = settle_batch_size(config, train_samples, world_size)
    steps = EpochBatchSampler.batches_per_epoch(train_samples, batch, world_size)
    if config.batch_size is None and batch < usual_batch_size(config):
        log(f"batch size {batch}, lowered from the default {usual_batch_size(config)} so that {train_samples} training "
            f"samples make {steps} steps per epoch (--batch-size N sets it)")
    if steps < MIN_STEPS_PER_EPOCH:
        fit_batch = train_samples // (MIN_STEPS_PER_EPOCH * world_size)
        change = (f"use --batch-size {fit_batch} (for about {MIN_STEPS_PER_EPOCH} steps), more --epochs, or more data"
                  if 0 < fit_batch < batch else "use more training data or more --epochs")
        processes = f" x {world_size} processes" if world_size > 1 else ""
        log.warn(f"only {steps} optimizer steps per epoch ({train_samples} training samples at batch size "
                 f"{batch}{processes}): a model trained this little may predict one class for everything; {change}.")
    return dataclasses.replace(config, batch_size=batch)


def resume_progress(trainer: Trainer, config: AnyConfig, run_dir: Path, log: rundir.RunLog,
                    state: dict[str, Any] | None, *, extend: bool) -> Progress:
    """The progress of the run in ``run_dir``, its last checkpoint ``state`` (``None``: it has none
    yet) loaded into ``trainer``.

    Args:
        extend: ``config.epochs`` was given with ``--resume``: train to that many epochs, a finished
            run included (it must be more than the epochs done). The LR schedule is the one of a run
            of ``config.epochs`` epochs at the current step (see ``README.md``).
    """
    if state is None:
        log("no checkpoint yet in this run; starting from the beginning")
        return Progress()
    progress = restore(trainer, state, str(run_dir / rundir.LAST_STATE))
    if extend and config.epochs <= progress.epoch:
        raise ValueError(f"--epochs must be more than the {progress.epoch} epochs {str(run_dir)!r} has done to train it "
                         f"longer; got {config.epochs}. Give e.g. --epochs {progress.epoch + 5}.")
    if extend:
        log(f"training to {config.epochs} epochs ({progress.epoch} done); the LR schedule is now that of a "
            f"{config.epochs}-epoch run")
    if extend and progress.finished:
        progress.finished, progress.epochs_without_improvement = False, 0  # early stopping counts afresh
    elif progress.finished:
        log(f"the run is finished ({progress.epoch} epochs, best epoch {progress.best_epoch}); evaluating its best "
            f"checkpoint again. To train it longer: visionbench train --resume {run_dir} --epochs N "
            f"(N > {progress.epoch})")
    elif progress.step_in_epoch:
        log(f"resuming epoch {progress.epoch + 1}/{config.epochs} at step {progress.step_in_epoch + 1}")
    else:
        log(f"resuming at epoch {progress.epoch + 1}/{config.epochs}")
    return progress


def build_trainer(config: AnyConfig, bundle: DataBundle, device: torch.device, world_size: int = 1, *,
                  resumed_weights: dict[str, torch.Tensor] | None = None) -> Trainer:
    """Model, loss, optimizer, schedule, scaler and EMA, ready on ``device``.

    ``resumed_weights`` (the model state of the checkpoint a resumed run continues from) picks the
    network when a model name has had more than one (:func:`model_for_weights`); they are loaded later.
    """
    hooks = task_hooks(config.task)
    model, loaded = build_model_and_weights(config, bundle.data, bundle.image_size)
    if resumed_weights is not None:
        model = model_for_weights(config.model, model, resumed_weights, num_classes=bundle.data.num_classes,
                                  in_channels=bundle.data.in_channels)
    model = prepare_model(model.to(device), config)  # --channels-last: before the optimizer sees the weights
    configure_backends(config, device)
    loss_fn = hooks.build_loss(config, bundle)
    loss_fn = loss_fn.to(device) if loss_fn is not None else None
    groups = hooks.parameter_groups(config, model)
    if config.backbone_lr_scale != 1.0:  # split only when asked: the groups of earlier runs' optimizer states stay
        groups = scale_backbone_lr(groups, model, config.backbone_lr_scale, config.lr)
    optimizer = build_optimizer(
        config.optimizer, groups, lr=config.lr, momentum=config.momentum,
        nesterov=config.nesterov, weight_decay=config.weight_decay, device=device,
    )
    steps_per_epoch = EpochBatchSampler.batches_per_epoch(len(bundle.train), config.batch_size, world_size)
    factor = lr_factor_fn(
        config.schedule, total_steps=config.epochs * steps_per_epoch,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
        step_every=config.lr_step_epochs * steps_per_epoch, gamma=config.lr_gamma,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    amp_dtype = autocast_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = ModelEMA(model, config.ema_decay) if config.ema else None
    return Trainer(model, model, loss_fn, optimizer, scheduler, scaler, ema, amp_dtype, hooks.batch_loss,
                   hooks.sample_weights(config, bundle), initial_weights=loaded)


def run_epochs(
    trainer: Trainer, bundle: DataBundle, config: AnyConfig, runtime: Runtime, progress: Progress,
    run_dir: Path, log: rundir.RunLog,
) -> None:
    """Epoch after epoch: train, validate, record, keep the best, checkpoint, maybe stop early."""
    dist = runtime.dist
    # Scalars are logged at the epoch number: a resumed run drops those of epochs it redoes.
    writer = _tensorboard(run_dir, progress.epoch + 1 if progress.epoch else 0, log) if dist.is_main else None
    val_loader = eval_loader(bundle.val, config, runtime)
    steps = EpochBatchSampler.batches_per_epoch(len(bundle.train), config.batch_size, dist.world_size)
    show_bar = dist.is_main and not runtime.quiet and sys.stderr.isatty()
    try:
        with StopRequest() as stop:  # Ctrl-C / SIGTERM: checkpoint after the current step, then stop
            while progress.epoch < config.epochs:
                started = time.perf_counter()
                with tqdm(total=steps, initial=progress.step_in_epoch, desc=f"epoch {progress.epoch + 1}/{config.epochs}",
                          disable=not show_bar, leave=False, file=sys.stderr, dynamic_ncols=True) as bar:
                    train_epoch(trainer, bundle, config, runtime, progress, run_dir, bar, stop)
                val = validate_epoch(trainer, config, bundle, val_loader, runtime, progress)
                record = epoch_record(progress, trainer, val, time.perf_counter() - started)
                early_stop = finish_epoch(record, trainer, progress, config, run_dir, dist, writer)
                log(format_record(record, config.epochs))
                if stop.signal is not None:  # it came during validation: the epoch's checkpoint is written
                    raise TrainingInterrupted(f"{stop.name}: stopped after epoch {progress.epoch}; its checkpoint is "
                                              f"in {run_dir / rundir.CHECKPOINTS}")
                if runtime.on_epoch is not None:  # after the checkpoint: a run it stops can be resumed
                    runtime.on_epoch(record)
                if early_stop:
                    log(f"early stopping: {config.monitor} did not improve for {config.early_stopping} epochs")
                    break
            progress.finished = True
            save_checkpoint(run_dir, trainer, progress, config, dist)
    finally:
        if writer is not None:
            writer.close()


def validate_epoch(trainer: Trainer, config: AnyConfig, bundle: DataBundle, loader: Any, runtime: Runtime,
                   progress: Progress) -> dict[str, float]:
    """The task's ``val_*`` numbers, or ``{"validated": False}`` on epochs ``--val-every`` skips
    (the last epoch is always validated)."""
    if (progress.epoch + 1) % config.val_every and progress.epoch + 1 < config.epochs:
        return {"validated": False}
    return task_hooks(config.task).validate(_eval_model(trainer, config, bundle), loader, trainer, runtime, bundle)


def epoch_record(progress: Progress, trainer: Trainer, val: dict[str, float], seconds: float) -> dict[str, Any]:
    """The ``history.jsonl`` line of the epoch just trained."""
    record: dict[str, Any] = {"epoch": progress.epoch + 1, "step": progress.global_step,
                              "train_loss": progress.loss_sum / max(progress.loss_count, 1)}
    record.update(val)
    if progress.dropped_boxes:
        record["dropped_boxes"] = progress.dropped_boxes
    record.update({"lr": trainer.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3)})
    return record


def finish_epoch(
    record: dict[str, Any], trainer: Trainer, progress: Progress, config: AnyConfig, run_dir: Path,
    dist: DistInfo, writer: Any,
) -> bool:
    """Record the epoch, keep the best weights, checkpoint; return whether to stop early."""
    check_trained_weights(trainer, progress, run_dir)  # before anything of this epoch is written
    validated = record.get("validated", True)  # False on epochs --val-every skips: they neither win nor lose
    value = record.get(config.monitor, math.nan)
    has_val = value == value  # NaN without a validation split: every epoch counts as the best
    better = validated and ((not has_val) or improved(config, record, progress))
    if better:
        progress.best_epoch, progress.epochs_without_improvement = record["epoch"], 0
        progress.best_value, progress.best_loss = (value, record.get("val_loss", math.nan)) if has_val else (None, None)
    elif validated:
        progress.epochs_without_improvement += 1
    if dist.is_main:
        rundir.append_history(run_dir, record)
        if writer is not None:
            for key, value in record.items():
                if key not in ("epoch", "step", "seconds", "validated") and isinstance(value, int | float):
                    writer.add_scalar(key.replace("_", "/", 1), value, record["epoch"])
            writer.flush()
        if better:
            ckpt.save_weights(evaluated_weights(trainer), run_dir / rundir.BEST_WEIGHTS, {"epoch": str(record["epoch"])})
    progress.epoch += 1
    progress.step_in_epoch, progress.loss_sum, progress.loss_count, progress.dropped_boxes = 0, 0.0, 0, 0
    stop = bool(config.early_stopping) and progress.epochs_without_improvement >= config.early_stopping
    progress.finished = stop or progress.epoch >= config.epochs
    save_checkpoint(run_dir, trainer, progress, config, dist)
    return stop


def format_record(record: dict[str, Any], epochs: int) -> str:
    """One human line per epoch: the train loss and whatever the task validated."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"train_loss {record['train_loss']:.4f}"]
    parts += [f"{key} {value:.4f}" for key, value in record.items() if key.startswith("val_")]
    if record.get("dropped_boxes"):
        parts.append(f"dropped_boxes {record['dropped_boxes']}")
    return "  ".join(parts) + f"  ({record['seconds']:.1f}s)"


def _tensorboard(run_dir: Path, purge_step: int, log: rundir.RunLog) -> Any:
    """A TensorBoard writer in ``run_dir/tensorboard`` (imported lazily: it is slow to import), or
    ``None`` without the optional ``visionbench[tensorboard]`` extra: event files are a convenience
    (``history.jsonl`` and ``report.html`` hold the same curves), so the run goes on and says once
    how to get them."""
    from visionbench._extras import MissingExtraError, import_optional, install_hint

    try:
        import_optional("tensorboard", extra="tensorboard", purpose="writing TensorBoard event files")
    except MissingExtraError:
        log(f"TensorBoard is not installed: no event files in {str(run_dir / 'tensorboard')!r} (history.jsonl and "
            f"report.html have the curves). To write them, run `{install_hint('tensorboard')}`.")
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step or None)


def test_best(config: AnyConfig, bundle: DataBundle, run_dir: Path, runtime: Runtime, log: rundir.RunLog) -> dict[str, Any]:
    """Evaluate ``best.safetensors`` on the test split (``runtime.eval_split``: the validation
    split for a search's trials); rank 0 writes metrics and predictions."""
    barrier(runtime.dist)
    best = run_dir / rundir.BEST_WEIGHTS
    weights = main_then_broadcast(lambda: ckpt.read_weights(best), runtime.dist)  # rank 0 reads, all load
    model = load_run_model(best, config, bundle.data, bundle.image_size, state=weights)
    evaluated = bundle if runtime.eval_split == "test" else validation_as_test(bundle)
    return evaluate_and_write(model.to(runtime.device), config, evaluated, run_dir, runtime, log)


def validation_as_test(bundle: DataBundle) -> DataBundle:
    """``bundle`` whose test split is its validation split, for an evaluation that must not read
    the test split (the tasks' evaluation code reads ``bundle.test`` and ``bundle.data.test``)."""
    return dataclasses.replace(bundle, test=bundle.val, data=dataclasses.replace(bundle.data, test=bundle.data.val))


def evaluate_and_write(
    model: nn.Module, config: AnyConfig, bundle: DataBundle, run_dir: Path, runtime: Runtime, log: rundir.RunLog
) -> dict[str, Any]:
    """Test-split metrics of ``model`` and the task's per-sample outputs, written to ``run_dir``."""
    return task_hooks(config.task).evaluate_and_write(model, config, bundle, run_dir, runtime, log)
