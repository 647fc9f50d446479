"""One abstract trace of a model's forward pass: the jaxpr every count and table of the package is read off.

Tracing `init_with_output` under `jax.make_jaxpr` costs no compilation and allocates nothing, so even
VGG-16 is introspected in about a second. This module knows nothing about MACs or tables; it only turns a
registered name (or a module) and an input shape into a `ForwardTrace`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from cnnjax.errors import CnnjaxError
from cnnjax.models import create_model, model_info


class InputSizeError(CnnjaxError, ValueError):
    """The requested input is smaller than the model's downsampling allows."""


class NumClassesError(CnnjaxError, ValueError):
    """A classifier needs at least one output; 0 or fewer would fail deep inside the initialisers."""


def input_array(shape: tuple[int, int, int], batch: int = 1, dtype: Any = jnp.float32) -> jax.ShapeDtypeStruct:
    """The abstract (batch, H, W, C) input: a shape to trace with, never an allocated array."""
    return jax.ShapeDtypeStruct((batch, *shape), dtype)


def model_input_shape(name: str, input_size: int | None = None) -> tuple[int, int, int]:
    """The registered (H, W, C) input, optionally with a square `input_size` instead of (H, W)."""
    info = model_info(name)
    h, w, c = info.input_shape
    if input_size is None:
        return h, w, c
    if input_size < info.min_input_size:
        raise InputSizeError(f"{name} needs inputs of at least {info.min_input_size}x{info.min_input_size}, "
                             f"got {input_size}x{input_size}")
    return input_size, input_size, c


def registered_model(name: str, input_size: int | None = None, num_classes: int | None = None,
                     **overrides: Any) -> tuple[nn.Module, tuple[int, int, int]]:
    """The module `name` and its (H, W, C) input, with the options checked before anything is traced.

    Bad options are user errors (`CnnjaxError`, one line from the CLI), not tracebacks from JAX.
    """
    input_shape = model_input_shape(name, input_size)  # an unknown name is reported first
    if num_classes is not None and num_classes < 1:
        raise NumClassesError(f"{name} needs at least 1 class, got num_classes={num_classes}")
    return create_model(name, num_classes=num_classes, **overrides), input_shape


def tree_size(tree: Any) -> int:
    """Number of entries of a pytree of arrays or ShapeDtypeStructs."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def count_params(variables: dict) -> int:
    """Entries of the `params` collection (BN scale/bias in, running statistics out, as torchvision)."""
    return tree_size(variables.get("params", {}))


@dataclasses.dataclass(frozen=True)
class ForwardTrace:
    """One abstract trace of `module.init_with_output(key, x, train=False)`.

    Tracing the initialisation once yields both the variable shapes and the eval forward; the
    equations that depend on the input `x` are exactly the forward pass (initialisers only depend
    on the rng key), which is what `forward_eqns` selects. No array is allocated or computed.
    """

    jaxpr: jcore.ClosedJaxpr
    variables: dict  # ShapeDtypeStructs
    output: Any

    @property
    def input_var(self) -> jcore.Var:
        """The image argument of the traced function."""
        return self.jaxpr.jaxpr.invars[0]

    def forward_eqns(self) -> list[jcore.JaxprEqn]:
        """Top-level equations downstream of the input image, in program order."""
        live = {self.input_var}
        eqns = []
        for eqn in self.jaxpr.jaxpr.eqns:
            if any(isinstance(v, jcore.Var) and v in live for v in eqn.invars):
                live.update(eqn.outvars)
                eqns.append(eqn)
        return eqns

    @property
    def params(self) -> int:
        return count_params(self.variables)


def trace_forward(module: nn.Module, x: jax.ShapeDtypeStruct, named: bool = False) -> ForwardTrace:
    """Abstract trace of init + eval forward; `named` tags equations with their module path."""
    fn: Callable = lambda inp: module.init_with_output(jax.random.key(0), inp, train=False)
    with nn.override_named_call(named):
        jaxpr, (output, variables) = jax.make_jaxpr(fn, return_shape=True)(x)
    return ForwardTrace(jaxpr, variables, output)
