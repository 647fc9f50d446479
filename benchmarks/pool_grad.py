"""Per pooling layer: flax's reduce_window pooling against `cnnjax.models.window_pool`'s (ms, ratio).

Why: the zoo pools through `window_pool`, which keeps XLA's reduce_window forward but writes the derivative
of max-pooling (each window's first maximum, as XLA's select_and_scatter) and of overlapping average pooling
as k*k strided slices, because XLA:CPU's own reduce_window gradients were measured 1.5-13x slower. This script
is that measurement, on the poolings of the benchmark models and of the ImageNet stems: forward + backward of
each layer both ways on the same arrays, alternated, medians, the ratio, and the gradients' largest difference
(zero for max-pooling: bit-identical; the last bit of float32 for overlapping average pooling).

Usage:
    python benchmarks/pool_grad.py [--models lenet5,keras_cnn,bn_cnn,resnet50,alexnet,inception_v3,densenet121]
                                   [--batch 128 --reps 7]

It re-executes itself with train.py's huge-page malloc. The 224-299 px ImageNet layers run at a quarter of
--batch. Whole training steps are `benchmarks/train_throughput.py`'s.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Sequence

if __name__ == "__main__":
    from cnnjax.cpu_runtime import reexec_with_hugepage_malloc

    reexec_with_hugepage_malloc()

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from cnnjax.models import window_pool  # noqa: E402
from conv_weight_grad import alternated_medians, parse_args  # noqa: E402  (benchmarks/ is the script's path)


@dataclasses.dataclass(frozen=True)
class PoolLayer:
    model: str
    kind: str  # "max" or "avg"
    in_hwc: tuple[int, int, int]
    window: int
    stride: int
    padding: str | tuple = "VALID"

    @property
    def imagenet(self) -> bool:
        return self.in_hwc[0] > 32

    def describe(self) -> str:
        h, w, c = self.in_hwc
        pads = "" if self.padding == "VALID" else f" pad {self.padding[0][0]}"
        return f"{self.kind} {h}x{w}x{c} {self.window}/{self.stride}{pads}"


_ONE = ((1, 1), (1, 1))
# Each model's distinct poolings as its forward calls them (tests/test_benchmarks.py checks this table).
LAYERS = (
    PoolLayer("lenet5", "avg", (28, 28, 6), 2, 2), PoolLayer("lenet5", "avg", (10, 10, 16), 2, 2),
    PoolLayer("keras_cnn", "max", (26, 26, 32), 2, 2), PoolLayer("keras_cnn", "max", (11, 11, 64), 2, 2),
    PoolLayer("bn_cnn", "max", (28, 28, 48), 2, 2), PoolLayer("bn_cnn", "max", (14, 14, 96), 2, 2),
    PoolLayer("bn_cnn", "max", (7, 7, 192), 2, 2),
    PoolLayer("resnet50", "max", (112, 112, 64), 3, 2, _ONE),
    PoolLayer("alexnet", "max", (55, 55, 96), 3, 2), PoolLayer("alexnet", "max", (27, 27, 256), 3, 2),
    PoolLayer("inception_v3", "max", (147, 147, 64), 3, 2), PoolLayer("inception_v3", "avg", (35, 35, 192), 3, 1, _ONE),
    PoolLayer("inception_v3", "avg", (17, 17, 768), 3, 1, _ONE),
    PoolLayer("densenet121", "max", (112, 112, 64), 3, 2, _ONE), PoolLayer("densenet121", "avg", (56, 56, 128), 2, 2),
)
MODELS = tuple(dict.fromkeys(layer.model for layer in LAYERS))


def pool_functions(layer: PoolLayer) -> tuple[Callable, Callable]:
    """XLA's reduce_window pooling (flax) and cnnjax's, for the layer."""
    window, strides = (layer.window,) * 2, (layer.stride,) * 2
    if layer.kind == "max":
        return (lambda x: nn.max_pool(x, window, strides, layer.padding),
                lambda x: window_pool.max_pool(x, layer.window, layer.stride, layer.padding))
    return (lambda x: nn.avg_pool(x, window, strides, layer.padding),
            lambda x: window_pool.avg_pool(x, layer.window, layer.stride, layer.padding))


def _forward_backward(pool: Callable) -> Callable[[jax.Array, jax.Array], Any]:
    def run(x: jax.Array, g: jax.Array) -> Any:
        out, vjp = jax.vjp(pool, x)
        return out, vjp(g)[0]
    return jax.jit(run)


def time_layer(layer: PoolLayer, batch: int, reps: int) -> tuple[float, float, float]:
    """Median ms of XLA's and of window_pool's forward + backward, alternated; and the gradients' max |difference|."""
    x = jnp.round(jax.random.normal(jax.random.key(0), (batch, *layer.in_hwc)) * 4) / 4  # quarters: windows with ties
    pools = pool_functions(layer)
    fns = tuple(_forward_backward(pool) for pool in pools)
    g = jax.random.normal(jax.random.key(1), jax.eval_shape(pools[0], x).shape)
    grads = [fn(x, g)[1] for fn in fns]
    xla, ours = alternated_medians(fns, (x, g), reps)
    return xla, ours, float(jnp.max(jnp.abs(grads[0] - grads[1])))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__, MODELS, MODELS, argv, f"measured: {', '.join(MODELS)}")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {len(jax.devices())} device(s), batch {args.batch} "
          f"({max(1, args.batch // 4)} for ImageNet sizes); forward + backward")
    print(f"{'model':12s} {'layer':26s} {'XLA ms':>8s} {'cnnjax ms':>10s} {'XLA/cnnjax':>10s}  max |grad diff|")
    for layer in LAYERS:
        if layer.model in args.models:
            batch = max(1, args.batch // 4) if layer.imagenet else args.batch
            xla, ours, diff = time_layer(layer, batch, args.reps)
            print(f"{layer.model:12s} {layer.describe():26s} {xla:8.2f} {ours:10.2f} {xla / ours:10.2f}  {diff:.1e}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
