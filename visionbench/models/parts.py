"""Which parameters of a model are its *backbone* and which its *head*, for fine-tuning.

One rule per model family (:func:`split_backbone`):

* detectors and segmenters with a ``backbone`` attribute (torchvision's, wrapped in
  ``TorchvisionDetector`` / ``TorchvisionSegmenter`` as ``.model``, and :class:`TinyFCOS`): the
  backbone is that module; the FPN, heads, anchors and decoders are the head;
* :class:`~visionbench.models.segmenters.UNet`: its encoder (``down``) is the backbone;
* classifiers: the head is the final classification layer(s): torchvision's ``fc`` (ResNet,
  RegNet, …), ``classifier`` (MobileNet, EfficientNet, ConvNeXt, VGG, …), ``heads`` (ViT) or
  ``head`` (Swin, our ``SmallCNN``); otherwise (our ``MLP``) the last ``nn.Linear``. Everything
  else is the backbone.

Only module attributes are read, so the split is the same on every process and every run.
"""

from __future__ import annotations

from torch import nn

__all__ = ["backbone_module_names", "is_backbone", "set_backbone_trainable", "split_backbone"]

# Classifier head attributes, in the order they are looked for (the first one present wins).
_HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")


def _unwrap(model: nn.Module) -> tuple[nn.Module, str]:
    """The model inside our torchvision wrappers (``.model``), with its name prefix."""
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module) and isinstance(getattr(inner, "backbone", None), nn.Module):
        return inner, "model."
    return model, ""


def backbone_module_names(model: nn.Module) -> tuple[set[str], set[str]]:
    """``(backbone, head)``: the qualified names of the modules whose parameters form each part
    (exactly one of the two sets is used: a parameter is backbone if its name starts with a
    backbone module's, or — for classifiers — if it does not start with a head module's)."""
    inner, prefix = _unwrap(model)
    if isinstance(getattr(inner, "backbone", None), nn.Module):
        return {prefix + "backbone"}, set()
    if type(inner).__name__ == "UNet":
        return {prefix + "down"}, set()
    for name in _HEAD_ATTRIBUTES:
        if isinstance(getattr(inner, name, None), nn.Module):
            return set(), {prefix + name}
    linears = [name for name, module in inner.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"model {type(model).__name__} must have a backbone attribute, a classifier head (one of "
                         f"{_HEAD_ATTRIBUTES}) or an nn.Linear to split into backbone and head; it has none. "
                         "Train it without --freeze-backbone / --backbone-lr-scale.")
    return set(), {prefix + linears[-1]}


def _under(name: str, modules: set[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def is_backbone(model: nn.Module, parameter_name: str) -> bool:
    """Whether the parameter (or buffer) ``parameter_name`` of ``model`` belongs to its backbone."""
    backbone, head = backbone_module_names(model)
    return _under(parameter_name, backbone) if backbone else not _under(parameter_name, head)


def split_backbone(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(backbone_parameters, head_parameters)`` of ``model``, each in ``named_parameters`` order.

    Example:
        >>> from visionbench.models.small import SmallCNN
        >>> backbone, head = split_backbone(SmallCNN(3, 10))
        >>> [tuple(p.shape) for p in head]
        [(10, 128), (10,)]
    """
    backbone, head = backbone_module_names(model)
    parts: tuple[list[nn.Parameter], list[nn.Parameter]] = ([], [])
    for name, parameter in model.named_parameters():
        in_backbone = _under(name, backbone) if backbone else not _under(name, head)
        parts[0 if in_backbone else 1].append(parameter)
    if not parts[1] or not parts[0]:
        raise ValueError(f"model {type(model).__name__} must split into a non-empty backbone and head; got "
                         f"{len(parts[0])} backbone and {len(parts[1])} head parameters. Train it without "
                         "--freeze-backbone / --backbone-lr-scale.")
    return parts


def set_backbone_trainable(model: nn.Module, trainable: bool) -> bool:
    """Freeze (``trainable=False``) or unfreeze the backbone; return whether anything changed.

    Frozen, the backbone's parameters stop requiring gradients (the optimizer skips parameters
    without a gradient, so neither weight decay nor momentum moves them) and its normalisation
    layers are put in eval mode, so their running statistics stay as loaded: the whole backbone
    state is unchanged, as in linear probing and as torchvision's detection fine-tuning does with
    ``FrozenBatchNorm2d``. Call it *after* ``model.train()``, which would set them back.
    """
    backbone_parameters, _ = split_backbone(model)
    changed = any(p.requires_grad != trainable for p in backbone_parameters)
    for parameter in backbone_parameters:
        parameter.requires_grad_(trainable)
    if not trainable:
        backbone, head = backbone_module_names(model)
        for name, module in model.named_modules():
            in_backbone = _under(name, backbone) if backbone else (name != "" and not _under(name, head))
            if in_backbone and isinstance(module, nn.modules.batchnorm._NormBase):
                module.eval()
    return changed
