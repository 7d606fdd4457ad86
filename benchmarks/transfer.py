"""Benchmark: does pretraining on other classes help a few-shot task? Fine-tuning vs from scratch.

On our own embedded data (scikit-learn's digits), written as image folders in a temporary directory:

1. **pretrain** ``cnn-small`` on digits 0–5 (every image of those classes; folder split 70/10/20);
2. **few-shot** task: digits 6–9 with ``--shots`` training images per class, 5 validation images
   per class, and every other image of 6–9 as the test split (the same for every arm);
3. three arms on the few-shot task, same model, epochs, batch size, LR schedule and seeds:
   ``scratch`` (random init), ``finetune`` (``--weights`` = the pretrained ``best.safetensors``: the
   6-class head is replaced by a fresh 4-class one, the rest loaded) and ``probe``
   (``finetune`` with ``--freeze-backbone``: only the new head trains);
4. for each seed, ``visionbench compare`` of finetune vs scratch (and probe vs scratch) on the same test
   images: McNemar's exact test and the paired bootstrap of accuracy.

Run: ``.venv/bin/python benchmarks/transfer.py [--shots 5] [--seeds 3] [--epochs 10] [--backbone-lr-scale 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import visionbench
from visionbench.comparison import compare_runs
from visionbench.data.digits import read_digits

PRETRAIN_CLASSES, FEWSHOT_CLASSES = range(0, 6), range(6, 10)
VAL_PER_CLASS = 5


def _save(image: np.ndarray, path: Path) -> None:
    """One 8×8 digit (0..16) as an 8-bit grayscale PNG (the folder reader makes it RGB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(image * (255 / 16)).astype(np.uint8), mode="L").save(path)


def write_folders(root: Path, shots: int, seed: int = 0) -> tuple[Path, Path]:
    """``root/pretrain/<digit>/`` (digits 0–5) and ``root/fewshot/{train,val,test}/<digit>/`` (6–9)."""
    images, targets = read_digits()
    rng = np.random.default_rng(seed)
    for digit in PRETRAIN_CLASSES:
        for i in np.flatnonzero(targets == digit):
            _save(images[i], root / "pretrain" / str(digit) / f"{i:04d}.png")
    for digit in FEWSHOT_CLASSES:
        order = rng.permutation(np.flatnonzero(targets == digit))
        splits = {"train": order[:shots], "val": order[shots:shots + VAL_PER_CLASS],
                  "test": order[shots + VAL_PER_CLASS:]}
        for split, indices in splits.items():
            for i in indices:
                _save(images[i], root / "fewshot" / split / str(digit) / f"{i:04d}.png")
    return root / "pretrain", root / "fewshot"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=5, help="training images per few-shot class")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of each few-shot arm")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each few-shot run (the budget)")
    parser.add_argument("--pretrain-epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of every few-shot arm")
    parser.add_argument("--backbone-lr-scale", type=float, default=1.0,
                        help="the finetune arm's backbone learning rate is --lr times this")
    args = parser.parse_args()
    common = {"model": "cnn-small", "augment": "light", "quiet": True, "device": "cpu", "threads": 1}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pre_data, few_data = write_folders(root, args.shots)
        started = time.perf_counter()
        pre = visionbench.train(data=f"folder:{pre_data}", epochs=args.pretrain_epochs, out=root / "runs" / "pre",
                                **common)
        print(f"pretrain on digits 0-5: test accuracy {pre.metrics['accuracy']['value']:.4f} "
              f"({time.perf_counter() - started:.0f} s)")
        weights = str(pre.run_dir / "checkpoints" / "best.safetensors")
        arms = {"scratch": {}, "finetune": {"weights": weights, "backbone_lr_scale": args.backbone_lr_scale},
                "probe": {"weights": weights, "freeze_backbone": True}}
        accuracy: dict[str, list[float]] = {arm: [] for arm in arms}
        for seed in range(args.seeds):
            dirs = {}
            for arm, extra in arms.items():
                result = visionbench.train(data=f"folder:{few_data}", epochs=args.epochs, batch_size=8, seed=seed, lr=args.lr,
                                           out=root / "runs" / f"{arm}-{seed}", **common, **extra)
                dirs[arm] = result.run_dir
                accuracy[arm].append(result.metrics["accuracy"]["value"])
            for arm in ("finetune", "probe"):
                comparison = compare_runs([dirs["scratch"], dirs[arm]], resamples=1000, seed=0)
                pair = comparison["pairs"][0]
                boot = pair["metrics"]["accuracy"]
                print(f"seed {seed}: {arm} {accuracy[arm][-1]:.4f} vs scratch {accuracy['scratch'][-1]:.4f} on "
                      f"{comparison['num_samples']} test images; McNemar p = {pair['mcnemar']['p_value']:.3g}; "
                      f"accuracy difference {boot['diff']:+.4f}, 95% CI [{boot['ci95'][0]:+.4f}, {boot['ci95'][1]:+.4f}]")
        for arm, values in accuracy.items():
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            print(f"{arm:>8}: mean test accuracy {statistics.mean(values):.4f} ± {spread:.4f} over {len(values)} seeds "
                  f"({args.shots} shots per class)")
        print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
