"""Process-level set-up: multi-host initialisation before any JAX computation."""

from __future__ import annotations

import jax


def initialize(distributed: bool = False) -> None:
    """Joins the multi-host job (coordinator, process count/id from the cluster environment)."""
    if distributed:
        jax.distributed.initialize()
