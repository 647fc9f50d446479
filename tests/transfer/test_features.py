"""Penultimate-layer features across the zoo, from a trained workdir, and the logistic-regression probe."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.cli import main
from cnnjax.models import create_model
from cnnjax.models.head import head_path, penultimate_features
from cnnjax.transfer.features import linear_probe, workdir_features

EPS = float(np.finfo(np.float32).eps)


def test_the_head_applied_to_the_features_gives_the_logits():
    """Computed for real on the cheapest model (the lenet5 workdir test below computes them too)."""
    shape = (28, 28, 1)
    model = create_model("mlp", 7)
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, *shape)))  # jitted: one compile, not per op
    images = jax.random.normal(jax.random.key(1), (3, *shape))
    features, logits = jax.jit(lambda v, x: (penultimate_features(model, v, x), model.apply(v, x)))(variables, images)
    head = variables["params"][head_path(model, shape)]
    want = np.asarray(features, np.float64) @ np.asarray(head["kernel"], np.float64) + np.asarray(head["bias"])
    tol = 8 * EPS * features.shape[1] * float(jnp.abs(features).max() * jnp.abs(head["kernel"]).max() + 1)
    np.testing.assert_allclose(np.asarray(logits), want, rtol=0, atol=tol)


@pytest.mark.parametrize("name, head, width", [("lenet5", "Dense_2", 84), ("resnet20", "Dense_0", 64),
                                               ("mobilenet_v2", "classifier", 1280),
                                               ("squeezenet1_1", "conv10", 512)])
def test_features_have_the_width_of_the_heads_input(name, head, width):
    """Abstract traces only: four families at a small input, including a convolutional head (SqueezeNet)."""
    model = create_model(name, 5)
    shape = (32, 32, 3) if name != "lenet5" else (28, 28, 1)
    assert head_path(model, shape) == head
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *shape))))
    out = jax.eval_shape(lambda v: penultimate_features(model, v, jnp.zeros((2, *shape))), variables)
    assert out.shape == (2, width)


def test_workdir_features_and_the_probe_beat_chance(lenet5_workdir, tmp_path, capsys):
    arrays = workdir_features(lenet5_workdir, ("train", "test"), max_examples=500)
    assert arrays["train_features"].shape == (len(arrays["train_labels"]), 84)
    assert arrays["test_features"].shape == (500, 84) and set(arrays["test_labels"]) == {0, 1, 2, 3, 4}
    result = linear_probe(arrays["train_features"], arrays["train_labels"], arrays["test_features"],
                          arrays["test_labels"])
    chance = 1 / 5
    assert result.test_top1 > chance + 3 * np.sqrt(chance * (1 - chance) / 500)
    # The command, on other classes than the network was trained on (the transfer setting).
    assert main(["features", "--workdir", str(lenet5_workdir), "--data", "class_subset=(5,6,7,8,9)",
                 "--data", "labels_per_class=10", "--max-examples", "100", "--out", str(tmp_path / "f.npz")]) == 0
    saved = np.load(tmp_path / "f.npz")
    assert saved["train_features"].shape == (50, 84) and set(saved["test_labels"]) == {0, 1, 2, 3, 4}
    assert "logistic regression" in capsys.readouterr().out
    assert main(["features", "--workdir", str(lenet5_workdir), "--data", "model=mlp"]) == 2
    assert "one of the data keys" in capsys.readouterr().err
