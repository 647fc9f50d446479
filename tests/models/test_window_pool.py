"""Pooling as strided slices equals XLA's reduce_window: values, first-maximum gradients, forward mode.

Inputs are multiples of 1/4 in a small range, so every partial sum is exact in float32 and ties are
common: any summation order gives the same bits, and the first-maximum rule is really exercised.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.models.window_pool import avg_pool, max_pool, resolve_padding

# (input h, w, window, stride, padding): the zoo's poolings (LeNet/VGG 2/2, ResNet/DenseNet stems 3/2 pad 1,
# AlexNet 3/2, Inception 3/1 SAME), odd sizes whose trailing rows fill no window included.
CONFIGS = [
    (8, 9, 2, 2, "VALID"),
    (13, 11, 2, 2, "VALID"),
    (12, 13, 3, 2, ((1, 1), (1, 1))),
    (13, 15, 3, 2, "VALID"),
    (9, 10, 3, 1, "SAME"),
    (10, 10, 3, 1, ((1, 1), (1, 1))),
    (11, 12, 3, 2, ((0, 1), (1, 0))),
]


def dyadic(key: int, shape: tuple) -> jax.Array:
    return jnp.round(jax.random.normal(jax.random.PRNGKey(key), shape) * 2) / 4


def reference_max(x, window, stride, padding):
    return nn.max_pool(x, (window, window), (stride, stride), padding)


@pytest.mark.parametrize("h, w, window, stride, padding", CONFIGS)
def test_max_pool_and_its_gradient_are_bit_identical_to_reduce_window(h, w, window, stride, padding):
    x = dyadic(0, (2, h, w, 3))
    want = reference_max(x, window, stride, padding)
    got = jax.jit(max_pool, static_argnums=(1, 2, 3))(x, window, stride, padding)
    np.testing.assert_array_equal(got, want)
    g_out = dyadic(1, want.shape)
    grad = jax.vjp(lambda v: max_pool(v, window, stride, padding), x)[1](g_out)[0]
    ref_grad = jax.vjp(lambda v: reference_max(v, window, stride, padding), x)[1](g_out)[0]
    np.testing.assert_array_equal(grad, ref_grad)


@pytest.mark.parametrize("h, w, window, stride, padding", CONFIGS[:3])
def test_max_pool_forward_mode_equals_reduce_window(h, w, window, stride, padding):
    x, t = dyadic(0, (2, h, w, 3)), dyadic(2, (2, h, w, 3))
    got = jax.jvp(lambda v: max_pool(v, window, stride, padding), (x,), (t,))[1]
    want = jax.jvp(lambda v: reference_max(v, window, stride, padding), (x,), (t,))[1]
    np.testing.assert_array_equal(got, want)


def test_windows_of_more_than_127_taps_index_their_maximum_exactly():
    x = dyadic(0, (1, 26, 26, 2))
    grad = jax.grad(lambda v: max_pool(v, 12, 7).sum())(x)
    want = jax.grad(lambda v: reference_max(v, 12, 7, "VALID").sum())(x)
    np.testing.assert_array_equal(grad, want)


def test_a_tied_window_sends_its_gradient_to_the_first_maximum_only():
    x = jnp.ones((1, 2, 2, 1))
    grad = jax.grad(lambda v: max_pool(v, 2).sum())(x)
    np.testing.assert_array_equal(grad[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])


def test_second_derivatives_go_through_max_pool():
    """custom_jvp, not custom_vjp: a Hessian-vector product of a pooled network still works."""
    x = dyadic(0, (1, 6, 6, 2))
    f = lambda v: jnp.sum(jnp.tanh(max_pool(v, 2)) ** 2)  # noqa: E731
    g = lambda v: jnp.sum(jnp.tanh(reference_max(v, 2, 2, "VALID")) ** 2)  # noqa: E731
    hvp = jax.jvp(jax.grad(f), (x,), (jnp.ones_like(x),))[1]
    want = jax.jvp(jax.grad(g), (x,), (jnp.ones_like(x),))[1]
    np.testing.assert_allclose(hvp, want, rtol=1e-6)


def test_nan_propagates_like_reduce_window():
    x = jnp.zeros((1, 4, 4, 1)).at[0, 3, 3, 0].set(jnp.nan)
    got = max_pool(x, 2)
    assert np.isnan(got[0, 1, 1, 0]) and not np.isnan(got[0, 0, 0, 0])


@pytest.mark.parametrize("h, w, window, stride, padding", CONFIGS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_equals_reduce_window(h, w, window, stride, padding, count_include_pad):
    x = dyadic(0, (2, h, w, 3))
    want = nn.avg_pool(x, (window, window), (stride, stride), padding, count_include_pad=count_include_pad)
    got = avg_pool(x, window, stride, padding, count_include_pad=count_include_pad)
    np.testing.assert_array_equal(got, want)
    # The gradient sums g/count over the windows covering a pixel: at most window^2 terms, each rounded
    # once, in an order that may differ from XLA's, so they agree to (window^2 + 1) float32 epsilons.
    g_out = dyadic(1, want.shape)
    grad = jax.vjp(lambda v: avg_pool(v, window, stride, padding, count_include_pad), x)[1](g_out)[0]
    ref = jax.vjp(lambda v: nn.avg_pool(v, (window, window), (stride, stride), padding,
                                        count_include_pad=count_include_pad), x)[1](g_out)[0]
    bound = (window * window + 1) * np.finfo(np.float32).eps * float(jnp.abs(g_out).max()) * window * window
    np.testing.assert_allclose(grad, ref, rtol=0, atol=bound)


def test_ceil_mode_keeps_the_overhanging_window():
    x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    assert max_pool(x, 2, ceil_mode=True).shape == (1, 3, 3, 1)
    assert max_pool(x, 2).shape == (1, 2, 2, 1)
    assert float(max_pool(x, 2, ceil_mode=True)[0, 2, 2, 0]) == 24.0


@pytest.mark.parametrize("size, window, stride, extra", [(5, 2, 2, 1), (6, 2, 2, 0), (13, 3, 2, 0), (14, 3, 2, 1),
                                                        (4, 3, 2, 1)])
def test_ceil_mode_pads_like_pytorch(size, window, stride, extra):
    """PyTorch's rule: ceil the output length, but the last window must start inside the input."""
    assert resolve_padding((size, size), window, stride, "VALID", ceil_mode=True) == ((0, extra), (0, extra))


def test_ceil_mode_refuses_explicit_padding():
    with pytest.raises(ValueError, match="ceil_mode only combines with VALID"):
        max_pool(jnp.zeros((1, 5, 5, 1)), 2, padding="SAME", ceil_mode=True)
