"""bfloat16 compute, float32 state: what `config.dtype="bfloat16"` may and may not make narrow.

Only activations are bfloat16. Parameters (Flax `param_dtype`, float32 by default, never overridden by a zoo
model), BatchNorm running statistics (Flax keeps them float32 and reduces in float32), gradients (they take
the dtype of the float32 parameters: the bf16->f32 casts in each layer transpose to f32 accumulations),
the optimizer moments and the loss (`cross_entropy` promotes the logits) are float32.

Loss tolerance: bfloat16 keeps 8 significant bits, unit roundoff u = 2^-8 for every rounded result. Each
convolution/dense layer rounds its output once (its products accumulate in float32 on XLA), and an error
relative to a layer's input passes through the next layer roughly unamplified at initialisation
(He-initialised ReLU layers preserve norms, BatchNorm renormalises). So the logits carry a relative error of
at most about L * u for L weighted layers, and so does the loss, whose sensitivity to relative logit error
is below its own value here (|dL/dz| sums to < 2 while the loss is ~ln 10). Bound: |loss16 - loss32| <=
L * 2^-8 * loss32, with L the number of kernels (weighted layers: 5 for LeNet-5, 20 for ResNet-20).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.config import base_config
from cnnjax.models import create_model, list_models, model_info
from cnnjax.train import optim
from cnnjax.train.state import create_train_state
from cnnjax.train.step import StepConfig, cross_entropy, train_step

U_BF16 = 2.0 ** -8


def _float_leaves(tree) -> list[jax.Array]:
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]


def _num_kernels(params) -> int:
    return sum(getattr(path[-1], "key", None) == "kernel" for path, _ in jax.tree_util.tree_leaves_with_path(params))


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_keeps_float32_variables_under_bfloat16(name):
    """Abstractly (no arrays): init and one training-mode apply of each model with dtype=bfloat16."""
    size = max(model_info(name).min_input_size, 32)
    shape = (2, size, size, model_info(name).input_shape[-1])
    model = create_model(name, 10, dtype=jnp.bfloat16)
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    variables = jax.eval_shape(lambda: model.init(rngs, jnp.zeros(shape), train=False))
    logits, updated = jax.eval_shape(lambda v: model.apply(v, jnp.zeros(shape), train=True, rngs=rngs,
                                                           mutable=["batch_stats", "aux_logits"]), variables)
    assert logits.dtype == jnp.bfloat16  # the model really computes in bfloat16
    leaves = jax.tree_util.tree_leaves_with_path({**variables, "updated_batch_stats": updated.get("batch_stats", {})})
    narrow = [jax.tree_util.keystr(p) for p, x in leaves if x.dtype != jnp.float32]
    assert not narrow, f"{name}: not float32: {narrow[:5]}"


def _step_pair(name: str, size: int, channels: int, batch: int = 8):
    """One Adam step of `name` in float32 and in bfloat16 from the same initial state and batch."""
    config = base_config()
    schedule = optim.make_schedule(config, 10)
    tx = optim.make_optimizer(config, schedule)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(batch, size, size, channels)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
    out = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        model = create_model(name, 10, dtype=dtype)
        state = create_train_state(model, tx, (size, size, channels), seed=0)
        step = jax.jit(functools.partial(train_step, model=model, tx=tx, schedule=schedule, cfg=StepConfig(),
                                         axis_name=None))
        out[dtype] = (model, state, *step(state, images, labels))
    return out, images, labels


@pytest.mark.parametrize("name,size,channels,batch_norm", [("lenet5", 28, 1, False), ("resnet20", 16, 3, True)])
def test_a_bfloat16_step_keeps_the_state_float32_and_the_loss_close(name, size, channels, batch_norm):
    runs, images, labels = _step_pair(name, size, channels)
    model16, before, after, metrics16 = runs[jnp.bfloat16]
    _, _, _, metrics32 = runs[jnp.float32]
    for part in ("params", "batch_stats", "opt_state"):
        leaves = _float_leaves(getattr(after, part))
        assert all(x.dtype == jnp.float32 for x in leaves), f"{part} not float32"
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
    assert bool(_float_leaves(after.batch_stats)) == batch_norm
    loss16, loss32 = float(metrics16["loss"]), float(metrics32["loss"])
    assert metrics16["loss"].dtype == jnp.float32 and np.isfinite(loss16)
    assert loss16 != loss32  # really computed in a narrower type
    bound = _num_kernels(before.params) * U_BF16 * loss32
    print(f"{name}: loss32 {loss32:.6f} loss16 {loss16:.6f} |diff| {abs(loss16 - loss32):.2e} bound {bound:.2e}")
    assert abs(loss16 - loss32) <= bound, (abs(loss16 - loss32), bound)

    def loss_fn(params):  # gradients of float32 parameters through a bfloat16 model
        logits, _ = model16.apply({"params": params, "batch_stats": before.batch_stats}, images, train=True,
                                  mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)})
        assert logits.dtype == jnp.bfloat16
        return cross_entropy(logits, labels).mean()

    grads = jax.jit(jax.grad(loss_fn))(before.params)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
