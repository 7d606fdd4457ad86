"""Benchmark: `visionbench evaluate --pred` on 100k and 1M predictions x 10 classes (issue 16).

For each size, one CSV predictions file (visionbench's own format: id, label, pred, prob_0..prob_9
as float32 with 9 significant digits) is written, then timed on the same file in this run, each
measurement in its own child process so its peak memory (``ru_maxrss``) is its own:

- ``read``: :func:`visionbench.data.predictions.read_predictions_file` alone;
- ``metrics``: the classification report with every 95% interval (1,000 resamples), on the table
  already read (what `evaluate` computes; the report and predictions.csv writing excluded);
- ``api``: ``visionbench.api.evaluate(pred=FILE)`` in process, end to end (read, metrics, run
  directory with predictions.csv and report.html);
- ``cli``: the ``visionbench evaluate --pred FILE`` command, start-up included;
- ``sklearn``: ``roc_auc_score(multi_class="ovr")`` + ``average_precision_score`` (macro) + ``log_loss``
  once, and a naive bootstrap (the same three on resampled rows) timed over a few resamples and
  extrapolated to 1,000;
- ``torchmetrics``: ``multiclass_auroc`` + ``multiclass_average_precision`` (exact, ``thresholds=None``),
  likewise.

Targets (issue 16, on the project's 2-core machine): 100k x 10 with all intervals <= 3 s; 1M x 10
<= 30 s and <= 1.5 GB peak; reading a 1M-row CSV <= 3 s. A target out of reach prints FAIL.
Run: ``.venv/bin/python benchmarks/ranking_metrics.py [--sizes 100000 1000000] [--resamples 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K = 10
ROOT = Path(__file__).resolve().parents[1]
NAIVE_RESAMPLES = {100_000: 5, 1_000_000: 2}  # resamples actually run by the naive bootstraps


def write_predictions_file(path: Path, n: int, seed: int = 0) -> None:
    """``n`` predictions of K classes (about 75% top-1 accuracy) in visionbench's predictions.csv format."""
    import torch

    from visionbench.engine.rundir import write_predictions

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, n)
    logits = rng.normal(size=(n, K)).astype(np.float32)
    logits[np.arange(n), labels] += 2.0
    probs = torch.softmax(torch.from_numpy(logits), dim=1)
    write_predictions(path, [f"s{i}" for i in range(n)], torch.from_numpy(labels), probs.argmax(dim=1), probs)


# Runs a command as its only child and prints its wall time and peak memory (RUSAGE_CHILDREN of a
# process with one child is that child's own ru_maxrss).
_MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "code": done.returncode, "out": done.stdout, "err": done.stderr[-3000:]}))
"""


def run_measured(command: list[str]) -> tuple[float, float, str]:
    """``(seconds, peak MiB, stdout)`` of ``command`` run in a child process of its own."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    result = json.loads(done.stdout)
    if result["code"]:
        raise RuntimeError(f"{command} failed:\n{result['err']}")
    return result["seconds"], result["peak"], result["out"]


