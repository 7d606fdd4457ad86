"""The Python API: one function per job, the same shape as the command line.

Example:
    >>> import visionbench
    >>> result = visionbench.train(data="digits", epochs=3, quiet=True)  # doctest: +SKIP
    >>> result.metrics["accuracy"]["value"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionbench import config as cfg
from visionbench.engine import rundir


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns: the run directory and its ``metrics.json`` content."""

    run_dir: Path
    metrics: dict[str, Any]
    config: cfg.AnyConfig


EvaluateResult = TrainResult


def _runtime(device: str, workers: int | None, quiet: bool, **extra: Any) -> Any:
    from visionbench.engine.distributed import init_distributed
    from visionbench.engine.train import Runtime, resolve_device

    torch_device = resolve_device(device)
    return Runtime(device=torch_device, workers=workers, quiet=quiet, dist=init_distributed(torch_device), **extra)


def make_output_dir(path: Path) -> None:
    """Create the output folder ``path`` (and its parents), or fail with what is in the way.

    Raises:
        ValueError: ``path`` is an existing file, or cannot be created or written (permissions,
            a read-only or full disk, a missing mount); the message names the path and the cause.
    """
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out must be a folder; got {str(path)!r}, an existing file. Give a new or existing folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"--out must be a folder visionbench can create and write; got {str(path)!r}: "
                         f"{error.strerror or error}. Choose another folder or fix its permissions.") from None


def _make_run_dir(out: str | Path | None, stem: str, dist: Any) -> Path:
    """``out`` (created), or a fresh ``runs/<stem>-NNN`` chosen by rank 0 and shared with all."""
    from visionbench.engine.distributed import broadcast_object

    if dist.is_main:
        if out is not None:
            path = Path(out)
            make_output_dir(path)
        else:
            path = rundir.new_run_dir(Path("runs"), stem)
    else:
        path = None
    return Path(broadcast_object(str(path) if path else None, dist))


def _train_run_dir(out: str | Path | None, config: cfg.AnyConfig, dist: Any, quiet: bool
                   ) -> tuple[Path, cfg.AnyConfig | None]:
    """The run directory of ``train`` and, when ``out`` holds this command's unfinished run, its
    saved configuration (to continue it: the same command run again, e.g. by ``torchrun
    --max-restarts``, continues; see :mod:`visionbench.engine.restart`). Rank 0 decides.

    An ``out`` holding a run that failed before its first checkpoint is cleared and started over,
    saying so in its log (quietly: not on stderr); one holding a run of other options is refused.
    """
    from visionbench.engine.distributed import main_then_broadcast
    from visionbench.engine.restart import continue_or_refuse

    def decide() -> tuple[str, cfg.AnyConfig | None]:
        if out is None:
            kind = config.data.partition(":")[0]
            return str(rundir.new_run_dir(Path("runs"), f"{kind}-{config.model}")), None
        path = Path(out)
        make_output_dir(path)
        if rundir.never_checkpointed(path):
            # Nothing to resume: the retry of a run that failed early (say, on a bad image) starts over.
            rundir.clear_for_restart(path)
            rundir.RunLog(path / rundir.LOG, quiet=quiet)(
                f"{path} held a run that stopped before its first checkpoint; starting it over")
            return str(path), None
        if not (path / rundir.CONFIG).exists():
            return str(path), None
        saved = continue_or_refuse(path, config)
        rundir.RunLog(path / rundir.LOG, quiet=quiet)(
            f"{path} holds this command's run: continuing it (as `visionbench train --resume {path}` would)")
        return str(path), saved

    path, saved = main_then_broadcast(decide, dist)
    return Path(path), saved


