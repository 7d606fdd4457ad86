"""Fit a state dict to a model whose head or input channels differ: the fine-tuning rules.

* a classifier head whose class count differs (the tensor's first dimension is the file's class
  count, the model's is ``num_classes``, nothing else differs) is **re-initialised**: the model
  keeps its own random init for it;
* an RGB stem (a 4-D convolution weight with 3 input channels) feeding a model with ``C != 3``
  input channels is **adapted** (:func:`adapt_input_conv`: 1 channel sums RGB, other counts
  repeat RGB cyclically and rescale by ``3 / C``, as timm's ``adapt_input_conv`` does);
* a ViT position embedding (``…pos_embedding``, ``[1, 1 + g*g, D]``) for another patch grid (another
  ``--image-size``) is **adapted** (:func:`resize_position_embedding`: bicubic over the grid, class
  token kept, as torchvision's ``interpolate_embeddings`` does);
* tensors of auxiliary classifier heads the model does not have (:data:`AUXILIARY_HEADS`: GoogLeNet's
  ``aux1``/``aux2``, Inception v3's ``AuxLogits``, in torchvision's published files) are **dropped**;
* every other tensor must match in name and shape and is **kept**; anything else is an error
  naming the tensors.

Resume, evaluate and predict load their own run's weights strictly
(:func:`visionbench.engine.checkpoint.load_weights_into`); only the initial weights of a training
run go through :func:`fit_state_dict`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

AUXILIARY_HEADS = ("aux1.", "aux2.", "AuxLogits.")
"""Name prefixes of torchvision's GoogLeNet and Inception v3 auxiliary heads: their published files
hold them, visionbench builds both without them (``aux_logits=False``), so they are dropped."""


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """An RGB stem's ``weight`` ``[O, 3, kh, kw]`` for ``in_channels`` inputs ``[O, C, kh, kw]``.

    One channel gets the sum over RGB (a grey image ``g`` seen as ``(g, g, g)`` gives the same
    response); other counts repeat R, G, B cyclically and scale by ``3 / C`` so the response to a
    constant image keeps its size.

    Example:
        >>> w = torch.ones(2, 3, 1, 1)
        >>> adapt_input_conv(w, 1)[0, 0, 0, 0].item(), adapt_input_conv(w, 4).shape
        (3.0, torch.Size([2, 4, 1, 1]))
    """
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"an RGB stem weight must have shape [out, 3, kh, kw]; got {tuple(weight.shape)}.")
    dtype = weight.dtype
    weight = weight.float()  # sums of half-precision weights lose digits
    if in_channels == 1:
        adapted = weight.sum(dim=1, keepdim=True)
    else:
        repeats = math.ceil(in_channels / 3)
        adapted = weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (3 / in_channels)
    return adapted.to(dtype)


@dataclass
class FitReport:
    """What :func:`fit_state_dict` did with each tensor of the model.

    Attributes:
        kept: loaded as stored.
        adapted: changed to fit (``name: what was done``): RGB stems for other channel counts, ViT
            position embeddings for another patch grid.
        reinitialised: left at the model's random init (``name: why``): heads of another class count,
            and counters the file lacks.
        dropped: tensors of the file the model has no place for (names): auxiliary heads.
    """

    kept: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One log line: counts, the names of adapted and re-initialised tensors, and the heads dropped."""
        text = f"kept {len(self.kept)} tensors, adapted {len(self.adapted)}"
        text += f" ({'; '.join(self.adapted)})" if self.adapted else ""
        text += f", re-initialised {len(self.reinitialised)}"
        text += f" ({'; '.join(self.reinitialised)})" if self.reinitialised else ""
        if self.dropped:  # one entry per head, not per tensor: GoogLeNet's heads hold 20 tensors
            heads = sorted({prefix for prefix in AUXILIARY_HEADS for name in self.dropped if name.startswith(prefix)})
            text += f", dropped {len(self.dropped)} ({', '.join(h + '*' for h in heads)}: auxiliary heads this model lacks)"
        return text


def _is_head(name: str, stored: torch.Tensor, wanted: torch.Tensor, num_classes: int | None) -> bool:
    """A classifier output tensor for another class count: only the first dimension differs, and
    the model's is its class count."""
    return (num_classes is not None and stored.dim() == wanted.dim() and stored.dim() >= 1
            and wanted.shape[0] == num_classes and stored.shape[0] != num_classes
            and stored.shape[1:] == wanted.shape[1:])


def _is_stem(stored: torch.Tensor, wanted: torch.Tensor) -> bool:
    """An RGB convolution weight where the model takes another channel count."""
    return (stored.dim() == 4 and wanted.dim() == 4 and stored.shape[1] == 3 and wanted.shape[1] != 3
            and stored.shape[0] == wanted.shape[0] and stored.shape[2:] == wanted.shape[2:])


def _is_position_embedding(name: str, stored: torch.Tensor, wanted: torch.Tensor) -> bool:
    """A ViT position embedding ``[1, 1 + g*g, D]`` (class token first) for another square patch grid."""
    return (name.endswith("pos_embedding") and stored.dim() == 3 and wanted.dim() == 3
            and stored.shape[0] == wanted.shape[0] == 1 and stored.shape[2] == wanted.shape[2]
            and _grid_side(stored.shape[1] - 1) is not None and _grid_side(wanted.shape[1] - 1) is not None)


