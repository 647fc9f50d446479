"""Per-example augmentation ops that run inside jit, composed by name: "random_crop(padding=4)|flip_lr".

Each op maps (key, image HWC) -> image and is vmapped over the batch with one key per example, so the
result depends only on the example's key — not on the batch split across devices.
"""

from __future__ import annotations

import ast
import re
from typing import Callable

import jax
import jax.numpy as jnp

Op = Callable[[jax.Array, jax.Array], jax.Array]
_OPS: dict[str, Callable[..., Op]] = {}


def register_op(name: str):
    def wrap(make: Callable[..., Op]) -> Callable[..., Op]:
        _OPS[name] = make
        return make
    return wrap


@register_op("random_crop")
def random_crop(padding: int = 4) -> Op:
    """Zero-pad by `padding` pixels, then crop back to the original size at a random offset."""
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        h, w, _ = image.shape
        padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)))
        dy, dx = jax.random.randint(key, (2,), 0, 2 * padding + 1, dtype=jnp.int32)
        return jax.lax.dynamic_slice(padded, (dy, dx, jnp.int32(0)), image.shape)
    return op


@register_op("flip_lr")
def flip_lr(prob: float = 0.5) -> Op:
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        return jnp.where(jax.random.uniform(key, dtype=jnp.float32) < prob, image[:, ::-1, :], image)
    return op


_CALL = re.compile(r"^\s*(\w+)\s*(?:\((.*)\))?\s*$")


def parse(spec: str) -> list[Op]:
    """'random_crop(padding=4)|flip_lr' -> ops; unknown names raise with the list of ops."""
    ops = []
    for part in filter(None, (p.strip() for p in spec.split("|"))):
        match = _CALL.match(part)
        if not match or match.group(1) not in _OPS:
            raise ValueError(f"unknown augmentation {part!r}; available: {', '.join(sorted(_OPS))}")
        kwargs = {}
        if match.group(2):
            call = ast.parse(f"f({match.group(2)})", mode="eval").body
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        ops.append(_OPS[match.group(1)](**kwargs))
    return ops


def apply(ops: list[Op], key: jax.Array, images: jax.Array) -> jax.Array:
    """Applies the ops to a batch, one independent key per example and op."""
    if not ops:
        return images
    keys = jax.random.split(key, (images.shape[0], len(ops)))

    def one(example_keys: jax.Array, image: jax.Array) -> jax.Array:
        for op_key, op in zip(example_keys, ops):
            image = op(op_key, image)
        return image

    return jax.vmap(one)(keys, images)
