"""Batched augmentation (issue 13): each operation against a per-image reference on the same drawn
parameters, the draws' ranges and seeding, and the in-memory presets built on them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from visionbench.data.batch_augment import (
    BatchRecipe,
    CropSource,
    affine_grid,
    affine_theta,
    color_jitter,
    decode_windows,
    draw_affine,
    draw_color_jitter,
    draw_erasing,
    draw_windows,
    erase,
    reflect_pad,
    warp_affine,
    window_count,
)
from visionbench.data.mixing import BatchMix
from visionbench.data.transforms import TransformedDataset, batch_seed, build_preset, seeded_batch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _images(n: int = 10, channels: int = 3, height: int = 9, width: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, height, width), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def _smooth(n: int, channels: int, height: int, width: int) -> torch.Tensor:
    """Float images in [0, 1] without pixel-level noise (resampling them is well conditioned)."""
    small = torch.rand(n, channels, 4, 5, generator=torch.Generator().manual_seed(1))
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)


class _Images(torch.utils.data.Dataset):
    """In-memory uint8 images with labels 0..n-1, as the dataset readers give them."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.labels = images, torch.arange(len(images))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


# ----------------------------------------------------------------------------------- crop and flip


def test_reflect_pad_is_torchvisions_reflect_padding() -> None:
    images = _images()
    expected = torch.stack([TF.pad(image, [2], padding_mode="reflect") for image in images])
    assert torch.equal(reflect_pad(images, 2), expected)
    assert reflect_pad(images, 0) is images
    with pytest.raises(ValueError, match="smaller than the image side"):
        reflect_pad(images, 9)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("padding", "flip"), [(0, True), (1, False), (2, True), (4, True)])
def test_crop_and_flip_pick_each_images_window(channels: int, padding: int, flip: bool) -> None:
    images = _images(channels=channels)
    source = CropSource(images, padding, flip)
    indices = torch.tensor([3, 0, 9, 3, 5, 7, 1, 2])
    codes = draw_windows(len(indices), padding, flip, torch.Generator().manual_seed(padding))
    batch = source.gather(indices, codes)
    assert batch.shape == (8, channels, 9, 12) and batch.dtype == torch.uint8
    corners, flips = decode_windows(codes, padding)
    padded = reflect_pad(images, padding)
    for b, (index, (y, x), flipped) in enumerate(zip(indices.tolist(), corners.tolist(), flips.tolist(), strict=True)):
        window = padded[index, :, y:y + 9, x:x + 12]  # the per-image reference on the same draws
        assert torch.equal(batch[b], window.flip(-1) if flipped else window), b
    assert flips.any() == flip


def test_window_codes_cover_every_crop_and_flip_uniformly() -> None:
    codes = draw_windows(20_000, 2, True, torch.Generator().manual_seed(0))
    assert window_count(2, True) == 50 and window_count(2, False) == 25
    counts = torch.bincount(codes, minlength=50)
    assert counts.min() > 300 and counts.max() < 500  # 400 expected each
    corners, flips = decode_windows(codes, 2)
    assert corners.min() == 0 and corners.max() == 4 and abs(flips.float().mean() - 0.5) < 0.02


def test_gather_without_crop_or_flip_is_the_plain_gather() -> None:
    images = _images()
    recipe = BatchRecipe(degrees=5.0)
    source = recipe.source(images)
    assert source is images
    assert torch.equal(recipe.gather(source, torch.tensor([4, 1])), images[[4, 1]])


# ----------------------------------------------------------------------------------- affine


@pytest.mark.parametrize(("angle", "shift", "scale"), [(0.0, (0.0, 0.0), 1.0), (90.0, (0.0, 0.0), 1.0),
                                                     (10.0, (2.0, -1.0), 1.1), (-7.0, (-3.0, 2.0), 0.9)])
