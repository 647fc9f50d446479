"""Per layer: XLA:CPU's convolution backward against `cnnjax.models.cpu_conv`'s (ms, ratio).

Why: `cpu_conv` replaces a convolution's backward on CPU where a faster one was measured: the weight gradient as
one matmul per kernel tap (`cpu_conv.prefers_matmul`), and the gradients of a VALID-padded layer through its
SAME-padded twin (`cpu_conv.same_pads`). Those rules are measurements, and this script is that measurement: it
finds every convolution of the benchmark models (in their traced training forward), times the backward of
each distinct layer both ways on the same arrays, alternated (only the weight gradient for the layer that sees the
image, as in training), and prints the medians, the ratio and the backward chosen, so a machine where a rule is
wrong shows it.

Usage:
    python benchmarks/conv_weight_grad.py [--models lenet5,keras_cnn,resnet20,bn_cnn] [--batch 128 --reps 7]

It re-executes itself with train.py's huge-page malloc. The figures are of one device using all cores; the
whole training step is `benchmarks/train_throughput.py`'s (with `CNNJAX_CPU_TUNING=0` for XLA's own kernels).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from typing import Any, Callable, Iterator, Sequence

if __name__ == "__main__":
    from cnnjax.cpu_runtime import reexec_with_hugepage_malloc

    reexec_with_hugepage_malloc()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from cnnjax.models import cpu_conv, create_model, list_models, model_info  # noqa: E402

MODELS = ("lenet5", "keras_cnn", "resnet20", "bn_cnn")


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    in_shape: tuple[int, ...]  # (N, H, W, Cin)
    kernel_shape: tuple[int, ...]  # (kh, kw, Cin/groups, Cout)
    strides: tuple[int, int]
    pads: cpu_conv.Pads
    dilation: tuple[int, int]
    groups: int

    def describe(self) -> str:
        kh, kw, cin_g, cout = self.kernel_shape
        n, h, w, cin = self.in_shape
        extra = f" g{self.groups}" if self.groups > 1 else ""
        return f"{h}x{w}x{cin} {kh}x{kw}/{self.strides[0]} ->{cout}{extra}"


def _conv_equations(jaxpr: Any) -> Iterator[Any]:
    """Every conv_general_dilated equation of a jaxpr, nested ones (jit, custom rules) included."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _conv_equations(inner)


def conv_layers(name: str, batch: int) -> list[ConvLayer]:
    """The distinct convolutions of a training forward pass of model `name` at `batch`, as XLA receives them
    (read off the traced program: strides, explicit pads, dilation and groups need no re-deriving)."""
    model = create_model(name, cpu_kernels=False)
    images = jax.ShapeDtypeStruct((batch, *model_info(name).input_shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), images)
    forward = lambda v, x: model.apply(v, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"])
    found: list[ConvLayer] = []
    for eqn in _conv_equations(jax.make_jaxpr(forward)(variables, images).jaxpr):
        p = eqn.params
        layer = ConvLayer(tuple(eqn.invars[0].aval.shape), tuple(eqn.invars[1].aval.shape), tuple(p["window_strides"]),
                          tuple(tuple(pad) for pad in p["padding"]), tuple(p["rhs_dilation"]), p["feature_group_count"])
        if layer not in found:
            found.append(layer)
    return found


def _grads(conv: Callable, layer: ConvLayer, first: bool) -> Callable[[jax.Array, jax.Array, jax.Array], Any]:
    """The layer's backward as training runs it: both gradients, or only the weights' for the image's layer."""
    def backward(x: jax.Array, w: jax.Array, g: jax.Array) -> Any:
        def apply(x_: jax.Array, w_: jax.Array) -> jax.Array:
            return conv(x_, w_, layer.strides, layer.pads, rhs_dilation=layer.dilation,
                        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=layer.groups)
        if first:
            return jax.vjp(lambda w_: apply(x, w_), w)[1](g)
        return jax.vjp(apply, x, w)[1](g)
    return jax.jit(backward)


def alternated_medians(fns: Sequence[Callable[..., Any]], args: Sequence[Any], reps: int) -> list[float]:
    """Median ms of each function on the same arguments, run in turn `reps` times after a warm-up (compile)
    call each, so a machine's drift during the run touches all of them alike."""
    for fn in fns:
        jax.block_until_ready(fn(*args))
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            out.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def time_layer(layer: ConvLayer, first: bool, reps: int) -> tuple[float, float]:
    """Median ms of XLA's and of cpu_conv's backward of the layer, alternated on the same arrays."""
    x = jax.random.normal(jax.random.key(0), layer.in_shape)
    w = jax.random.normal(jax.random.key(1), layer.kernel_shape)
    out_shape = jax.eval_shape(lambda: cpu_conv.xla_conv(x, w, layer.strides, layer.pads, layer.dilation,
                                                          layer.groups, None)).shape
    g = jax.random.normal(jax.random.key(2), out_shape)
    fns = (_grads(lax.conv_general_dilated, layer, first), _grads(cpu_conv.conv_general_dilated, layer, first))
    xla, ours = alternated_medians(fns, (x, w, g), reps)
    return xla, ours


def describe_backward(layer: ConvLayer) -> str:
    backward = cpu_conv.choose_backward(layer.in_shape[1:3], layer.kernel_shape, layer.strides, layer.pads,
                                        layer.dilation, layer.groups)
    parts = (["matmul dW"] if backward.matmul else []) + (["SAME-padded"] if backward.same_pads else [])
    return "+".join(parts) or "XLA"


def parse_args(doc: str, models: Sequence[str], known: Sequence[str], argv: Sequence[str] | None,
               known_hint: str) -> argparse.Namespace:
    """--models (comma-separated, each in `known`), --batch, --reps; a bad value is a one-line usage error."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(models))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in known]
    if unknown or not args.models:
        parser.error(f"--models: unknown {', '.join(unknown) or '(none given)'}; {known_hint}")
    if min(args.batch, args.reps) < 1:
        parser.error("--batch and --reps must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__, MODELS, list_models(), argv, "see `cnnjax models` for the names")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {len(jax.devices())} device(s), batch {args.batch}")
    print(f"{'model':10s} {'layer':28s} {'XLA ms':>8s} {'cnnjax ms':>10s} {'XLA/cnnjax':>10s}  backward")
    for name in args.models:
        layers = conv_layers(name, args.batch)
        if not layers:
            print(f"{name:10s} (no convolutions)")
        for index, layer in enumerate(layers):
            xla, ours = time_layer(layer, index == 0, args.reps)
            print(f"{name:10s} {layer.describe():28s} {xla:8.2f} {ours:10.2f} {xla / ours:10.2f}  "
                  f"{describe_backward(layer)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
