"""Import of torchvision weights: `from_torchvision(name, state_dict) -> variables`.

Each family module in this folder registers converters with `@register_converter("resnet50", ...)`; a
converter maps a `TorchWeights` to Flax variables via `build_variables`. The result is checked leaf by
leaf against the shapes of the registered model, so a converter bug is an error, not a wrong network.
"""

from __future__ import annotations

import importlib as _importlib
import pkgutil as _pkgutil
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.convert.torch_weights import ConversionError, TorchWeights, Variables
from cnnjax.models import create_model, model_info

Converter = Callable[[TorchWeights, str], Variables]
_CONVERTERS: dict[str, Converter] = {}


def register_converter(*names: str) -> Callable[[Converter], Converter]:
    """Registers `converter(weights, model_name) -> variables` for the given cnnjax model names."""

    def wrap(fn: Converter) -> Converter:
        for name in names:
            if name in _CONVERTERS:
                raise ValueError(f"converter for {name!r} registered twice")
            _CONVERTERS[name] = fn
        return fn

    return wrap


def convertible_models() -> list[str]:
    return sorted(_CONVERTERS)


def expected_shapes(name: str, num_classes: int | None = None, **overrides: Any) -> Variables:
    """Shape tree of a model's variables, without allocating them."""
    model = create_model(name, num_classes, **overrides)
    x = jnp.zeros((1, *model_info(name).input_shape), jnp.float32)
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(0)}
    return jax.eval_shape(lambda: model.init(rngs, x, train=False))


def from_torchvision(name: str, state_dict: Mapping[str, Any], num_classes: int | None = None,
                     **overrides: Any) -> Variables:
    """Converts a torchvision state_dict of the twin of cnnjax model `name` into Flax variables."""
    if name not in _CONVERTERS:
        raise ConversionError(
            f"no torchvision converter for {name!r}; convertible models: {', '.join(convertible_models())}")
    variables = _CONVERTERS[name](TorchWeights(state_dict), name)
    expected = expected_shapes(name, num_classes, **overrides)
    expected = {k: v for k, v in expected.items() if k in ("params", "batch_stats")}
    got_paths = dict(jax.tree_util.tree_flatten_with_path(variables)[0])
    want_paths = dict(jax.tree_util.tree_flatten_with_path(expected)[0])
    if set(got_paths) != set(want_paths):
        missing = sorted(map(jax.tree_util.keystr, set(want_paths) - set(got_paths)))[:5]
        extra = sorted(map(jax.tree_util.keystr, set(got_paths) - set(want_paths)))[:5]
        raise ConversionError(f"converted {name!r} does not match the model: missing {missing}, extra {extra}")
    for path, want in want_paths.items():
        if tuple(got_paths[path].shape) != tuple(want.shape):
            raise ConversionError(f"{name}: {jax.tree_util.keystr(path)} has shape {got_paths[path].shape}, "
                                  f"the model expects {want.shape}")
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float32)), variables)


for _module in _pkgutil.iter_modules(__path__):
    if _module.name not in ("torch_weights", "files") and not _module.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ConversionError", "TorchWeights", "convertible_models", "from_torchvision", "register_converter"]
