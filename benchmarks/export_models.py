"""Benchmark: export and compression of the three default models (issue 14).

Trains each default model briefly (``cnn-small`` on the digits, ``tiny_fcos`` and ``unet_small`` on
the embedded shapes), then exports it with ``visionbench.export`` to ONNX (with its int8 version,
onnxruntime's static quantization, and a 50%-pruned version), TorchScript and ``torch.export``.
Every export passes its parity check on the run's test split first (or the script stops). For each
file: size (and gzip-compressed size), CPU latency per image at batch 1 and 32 (median of
``--repeats`` calls), the test metric (digits accuracy, shapes AP50 and mIoU) and its difference
from the run's PyTorch model with ``visionbench compare``'s paired test (McNemar exact for
accuracy, the paired bootstrap over images for AP50 and mIoU).

Threads: torch and onnxruntime both use what ``--threads auto`` resolves to (``OMP_NUM_THREADS``
when set, else half the cores: 1 on the 2-core machine); the load average is printed, read the
latencies against it. Prints one markdown table per model, ready for ``benchmarks/RESULTS.md``.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/export_models.py`` (about 10 minutes on 2
cores; ``--tasks classify`` for the digits alone, about a minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import visionbench  # noqa: E402
from visionbench.export import export_run  # noqa: E402

RUNS = {
    "classify": {"data": "digits", "model": "cnn-small"},
    "detect": {"task": "detect", "data": "shapes", "model": "tiny_fcos"},
    "segment": {"task": "segment", "data": "shapes", "model": "unet_small"},
}


def train(task: str, epochs: int, folder: Path) -> tuple[Path, float]:
    """The task's default model trained for ``epochs`` epochs; its run directory and wall seconds."""
    started = time.perf_counter()
    result = visionbench.train(**RUNS[task], epochs=epochs, out=folder / task, quiet=True, device="cpu")
    return result.run_dir, time.perf_counter() - started


def export_all(run: Path, folder: Path, repeats: int) -> tuple[list[dict[str, Any]], str, dict[str, float]]:
    """Every format's table rows (the PyTorch reference first), the metric's name and export seconds."""
    started = time.perf_counter()
    onnx = export_run(run, format="onnx", out=folder / "onnx", quantize="int8", prune=0.5, quiet=True,
                      latency_repeats=repeats)
    seconds = {"onnx (+ int8, pruned, evaluations)": time.perf_counter() - started}
    rows = list(onnx.info["compression"]["rows"])
    for fmt in ("torchscript", "pt2"):
        started = time.perf_counter()
        result = export_run(run, format=fmt, out=folder / fmt, evaluate=True, quiet=True, latency_repeats=repeats)
        seconds[f"{fmt} (+ evaluation)"] = time.perf_counter() - started
        rows += result.info["compression"]["rows"][1:]  # the PyTorch row is the ONNX call's
    return rows, onnx.info["compression"]["metric"], seconds


def markdown(rows: list[dict[str, Any]], metric: str) -> str:
    """The rows as a markdown table."""
    lines = [f"| model | file | size (MB) | gzip (MB) | ms/image, batch 1 | ms/image, batch 32 | test {metric} | "
             "difference (points) [95% CI] | p |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        test = row.get("test")
        latency = row["latency_ms_per_image"]
        if test is None:
            diff, p = "(reference)", ""
        else:
            low, high = test["diff_ci95_points"]
            diff = f"{test['diff_points']:+.2f} [{low:+.2f}, {high:+.2f}]"
            p = f"{test['p_value']:.3g} ({'McNemar' if 'McNemar' in test['test'] else 'bootstrap'})"
        lines.append(f"| {row['variant']} | `{row['file']}` | {row['bytes'] / 1e6:.3f} | {row['gzip_bytes'] / 1e6:.3f} "
                     f"| {latency['batch_1']:.3f} | {latency['batch_32']:.3f} | {row['value']:.4f} | {diff} | {p} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="classify,detect,segment", help="comma-separated: classify, detect, segment")
    parser.add_argument("--epochs", default="classify=10,detect=8,segment=5", help="training epochs per task")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per latency (median)")
    args = parser.parse_args()
    epochs = {key: int(value) for key, value in (item.split("=") for item in args.epochs.split(","))}
    import torch

    from visionbench.engine.threads import resolve_threads

    print(f"torch {torch.__version__}, threads {resolve_threads('auto')} (OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}), load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for task in args.tasks.split(","):
            run, trained = train(task, epochs[task], Path(scratch) / "runs")
            rows, metric, seconds = export_all(run, Path(scratch) / "exports" / task, args.repeats)
            spec = RUNS[task]
            print(f"\n### {spec['model']} on {spec['data']} ({epochs[task]} epochs, trained in {trained:.0f} s; "
                  f"load average {os.getloadavg()[0]:.2f})\n")
            print(markdown(rows, metric))
            print("\nexport wall seconds: " + ", ".join(f"{name} {value:.1f}" for name, value in seconds.items()),
                  flush=True)


if __name__ == "__main__":
    main()
