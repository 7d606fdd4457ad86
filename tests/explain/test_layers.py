"""The layer Grad-CAM reads, found on every model family visionbench builds (random weights, small
inputs), and the errors for models without one and for a wrong ``--layer``."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from visionbench.explain import explain_images
from visionbench.explain.layers import last_conv_stage, resolve_layer
from visionbench.models import create_model


def _timm(name: str, **options: object) -> nn.Module:
    timm = pytest.importorskip("timm")
    return timm.create_model(name, pretrained=False, num_classes=3, **options)


CLASSIFIERS = [
    ("resnet18", lambda: tvm.resnet18(weights=None, num_classes=3), 64, "layer4"),
    ("resnet18 at 32 px", lambda: tvm.resnet18(weights=None, num_classes=3), 32, "layer3"),  # layer4 is 1x1 there
    ("mobilenet_v3_small", lambda: tvm.mobilenet_v3_small(weights=None, num_classes=3), 64, "features"),
    ("efficientnet_b0", lambda: tvm.efficientnet_b0(weights=None, num_classes=3), 64, "features"),
    ("densenet121", lambda: tvm.densenet121(weights=None, num_classes=3), 64, "features"),
    ("vgg11", lambda: tvm.vgg11(weights=None, num_classes=3), 64, "features"),
    ("convnext_tiny", lambda: tvm.convnext_tiny(weights=None, num_classes=3), 64, "features"),
    ("cnn-small 8 px", lambda: create_model("cnn-small", num_classes=10, in_channels=3, image_size=8), 8, "features.3"),
    ("cnn-small 64 px", lambda: create_model("cnn-small", num_classes=10, in_channels=3, image_size=64), 64, "body.3"),
    ("timm resnet18", lambda: _timm("resnet18"), 128, "layer4"),
    ("timm efficientnet_b0", lambda: _timm("efficientnet_b0"), 128, "bn2"),
]
SEGMENTERS = [
    ("unet_small", 64, "down.4"),
    ("deeplabv3_mobilenet_v3_large", 64, "model.backbone.16"),
]


@pytest.mark.parametrize(("build", "size", "expected"), [c[1:] for c in CLASSIFIERS], ids=[c[0] for c in CLASSIFIERS])
def test_last_conv_stage_of_classifiers(build, size: int, expected: str) -> None:
    model = build().eval()
    assert last_conv_stage(model, torch.rand(1, 3, size, size)) == expected


@pytest.mark.parametrize(("name", "size", "expected"), SEGMENTERS)
def test_last_conv_stage_of_segmenters_is_the_encoder_end(name: str, size: int, expected: str) -> None:
    model = create_model(name, num_classes=4, in_channels=3, image_size=size).eval()
    assert last_conv_stage(model, torch.rand(1, 3, size, size), task="segment") == expected


def test_gradcam_runs_through_an_in_place_relu_after_the_layer_and_frozen_weights() -> None:
    """DenseNet applies ``F.relu(features, inplace=True)`` after its last stage; every weight frozen."""
    torch.manual_seed(0)
    model = tvm.densenet121(weights=None, num_classes=3).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x = torch.randn(2, 3, 64, 64)
    result = explain_images(model, x, methods=("gradcam", "gradcam++"))
    assert result.layer == "features" and len(result.explanations) == 4
    for explanation in result.explanations:
        assert explanation.heatmap.shape == (64, 64)
        assert 0 <= float(explanation.heatmap.min()) and float(explanation.heatmap.max()) <= 1


@pytest.mark.parametrize("build", [lambda: tvm.vit_b_16(weights=None, num_classes=3, image_size=32),
                                   lambda: _timm("vit_tiny_patch16_224", img_size=32)], ids=["torchvision", "timm"])
def test_a_vision_transformer_is_refused_with_the_way_out(build) -> None:
    model = build().eval()
    with pytest.raises(ValueError, match="runs attention blocks after its last convolutional stage") as error:
        last_conv_stage(model, torch.rand(1, 3, 32, 32))
    assert "--method integrated-gradients" in str(error.value) and "--layer" in str(error.value)
    # Integrated gradients needs no layer: it explains the transformer all the same.
    result = explain_images(model, torch.rand(1, 3, 32, 32), methods=("integrated-gradients",), steps=2)
    assert result.layer is None and result.explanations[0].heatmap.shape == (32, 32)


def test_a_model_without_convolution_is_refused() -> None:
    model = create_model("mlp", num_classes=10, in_channels=1, image_size=8).eval()
    with pytest.raises(ValueError, match="has no convolutional layer.*--method integrated-gradients"):
        explain_images(model, torch.rand(1, 1, 8, 8))


def test_a_wrong_layer_name_lists_the_stages() -> None:
    model = create_model("cnn-small", num_classes=10, in_channels=1, image_size=8).eval()
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"--layer 'features\.9' is not a module of model SmallCNN\. Give one of its "
                                         r"convolutional stages: features\.3 \[128, 4, 4\], features\.3\.0 \[128, 4, 4\], "
                                         r"features\.1 \[64, 8, 8\]"):  # features.2, the max-pool, is no stage
        resolve_layer(model, x, "features.9")
    with pytest.raises(ValueError, match=r"--layer 'head\.1' of model SmallCNN does not output a \[N, C, H, W\] "
                                         r"feature map.*features\.3"):
        resolve_layer(model, x, "head.1")
    name, module = resolve_layer(model, x, "features.1")
    assert name == "features.1" and module is model.features[1]
    result = explain_images(model, x, layer="features.1")
    assert result.layer == "features.1" and result.explanations[0].heatmap.shape == (8, 8)
