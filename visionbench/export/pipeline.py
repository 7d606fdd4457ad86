"""``visionbench export RUN``: a trained run's best weights to a verified model file (and its
compressed versions), with ``export.json`` saying what the file takes, gives and was checked for.

Steps: load the run's model as ``visionbench evaluate`` does; export the task's module
(:mod:`visionbench.export.wrappers`) in the asked format (:mod:`visionbench.export.formats`); run
the file and the run's model side by side on the run's test split (the parity check,
:mod:`visionbench.export.parity`, an error when it fails) and time both on batches of 1 and 32
images; then, when asked, make the compressed versions (:mod:`visionbench.export.compress`),
evaluate each on the test split and test it against the run's model. The output folder holds the
model files, ``export.json``, a copy of the run's ``inference.json`` (so the folder alone predicts:
``visionbench predict --model FOLDER/model.onnx IMAGES``), ``log.txt`` and, for the table,
``evaluations/<model>/`` (each an evaluation run folder: ``metrics.json``, predictions, report).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Subset

from visionbench import config as cfg
from visionbench._extras import import_optional
from visionbench.engine import rundir
from visionbench.export import compress
from visionbench.export.formats import FORMATS, Written, write_model
from visionbench.export.parity import ParityCheck, latency_ms, reference_detections
from visionbench.export.runtime import EXPORT_JSON, TaskModel, load_exported, sha256_of
from visionbench.export.wrappers import INPUT_NAME, export_module, output_shapes

QUANTIZE_CHOICES = ("int8",)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` returns: the folder, the model file, the ``export.json`` content and
    the compression table as text (empty without compression)."""

    out_dir: Path
    model_file: Path
    info: dict[str, Any]
    table: str


@dataclass(frozen=True)
class _Run:
    """A trained run, loaded: its folder, config, inference spec, data and model (CPU, eval)."""

    source: Path
    config: Any
    spec: Any
    bundle: Any
    model: nn.Module


def check_options(fmt: str, quantize: str | None, half: bool, prune: float | None) -> None:
    """Refuse option combinations that cannot work, before anything is loaded."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}.")
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}; got {quantize!r}.")
    if quantize is not None and fmt != "onnx":
        raise ValueError(f"--quantize int8 uses onnxruntime's quantizer, whose output is ONNX; got --format {fmt}. "
                         "Give --format onnx --quantize int8.")
    if prune is not None and not 0.0 < prune < 1.0:
        raise ValueError(f"--prune must be a fraction between 0 and 1 (exclusive); got {prune!r}. Use e.g. --prune 0.5.")
    if half and not torch.cuda.is_available():
        raise ValueError("--half makes a float16 model for CUDA, checked on a CUDA GPU; got no CUDA device here "
                         "(torch.cuda.is_available() is False). Export on a machine with a GPU, or use --quantize int8 "
                         "for CPUs.")
    if fmt == "onnx" or quantize is not None:
        for module in ("onnx", "onnxscript", "onnxruntime"):
            import_optional(module, extra="export", purpose=f"--format {fmt}")
    if half and fmt == "onnx":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise ValueError("--half --format onnx is checked with onnxruntime's CUDA provider; got only "
                             f"{onnxruntime.get_available_providers()}. Install onnxruntime-gpu, or use --format pt2.")


def load_run(run: str | Path) -> _Run:
    """The run's model with its best weights (CPU, eval mode), config, inference spec and data."""
    from visionbench.engine.inference_spec import inference_spec, read_inference_spec
    from visionbench.engine.run_model import load_run_model
    from visionbench.engine.train import build_data

    source = rundir.check_run_dir(Path(run))
    if "pred" in (cfg.load_yaml(source / rundir.CONFIG) or {}):
        raise ValueError(f"run {str(source)!r} evaluated a predictions file and has no model to export. Give a run "
                         "made by `visionbench train`.")
    best = source / rundir.BEST_WEIGHTS
    if not best.is_file():
        raise ValueError(f"run {str(source)!r} has no {rundir.BEST_WEIGHTS}: it has not finished an epoch. "
                         f"Continue it with `visionbench train --resume {source}`.")
    config = cfg.resolve(source / rundir.CONFIG)
    bundle = build_data(config)  # the test split for the parity check, the train split for calibration
    spec = read_inference_spec(source) or inference_spec(config.task, bundle)
    model = load_run_model(best, config, spec, spec.image_size).eval()
    return _Run(source, config, spec, bundle, model)


