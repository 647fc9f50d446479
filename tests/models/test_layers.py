import jax
import numpy as np
import pytest


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
