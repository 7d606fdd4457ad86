"""Export a trained run to ONNX, TorchScript or ``torch.export`` (``.pt2``), checked against the run,
and compress it (int8, pruning, float16). Needs ``visionbench[export]`` for ONNX.

* :func:`export_run` — ``visionbench export RUN --format onnx|torchscript|pt2 [--quantize int8]
  [--prune 0.5] [--half]``: the model file, ``export.json`` and the parity check
  (:mod:`~visionbench.export.pipeline`);
* :func:`load_exported` — open an exported file safely (:mod:`~visionbench.export.runtime`);
* :func:`predict_exported` — ``visionbench predict --model FILE IMAGES``
  (:mod:`~visionbench.export.predict`).

Modules: :mod:`~visionbench.export.wrappers` (what each task's graph computes; the detector's
fixed-size outputs with NMS inside), :mod:`~visionbench.export.formats` (the writers and dynamic
axes), :mod:`~visionbench.export.parity` (the rule and the latencies),
:mod:`~visionbench.export.compress` (quantization, pruning, the table).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from visionbench.export.parity import ParityError
from visionbench.export.pipeline import ExportResult, export_run
from visionbench.export.predict import predict_exported
from visionbench.export.runtime import load_exported


class _CallablePackage(types.ModuleType):
    """This package, callable as :func:`visionbench.api.export`.

    ``visionbench.export`` names both the API function (``visionbench.export(run, format=...)``, as
    every command is ``visionbench.<command>``) and this package; once the package is imported, the
    name is the package, so the package forwards calls to the function.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> ExportResult:
        from visionbench.api import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["ExportResult", "ParityError", "export_run", "load_exported", "predict_exported"]
