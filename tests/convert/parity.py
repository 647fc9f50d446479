"""Shared check: a torchvision model with random weights, converted, gives the same eval-mode logits."""

from __future__ import annotations

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need torch (pip install -e '.[torch]')")


def randomize(module: "torch.nn.Module", seed: int = 0) -> "torch.nn.Module":
    """Random weights *and* non-trivial BatchNorm statistics/affine terms, so no layer maps to identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif name.endswith("weight") and tensor.ndim == 1:  # norm scale / PReLU slope
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
    return module.eval()


def assert_parity(name: str, torch_model: "torch.nn.Module", hw: tuple[int, int], batch: int = 2,
                  atol: float = 1e-4, rtol: float = 1e-5, **overrides) -> float:
    """Converts `torch_model` into cnnjax model `name` and compares logits on random images (NHWC).

    The bound is atol + rtol * max|logit|: with randomized BatchNorm statistics deep nets reach logits in
    the hundreds, where float32 itself (torch vs torch-float64) differs by ~1e-3.
    """
    from cnnjax.convert import from_torchvision
    from cnnjax.models import create_model

    torch_model = randomize(torch_model)
    channels = 3
    images = np.random.default_rng(0).standard_normal((batch, *hw, channels)).astype(np.float32)
    with torch.no_grad():
        want = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    variables = from_torchvision(name, torch_model.state_dict(), **overrides)
    model = create_model(name, **overrides)
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False),  # runs once: compile cheaply
                      compiler_options={"xla_backend_optimization_level": 0})
    got = np.asarray(forward(variables, images))
    err = float(np.max(np.abs(got - want)))
    bound = atol + rtol * float(np.max(np.abs(want)))
    assert got.shape == want.shape, (got.shape, want.shape)
    assert err <= bound, f"{name}: max |logit difference| {err:.2e} > {bound:.1e}"
    return err
