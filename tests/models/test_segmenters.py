"""Tests for visionbench/models/segmenters.py: every segmenter's contract, and the UNet.

Every builder of ``SEGMENTERS`` is built once (random init, no download) for a non-default class
count and runs one forward on a 2×3×64×64 batch: logits ``float [N, K, H, W]`` at the input size,
finite, aux heads off. The cheap ones (UNet, LR-ASPP) also back-propagate into every parameter.
UNet: any ``H, W`` (odd, smaller than its stride, 1×1) gives ``[N, K, H, W]`` for every stem stride
and upsampling; padding does not leak (a crop of the input equals the same network on the crop
where the receptive field allows); it overfits one shapes image to mIoU > 0.9; a fixed seed gives
identical weights, outputs and training steps; bad arguments give ValueError/TypeError.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionbench.data.shapes import load_shapes
from visionbench.losses.segmentation import ce_dice_loss
from visionbench.metrics.segmentation import SegmentationAccumulator
from visionbench.models import MODELS
from visionbench.models.catalog import CATALOG
from visionbench.models.segmenters import SEGMENTERS, TorchvisionSegmenter, UNet, unet_small

K = 5  # not the torchvision default of 21, not shapes' 4: checks that num_classes reaches the head
CHEAP = ("unet_small", "lraspp_mobilenet_v3_large")


def check_logits(logits: object, n: int, k: int, h: int, w: int) -> None:
    assert isinstance(logits, torch.Tensor), f"expected a tensor, got {type(logits).__name__}"
    assert logits.shape == (n, k, h, w), f"got {tuple(logits.shape)}, expected {(n, k, h, w)}"
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


# --------------------------------------------------------------------------------------------
# Every registered segmenter
# --------------------------------------------------------------------------------------------


def test_table_and_catalogue_agree() -> None:
    assert set(SEGMENTERS) == {spec.name for spec in CATALOG if spec.task == "segment"}
    assert set(SEGMENTERS) == {"fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large",
                               "lraspp_mobilenet_v3_large", "unet_small"}


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
def test_builds_and_forwards(name: str) -> None:
    torch.manual_seed(0)
    model = SEGMENTERS[name](num_classes=K, in_channels=3, image_size=64)
    assert isinstance(model, nn.Module)
    if isinstance(model, TorchvisionSegmenter):
        # aux heads off: no parameters that never get a gradient (DDP's unused-parameter error).
        assert getattr(model.model, "aux_classifier", None) is None
    model.eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 64, 64))
    check_logits(logits, 2, K, 64, 64)


@pytest.mark.parametrize("name", CHEAP)
def test_gradients_reach_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = SEGMENTERS[name](num_classes=K, in_channels=3, image_size=64)
    model.train()
    target = torch.randint(0, K, (2, 64, 64))
    loss = ce_dice_loss(model(torch.rand(2, 3, 64, 64)), target)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", CHEAP)
def test_other_input_channels(name: str) -> None:
    model = SEGMENTERS[name](num_classes=K, in_channels=1, image_size=64).eval()
    with torch.no_grad():
        check_logits(model(torch.rand(2, 1, 48, 64)), 2, K, 48, 64)
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        model(torch.rand(2, 3, 48, 64))


@pytest.mark.parametrize("name", CHEAP)
def test_bad_images(name: str) -> None:
    model = SEGMENTERS[name](num_classes=K, in_channels=3, image_size=64).eval()
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        model(torch.rand(3, 32, 32))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([torch.rand(3, 32, 32)])


def test_the_registry_builds_every_segmenter_with_this_module() -> None:
    assert sorted(MODELS.names_for("segment")) == sorted(SEGMENTERS)
    assert all(MODELS.get(name) is SEGMENTERS[name] and MODELS.info(name)["description"] for name in SEGMENTERS)
    assert MODELS.get("unet_small") is unet_small
    assert MODELS.info("unet_small")["default_size"] == 128 and MODELS.info("fcn_resnet50")["default_size"] == 224


# --------------------------------------------------------------------------------------------
# UNet
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem_stride", [1, 2, 4])
@pytest.mark.parametrize("upsample", ["bilinear", "transpose"])
def test_unet_any_size(stem_stride: int, upsample: str) -> None:
    torch.manual_seed(0)
    model = UNet(3, K, widths=(4, 8, 8), upsample=upsample, stem_stride=stem_stride).eval()
    with torch.no_grad():
        for h, w in ((66, 70), (64, 64), (17, 5), (1, 1), (3, 100)):
            check_logits(model(torch.rand(2, 3, h, w)), 2, K, h, w)


def test_unet_small_odd_size_and_size() -> None:
    torch.manual_seed(0)
    model = unet_small(num_classes=4).eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert 200_000 <= n_params <= 1_200_000, n_params
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        check_logits(model(torch.rand(2, 3, 66, 70)), 2, 4, 66, 70)


def test_unet_padding_does_not_leak() -> None:
    # Inputs already a multiple of the stride are not padded; a 66x70 input is padded at the bottom
    # and right only, so the top-left logits equal those of the padded-by-hand 80x80 input.
    torch.manual_seed(0)
    model = UNet(3, K, widths=(4, 8, 8), stem_stride=2).eval()  # stride 8
    x = torch.rand(1, 3, 66, 70)
    padded = torch.nn.functional.pad(x, (0, 2, 0, 6))  # to 72 x 72
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., :66, :70], rtol=0, atol=0)


def test_unet_bad_arguments() -> None:
    with pytest.raises(ValueError, match="widths"):
        UNet(3, 4, widths=(16,))
    with pytest.raises(ValueError, match="widths"):
        UNet(3, 4, widths=(16, 0))
    with pytest.raises(ValueError, match="num_classes"):
        UNet(3, 0)
    with pytest.raises(ValueError, match="upsample"):
        UNet(3, 4, upsample="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stem_stride"):
        UNet(3, 4, stem_stride=3)  # type: ignore[arg-type]


def _train(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, steps: int, lr: float) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = ce_dice_loss(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def one_shapes_image() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_shapes(task="segment", num_train=4, num_val=0, num_test=0)
    # The first train image with all three shape classes (so mIoU runs over all 4 classes).
    for i in range(len(data.train)):
        image, mask = data.train[i]
        if len(mask.unique()) == 4:
            break
    image = image.as_subclass(torch.Tensor).float().div(255.0).unsqueeze(0)  # (1, 3, 128, 128) in [0, 1]
    image = (image - image.mean(dim=(2, 3), keepdim=True)) / image.std(dim=(2, 3), keepdim=True)
    return image, mask.as_subclass(torch.Tensor).unsqueeze(0)  # (1, 128, 128) int64


def test_unet_overfits_one_shapes_image(one_shapes_image: tuple[torch.Tensor, torch.Tensor]) -> None:
    image, mask = one_shapes_image
    assert len(mask.unique()) == 4
    torch.manual_seed(0)
    model = unet_small(num_classes=4)
    # CE + Dice: CE alone leaves the triangle out longer; Adam at 1e-2 needs ~100 steps.
    losses = _train(model, image, mask, steps=100, lr=2e-2)
    assert losses[-1] < 0.3 * losses[0], losses  # measured 0.012-0.071 (seeds 0-7)
    # Batch norm's running averages lag weights that moved fast on one image (eval mIoU 0.53-0.94
    # over seeds 0-4, so any CPU's rounding could fail it); recompute them for the final weights
    # (cumulative average over the one batch) so that eval mode sees what training saw. Then the
    # mIoU is 0.955-0.983 over seeds 0-7.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        model(image)
    model.eval()
    with torch.no_grad():
        logits = model(image)
    accumulator = SegmentationAccumulator(4)
    accumulator.update(logits, mask)
    miou = float(accumulator.compute()["mIoU"])
    assert miou > 0.9, f"mIoU after 100 steps on one image: {miou:.3f}"


def test_unet_deterministic_with_seed(one_shapes_image: tuple[torch.Tensor, torch.Tensor]) -> None:
    image, mask = one_shapes_image
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = unet_small(num_classes=4)
        initial = {n: t.clone() for n, t in model.state_dict().items()}
        losses = _train(model, image, mask, steps=3, lr=1e-3)
        runs.append((initial, losses, model.state_dict()))
    (init_a, losses_a, final_a), (init_b, losses_b, final_b) = runs
    for name in init_a:
        assert torch.equal(init_a[name], init_b[name]), name
        assert torch.equal(final_a[name], final_b[name]), name
    assert losses_a == losses_b
    torch.manual_seed(124)
    other = unet_small(num_classes=4).state_dict()
    assert not torch.equal(other["head.weight"], init_a["head.weight"])
