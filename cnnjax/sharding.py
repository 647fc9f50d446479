"""The device mesh that data, training and evaluation share: one `data` axis over every device (of every
host), and host values replicated onto it.

It sits at the bottom of the package graph (it imports nothing from cnnjax), so the input pipeline, the
sharded train step and exact evaluation all place arrays the same way without importing each other.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnjax.errors import CnnjaxError

AXIS = "data"


class DeviceCountError(CnnjaxError, ValueError):
    """More devices asked for than are visible, or a batch that does not split evenly over them."""


def make_mesh(num_devices: int = 0) -> Mesh:
    """A mesh over all devices (of all hosts), or over the first `num_devices`."""
    devices = jax.devices()
    if num_devices:
        if num_devices > len(devices):
            raise DeviceCountError(f"num_devices={num_devices} but only {len(devices)} devices are visible; "
                                   "use --config.num_devices=0 for all of them")
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), (AXIS,))


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "batch_size") -> None:
    if batch_size % mesh.size:
        raise DeviceCountError(f"{what}={batch_size} must be divisible by the {mesh.size} devices of the mesh; "
                               f"use a multiple of {mesh.size}")


def replicate_array(x: Any, mesh: Mesh) -> jax.Array:
    """A copy of host value `x` on every device of the mesh (works across hosts: each host holds all of x)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, NamedSharding(mesh, P()), lambda index: x[index])


def replicate_tree(tree: Any, mesh: Mesh) -> Any:
    """`replicate_array` on every leaf of a pytree (a train state, model variables)."""
    return jax.tree.map(lambda x: replicate_array(x, mesh), tree)
