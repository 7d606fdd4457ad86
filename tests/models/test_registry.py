"""Tests for visionbench/models: every registered model, the registry's errors and sizes.

Parametrised over ``list_models(task="classify")`` so a newly registered classifier is tested without editing this
file: it builds for 7 classes from 1 or 3 input channels, maps the size ``model_input_size`` gives
for 8×8 digits and a 32×32 batch to ``[B, 7]`` logits, and back-propagates into every parameter.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.models.test_zoo import CPU_HEAVY
from visionbench._registry import Registry
from visionbench.models import MODELS, create_model, list_models, model_input_size
from visionbench.models.catalog import CATALOG
from visionbench.models.classifiers import classifier_builder

NUM_CLASSES = 7


def forward_backward(model: nn.Module, batch: int, channels: int, size: tuple[int, int]) -> None:
    x = torch.randn(batch, channels, *size)
    logits = model(x)
    assert logits.shape == (batch, NUM_CLASSES), f"input {tuple(x.shape)} gave {tuple(logits.shape)}"
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    model.zero_grad(set_to_none=True)
    logits.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reached {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_registry_lists_the_documented_models() -> None:
    names = list_models()
    assert names == sorted(names)
    for expected in ("mlp", "cnn-small", "resnet18", "resnet50", "vit_b_16", "mobilenet_v3_small", "efficientnet_b0"):
        assert expected in names and MODELS.info(expected)["task"] == "classify"
    for expected in ("tiny_fcos", "fasterrcnn_mobilenet_v3_large_fpn", "retinanet_resnet50_fpn", "fcos_resnet50_fpn",
                     "ssd300_vgg16", "ssdlite320_mobilenet_v3_large", "fasterrcnn_resnet50_fpn"):
        assert expected in list_models(task="detect")
    for expected in ("unet_small", "fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large",
                     "lraspp_mobilenet_v3_large"):
        assert expected in list_models(task="segment")
    assert sorted(list_models(task="classify") + list_models(task="detect") + list_models(task="segment")) == names
    for name in names:
        assert MODELS.info(name)["description"], f"{name} has no description"


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", [n for n in list_models(task="classify") if n not in CPU_HEAVY])
def test_every_model_builds_runs_and_backpropagates(name: str, in_channels: int) -> None:
    # CPU_HEAVY (torchvision's big nets, tests/models/test_zoo.py) run there on the meta device instead.
    torch.manual_seed(0)
    sizes = {model_input_size(name, (8, 8)), model_input_size(name, (32, 32))}  # digits' native size, and CIFAR's
    for size in sorted(sizes):
        assert size[0] == size[1]
        model = create_model(name, num_classes=NUM_CLASSES, in_channels=in_channels, image_size=size[0])
        assert isinstance(model, nn.Module)
        model.train()
        # Batch 2: BatchNorm in training mode needs more than one value per channel.
        forward_backward(model, 2, in_channels, size)


def test_first_conv_takes_the_requested_channels() -> None:
    model = create_model("resnet18", num_classes=NUM_CLASSES, in_channels=1, image_size=32)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 1
    assert create_model("resnet18", num_classes=3, in_channels=3).fc.out_features == 3


def test_unknown_model_suggests_close_names_and_the_list_command() -> None:
    with pytest.raises(ValueError) as info:
        create_model("resnet19", num_classes=NUM_CLASSES)
    message = str(info.value)
    assert "'resnet19'" in message
    assert "Did you mean" in message and "'resnet18'" in message
    assert "`visionbench list models`" in message
    assert f"{len(list_models())} registered models" in message


def test_unknown_model_without_close_match_still_names_the_command() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'zzzzzz'\. Run `visionbench list models`") as info:
        create_model("zzzzzz", num_classes=2)
    assert "Did you mean" not in str(info.value)
    with pytest.raises(ValueError, match="visionbench list models"):
        model_input_size("zzzzzz", (8, 8))


def test_list_models_patterns() -> None:
    assert list_models("resnet*") == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    assert list_models("mobilenet_v3_*") == ["mobilenet_v3_large", "mobilenet_v3_small"]
    assert list_models("cnn-small") == ["cnn-small"]
    assert list_models("nothing*") == []
    assert list_models("*") == list_models()
    assert list_models("RESNET*") == []  # case-sensitive, like the names users type


def test_register_same_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="model 'mlp' is already registered"):
        MODELS.register("mlp", description="dup")(lambda **kw: nn.Identity())
    with pytest.raises(ValueError, match="model 'mlp' is already registered"):
        MODELS.register_lazy("mlp", "visionbench.models.classifiers:classifier_builder", description="dup")


def test_lazy_entries_are_listed_without_importing_and_built_on_first_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lazy_family.py").write_text(
        "CALLS = []\n"
        "def builder_for(name):\n"
        "    CALLS.append(name)\n"
        "    return lambda **kw: (name, kw)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("model")
    registry.register_lazy("b", "lazy_family:builder_for", task="classify", description="B")
    registry.register_lazy("a", "lazy_family:builder_for", task="detect", description="A")
    assert registry.names() == ["a", "b"] and registry.names_for("detect") == ["a"]
    assert registry.info("b")["description"] == "B" and "lazy_family" not in sys.modules
    builder = registry.get("a")
    assert builder(num_classes=2) == ("a", {"num_classes": 2})
    assert registry.get("a") is builder  # resolved once, then kept
    assert sys.modules["lazy_family"].CALLS == ["a"]
    monkeypatch.delitem(sys.modules, "lazy_family")


def test_every_catalogue_entry_resolves_to_a_builder() -> None:
    for spec in CATALOG:
        module, _, function = spec.factory.partition(":")
        assert callable(getattr(importlib.import_module(module), function)(spec.name)), spec.name
    with pytest.raises(ValueError, match="must be a torchvision classification builder"):
        classifier_builder("fasterrcnn_resnet50_fpn")  # a detector, not a classifier


# --------------------------------------------------------------------------------------------
# model_input_size
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_requested_size_wins(name: str) -> None:
    multiple = MODELS.info(name)["size_multiple"]
    # A requested size wins over native and minimum sizes, rounded up to the multiple (maxvit_t: 224).
    for native, requested in (((8, 8), 64), (None, 96), ((8, 8), 40)):
        expected = -(-requested // multiple) * multiple
        assert model_input_size(name, native, requested=requested) == (expected, expected)


def test_small_nets_keep_native_size() -> None:
    assert model_input_size("cnn-small", (8, 8)) == (8, 8)
    assert model_input_size("mlp", (28, 28)) == (28, 28)
    assert model_input_size("cnn-small", (5, 9)) == (5, 9)


def test_min_size_upscales_keeping_aspect_ratio() -> None:
    assert model_input_size("resnet18", (8, 8)) == (32, 32)
    assert model_input_size("resnet18", (28, 28)) == (32, 32)
    assert model_input_size("resnet18", (16, 24)) == (32, 48)  # shorter side to 32, ratio kept
    assert model_input_size("resnet18", (10, 15)) == (32, 48)
    assert model_input_size("resnet18", (7, 10)) == (32, 46)  # 10 * 32/7 = 45.7 → ceil
    assert model_input_size("resnet18", (32, 32)) == (32, 32)
    assert model_input_size("resnet18", (100, 50)) == (100, 50)  # big enough: untouched


def test_vit_rounds_up_to_patch_multiple() -> None:
    assert MODELS.info("vit_b_16")["size_multiple"] == 16
    assert model_input_size("vit_b_16", (8, 8)) == (32, 32)
    assert model_input_size("vit_b_16", (33, 33)) == (48, 48)
    assert model_input_size("vit_b_16", (40, 64)) == (48, 64)
    assert model_input_size("vit_b_16", (10, 15)) == (32, 48)  # upscale to (32, 48), already multiples
    assert model_input_size("vit_b_16", (9, 10)) == (32, 48)  # upscale to (32, 36) → round to (32, 48)
    assert model_input_size("vit_b_16", None, requested=20) == (32, 32)


@pytest.mark.parametrize("name", list_models())
def test_default_size_when_native_is_mixed(name: str) -> None:
    info = MODELS.info(name)
    side = -(-info["default_size"] // info["size_multiple"]) * info["size_multiple"]
    assert model_input_size(name, None) == (side, side)


def test_default_sizes() -> None:
    assert model_input_size("mlp", None) == (32, 32)
    assert model_input_size("cnn-small", None) == (64, 64)
    assert model_input_size("resnet18", None) == (224, 224)
    assert model_input_size("vit_b_16", None) == (224, 224)
