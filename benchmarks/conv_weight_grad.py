"""Prototype: convolution weight gradients as a sum of shifted matmuls on XLA:CPU (benchmark only).

Why: on CPU, XLA spends most of a small CNN's training step in the weight gradient of its convolutions
(see the notes in the issue: 99-155 ms of a 557 ms Keras-CNN step per 3x3 conv). For stride 1 and no
dilation, dW[i, j] = sum over (n, h, w) of x_pad[n, h+i, w+j, :]^T g[n, h, w, :], i.e. kh*kw plain matmuls
of a shifted slice of the input with the output gradient, which XLA:CPU runs much faster than its
convolution-backprop-filter. `shifted_matmul_conv` is a drop-in for `lax.conv_general_dilated` (flax's
`nn.Conv(conv_general_dilated=...)`) with that weight gradient via `jax.custom_vjp`; the input gradient
and the forward stay XLA's. Nothing here changes the library: a model variant overrides `ops()`.

Usage:
    python benchmarks/conv_weight_grad.py --batch 128 --steps 5 --reps 3
prints (1) the max abs difference of the gradients against XLA's, (2) one conv's weight-gradient time
each way, (3) training img/s of keras_cnn (and lenet5) with XLA's and with the shifted-matmul weight
gradient, alternated with the PyTorch twin, using `train_throughput.py`'s real cnnjax training step.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_throughput as tt  # noqa: E402

from cnnjax.models import create_model  # noqa: E402

NHWC = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, w: jax.Array, pads: tuple[tuple[int, int], ...]) -> jax.Array:
    return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _fast_conv(x: jax.Array, w: jax.Array, pads: tuple[tuple[int, int], ...]) -> jax.Array:
    return _conv(x, w, pads)


def _fast_conv_fwd(x, w, pads):
    return _conv(x, w, pads), (x, w)


def _fast_conv_bwd(pads, residuals, g):
    x, w = residuals
    _, input_vjp = jax.vjp(lambda x: _conv(x, w, pads), x)  # XLA's input gradient (DCE'd for the image)
    (dx,) = input_vjp(g)
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    kh, kw, cin, cout = w.shape
    ho, wo = g.shape[1:3]
    g2 = g.reshape(-1, cout)
    rows = [[xp[:, i:i + ho, j:j + wo, :].reshape(-1, cin).T @ g2 for j in range(kw)] for i in range(kh)]
    return dx, jnp.stack([jnp.stack(r) for r in rows]).astype(w.dtype)


_fast_conv.defvjp(_fast_conv_fwd, _fast_conv_bwd)


def shifted_matmul_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                        dimension_numbers=None, feature_group_count=1, precision=None, **kwargs) -> jax.Array:
    """`lax.conv_general_dilated` for flax's NHWC/HWIO 2-D convs; the fast path needs stride 1, no
    dilation, one group (anything else falls back to XLA's convolution unchanged)."""
    plain = (lhs.ndim == 4 and tuple(window_strides) == (1, 1) and feature_group_count == 1 and not kwargs
             and all(d is None or tuple(d) == (1, 1) for d in (lhs_dilation, rhs_dilation)))
    if not plain:
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, precision=precision, **kwargs)
    if isinstance(padding, str):
        pads = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], (1, 1), padding)
    else:
        pads = padding
    return _fast_conv(lhs, rhs, tuple((int(lo), int(hi)) for lo, hi in pads))


def fast_variant(name: str, num_classes: int = 10) -> Any:
    """Registry model `name` whose convs use `shifted_matmul_conv` (same params, same forward)."""
    base = type(create_model(name, num_classes))

    class Fast(base):  # type: ignore[misc, valid-type]
        def ops(self, train: bool):
            ops = super().ops(train)
            return dataclasses.replace(ops, conv=functools.partial(ops.conv, conv_general_dilated=shifted_matmul_conv))

    Fast.__name__ = f"Fast{base.__name__}"
    return Fast(num_classes=num_classes, bn_axis_name="data")


def max_grad_diff(name: str, batch: int = 8) -> float:
    """Largest |grad_fast - grad_xla| over all parameters of one loss gradient (train mode, same dropout)."""
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, *tt.IMAGE_SHAPE))
    labels = jnp.arange(batch) % 10
    ref, fast = create_model(name, 10), fast_variant(name)
    fast = fast.clone(bn_axis_name=None)
    params = ref.init(jax.random.PRNGKey(0), x)["params"]

    def grads(model):
        def loss(p):
            logits = model.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))
        return jax.jit(jax.grad(loss))(params)

    diffs = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), grads(ref), grads(fast))
    return max(jax.tree.leaves(diffs))


def time_weight_grad(batch: int, size: int, channels: int, padding: str, reps: int) -> tuple[float, float]:
    """ms per weight gradient of one 3x3 conv (channels -> channels) on size x size: XLA vs shifted."""
    x = jax.random.normal(jax.random.PRNGKey(0), (batch, size, size, channels))
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, channels, channels)) * 0.1

    def make(conv):  # x is an argument: as a closure constant XLA would try to constant-fold its pad
        return jax.jit(jax.grad(lambda w, x: jnp.sum(conv(x, w, (1, 1), padding, dimension_numbers=NHWC) ** 2)))

    fns = [make(lax.conv_general_dilated), make(shifted_matmul_conv)]
    np.testing.assert_allclose(fns[0](w, x), fns[1](w, x), rtol=2e-4, atol=2e-2)
    times: list[list[float]] = [[], []]
    for _ in range(reps):
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            jax.block_until_ready(fn(w, x))
            out.append((time.perf_counter() - start) * 1e3)
    return min(times[0]), min(times[1])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="keras_cnn,lenet5")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    print(tt.machine_info(None))
    for name in models:
        print(f"{name}: max |grad shifted-matmul - grad XLA| = {max_grad_diff(name):.2e}")
    for size, channels, padding in ((28, 32, "SAME"), (28, 32, "VALID"), (13, 64, "SAME")):
        xla, fast = time_weight_grad(args.batch, size, channels, padding, args.reps)
        print(f"3x3 conv {channels}->{channels} on {size}x{size} {padding}, batch {args.batch}: weight grad "
              f"XLA {xla:.1f} ms, shifted matmuls {fast:.1f} ms ({xla / fast:.2f}x)")
    data = tt.synthetic_data(6400)
    use_torch = tt.torch_available() and not args.no_torch
    for name in models:
        sides = [tt.cnnjax_side(name, args.batch, data),
                 tt.cnnjax_side(name, args.batch, data, model=fast_variant(name), label="shifted")]
        if use_torch:
            sides.append(tt.torch_side(name, args.batch, data, threads=len(os.sched_getaffinity(0))))
        results = tt.measure(sides, args.steps, args.reps, args.warmup, args.batch)
        print(tt.format_table(name, sides, results))
        speedup = [a / b for a, b in zip(results[1], results[0])]
        print(f"shifted / XLA per rep: {', '.join(f'{s:.2f}' for s in speedup)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
