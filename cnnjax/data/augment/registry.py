"""The op registry, the spec parser and the batch application shared by every augmentation module.

Ops are composed by name: "random_crop(padding=4)|flip_lr". Each registered factory checks its arguments
(one-line `AugmentSpecError`) and returns an op (key, image HWC float32) -> image, vmapped over the batch
with one key per example, so the result depends only on the example's key — not on the batch split
across devices.

Pixel units: `apply` converts the batch to float32 ONCE (uint8 [0, 255] stays in [0, 255] units), runs every
op in float32 and rounds and clips back to the input dtype at the end. So ops compose without a rounding
step between them, an op never clips on its own (fancy PCA's shift is exactly additive on float input),
and arguments in pixel units (channel_shift, fancy PCA's eigenvalues) mean [0, 255] units.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from cnnjax.errors import CnnjaxError

Op = Callable[[jax.Array, jax.Array], jax.Array]
_OPS: dict[str, Callable[..., Op]] = {}
CONTEXT_ARG = "context"  # a factory with this keyword receives the AugmentContext (not a user argument)


class AugmentSpecError(CnnjaxError, ValueError):
    """An augmentation spec that does not parse, or names an op, argument or value that does not exist."""


@dataclasses.dataclass(frozen=True)
class AugmentContext:
    """What data-dependent ops need to know about the training split (tuples: hashable, static under jit).

    `parse(spec)` without a context only checks the spec (config validation, before any data is loaded);
    an op that needs data it was not given then fails when it is applied.
    """

    channels: int | None = None
    rgb_eigvals: tuple[float, float, float] | None = None  # of the RGB covariance, [0, 255]^2 units, descending
    rgb_eigvecs: tuple[tuple[float, float, float], ...] | None = None  # rows = RGB, columns = eigenvectors


def require(ok: bool, message: str) -> None:
    if not ok:
        raise AugmentSpecError(message)


def number(op: str, arg: str, value: Any, lo: float = -float("inf"), hi: float = float("inf")) -> float:
    """A real number in [lo, hi] (bools are not numbers here)."""
    require(isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi,
            f"{op}({arg}=...) takes a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def interval(op: str, arg: str, value: Any, lo: float = -float("inf"), hi: float = float("inf")) -> tuple[float, float]:
    """A (low, high) pair with lo <= low <= high <= hi."""
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
          and lo <= value[0] <= value[1] <= hi)
    require(ok, f"{op}({arg}=...) takes a pair (low, high) with {lo:g} <= low <= high <= {hi:g}, got {value!r}")
    return float(value[0]), float(value[1])


def symmetric(op: str, arg: str, value: Any, hi: float) -> tuple[float, float]:
    """`d` -> (-d, d), or an explicit (low, high) pair, both within [-hi, hi]."""
    if isinstance(value, (tuple, list)):
        return interval(op, arg, value, -hi, hi)
    d = number(op, arg, value, 0, hi)
    return -d, d


def register_op(name: str):
    def wrap(make: Callable[..., Op]) -> Callable[..., Op]:
        _OPS[name] = make
        return make
    return wrap


def op_names() -> list[str]:
    return sorted(_OPS)


def parse(spec: str, context: AugmentContext | None = None) -> list[Op]:
    """'random_crop(padding=4)|flip_lr' -> ops. Arguments are by name and literal; anything else (an
    unknown op or argument, a positional argument, a bad value) is an `AugmentSpecError` saying what to write."""
    ops = []
    for name, kwargs in parse_calls(spec):
        make = _OPS[name]
        if CONTEXT_ARG in inspect.signature(make).parameters:
            kwargs = {**kwargs, CONTEXT_ARG: context}
        ops.append(make(**kwargs))
    return ops


def parse_calls(spec: str) -> list[tuple[str, dict[str, Any]]]:
    """The (op name, user arguments) of every op of the spec, checked for names only."""
    return [_parse_call(part) for part in filter(None, (p.strip() for p in spec.split("|")))]


def _parse_call(part: str) -> tuple[str, dict[str, Any]]:
    usage = "write name(arg=value, ...), e.g. random_crop(padding=4)|flip_lr"
    try:
        node = ast.parse(part, mode="eval").body
    except SyntaxError:
        raise AugmentSpecError(f"cannot parse augmentation {part!r}: {usage}") from None
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call else node
    require(isinstance(target, ast.Name), f"cannot parse augmentation {part!r}: {usage}")
    name = target.id
    if name not in _OPS:
        close = difflib.get_close_matches(name, list(_OPS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AugmentSpecError(f"unknown augmentation {name!r}{hint}; available: {', '.join(sorted(_OPS))}")
    params = [p for p in inspect.signature(_OPS[name]).parameters if p != CONTEXT_ARG]
    if call is None:
        return name, {}
    require(not call.args, f"augmentation {part!r}: give arguments by name, e.g. {name}({params[0]}=...)"
            if params else f"augmentation {name!r} takes no arguments")
    kwargs = {}
    for keyword in call.keywords:
        require(keyword.arg in params, f"augmentation {name!r} has no argument {keyword.arg!r}; "
                f"its arguments: {', '.join(params) or 'none'}")
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise AugmentSpecError(f"augmentation {part!r}: {keyword.arg}= must be a number, string or "
                                   "tuple literal") from None
    return name, kwargs


def apply(ops: list[Op], key: jax.Array, images: jax.Array) -> jax.Array:
    """Applies the ops to a batch, one independent key per example and op, in float32 (see the module doc);
    integer input is rounded and clipped back to its dtype's range."""
    if not ops:
        return images
    keys = jax.random.split(key, (images.shape[0], len(ops)))

    def one(example_keys: jax.Array, image: jax.Array) -> jax.Array:
        for op_key, op in zip(example_keys, ops):
            image = op(op_key, image)
        return image

    out = jax.vmap(one)(keys, images.astype(jnp.float32))
    if jnp.issubdtype(images.dtype, jnp.integer):
        info = jnp.iinfo(images.dtype)
        return jnp.clip(jnp.round(out), info.min, info.max).astype(images.dtype)
    return out.astype(images.dtype)