def test_affine_equals_torchvisions_bilinear_affine(angle: float, shift: tuple[float, float], scale: float) -> None:
    images = _smooth(2, 3, 20, 24)  # not square: the rotation must be in pixels, not normalised units
    theta = affine_theta(torch.tensor([angle, angle]), torch.tensor([shift, shift]), torch.tensor([scale, scale]),
                         (20, 24))
    warped = warp_affine(images, theta)
    expected = torch.stack([TF.affine(image, angle=angle, translate=list(shift), scale=scale, shear=[0.0, 0.0],
                                      interpolation=InterpolationMode.BILINEAR) for image in images])
    inside = (slice(None), slice(None), slice(5, -5), slice(5, -5))  # the borders differ in how they fill
    torch.testing.assert_close(warped[inside], expected[inside], atol=1e-5, rtol=0)


def test_nearest_affine_is_torchvisions_nearest_affine_but_for_rounding_ties() -> None:
    images = _smooth(3, 1, 28, 28)
    angles, shifts, scales = draw_affine(3, degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), size=(28, 28),
                                         generator=torch.Generator().manual_seed(5))
    warped = warp_affine(images, affine_theta(angles, shifts, scales, (28, 28)), mode="nearest")
    expected = torch.stack([TF.affine(image, angle=float(a), translate=s.tolist(), scale=float(c), shear=[0.0, 0.0],
                                      interpolation=InterpolationMode.NEAREST)
                            for image, a, s, c in zip(images, angles, shifts, scales, strict=True)])
    assert (warped != expected).float().mean() < 0.01


def test_affine_grid_is_torchs() -> None:
    theta = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(affine_grid(theta, (7, 9)), F.affine_grid(theta, [4, 1, 7, 9], align_corners=False))


def test_an_integer_shift_moves_pixels_and_fills_zeros() -> None:
    images = _smooth(1, 1, 8, 8)
    theta = affine_theta(torch.tensor([0.0]), torch.tensor([[2.0, 1.0]]), torch.tensor([1.0]), (8, 8))
    warped = warp_affine(images, theta)
    torch.testing.assert_close(warped[..., 1:, 2:], images[..., :-1, :-2], atol=1e-6, rtol=0)
    assert warped[..., 0, :].abs().max() == 0 and warped[..., :, :2].abs().max() == 0


def test_affine_draws_stay_in_their_ranges() -> None:
    angles, shifts, scales = draw_affine(5000, degrees=10, translate=(0.1, 0.2), scale=(0.9, 1.1), size=(20, 30),
                                         generator=torch.Generator().manual_seed(0))
    assert angles.abs().max() <= 10 and angles.abs().max() > 9.9
    assert shifts[:, 0].abs().max() == 3 and shifts[:, 1].abs().max() == 4  # 0.1 * 30 and 0.2 * 20 px, whole pixels
    assert torch.equal(shifts, shifts.round())
    assert 0.9 <= scales.min() and scales.max() <= 1.1


# ----------------------------------------------------------------------------------- colour


@pytest.mark.parametrize("channels", [1, 3])
def test_color_jitter_equals_torchvisions_adjustments(channels: int) -> None:
    images = torch.rand(6, channels, 7, 9, generator=torch.Generator().manual_seed(2))
    factors = draw_color_jitter(6, brightness=0.4, contrast=0.4, saturation=0.4, generator=torch.Generator().manual_seed(3))
    assert ((0.6 <= factors) & (factors <= 1.4)).all()
    jittered = color_jitter(images, factors)
    expected = []
    for image, (brightness, contrast, saturation) in zip(images, factors.tolist(), strict=True):
        image = TF.adjust_contrast(TF.adjust_brightness(image, brightness), contrast)
        expected.append(TF.adjust_saturation(image, saturation) if channels == 3 else image)
    torch.testing.assert_close(jittered, torch.stack(expected), atol=1e-6, rtol=0)
    assert 0 <= jittered.min() and jittered.max() <= 1
    torch.testing.assert_close(color_jitter(images, torch.ones(6, 3)), images)


# ----------------------------------------------------------------------------------- erasing


