import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax.config import OPTIMIZERS, base_config
from cnnjax.train.optim import base_learning_rate, decay_mask, make_optimizer, make_schedule
from cnnjax.train.state import PlateauState


def _config(**kw):
    c = base_config()
    for k, v in kw.items():
        c[k] = v
    return c


def test_step_schedule_divides_at_boundaries():
    s = make_schedule(_config(schedule="step", learning_rate=0.1, lr_boundaries_epochs=(2, 4), num_epochs=6), 10)
    assert [float(s(t)) for t in (0, 19, 20, 39, 40, 59)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_warmup_cosine_rises_then_decays_to_the_floor():
    s = make_schedule(_config(schedule="warmup_cosine", learning_rate=1.0, warmup_epochs=1, num_epochs=11,
                              lr_min_factor=0.1), 10)
    assert float(s(0)) == 0.0 and float(s(5)) == pytest.approx(0.5) and float(s(10)) == pytest.approx(1.0)
    assert float(s(60)) == pytest.approx(0.55) and float(s(110)) == pytest.approx(0.1)


def test_exponential_decays_per_epoch():
    s = make_schedule(_config(schedule="exponential", learning_rate=1.0, lr_decay_factor=0.5), 10)
    assert float(s(20)) == pytest.approx(0.25)


def test_linear_scaling_rule():
    assert base_learning_rate(_config(learning_rate=0.1, batch_size=1024, lr_scaling="linear")) == pytest.approx(0.4)
    assert base_learning_rate(_config(learning_rate=0.1, batch_size=1024)) == pytest.approx(0.1)


def test_plateau_divides_after_patience_epochs_without_improvement():
    p = PlateauState.create()
    scales = []
    for metric in (0.5, 0.6, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7):
        p = p.update(metric, patience=2, factor=0.1, min_delta=1e-4)
        scales.append(float(p.scale))
    assert scales == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1])


def test_weight_decay_mask_selects_kernels_only():
    params = {"Conv_0": {"kernel": 1.0, "bias": 1.0}, "BatchNorm_0": {"scale": 1.0, "bias": 1.0},
              "Activation_0": {"alpha": 1.0}}
    mask = decay_mask(params, "kernels")
    assert mask == {"Conv_0": {"kernel": True, "bias": False}, "BatchNorm_0": {"scale": False, "bias": False},
                    "Activation_0": {"alpha": False}}
    assert all(jax.tree.leaves(decay_mask(params, "all")))


def test_weight_decay_shrinks_kernels_but_not_biases():
    params = {"kernel": jnp.ones(3), "bias": jnp.ones(3)}
    for name in ("sgd", "adamw"):
        tx = make_optimizer(_config(optimizer=name, weight_decay=0.1, learning_rate=1.0), optax.constant_schedule(1.0))
        updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
        assert float(updates["kernel"][0]) < 0 and float(updates["bias"][0]) == 0


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_minimises_a_quadratic(name):
    tx = make_optimizer(_config(optimizer=name, learning_rate=0.05, grad_clip_norm=10.0), optax.constant_schedule(0.05))
    x = {"kernel": jnp.array([3.0, -2.0])}
    state = tx.init(x)
    for _ in range(200):
        g = jax.grad(lambda p: jnp.sum(p["kernel"] ** 2))(x)
        u, state = tx.update(g, state, x)
        x = optax.apply_updates(x, u)
    assert float(jnp.sum(x["kernel"] ** 2)) < 0.5


def test_gradient_clipping_bounds_the_update():
    tx = make_optimizer(_config(optimizer="sgd", grad_clip_norm=1.0), optax.constant_schedule(1.0))
    params = {"kernel": jnp.zeros(2)}
    u, _ = tx.update({"kernel": jnp.array([30.0, 40.0])}, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(u["kernel"]), [-0.6, -0.8], rtol=1e-6)
