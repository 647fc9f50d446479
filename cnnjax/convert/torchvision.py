"""`from_torchvision(name, state_dict) -> variables`, checked leaf by leaf against the registered model.

The family modules imported below register their converters (`@register_converter`); a converter maps a
`TorchWeights` to Flax variables via `build_variables`. A converter bug is an error, not a wrong network.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

# Imported for their registrations; every torchvision twin without a converter fails the parity guard test.
from cnnjax.convert import (alexnet, densenet, efficientnet, inception, mobilenet, resnet,  # noqa: F401
                            shufflenet, squeezenet, vgg)
from cnnjax.convert.registry import converter
from cnnjax.convert.torch_weights import ConversionError, TorchWeights, Variables
from cnnjax.models import create_model, model_info


def expected_shapes(name: str, num_classes: int | None = None, **overrides: Any) -> Variables:
    """Shape tree of a model's variables, without allocating them."""
    model = create_model(name, num_classes, **overrides)
    x = jnp.zeros((1, *model_info(name).input_shape), jnp.float32)
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(0)}
    return jax.eval_shape(lambda: model.init(rngs, x, train=False))


def from_torchvision(name: str, state_dict: Mapping[str, Any], num_classes: int | None = None,
                     **overrides: Any) -> Variables:
    """Converts a torchvision state_dict of the twin of cnnjax model `name` into Flax variables."""
    variables = converter(name)(TorchWeights(state_dict), name)
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
