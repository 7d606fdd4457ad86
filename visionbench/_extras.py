"""Optional dependencies, imported on first use with an error that names the extra installing them.

visionbench's core (training, evaluation, reports, image quality) needs only the packages of
``[project.dependencies]``. Features that need a large or platform-specific package declare it as
an extra in ``pyproject.toml`` and import it through :func:`import_optional`:

- ``visionbench[video]``: ``av`` (PyAV), for ``visionbench quality`` on video files;
- ``visionbench[tensorboard]``: ``tensorboard``, for event files in ``RUN/tensorboard/`` (without it
  training runs and logs once that the event files are skipped);
- ``visionbench[coco]``: ``pycocotools``, for ``--task segment --data coco:…`` (polygon and RLE masks);
- ``visionbench[timm]``: ``timm``, for ``--model timm:NAME`` (visionbench/models/timm_backend.py);
- ``visionbench[sweep]``: ``optuna``, for ``visionbench sweep`` (visionbench/sweep/);
- ``visionbench[vmaf]``: ``imageio-ffmpeg``, whose FFmpeg has libvmaf, for ``--metrics vmaf`` when no
  ``ffmpeg`` on PATH has it (visionbench/quality/vmaf.py; videos also need ``[video]``);
- ``visionbench[mos]``: ``scipy``, for ``visionbench quality --mos`` (the logistic fit of agreement
  with human scores, visionbench/quality/mos.py);
- ``visionbench[export]``: ``onnx``, ``onnxruntime`` and ``onnxscript``, for ``visionbench export
  --format onnx`` and ``--quantize int8`` (visionbench/export/);
- ``visionbench[parquet]``: ``pyarrow``, for ``visionbench evaluate --pred FILE.parquet``
  (visionbench/data/predictions.py; CSV, JSON and NPZ need only NumPy);
- ``visionbench[all]``: all of the above.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# extra name -> the pip requirement it adds, or the requirements of an extra of several packages
# (kept equal to pyproject.toml by tests/test_dependencies.py)
EXTRAS: dict[str, str | tuple[str, ...]] = {
    "video": "av>=12", "tensorboard": "tensorboard>=2.14", "coco": "pycocotools>=2.0.7", "timm": "timm>=0.9",
    "sweep": "optuna>=4.9", "vmaf": "imageio-ffmpeg>=0.8", "mos": "scipy>=1.10",
    "export": ("onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.1"), "parquet": "pyarrow>=14",
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` that adds it."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, e.g. ``pip install 'visionbench[video]'``."""
    return f"pip install 'visionbench[{extra}]'"


def import_optional(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. ``"av"``, ``"pycocotools.mask"``) of the optional ``extra``.

    Args:
        module: the module to import.
        extra: the key of :data:`EXTRAS` that installs it.
        purpose: what needs it, for the message (``"reading video 'a.mp4'"``).

    Raises:
        MissingExtraError: when the module's package is not installed. Other import failures (a
            broken installation) propagate unchanged, so they are not mistaken for a missing extra.
    """
    package = module.split(".")[0]
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as error:
        # Only the package itself missing means "extra not installed"; a module missing *inside* an
        # installed package is a broken installation and keeps its own error.
        if error.name != package:
            raise
        raise MissingExtraError(
            f"{purpose} needs the optional package {package!r}, which is not installed. Install it with "
            f"`{install_hint(extra)}` (or `pip install 'visionbench[all]'` for every optional feature)."
        ) from None
    return importlib.import_module(module)
