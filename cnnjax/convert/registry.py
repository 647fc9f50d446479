"""Which cnnjax models have a torchvision converter: family modules register theirs here.

It imports nothing from the converter families, so they can import it while `cnnjax.convert` is still
being initialised (no cycle through the package's `__init__`).
"""

from __future__ import annotations

from typing import Callable

from cnnjax.convert.torch_weights import ConversionError, TorchWeights, Variables

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


def converter(name: str) -> Converter:
    if name not in _CONVERTERS:
        raise ConversionError(
            f"no torchvision converter for {name!r}; convertible models: {', '.join(convertible_models())}")
    return _CONVERTERS[name]
