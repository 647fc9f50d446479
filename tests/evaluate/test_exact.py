import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.data.pipeline import DeviceSplit, normalize
from cnnjax.evaluate.exact import classification_metrics, confusion_matrix, make_predict_fn, predict_logits
from cnnjax.models import create_model
from cnnjax.sharding import make_mesh


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (37, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, 37).astype(np.int32)
    model = create_model("mlp")
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    want = np.asarray(model.apply(variables, normalize(jnp.asarray(images), (0.3,), (0.35,))))
    return images, labels, model, variables, want


@pytest.mark.parametrize("num_devices,batch_size", [(1, 5), (1, 37), (1, 100), (4, 8), (4, 6), (4, 1000)])
def test_every_example_is_evaluated_once_in_order(setup, num_devices, batch_size):
    images, labels, model, variables, want = setup
    mesh = make_mesh(num_devices)
    data = DeviceSplit(jnp.asarray(images), jnp.asarray(labels))
    logits = predict_logits(make_predict_fn(model, (0.3,), (0.35,), mesh), variables, data, batch_size, mesh)
    assert logits.shape == (37, 10)
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)
    assert classification_metrics(logits, labels)["num_examples"] == 37


def test_metrics_on_a_hand_example():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]]))
    labels = np.array([0, 1, 1])
    m = classification_metrics(logits, labels)
    assert m["top1"] == pytest.approx(1 / 3)
    assert m["top5"] == 1.0  # 3 classes: top-k is capped at the class count
    assert m["nll"] == pytest.approx(-(np.log(0.7) + np.log(0.3) + np.log(0.4)) / 3)
    assert confusion_matrix(logits, labels, 3).tolist() == [[1, 0, 0], [1, 0, 1], [0, 0, 0]]
