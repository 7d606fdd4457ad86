"""Benchmark: tiny_fcos' box losses (``--box-loss``) against its default, GIoU, on the shapes recipe.

Trains ``visionbench train --task detect --data shapes --box-loss NAME`` once per loss, as a user
runs it: the default detection recipe (AdamW 3e-3, batch 32, flips, 22 epochs), the same
``--seed`` and split for every loss, so the runs differ only in the box loss. Each run is then
compared with the GIoU run on the same test images by ``visionbench compare``'s paired bootstrap
over images. Prints, per loss: test AP and AP50 with their 95% intervals, the paired difference
to GIoU (95% interval, p-value), and the seconds of training (epochs incl. validation) and of the
whole command; then the same as a Markdown table for ``benchmarks/RESULTS.md``.

Run (the full comparison, ~5 min per loss on 2 quiet cores, so ~25-30 min for the five)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/detection_box_losses.py

A short smoke run (minutes): ``--epochs 2 --losses giou,smooth_l1``. Other flags: ``--seed``,
``--threads`` (passed to ``train``), ``--out DIR`` (keep the runs; default a temporary folder),
``--resamples`` (bootstrap resamples of the comparison).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BASELINE = "giou"  # tiny_fcos' own box loss (FCOS'), what `--box-loss auto` trains


def train(loss: str, out: Path, args: argparse.Namespace) -> float:
    """Train one run with box loss ``loss`` into ``out``; return the wall seconds of the command."""
    command = [sys.executable, "-m", "visionbench", "train", "--task", "detect", "--data", "shapes",
               "--box-loss", loss, "--epochs", str(args.epochs), "--seed", str(args.seed),
               "--out", str(out), "--quiet", "--device", "cpu"]
    if args.threads:
        command += ["--threads", args.threads]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # its metrics table: summarised below
    return time.perf_counter() - started


def run_summary(loss: str, run_dir: Path, wall: float) -> dict[str, Any]:
    """Test AP/AP50 with intervals, and the seconds of the epochs (training + validation) and of the command."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines() if line.strip()]
    return {"loss": loss, "run": str(run_dir), "wall_s": wall, "epochs_s": sum(r["seconds"] for r in history),
            **{name: {"value": metrics[name]["value"], "ci95": metrics[name]["ci95"]} for name in ("AP", "AP50")}}


def versus_baseline(baseline: Path, run_dir: Path, resamples: int, seed: int) -> dict[str, Any]:
    """The paired bootstrap over test images of AP and AP50, ``run_dir`` minus ``baseline``."""
    from visionbench.comparison import compare_runs

    pair = compare_runs([baseline, run_dir], resamples=resamples, seed=seed)["pairs"][0]
    return {name: pair["metrics"][name] for name in ("AP", "AP50")}


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def report(rows: list[dict[str, Any]], epochs: int) -> None:
    """One line per loss, then a Markdown table."""
    print(f"\ntiny_fcos on shapes, {epochs} epochs, test split; differences are loss - {BASELINE} in AP points "
          "(paired bootstrap over test images)")
    for row in rows:
        ap, ap50 = row["AP"], row["AP50"]
        line = (f"{row['loss']:<10} AP {ap['value']:.4f} [{ap['ci95'][0]:.4f}, {ap['ci95'][1]:.4f}]  "
                f"AP50 {ap50['value']:.4f} [{ap50['ci95'][0]:.4f}, {ap50['ci95'][1]:.4f}]  "
                f"epochs {row['epochs_s']:.0f} s, command {row['wall_s']:.0f} s")
        if "versus" in row:
            d_ap, d_ap50 = row["versus"]["AP"], row["versus"]["AP50"]
            line += (f"  | AP {_points(d_ap['diff'])} [{_points(d_ap['ci95'][0])}, {_points(d_ap['ci95'][1])}] "
                     f"p={d_ap['p_value']:.3g}, AP50 {_points(d_ap50['diff'])} "
                     f"[{_points(d_ap50['ci95'][0])}, {_points(d_ap50['ci95'][1])}] p={d_ap50['p_value']:.3g}")
        print(line, flush=True)
    print(f"\n| box loss | test AP [95% CI] | test AP50 [95% CI] | AP − {BASELINE} (p) | AP50 − {BASELINE} (p) "
          "| epochs s | command s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        ap, ap50 = row["AP"], row["AP50"]
        versus = row.get("versus")
        diff = [f"{_points(versus[n]['diff'])} ({versus[n]['p_value']:.2g})" if versus else "—" for n in ("AP", "AP50")]
        print(f"| {row['loss']} | {ap['value']:.3f} [{ap['ci95'][0]:.3f}, {ap['ci95'][1]:.3f}] "
              f"| {ap50['value']:.3f} [{ap50['ci95'][0]:.3f}, {ap50['ci95'][1]:.3f}] | {diff[0]} | {diff[1]} "
              f"| {row['epochs_s']:.0f} | {row['wall_s']:.0f} |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=22, help="epochs per run (default: the recipe's 22)")
    parser.add_argument("--losses", default="giou,diou,ciou,iou,smooth_l1",
                        help=f"comma-separated box losses; {BASELINE} is always trained, as the baseline")
    parser.add_argument("--seed", type=int, default=0, help="--seed of every run (default 0)")
    parser.add_argument("--threads", default=None, help="--threads of every run (default: train's auto)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs in DIR/<loss> (default: a temp folder)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of each comparison")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    losses = [BASELINE, *(name for name in losses if name != BASELINE)]
    with tempfile.TemporaryDirectory() as folder:
        root = args.out or Path(folder)
        rows = []
        for loss in losses:
            run_dir = root / loss
            wall = train(loss, run_dir, args)
            row = run_summary(loss, run_dir, wall)
            if loss != BASELINE:
                row["versus"] = versus_baseline(root / BASELINE, run_dir, args.resamples, args.seed)
            rows.append(row)
            print(f"{loss}: AP {row['AP']['value']:.4f}, AP50 {row['AP50']['value']:.4f} in {wall:.0f} s", flush=True)
        report(rows, args.epochs)


if __name__ == "__main__":
    main()