def child(kind: str, path: Path, resamples: int) -> dict:
    """One measurement, run inside a child process; returns what it timed."""
    import resource

    from visionbench.data.predictions import read_predictions_file

    started = time.perf_counter()
    table = read_predictions_file(path)
    result: dict = {"read": time.perf_counter() - started}
    if kind == "metrics":
        from visionbench.engine.evaluation import classification_report

        started = time.perf_counter()
        report = classification_report(table.labels, table.preds, table.probs, [str(c) for c in range(K)],
                                       resamples=resamples)
        result["seconds"] = time.perf_counter() - started
        result["values"] = {name: report[name]["value"] for name in ("roc_auc_macro", "average_precision_macro")}
    elif kind == "api":
        from visionbench import api

        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()  # evaluate reads the file again: it is timed whole
            api.evaluate(pred=path, out=Path(folder) / "run", quiet=True, resamples=resamples)
            result["seconds"] = time.perf_counter() - started
    elif kind in ("sklearn", "torchmetrics"):
        y, p = table.labels.numpy(), table.probs.numpy()
        fn = _sklearn_scores if kind == "sklearn" else _torchmetrics_scores
        started = time.perf_counter()
        result["values"] = fn(y, p)
        result["point"] = time.perf_counter() - started
        rng = np.random.default_rng(0)
        repeats = NAIVE_RESAMPLES.get(len(y), 3)
        started = time.perf_counter()
        for _ in range(repeats):
            index = rng.integers(0, len(y), len(y))
            fn(y[index], p[index])
        result["per_resample"] = (time.perf_counter() - started) / repeats
    result["peak_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _sklearn_scores(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn import metrics

    onehot = np.eye(K)[y]
    return {"roc_auc_macro": metrics.roc_auc_score(y, p, multi_class="ovr", labels=range(K)),
            "average_precision_macro": metrics.average_precision_score(onehot, p, average="macro"),
            "log_loss": metrics.log_loss(y, p, labels=range(K))}


def _torchmetrics_scores(y: np.ndarray, p: np.ndarray) -> dict:
    import torch
    from torchmetrics.functional.classification import multiclass_auroc, multiclass_average_precision

    preds, target = torch.from_numpy(p), torch.from_numpy(y)
    return {"roc_auc_macro": float(multiclass_auroc(preds, target, K, average="macro", thresholds=None)),
            "average_precision_macro": float(multiclass_average_precision(preds, target, K, average="macro",
                                                                          thresholds=None))}


def measure(kind: str, path: Path, resamples: int) -> dict:
    seconds, peak, out = run_measured([sys.executable, __file__, "--child", kind, str(path), "--resamples",
                                       str(resamples)])
    result = json.loads(out.strip().splitlines()[-1])
    result["wall"], result["peak"] = seconds, peak
    return result


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench_size(n: int, folder: Path, resamples: int) -> None:
    path = folder / f"predictions-{n}.csv"
    if not path.exists():
        write_predictions_file(path, n)
    print(f"\n== {n:,} predictions x {K} classes ({path.stat().st_size / 2**20:.0f} MiB CSV), {resamples} resamples ==")
    read = measure("read", path, resamples)
    metrics = measure("metrics", path, resamples)
    api = measure("api", path, resamples)
    with tempfile.TemporaryDirectory() as out:
        cli_seconds, cli_peak, _ = run_measured([str(Path(sys.executable).with_name("visionbench")), "evaluate",
                                                 "--pred", str(path), "--quiet", "--resamples", str(resamples),
                                                 "--out", str(Path(out) / "run")])
    sk = measure("sklearn", path, resamples)
    tm = measure("torchmetrics", path, resamples)
    naive_sk = sk["point"] + resamples * sk["per_resample"]
    naive_tm = tm["point"] + resamples * tm["per_resample"]
    ours = metrics["seconds"]
    print(f"read the CSV (visionbench)              {read['read']:7.2f} s   peak {read['peak']:6.0f} MiB")
    print(f"metrics + all intervals (visionbench)   {ours:7.2f} s   peak {metrics['peak']:6.0f} MiB")
    print(f"api.evaluate end to end                 {api['seconds']:7.2f} s   peak {api['peak']:6.0f} MiB")
    print(f"`visionbench evaluate --pred` (CLI)     {cli_seconds:7.2f} s   peak {cli_peak:6.0f} MiB")
    print(f"scikit-learn AUC+AP+log loss, once      {sk['point']:7.2f} s   peak {sk['peak']:6.0f} MiB")
    print(f"  naive bootstrap x{resamples} (est. from {NAIVE_RESAMPLES.get(n, 3)})  {naive_sk:9.1f} s   "
          f"ratio {naive_sk / ours:6.1f}x")
    print(f"torchmetrics AUROC+AP (exact), once     {tm['point']:7.2f} s   peak {tm['peak']:6.0f} MiB")
    print(f"  naive bootstrap x{resamples} (est. from {NAIVE_RESAMPLES.get(n, 3)})  {naive_tm:9.1f} s   "
          f"ratio {naive_tm / ours:6.1f}x")
    for name in ("roc_auc_macro", "average_precision_macro"):
        ours_value, sk_value = metrics["values"][name], sk["values"][name]
        print(f"{name}: visionbench {ours_value!r}, scikit-learn {sk_value!r}, torchmetrics "
              f"{tm['values'][name]!r} (|ours - sklearn| = {abs(ours_value - sk_value):.1e})")
    if n == 100_000:
        print(f"target: 100k x 10 with all intervals <= 3 s: metrics {ours:.2f} s {verdict(ours <= 3)}; "
              f"end to end (CLI) {cli_seconds:.2f} s {verdict(cli_seconds <= 3)}")
    if n == 1_000_000:
        print(f"target: 1M x 10 <= 30 s: metrics {ours:.1f} s {verdict(ours <= 30)}; end to end (CLI) "
              f"{cli_seconds:.1f} s {verdict(cli_seconds <= 30)}")
        print(f"target: 1M x 10 peak <= 1.5 GB: metrics {metrics['peak']:.0f} MiB {verdict(metrics['peak'] <= 1536)}; "
              f"CLI {cli_peak:.0f} MiB {verdict(cli_peak <= 1536)}")
        print(f"target: 1M-row CSV read <= 3 s: {read['read']:.2f} s {verdict(read['read'] <= 3)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the generated files (default: a temporary one)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.resamples)))
        return 0
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.dir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 CPU cores; other jobs slow every number)")
        for n in args.sizes:
            bench_size(n, folder, args.resamples)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
