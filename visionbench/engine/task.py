"""What differs between tasks, as a small record of functions the one training loop calls.

:mod:`visionbench.engine.train` knows nothing of labels, boxes or masks: it asks the task for its
data, loss, the loss of a batch, the validation numbers of an epoch and the test-split
outputs. Each task module (:mod:`~visionbench.engine.classify`, :mod:`~visionbench.engine.detect`,
:mod:`~visionbench.engine.segment`) provides these as plain functions in a :class:`TaskHooks`;
the training loop looks them up by task name (:func:`visionbench.engine.train.task_hooks`), so
this record sits below both and imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskHooks:
    """The task-specific steps of training and evaluation.

    Attributes:
        build_data: ``(config) -> DataBundle``: the splits, wrapped as batch datasets.
        build_loss: ``(config, bundle) -> nn.Module | None`` (``None``: the model returns its losses).
        parameter_groups: ``(config, model) -> params or groups`` for the optimizer.
        sample_weights: ``(config, bundle) -> Tensor | None``: training sampling weights.
        batch_loss: ``(trainer, batch, device) -> (loss, samples)``: the loss of one training batch.
        validate: ``(model, loader, trainer, runtime, bundle) -> dict``: the ``val_*`` numbers of an epoch.
        evaluate_and_write: ``(model, config, bundle, run_dir, runtime, log) -> metrics``: test
            split metrics, predictions and examples written to the run directory.
    """

    build_data: Callable[..., Any]
    build_loss: Callable[..., Any]
    parameter_groups: Callable[..., Any]
    sample_weights: Callable[..., Any]
    batch_loss: Callable[..., Any]
    validate: Callable[..., Any]
    evaluate_and_write: Callable[..., Any]
