"""Exact evaluation: every example counted once, whatever the batch size and device count.

The split is padded to whole global batches and the padding is masked out (dropped) on the host, so
the logits have exactly one row per example, in dataset order — the form ensembles and calibration
metrics need later.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnjax.data import preprocess
from cnnjax.data.pipeline import DeviceSplit, eval_batches
from cnnjax.evaluate import tta as test_time
from cnnjax.sharding import AXIS


class EvaluationCountError(AssertionError):
    """The number of evaluated examples differs from the split size (a pipeline bug)."""


def predict(model: nn.Module, variables: dict[str, Any], images: jax.Array) -> jax.Array:
    """Eval-mode logits (float32)."""
    return model.apply(variables, images, train=False).astype(jnp.float32)


def make_predict_fn(model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], mesh: Mesh, dtype=jnp.float32,
                    tta: str = "none"):
    """jit(variables, data, index) -> logits of the examples `index`, normalised with per-channel statistics;
    `tta` != "none": log of the probabilities averaged over the views (`cnnjax.evaluate.tta`)."""
    return preprocess_predict_fn(model, preprocess.standardized(mean, std), mesh, dtype, tta)


def preprocess_predict_fn(model: nn.Module, stats: preprocess.Statistics, mesh: Mesh, dtype=jnp.float32,
                          tta: str = "none"):
    """jit(variables, data, index) -> logits of the examples `index`, preprocessed with the run's statistics
    (and averaged over `tta`'s views)."""
    return predict_fn_for(model, functools.partial(preprocess.apply, stats, dtype=dtype), mesh, tta)


def predict_fn_for(model: nn.Module, preprocess: Callable[[jax.Array], jax.Array], mesh: Mesh, tta: str = "none"):
    """jit(variables, data, index) -> logits of the uint8 examples `index` after `preprocess`, batch-sharded
    (averaged over the test-time views of `tta`)."""
    logits_of_images = test_time.averaged(_sharded_logits(model, preprocess, mesh), tta)

    @jax.jit
    def logits_of(variables: Any, data: DeviceSplit, index: jax.Array) -> jax.Array:
        return logits_of_images(variables, data.images[index])

    return logits_of


def predict_images_fn(model: nn.Module, preprocess: Callable[[jax.Array], jax.Array], mesh: Mesh):
    """jit(variables, images) -> logits of a batch-sharded uint8 batch (host-streamed input).

    A (B, K, H, W, C) batch holds K crops per example (10-crop evaluation): their logits are averaged.
    """
    logits_of_images = _sharded_logits(model, preprocess, mesh)

    @jax.jit
    def logits_of(variables: Any, images: jax.Array) -> jax.Array:
        if images.ndim == 4:
            return logits_of_images(variables, images)
        crops = logits_of_images(variables, images.reshape(-1, *images.shape[2:]))
        return crops.reshape(images.shape[0], images.shape[1], -1).mean(1)

    return logits_of


def _sharded_logits(model: nn.Module, preprocess: Callable[[jax.Array], jax.Array], mesh: Mesh):
    out_sharding = NamedSharding(mesh, P(AXIS))

    def logits_of(variables: Any, images: jax.Array) -> jax.Array:
        images = jax.lax.with_sharding_constraint(preprocess(images), out_sharding)
        return jax.lax.with_sharding_constraint(predict(model, variables, images), out_sharding)

    return logits_of


def predict_logits(predict_fn, variables: Any, data: DeviceSplit, batch_size: int, mesh: Mesh) -> np.ndarray:
    """(N, num_classes) float32 logits of every example of `data`, in order.

    `data` is a replicated `DeviceSplit`, or a host-streamed split (`cnnjax.data.stream`) that batches, pads and
    masks itself and hands its batches to `logits_by_id`.
    """
    if not isinstance(data, DeviceSplit):
        return data.predict_logits(predict_fn, variables, batch_size, mesh)
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


def logits_by_id(batches: Iterable[tuple[jax.Array, jax.Array, jax.Array]], num_examples: int) -> np.ndarray:
    """(N, num_classes) logits in example order from padded global batches of (logits, example ids, mask).

    Every process gets every batch (`_fetch`); masked rows (padding) are dropped, and each of the N examples
    must occur exactly once among the rest, or an `EvaluationCountError` says how many were missed or repeated.
    """
    logits, ids = [], []
    for batch_logits, batch_ids, batch_mask in batches:
        mask = _fetch(batch_mask).astype(bool)
        logits.append(_fetch(batch_logits)[mask])
        ids.append(_fetch(batch_ids)[mask])
    ids_all = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)
    counts = np.bincount(ids_all, minlength=num_examples) if ids_all.size else np.zeros(num_examples, np.int64)
    if counts.size != num_examples or not (counts == 1).all():
        raise EvaluationCountError(f"evaluated {ids_all.size} rows for a split of {num_examples}: "
                                   f"{int((counts == 0).sum())} examples missed, {int((counts > 1).sum())} repeated")
    out = np.empty((num_examples, logits[0].shape[1]), np.float32)
    out[ids_all] = np.concatenate(logits)
    return out


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
