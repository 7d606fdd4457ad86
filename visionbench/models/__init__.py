"""Model registry: ``create_model(name, num_classes=…, in_channels=…)``, ``list_models("res*")``.

Classifiers, detectors and segmenters share one registry; each entry's ``task`` info says which.
The built-in models are registered from :data:`~visionbench.models.catalog.CATALOG` without
importing their modules, so importing this package (and ``visionbench list models``) needs neither
torch nor torchvision; a model's module is imported when it is first built.
"""

from visionbench.models._registry import MODELS, create_model, list_models, model_input_size, register_model
from visionbench.models.catalog import CATALOG

for _spec in CATALOG:
    MODELS.register_lazy(_spec.name, _spec.factory, **_spec.info())

__all__ = ["MODELS", "create_model", "list_models", "model_input_size", "register_model"]
