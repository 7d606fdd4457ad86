"""Benchmark: visionbench's training epoch against a plain hand-written loop (issue 13).

For each case, the same model, batch size, optimizer (AdamW, fused), loss, mixed precision (on
CUDA) and augmentation run twice over the same images:

* ``visionbench``: the engine's own epoch (``engine.train.train_epoch``: its loader, its batched or
  per-sample augmentation, the step with its loss tally and checks);
* ``plain``: a loop written by hand with the images resident on the device as uint8 and the
  augmentation done on the batch there (the same batched functions for the classifiers; batched
  flips of images, boxes and masks for the detector and the segmenter).

Cases: ``resnet18`` at 32 px (synthetic CIFAR-size in-memory data, augment ``standard``: padded
crop and flip), ``resnet50`` (224 px on CUDA, 64 px on the CPU; synthetic in-memory data, augment
``light``: the batched affine), the ``shapes`` detector (``tiny_fcos``, flips) and segmenter
(``unet_small``, flips). Each figure is the fastest of 3 timed epochs after an untimed one; it prints
images per second and the ratio visionbench / plain (goal >= 0.9). On the CPU the sizes are small,
so the run ends in a few minutes; ``--device cuda`` uses the full sizes.
Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gpu_training.py [--device cuda] [--only resnet18]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from visionbench.config import ClassifyConfig, DetectConfig, SegmentConfig  # noqa: E402
from visionbench.data import ClassificationData  # noqa: E402
from visionbench.data._base import TensorImageDataset  # noqa: E402
from visionbench.data.batch_augment import BatchRecipe  # noqa: E402
from visionbench.data.shapes import load_shapes  # noqa: E402
from visionbench.data.task_transforms import (  # noqa: E402
    DetectionBatches,
    InMemory,
    SegmentationBatches,
    detection_transform,
    segmentation_transform,
)
from visionbench.engine import classify  # noqa: E402
from visionbench.engine.loaders import DataBundle  # noqa: E402
from visionbench.engine.runtime import Runtime, autocast_dtype  # noqa: E402
from visionbench.engine.train import Progress, build_trainer, train_epoch  # noqa: E402
from visionbench.losses import create_loss, create_segmentation_loss  # noqa: E402

GOAL = 0.9
# (images, batch size, side) per case: the CPU sizes keep the whole script to a few minutes.
SIZES = {
    "cpu": {"resnet18": (1024, 64, 32), "resnet50": (128, 16, 64), "detector": (128, 16, 128), "segmenter": (128, 16, 128)},
    "cuda": {"resnet18": (25_000, 256, 32), "resnet50": (4096, 64, 224), "detector": (2000, 32, 128),
             "segmenter": (2000, 16, 128)},
}


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


REPEATS = 3  # timed epochs per figure, the fastest kept (other jobs on the machine only ever slow one down)


def timed(run_epoch: Callable[[int], None], device: torch.device) -> float:
    """Seconds of the fastest of epochs 1..REPEATS of ``run_epoch``, after an untimed epoch 0
    (allocator, autotuner, caches)."""
    run_epoch(0)
    best = float("inf")
    for epoch in range(1, REPEATS + 1):
        synchronize(device)
        started = time.perf_counter()
        run_epoch(epoch)
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best


def visionbench_epoch(config: Any, bundle: DataBundle, device: torch.device) -> Callable[[int], None]:
    """One epoch of the engine's training loop on ``bundle`` (no checkpoint, no validation)."""
    trainer = build_trainer(config, bundle, device)
    runtime = Runtime(device=device, quiet=True)
    run_dir = Path(tempfile.mkdtemp())

    def run(epoch: int) -> None:
        progress = Progress(epoch=epoch)
        train_epoch(trainer, bundle, config, runtime, progress, run_dir, tqdm(disable=True))

    return run


