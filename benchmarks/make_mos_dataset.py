"""Write the small MOS dataset of the README's "Agreement with human scores (MOS)" example.

Four scikit-image sample images, blurred and noised at four levels each, with synthetic MOS
(a known decreasing function of the level plus noise): ``ROOT/ref/``, ``ROOT/dist/`` and
``ROOT/scores.csv``. The generator is the tests' (``tests/quality/mos_dataset.py``), loaded by
path so the script runs from any directory of a clone.

Run: ``.venv/bin/python benchmarks/make_mos_dataset.py mos-demo`` (a second), then
``visionbench quality mos-demo/ref mos-demo/dist --metrics psnr,ssim --mos mos-demo/scores.csv``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

GENERATOR = Path(__file__).resolve().parents[1] / "tests" / "quality" / "mos_dataset.py"


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("visionbench_mos_dataset", GENERATOR)
    assert spec is not None and spec.loader is not None, f"cannot load {GENERATOR}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(_generator().main())  # type: ignore[attr-defined]