def train(
    config: cfg.AnyConfig | None = None, *, config_file: str | Path | None = None, out: str | Path | None = None,
    resume: str | Path | None = None, device: str = "auto", workers: int | None = None, quiet: bool = False,
    eval_split: str = "test", on_epoch: Callable[[dict[str, Any]], None] | None = None, **overrides: Any,
) -> TrainResult:
    """Train a model, evaluate its best checkpoint on the test split, and write a run directory.

    Args:
        config: a resolved config; or build one from ``config_file`` and ``overrides``: any field
            of the task's config (``task="classify"`` by default, ``"detect"`` or ``"segment"``;
            :class:`~visionbench.config.ClassifyConfig`, ``DetectConfig``, ``SegmentConfig``),
            e.g. ``task="detect", epochs=5``.
        out: the run directory (default: a fresh ``runs/<data>-<model>-NNN``). One holding a run
            that stopped before its first checkpoint is started over; one holding a run of the same
            options is continued (as ``resume``: the same command run again continues, so ``torchrun
            --max-restarts`` works); one holding a run of other options is refused, naming them.
        resume: an existing run directory to continue from its last checkpoint (its saved
            config is used; of ``overrides`` only ``epochs``, to train to that many epochs, a
            finished run included, with the LR schedule of a run that long).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        workers: data-loader worker processes (default: 0 for in-memory data, else up to 4).
        quiet: no progress bar or log lines on stderr (``log.txt`` is still written).
        eval_split: ``"test"``; ``"val"`` evaluates the best checkpoint on the validation split
            instead and never reads the test split (the trials of ``visionbench sweep``).
        on_epoch: called with each epoch's ``history.jsonl`` record after its checkpoint is written;
            an exception it raises stops the run (resumable), e.g. a search's pruner.

    Returns:
        :class:`TrainResult` with ``run_dir``, ``metrics`` (the ``metrics.json`` content) and the
        ``config`` as run (``config.yaml``: the batch size chosen when none was given).

    Example:
        >>> result = train(data="digits", model="mlp", epochs=2, quiet=True)  # doctest: +SKIP
        >>> result = train(task="detect", data="shapes", quiet=True)  # doctest: +SKIP
        >>> result.metrics["AP50"]["value"]  # doctest: +SKIP
    """
    from visionbench.engine.distributed import main_then_broadcast, shutdown_distributed
    from visionbench.engine.interrupt import TrainingInterrupted
    from visionbench.engine.restart import RUNTIME_ONLY
    from visionbench.engine.run_lock import run_lock
    from visionbench.engine.threads import apply_threads, restore_threads
    from visionbench.engine.train import fit

    if resume is not None and (config is not None or config_file or set(overrides) - {"epochs"} or out):
        raise ValueError("--resume continues a run with its saved configuration; drop the other training options "
                         "(only --epochs may be given, to train longer).")
    if resume is None:
        config = cfg.validate(config) if config is not None else cfg.resolve(config_file, overrides)
    # The process group first: only rank 0 reads the run directory (no shared filesystem assumed).
    runtime = _runtime(device, workers, quiet, eval_split=eval_split, on_epoch=on_epoch)
    previous_threads = None
    try:
        if resume is not None:
            run_dir = Path(resume)
            config = main_then_broadcast(lambda: cfg.resolve(rundir.check_run_dir(run_dir) / rundir.CONFIG),
                                         runtime.dist)
            if overrides:  # --epochs N: train to N epochs, a finished run included
                config = cfg.validate(cfg.merge(config, overrides, "the command line"), "the command line")
            continuing, extend = True, bool(overrides)
        else:
            run_dir, saved = _train_run_dir(out, config, runtime.dist, quiet)
            continuing, extend = saved is not None, False
            if saved is not None:  # the run's options, with this command's runtime-only ones (threads)
                config = dataclasses.replace(saved, **{name: getattr(config, name) for name in RUNTIME_ONLY})
            if runtime.dist.is_main and not continuing:
                cfg.save_yaml(config, run_dir / rundir.CONFIG)
        previous_threads = apply_threads(config.threads)  # before any parallel work (see engine/threads.py)
        try:
            with run_lock(run_dir, enabled=runtime.dist.is_main):
                metrics, config = fit(config, run_dir, runtime, resume=continuing, extend=extend)
        except KeyboardInterrupt as error:
            if runtime.dist.is_main and eval_split == "test":  # a sweep's trial: the sweep says how to continue
                saved_note = f" ({error})" if isinstance(error, TrainingInterrupted) else ""
                print(f"\ninterrupted{saved_note}; continue with: visionbench train --resume {run_dir}", file=sys.stderr)
            raise
        except Exception as error:
            if runtime.dist.is_main:  # the log says why the run stopped, next to what it did
                rundir.RunLog(run_dir / rundir.LOG, quiet=True).file(f"stopped: {error}")
            raise
    finally:
        shutdown_distributed()
        if previous_threads is not None:
            restore_threads(previous_threads)
    return TrainResult(run_dir=run_dir, metrics=metrics, config=config)


