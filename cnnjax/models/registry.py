"""Model registry: names -> factories plus the metadata needed to feed and evaluate them.

Every family module registers its models with `register_model("name", factory, ...)`; `create_model` is
the only way the rest of the codebase builds a network, so unknown names and unknown overrides fail in one
place with one clear message. The dataset statistics live here, beside the metadata that uses them, so any
family can use them without importing another family.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from typing import Any, Callable

import flax.linen as nn

from cnnjax.errors import CnnjaxError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Metadata of models trained on 28x28 (Fashion-)MNIST and on CIFAR: no centre crop at evaluation.
MNIST_STATS: dict[str, Any] = dict(mean=(0.5,), std=(0.5,), crop_pct=1.0)
CIFAR_STATS: dict[str, Any] = dict(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), crop_pct=1.0)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a user needs to know to feed and evaluate a registered model."""

    name: str
    family: str
    input_shape: tuple[int, int, int]  # (H, W, C) the reference was trained at
    num_classes: int
    min_input_size: int = 1  # smallest square input the downsampling allows
    crop_pct: float = 0.875  # centre-crop fraction used for evaluation (timm convention)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    torchvision: str | None = None  # name of the torchvision twin, if any
    reference: str = ""
    factory: Callable[..., nn.Module] | None = dataclasses.field(default=None, repr=False, compare=False)


_REGISTRY: dict[str, ModelInfo] = {}


class UnknownModelError(CnnjaxError, KeyError):
    """Raised for a model name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def register_model(
    name: str,
    factory: Callable[..., nn.Module],
    *,
    family: str,
    input_shape: tuple[int, int, int],
    num_classes: int = 1000,
    **info: Any,
) -> None:
    """Registers `factory(num_classes=...) -> nn.Module` under `name`.

    The factory is usually the model class or a `functools.partial` of it fixing the variant's fields, so a
    table of variants registers in a loop without a closure per name.
    """
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = ModelInfo(
        name=name, family=family, input_shape=tuple(input_shape), num_classes=num_classes, factory=factory,
        **info)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell-style pattern, e.g. `list_models("resnet*")`."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model; unknown names raise with the closest matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} See `cnnjax models` or cnnjax.models.list_models() "
            "for the registered names.") from None


def create_model(name: str, num_classes: int | None = None, **overrides: Any) -> nn.Module:
    """Builds the registered module `name`; `overrides` set its fields (act=, init=, shortcut=, ...).

    `init=` is accepted as the name of the `weight_init` field.
    """
    info = model_info(name)
    if "init" in overrides:  # `Module.init` is Flax's initialiser method, so the field has another name
        overrides["weight_init"] = overrides.pop("init")
    module = info.factory(num_classes=info.num_classes if num_classes is None else num_classes)
    fields = {f.name for f in dataclasses.fields(module) if f.init and f.name not in ("parent", "name")}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(
            f"model {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(sorted(fields))}.")
    return module.clone(**overrides) if overrides else module
