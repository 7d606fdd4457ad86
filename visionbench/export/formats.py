"""Writers of the three export formats, with the dynamic axes each file allows.

* ``onnx`` — ``torch.export`` then ``torch.onnx.export(..., dynamo=True)`` at opset
  :data:`OPSET`, one self-contained file (weights inside, not in a ``.data`` file beside it).
  TorchScript-based ONNX export is deprecated in torch and not used.
* ``pt2`` — the same ``torch.export`` program, saved with ``torch.export.save``; loaded with
  ``torch.export.load`` (no Python code runs on load).
* ``torchscript`` — ``torch.jit.trace`` of the module, saved with ``torch.jit.save`` (``.pt``).
  torch marks TorchScript as deprecated; it is kept because many deployment tools still read it.

**Dynamic axes.** The batch axis is always dynamic (1 to :data:`MAX_BATCH`). The height and width
of segmenters and detectors are dynamic where the model allows: ``torch.export`` is tried with
symbolic sides (multiples of 32 for ``unet_small``, which pads to its stride; any side above its
largest stride, 16, for ``tiny_fcos``) and the program is checked against the model on a second
image size; a refusal keeps the run's size and ``export.json`` says why. Classifiers keep their
run's input size: predict resizes every image to it, and that is where their accuracy was measured. A TorchScript trace keeps the batch axis dynamic (the sizes it reads are
recorded, not baked in) and the image size it was traced at.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionbench.export.wrappers import INPUT_NAME, OUTPUT_NAMES  # (also registers visionbench::nms_per_image)

FORMATS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}
"""Format name → file suffix."""
OPSET = 18  # ONNX opset: read by onnxruntime >= 1.14, TensorRT 8.6+, OpenVINO 2023+
MAX_BATCH = 4096


@dataclass(frozen=True)
class Written:
    """What a writer produced: the file, its named dynamic axes per input/output, and why the
    image size is fixed (``None`` when it is dynamic)."""

    path: Path
    dynamic_axes: dict[str, dict[int, str]]
    fixed_size_reason: str | None
    opset: int | None = None


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """Silence the exporters' progress prints and deprecation chatter (stdout stays clean for
    ``--json``); errors still propagate."""
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)  # onnxscript/onnx_ir advice, through whatever handler is configured
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)


def _size_multiple(module: nn.Module) -> int:
    """The multiple the sides must keep for ``module``: a UNet's padding stride, else 1."""
    return int(getattr(module, "stride", 1) or 1)


# Why the sides stay fixed for classifiers (segmenters and detectors are tried with dynamic sides).
CLASSIFIER_SIZE_REASON = ("a classifier is measured at its run's input size: predict resizes every image to "
                          "inference.json's image_size")


def _dynamic_sides(module: nn.Module) -> dict[int, Any]:
    """Symbolic height and width: multiples of the network stride where it pads to one (UNet),
    else any side from the module's ``min_side`` (a detector's largest stride + 1) or 8."""
    multiple = _size_multiple(module)
    if multiple > 1:
        return {2: multiple * torch.export.Dim("height_blocks", min=1, max=512),
                3: multiple * torch.export.Dim("width_blocks", min=1, max=512)}
    low = int(getattr(module, "min_side", 8))
    return {2: torch.export.Dim("height", min=low, max=16384), 3: torch.export.Dim("width", min=low, max=16384)}


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _check_other_size(program: Any, module: nn.Module, example: torch.Tensor) -> None:
    """Raise unless ``program`` computes what ``module`` does on a larger image than the example
    (a program that silently specialised on the example's size would not)."""
    multiple = _size_multiple(module)
    step = multiple if multiple > 1 else 7  # off any stride, so the model's own padding is exercised
    other = torch.rand(1, example.shape[1], example.shape[2] + step, example.shape[3] + 2 * step,
                       dtype=example.dtype, device=example.device)
    with torch.no_grad():
        expected, got = _as_tuple(module(other)), _as_tuple(program.module()(other))
    for want, have in zip(expected, got, strict=True):
        scale = 1e-4 * max(1.0, float(want.abs().max())) if want.numel() else 0.0
        if have.shape != want.shape or not torch.allclose(have.to(want.dtype), want, atol=scale):
            raise ValueError("the program differs from the model at another image size")


def export_program(module: nn.Module, example: torch.Tensor, task: str) -> tuple[Any, str | None]:
    """``torch.export`` of ``module`` on ``example`` with a dynamic batch axis, and dynamic sides
    for segmenters and detectors where the model allows (checked on a second image size).

    Returns:
        ``(ExportedProgram, reason)``: ``reason`` is ``None`` when the sides are dynamic, else why
        they are fixed.
    """
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    reason = CLASSIFIER_SIZE_REASON if task == "classify" else None
    if reason is None:
        try:
            with quiet_exporters():
                program = torch.export.export(module, (example,), dynamic_shapes=({0: batch, **_dynamic_sides(module)},))
                _check_other_size(program, module, example)
            return program, None
        except Exception as error:  # noqa: BLE001 - any refusal means "fixed size"; the reason is recorded
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            reason = f"the model fixes its input size ({first[:160]})"
    with quiet_exporters():
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    return program, reason


