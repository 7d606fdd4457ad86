"""Benchmark: segmentation metrics over 200 images of 512x512 with 21 classes (VOC-sized).

Data (seeded): per image 2 to 7 of the 21 classes in 16x16 blocks of 32x32 pixels; predictions
with a tenth of the blocks wrong (another class of the image or one of two random confusers) and
3% pixel noise (among the image's classes); a 1-pixel void line (255) on the region boundaries,
as in VOC masks (about 4% of the pixels). Masks are uint8, as read from PNG files,
and fed in batches of 4 as a loader would.

In one process, on the same inputs:

* visionbench ``SegmentationAccumulator`` (dataset confusion matrix, per-class table, all scalars
  and the per-image mIoU), on uint8 batches and on int64 batches (``Mask`` contract, the
  conversion inside the timing);
* torchmetrics ``MeanIoU(num_classes=22, include_background=False, input_format="index")``:
  it has no ``ignore_index`` and its index input must be int64 within ``[0, num_classes)``, so
  the classes are shifted by one and void pixels sent to class 0 on both sides, which
  ``include_background=False`` drops (the preparation is inside its timing). It computes the
  mIoU pooled over (image, class) pairs, which visionbench reports as ``mIoU_per_image`` with
  ``per_image_average="pair"``: those two numbers are compared (torchmetrics uses float32);
* scikit-learn ``confusion_matrix(labels=range(21))`` on the flattened counted pixels, and the
  IoU from its matrix: compared with visionbench's dataset mIoU (``==``) and matrix.

Target (issue): visionbench >= 5x faster than torchmetrics, identical numbers. Threads: 1 by
default for everyone (visionbench's kernel is single-threaded; on the shared 2-core machine
torch's OpenMP pool is erratic under load); ``--threads N`` to change.
Run: ``.venv/bin/python benchmarks/segmentation_metrics.py``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from visionbench.metrics.segmentation import SegmentationAccumulator

N, SIZE, K, IGNORE, BATCH = 200, 512, 21, 255, 4
GRID = 16  # blocks per side; a block is SIZE // GRID = 32 pixels


def make_dataset(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(preds, target)``, uint8 ``[N, SIZE, SIZE]``; see the module docstring."""
    g = torch.Generator().manual_seed(seed)
    scale = SIZE // GRID
    preds = torch.empty(N, SIZE, SIZE, dtype=torch.uint8)
    target = torch.empty(N, SIZE, SIZE, dtype=torch.uint8)
    for i in range(N):
        classes = torch.randperm(K, generator=g)[: int(torch.randint(2, 8, (1,), generator=g))]
        grid = classes[torch.randint(0, len(classes), (GRID, GRID), generator=g)]  # (16, 16)
        # A tenth of the blocks wrong: another class of the image or one of two confusers.
        pool = torch.cat([classes, torch.randint(0, K, (2,), generator=g)])
        wrong = torch.rand(GRID, GRID, generator=g) < 0.1
        pred_grid = torch.where(wrong, pool[torch.randint(0, len(pool), (GRID, GRID), generator=g)], grid)
        t = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)  # (SIZE, SIZE)
        p = pred_grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
        noise = torch.rand(SIZE, SIZE, generator=g) < 0.03  # confusions among the image's classes
        p = torch.where(noise, classes[torch.randint(0, len(classes), (SIZE, SIZE), generator=g)], p)
        edge = torch.zeros(SIZE, SIZE, dtype=torch.bool)  # 1-pixel void line where the region changes
        edge[:, 1:] |= t[:, 1:] != t[:, :-1]
        edge[1:, :] |= t[1:, :] != t[:-1, :]
        target[i], preds[i] = torch.where(edge, IGNORE, t), p
    return preds, target


