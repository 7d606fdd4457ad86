"""Compression of an exported model: int8 quantization, magnitude pruning, half precision, and the
table that says what each one costs in test metrics.

**int8: onnxruntime's post-training static quantization** (``quantize_static``, QDQ format,
per-channel int8 weights, int8 activations with MinMax ranges calibrated on
:data:`CALIBRATION_IMAGES` images of the run's *train* split with its evaluation preprocessing).
Chosen because it runs on any CPU with the same runtime that checks parity (its x86 and ARM
kernels run int8 convolutions), works on the exported file whatever the model, and keeps the
graph exportable; ``torch.ao.quantization`` is deprecated in torch in favour of torchao, which is
not a visionbench dependency. Only the weight-bearing operators are quantized (``Conv``,
``MatMul``, ``Gemm``): box decoding, NMS and the logits' last steps stay in float, so a detector's
coordinates are not rounded to 256 levels. A model without convolutions (``mlp``) gets dynamic
quantization instead (int8 weights, activations quantized per batch at run time: no calibration
to go wrong on a plain stack of matrix products, onnxruntime's advice for such models).

**Pruning** (``prune=0.5``): L1 (magnitude) unstructured pruning of each convolution and linear
layer's weights (``torch.nn.utils.prune.l1_unstructured``), the same fraction per layer, then
exported. Per layer, not global: a global threshold would empty layers initialised small (TinyFCOS'
class logits start at std 0.01). No fine-tuning follows, and the zeros are stored densely, so the
file only shrinks once compressed (the table's ``gzip`` column) and latency does not change.

**Half** (``half=True``): float16 weights and activations on CUDA (the CPU kernels of float16 are
slow or missing), judged like the others by the table.

**The table** evaluates the run's PyTorch model and every variant on the test split exactly as
``visionbench evaluate`` does (each into its own folder under ``evaluations/``), then tests each
variant against the PyTorch model with ``visionbench compare``'s paired tests: McNemar's exact
test for classification accuracy, the paired bootstrap over images for detection AP50 and
segmentation mIoU.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionbench._extras import import_optional
from visionbench.engine import rundir
from visionbench.export.formats import quiet_exporters

CALIBRATION_IMAGES = 256
HEADLINE = {"classify": "accuracy", "detect": "AP50", "segment": "mIoU", "multilabel": "mAP"}
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]


def _has_convolutions(path: Path) -> bool:
    """Whether the ONNX graph at ``path`` has a ``Conv`` node."""
    import onnx

    return any(node.op_type == "Conv" for node in onnx.load(str(path)).graph.node)


def _preprocess_for_quantization(source: Path, target: Path) -> Path:
    """onnxruntime's recommended pre-processing (ONNX shape inference, graph optimisation) into
    ``target``; the source itself if it fails. Its symbolic shape inference is skipped: it fails on
    symbolic image sides and then dumps a debug model into the working directory."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
        return target
    except Exception:  # noqa: BLE001 - optional step: quantization works on the exported graph as well
        target.unlink(missing_ok=True)
        return source


def quantize_int8(source: Path, target: Path, calibration: Iterable[torch.Tensor]) -> dict[str, Any]:
    """Write the int8 version of the ONNX model ``source`` to ``target`` (see the module docstring).

    Args:
        calibration: preprocessed input batches (float ``[N, C, H, W]``) of the train split.

    Returns:
        The method record of ``export.json``: ``kind`` (static or dynamic), format, operators,
        calibration images and ranges.
    """
    quantization = import_optional("onnxruntime.quantization", extra="export", purpose="--quantize int8")
    if not _has_convolutions(source):
        with quiet_exporters():
            quantization.quantize_dynamic(str(source), str(target), op_types_to_quantize=QUANTIZED_OPS,
                                          weight_type=quantization.QuantType.QInt8)
        return {"kind": "dynamic", "library": "onnxruntime.quantization.quantize_dynamic", "weights": "int8",
                "activations": "int8, quantized per batch at run time", "operators": QUANTIZED_OPS}
    batches = [{"images": batch.detach().float().cpu().numpy()} for batch in calibration]
    images = sum(b["images"].shape[0] for b in batches)
    if images == 0:
        raise ValueError("--quantize int8 calibrates on the run's train split, which has no images here. Export a run "
                         "whose data has a train split.")

    class Reader(quantization.CalibrationDataReader):
        """The calibration batches, once each."""

        def __init__(self) -> None:
            self.remaining = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.remaining, None)

    with quiet_exporters():
        prepared = _preprocess_for_quantization(source, target.with_name(target.stem + ".prep.onnx"))
    try:
        with quiet_exporters():
            quantization.quantize_static(
                str(prepared), str(target), Reader(), quant_format=quantization.QuantFormat.QDQ,
                op_types_to_quantize=QUANTIZED_OPS, per_channel=True, activation_type=quantization.QuantType.QInt8,
                weight_type=quantization.QuantType.QInt8, calibrate_method=quantization.CalibrationMethod.MinMax)
    finally:
        if prepared != source:
            prepared.unlink(missing_ok=True)
    return {"kind": "static", "library": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "weights": "int8, per output channel", "activations": "int8, MinMax ranges",
            "operators": QUANTIZED_OPS, "calibration": {"split": "train", "images": images}}