def _axes(task: str, dynamic_size: bool) -> dict[str, dict[int, str]]:
    """Named dynamic axes of the input and of each output."""
    input_axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    axes: dict[str, dict[int, str]] = {INPUT_NAME: input_axes}
    for name in OUTPUT_NAMES[task]:
        axes[name] = dict(input_axes) if (task == "segment" and name == "logits") else {0: "batch"}
    return axes


def _rename_dims(path: Path, axes: dict[str, dict[int, str]]) -> None:
    """Name the ONNX file's symbolic input and output dims as ``axes`` says (the exporter numbers
    them ``s0``, ``32*s1``…), so readers of the file see ``batch``, ``height``, ``width``."""
    import onnx

    model = onnx.load(str(path))
    for value in [*model.graph.input, *model.graph.output]:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param and axis in axes.get(value.name, {}):
                dim.dim_param = axes[value.name][axis]
    onnx.save(model, str(path))


def _onnx_nms_per_image(boxes: Any, scores: Any, labels: Any, num_classes: int, iou_threshold: float,
                        score_threshold: float) -> Any:
    """``visionbench::nms_per_image`` in ONNX: one ``NonMaxSuppression`` over images (its batch
    axis) and classes, each candidate's score in its own class and -1 in the others; returns the
    (image, candidate) columns of the selected (image, class, candidate) triples."""
    from onnxscript import opset18 as op

    classes = op.Range(op.Constant(value_int=0), op.Constant(value_int=num_classes), op.Constant(value_int=1))
    own_class = op.Equal(op.Unsqueeze(labels, op.Constant(value_ints=[1])),
                         op.Unsqueeze(classes, op.Constant(value_ints=[0, 2])))  # [N, K, M]
    per_class = op.Where(own_class, op.Unsqueeze(scores, op.Constant(value_ints=[1])), op.Constant(value_float=-1.0))
    selected = op.NonMaxSuppression(boxes, per_class, op.Constant(value_ints=[2**31 - 1]),
                                    op.Constant(value_floats=[iou_threshold]), op.Constant(value_floats=[score_threshold]))
    return op.Gather(selected, op.Constant(value_ints=[0, 2]), axis=1)


def write_onnx(program: Any, example: torch.Tensor, path: Path, task: str, reason: str | None) -> Written:
    """Write ``program`` (an ``ExportedProgram``) as one ONNX file at :data:`OPSET`."""
    with quiet_exporters():
        torch.onnx.export(program, (example,), str(path), dynamo=True, input_names=[INPUT_NAME],
                          output_names=list(OUTPUT_NAMES[task]), opset_version=OPSET, external_data=False,
                          verbose=False, optimize=True,
                          custom_translation_table={torch.ops.visionbench.nms_per_image.default: _onnx_nms_per_image})
    axes = _axes(task, reason is None)
    _rename_dims(path, axes)
    return Written(path, axes, reason, opset=OPSET)


def write_pt2(program: Any, path: Path, task: str, reason: str | None) -> Written:
    """Write ``program`` with ``torch.export.save``."""
    with quiet_exporters():
        torch.export.save(program, str(path))
    return Written(path, _axes(task, reason is None), reason)


def write_torchscript(module: nn.Module, example: torch.Tensor, path: Path, task: str) -> Written:
    """Trace ``module`` on ``example`` and save it (dynamic batch; the traced image size)."""
    with quiet_exporters(), torch.no_grad():
        traced = torch.jit.trace(module, (example,), check_trace=False)
        torch.jit.save(traced, str(path))
    reason = CLASSIFIER_SIZE_REASON if task == "classify" else "a TorchScript trace keeps the image size it was traced at"
    return Written(path, _axes(task, False), reason)


def write_model(fmt: str, module: nn.Module, example: torch.Tensor, path: Path, task: str) -> Written:
    """Export ``module`` (eval mode, on ``example``'s device and dtype) to ``path`` in format ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}.")
    module = module.eval()
    if fmt == "torchscript":
        return write_torchscript(module, example, path, task)
    if fmt == "pt2":
        program, reason = export_program(module, example, task)
        return write_pt2(program, path, task, reason)
    # ONNX runs a detector's NMS as its own batched NonMaxSuppression; .pt2 and TorchScript files keep
    # torchvision's nms, which any torch with torchvision loads (a custom op would need visionbench).
    native = hasattr(module, "native_nms")
    if native:
        module.native_nms = True
    try:
        program, reason = export_program(module, example, task)
        return write_onnx(program, example, path, task, reason)
    finally:
        if native:
            module.native_nms = False


__all__ = ["CLASSIFIER_SIZE_REASON", "FORMATS", "MAX_BATCH", "OPSET", "Written", "export_program", "quiet_exporters",
           "write_model"]
