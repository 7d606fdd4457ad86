"""Benchmark: classification metrics on 10 million predictions of 100 classes.

In one process, on the same inputs: visionbench (input validation on: range checks of every
label) computing the confusion matrix and precision/recall/F1 (macro), against scikit-learn
(``confusion_matrix`` + ``precision_recall_fscore_support``) and torchmetrics (functional
``multiclass_confusion_matrix`` + ``multiclass_f1_score``, ``validate_args`` on and off). Each
is timed as the best of a few repeats after one warm-up; the numbers are checked to be identical.

Target (issue 3): visionbench <= 0.06 s, >= 50x faster than scikit-learn and >= 2x faster than
unvalidated torchmetrics. Also timed: 95% bootstrap intervals of every confusion-matrix metric
and of the log loss, 1,000 resamples of 100k predictions (10 classes), target under a second.
Run: ``.venv/bin/python benchmarks/classification_metrics.py``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from visionbench.metrics import confusion_matrix, precision_recall_f1_from_confusion

N, K, REPEATS = 10_000_000, 100, 5


def best_time(fn: Callable[[], object], repeats: int = REPEATS) -> tuple[float, object]:
    result = fn()  # warm-up (first-touch of buffers, lazy imports)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def bench_bootstrap(n: int = 100_000, k: int = 10) -> float:
    """Intervals of all confusion-matrix metrics and of the log loss: 1,000 resamples of n."""
    from visionbench.metrics import classification_intervals

    generator = torch.Generator().manual_seed(1)
    target = torch.randint(0, k, (n,), generator=generator)
    preds = torch.where(torch.rand(n, generator=generator) < 0.8, target, torch.randint(0, k, (n,), generator=generator))
    terms = torch.rand(n, generator=generator, dtype=torch.float64)
    seconds, intervals = best_time(
        lambda: classification_intervals(preds, target, k, per_sample={"log_loss": terms}, resamples=1000), repeats=3)
    print(f"bootstrap: {len(intervals)} metrics x 1,000 resamples of {n:,} predictions ({k} classes): {seconds:.3f} s")
    return seconds


def main() -> int:
    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, K, (N,), generator=generator)
    noise = torch.randint(0, K, (N,), generator=generator)
    preds = torch.where(torch.rand(N, generator=generator) < 0.7, target, noise)

    def ours() -> tuple:
        cm = confusion_matrix(preds, target, K)
        p, r, f = precision_recall_f1_from_confusion(cm, average="macro", zero_division=0)
        return cm, float(f)

    def sklearn() -> tuple:
        from sklearn.metrics import confusion_matrix as sk_cm
        from sklearn.metrics import precision_recall_fscore_support

        t, p = target.numpy(), preds.numpy()
        cm = sk_cm(t, p, labels=np.arange(K))
        _, _, f, _ = precision_recall_fscore_support(t, p, labels=np.arange(K), average="macro", zero_division=0)
        return cm, float(f)

    def torchmetrics(validate: bool) -> Callable[[], tuple]:
        from torchmetrics.functional.classification import multiclass_confusion_matrix, multiclass_f1_score

        def run() -> tuple:
            cm = multiclass_confusion_matrix(preds, target, K, validate_args=validate)
            f = multiclass_f1_score(preds, target, K, average="macro", validate_args=validate)
            return cm, float(f)

        return run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_ours, (cm_ours, f_ours) = best_time(ours)
        t_sk, (cm_sk, f_sk) = best_time(sklearn, repeats=2)
        t_tm, (cm_tm, f_tm) = best_time(torchmetrics(True), repeats=2)
        t_tm_fast, _ = best_time(torchmetrics(False))
    assert np.array_equal(cm_ours.numpy(), cm_sk) and torch.equal(cm_ours, cm_tm.long())
    assert f_ours == f_sk, (f_ours, f_sk)
    print(f"{N:,} predictions, {K} classes (best of repeats, 2 threads); F1 macro {f_ours:.12f}")
    print(f"  visionbench (validated)        {t_ours:.4f} s")
    print(f"  scikit-learn                    {t_sk:.4f} s   ratio {t_sk / t_ours:6.1f}x")
    print(f"  torchmetrics validate_args=True {t_tm:.4f} s   ratio {t_tm / t_ours:6.1f}x")
    print(f"  torchmetrics validate_args=False {t_tm_fast:.4f} s   ratio {t_tm_fast / t_ours:6.1f}x")
    print(f"  torchmetrics F1 {f_tm:.12f} (float32) vs ours {f_ours:.12f} (float64, = scikit-learn)")
    t_boot = bench_bootstrap()
    targets = {"<= 0.06 s": t_ours <= 0.06, ">= 50x scikit-learn": t_sk / t_ours >= 50,
               ">= 2x unvalidated torchmetrics": t_tm_fast / t_ours >= 2, "bootstrap < 1 s": t_boot < 1.0}
    for name, ok in targets.items():
        print(f"target {name}: {'PASS' if ok else 'FAIL'}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
