"""visionbench: train, evaluate and compare computer-vision models, and measure image quality.

The public API mirrors the command line::

    import visionbench
    result = visionbench.train(data="digits", epochs=5)
    result.run_dir, result.metrics["accuracy"]["value"]

Functions are imported lazily so that ``visionbench --help`` does not pay for importing torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("train", "evaluate", "compare", "predict", "explain", "export", "quality", "convert", "run_sweep",
        "TrainResult", "EvaluateResult", "CompareResult")


def __getattr__(name: str) -> Any:
    if name in _API:
        from visionbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'visionbench' has no attribute {name!r}")


__all__ = ["__version__", *_API]
