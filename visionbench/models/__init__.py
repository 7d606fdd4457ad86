"""Model registry: ``create_model(name, num_classes=…, in_channels=…)``, ``list_models("res*")``."""

from visionbench.models import classifiers as _classifiers  # noqa: F401  (fills the registry)
from visionbench.models._registry import MODELS, create_model, list_models, model_input_size, register_model

__all__ = ["MODELS", "create_model", "list_models", "model_input_size", "register_model"]
