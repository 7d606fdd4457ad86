"""Registered classifiers: our small nets and torchvision's, built for any classes and channels.

torchvision builders are called with ``weights=None`` (random init, never a download); a
pretrained local state dict is loaded afterwards with ``--weights FILE``.
"""

from __future__ import annotations

from collections.abc import Callable

import torchvision.models as tvm
from torch import nn

from visionbench.models._registry import register_model
from visionbench.models.small import MLP, SmallCNN


@register_model("mlp", description="two-hidden-layer MLP on flattened pixels (fast on CPU)", default_size=32)
def mlp(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """MLP for ``image_size × image_size`` inputs."""
    return MLP(in_channels, (image_size, image_size), num_classes)


@register_model("cnn-small", description="three 3x3 conv blocks, BN, global pool; any input size (fast on CPU)", default_size=64)
def cnn_small(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """The default network: :class:`~visionbench.models.small.SmallCNN` of width 32."""
    return SmallCNN(in_channels, num_classes, width=32)


def replace_first_conv(model: nn.Module, in_channels: int) -> nn.Module:
    """Give the stem convolution ``in_channels`` inputs (torchvision's nets assume RGB)."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                if child.in_channels != in_channels:
                    setattr(parent, child_name, nn.Conv2d(
                        in_channels, child.out_channels, child.kernel_size, child.stride,
                        child.padding, child.dilation, child.groups, child.bias is not None,
                    ))
                return model
    raise AssertionError("model has no Conv2d")


def _torchvision(builder: Callable[..., nn.Module], **extra: object) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        kwargs = dict(extra)
        if builder is tvm.vit_b_16:
            kwargs["image_size"] = image_size
        model = builder(weights=None, num_classes=num_classes, **kwargs)
        return replace_first_conv(model, in_channels)

    build.__doc__ = f"torchvision's ``{builder.__name__}`` (random init) for any classes and channels."
    return build


for _name, _builder, _min in (
    ("resnet18", tvm.resnet18, 32), ("resnet34", tvm.resnet34, 32), ("resnet50", tvm.resnet50, 32),
    ("mobilenet_v3_small", tvm.mobilenet_v3_small, 32), ("mobilenet_v3_large", tvm.mobilenet_v3_large, 32),
    ("efficientnet_b0", tvm.efficientnet_b0, 32), ("convnext_tiny", tvm.convnext_tiny, 32),
):
    register_model(_name, description=f"torchvision {_name}", min_size=_min)(_torchvision(_builder))

register_model("vit_b_16", description="torchvision vit_b_16 (input side a multiple of 16)", min_size=32, size_multiple=16)(
    _torchvision(tvm.vit_b_16)
)