def plain_optimizer(model: torch.nn.Module, config: Any, device: torch.device) -> torch.optim.Optimizer:
    """AdamW at the config's learning rate and weight decay, fused (as a hand-written loop would)."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                             fused=device.type in ("cuda", "cpu"))


def plain_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
               clip: float | None = None) -> None:
    """zero_grad, backward of ``loss``, optional norm clipping, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()


# ----------------------------------------------------------------------------------- classifiers


def synthetic_classification(images: int, side: int) -> ClassificationData:
    """Random uint8 RGB images with 10 classes, held in memory (the size of CIFAR at 32 px)."""
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (images, 3, side, side), dtype=torch.uint8, generator=generator)
    labels = torch.arange(images) % 10
    train = TensorImageDataset(pixels, labels, [str(i) for i in range(images)])
    small = train.subset(list(range(16)))
    return ClassificationData(train=train, val=small, test=small, classes=[str(k) for k in range(10)], in_channels=3,
                              image_size=(side, side), name="synthetic")


def classifier_case(model_name: str, augment: str, images: int, batch: int, side: int, device: torch.device,
                    channels_last: bool) -> tuple[float, float, int]:
    """Seconds of a visionbench epoch and of a plain epoch, and the images in one."""
    config = ClassifyConfig(data="cifar10:synthetic", model=model_name, batch_size=batch, augment=augment, epochs=100,
                            channels_last=channels_last)
    data = synthetic_classification(images, side)
    bundle = classify.build_data(config, data)
    ours = timed(visionbench_epoch(config, bundle, device), device)
    # The plain loop: the same images on the device, the same batched augmentation, the same step.
    torch.manual_seed(0)
    model = build_trainer(config, bundle, device).core
    optimizer = plain_optimizer(model, config, device)
    loss_fn = create_loss("cross_entropy", num_classes=10, label_smoothing=config.label_smoothing)
    recipe = bundle.train.preset.augment or BatchRecipe()
    source = recipe.source(data.train.images)
    source = source.to(device)
    labels = data.train.labels.to(device)
    mean = torch.tensor(bundle.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std, device=device).view(1, -1, 1, 1)
    amp = autocast_dtype(True, device)

    def run(epoch: int) -> None:
        order = torch.randperm(images, generator=torch.Generator().manual_seed(epoch)).to(device)
        for first in range(0, images - batch + 1, batch):
            index = order[first:first + batch]
            uint8 = recipe.gather(source, index)
            floats = recipe.warp(uint8.float().div_(255)) if recipe.warps else uint8.float().div_(255)
            inputs = (floats - mean) / std
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits = model(inputs)
            plain_step(model, optimizer, loss_fn(logits.float(), labels[index]))

    return ours, timed(run, device), images - images % batch


# ----------------------------------------------------------------------------------- shapes


def shapes_bundle(task: str, images: int, config: Any) -> DataBundle:
    """The embedded shapes data, ``images`` training images, held in memory, with the flip preset."""
    data = load_shapes(task=task, num_train=images, num_val=8, num_test=8)
    data = dataclasses.replace(data, train=InMemory(data.train), val=InMemory(data.val), test=InMemory(data.test))
    if task == "detect":
        transform = detection_transform("flip", train=True, image_size=None, crop_size=data.image_size)
        train = DetectionBatches(data.train, transform, seed=config.seed, train=True)
        return DataBundle(data=data, train=train, val=train, test=train, image_size=data.image_size, augment="flip")
    transform = segmentation_transform("flip", train=True, image_size=None, ignore_index=config.ignore_index)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    train = SegmentationBatches(data.train, transform, mean=mean, std=std, seed=config.seed)
    return DataBundle(data=data, train=train, val=train, test=train, image_size=data.image_size, augment="flip",
                      mean=mean, std=std)


def flip_boxes(boxes: torch.Tensor, horizontal: bool, vertical: bool, side: int) -> torch.Tensor:
    """XYXY ``boxes`` of a ``side``-px image after its horizontal and/or vertical flip."""
    x1, y1, x2, y2 = boxes.unbind(1)
    if horizontal:
        x1, x2 = side - x2, side - x1
    if vertical:
        y1, y2 = side - y2, side - y1
    return torch.stack([x1, y1, x2, y2], 1)


