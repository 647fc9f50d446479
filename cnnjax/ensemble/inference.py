"""Logits of several members of one architecture in one program: stacked parameters, one jitted forward.

Members that share a model (same registry name, options, dtype and input shape) and preprocessing kind
differ only in their variables and preprocessing statistics, so a group is evaluated by one jitted function over stacked
parameters: each batch of images is gathered and sharded once for the whole group, and the host
dispatches one program per batch instead of one per member. Inside it the members run one after the other
(`lax.map`, the same convolution kernels as a single member) or, with `vectorize`, vmapped: XLA then turns
their convolutions into grouped ones, which XLA:CPU runs about 3x slower (measured with
`benchmarks/ensemble_inference.py`); on accelerators, where small models leave the device idle, the
vmapped form is the one to try. The output is laid out (batch, member, class) so the exact-evaluation loop
of `cnnjax.evaluate.exact` (pad + mask on the batch axis, gathered across processes) is reused unchanged.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnjax.data import preprocess
from cnnjax.data.pipeline import DeviceSplit
from cnnjax.evaluate.exact import predict, predict_logits
from cnnjax.sharding import AXIS, replicate_array


def stacked_predict_fn(model: nn.Module, mesh: Mesh, dtype=jnp.float32, vectorize: bool = False):
    """jit((variables, statistics), data, index) -> (batch, members, classes) float32 logits.

    `variables` and the `preprocess.Statistics` have a leading member axis on every leaf. With
    `vectorize` the members are vmapped (XLA batches their convolutions into grouped ones); otherwise
    they run one after the other inside the program (`lax.map`), each with the plain kernels.
    """
    batch_sharding = NamedSharding(mesh, P(AXIS))

    @jax.jit
    def logits_of(stacked: Any, data: DeviceSplit, index: jax.Array) -> jax.Array:
        variables, stats = stacked
        images = jax.lax.with_sharding_constraint(data.images[index], batch_sharding)

        def one_member(member_variables: Any, member_stats: preprocess.Statistics) -> jax.Array:
            return predict(model, member_variables, preprocess.apply(member_stats, images, dtype))

        if vectorize:
            logits = jax.vmap(one_member)(variables, stats)
        else:
            logits = jax.lax.map(lambda args: one_member(*args), (variables, stats))
        return jax.lax.with_sharding_constraint(jnp.swapaxes(logits, 0, 1), batch_sharding)

    return logits_of


def stack_members(variables: Sequence[Any], stats: Sequence[preprocess.Statistics],
                  mesh: Mesh) -> tuple[Any, preprocess.Statistics]:
    """The members' variables stacked leaf by leaf (replicated like their parts) and their statistics (all of
    one kind), replicated as float32."""
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *variables)
    stacked_stats = jax.tree.map(lambda *leaves: replicate_array(np.stack(leaves).astype(np.float32), mesh), *stats)
    return stacked, stacked_stats


def group_logits(predict_fn, stacked: Any, data: DeviceSplit, batch_size: int, mesh: Mesh) -> np.ndarray:
    """(members, N, classes) logits of every example of `data`, exactly once each, in order."""
    return np.swapaxes(predict_logits(predict_fn, stacked, data, batch_size, mesh), 0, 1)
