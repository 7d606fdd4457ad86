"""The running training loss of an epoch, summed on the device so a step never waits for the GPU.

Reading a loss (``float(loss)``, ``torch.isfinite(loss)`` in an ``if``) makes the host wait until
the GPU has computed it, so the next step's kernels cannot be queued meanwhile. :class:`LossTally`
keeps the sum on the loss's device and reads it only every :data:`CHECK_EVERY` steps, before a
checkpoint and at the end of the epoch (:meth:`LossTally.flush`); a non-finite loss is found
there (on the CPU the step itself checks it at once, which costs nothing there). The sum is
float64, added as ``sum + loss * count`` in two roundings, exactly as the Python float sum it
replaces, so ``train_loss`` and exact resume are unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from visionbench.engine import NonFiniteLossError

CHECK_EVERY = 10  # steps between reads of the loss on a GPU (also when the progress bar shows it)


class LossTally:
    """The current epoch's loss sum over its samples, on ``device``, continuing ``progress``
    (``loss_sum``, ``step_in_epoch``)."""

    def __init__(self, progress: Any, device: torch.device) -> None:
        self.sum = torch.tensor(progress.loss_sum, dtype=torch.float64, device=device)
        self.checked_step = progress.step_in_epoch  # steps of the epoch whose losses are known to be finite

    def add(self, loss: torch.Tensor, count: int) -> None:
        """Add a batch's mean ``loss`` times its ``count`` samples (no host sync)."""
        self.sum.add_(loss.detach().to(torch.float64) * count)

    def flush(self, progress: Any) -> None:
        """Write the sum into ``progress.loss_sum`` (one host sync).

        Raises:
            NonFiniteLossError: a loss since the last flush was NaN or infinite (naming the steps).
        """
        value = float(self.sum)
        if not math.isfinite(value):
            raise NonFiniteLossError(f"loss is {value} at a step of epoch {progress.epoch + 1} between steps "
                                     f"{self.checked_step + 1} and {progress.step_in_epoch} (on a GPU the loss is "
                                     f"read every {CHECK_EVERY} steps, not at each)")
        progress.loss_sum = value
        self.checked_step = progress.step_in_epoch
