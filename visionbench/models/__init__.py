"""Model registry: ``create_model(name, num_classes=…, in_channels=…)``, ``list_models("res*")``.

Classifiers, detectors and segmenters share one registry; each entry's ``task`` info says which.
"""

from functools import partial

from visionbench.models import classifiers as _classifiers  # noqa: F401  (fills the registry)
from visionbench.models._registry import MODELS, create_model, list_models, model_input_size, register_model
from visionbench.models.detectors import register_detectors
from visionbench.models.segmenters import register_segmenters

register_detectors(partial(register_model, task="detect"))
register_segmenters(partial(register_model, task="segment"))

__all__ = ["MODELS", "create_model", "list_models", "model_input_size", "register_model"]
