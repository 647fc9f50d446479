"""Local Response Normalization across channels (Krizhevsky et al. 2012, sec. 3.3).

b_c = a_c / (k + alpha / n * sum_{c' = c - n//2}^{c + (n-1)//2} a_{c'}^2) ** beta, channels outside the
range counted as zeros. This is torch.nn.LocalResponseNorm (and Caffe's LRN): the paper's formula writes
alpha without the 1/n, so its alpha=1e-4 under these semantics is the conventional reading used by every
released AlexNet (effective per-term coefficient 2e-5). It has no parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# The AlexNet paper's hyper-parameters (sec. 3.3).
ALEXNET_LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)


def local_response_norm(x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 2.0) -> jax.Array:
    """LRN over the last (channel) axis of an NHWC tensor, computed in float32 for low-precision inputs."""
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    sq = jnp.square(x32)
    pad = [(0, 0)] * (x.ndim - 1) + [(size // 2, (size - 1) // 2)]
    window_sum = jax.lax.reduce_window(sq, 0.0, jax.lax.add, (1,) * (x.ndim - 1) + (size,),
                                       (1,) * x.ndim, pad)
    return (x32 / (k + (alpha / size) * window_sum) ** beta).astype(x.dtype)
