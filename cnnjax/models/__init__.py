"""Model zoo. Importing the package registers every model family (the modules of `families/`).

The package holds the registry and the building blocks any family may use; each architecture lives in
its own module under `families/`, which imports only these shared modules, never another family.
"""

from cnnjax.models import families as _families  # noqa: F401  (registers the models)
from cnnjax.models.registry import (ModelInfo, UnknownModelError, create_model, list_models, model_info,
                                    register_model)

__all__ = ["ModelInfo", "UnknownModelError", "create_model", "list_models", "model_info", "register_model"]