def output_paths(source: Path, fmt: str, out: str | Path | None) -> tuple[Path, Path]:
    """``(folder, model file)``: ``out`` as a model file when it ends in the format's suffix,
    else as a folder holding ``model<suffix>``; by default ``RUN/export-<format>/``."""
    suffix = FORMATS[fmt]
    if out is not None and Path(out).suffix.lower() in {s for s in FORMATS.values()}:
        if Path(out).suffix.lower() != suffix:
            raise ValueError(f"--out must end in {suffix} for --format {fmt}; got {str(out)!r}. Give a folder, or a "
                             f"file name ending in {suffix}.")
        path = Path(out)
        folder = path.parent
    else:
        folder = Path(out) if out is not None else source / f"export-{fmt}"
        path = folder / f"model{suffix}"
    from visionbench.api import make_output_dir

    make_output_dir(folder)
    return folder, path


def _inputs(task: str, batch: Any) -> Any:
    """The model input of one evaluation batch: a tensor, or a detector's list of images."""
    if task == "classify":
        return batch[0]
    return batch.images


def eval_batches(dataset: Any, config: Any) -> Iterator[Any]:
    """The preprocessed model inputs of ``dataset`` (a split wrapped by the task), batch by batch, on the CPU."""
    from visionbench.engine.batches import loader_batches
    from visionbench.engine.loaders import eval_loader
    from visionbench.engine.runtime import Runtime

    with loader_batches(eval_loader(dataset, config, Runtime(device=torch.device("cpu")))) as batches:
        for batch in batches:
            yield _inputs(config.task, batch)


def _stacked(images: Any, size: tuple[int, int] | None = None) -> list[torch.Tensor]:
    """Model inputs as tensors of one size each: a tensor as is, a detector's images in groups of
    one size (resized to ``size`` when the export fixed it)."""
    if isinstance(images, torch.Tensor):
        return [images]
    from torchvision.transforms.v2 import functional as tvf

    groups: dict[tuple[int, ...], list[torch.Tensor]] = {}
    for image in images:
        if size is not None and tuple(image.shape[-2:]) != tuple(size):
            image = tvf.resize(image, list(size), antialias=True)
        groups.setdefault(tuple(image.shape[-2:]), []).append(image)
    return [torch.stack(group) for group in groups.values()]


def example_input(run: _Run) -> torch.Tensor:
    """Two images of the test split, preprocessed: the export's example (two, so the batch axis
    is not specialised to 1)."""
    for inputs in eval_batches(run.bundle.test, run.config):
        first = _stacked(inputs)[0]
        return first[torch.tensor([0, 1 if len(first) > 1 else 0])]
    raise ValueError(f"run {str(run.source)!r} has an empty test split; the export is checked on it. Export a run "
                     "whose data has a test split.")


def calibration_batches(run: _Run, images: int, size: tuple[int, int] | None) -> list[torch.Tensor]:
    """``images`` evenly spaced images of the train split, with the evaluation preprocessing."""
    train = run.bundle.data.train
    count = min(images, len(train))
    wrapped = copy.copy(run.bundle.test)  # the test split's evaluation transform, over train images
    wrapped.base = Subset(train, [int(i * len(train) / count) for i in range(count)]) if count else train
    return [tensor for inputs in eval_batches(wrapped, run.config) for tensor in _stacked(inputs, size)]


def _reference(run: _Run, inputs: Any) -> Any:
    """The run's model on one batch, grouped by image size for detectors (as the export runs)."""
    if run.config.task == "detect":
        return reference_detections(run.model, list(inputs))
    return run.model(inputs)


@torch.no_grad()
def check_parity(run: _Run, task_model: TaskModel) -> ParityCheck:
    """Run both models over the whole test split and compare (:class:`ParityCheck`)."""
    detector = getattr(run.model, "detections_per_image", None)
    nms_iou = getattr(run.model, "nms_iou", None)
    check = ParityCheck(run.config.task, score_threshold=float(getattr(run.model, "score_threshold", 0.0)),
                        rows=int(detector) if detector is not None else None,
                        nms_iou=float(nms_iou) if nms_iou is not None else None)
    for inputs in eval_batches(run.bundle.test, run.config):
        check.update(_reference(run, inputs), task_model(inputs))
    return check


@torch.no_grad()
def latencies(run: _Run, exported: Any, example: torch.Tensor, repeats: int) -> dict[str, dict[str, float]]:
    """Milliseconds per image of the run's PyTorch model and of the exported file, batches of 1 and 32."""
    def pytorch(batch: torch.Tensor) -> Any:
        return run.model(list(batch)) if run.config.task == "detect" else run.model(batch)

    return {"pytorch": latency_ms(pytorch, example, repeats=repeats),
            "exported": latency_ms(exported, example, repeats=repeats)}