def evaluate(
    run: str | Path | None = None, *, pred: str | Path | list[str | Path] | None = None, task: str = "classify",
    gt: str | Path | None = None, num_classes: int | None = None, protocol: str = "pycocotools",
    ignore_index: int = 255, data: str | None = None, out: str | Path | None = None, device: str = "auto",
    workers: int | None = None, quiet: bool = False, allow_partial: bool = False, resamples: int | None = None,
) -> EvaluateResult:
    """Evaluate a trained run on a test split, or the predictions file of any tool.

    Args:
        run: a run directory made by :func:`train`: its best checkpoint is evaluated.
        pred: instead of ``run``, a predictions file (CSV ``id,label,pred`` or
            ``id,label,prob_0..``, JSON, NPZ or Parquet; see :mod:`visionbench.data.predictions`);
            for ``classify``, a list of files, a folder or a pattern are shards of one set of
            predictions, evaluated as one file holding them in that order.
        task: what ``pred`` holds: ``"classify"`` (a predictions file), ``"detect"`` (a COCO
            results JSON, with ``gt`` a COCO instances JSON) or ``"segment"`` (a folder of PNG
            masks, with ``gt`` the folder of true masks, paired by file name).
        gt: the ground truth of ``detect`` and ``segment`` predictions.
        num_classes: K for ``pred`` files in which some classes appear in no column (classify),
            or the number of mask classes (segment; default: the largest index found + 1).
        protocol: detection protocol: ``pycocotools`` (bit-exact), ``coco-fixed``, ``voc07``, ``voc12``.
        ignore_index: the mask value that is not counted (segment).
        allow_partial: segment: score only the paired masks when some ground-truth masks have no
            prediction (a warning says how many), instead of refusing.
        data: evaluate ``run`` on this dataset's test split instead of its own (same classes).
        out: the new run directory (default: a fresh ``runs/eval-<name>-NNN``).
        resamples: bootstrap resamples of each interval (default: 1000 for files, the run's
            ``resamples`` for a run; 0: no intervals). Their time grows with samples x resamples.

    Returns:
        :class:`EvaluateResult` with the new ``run_dir`` and its ``metrics``.
    """
    if resamples is not None and not 0 <= resamples <= cfg.MAX_RESAMPLES:
        raise ValueError(f"resamples must be in [0, {cfg.MAX_RESAMPLES:,}] (0: no intervals); got {resamples!r}.")
    file_resamples = DEFAULT_RESAMPLES if resamples is None else resamples
    if (run is None) == (pred is None):
        raise ValueError("give either RUN_DIR (a run directory made by `visionbench train`) or --pred FILE, not both.")
    if task in ("detect", "segment") and run is None:
        if pred is None or gt is None:
            raise ValueError(f"--task {task} evaluates files: give --gt (ground truth) and --pred (predictions), or "
                             f"RUN_DIR (a run of `visionbench train --task {task}`).")
        return _evaluate_task_files(task, Path(gt), _one_path(pred, task), num_classes=num_classes, protocol=protocol,
                                    ignore_index=ignore_index, allow_partial=allow_partial, out=out, quiet=quiet,
                                    resamples=file_resamples)
    if pred is not None:
        return _evaluate_predictions_file(pred, task=task, num_classes=num_classes, out=out, quiet=quiet,
                                          resamples=file_resamples)
    from visionbench.engine.distributed import shutdown_distributed
    from visionbench.engine.evaluation import check_evaluation_data
    from visionbench.engine.inference_spec import inference_spec, read_inference_spec
    from visionbench.engine.run_model import load_run_model
    from visionbench.engine.threads import apply_threads, restore_threads
    from visionbench.engine.train import build_data, evaluate_and_write

    source, config, best = _trained_run(Path(run), "re-evaluate; run `visionbench evaluate --pred FILE` again instead")
    trained = read_inference_spec(source) if data is not None else None  # None: a run older than inference.json
    if data is not None:
        config = cfg.validate(dataclasses.replace(config, data=data, **_run_input_size(config, trained)))
    if resamples is not None:  # the run's own --resamples otherwise
        config = dataclasses.replace(config, resamples=resamples)
    runtime = _runtime(device, workers, quiet)
    previous_threads = apply_threads(config.threads)
    try:
        run_dir = _make_run_dir(out, f"eval-{source.name}", runtime.dist)
        bundle = build_data(config)
        mismatches = check_evaluation_data(trained, inference_spec(config.task, bundle), data) if trained else []
        model = load_run_model(best, config, bundle.data, bundle.image_size)
        if runtime.dist.is_main:
            cfg.save_yaml(config, run_dir / rundir.CONFIG)
        log = rundir.RunLog(run_dir / rundir.LOG if runtime.dist.is_main else None, quiet=quiet or not runtime.dist.is_main)
        for message in mismatches:  # printed now, and recorded in metrics.json with the results
            log.warn(message)
        log(f"evaluating {best} on the test split of {config.data}")
        metrics = evaluate_and_write(model.to(runtime.device), config, bundle, run_dir, runtime, log)
    finally:
        shutdown_distributed()
        restore_threads(previous_threads)
    return EvaluateResult(run_dir=run_dir, metrics=metrics, config=config)


def _run_input_size(config: Any, trained: Any) -> dict[str, Any]:
    """``{"image_size": side}`` so that other data reaches a classifier at the run's own square
    input size (what its weights expect; as ``predict`` resizes), else nothing."""
    if trained is None or config.task != "classify" or trained.image_size is None:
        return {}
    height, width = trained.image_size
    return {"image_size": height} if height == width else {}


DEFAULT_RESAMPLES = 1000  # bootstrap resamples of evaluated files, as TrainConfig.resamples


def _one_path(pred: str | Path | list[str | Path], task: str) -> Path:
    """The one ``--pred`` path of a detection or segmentation evaluation."""
    if isinstance(pred, list | tuple):
        if len(pred) != 1:
            raise ValueError(f"--task {task} takes one --pred path; got {len(pred)}. Shards are read for --task "
                             "classify; merge detection results (or mask folders) into one first.")
        pred = pred[0]
    return Path(pred)


