"""The model families: every module in this folder registers its models when imported.

Membership is the folder itself, so a new family module is picked up without being listed anywhere.
"""

import importlib as _importlib
import pkgutil as _pkgutil

for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")