def _input_record(written: Written, example: torch.Tensor, run: _Run) -> dict[str, Any]:
    """The ``input`` record of ``export.json``."""
    dynamic = written.dynamic_axes[INPUT_NAME]
    shape = [dynamic.get(axis, int(example.shape[axis])) for axis in range(example.dim())]
    values = ("[0, 1] (the detector normalises inside)" if run.config.task == "detect"
              else "(pixel / 255 - mean) / std, per channel, after resizing as `preprocessing` says")
    return {"name": INPUT_NAME, "shape": shape, "dtype": str(example.dtype).replace("torch.", ""), "layout": "NCHW",
            "values": values}


def _predict_record(config: Any) -> dict[str, Any]:
    """What ``predict --model`` needs of the run's configuration."""
    return {"task": config.task, "image_size": config.image_size, "multilabel": bool(getattr(config, "multilabel", False)),
            "score_threshold": getattr(config, "score_threshold", None), "ignore_index": getattr(config, "ignore_index", None)}


def _versions() -> dict[str, str]:
    """Versions of what wrote and checked the files."""
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return versions


def write_json(path: Path, info: dict[str, Any]) -> None:
    """Write ``export.json`` atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(rundir.metrics_json_text(info) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _file_entry(path: Path, variant: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``files`` entry of one model file: size, SHA-256, what it is."""
    return {"variant": variant, "bytes": path.stat().st_size, "sha256": sha256_of(path), **(extra or {})}


def write_file(fmt: str, module: nn.Module, example: torch.Tensor, path: Path, task: str) -> Written:
    """Export into a temporary name, then rename: a failed export never leaves half a file."""
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        written = write_model(fmt, module, example, tmp, task)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return dataclasses.replace(written, path=path)


def export_run(run: str | Path, *, format: str = "onnx", out: str | Path | None = None, quantize: str | None = None,
               half: bool = False, prune: float | None = None, evaluate: bool = False, quiet: bool = False,
               latency_repeats: int = 10, calibration_images: int = compress.CALIBRATION_IMAGES,
               resamples: int = 1000) -> ExportResult:
    """Export a trained run and check it: the model file, ``export.json``, ``inference.json`` and,
    with ``quantize``, ``half``, ``prune`` or ``evaluate``, the compressed files and their table.

    The arguments of :func:`visionbench.api.export`, and:

    Args:
        latency_repeats: timed calls per latency figure (the median is kept).
        calibration_images: train images that calibrate the int8 activation ranges.
        resamples: bootstrap resamples of the table's paired tests.

    Raises:
        ParityError: the file's outputs differ from the run's model on its test split
            (``export.json`` is written first, recording the check).
    """
    from visionbench.engine.inference_spec import write_inference_spec
    from visionbench.engine.threads import apply_threads, restore_threads

    check_options(format, quantize, half, prune)
    loaded = load_run(run)
    previous_threads = apply_threads(loaded.config.threads)
    try:
        folder, path = output_paths(loaded.source, format, out)
        log = rundir.RunLog(folder / rundir.LOG, quiet=quiet)
        info, table = _export_and_check(loaded, format, folder, path, log, quantize=quantize, half=half, prune=prune,
                                        evaluate=evaluate, latency_repeats=latency_repeats,
                                        calibration_images=calibration_images, resamples=resamples)
        write_inference_spec(folder, loaded.spec)  # the folder predicts on its own
    finally:
        restore_threads(previous_threads)
    return ExportResult(out_dir=folder, model_file=path, info=info, table=table)