def _evaluate_predictions_file(
    pred: str | Path | list[str | Path], *, task: str, num_classes: int | None, out: str | Path | None, quiet: bool,
    resamples: int = DEFAULT_RESAMPLES,
) -> EvaluateResult:
    """Metrics, predictions and report of another tool's predictions (one file, or shards of one set),
    in a new run directory."""
    from visionbench.data.predictions import prediction_paths, read_predictions_files
    from visionbench.engine.evaluation import classification_report

    if task != "classify":
        raise ValueError(f"--pred files are read for task 'classify' only in this version; got {task!r}.")
    paths = prediction_paths(pred)
    table = read_predictions_files(paths, num_classes=num_classes)
    classes = [str(k) for k in range(table.num_classes)]
    metrics = classification_report(table.labels, table.preds, table.probs, classes, resamples=resamples)
    metrics["split"] = "predictions file" if len(paths) == 1 else f"predictions files ({len(paths)} shards)"
    path = paths[0]
    stem, shown = (path.stem, str(path)) if len(paths) == 1 else (f"{path.stem}-{len(paths)}-shards",
                                                                  f"{len(paths)} shards ({path}, …)")
    settings = {"task": task, "pred": str(path) if len(paths) == 1 else [str(p) for p in paths],
                "num_classes": table.num_classes, "resamples": resamples}
    return _write_evaluation(
        out, f"eval-{stem}", settings, metrics,
        f"evaluated {shown}: {len(table.ids)} predictions, {table.num_classes} classes", quiet=quiet,
        write_extra=lambda run_dir: rundir.write_predictions(run_dir / rundir.PREDICTIONS, table.ids, table.labels,
                                                             table.preds, table.probs))