def pruned_copy(model: nn.Module, amount: float) -> tuple[nn.Module, float]:
    """A copy of ``model`` with the fraction ``amount`` of each conv/linear layer's weights of
    smallest magnitude set to zero; returns it and the resulting sparsity of those weights."""
    from torch.nn.utils import prune

    if not 0.0 < amount < 1.0:
        raise ValueError(f"--prune must be a fraction between 0 and 1 (exclusive); got {amount!r}. Use e.g. --prune 0.5.")
    pruned = copy.deepcopy(model).eval()
    zeros = total = 0
    for module in pruned.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            prune.l1_unstructured(module, "weight", amount=amount)
            prune.remove(module, "weight")  # the zeros become the weight itself: exportable as any model
            zeros += int((module.weight == 0).sum())
            total += module.weight.numel()
    return pruned, zeros / total if total else 0.0


def file_sizes(path: Path) -> dict[str, int]:
    """``bytes`` of a file and ``gzip_bytes``, its size gzip-compressed (level 6), where zeros show."""
    data = path.read_bytes()
    return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=6))}


def _finite(value: Any) -> float | None:
    """``value`` as a float, or ``None`` for NaN/None (JSON has no NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def headline(task: str, multilabel: bool) -> str:
    """The table's test metric of a task (``mAP`` for multi-label classification)."""
    return HEADLINE["multilabel" if multilabel else task]


def metric_value(evaluation: Path, metric: str) -> float | None:
    """``metric``'s value in an evaluation folder's ``metrics.json`` (``None`` when undefined)."""
    entry = json.loads((evaluation / rundir.METRICS).read_text(encoding="utf-8")).get(metric, {})
    return _finite(entry.get("value"))


def _unpaired(original: Path, variant: Path) -> dict[str, Any]:
    """Multi-label runs: the mAP of both, without a test (``compare`` pairs single-label runs)."""
    a, b = metric_value(original, "mAP"), metric_value(variant, "mAP")
    diff = None if a is None or b is None else 100 * (b - a)
    return {"metric": "mAP", "original": a, "value": b, "diff_points": diff, "diff_ci95_points": [None, None],
            "p_value": None, "test": "none (compare has no paired test of multi-label runs)",
            "verdict": f"mAP {b} against {a} (no paired test for multi-label runs)"}


def paired_test(task: str, original: Path, variant: Path, *, resamples: int, seed: int,
                multilabel: bool = False) -> dict[str, Any]:
    """The headline metric's difference ``variant - original`` (in points) with its interval and
    p-value, from ``visionbench compare``'s paired tests on the two evaluation folders."""
    from visionbench.comparison import compare_runs

    if multilabel:
        return _unpaired(original, variant)
    metric = HEADLINE[task]
    result = compare_runs([original, variant], resamples=resamples, seed=seed)
    pair = result["pairs"][0]
    entry = pair["metrics"][metric]
    mcnemar = pair.get("mcnemar") if metric == "accuracy" else None
    low, high = entry["ci95"]
    return {
        "metric": metric, "original": _finite(entry["a"]), "value": _finite(entry["b"]),
        "diff_points": _finite(100 * entry["diff"]),
        "diff_ci95_points": [_finite(100 * low), _finite(100 * high)],
        "p_value": _finite((mcnemar or entry)["p_value"]),
        "test": "McNemar exact" if mcnemar else f"paired bootstrap over images ({resamples} resamples)",
        **({"mcnemar": {"only_original_right": mcnemar["b"], "only_variant_right": mcnemar["c"]}} if mcnemar else {}),
        "verdict": pair["verdict"],
    }


def _cell(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def format_table(rows: list[dict[str, Any]], metric: str) -> str:
    """The compression table as plain text (one line per model; ``metric``: the test metric shown)."""
    if not rows:
        return ""
    header = (f"{'model':<24} {'file':<22} {'size':>10} {'gzip':>10} {'ms/img b1':>10} {'ms/img b32':>10} "
              f"{metric:>9} {'diff (pt)':>10} {'p':>8}  test")
    lines = [header]
    for row in rows:
        latency = row.get("latency_ms_per_image", {})
        test = row.get("test") or {}
        lines.append(
            f"{row['variant']:<24} {row['file']:<22} {row['bytes'] / 1e6:>8.3f}MB {row['gzip_bytes'] / 1e6:>8.3f}MB "
            f"{_cell(latency.get('batch_1'), '.4f'):>10} {_cell(latency.get('batch_32'), '.4f'):>10} "
            f"{_cell(row.get('value'), '.4f'):>9} {_cell(test.get('diff_points'), '+.2f'):>10} "
            f"{_cell(test.get('p_value'), '.3g'):>8}  {test.get('test', '(reference)')}")
    return "\n".join(lines)


__all__ = ["CALIBRATION_IMAGES", "HEADLINE", "QUANTIZED_OPS", "file_sizes", "format_table", "headline",
           "metric_value", "paired_test",
           "pruned_copy", "quantize_int8"]
