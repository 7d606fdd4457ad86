"""Benchmark: images per second of the training input pipeline alone, no model (issue 13).

Two datasets, each read through visionbench's own path (``classify.build_data`` and the engine's
``train_loader``), so the figure is what a training epoch waits for:

1. ``cifar``: a synthetic CIFAR-10 in the binary format (random uint8 pixels, ``--cifar-images``
   training records) read by ``--data cifar10:DIR``: in-memory ``uint8 [N, 3, 32, 32]``, the
   default augmentation ``standard`` (padded crop and horizontal flip) against ``none``;
2. ``folder``: a folder of 256x256 JPEGs (``--folder-images``, smooth random colours so they
   decode like photos) at ``--image-size 224``, files decoded by the loader workers, ``standard``
   (random resized crop and flip) against ``none`` (resize and centre crop).

Each figure is the best of ``--repeats`` epochs over the whole training split (batch 64), with the
device synchronised at the end of each epoch. The load average is printed beside it. Target (on
a 2-core CPU): the default augmentation of the in-memory data costs at most 1.5x the time of no
augmentation. Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/loader_throughput.py``
(``--device cuda`` on a GPU; ``--only cifar`` for a part).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from visionbench.config import ClassifyConfig  # noqa: E402
from visionbench.engine import classify  # noqa: E402
from visionbench.engine.batches import loader_batches  # noqa: E402
from visionbench.engine.loaders import train_loader  # noqa: E402
from visionbench.engine.runtime import Runtime  # noqa: E402

BATCH = 64
TARGET_RATIO = 1.5


def load() -> str:
    """The 1-minute load average, for printing beside a figure."""
    return f"{os.getloadavg()[0]:.2f}"


def write_cifar(directory: Path, train_images: int) -> None:
    """A synthetic CIFAR-10 binary version: five train batches of ``train_images / 5`` records and
    a small test batch (1 label byte then 3072 channel-major pixel bytes each)."""
    rng = np.random.default_rng(0)
    per_batch = max(1, train_images // 5)
    for name, count in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", 100)]:
        records = rng.integers(0, 256, size=(count, 1 + 3072), dtype=np.uint8)
        records[:, 0] = np.arange(count) % 10
        (directory / f"{name}.bin").write_bytes(records.tobytes())


def write_folder(directory: Path, images: int, side: int = 256) -> None:
    """``images`` JPEGs of ``side`` px in two class folders: smooth random colour fields (a
    bilinear upsampling of 8x8 noise), which compress and decode like photographs."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(images):
        folder = directory / f"class{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        small = torch.from_numpy(rng.random((1, 3, 8, 8), dtype=np.float32))
        field = torch.nn.functional.interpolate(small, size=(side, side), mode="bilinear", align_corners=False)
        pixels = (field[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.jpg", quality=90)


def epoch_seconds(config: ClassifyConfig, runtime: Runtime, repeats: int) -> tuple[float, int]:
    """Best wall seconds of one pass over the training split through the engine's train loader,
    and the number of images it yields."""
    bundle = classify.build_data(config)
    best, images = float("inf"), 0
    for epoch in range(repeats + 1):  # the first pass warms up (page cache, worker start, allocator)
        started = time.perf_counter()
        images = 0
        with loader_batches(train_loader(bundle, config, runtime, epoch=epoch, start_batch=0)) as batches:
            for batch in batches:
                inputs = batch[0].to(runtime.device, non_blocking=True)
                images += len(inputs)
        if runtime.device.type == "cuda":
            torch.cuda.synchronize(runtime.device)
        if epoch:
            best = min(best, time.perf_counter() - started)
    return best, images


def compare(name: str, config: ClassifyConfig, runtime: Runtime, repeats: int, *, target: bool) -> bool:
    """Print img/s of ``standard`` and ``none`` and their time ratio; whether the target holds
    (always true when ``target`` is off)."""
    seconds = {}
    for augment in ("standard", "none"):
        before = load()
        elapsed, images = epoch_seconds(config.__class__(**{**config.__dict__, "augment": augment}), runtime, repeats)
        seconds[augment] = elapsed
        print(f"  {name:<7} augment={augment:<9} {images / elapsed:9.0f} img/s ({images} images in {elapsed:.3f} s; "
              f"load {before} -> {load()})")
    ratio = seconds["standard"] / seconds["none"]
    met = ratio <= TARGET_RATIO
    verdict = (f"target <= {TARGET_RATIO}x: {'PASS' if met else 'FAIL'}" if target else "(no target)")
    print(f"  {name:<7} time ratio standard / none = {ratio:.2f}x  {verdict}")
    return met or not target


def main() -> None:
    """Parse the options, run the two comparisons, exit 1 when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--cifar-images", type=int, default=50_000, help="training records of the synthetic CIFAR")
    parser.add_argument("--folder-images", type=int, default=384, help="JPEGs of the 224-px folder")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per figure (the best is kept)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: the engine's choice)")
    parser.add_argument("--only", choices=("cifar", "folder"), default=None, help="run one dataset only")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    runtime = Runtime(device=torch.device(args.device), workers=args.workers, quiet=True)
    print(f"train loader alone, batch {BATCH}, device {runtime.device}, {torch.get_num_threads()} thread(s), "
          f"{os.cpu_count()} CPUs, load average {load()}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "cifar"):
            cifar = Path(tmp) / "cifar"
            cifar.mkdir()
            write_cifar(cifar, args.cifar_images)
            config = ClassifyConfig(data=f"cifar10:{cifar}", batch_size=BATCH, val_fraction=0.1)
            ok &= compare("cifar", config, runtime, args.repeats, target=True)
        if args.only in (None, "folder"):
            folder = Path(tmp) / "folder"
            write_folder(folder, args.folder_images)
            config = ClassifyConfig(data=f"folder:{folder}", batch_size=BATCH, image_size=224, val_fraction=0.1,
                                    test_fraction=0.1)
            ok &= compare("folder", config, runtime, args.repeats, target=False)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
