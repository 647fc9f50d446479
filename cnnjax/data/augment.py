"""Per-example augmentation ops that run inside jit, composed by name: "random_crop(padding=4)|flip_lr".

Each op maps (key, image HWC) -> image and is vmapped over the batch with one key per example, so the
result depends only on the example's key — not on the batch split across devices.
"""

from __future__ import annotations

import ast
import difflib
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from cnnjax.errors import CnnjaxError

Op = Callable[[jax.Array, jax.Array], jax.Array]
_OPS: dict[str, Callable[..., Op]] = {}


class AugmentSpecError(CnnjaxError, ValueError):
    """An augmentation spec that does not parse, or names an op, argument or value that does not exist."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise AugmentSpecError(message)


def register_op(name: str):
    def wrap(make: Callable[..., Op]) -> Callable[..., Op]:
        _OPS[name] = make
        return make
    return wrap


@register_op("random_crop")
def random_crop(padding: int = 4) -> Op:
    """Zero-pad by `padding` pixels, then crop back to the original size at a random offset."""
    _require(type(padding) is int and padding >= 0, f"random_crop(padding=...) takes an integer >= 0, got {padding!r}")
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        h, w, _ = image.shape
        padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)))
        dy, dx = jax.random.randint(key, (2,), 0, 2 * padding + 1, dtype=jnp.int32)
        return jax.lax.dynamic_slice(padded, (dy, dx, jnp.int32(0)), image.shape)
    return op


@register_op("flip_lr")
def flip_lr(prob: float = 0.5) -> Op:
    _require(isinstance(prob, (int, float)) and not isinstance(prob, bool) and 0 <= prob <= 1,
             f"flip_lr(prob=...) takes a probability in [0, 1], got {prob!r}")
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        return jnp.where(jax.random.uniform(key, dtype=jnp.float32) < prob, image[:, ::-1, :], image)
    return op


def parse(spec: str) -> list[Op]:
    """'random_crop(padding=4)|flip_lr' -> ops. Arguments are by name and literal; anything else (an
    unknown op or argument, a positional argument, a bad value) is an `AugmentSpecError` saying what to write."""
    ops = []
    for part in filter(None, (p.strip() for p in spec.split("|"))):
        name, kwargs = _parse_call(part)
        ops.append(_OPS[name](**kwargs))
    return ops


def _parse_call(part: str) -> tuple[str, dict[str, Any]]:
    usage = "write name(arg=value, ...), e.g. random_crop(padding=4)|flip_lr"
    try:
        node = ast.parse(part, mode="eval").body
    except SyntaxError:
        raise AugmentSpecError(f"cannot parse augmentation {part!r}: {usage}") from None
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call else node
    _require(isinstance(target, ast.Name), f"cannot parse augmentation {part!r}: {usage}")
    name = target.id
    if name not in _OPS:
        close = difflib.get_close_matches(name, list(_OPS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AugmentSpecError(f"unknown augmentation {name!r}{hint}; available: {', '.join(sorted(_OPS))}")
    params = list(inspect.signature(_OPS[name]).parameters)
    if call is None:
        return name, {}
    _require(not call.args, f"augmentation {part!r}: give arguments by name, e.g. {name}({params[0]}=...)"
             if params else f"augmentation {name!r} takes no arguments")
    kwargs = {}
    for keyword in call.keywords:
        _require(keyword.arg in params, f"augmentation {name!r} has no argument {keyword.arg!r}; "
                 f"its arguments: {', '.join(params) or 'none'}")
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise AugmentSpecError(f"augmentation {part!r}: {keyword.arg}= must be a number, string or "
                                   "tuple literal") from None
    return name, kwargs


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