def test_erasing_blanks_exactly_each_images_rectangle() -> None:
    images = torch.rand(64, 2, 12, 10) + 1  # no zero anywhere
    boxes = draw_erasing(64, (12, 10), p=0.5, generator=torch.Generator().manual_seed(0))
    erased = erase(images, boxes, 0.0)
    for image, (y1, y2, x1, x2) in zip(erased, boxes.tolist(), strict=True):
        assert 0 <= y1 <= y2 <= 12 and 0 <= x1 <= x2 <= 10
        expected = torch.zeros(12, 10, dtype=torch.bool)
        expected[y1:y2, x1:x2] = True
        assert torch.equal(image == 0, expected.expand(2, -1, -1))
    applied = (boxes[:, 1] > boxes[:, 0]).float().mean()
    assert 0.3 < applied < 0.7
    areas = ((boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2]))[boxes[:, 1] > boxes[:, 0]] / 120
    assert areas.min() >= 0.01 and areas.max() <= 0.5  # 0.02-0.33 of the image, after rounding to pixels
    assert not draw_erasing(16, (12, 10), p=0.0).any()


def test_batch_mix_erases_the_drawn_rectangles() -> None:
    images, labels = torch.rand(8, 3, 6, 6) + 1, torch.arange(8) % 4
    with seeded_batch(0, 1, 2, stream=1):
        erased, same = BatchMix(4, erase_p=1.0)(images, labels)
    with seeded_batch(0, 1, 2, stream=1):
        boxes = draw_erasing(8, (6, 6), p=1.0)
    assert same is labels and torch.equal(erased, erase(images, boxes, 0.0))


# ----------------------------------------------------------------------------------- presets and seeding


def test_light_and_standard_are_batched_for_in_memory_images_of_the_model_size() -> None:
    common = {"mean": [0.5], "std": [0.25]}
    standard = build_preset("standard", train=True, image_size=(32, 32), native_size=(32, 32), **common)
    assert standard.sample is None and standard.augment == BatchRecipe(padding=4, flip=True)
    light = build_preset("light", train=True, image_size=(28, 28), native_size=(28, 28), **common)
    assert light.sample is None and light.augment is not None and light.augment.warps
    # Per sample: images to resize, folders, policies, and crops of images above 64 px.
    assert build_preset("light", train=True, image_size=(32, 32), native_size=(28, 28), **common).augment is None
    assert build_preset("standard", train=True, image_size=(64, 64), native_size=None, **common).augment is None
    assert build_preset("randaugment", train=True, image_size=(32, 32), native_size=(32, 32), **common).augment is None
    assert build_preset("standard", train=True, image_size=(96, 96), native_size=(96, 96), **common).augment is None
    assert build_preset("standard", train=False, image_size=(32, 32), native_size=(32, 32), **common).augment is None


@pytest.mark.parametrize("augment", ["standard", "light"])
def test_in_memory_batches_are_seeded_by_their_position(augment: str) -> None:
    images = _images(40, 3, 16, 16)
    preset = build_preset(augment, train=True, image_size=(16, 16), native_size=(16, 16), mean=[0.5] * 3, std=[0.25] * 3)
    dataset = TransformedDataset(_Images(images), preset, seed=7, mix=BatchMix(40, mixup_alpha=0.2, erase_p=0.5))
    key = (2, 3, list(range(0, 40, 2)))
    first, again = dataset[key], dataset[key]
    assert first[0].shape == (20, 3, 16, 16) and first[0].dtype == torch.float32 and first[1].shape == (20, 40)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], dataset[(2, 4, key[2])][0])  # another batch: other draws
    assert not torch.equal(first[0], dataset[(3, 3, key[2])][0])  # another epoch too


