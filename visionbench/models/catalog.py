"""What the model registry knows without importing any model code: each model's name, task,
description and input sizes, and where its builder lives.

``visionbench list models``, the ``--model`` check of a config and :func:`model_input_size` read
only this table, so they import neither torch nor torchvision (``list models`` took 3–6 s and
1.1 GB when it imported every builder). A model's module is imported the first time the model is
built (:meth:`visionbench._registry.Registry.register_lazy`).

**Adding models** costs one :class:`ModelSpec` each, and a family can be generated from a list of
names: every spec names a *factory* ``"module:function"`` whose ``function(name)`` returns the
builder ``(*, num_classes, in_channels, image_size) -> nn.Module``. One factory serves a whole
family, e.g. :func:`visionbench.models.classifiers.classifier_builder` builds any
``torchvision.models.<name>`` classifier, looking the name up only when the model is built. timm's
~1,300 classifiers are not listed here: ``timm:NAME`` is resolved on demand by
:mod:`visionbench.models.timm_backend` (through :class:`visionbench.models._registry.ModelRegistry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CLASSIFIERS = "visionbench.models.classifiers:classifier_builder"
DETECTORS = "visionbench.models.detectors:detector_builder"
SEGMENTERS = "visionbench.models.segmenters:segmenter_builder"


@dataclass(frozen=True)
class ModelSpec:
    """One registered model, described without importing it.

    Attributes:
        name: the name users type (``--model NAME``).
        task: ``"classify"`` (logits ``[N, K]``), ``"detect"`` (the torchvision detector contract,
            0-based labels) or ``"segment"`` (logits ``[N, K, H, W]``).
        description: one line shown by ``visionbench list models``.
        factory: ``"module:function"``; ``function(name)`` returns the builder.
        min_size: smallest input side the network handles well; smaller images are upscaled.
        size_multiple: the input side must be a multiple of this (ViT's patch size).
        default_size: input side for datasets of mixed image sizes (folders).
        options: the builder's keyword options beyond classes, channels and size, each a
            config field of the same name (``box_loss``: ``--box-loss``); other models refuse them.
    """

    name: str
    task: str
    description: str
    factory: str
    min_size: int = 1
    size_multiple: int = 1
    default_size: int = 224
    options: tuple[str, ...] = ()

    def info(self) -> dict[str, Any]:
        """The registry metadata (what :func:`visionbench.models.register_model` records)."""
        return {"description": self.description, "min_size": self.min_size, "size_multiple": self.size_multiple,
                "default_size": self.default_size, "task": self.task, "options": self.options}


def _torchvision_classifier(name: str, description: str = "", **sizes: int) -> ModelSpec:
    return ModelSpec(name, "classify", description or f"torchvision {name}", CLASSIFIERS, **{"min_size": 32, **sizes})


TORCHVISION_CLASSIFIERS: tuple[str, ...] = (
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121", "densenet161",
    "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_l",
    "efficientnet_v2_m", "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t", "mnasnet0_5", "mnasnet0_75",
    "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_x_16gf",
    "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_8gf",
    "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf", "regnet_y_32gf", "regnet_y_3_2gf", "regnet_y_400mf",
    "regnet_y_800mf", "regnet_y_8gf", "resnet101", "resnet152", "resnet18", "resnet34", "resnet50",
    "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "squeezenet1_0", "squeezenet1_1", "swin_b", "swin_s", "swin_t",
    "swin_v2_b", "swin_v2_s", "swin_v2_t", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
    "vgg19_bn", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
)
"""Every classification builder of ``torchvision.models`` (``list_models(module=torchvision.models)``
of torchvision 0.19–0.24, kept equal to the installed one by ``tests/models/test_zoo.py``)."""

# Sizes that differ from the default (min 32, any side, 224 for mixed sizes), measured with a
# forward pass at growing sides (tests/models/test_zoo.py checks each entry at its minimum).
_TORCHVISION_SIZES: dict[str, dict[str, int]] = {
    "alexnet": {"min_size": 64},  # 11x11/4 stem and three 3x3/2 max-pools: 63 px is the smallest side
    "inception_v3": {"min_size": 75, "default_size": 299},  # torchvision's documented minimum; trained at 299
    "maxvit_t": {"min_size": 224, "size_multiple": 224},  # 7x7 windows at strides 4..32: side a multiple of 224
    "vit_b_16": {"size_multiple": 16}, "vit_l_16": {"size_multiple": 16}, "vit_h_14": {"size_multiple": 14},
    "vit_b_32": {"size_multiple": 32}, "vit_l_32": {"size_multiple": 32},
}
_TORCHVISION_NOTES: dict[str, str] = {
    "googlenet": "no auxiliary heads", "inception_v3": "no auxiliary head; trained at 299 px",
    "maxvit_t": "input side a multiple of 224",
}


def _torchvision_description(name: str) -> str:
    sizes = _TORCHVISION_SIZES.get(name, {})
    note = _TORCHVISION_NOTES.get(name)
    if note is None and name.startswith("vit_"):
        note = f"input side a multiple of {sizes['size_multiple']}"
    return f"torchvision {name}" + (f" ({note})" if note else "")


CATALOG: tuple[ModelSpec, ...] = (
    # Classifiers: our small nets, and torchvision's built for any classes and channels.
    ModelSpec("mlp", "classify", "two-hidden-layer MLP on flattened pixels (fast on CPU)", CLASSIFIERS,
              default_size=32),
    ModelSpec("cnn-small", "classify", "small CNN, BN, global pool; full resolution up to 32 px, strided above "
              "(fast on CPU)", CLASSIFIERS, default_size=64),
    *(_torchvision_classifier(name, _torchvision_description(name), **_TORCHVISION_SIZES.get(name, {}))
      for name in TORCHVISION_CLASSIFIERS),
    # Detectors (visionbench.models.detectors).
    ModelSpec("fasterrcnn_mobilenet_v3_large_fpn", "detect",
              "torchvision Faster R-CNN, MobileNetV3-Large FPN (random init)", DETECTORS, default_size=320),
    ModelSpec("fasterrcnn_resnet50_fpn", "detect", "torchvision Faster R-CNN, ResNet-50 FPN (random init)", DETECTORS,
              default_size=320),
    ModelSpec("retinanet_resnet50_fpn", "detect", "torchvision RetinaNet, ResNet-50 FPN (random init)", DETECTORS,
              default_size=320),
    ModelSpec("fcos_resnet50_fpn", "detect", "torchvision FCOS, ResNet-50 FPN (random init)", DETECTORS,
              default_size=320),
    ModelSpec("ssd300_vgg16", "detect", "torchvision SSD300, VGG-16 (random init; inputs resized to 300x300)",
              DETECTORS, default_size=300),
    ModelSpec("ssdlite320_mobilenet_v3_large", "detect",
              "torchvision SSDlite320, MobileNetV3-Large (random init; resized to 320x320)", DETECTORS,
              default_size=320),
    ModelSpec("tiny_fcos", "detect", "small anchor-free FCOS-style detector, 0.45M parameters (fast on CPU)",
              DETECTORS, default_size=128, options=("box_loss",)),
    # Segmenters (visionbench.models.segmenters).
    ModelSpec("fcn_resnet50", "segment", "torchvision FCN, ResNet-50 backbone (random init, no aux head)", SEGMENTERS),
    ModelSpec("deeplabv3_resnet50", "segment", "torchvision DeepLabV3, ResNet-50 backbone (random init, no aux head)",
              SEGMENTERS),
    ModelSpec("deeplabv3_mobilenet_v3_large", "segment",
              "torchvision DeepLabV3, MobileNetV3-Large backbone (random init, no aux head)", SEGMENTERS),
    ModelSpec("lraspp_mobilenet_v3_large", "segment", "torchvision LR-ASPP, MobileNetV3-Large backbone (random init)",
              SEGMENTERS),
    ModelSpec("unet_small", "segment", "small U-Net with BatchNorm, any input size (fast on CPU)", SEGMENTERS,
              default_size=128),
)
"""Every built-in model, in no particular order (listings sort by name)."""

__all__ = ["CATALOG", "TORCHVISION_CLASSIFIERS", "ModelSpec"]