def _export_and_check(run: _Run, fmt: str, folder: Path, path: Path, log: rundir.RunLog, *, quantize: str | None,
                      half: bool, prune: float | None, evaluate: bool, latency_repeats: int, calibration_images: int,
                      resamples: int) -> tuple[dict[str, Any], str]:
    """Export, check parity (raising after ``export.json`` records a failure), time, compress."""
    task, config = run.config.task, run.config
    if task == "detect" and fmt == "torchscript" and run.spec.image_size is None:
        raise ValueError(f"--format torchscript fixes a detector's input size, and run {str(run.source)!r} takes images "
                         "of many sizes (its inference.json has no image_size). Use --format onnx or pt2, whose "
                         "detector takes any size, or train with --image-size N.")
    module = export_module(task, run.model, config.model)
    example = example_input(run)
    started = time.perf_counter()
    written = write_file(fmt, module, example, path, task)
    log(f"exported {run.source / rundir.BEST_WEIGHTS} to {path} ({fmt}, {time.perf_counter() - started:.1f} s)")
    exported = load_exported(path, verify=False)
    fixed = written.fixed_size_reason is not None and task == "detect"
    task_model = TaskModel(exported, task, tuple(example.shape[-2:]) if fixed else None)
    parity = check_parity(run, task_model)
    info = _info(run, fmt, written, example, path)
    info["parity"] = parity.result()
    if info["parity"]["passed"]:
        info["parity"]["latency_ms_per_image"] = latencies(run, exported, example, latency_repeats)
        info["parity"]["threads"] = torch.get_num_threads()
    write_json(folder / EXPORT_JSON, info)
    parity.check(str(path))  # a failure is an error; export.json keeps what differed
    log(_parity_line(info["parity"]))
    table = ""
    if quantize or half or prune or evaluate:
        info["compression"] = _compression(run, fmt, folder, path, module, example, task_model, info, log,
                                           quantize=quantize, half=half, prune=prune, repeats=latency_repeats,
                                           calibration_images=calibration_images, resamples=resamples)
        table = compress.format_table(info["compression"]["rows"], info["compression"]["metric"])
        log.file(table)
        write_json(folder / EXPORT_JSON, info)
    log(f"wrote {folder / EXPORT_JSON}")
    return info, table


def _info(run: _Run, fmt: str, written: Written, example: torch.Tensor, path: Path) -> dict[str, Any]:
    """``export.json`` before the parity check (see the README's table of its fields)."""
    from dataclasses import asdict

    task = run.config.task
    outputs = output_shapes(task, run.spec.num_classes, getattr(run.model, "detections_per_image", None))
    return {
        "format": fmt, "file": path.name, "task": task, "model": run.config.model, "run": str(run.source),
        "weights_sha256": sha256_of(run.source / rundir.BEST_WEIGHTS), "opset": written.opset,
        "exporter": "torch.jit.trace" if fmt == "torchscript" else (
            "torch.export + torch.onnx.export(dynamo=True)" if fmt == "onnx" else "torch.export"),
        "input": _input_record(written, example, run),
        "outputs": [{"name": name, "shape": shape, "dtype": "int64" if name in ("labels", "num_detections") else
                     "float32"} for name, shape in outputs.items()],
        "dynamic_axes": {name: {str(axis): label for axis, label in axes.items()}
                         for name, axes in written.dynamic_axes.items()},
        "image_size_fixed_because": written.fixed_size_reason,
        "postprocessing": _postprocessing(task),
        "preprocessing": asdict(run.spec),
        "predict": _predict_record(run.config),
        "files": {path.name: _file_entry(path, "float32")},
        "versions": _versions(),
    }


def _postprocessing(task: str) -> str:
    """What to do with the outputs, in words."""
    if task == "classify":
        return "softmax over logits (sigmoid per label for multi-label runs); class = argmax"
    if task == "segment":
        return "mask = argmax over the class axis of logits (resize logits bilinearly first for another mask size)"
    return ("complete in the graph (decoding, score threshold, per-class NMS): the first num_detections rows of boxes "
            "(XYXY pixels of the input), scores and labels (class indices) per image, best first")


def _parity_line(parity: dict[str, Any]) -> str:
    """One log line of the parity result and latencies."""
    diffs = ", ".join(f"{name} {value:.2g}" for name, value in parity["max_abs_diff"].items())
    identical = next(key for key in parity if key.startswith("identical_"))
    latency = parity.get("latency_ms_per_image", {})
    timing = "; ".join(f"{who} " + ", ".join(f"{k.replace('_', ' ')} {v:.4f} ms/image" for k, v in ms.items())
                       for who, ms in latency.items())
    return (f"parity on the test split ({parity['samples']} images): passed; max abs diff {diffs}; "
            f"{identical.replace('_', ' ')}: {parity[identical]} ({parity['differences_at_ties']} at ties); {timing}")


def _evaluate_into(folder: Path, model: nn.Module, run: _Run, device: torch.device) -> Path:
    """Evaluate ``model`` on the test split into ``folder`` (metrics, predictions, report)."""
    from visionbench.engine.runtime import Runtime
    from visionbench.engine.train import evaluate_and_write

    folder.mkdir(parents=True, exist_ok=True)
    cfg.save_yaml(run.config, folder / rundir.CONFIG)
    log = rundir.RunLog(folder / rundir.LOG, quiet=True)
    evaluate_and_write(model.to(device), run.config, run.bundle, folder, Runtime(device=device), log)
    return folder