def test_standard_batch_is_the_reference_crop_flip_and_normalisation() -> None:
    images = _images(12, 3, 8, 8)
    preset = build_preset("standard", train=True, image_size=(8, 8), native_size=(8, 8), mean=[0.5] * 3, std=[0.25] * 3)
    dataset = TransformedDataset(_Images(images), preset, seed=3)
    indices = [5, 2, 11, 0, 7]
    batch, labels = dataset[(1, 4, indices)]
    codes = draw_windows(5, 1, True, torch.Generator().manual_seed(batch_seed(3, 1, 4)))  # the batch's own draws
    corners, flips = decode_windows(codes, 1)
    padded = reflect_pad(images, 1)
    normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.25] * 3)])
    for b, index in enumerate(indices):
        y, x = corners[b].tolist()
        window = padded[index, :, y:y + 8, x:x + 8]
        expected = normalize((window.flip(-1) if flips[b] else window)[None])[0]
        assert torch.equal(batch[b], expected)
    assert torch.equal(labels, torch.tensor(indices))


def test_loading_and_finishing_in_two_places_gives_the_same_batch() -> None:
    images = _images(20, 1, 10, 10)
    preset = build_preset("light", train=True, image_size=(10, 10), native_size=(10, 10), mean=[0.5], std=[0.25])
    dataset = TransformedDataset(_Images(images), preset, seed=1, mix=BatchMix(20, cutmix_alpha=1.0))
    key = (0, 5, [3, 1, 4, 1, 5, 9, 2, 6])
    raw = dataset.load(key)
    assert raw.images.dtype == torch.uint8 and (raw.epoch, raw.batch_number) == (0, 5)
    whole = dataset[key]
    staged = dataset.finish(raw, torch.device("cpu"))
    assert torch.equal(whole[0], staged[0]) and torch.equal(whole[1], staged[1])
    before = torch.get_rng_state()
    dataset[key]
    assert torch.equal(torch.get_rng_state(), before), "a batch must leave the global RNG as it was"


# ----------------------------------------------------------------------------------- CUDA


@CUDA
def test_cuda_crops_flips_and_batches_equal_the_cpus() -> None:
    images = _images(30, 3, 16, 16)
    indices = torch.randperm(30)[:12]
    codes = draw_windows(12, 2, True, torch.Generator().manual_seed(0))
    cpu = CropSource(images, 2, True)
    gpu = cpu.to(torch.device("cuda"))
    assert torch.equal(gpu.gather(indices.cuda(), codes.cuda()).cpu(), cpu.gather(indices, codes))
    preset = build_preset("standard", train=True, image_size=(16, 16), native_size=(16, 16), mean=[0.5] * 3,
                          std=[0.25] * 3)
    on_cpu = TransformedDataset(_Images(images), preset, seed=2, mix=BatchMix(30, mixup_alpha=0.2, erase_p=0.5))
    on_gpu = TransformedDataset(_Images(images), preset, seed=2, mix=BatchMix(30, mixup_alpha=0.2, erase_p=0.5))
    on_gpu.to_device(torch.device("cuda"))
    key = (1, 2, indices.tolist())
    expected, got = on_cpu[key], on_gpu[key]
    assert got[0].is_cuda and got[1].is_cuda
    torch.testing.assert_close(got[0].cpu(), expected[0], atol=1e-6, rtol=0)  # the same draws, made on the CPU
    torch.testing.assert_close(got[1].cpu(), expected[1])


@CUDA
def test_cuda_affine_colour_and_erasing_match_the_cpu() -> None:
    images = _smooth(6, 3, 12, 14)
    angles, shifts, scales = draw_affine(6, degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), size=(12, 14),
                                         generator=torch.Generator().manual_seed(0))
    theta = affine_theta(angles, shifts, scales, (12, 14))
    torch.testing.assert_close(warp_affine(images.cuda(), theta).cpu(), warp_affine(images, theta), atol=1e-5, rtol=0)
    factors = draw_color_jitter(6, brightness=0.3, contrast=0.3, saturation=0.3)
    torch.testing.assert_close(color_jitter(images.cuda(), factors).cpu(), color_jitter(images, factors),
                               atol=1e-5, rtol=0)
    boxes = draw_erasing(6, (12, 14), p=1.0)
    assert torch.equal(erase(images.cuda(), boxes, 0.0).cpu(), erase(images, boxes, 0.0))
