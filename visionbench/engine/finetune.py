"""Fine-tuning controls of the training loop: a frozen backbone, unfrozen at an epoch.

Whether the backbone is frozen is a function of the options and the epoch only
(:func:`backbone_frozen`), applied at the start of every (possibly resumed) epoch by
:func:`apply_epoch`: no hidden state, so a run resumed across the unfreeze continues exactly.
The optimizer holds every parameter from the start (its group layout never changes); frozen
parameters get no gradient, which SGD, Adam and AdamW skip (no weight decay, no momentum).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from visionbench.models.parts import set_backbone_trainable

__all__ = ["apply_epoch", "backbone_frozen"]


def backbone_frozen(config: Any, epoch: int) -> bool:
    """Whether the backbone is frozen during ``epoch`` (0-based, as ``Progress.epoch``): with
    ``--freeze-backbone``, before epoch ``--unfreeze-at`` (1-based; 0: frozen throughout).

    Example:
        >>> from types import SimpleNamespace as C
        >>> [backbone_frozen(C(freeze_backbone=True, unfreeze_at=3), e) for e in range(4)]
        [True, True, False, False]
    """
    if not getattr(config, "freeze_backbone", False):
        return False
    unfreeze_at = getattr(config, "unfreeze_at", 0)
    return unfreeze_at == 0 or epoch + 1 < unfreeze_at


def apply_epoch(trainer: Any, config: Any, epoch: int, device: Any, log: Any = None) -> None:
    """Freeze or unfreeze ``trainer.core``'s backbone for ``epoch`` (call after ``model.train()``).

    Under DDP the wrapper is rebuilt when the set of trainable parameters changes: DDP's reducer
    only all-reduces the parameters that required gradients when it was built.
    """
    if not getattr(config, "freeze_backbone", False):
        return
    frozen = backbone_frozen(config, epoch)
    changed = set_backbone_trainable(trainer.core, not frozen)
    if changed and isinstance(trainer.model, nn.parallel.DistributedDataParallel):
        trainer.model = nn.parallel.DistributedDataParallel(
            trainer.core, device_ids=[device.index] if device.type == "cuda" else None
        )
    if changed and log is not None:
        log(f"epoch {epoch + 1}: backbone {'frozen (training the head only)' if frozen else 'unfrozen'}")