def _grid_side(patches: int) -> int | None:
    """``g`` when ``patches == g * g`` (g ≥ 1), else ``None``."""
    side = math.isqrt(patches) if patches > 0 else 0
    return side if side > 0 and side * side == patches else None


def resize_position_embedding(embedding: torch.Tensor, tokens: int) -> torch.Tensor:
    """A ViT position embedding ``[1, 1 + g*g, D]`` for ``tokens = 1 + G*G`` tokens: the class
    token's row kept, the ``g × g`` grid resized to ``G × G`` bicubically (``align_corners=True``,
    as torchvision's ``vision_transformer.interpolate_embeddings``).

    Example:
        >>> resize_position_embedding(torch.zeros(1, 1 + 14 * 14, 8), 1 + 2 * 2).shape
        torch.Size([1, 5, 8])
    """
    valid = embedding.dim() == 3 and embedding.shape[0] == 1
    old, new = (_grid_side(embedding.shape[1] - 1), _grid_side(tokens - 1)) if valid else (None, None)
    if old is None or new is None:
        raise ValueError(f"a position embedding must have shape [1, 1 + g*g, D] and tokens 1 + G*G; got "
                         f"{tuple(embedding.shape)} and {tokens} tokens.")
    dtype, dim = embedding.dtype, embedding.shape[2]
    grid = embedding[:, 1:].float().permute(0, 2, 1).reshape(1, dim, old, old)  # bicubic needs float32
    grid = torch.nn.functional.interpolate(grid, size=new, mode="bicubic", align_corners=True)
    grid = grid.reshape(1, dim, new * new).permute(0, 2, 1)
    return torch.cat([embedding[:, :1].float(), grid], dim=1).to(dtype)


def fit_state_dict(model_state: dict[str, torch.Tensor], stored: dict[str, torch.Tensor], source: str, *,
                   num_classes: int | None = None) -> tuple[dict[str, torch.Tensor], FitReport]:
    """``stored`` fitted to a model whose state dict is ``model_state``: the full state dict to load
    (strictly) and what was kept, adapted and re-initialised (rules in the module docstring).

    Args:
        model_state: the freshly built model's ``state_dict()`` (its random init).
        stored: the weights file's state dict.
        source: the file or weights name, for messages.
        num_classes: the model's class count (heads of another count are re-initialised); ``None``:
            no head is replaced.

    Raises:
        ValueError: tensors missing, unexpected or of another shape that no rule covers, named.
    """
    report = FitReport()
    # OrderedDict so it can carry the model's module versions: MNASNet refuses a state dict without them.
    fitted: dict[str, torch.Tensor] = OrderedDict()
    if hasattr(model_state, "_metadata"):
        fitted._metadata = model_state._metadata  # type: ignore[attr-defined]
    problems: list[str] = []
    for name, wanted in model_state.items():
        if name not in stored:
            if name.endswith("num_batches_tracked"):  # older torchvision files predate the counter
                fitted[name] = wanted
                report.reinitialised.append(f"{name}: not in the file")
            else:
                problems.append(f"{name} {tuple(wanted.shape)} missing from the file")
            continue
        tensor = stored[name]
        if tensor.shape == wanted.shape:
            fitted[name] = tensor.to(wanted.dtype)
            report.kept.append(name)
        elif _is_head(name, tensor, wanted, num_classes):
            fitted[name] = wanted
            report.reinitialised.append(f"{name}: {tensor.shape[0]} → {wanted.shape[0]} classes")
        elif _is_stem(tensor, wanted):
            fitted[name] = adapt_input_conv(tensor, wanted.shape[1]).to(wanted.dtype)
            how = "summed over RGB" if wanted.shape[1] == 1 else "RGB repeated, scaled by 3/C"
            report.adapted.append(f"{name}: 3 → {wanted.shape[1]} input channels ({how})")
        elif _is_position_embedding(name, tensor, wanted):
            fitted[name] = resize_position_embedding(tensor, wanted.shape[1]).to(wanted.dtype)
            old, new = _grid_side(tensor.shape[1] - 1), _grid_side(wanted.shape[1] - 1)
            report.adapted.append(f"{name}: {old}×{old} → {new}×{new} patch grid (bicubic, class token kept)")
        else:
            problems.append(f"{name}: file {tuple(tensor.shape)} vs model {tuple(wanted.shape)}")
    unexpected = sorted(set(stored) - set(model_state))
    report.dropped = [name for name in unexpected if _is_missing_auxiliary_head(name, model_state)]
    unexpected = [name for name in unexpected if name not in report.dropped]
    problems += [f"{name} {tuple(stored[name].shape)} in the file but not in the model" for name in unexpected]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise ValueError(f"initial weights {source!r}: the file does not fit this model: {shown}. Only a classifier head of another class "
                         "count, an RGB stem for 1 or 4 channels and a ViT position embedding are adapted, and "
                         "auxiliary heads dropped; use weights saved from the same --model.")
    return fitted, report


def _is_missing_auxiliary_head(name: str, model_state: dict[str, torch.Tensor]) -> bool:
    """A tensor of an auxiliary head (:data:`AUXILIARY_HEADS`) that the model does not have at all."""
    prefix = next((p for p in AUXILIARY_HEADS if name.startswith(p)), None)
    return prefix is not None and not any(key.startswith(prefix) for key in model_state)


__all__ = ["AUXILIARY_HEADS", "FitReport", "adapt_input_conv", "fit_state_dict", "resize_position_embedding"]
