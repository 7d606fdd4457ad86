"""``visionbench predict --model FILE IMAGES``: predict with an exported file and nothing else.

The export folder is self-sufficient: ``export.json`` (the task and the few run options that
predicting reads: score threshold, input size, ignore index, multi-label) and ``inference.json``
(classes, input size, normalisation) sit beside the model file, so the file predicts with its
run's own preprocessing on a machine that has neither the run nor its data. The images go through
:func:`visionbench.engine.predict.predict_files`, the code ``visionbench predict RUN`` uses, with
the exported file in place of the run's model, so both write the same outputs.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from visionbench.engine import rundir
from visionbench.export.runtime import EXPORT_JSON, TaskModel, load_exported, read_export_json


def exported_settings(model_file: Path) -> tuple[dict[str, Any], Any]:
    """``(export.json content, inference spec)`` of the folder of ``model_file``.

    Raises:
        ValueError: either file is missing or unreadable, or the export failed its parity check.
    """
    from visionbench.engine.inference_spec import read_inference_spec

    folder = model_file.parent
    info = read_export_json(folder)
    if info is not None and not info.get("parity", {}).get("passed", False):
        raise ValueError(f"{str(model_file)!r} failed its parity check against its run ({folder / EXPORT_JSON} says "
                         "what differed); it is not used. Export the run again, with another --format.")
    spec = read_inference_spec(folder)
    if info is None or spec is None:
        missing = " and ".join(name for name, found in ((EXPORT_JSON, info), (rundir.INFERENCE, spec)) if found is None)
        raise ValueError(f"predicting with {str(model_file)!r} needs {EXPORT_JSON} and {rundir.INFERENCE} beside it, as "
                         f"`visionbench export` writes them; got no {missing} in {str(folder)!r}. Copy the whole export "
                         "folder, or export the run again.")
    return info, spec


def predict_exported(model_file: str | Path, paths: list[Path], out: Path | None = None,
                     score_threshold: float | None = None) -> Any:
    """Predict ``paths`` (image files) with an exported model file on the CPU.

    Args:
        model_file: a file written by ``visionbench export`` (``.onnx``, ``.pt``, ``.pt2``) with
            its folder's ``export.json`` and ``inference.json``.
        out: the folder to write (default: ``predict/`` beside the model file).
        score_threshold: detection: the lowest score kept (default: the run's).

    Returns:
        :class:`~visionbench.engine.predict.PredictOutput`, as ``visionbench predict RUN`` returns.
    """
    from visionbench.engine.predict import predict_files

    model_file = Path(model_file)
    info, spec = exported_settings(model_file)
    settings = info.get("predict", {})
    config = SimpleNamespace(task=info["task"], image_size=settings.get("image_size"),
                             multilabel=bool(settings.get("multilabel", False)),
                             score_threshold=settings.get("score_threshold"), ignore_index=settings.get("ignore_index"))
    exported = load_exported(model_file)
    fixed = info.get("image_size_fixed_because") is not None and info["task"] == "detect"
    input_size = tuple(int(v) for v in info["input"]["shape"][2:]) if fixed else None
    model = TaskModel(exported, info["task"], input_size)
    with torch.no_grad():
        return predict_files(config, spec, model, paths, out or model_file.parent / "predict",
                             device=torch.device("cpu"), score_threshold=score_threshold)


__all__ = ["exported_settings", "predict_exported"]
