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


@pytest.mark.torch
@pytest.mark.parametrize("dilation, groups, kernel", [(2, 1, (3, 3)), (3, 2, (3, 3)), (1, 1, (1, 7))])
def test_dilated_grouped_and_asymmetric_convolutions_match_torch(dilation, groups, kernel):
    """The conv factory's nn.Conv covers a trous, grouped and 1xn kernels with torch's semantics."""
    torch = pytest.importorskip("torch")
    from cnnjax.models import create_model

    ops = create_model("resnet20").ops(train=False)
    x = np.random.default_rng(0).standard_normal((1, 11, 13, 4)).astype(np.float32)
    pad = tuple(dilation * (k - 1) // 2 for k in kernel)
    conv = ops.conv(6, kernel, kernel_dilation=dilation, feature_group_count=groups, padding=[(p, p) for p in pad])
    params = conv.init(jax.random.PRNGKey(0), x)
    got = np.asarray(conv.apply(params, x))
    weight = torch.from_numpy(np.asarray(params["params"]["kernel"]).transpose(3, 2, 0, 1).copy())
    want = torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2)), weight, padding=pad,
                                      dilation=dilation, groups=groups).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
