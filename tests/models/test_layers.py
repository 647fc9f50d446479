import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.models.layers import max_pool


@pytest.mark.parametrize("size", [8, 11, 13])
def test_fast_non_overlapping_max_pool_equals_reduce_window(size):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size + 1, 3))
    want = nn.max_pool(x, (2, 2), (2, 2), "VALID")
    np.testing.assert_array_equal(max_pool(x, 2), want)
    g_fast = jax.grad(lambda x: jnp.sum(max_pool(x, 2) ** 2))(x)
    g_ref = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), (2, 2), "VALID") ** 2))(x)
    np.testing.assert_allclose(g_fast, g_ref)


def test_ceil_mode_keeps_the_overhanging_window():
    x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    assert max_pool(x, 2, ceil_mode=True).shape == (1, 3, 3, 1)
    assert max_pool(x, 2).shape == (1, 2, 2, 1)
    assert float(max_pool(x, 2, ceil_mode=True)[0, 2, 2, 0]) == 24.0