def _compression(run: _Run, fmt: str, folder: Path, path: Path, module: nn.Module, example: torch.Tensor,
                 task_model: TaskModel, info: dict[str, Any], log: rundir.RunLog, *, quantize: str | None, half: bool,
                 prune: float | None, repeats: int, calibration_images: int, resamples: int) -> dict[str, Any]:
    """Make the compressed files, evaluate every model on the test split, test each against PyTorch."""
    cpu = torch.device("cpu")
    evaluations = folder / "evaluations"
    original = _evaluate_into(evaluations / "pytorch", run.model, run, cpu)
    best = run.source / rundir.BEST_WEIGHTS
    rows = [{"variant": "pytorch (run)", "file": best.name, **compress.file_sizes(best), "device": "cpu",
             "latency_ms_per_image": info["parity"]["latency_ms_per_image"]["pytorch"],
             "value": compress.metric_value(original, _headline(run)), "evaluation": "evaluations/pytorch"}]
    size = tuple(example.shape[-2:]) if task_model.input_size is not None else None
    variants: list[tuple[str, str, Path, str, dict[str, Any]]] = [(fmt, fmt, path, "cpu", {})]
    if quantize:
        target = path.with_name(f"{path.stem}.int8{path.suffix}")
        method = compress.quantize_int8(path, target, calibration_batches(run, calibration_images, size))
        info["files"][target.name] = _file_entry(target, "int8", {"quantization": method})
        variants.append((f"{fmt} int8 ({method['kind']})", "onnx-int8", target, "cpu", {}))
    if prune:
        pruned, sparsity = compress.pruned_copy(run.model, prune)
        target = path.with_name(f"{path.stem}.pruned{round(100 * prune)}{path.suffix}")
        write_file(fmt, export_module(run.config.task, pruned, run.config.model), example, target, run.config.task)
        info["files"][target.name] = _file_entry(target, f"pruned {prune:g}", {"sparsity": sparsity})
        variants.append((f"{fmt} pruned {100 * prune:g}%", f"{fmt}-pruned-{round(100 * prune)}", target, "cpu",
                         {"sparsity": sparsity}))
    if half:
        target = path.with_name(f"{path.stem}.fp16{path.suffix}")
        half_model = copy.deepcopy(run.model).half().cuda()
        write_file(fmt, export_module(run.config.task, half_model, run.config.model), example.half().cuda(), target,
                   run.config.task)
        info["files"][target.name] = _file_entry(target, "float16 (CUDA)")
        variants.append((f"{fmt} fp16", f"{fmt}-fp16", target, "cuda", {}))
    for label, slug, file, device, extra in variants:
        loaded = task_model.exported if file == path else load_exported(file, device=device, verify=False)
        rows.append(_variant_row(run, label, slug, loaded, example, size, original, evaluations, repeats=repeats,
                                 resamples=resamples, extra=extra))
        log(f"{label}: {rows[-1]['test']['verdict']}")
    return {"reference": "pytorch (run)", "metric": _headline(run), "rows": rows}


def _headline(run: _Run) -> str:
    """The table's test metric for this run."""
    return compress.headline(run.config.task, bool(getattr(run.config, "multilabel", False)))


def _variant_row(run: _Run, label: str, slug: str, exported: Any, example: torch.Tensor, size: tuple[int, int] | None,
                 original: Path, evaluations: Path, *, repeats: int, resamples: int, extra: dict[str, Any]
                 ) -> dict[str, Any]:
    """One table row of a loaded file: sizes, latency, test metric and the paired test against the run's model."""
    file, device = exported.path, exported.device
    model = TaskModel(exported, run.config.task, size)
    evaluation = _evaluate_into(evaluations / slug, model, run, device)
    sample = example.to(device)
    with torch.no_grad():
        latency = latency_ms(exported, sample.to(exported.dtype), repeats=repeats)
    test = compress.paired_test(run.config.task, original, evaluation, resamples=resamples, seed=run.config.seed,
                                multilabel=bool(getattr(run.config, "multilabel", False)))
    return {"variant": label, "file": file.name, **compress.file_sizes(file), "device": device.type,
            "latency_ms_per_image": latency, "value": test["value"], "test": test,
            "evaluation": f"evaluations/{slug}", **extra}


__all__ = ["QUANTIZE_CHOICES", "ExportResult", "check_options", "export_run", "load_run", "output_paths"]
