"""The classifier head of any registered model, found by tracing a forward pass, and its input (features).

Models name their last layer differently ("fc", "classifier", "Dense_2", SqueezeNet's 1x1 "conv10"), so
instead of a per-family table the head is *observed*: every `nn.Dense`/`nn.Conv` call of an inference
forward pass is intercepted (`nn.intercept_methods`) and the last one whose output width is the number of
classes is the head. Its input is the penultimate representation used for off-the-shelf features
(a feature map, as SqueezeNet's, is globally average-pooled to one vector per image). Auxiliary heads run
only in training, so the inference pass never mistakes one of them for the head.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class HeadCall:
    path: str  # module path, e.g. "fc" or "classifier_2" ("/"-joined for nested modules)
    inputs: jax.Array  # what the head receives (N, D) or (N, H, W, C)
    outputs: jax.Array


def trace_head(model: nn.Module, variables: dict[str, Any], images: jax.Array) -> HeadCall:
    """The head's call in an inference forward pass of `images` (works under jit and eval_shape)."""
    calls: list[HeadCall] = []

    def record(next_fun: Callable, args: tuple, kwargs: dict, context: Any) -> Any:
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and isinstance(context.module, (nn.Dense, nn.Conv)):
            calls.append(HeadCall("/".join(context.module.path), args[0], out))
        return out

    with nn.intercept_methods(record):
        logits = model.apply(variables, images, train=False)
    heads = [c for c in calls if c.outputs.shape[-1] == logits.shape[-1]]
    if not heads:
        raise ValueError(f"{type(model).__name__} has no Dense/Conv layer with {logits.shape[-1]} outputs")
    return heads[-1]


def head_path(model: nn.Module, image_shape: tuple[int, ...]) -> str:
    """The head module's parameter path (abstract trace: no arrays are computed)."""
    found: list[str] = []

    def run() -> None:
        variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)},
                               jnp.zeros((1, *image_shape)), train=False)
        found.append(trace_head(model, variables, jnp.zeros((1, *image_shape))).path)

    jax.eval_shape(run)
    return found[0]


def penultimate_features(model: nn.Module, variables: dict[str, Any], images: jax.Array) -> jax.Array:
    """(N, D) float32 input of the head; feature maps are averaged over space."""
    inputs = trace_head(model, variables, images).inputs
    if inputs.ndim == 4:
        inputs = jnp.mean(inputs, axis=(1, 2))
    return inputs.reshape(inputs.shape[0], -1).astype(jnp.float32)