def shapes_case(task: str, images: int, batch: int, side: int, device: torch.device) -> tuple[float, float, int]:
    """Seconds of a visionbench epoch and of a plain epoch of the shapes detector or segmenter."""
    config = (DetectConfig if task == "detect" else SegmentConfig)(batch_size=batch, epochs=100, augment="flip")
    bundle = shapes_bundle(task, images, config)
    ours = timed(visionbench_epoch(config, bundle, device), device)
    torch.manual_seed(0)
    trainer = build_trainer(config, bundle, device)
    model, amp = trainer.core, autocast_dtype(True, device)
    optimizer = plain_optimizer(model, config, device)
    pixels = bundle.data.train.images.to(device)
    targets = bundle.data.train.targets
    if task == "detect":
        boxes = [t["boxes"].float().to(device) for t in targets]
        classes = [t["labels"].to(device) for t in targets]
    else:
        masks = torch.stack([t.long() for t in targets]).to(device)
        loss_fn = create_segmentation_loss(config.loss, ignore_index=config.ignore_index).to(device)
        mean = torch.tensor(bundle.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(bundle.std, device=device).view(1, -1, 1, 1)

    def run(epoch: int) -> None:
        generator = torch.Generator().manual_seed(epoch)
        order = torch.randperm(images, generator=generator)
        for first in range(0, images - batch + 1, batch):
            index = order[first:first + batch]
            flips = torch.rand(batch, 2, generator=generator) < 0.5  # horizontal, vertical
            on_device = flips.to(device)
            floats = pixels[index.to(device)].float().div_(255)
            floats = torch.where(on_device[:, 0, None, None, None], floats.flip(-1), floats)
            if task == "detect":
                floats = torch.where(on_device[:, 1, None, None, None], floats.flip(-2), floats)
                batch_targets = [{"boxes": flip_boxes(boxes[i], bool(h), bool(v), side), "labels": classes[i]}
                                 for i, (h, v) in zip(index.tolist(), flips.tolist(), strict=True)]
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    losses = model(list(floats), batch_targets)
                loss = sum(value.float() for value in losses.values())
            else:
                batch_masks = masks[index.to(device)]
                batch_masks = torch.where(on_device[:, 0, None, None], batch_masks.flip(-1), batch_masks)
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    logits = model((floats - mean) / std)
                loss = loss_fn(logits.float(), batch_masks)
            plain_step(model, optimizer, loss, clip=config.clip_grad_norm)

    return ours, timed(run, device), images - images % batch


# ----------------------------------------------------------------------------------- main


def main() -> None:
    """Parse the options, run each case, print img/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--only", default=None, help="comma-separated cases: resnet18, resnet50, detector, segmenter")
    parser.add_argument("--channels-last", action="store_true", help="classifiers in channels-last memory order")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sizes = SIZES["cuda" if device.type == "cuda" else "cpu"]
    cases = args.only.split(",") if args.only else list(sizes)
    print(f"device {device}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.2f}, "
          f"channels_last={args.channels_last}")
    for case in cases:
        images, batch, side = sizes[case]
        if case in ("resnet18", "resnet50"):
            augment = "standard" if case == "resnet18" else "light"
            ours, plain, done = classifier_case(case, augment, images, batch, side, device, args.channels_last)
        else:
            ours, plain, done = shapes_case("detect" if case == "detector" else "segment", images, batch, side, device)
        ratio = plain / ours
        print(f"  {case:<9} {side:>3} px, batch {batch:>3}, {done:>6} images: visionbench {done / ours:8.1f} img/s "
              f"({ours:.2f} s), plain {done / plain:8.1f} img/s ({plain:.2f} s), ratio {ratio:.2f} "
              f"(goal >= {GOAL}: {'met' if ratio >= GOAL else 'MISSED'}; load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
