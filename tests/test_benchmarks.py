"""Smoke tests of benchmarks/train_throughput.py: both training steps run and the two twins are the same size.

The benchmark is only meaningful if the PyTorch model is the cnnjax model, so the parameter counts are
checked against the figures of the issue; one step of each side proves the timed code paths work.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.models import create_model

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"
EXPECTED_PARAMS = {"lenet5": 61_706, "keras_cnn": 889_834}


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


@pytest.fixture(scope="module")
def data():
    return bench.synthetic_data(64, seed=0)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_cnnjax_model_size(name):
    shapes = jax.eval_shape(lambda: create_model(name, 10).init(
        jax.random.PRNGKey(0), jnp.zeros((1, *bench.IMAGE_SHAPE))))
    assert bench.param_count(shapes["params"]) == EXPECTED_PARAMS[name]


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_torch_twin_matches_size_and_shapes(name):
    torch = pytest.importorskip("torch")
    model = bench.torch_model(name)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[name]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_cnnjax_side_trains_one_step(name, data):
    side = bench.cnnjax_side(name, 8, data)
    before = jax.device_get(side.run.state.params)
    side.run(1)
    assert side.params == EXPECTED_PARAMS[name]
    assert int(side.run.state.step) == 1
    after = jax.device_get(side.run.state.params)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_torch_side_trains_one_step(name, data):
    pytest.importorskip("torch")
    side = bench.torch_side(name, 8, data, threads=1)
    before = [p.detach().clone() for p in side.run.model.parameters()]
    side.run(len(data.labels) // 8 + 1)  # crosses an epoch boundary (reshuffle)
    assert side.params == EXPECTED_PARAMS[name]
    assert all(not b.equal(a) for b, a in zip(before, side.run.model.parameters()))


def test_table_and_ratio():
    sides = [bench.Side("cnnjax", 10, lambda n: None), bench.Side("torch", 10, lambda n: None)]
    table = bench.format_table("m", sides, [[200.0, 300.0], [100.0, 100.0]])
    assert "cnnjax 10 | torch 10" in table
    rows = [line for line in table.splitlines() if line.startswith("|")][2:]
    assert [r.split("|")[-2].strip() for r in rows] == ["2.00", "3.00", "2.50"]


def test_rejects_models_without_twin():
    with pytest.raises(SystemExit):
        bench.parse_args(["--models", "resnet20"])


@pytest.mark.parametrize("kernel,padding", [(3, "SAME"), (3, "VALID"), (5, ((2, 2), (2, 2)))])
def test_shifted_matmul_conv_matches_xla(kernel, padding):
    """The prototype's custom weight gradient (benchmarks/conv_weight_grad.py) equals XLA's conv gradient."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from conv_weight_grad import NHWC, shifted_matmul_conv
    finally:
        sys.path.remove(str(SCRIPT.parent))
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 9, 9, 3))
    w = jax.random.normal(jax.random.PRNGKey(1), (kernel, kernel, 3, 4))

    def grads(conv):
        loss = lambda x, w: jnp.sum(jnp.sin(conv(x, w, (1, 1), padding, dimension_numbers=NHWC)))
        return jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)

    for ours, xla in zip(grads(shifted_matmul_conv), grads(jax.lax.conv_general_dilated)):
        np.testing.assert_allclose(ours, xla, rtol=1e-5, atol=1e-5)
