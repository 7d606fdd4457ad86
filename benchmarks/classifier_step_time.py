"""Benchmark: training-step time of the default classifier at 8, 32, 64 and 128 px (issue 12).

1. Step time: one training step (forward, cross-entropy, backward, AdamW step) of a batch of 64
   random images, for the default ``--model`` (``cnn-small``) built for each size, with torch
   threads = what ``--threads auto`` resolves to here and 2. Each measurement is the median of
   ``--steps`` steps after 3 untimed warm-up steps; it is repeated ``--repeats`` times and the best
   median is kept (other engineers' jobs only ever make a step slower). The load average is
   printed beside every figure: read the numbers against it.
2. Digits: ``visionbench train`` as a subprocess (the ``make demo`` job): test accuracy and the
   epochs' training seconds (from history.jsonl).

Targets: ≤ 150 ms a step at 64 and 128 px with 2 threads; digits test accuracy ≥ 98.6% within
10 s of training. Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/classifier_step_time.py``
(about a minute on 2 cores); ``--sizes 64,128 --threads 2`` for a part.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from visionbench.config import ClassifyConfig  # noqa: E402
from visionbench.engine.threads import resolve_threads  # noqa: E402
from visionbench.models import create_model  # noqa: E402

BATCH = 64
TARGET_MS = 150.0
TARGET_SIZES = (64, 128)
WARMUP_STEPS = 3


def load() -> str:
    """The 1-minute load average, for printing beside a figure."""
    return f"{os.getloadavg()[0]:.2f}"


def step_ms(model_name: str, size: int, threads: int, steps: int) -> float:
    """Median milliseconds of one training step of ``model_name`` at ``size`` px (batch 64, RGB, 10 classes)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, in_channels=3, image_size=size).train()
    config = ClassifyConfig()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    images, labels = torch.randn(BATCH, 3, size, size), torch.randint(0, 10, (BATCH,))
    times = []
    for step in range(WARMUP_STEPS + steps):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        if step >= WARMUP_STEPS:
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def bench_steps(model_name: str, sizes: list[int], thread_counts: list[int], steps: int, repeats: int) -> bool:
    """Print the best-of-``repeats`` median step time for each size and thread count; whether every
    2-thread figure at 64 and 128 px meets the target."""
    ok = True
    print(f"step time, {model_name}, batch {BATCH} (best of {repeats} medians of {steps} steps)")
    for threads in thread_counts:
        for size in sizes:
            runs = []
            for _ in range(repeats):
                runs.append((step_ms(model_name, size, threads, steps), load()))
            best, best_load = min(runs)
            check = ""
            if size in TARGET_SIZES and threads == 2:
                met = best <= TARGET_MS
                ok &= met
                check = f"  target <= {TARGET_MS:.0f} ms: {'met' if met else 'MISSED'}"
            loads = ", ".join(f"{ms:.0f} ms @ load {avg}" for ms, avg in runs)
            print(f"  {threads} thread(s) {size:>3} px: {best:7.1f} ms/step (load {best_load}; runs: {loads}){check}")
    return ok


def bench_digits() -> bool:
    """Run ``visionbench train`` (the ``make demo`` job); print accuracy and training seconds; whether
    the target is met."""
    with tempfile.TemporaryDirectory() as tmp:
        before = load()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "visionbench", "train", "--quiet", "--out", f"{tmp}/demo"],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        run_dir = next(p.parent for p in Path(tmp).rglob("metrics.json"))
        accuracy = json.loads((run_dir / "metrics.json").read_text())["accuracy"]["value"]
        history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines() if line]
        seconds = sum(record["seconds"] for record in history)
    met = accuracy >= 0.986 and seconds <= 10
    print(f"digits (visionbench train): test accuracy {accuracy:.4f}, training {seconds:.2f} s over {len(history)} "
          f"epochs, wall {wall:.1f} s (load {before} → {load()})  target >= 0.986 within 10 s: "
          f"{'met' if met else 'MISSED'}")
    return met


def main() -> None:
    """Parse the options, run both benchmarks, exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=ClassifyConfig().model, help="classifier (default: the default --model)")
    parser.add_argument("--sizes", default="8,32,64,128", help="comma-separated input sides in pixels")
    parser.add_argument("--threads", default="auto,2", help="comma-separated thread counts ('auto': --threads auto)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per figure (the best is kept)")
    parser.add_argument("--no-digits", action="store_true", help="skip the digits training run")
    args = parser.parse_args()
    thread_counts = list(dict.fromkeys(resolve_threads(t) if t == "auto" else int(t) for t in args.threads.split(",")))
    print(f"threads auto = {resolve_threads('auto')} here (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); "
          f"{os.cpu_count()} CPUs; load average now {load()}")
    ok = bench_steps(args.model, [int(s) for s in args.sizes.split(",")], thread_counts, args.steps, args.repeats)
    if not args.no_digits:
        ok &= bench_digits()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
