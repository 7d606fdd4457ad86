"""Benchmark: COCO bbox evaluation of 5,000 images, 80 classes, ~7 GT boxes and 100 detections each.

Seeded synthetic data (written once as COCO JSON files): each ground-truth box gets 0-2 jittered
copies (10% with a wrong class), and false positives fill each image up to 100 detections, their
classes drawn from the image's ground-truth classes plus 10 random ones (as a detector spreads
its top 100 over a few classes); 1% of GT are crowd; GT ``area`` differs from the box area, as
COCO's segment areas do. Scores and boxes are rounded to 4 and 2 decimals (ties).

Each tool runs in its own child process (so each peak RSS, ``resource.getrusage``, is its own):
it loads both files with its own loader (not timed), then times what it does for the evaluation:

* pycocotools: ``COCOeval.evaluate()`` + ``accumulate()``;
* faster-coco-eval: ``COCOeval_faster.evaluate()`` + ``accumulate()``;
* visionbench: ``evaluate_coco(gt, results).compute()`` (matching + accumulation, every output);
* visionbench, tensors: ``DetectionEvaluator.update`` with per-image torchvision-style dicts of
  tensors (boxes kept XYWH, as in the files, so the check can be ``==``) in batches of 8 images,
  then ``compute()`` (the streaming path of an evaluation loop).

The parent asserts that visionbench's 12 stats and full precision/recall arrays equal
pycocotools' exactly and faster-coco-eval's within 1e-12, and prints times, ratios and peak RSS.
torchmetrics' ``MeanAveragePrecision`` is not timed (it calls pycocotools or faster-coco-eval).

Target (detection issue): identical numbers, >= 2x faster than faster-coco-eval and >= 25x
faster than pycocotools, peak memory below faster-coco-eval's.
Run: ``.venv/bin/python benchmarks/coco_eval.py [--images 5000]`` (pycocotools takes about a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOOLS = ("pycocotools", "faster-coco-eval", "visionbench", "visionbench-tensors")
STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def make_data(seed: int = 0, n_images: int = 5000, n_classes: int = 80, gt_per_image: int = 7,
              dets_per_image: int = 100) -> tuple[dict, list[dict]]:
    """Seeded COCO ground truth (dict) and results (list), as described in the module docstring."""
    rng = np.random.default_rng(seed)
    cat_ids = np.arange(1, n_classes + 1)
    anns, results = [], []
    for img in range(1, n_images + 1):
        g = int(rng.poisson(gt_per_image))
        xy = rng.random((g, 2)) * [560, 400]  # (g, 2) top-left corners in a 640x480 image
        wh = np.minimum(np.exp(rng.uniform(np.log(8), np.log(300), (g, 2))), [640, 480] - xy)
        cls = rng.choice(cat_ids[: n_classes * 3 // 4], g)  # a quarter of the classes never has GT
        crowd = rng.random(g) < 0.01
        for j in range(g):
            x, y, w, h = float(xy[j, 0]), float(xy[j, 1]), float(wh[j, 0]), float(wh[j, 1])
            anns.append({"id": len(anns) + 1, "image_id": img, "category_id": int(cls[j]), "bbox": [x, y, w, h],
                         "area": w * h * float(rng.uniform(0.5, 0.9)), "iscrowd": int(crowd[j])})
        dets = []
        for j in range(g):
            for _ in range(int(rng.integers(0, 3))):
                x, y = xy[j] + rng.normal(0, 0.1, 2) * wh[j]
                w, h = wh[j] * np.exp(rng.normal(0, 0.15, 2))
                c = int(cls[j]) if rng.random() < 0.9 else int(rng.choice(cat_ids))
                dets.append((x, y, w, h, c, rng.beta(4, 2)))
        n_fp = max(0, dets_per_image - len(dets))
        pool = np.unique(np.concatenate([cls, rng.choice(cat_ids, 10)]))
        fxy = rng.random((n_fp, 2)) * [560, 400]
        fwh = np.exp(rng.uniform(np.log(4), np.log(300), (n_fp, 2)))
        fc, fs = rng.choice(pool, n_fp), rng.beta(1.5, 4, n_fp)
        dets += [(fxy[j, 0], fxy[j, 1], fwh[j, 0], fwh[j, 1], int(fc[j]), fs[j]) for j in range(n_fp)]
        for x, y, w, h, c, s in dets[:dets_per_image]:
            results.append({"image_id": img, "category_id": c, "score": round(float(s), 4),
                            "bbox": [round(float(x), 2), round(float(y), 2), round(float(w), 2), round(float(h), 2)]})
    gt = {"images": [{"id": i, "width": 640, "height": 480} for i in range(1, n_images + 1)], "annotations": anns,
          "categories": [{"id": int(c), "name": f"class{c}"} for c in cat_ids]}
    return gt, results


def peak_rss_mb() -> float:
    # VmHWM is this process image's own peak. ru_maxrss is not: after fork+exec it still holds the
    # parent's resident size at the fork, which would inflate every tool's figure alike.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def run_reference(tool: str, gt_path: Path, res_path: Path) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, dict]:
    """pycocotools or faster-coco-eval: load (untimed), then time evaluate + accumulate."""
    if tool == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Eval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as Eval
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        dt = coco.loadRes(str(res_path))
        ev = Eval(coco, dt, "bbox") if tool == "pycocotools" else Eval(coco, dt, "bbox", print_function=print)
        started = time.perf_counter()
        ev.evaluate()
        ev.accumulate()
        seconds = time.perf_counter() - started
        ev.summarize()
    return seconds, np.asarray(ev.stats), ev.eval["precision"], ev.eval["recall"], {}


def run_visionbench(tool: str, gt_path: Path, res_path: Path) -> tuple[float, np.ndarray, np.ndarray, np.ndarray,
                                                                       dict]:
    """visionbench from its loaded arrays (JSON path) or from per-image tensors in batches of 8."""
    import torch

    from visionbench.metrics.detection import (
        DetectionEvaluator,
        evaluate_coco,
        load_coco_ground_truth,
        load_coco_results,
    )

    torch.set_num_threads(2)
    gt = load_coco_ground_truth(gt_path)
    res = load_coco_results(res_path, gt)
    extra = {}
    if tool == "visionbench":
        started = time.perf_counter()
        evaluator = evaluate_coco(gt, res)
        out = evaluator.compute()
        seconds = time.perf_counter() - started
        counts = np.random.default_rng(0).multinomial(gt.image_ids.size, np.full(gt.image_ids.size,
                                                                                 1 / gt.image_ids.size), size=3)
        started = time.perf_counter()
        for row in counts:  # what detection_intervals does per resample
            evaluator.stats(image_weights=row)
        extra["seconds_per_resample"] = (time.perf_counter() - started) / len(counts)
    else:
        order_g, order_p = np.argsort(gt.image_id, kind="stable"), np.argsort(res.image_id, kind="stable")
        bounds_g = np.searchsorted(gt.image_id[order_g], gt.image_ids, side="left"), np.searchsorted(
            gt.image_id[order_g], gt.image_ids, side="right")
        bounds_p = np.searchsorted(res.image_id[order_p], gt.image_ids, side="left"), np.searchsorted(
            res.image_id[order_p], gt.image_ids, side="right")
        preds, targets = [], []
        for i, image_id in enumerate(gt.image_ids.tolist()):
            g, p = order_g[bounds_g[0][i]:bounds_g[1][i]], order_p[bounds_p[0][i]:bounds_p[1][i]]
            gb, pb = torch.from_numpy(gt.bbox[g]), torch.from_numpy(res.bbox[p])
            preds.append({"boxes": pb, "scores": torch.from_numpy(res.score[p]), "labels": torch.from_numpy(
                res.category_id[p])})
            targets.append({"boxes": gb, "labels": torch.from_numpy(
                gt.category_id[g]), "iscrowd": torch.from_numpy(gt.iscrowd[g]), "area": torch.from_numpy(
                gt.area[g]), "image_id": image_id})
        # XYWH as in the files: converting to XYXY and back could move w by an ulp, and the check is ==
        evaluator = DetectionEvaluator(box_format="xywh", class_ids=gt.category_ids.tolist())
        started = time.perf_counter()
        for start in range(0, len(preds), 8):
            evaluator.update(preds[start:start + 8], targets[start:start + 8])
        out = evaluator.compute()
        seconds = time.perf_counter() - started
    return seconds, np.array([out[n] for n in STATS]), out["precision"], out["recall"], extra


def child(tool: str, folder: Path) -> None:
    runner = run_reference if tool in ("pycocotools", "faster-coco-eval") else run_visionbench
    seconds, stats, precision, recall, extra = runner(tool, folder / "gt.json", folder / "results.json")
    np.save(folder / f"{tool}-precision.npy", precision)
    np.save(folder / f"{tool}-recall.npy", recall)
    print(json.dumps({"seconds": seconds, "stats": stats.tolist(), "peak_rss_mb": peak_rss_mb(), **extra}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--child", choices=TOOLS)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gt, results = make_data(n_images=args.images)
        (folder / "gt.json").write_text(json.dumps(gt))
        (folder / "results.json").write_text(json.dumps(results))
        print(f"{args.images:,} images, {len(gt['categories'])} classes, {len(gt['annotations']):,} GT boxes, "
              f"{len(results):,} detections")
        del gt, results
        runs = {}
        for tool in TOOLS:
            done = subprocess.run([sys.executable, __file__, "--child", tool, "--dir", str(folder)], check=True,
                                  capture_output=True, text=True)
            runs[tool] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{tool:>20}: {runs[tool]['seconds']:8.2f} s   peak RSS {runs[tool]['peak_rss_mb']:7.0f} MiB",
                  flush=True)
        ref = {name: np.load(folder / f"pycocotools-{name}.npy") for name in ("precision", "recall")}
        fast = {name: np.load(folder / f"faster-coco-eval-{name}.npy") for name in ("precision", "recall")}
        for tool in ("visionbench", "visionbench-tensors"):
            assert runs[tool]["stats"] == runs["pycocotools"]["stats"], (tool, runs[tool]["stats"])
            for name in ("precision", "recall"):
                ours = np.load(folder / f"{tool}-{name}.npy")
                assert np.array_equal(ours, ref[name]), (tool, name)
                np.testing.assert_allclose(ours, fast[name], rtol=0, atol=1e-12)
        print("visionbench's 12 stats and precision/recall arrays == pycocotools' (and faster-coco-eval's to 1e-12)")
        print("stats:", dict(zip(STATS, [round(v, 4) for v in runs["pycocotools"]["stats"]], strict=True)))
        print(f"one bootstrap resample (stats with image weights): {runs['visionbench']['seconds_per_resample']:.2f} s")
        ours = runs["visionbench"]["seconds"]
        for tool in ("pycocotools", "faster-coco-eval"):
            print(f"visionbench is {runs[tool]['seconds'] / ours:5.1f}x faster than {tool} "
                  f"(tensor path: {runs[tool]['seconds'] / runs['visionbench-tensors']['seconds']:5.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
