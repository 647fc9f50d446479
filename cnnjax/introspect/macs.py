"""Multiply-accumulate (MAC) counting for registered models, read off the traced forward pass.

The reported number is the count of multiply-accumulates of convolutions and matrix products only
(`conv_general_dilated`, `dot_general`) in the eval-mode forward at batch 1, obtained by walking the
jaxpr (recursively through `jit`, `custom_jvp`, `scan`, ... sub-jaxprs):

* conv: output elements x (kernel window x input channels per group) = out.size * kernel.size / out_features
* dot_general: output elements x product of the contracted dimensions

Why this and not XLA's `jax.jit(f).lower(x).cost_analysis()["flops"]`: torchvision's "GFLOPS" metadata
and the papers of the era ("FLOPs", "mult-adds") count exactly these MACs and nothing else, so only
this count can be compared with them (it reproduces every torchvision `_ops` figure to its 3 decimals).
XLA's figure is 2 flops per MAC *plus* BatchNorm, activation, pooling and elementwise flops, *minus* the
products with zero padding of SAME/padded convolutions (XLA skips them, torchvision's counter does not:
ResNet-20 comes out ~8% low), and it depends on the XLA version's cost model. The jaxpr count needs only
one abstract trace (no compilation, no memory, even for VGG-16). `xla_flops` remains as an independent
cross-check: for convolutions without padding and dense layers it is exactly 2 x MACs.

Not counted, as in torchvision: BN, activations, pooling, residual additions, softmax. Transposed or
dilated convolutions count the MACs XLA issues (including products with inserted zeros).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
from jax.extend import core as jcore

from cnnjax.introspect.trace import ForwardTrace, input_array, registered_model, trace_forward


def eqn_macs(eqn: jcore.JaxprEqn) -> int:
    """MACs of one equation, not counting its sub-jaxprs."""
    name = eqn.primitive.name
    if name == "conv_general_dilated":
        out = eqn.outvars[0].aval
        rhs = eqn.invars[1].aval
        out_features = rhs.shape[eqn.params["dimension_numbers"].rhs_spec[0]]
        return math.prod(out.shape) * math.prod(rhs.shape) // out_features
    if name == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval
        contracted = math.prod(lhs.shape[d] for d in lhs_contract)
        return math.prod(eqn.outvars[0].aval.shape) * contracted
    return 0


def jaxpr_macs(jaxpr: jcore.Jaxpr | jcore.ClosedJaxpr) -> int:
    """MACs of a whole jaxpr, recursing into the sub-jaxprs of call/control-flow primitives."""
    if isinstance(jaxpr, jcore.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    return eqns_macs(jaxpr.eqns)


def eqn_total_macs(eqn: jcore.JaxprEqn) -> int:
    """MACs of an equation including its sub-jaxprs (a `while` body is counted once)."""
    inner = [jaxpr_macs(sub) for sub in jcore.jaxprs_in_params(eqn.params)]
    name = eqn.primitive.name
    if name == "cond":  # one branch runs
        nested = max(inner, default=0)
    else:  # a scan body runs `length` times
        nested = sum(inner) * (int(eqn.params["length"]) if name == "scan" else 1)
    return eqn_macs(eqn) + nested


def eqns_macs(eqns: Sequence[jcore.JaxprEqn]) -> int:
    """MACs of a sequence of equations: a whole jaxpr, a forward pass, or one row of a layer table."""
    return sum(eqn_total_macs(eqn) for eqn in eqns)


def forward_macs(trace: ForwardTrace) -> int:
    """MACs of the traced forward pass (the initialisers' equations are not part of it)."""
    return eqns_macs(trace.forward_eqns())


def model_macs(module: nn.Module, input_shape: tuple[int, int, int], batch: int = 1) -> int:
    """MACs of `module`'s eval forward on `batch` inputs of shape (H, W, C)."""
    return forward_macs(trace_forward(module, input_array(input_shape, batch)))


def count_macs(name: str, input_size: int | None = None, num_classes: int | None = None,
               **overrides: Any) -> int:
    """MACs per image of the registered model `name` (at its registered input size by default)."""
    return model_macs(*registered_model(name, input_size, num_classes, **overrides))


def xla_flops(module: nn.Module, input_shape: tuple[int, int, int], batch: int = 1) -> float:
    """XLA's own flop estimate of the eval forward (lowered, not compiled): a cross-check of the MACs."""
    x = input_array(input_shape, batch)
    variables = trace_forward(module, x).variables
    lowered = jax.jit(lambda v, inp: module.apply(v, inp, train=False)).lower(variables, x)
    analysis = lowered.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older JAX returned one dict per device
        analysis = analysis[0]
    return float(analysis["flops"])
