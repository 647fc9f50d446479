"""Exact evaluation: every example counted once, whatever the batch size and device count.

The split is padded to whole global batches and the padding is masked out (dropped) on the host, so
the logits have exactly one row per example, in dataset order — the form ensembles and calibration
metrics need later.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnjax.data.pipeline import DeviceSplit, eval_batches, normalize
from cnnjax.sharding import AXIS


class EvaluationCountError(AssertionError):
    """The number of evaluated examples differs from the split size (a pipeline bug)."""


def predict(model: nn.Module, variables: dict[str, Any], images: jax.Array) -> jax.Array:
    """Eval-mode logits (float32)."""
    return model.apply(variables, images, train=False).astype(jnp.float32)


def make_predict_fn(model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], mesh: Mesh, dtype=jnp.float32):
    """jit(variables, data, index) -> logits of the examples `index`, normalised with the run's statistics."""
    return predict_fn_for(model, lambda images: normalize(images, mean, std, dtype), mesh)


def predict_fn_for(model: nn.Module, preprocess: Callable[[jax.Array], jax.Array], mesh: Mesh):
    """jit(variables, data, index) -> logits of the uint8 examples `index` after `preprocess`, batch-sharded."""
    out_sharding = NamedSharding(mesh, P(AXIS))

    @jax.jit
    def logits_of(variables: Any, data: DeviceSplit, index: jax.Array) -> jax.Array:
        images = jax.lax.with_sharding_constraint(preprocess(data.images[index]), out_sharding)
        return jax.lax.with_sharding_constraint(predict(model, variables, images), out_sharding)

    return logits_of


def predict_logits(predict_fn, variables: Any, data: DeviceSplit, batch_size: int, mesh: Mesh) -> np.ndarray:
    """(N, num_classes) float32 logits of every example of `data`, in order."""
    num_examples = int(data.labels.shape[0])
    if batch_size % mesh.size:
        batch_size += mesh.size - batch_size % mesh.size  # keep batches divisible by the device count
    num_batches, mask = eval_batches(num_examples, batch_size)
    index = np.where(mask, np.arange(mask.size), 0).astype(np.int32).reshape(num_batches, batch_size)
    chunks = [_fetch(predict_fn(variables, data, jnp.asarray(i))) for i in index]
    logits = np.concatenate(chunks)[mask]
    if logits.shape[0] != num_examples:
        raise EvaluationCountError(f"evaluated {logits.shape[0]} examples, the split has {num_examples}")
    return logits


def _fetch(logits: jax.Array) -> np.ndarray:
    """The whole (global) batch of logits on the host, in every process.

    A batch split over the devices of several processes is gathered from all of them (a copy, no
    arithmetic: the values are those each device computed); on one process it is read directly.
    """
    if logits.is_fully_addressable:
        return np.asarray(logits)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(logits, tiled=True))


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """top-1/top-5 accuracy, mean NLL (= loss) and the example count, in float64."""
    logits = logits.astype(np.float64)
    log_probs = logits - logits.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    nll = -log_probs[np.arange(len(labels)), labels]
    k = min(5, logits.shape[1])
    topk = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return {
        "top1": float(np.mean(logits.argmax(1) == labels)),
        "top5": float(np.mean((topk == labels[:, None]).any(1))),
        "nll": float(nll.mean()),
        "loss": float(nll.mean()),
        "num_examples": int(len(labels)),
    }


def confusion_matrix(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, logits.argmax(1)), 1)
    return matrix
