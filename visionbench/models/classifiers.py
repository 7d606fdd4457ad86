"""Classifiers: our small nets and torchvision's, built for any classes and channels.

Their names, descriptions and sizes are registered from :mod:`visionbench.models.catalog`; this
module is imported when a classifier is first built, and torchvision only when a torchvision
classifier is. torchvision builders are called with ``weights=None`` (random init, never a
download); initial weights (``--pretrained``, ``--weights NAME|FILE``) are loaded afterwards and
fitted to the model (:mod:`visionbench.models.pretrained`, :mod:`visionbench.models.adapt`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from visionbench.models.small import MLP, SmallCNN, StridedCNN, is_small_cnn_state

FULL_RESOLUTION_MAX = 32
"""Largest input side where ``cnn-small`` is the full-resolution :class:`SmallCNN` (digits,
MNIST, CIFAR; unchanged, so runs at these sizes load as before); above it, :class:`StridedCNN`."""


def mlp(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """MLP for ``image_size × image_size`` inputs."""
    return MLP(in_channels, (image_size, image_size), num_classes)


def cnn_small(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """The default network, chosen by input size: :class:`~visionbench.models.small.SmallCNN` of
    width 32 up to :data:`FULL_RESOLUTION_MAX` px (tiny images need every pixel), else
    :class:`~visionbench.models.small.StridedCNN` (SmallCNN took 0.6–2.9 s a training step at 64 px)."""
    if image_size <= FULL_RESOLUTION_MAX:
        return SmallCNN(in_channels, num_classes, width=32)
    return StridedCNN(in_channels, num_classes, image_size)


def model_for_weights(name: str, model: nn.Module, state_dict: dict, *, num_classes: int, in_channels: int
                      ) -> nn.Module:
    """``model`` (built by model ``name`` for a run), or the network an older visionbench built
    for ``state_dict``: ``cnn-small`` runs above 32 px trained before :class:`StridedCNN` hold
    :class:`SmallCNN` weights, and get that network back so their run directories still load."""
    if name == "cnn-small" and not isinstance(model, SmallCNN) and is_small_cnn_state(state_dict):
        return SmallCNN(in_channels, num_classes, width=32)
    return model


_SMALL: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "cnn-small": cnn_small}


def classifier_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of classifier ``name`` (the catalogue's factory for classifiers): our small
    nets by name, any other name is ``torchvision.models.<name>`` (checked now)."""
    if name in _SMALL:
        return _SMALL[name]
    import torchvision.models as tvm

    builder = getattr(tvm, name, None)
    if not callable(builder) or name not in tvm.list_models(module=tvm):
        raise ValueError(f"classifier {name!r} must be a torchvision classification builder; got no "
                         f"torchvision.models.{name}. Check the catalogue entry (visionbench/models/catalog.py).")
    return _torchvision(builder)


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


# Builder options that make a torchvision classifier fit the one training loop: GoogLeNet and
# Inception v3 return a (logits, aux logits) tuple in train mode unless their auxiliary heads are off,
# and warn unless told how to initialise. Their published weights hold those heads (dropped when
# fitted, adapt.AUXILIARY_HEADS) and expect inputs in [-1, 1] (pretrained.preprocessing gives them
# mean = std = 0.5 rather than setting transform_input, which needs 3 channels and no run would keep).
_TORCHVISION_OPTIONS: dict[str, dict[str, object]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


def _torchvision(builder: Callable[..., nn.Module], **extra: object) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        kwargs = {**_TORCHVISION_OPTIONS.get(builder.__name__, {}), **extra}
        if builder.__name__.startswith("vit_"):  # torchvision's ViTs size their position embedding
            kwargs["image_size"] = image_size
        if builder.__name__ == "maxvit_t":  # MaxViT sizes its relative position tables for one input size
            kwargs["input_size"] = (image_size, image_size)
        model = builder(weights=None, num_classes=num_classes, **kwargs)
        return replace_first_conv(model, in_channels)

    build.__doc__ = f"torchvision's ``{builder.__name__}`` (random init) for any classes and channels."
    return build