def batches(preds: torch.Tensor, target: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, N, BATCH):
        yield preds[start : start + BATCH], target[start : start + BATCH]


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` runs (after one warm-up run when ``repeats > 1``)."""
    result = fn() if repeats > 1 else None
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def ours(preds: torch.Tensor, target: torch.Tensor, *, as_int64: bool) -> dict:
    accumulator = SegmentationAccumulator(K, ignore_index=IGNORE, per_image_average="pair")
    for p, t in batches(preds, target):
        if as_int64:
            p, t = p.long(), t.long()
        accumulator.update(p, t)
    return accumulator.compute()


def torchmetrics_mean_iou(preds: torch.Tensor, target: torch.Tensor) -> float:
    from torchmetrics.segmentation import MeanIoU

    metric = MeanIoU(num_classes=K + 1, include_background=False, per_class=False, input_format="index")
    for p, t in batches(preds, target):
        void = t == IGNORE
        metric.update(torch.where(void, 0, p.long() + 1), torch.where(void, 0, t.long() + 1))
    return float(metric.compute())


def sklearn_mean_iou(preds: torch.Tensor, target: torch.Tensor) -> tuple[np.ndarray, float]:
    from sklearn.metrics import confusion_matrix

    t, p = target.numpy().reshape(-1), preds.numpy().reshape(-1)
    keep = t != IGNORE
    cm = confusion_matrix(t[keep], p[keep], labels=np.arange(K))
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    present = support + predicted > 0
    iou = tp[present] / (support + predicted - tp)[present]
    return cm, float(np.mean(iou))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every contender")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preds, target = make_dataset()
    void = float((target == IGNORE).double().mean())
    print(f"{N} images {SIZE}x{SIZE}, {K} classes, batches of {BATCH}, {void:.1%} void pixels, "
          f"{args.threads} torch thread(s)")

    t_ours, result = timed(lambda: ours(preds, target, as_int64=False), repeats=3)
    t_ours64, result64 = timed(lambda: ours(preds, target, as_int64=True), repeats=3)
    accumulator = SegmentationAccumulator(K, per_image_average="pair")
    for p, t in batches(preds, target):
        accumulator.update(p, t)
    t_boot, _ = timed(lambda: accumulator.intervals(resamples=1000, seed=0), repeats=3)
    t_sk, (cm_sk, miou_sk) = timed(lambda: sklearn_mean_iou(preds, target), repeats=1)
    torchmetrics_mean_iou(preds[:BATCH], target[:BATCH])  # warm-up: imports, first allocation
    t_tm, miou_tm = timed(lambda: torchmetrics_mean_iou(preds, target), repeats=1)

    same_matrix = np.array_equal(np.array(result["confusion_matrix"]), cm_sk) and result == result64
    print(f"  visionbench, uint8 masks       {t_ours:8.3f} s   (all metrics + per-image mIoU)")
    print(f"  visionbench, int64 masks       {t_ours64:8.3f} s   (incl. .long() of each batch)")
    print(f"  visionbench 95% intervals      {t_boot:8.3f} s   (1,000 image resamples, all 6 scalars)")
    print(f"  scikit-learn confusion_matrix  {t_sk:8.3f} s   ratio {t_sk / t_ours:7.1f}x")
    print(f"  torchmetrics MeanIoU           {t_tm:8.3f} s   ratio {t_tm / t_ours:7.1f}x (int64 masks: "
          f"{t_tm / t_ours64:.1f}x)")
    print(f"  dataset mIoU: visionbench {result['mIoU']!r}, scikit-learn {miou_sk!r}, identical: "
          f"{result['mIoU'] == miou_sk}; confusion matrices identical: {same_matrix}")
    diff = abs(result["mIoU_per_image"] - miou_tm)
    print(f"  (image, class)-pair mIoU: visionbench {result['mIoU_per_image']!r} (float64), torchmetrics "
          f"{miou_tm!r} (float32); identical: {result['mIoU_per_image'] == miou_tm}, |diff| {diff:.2e}")
    targets = {
        ">= 5x faster than torchmetrics": t_tm / t_ours >= 5,
        "dataset mIoU == scikit-learn": result["mIoU"] == miou_sk and same_matrix,
        "pair mIoU == torchmetrics to float32 rounding (rel 1e-6)": diff <= 1e-6 * abs(miou_tm),
    }
    for name, ok in targets.items():
        print(f"target {name}: {'PASS' if ok else 'FAIL'}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
