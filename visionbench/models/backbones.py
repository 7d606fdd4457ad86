"""ImageNet weights for the backbones of torchvision detectors and segmenters (``--pretrained-backbone``).

torchvision's builders take ``weights_backbone=...`` and then read the file with
``torch.hub.load_state_dict_from_url`` (which downloads when the file is missing and unpickles
it without ``weights_only``). Here the model is built with ``weights_backbone=None`` and the
backbone's file is read from the local torch hub cache by :mod:`visionbench.models.pretrained`
(located, SHA-256 checked, ``weights_only=True``; downloaded only with ``download=True``), then
loaded strictly into the backbone: every backbone tensor comes from the file, bit for bit.

Which file: the ``weights_backbone`` default of torchvision's own builder (what torchvision's
detection and segmentation weights were trained from): ``ResNet50_Weights.IMAGENET1K_V1`` for
the ResNet-50 models, ``MobileNet_V3_Large_Weights.IMAGENET1K_V1`` for the MobileNet-V3 ones.

The backbone keeps ordinary, trainable ``BatchNorm2d`` (torchvision would switch detectors to
``FrozenBatchNorm2d`` and freeze the first layers); ``--freeze-backbone`` freezes the whole
backbone, its norms included (:func:`visionbench.models.parts.set_backbone_trainable`). SSD300
(VGG-16 features) and SSDlite (MobileNet-V3 split in two stages) are not supported.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["BACKBONE_WEIGHTS", "load_pretrained_backbone"]

# model name -> (torchvision weights enum name, classifier key prefix to drop-or-strip, target module path)
# "strip": the file's keys start with "features." (MobileNet), which the backbone's module does not have.
BACKBONE_WEIGHTS: dict[str, tuple[str, str, str]] = {
    "fasterrcnn_resnet50_fpn": ("ResNet50_Weights.IMAGENET1K_V1", "", "model.backbone.body"),
    "retinanet_resnet50_fpn": ("ResNet50_Weights.IMAGENET1K_V1", "", "model.backbone.body"),
    "fcos_resnet50_fpn": ("ResNet50_Weights.IMAGENET1K_V1", "", "model.backbone.body"),
    "fasterrcnn_mobilenet_v3_large_fpn": ("MobileNet_V3_Large_Weights.IMAGENET1K_V1", "features.",
                                          "model.backbone.body"),
    "fcn_resnet50": ("ResNet50_Weights.IMAGENET1K_V1", "", "model.backbone"),
    "deeplabv3_resnet50": ("ResNet50_Weights.IMAGENET1K_V1", "", "model.backbone"),
    "deeplabv3_mobilenet_v3_large": ("MobileNet_V3_Large_Weights.IMAGENET1K_V1", "features.", "model.backbone"),
    "lraspp_mobilenet_v3_large": ("MobileNet_V3_Large_Weights.IMAGENET1K_V1", "features.", "model.backbone"),
}
# The classifier layers in the files, which no backbone has.
_CLASSIFIER_KEYS = ("fc.", "classifier.")


def backbone_state(state: dict[str, Any], strip: str) -> dict[str, Any]:
    """The backbone's part of a classifier state dict: classifier layers dropped, ``strip`` removed
    from the front of the other keys."""
    out = {}
    for key, value in state.items():
        if key.startswith(_CLASSIFIER_KEYS):
            continue
        out[key[len(strip):] if strip and key.startswith(strip) else key] = value
    return out


def load_pretrained_backbone(model: nn.Module, name: str, *, download: bool = False) -> Any:
    """Load the ImageNet weights of registered model ``name``'s backbone into ``model``.

    Returns:
        The :class:`~visionbench.models.pretrained.PretrainedFile` read (name, file, SHA-256, URL).

    Raises:
        ValueError: ``name`` has no supported pretrained backbone, or the file does not fit it.
        MissingWeightsError: the file is not in the local cache (the message says how to fetch it).
    """
    from visionbench.models import pretrained

    if name not in BACKBONE_WEIGHTS:
        raise ValueError(f"--pretrained-backbone must be used with one of {sorted(BACKBONE_WEIGHTS)}; got model "
                         f"{name!r}. Train {name!r} without --pretrained-backbone, or choose one of those.")
    enum_name, strip, path = BACKBONE_WEIGHTS[name]
    from torchvision.models import get_weight

    weights = get_weight(enum_name)
    state, record = pretrained.read_pretrained(weights, download=download)
    target = model.get_submodule(path)
    try:
        target.load_state_dict(backbone_state(state, strip), strict=True)
    except RuntimeError as error:
        raise ValueError(f"pretrained backbone file {record.file!r} ({record.name}) must fit {name!r}'s backbone; "
                         f"{error}. Use 3 input channels (RGB) with --pretrained-backbone, or delete the file and "
                         "fetch it again.") from None
    return record
