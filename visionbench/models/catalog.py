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
``torchvision.models.<name>`` classifier, looking the name up only when the model is built; a
timm family would add one factory that calls ``timm.create_model(name, …)`` and one spec per name.
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


CATALOG: tuple[ModelSpec, ...] = (
    # Classifiers: our small nets, and torchvision's built for any classes and channels.
    ModelSpec("mlp", "classify", "two-hidden-layer MLP on flattened pixels (fast on CPU)", CLASSIFIERS,
              default_size=32),
    ModelSpec("cnn-small", "classify", "three 3x3 conv blocks, BN, global pool; any input size (fast on CPU)",
              CLASSIFIERS, default_size=64),
    *(_torchvision_classifier(name) for name in (
        "resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
        "convnext_tiny")),
    _torchvision_classifier("vit_b_16", "torchvision vit_b_16 (input side a multiple of 16)", size_multiple=16),
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

__all__ = ["CATALOG", "ModelSpec"]
