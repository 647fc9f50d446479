"""Model zoo. Importing the package registers every family module in this folder."""

import importlib as _importlib
import pkgutil as _pkgutil

from cnnjax.models.registry import (ModelInfo, UnknownModelError, create_model, list_models, model_info,
                                    register_model)

_NOT_FAMILIES = {"registry", "layers", "activations", "initializers", "pooling", "lrn", "squeeze_excite"}
for _module in _pkgutil.iter_modules(__path__):
    if _module.name not in _NOT_FAMILIES and not _module.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ModelInfo", "UnknownModelError", "create_model", "list_models", "model_info", "register_model"]
