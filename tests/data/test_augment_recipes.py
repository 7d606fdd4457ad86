"""Policy recipes (RandAugment, TrivialAugmentWide, AutoAugment), random erasing, MixUp and CutMix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from visionbench import api
from visionbench.config import ClassifyConfig, config_fields, validate
from visionbench.data.mixing import BatchMix, cutmix, cutmix_box, mixup
from visionbench.data.transforms import AUGMENT_CHOICES, TransformedDataset, build_preset, seeded_batch
from visionbench.losses import create_loss
from visionbench.losses.classification import cross_entropy, mae, mse

POLICIES = ("randaugment", "trivialaugment", "autoaugment")


# ----------------------------------------------------------------------------- policy presets


@pytest.mark.parametrize("recipe", POLICIES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("side", [5, 8])
def test_policy_presets_run_on_small_grayscale_and_colour_images(recipe: str, channels: int, side: int) -> None:
    preset = build_preset(recipe, train=True, image_size=(side, side), native_size=(side, side),
                          mean=[0.5] * channels, std=[0.25] * channels)
    assert preset.random and preset.sample is not None and preset.name == recipe
    generator = torch.Generator().manual_seed(channels * side)
    for seed in range(40):  # many draws: every op of the policy gets its turn
        image = torch.randint(0, 256, (channels, side, side), dtype=torch.uint8, generator=generator)
        with seeded_batch(seed, 0, 0):
            out = preset.sample(image)
        assert out.shape == image.shape and out.dtype == torch.uint8
        batch = preset.batch(out[None])
        assert batch.dtype == torch.float32 and torch.isfinite(batch).all()
    # float [0, 1] samples are converted to uint8 for the policy (posterize/equalize need it)
    with seeded_batch(1, 0, 0):
        out = preset.sample(torch.rand(channels, side, side, generator=generator))
    assert out.dtype == torch.uint8 and out.shape == (channels, side, side)


@pytest.mark.parametrize("recipe", POLICIES)
def test_policy_is_train_only_and_seeded_per_batch(recipe: str) -> None:
    common = {"image_size": (8, 8), "native_size": (8, 8), "mean": [0.5], "std": [0.25]}
    assert build_preset(recipe, train=False, **common).sample is None  # eval: nothing random
    preset = build_preset(recipe, train=True, **common)
    base = _TinyImages(torch.randint(0, 256, (12, 1, 8, 8), generator=torch.Generator().manual_seed(0),
                                     dtype=torch.uint8))
    dataset = TransformedDataset(base, preset, seed=7)
    first, again = dataset[(1, 2, list(range(12)))], dataset[(1, 2, list(range(12)))]
    assert torch.equal(first[0], again[0])
    assert not torch.equal(first[0], dataset[(1, 3, list(range(12)))][0])


def test_augment_choices_match_the_config() -> None:
    field = next(f for f in config_fields(ClassifyConfig) if f.name == "augment")
    assert tuple(field.metadata["choices"]) == AUGMENT_CHOICES


# ----------------------------------------------------------------------------- mixing


def _labels(n: int = 6, k: int = 4) -> torch.Tensor:
    return torch.arange(n) % k


def test_mixup_targets_sum_to_one_and_match_lambda() -> None:
    images, labels = torch.randn(6, 1, 8, 8), _labels()
    onehot = F.one_hot(labels, 4).float()
    mixed, targets = mixup(images, onehot, 0.3)
    torch.testing.assert_close(targets.sum(1), torch.ones(6))
    torch.testing.assert_close(targets, 0.3 * onehot + 0.7 * onehot.roll(1, 0))
    torch.testing.assert_close(mixed, 0.3 * images + 0.7 * images.roll(1, 0))


@pytest.mark.parametrize("lam", [0.0, 0.2, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("seed", range(5))
def test_cutmix_lambda_is_the_kept_area(lam: float, seed: int) -> None:
    torch.manual_seed(seed)
    height, width = 7, 10
    images = torch.arange(6.0)[:, None, None, None].expand(6, 2, height, width).contiguous()  # image i is all i
    onehot = F.one_hot(_labels(), 4).float()
    mixed, targets, kept = cutmix(images, onehot, lam)
    pasted = (mixed != images).float()[:, 0].mean(dim=(1, 2))  # share of each image from its neighbour
    torch.testing.assert_close(pasted, torch.full((6,), 1.0 - kept))
    torch.testing.assert_close(targets.sum(1), torch.ones(6))
    torch.testing.assert_close(targets, kept * onehot + (1 - kept) * onehot.roll(1, 0))
    assert (mixed == images.roll(1, 0)).all(dim=1).float().mean(dim=(1, 2)).sub(1 - kept).abs().max() < 1e-6


def test_cutmix_box_stays_inside_the_image() -> None:
    for seed in range(50):
        torch.manual_seed(seed)
        y1, y2, x1, x2 = cutmix_box(5, 9, float(torch.rand(())))
        assert 0 <= y1 <= y2 <= 5 and 0 <= x1 <= x2 <= 9


def test_batch_mix_switches_between_mixup_and_cutmix_and_is_seeded() -> None:
    mix = BatchMix(num_classes=4, mixup_alpha=0.2, cutmix_alpha=1.0)
    modes = set()
    for batch in range(40):
        with seeded_batch(0, 0, batch):
            modes.add(mix.draw()[0])
    assert modes == {"mixup", "cutmix"}
    images, labels = torch.randn(6, 3, 8, 8), _labels()
    with seeded_batch(3, 1, 2):
        first = mix(images, labels)
    with seeded_batch(3, 1, 2):
        again = mix(images, labels)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert first[1].shape == (6, 4) and first[1].dtype == torch.float32
    torch.testing.assert_close(first[1].sum(1), torch.ones(6))


def test_only_mixup_or_only_cutmix() -> None:
    for batch in range(10):
        with seeded_batch(0, 0, batch):
            assert BatchMix(4, mixup_alpha=0.2).draw()[0] == "mixup"
            assert BatchMix(4, cutmix_alpha=1.0).draw()[0] == "cutmix"


def test_random_erasing_is_per_image_and_keeps_hard_labels() -> None:
    images, labels = torch.ones(8, 1, 8, 8), _labels(8)
    with seeded_batch(0, 0, 0):
        erased, same_labels = BatchMix(4, erase_p=1.0)(images, labels)
    assert same_labels is labels  # no mixing: hard labels stay
    holes = erased == 0
    assert holes.flatten(1).any(1).all(), "p=1 erases a rectangle of every image"
    assert len({tuple(h.flatten().tolist()) for h in holes}) > 1, "each image gets its own rectangle"
    with seeded_batch(0, 0, 0):
        assert torch.equal(BatchMix(4, erase_p=0.0)(images, labels)[0], images)


# ----------------------------------------------------------------------------- soft-target losses


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_soft_target_cross_entropy_matches_torch(smoothing: float, weighted: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    soft = torch.rand(5, 4, generator=generator, dtype=torch.float64).softmax(1)
    weight = torch.rand(4, generator=generator, dtype=torch.float64) + 0.5 if weighted else None
    for reduction in ("mean", "sum", "none"):
        expected = F.cross_entropy(logits, soft, weight=weight, label_smoothing=smoothing, reduction=reduction)
        actual = cross_entropy(logits, soft, weight=weight, label_smoothing=smoothing, reduction=reduction)
        torch.testing.assert_close(actual, expected)
    # smoothing then mixing (timm) == mixing then smoothing (what the loss does)
    onehot = F.one_hot(torch.tensor([0, 1, 2, 3, 1]), 4).double()
    smooth = onehot * (1 - smoothing) + smoothing / 4
    timm = 0.3 * smooth + 0.7 * smooth.roll(1, 0)
    ours = cross_entropy(logits, 0.3 * onehot + 0.7 * onehot.roll(1, 0), label_smoothing=smoothing)
    torch.testing.assert_close(ours, -(timm * logits.log_softmax(1)).sum(1).mean())


@pytest.mark.parametrize("fn", [cross_entropy, mse, mae])
def test_one_hot_soft_targets_equal_hard_labels(fn) -> None:
    logits, labels = torch.randn(6, 4, dtype=torch.float64), _labels()
    torch.testing.assert_close(fn(logits, F.one_hot(labels, 4).double()), fn(logits, labels))


def test_soft_targets_are_checked() -> None:
    logits = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"shape of logits \(2, 3\).*got \(2, 4\)"):
        cross_entropy(logits, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]; got 1.5"):
        mse(logits, torch.full((2, 3), 1.5))


@pytest.mark.parametrize("name", ["hinge", "focal"])
def test_losses_without_soft_targets_refuse_them(name: str) -> None:
    loss = create_loss(name, num_classes=3)
    with pytest.raises(ValueError, match="integer class labels"):
        loss(torch.randn(2, 3), torch.full((2, 3), 1 / 3))


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(("key", "value", "message"), [
    ("random_erase", 1.5, r"random_erase must be in \[0, 1\]; got 1.5"),
    ("random_erase", -0.1, r"random_erase must be in \[0, 1\]"),
    ("mixup", -0.2, r"mixup must be >= 0"),
    ("cutmix", -1.0, r"cutmix must be >= 0"),
    ("augment", "randaug", r"augment must be one of .*Did you mean 'randaugment'"),
])
def test_config_ranges(key: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate(dataclasses.replace(ClassifyConfig(), **{key: value}))


@pytest.mark.parametrize("loss", ["focal", "hinge"])
def test_mixing_refuses_losses_without_soft_targets(loss: str) -> None:
    with pytest.raises(ValueError, match=rf"loss must take soft targets with --mixup/--cutmix; got '{loss}'.*cross_entropy"):
        validate(dataclasses.replace(ClassifyConfig(), loss=loss, cutmix=1.0, label_smoothing=0.0))
    validate(dataclasses.replace(ClassifyConfig(), loss=loss, label_smoothing=0.0))  # no mixing: fine


def test_recipes_validate() -> None:
    for recipe in POLICIES:
        validate(dataclasses.replace(ClassifyConfig(), augment=recipe, random_erase=0.25, mixup=0.2, cutmix=1.0))


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize(("augment", "extra"), [
    ("randaugment", {"random_erase": 0.25}),
    ("trivialaugment", {"mixup": 0.2}),
    ("autoaugment", {"cutmix": 1.0}),
])
def test_short_training_with_each_recipe_learns_digits(tmp_path: Path, augment: str, extra: dict) -> None:
    result = api.train(data="digits", model="mlp", epochs=2, batch_size=32, augment=augment, **extra,
                       out=tmp_path / "run", quiet=True)
    assert result.metrics["accuracy"]["value"] > 0.3  # chance is 0.1


class _TinyImages(torch.utils.data.Dataset):
    """An in-memory uint8 image set with zero labels."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.labels = images, torch.zeros(len(images), dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], 0
