"""Detection and segmentation presets: boxes and masks move with their image, degenerate boxes are
removed and counted, padding is ignore_index, and each batch is a pure function of (seed, epoch,
batch number)."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from visionbench.data.shapes import ShapesDetection, ShapesSegmentation, split_seeds
from visionbench.data.task_transforms import (
    MIN_BOX_SIDE,
    DetectionBatches,
    InMemory,
    SegmentationBatches,
    detection_transform,
    resolve_task_augment,
    segmentation_transform,
)


@pytest.fixture(scope="module")
def detection() -> InMemory:
    return InMemory(ShapesDetection(split_seeds("val", 24), size=64))


@pytest.fixture(scope="module")
def segmentation() -> InMemory:
    return InMemory(ShapesSegmentation(split_seeds("val", 12), size=64))


def test_in_memory_keeps_samples_exactly(detection: InMemory) -> None:
    source = ShapesDetection(split_seeds("val", 24), size=64)
    for i in (0, 5, 23):
        image, target = detection[i]
        expected_image, expected = source[i]
        assert torch.equal(image, expected_image) and torch.equal(target["boxes"], expected["boxes"])
        assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].canvas_size == (64, 64)
        assert torch.equal(target["labels"], expected["labels"]) and "masks" not in target


def test_flip_preset_moves_boxes_with_the_image(detection: InMemory) -> None:
    batches = DetectionBatches(detection, detection_transform("flip", train=True, image_size=None), seed=1, train=True)
    batch = batches[(0, 0, list(range(24)))]
    assert batch.dropped_boxes == 0  # flips never lose a box
    for index, image, target in zip(batch.indices, batch.images, batch.targets, strict=True):
        raw_image, raw = detection[index]
        # Each output is the raw image under one of the four flips; its boxes under the same flip.
        for h in (False, True):
            for v in (False, True):
                flipped = raw_image.as_subclass(torch.Tensor)
                boxes = raw["boxes"].as_subclass(torch.Tensor).clone()
                if h:
                    flipped, boxes[:, [0, 2]] = flipped.flip(-1), 64 - boxes[:, [2, 0]]
                if v:
                    flipped, boxes[:, [1, 3]] = flipped.flip(-2), 64 - boxes[:, [3, 1]]
                if torch.equal((image * 255).round().to(torch.uint8), flipped):
                    assert torch.equal(target["boxes"], boxes.float())
                    break
            else:
                continue
            break
        else:
            pytest.fail(f"image {index} is not a flip of its source")


def test_standard_preset_clamps_drops_and_counts_boxes(detection: InMemory) -> None:
    transform = detection_transform("standard", train=True, image_size=None, crop_size=(64, 64))
    batches = DetectionBatches(detection, transform, seed=0, train=True)
    dropped = 0
    for batch_number in range(6):
        batch = batches[(0, batch_number, list(range(24)))]
        dropped += batch.dropped_boxes
        before = sum(len(detection[i][1]["boxes"]) for i in batch.indices)
        after = sum(len(t["boxes"]) for t in batch.targets)
        assert before - after == batch.dropped_boxes
        for image, target in zip(batch.images, batch.targets, strict=True):
            assert image.shape == (3, 64, 64) and image.dtype == torch.float32
            boxes = target["boxes"]
            assert len(boxes) == len(target["labels"])
            assert (boxes >= 0).all() and (boxes <= 64).all()
            assert ((boxes[:, 2:] - boxes[:, :2]) >= MIN_BOX_SIDE).all()
    assert dropped > 0  # scale jitter + crop does cut some boxes out


def test_batches_are_a_pure_function_of_seed_epoch_and_batch(detection: InMemory) -> None:
    transform = detection_transform("standard", train=True, image_size=None, crop_size=(64, 64))
    a = DetectionBatches(detection, transform, seed=3, train=True)[(2, 1, [4, 5, 6])]
    torch.manual_seed(1234)  # the global RNG must not matter
    b = DetectionBatches(detection, transform, seed=3, train=True)[(2, 1, [4, 5, 6])]
    c = DetectionBatches(detection, transform, seed=3, train=True)[(2, 2, [4, 5, 6])]
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.images, c.images, strict=True))


def test_segmentation_standard_preset_keeps_masks_aligned_and_pads_with_ignore(segmentation: InMemory) -> None:
    transform = segmentation_transform("standard", train=True, image_size=None, ignore_index=255, crop_size=(64, 64))
    batches = SegmentationBatches(segmentation, transform, mean=(0.0,) * 3, std=(1.0,) * 3, seed=0)
    seen_ignore = False
    for batch_number in range(4):
        batch = batches[(0, batch_number, list(range(12)))]
        assert batch.images.shape == (12, 3, 64, 64) and batch.masks.shape == (12, 64, 64)
        values = set(batch.masks.unique().tolist())
        assert values <= {0, 1, 2, 3, 255}  # nearest interpolation: no blended class values
        seen_ignore |= 255 in values
    assert seen_ignore  # zoomed-out images are padded, and the padding is ignored


def test_eval_batches_keep_stored_masks_when_resizing(segmentation: InMemory) -> None:
    transform = segmentation_transform("none", train=False, image_size=(32, 32), ignore_index=255)
    batch = SegmentationBatches(segmentation, transform, mean=(0.5,) * 3, std=(0.25,) * 3, seed=0,
                                keep_masks=True)[(0, 0, [0, 1])]
    assert batch.images.shape == (2, 3, 32, 32)
    assert isinstance(batch.masks, list) and batch.masks[0].shape == (64, 64)
    assert torch.equal(batch.masks[1], segmentation[1][1].as_subclass(torch.Tensor))


def test_augment_names() -> None:
    assert resolve_task_augment("auto") == "flip"
    with pytest.raises(ValueError, match="augment must be one of"):
        resolve_task_augment("light")
    with pytest.raises(ValueError, match="--image-size"):
        detection_transform("standard", train=True, image_size=None)
