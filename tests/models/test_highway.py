"""CIFAR highway network: parameter count, forward, train step, and near-identity layers at init."""

from __future__ import annotations

import jax
import numpy as np

from cnnjax.models import create_model, model_info
from tests.models.zoo_checks import check_forward, check_train_step, host_variables, images, param_count

COUNT = 2_032_138  # 19 layers: stem + 3 x (5 highway layers) + 2 widening convs + classifier
WIDTHS = (32, 64, 128)


def test_param_count_and_depth() -> None:
    info = model_info("highway")
    assert info.input_shape == (32, 32, 3) and info.num_classes == 10
    assert param_count(create_model("highway"), 32) == COUNT
    # one highway layer more per stage: 3 x 2 convs (H and T) of 3x3 with biases
    per_layer = sum(2 * (9 * c * c + c) for c in WIDTHS)
    assert param_count(create_model("highway", layers_per_stage=6), 32) == COUNT + per_layer
    # BN (gamma, beta) replaces the bias of each plain conv and each H conv: +C per such conv
    with_bn = sum(c * (1 + 5) for c in WIDTHS)
    assert param_count(create_model("highway", batch_norm=True), 32) == COUNT + with_bn


def test_forward_at_min_input() -> None:
    check_forward(create_model("highway"), model_info("highway").min_input_size)


def test_train_step() -> None:
    check_train_step(create_model("highway", layers_per_stage=2), 32, fast_compile=False)  # see its doc


def _is_gate_bias(path: tuple) -> bool:
    return len(path) >= 2 and path[-2].key == "gate" and path[-1].key == "bias"


def test_negative_gate_bias_starts_near_identity() -> None:
    model = create_model("highway", gate_bias=-3.0)
    x = images(32)
    # Bias values from the model's own init (weight_init="zeros" draws no random numbers: a cheap compile),
    # random He-scaled kernels from the host.
    cheap = create_model("highway", gate_bias=-3.0, weight_init="zeros")
    init = jax.jit(lambda: cheap.init(jax.random.key(0), x))()
    gate_biases = [b for p, b in jax.tree_util.tree_flatten_with_path(init)[0] if _is_gate_bias(p)]
    assert len(gate_biases) == 15 and all(np.all(np.asarray(b) == -3.0) for b in gate_biases)
    variables = jax.tree_util.tree_map_with_path(
        lambda p, a, b: b if p[-1].key == "kernel" else a, init, host_variables(model, x))

    @jax.jit
    def layer_stats(variables: dict) -> tuple[list, list]:
        """Mean gate T of every highway layer; |y - x| / |x| of every layer fed by another one."""
        _, state = model.apply(variables, x, mutable=["intermediates"],
                               capture_intermediates=lambda m, _: (m.name or "").startswith("highway"))
        inter = state["intermediates"]
        names = [[f"highway{s}_{i}" for i in range(model.layers_per_stage)] for s in range(len(WIDTHS))]
        gates = [inter[n]["gate_values"][0].mean() for stage in names for n in stage]
        outs = [[inter[n]["__call__"][0] for n in stage] for stage in names]
        change = [jax.numpy.linalg.norm(b - a) / jax.numpy.linalg.norm(a)
                  for stage in outs for a, b in zip(stage, stage[1:])]
        return gates, change

    gates, change = map(np.asarray, layer_stats(variables))
    assert gates.max() < 0.15  # the carry gate 1 - T passes >85% of the input
    assert change.max() < 1 / 3
    opened = jax.tree_util.tree_map_with_path(lambda p, a: a * 0 if _is_gate_bias(p) else a, variables)
    open_gates, open_change = map(np.asarray, layer_stats(opened))
    assert open_gates.min() > 0.4
    assert np.all(open_change > change)