def _write_evaluation(out: str | Path | None, stem: str, config: dict[str, Any], metrics: dict[str, Any], message: str,
                      *, quiet: bool, write_extra: Any = None) -> EvaluateResult:
    """The run directory of an evaluation of files: config, metrics, log, report (and ``write_extra``)."""
    import yaml

    from visionbench.engine.distributed import DistInfo
    from visionbench.engine.results import format_metrics, write_report

    run_dir = _make_run_dir(out, stem, DistInfo())
    (run_dir / rundir.CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    if write_extra is not None:
        write_extra(run_dir)
    rundir.write_metrics(run_dir, metrics)
    log = rundir.RunLog(run_dir / rundir.LOG, quiet=quiet)
    log(message)
    for warning in metrics.get("warnings", []):  # already in metrics.json; said on the console too
        log.warn(warning)
    log.file(format_metrics(metrics))
    write_report(run_dir, log)
    return EvaluateResult(run_dir=run_dir, metrics=metrics, config=None)  # type: ignore[arg-type]


def _evaluate_task_files(task: str, gt: Path, pred: Path, *, num_classes: int | None, protocol: str,
                         ignore_index: int, allow_partial: bool, out: str | Path | None, quiet: bool,
                         resamples: int = DEFAULT_RESAMPLES) -> EvaluateResult:
    """Detection or segmentation metrics of another tool's output files, in a new run directory."""
    from tqdm import tqdm

    from visionbench.engine.file_evaluation import evaluate_detection_files, evaluate_segmentation_files

    def progress(items: list) -> Any:
        return tqdm(items, desc="masks", unit="pair", file=sys.stderr, disable=quiet or not sys.stderr.isatty())

    if task == "detect":
        metrics = evaluate_detection_files(gt, pred, protocol=protocol, resamples=resamples)
        settings: dict[str, Any] = {"protocol": protocol}
    else:
        metrics = evaluate_segmentation_files(gt, pred, num_classes=num_classes, ignore_index=ignore_index,
                                              allow_partial=allow_partial, progress=progress, resamples=resamples)
        settings = {"num_classes": metrics["num_classes"], "ignore_index": ignore_index, "allow_partial": allow_partial}
    scored = f"{metrics['num_samples']} of {metrics.get('num_ground_truth', metrics['num_samples'])} images"
    return _write_evaluation(out, f"eval-{pred.stem}", {"task": task, "gt": str(gt), "pred": str(pred), **settings},
                             metrics, f"evaluated {pred} against {gt}: {scored}", quiet=quiet)


def predict(run: str | Path | None, inputs: list[str | Path], *, out: str | Path | None = None, device: str = "auto",
            score_threshold: float | None = None, model: str | Path | None = None) -> Any:
    """Predict image files with a trained run's best weights and write the results.

    Args:
        run: a run directory made by :func:`train` (``None`` with ``model``).
        inputs: image files, or folders (their images, sorted, recursively).
        out: the folder to write (default: ``RUN/predict``; with ``model``: ``predict/`` beside it).
        score_threshold: detection: the lowest score kept (default: the run's ``score_threshold``).
        model: instead of ``run``, a file written by :func:`export` (``.onnx``, ``.pt``, ``.pt2``), run on
            the CPU with the preprocessing of the ``export.json`` and ``inference.json`` beside it.

    Returns:
        :class:`~visionbench.engine.predict.PredictOutput`: the folder and one row per image
        (classify: class and top-5 probabilities; detect: boxes, classes, scores; segment: the
        mask file and pixels per class), and ``warnings`` about inputs far from the size of the
        run's training images (also printed on stderr).
    """
    from visionbench.engine.inference_spec import inference_spec, read_inference_spec
    from visionbench.engine.predict import predict_files
    from visionbench.engine.run_model import load_run_model
    from visionbench.engine.threads import torch_threads
    from visionbench.engine.train import build_data, resolve_device

    if model is not None:
        return _predict_exported(run, inputs, model, out, score_threshold)
    if run is None:
        raise ValueError("give RUN_DIR (a run directory made by `visionbench train`) or --model FILE (a file made by "
                         "`visionbench export`).")
    source, config, best = _trained_run(Path(run), "predict with")
    paths = _image_paths(inputs)
    torch_device = resolve_device(device)
    # A run's inference.json makes the training data unnecessary; runs made before it rebuild the data.
    spec = read_inference_spec(source) or inference_spec(config.task, build_data(config))
    if spec.task != config.task:
        raise ValueError(f"{str(source / rundir.INFERENCE)!r} is for task {spec.task!r} but the run's {rundir.CONFIG} "
                         f"trains {config.task!r}. Delete {rundir.INFERENCE} to rebuild it from the training data.")
    model = load_run_model(best, config, spec, spec.image_size).to(torch_device)
    with torch_threads(config.threads):
        result = predict_files(config, spec, model, paths, Path(out) if out else source / "predict",
                               device=torch_device, score_threshold=score_threshold)
    for message in result.warnings:  # inputs unlike the training data: said on the console, and in the rows
        print(f"warning: {message}", file=sys.stderr)
    return result


def _predict_exported(run: str | Path | None, inputs: list[str | Path], model: str | Path, out: str | Path | None,
                      score_threshold: float | None) -> Any:
    """:func:`predict` with an exported model file (:func:`visionbench.export.predict_exported`)."""
    from visionbench.export import predict_exported

    if run is not None:
        raise ValueError(f"give either RUN_DIR or --model FILE, not both; got {str(run)!r} and {str(model)!r}. The "
                         "exported file's folder holds what predicting needs.")
    result = predict_exported(model, _image_paths(inputs), Path(out) if out else None, score_threshold)
    for message in result.warnings:
        print(f"warning: {message}", file=sys.stderr)
    return result


def export(run: str | Path, *, format: str = "onnx", out: str | Path | None = None, quantize: str | None = None,
           half: bool = False, prune: float | None = None, evaluate: bool = False, quiet: bool = False) -> Any:
    """Export a trained run's best weights and check the file on its test split (``visionbench export``;
    ONNX needs ``pip install 'visionbench[export]'``).

    Writes into ``out`` (a folder, or a model file name; default ``RUN/export-<format>/``) the model
    file, ``export.json`` (input and outputs, dynamic axes, opset, the run's preprocessing, the
    parity check and CPU latencies at batch 1 and 32) and ``inference.json``, so that
    :func:`predict` with ``model=`` needs nothing else. See :mod:`visionbench.export`.

    Args:
        format: ``"onnx"``, ``"torchscript"`` or ``"pt2"``.
        quantize: ``"int8"``: also an int8 ONNX model (onnxruntime's static quantization, calibrated on
            the train split). half: also a float16 model for CUDA. prune: also a model with this
            fraction of each layer's weights of smallest magnitude zeroed (e.g. ``0.5``).
        evaluate: evaluate and compare on the test split even without compression (the table).
        quiet: no log lines on stderr (``log.txt`` is still written).

    Returns:
        :class:`visionbench.export.ExportResult` (``out_dir``, ``model_file``, ``info``: the
        ``export.json`` content, ``table``: the compression table as text).

    Raises:
        visionbench.export.ParityError: the exported file differs from the run's model on its test split.
    """
    from visionbench.export import export_run

    return export_run(run, format=format, out=out, quantize=quantize, half=half, prune=prune, evaluate=evaluate,
                      quiet=quiet)


def explain(run: str | Path, inputs: list[str | Path], *, method: str | list[str] = "gradcam",
            target: str | int | None = None, layer: str | None = None, out: str | Path | None = None,
            device: str = "auto", baseline: str = "black", steps: int = 32) -> Any:
    """Heatmaps of why a trained run predicts what it does on image files (``visionbench explain``).

    Args:
        run: a classification or segmentation run directory made by :func:`train`.
        inputs: image files, or folders (their images, sorted, recursively).
        method: ``"gradcam"``, ``"gradcam++"``, ``"integrated-gradients"``, or a list of them.
        target: the class to explain (name or index); default: the predicted class (segmentation:
            each class predicted on some pixel).
        layer: the module Grad-CAM reads (default: the model's last convolutional stage).
        out: the folder to write (default: ``RUN/explain``).
        baseline, steps: integrated gradients' baseline (``"black"`` or ``"mean"``) and steps.

    Returns:
        :class:`~visionbench.explain.files.ExplainOutput`: the folder and the ``explain.json``
        records (see :mod:`visionbench.explain.files`).
    """
    from visionbench.engine.train import resolve_device
    from visionbench.explain.files import explain_run

    source, config, best = _trained_run(Path(run), "explain")
    methods = (method,) if isinstance(method, str) else tuple(method)
    return explain_run(source, config, best, _image_paths(inputs), out=out, device=resolve_device(device),
                       methods=methods, target=target, layer=layer, baseline=baseline, steps=steps)


def _trained_run(run: Path, purpose: str) -> tuple[Path, Any, Path]:
    """``(run_dir, config, best weights)`` of a trained run; an error names what is missing.

    Args:
        purpose: what the model is for, ending the message about evaluation runs, which have none.
    """
    source = rundir.check_run_dir(run)
    if "pred" in (cfg.load_yaml(source / rundir.CONFIG) or {}):
        raise ValueError(f"run {str(source)!r} evaluated a predictions file and has no model to {purpose}.")
    best = source / rundir.BEST_WEIGHTS
    if not best.is_file():
        raise ValueError(f"run {str(source)!r} has no {rundir.BEST_WEIGHTS}: it has not finished an epoch. "
                         f"Continue it with `visionbench train --resume {source}`.")
    return source, cfg.resolve(source / rundir.CONFIG), best


def _image_paths(inputs: list[str | Path]) -> list[Path]:
    """The image files named, folders expanded to their images (sorted); an error names what is missing."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    if not inputs:
        raise ValueError("give at least one image file or folder to predict.")
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
            if not found:
                raise ValueError(f"folder {str(item)!r} holds no image ({', '.join(IMG_EXTENSIONS)}).")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise ValueError(f"image {str(item)!r} does not exist. Check the path.")
    return paths


def convert(source: str, to: str, out: str | Path, *, split: str | None = None, images: str = "copy") -> str:
    """Convert a detection dataset between COCO, Pascal VOC and YOLO (one split per call).

    Args:
        source: ``"coco:ANNOTATIONS.json[:IMAGES]"``, ``"voc:ROOT"`` or ``"yolo:DATA.yaml"``.
        to: ``"coco"``, ``"voc"`` or ``"yolo"``.
        out: the output folder.
        split: the split to read and write (see :func:`visionbench.data.detection_formats.convert`).
        images: ``"copy"``, ``"symlink"`` or ``"none"``.

    Returns:
        The spec of the written dataset, usable as ``--data``.
    """
    from visionbench.data.detection_formats import convert as convert_dataset

    if to not in ("coco", "voc", "yolo"):
        raise ValueError(f"--to must be one of coco, voc, yolo; got {to!r}.")
    return convert_dataset(source, to, out, split=split, images=images)  # type: ignore[arg-type]


COMPARE_JSON = "compare.json"


@dataclass(frozen=True)
class CompareResult:
    """What :func:`compare` returns: the run directory it wrote and the comparison (``compare.json``)."""

    run_dir: Path
    result: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        """The same dict, under the name the other results use (``metrics.json``)."""
        return self.result


def compare(
    runs: list[str | Path], *, out: str | Path | None = None, resamples: int = 1000, seed: int = 0,
    quiet: bool = False,
) -> CompareResult:
    """Compare two or more runs on the same test samples and write a run directory.

    Classification: every pair gets the exact McNemar test on per-sample correctness and a paired
    bootstrap of accuracy, balanced accuracy and the macro F1/precision/recall (difference, 95%
    interval, p-value). Detection: a paired bootstrap over test images of the 12 COCO numbers.
    Segmentation: of mIoU, fwIoU, pixel accuracy, mean class accuracy and mean Dice. With three
    runs or more the p-values are also Holm-adjusted across pairs. See
    :func:`visionbench.comparison.compare_runs` for the result's layout.

    Args:
        runs: two or more run directories with ``predictions.csv`` on the same test samples.
        out: the run directory to write (default: a fresh ``runs/compare-NNN``); it gets
            ``compare.json``, ``metrics.json`` (the same dict) and ``log.txt``.
        resamples: paired bootstrap resamples per pair (>= 1). seed: seed of the resamples.
        quiet: no log lines on stderr (``log.txt`` is still written).

    Returns:
        :class:`CompareResult` with ``run_dir`` and ``result``.

    Example:
        >>> result = compare(["runs/a", "runs/b"], quiet=True)  # doctest: +SKIP
        >>> print(result.result["summary"])  # doctest: +SKIP
    """
    from visionbench.comparison import compare_runs, format_comparison

    if resamples < 1:
        raise ValueError(f"resamples must be >= 1; got {resamples!r}. Use e.g. --resamples 1000.")
    if out is not None:
        run_dir = Path(out)
        taken = [name for name in (COMPARE_JSON, rundir.METRICS, rundir.CONFIG) if (run_dir / name).exists()]
        if taken:
            raise ValueError(f"--out must be a new or empty directory; got {str(run_dir)!r}, which holds {taken[0]}. "
                             "Give another --out, or leave it out for a fresh runs/compare-NNN.")
    # Read and test everything before creating the directory, so bad input leaves nothing behind.
    result = compare_runs([Path(r) for r in runs], resamples=resamples, seed=seed)
    if out is not None:
        make_output_dir(run_dir)
    else:
        run_dir = rundir.new_run_dir(Path("runs"), "compare")
    (run_dir / COMPARE_JSON).write_text(rundir.metrics_json_text(result) + "\n")
    rundir.write_metrics(run_dir, result)
    log = rundir.RunLog(run_dir / rundir.LOG, quiet=quiet)
    log(f"compared {len(result['runs'])} runs on {result['num_samples']} samples ({resamples} resamples, seed {seed})")
    log.file(format_comparison(result))
    from visionbench.report import build_compare_report

    build_compare_report(result, run_dir)
    log(f"wrote {run_dir / COMPARE_JSON} and {run_dir / 'compare.html'}")
    return CompareResult(run_dir=run_dir, result=result)


@dataclass(frozen=True)
class QualityRunResult:
    """What :func:`quality` returns: the run directory, its ``metrics.json`` content and the rows."""

    run_dir: Path
    metrics: dict[str, Any]
    rows: list[dict[str, Any]]



def quality(
    ref: str | Path, dist: str | Path, *, metrics: tuple[str, ...] = ("psnr", "ssim"), profile: str = "skimage",
    channel: str | None = None, crop_border: int = 0, data_range: float | None = None, resize: str | None = None,
    psnr_cap: float | str | None = None, out: str | Path | None = None, quiet: bool = False,
    vmaf_model: str = "vmaf_v0.6.1",
    mos: str | Path | None = None, dmos: bool = False, mos_partial: bool = False,
    model_files: dict[str, str | Path] | None = None, device: str = "auto",
) -> QualityRunResult:
    """Full-reference quality of two images, two folders (paired by relative path) or two videos
    (paired frame by frame); see :func:`visionbench.quality.assess` for the conventions.

    ``channel`` is ``rgb``, ``y``, ``y-studio``, ``gray-matlab`` (MATLAB's ``rgb2gray``, rounded
    for 8-bit input) or ``y-matlab`` (MATLAB's ``rgb2ycbcr`` Y, rounded); by default ``rgb`` for
    images, ``gray-matlab`` for images under ``profile="matlab"`` (what MATLAB's scripts are run
    on), ``y`` for videos. No-reference metrics (``niqe``) score ``dist`` alone.

    Writes a run directory with ``metrics.json`` (pooled values with 95% intervals over items,
    ``psnr_pooled_mse``, the settings, unpaired files), ``items.csv`` (one row per image pair or
    frame), ``examples.npz`` (thumbnails of the worst items), ``report.html`` and ``log.txt``.
    ``vmaf_model`` is libvmaf's model when ``metrics`` has ``vmaf`` (:mod:`visionbench.quality.vmaf`).

    ``mos`` (a CSV of human scores for the images of two folders: ``dist``, ``score`` and
    optionally ``ref`` and ``type`` columns; :mod:`visionbench.quality.mos_scores`) adds each
    metric's agreement with the scores to ``metrics.json`` under ``"mos"``: SROCC, KROCC, and PLCC
    and RMSE after the VQEG logistic fit, with bootstrap intervals, and per distortion type
    (:mod:`visionbench.quality.mos`). ``dmos``: lower scores mean better quality. ``mos_partial``:
    pairs without a score and scores without a pair are left out (listed) instead of an error.
    ``model_files`` (metric name → file) gives the models of ``brisque`` (LIVE's SVR model, as
    ``.npz``), ``lpips`` (a local LPIPS weights file) and ``dists`` (DISTS' alpha/beta, with the VGG16
    or from the torch hub cache); nothing is ever downloaded.
    ``device`` (``"auto"``: CUDA when available, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``) is where the
    metrics run; files are read and videos decoded on the CPU either way (VMAF stays in libvmaf on
    the CPU), and CUDA asked for where there is none is an error.

    Example:
        >>> result = quality("ref.png", "dist.png", quiet=True)  # doctest: +SKIP
        >>> result.metrics["ssim"]["value"]  # doctest: +SKIP
    """
    import yaml
    from tqdm import tqdm

    from visionbench.engine.distributed import DistInfo
    from visionbench.engine.runtime import resolve_device
    from visionbench.quality import assess
    from visionbench.quality.report_files import write_examples, write_items

    def progress(items: Any, total: int | None) -> Any:
        return tqdm(items, total=total, desc="quality", unit="item", file=sys.stderr,
                    disable=quiet or total == 1 or not sys.stderr.isatty())

    measuring_device = resolve_device(device)  # a CUDA asked for and absent fails before anything is read
    plan = None
    if mos is not None:  # the scores are read and matched to the pairs before anything is measured
        from visionbench.quality.mos_scores import prepare_mos  # (SciPy only when asked for)

        plan = prepare_mos(mos, ref, dist, dmos=dmos, partial=mos_partial)
    try:
        result = assess(ref if plan is None else plan.reference, dist, metrics=metrics, profile=profile,
                        channel=channel, crop=crop_border, data_range=data_range, resize=resize, psnr_cap=psnr_cap,
                        progress=progress, vmaf_model=vmaf_model, model_files=model_files,
                        device=measuring_device)
    except ValueError as error:
        if plan is None:
            raise
        raise ValueError(plan.real_paths(str(error))) from None  # the references, not their temporary links
    if plan is not None:
        result = plan.apply(result)  # the agreement under "mos"; score (and type) columns in items.csv
    run_dir = _make_run_dir(out, "quality", DistInfo())
    (run_dir / rundir.CONFIG).write_text(yaml.safe_dump(
        {"task": "quality", "ref": str(ref), "dist": str(dist), **result.settings}, sort_keys=False))
    report = dict(result.pooled, unpaired=result.unpaired)
    warnings = _unpaired_warnings(result.unpaired, ref, dist) + (plan.warnings if plan is not None else [])
    if warnings:
        report["warnings"] = warnings
    rundir.write_metrics(run_dir, report)
    write_items(run_dir / rundir.QUALITY_ITEMS, result.rows)
    write_examples(run_dir, result.examples)
    from visionbench.report import build_quality_report

    build_quality_report(run_dir)
    log = rundir.RunLog(run_dir / rundir.LOG, quiet=quiet)
    settings = result.settings
    unit = "frame" if settings["kind"] == "videos" else "image"
    log(f"quality of {len(result.rows)} {unit} pair(s) of "
        f"{ref} and {dist} (profile {settings['profile']}, channel {settings['channel']}, data range "
        f"{settings['data_range']:g}, crop {settings['crop_border']}); {len(result.unpaired['reference_only'])} "
        f"reference-only, {len(result.unpaired['distorted_only'])} distorted-only; wrote {run_dir}")
    for warning in warnings:
        log.warn(warning)
    if plan is not None:
        from visionbench.quality.mos import table_lines

        log.file("\n".join(table_lines(report["mos"])))
    return QualityRunResult(run_dir=run_dir, metrics=report, rows=result.rows)


def _unpaired_warnings(unpaired: dict[str, list[str]], ref: str | Path, dist: str | Path) -> list[str]:
    """One warning per side with files that have no counterpart (a few named): they are not measured."""
    shown = 3
    warnings = []
    for key, here, there in (("reference_only", ref, dist), ("distorted_only", dist, ref)):
        names = unpaired.get(key, [])
        if names:
            listed = ", ".join(repr(n) for n in names[:shown]) + (", …" if len(names) > shown else "")
            warnings.append(f"{len(names)} image(s) of {here} have no counterpart of the same relative path in {there} "
                            f"({listed}) and are not measured; check the file names.")
    return warnings


def run_sweep(space: str | Path, *, config_file: str | Path | None = None, out: str | Path | None = None,
              trials: int | None = None, sampler: str = "tpe", pruner: str = "asha", workers: int | None = None,
              storage: str | None = None, study: str = "visionbench", device: str = "auto",
              loader_workers: int | None = None, quiet: bool = False, **overrides: Any) -> Any:
    """Search hyperparameters with Optuna (``visionbench sweep``; needs ``visionbench[sweep]``).

    Each trial trains with ``overrides`` (any :func:`train` option, fixed for all trials) and the
    values the sampler draws from the ``space`` file, selects and evaluates its best checkpoint on
    the validation split only, and reports every epoch to the pruner. When ``trials`` are done, the
    best configuration and the default (``overrides`` alone) are each evaluated on the test split
    once and compared with :func:`compare`'s paired tests; ``sweep.json``, ``trials.csv`` and
    ``report.html`` are written. Calling it again on the same ``out`` continues the study (trials
    cut short resume exactly); ``storage`` (an SQLAlchemy URL) lets other machines join it.

    Args:
        space: the search space YAML file, e.g. ``lr: {loguniform: [1e-4, 1e-1]}``.
        out: the sweep directory (default: ``runs/sweep-<space file stem>``).
        trials: finished trials that end the search (default 20; with ``sampler="grid"``, the grid).
        sampler: ``"tpe"``, ``"random"`` or ``"grid"``. pruner: ``"asha"``, ``"median"`` or ``"none"``.
        workers: trials at once (default: one per visible GPU, else 1); CPU threads are split between them.
        storage: Optuna storage URL (default: SQLite ``out/study.db``).
        loader_workers: data-loader worker processes of each trial.

    Returns:
        :class:`visionbench.sweep.runner.SweepResult` (``sweep_dir``, ``summary``: the ``sweep.json`` content).

    Example:
        >>> result = run_sweep("space.yaml", data="digits", epochs=5, trials=8)  # doctest: +SKIP
        >>> result.summary["final"]["comparison"]["verdict"]  # doctest: +SKIP
    """
    from visionbench.sweep.runner import run_sweep as _run_sweep

    return _run_sweep(space, config_file=config_file, out=out, trials=trials, sampler=sampler, pruner=pruner,
                      workers=workers, storage=storage, study=study, device=device, loader_workers=loader_workers,
                      quiet=quiet, **overrides)
