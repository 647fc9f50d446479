"""Off-the-shelf features (seeds 000/002/003: "CNN features off-the-shelf"): the penultimate layer of a trained
network, i.e. the input of its classifier head, as a fixed representation for a shallow classifier.

The head is found by tracing (`cnnjax.models.head`), so any checkpoint of the zoo works. The classifier is
the ensemble's L2 multinomial logistic regression (`cnnjax.ensemble.stacking.fit_logistic`) on features
standardised with the training features' statistics (the L2 penalty then treats every feature alike).
The data may differ from what the network was trained on: `data_overrides` change the source run's data keys
(e.g. class_subset=(5, 6, 7, 8, 9), labels_per_class=100), the transfer setting.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from cnnjax.data import preprocess
from cnnjax.data.splits import load_for_config
from cnnjax.ensemble.stacking import fit_logistic, single_threaded_blas
from cnnjax.errors import CnnjaxError
from cnnjax.evaluate.run import split_and_statistics
from cnnjax.evaluate.workdir_model import WorkdirModel, load_workdir_model
from cnnjax.models.head import penultimate_features

DATA_KEYS = ("dataset", "data_dir", "class_subset", "labels_per_class", "num_train_examples", "validation_size",
             "validation_seed")


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    train_top1: float
    test_top1: float
    num_train: int
    num_test: int
    feature_dim: int
    converged: bool


def extract(model: WorkdirModel, images: np.ndarray, stats: preprocess.Statistics, batch_size: int = 500) -> np.ndarray:
    """(N, D) float32 penultimate features of uint8 `images` preprocessed with `stats`, in batches on the default
    device."""
    dtype = np.float32

    @jax.jit
    def features(variables: dict[str, Any], batch: jax.Array) -> jax.Array:
        return penultimate_features(model.model, variables, preprocess.apply(stats, batch, dtype))

    out = [np.asarray(features(model.variables, images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), dtype)


def workdir_features(workdir: str | pathlib.Path, splits: Sequence[str] = ("train", "test"),
                     data_overrides: Sequence[str] = (), step: int | None = None,
                     max_examples: int = 0) -> dict[str, np.ndarray]:
    """{"<split>_features": (N, D), "<split>_labels": (N,)} of the run's data (changed by `data_overrides`,
    `key=value` of DATA_KEYS), normalised with the *source* run's statistics, as the network saw its inputs."""
    source = load_workdir_model(workdir, step)
    values = source.config.to_dict()
    for item in data_overrides:
        key, sep, text = item.removeprefix("--").removeprefix("config.").partition("=")
        if not sep or key not in DATA_KEYS:
            raise CnnjaxError(f"--data {item!r}: give KEY=VALUE with one of the data keys {', '.join(DATA_KEYS)}")
        try:
            values[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[key] = text  # a string key (dataset, data_dir)
    config = ml_collections.ConfigDict(values)
    _, _, stats = split_and_statistics(source.config, workdir, "train")  # the source run's preprocessing
    data = load_for_config(config, with_test="test" in splits, resample=False)
    out = {"step": np.asarray(source.step)}
    for name in splits:
        split = data.split(name)
        if max_examples:
            split = split.take(np.arange(min(max_examples, len(split))))
        out[f"{name}_features"] = extract(source, split.images, stats, source.config.eval_batch_size)
        out[f"{name}_labels"] = np.asarray(split.labels)
    return out


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 c_reg: float = 1.0) -> ProbeResult:
    """Fits the L2 multinomial logistic regression on standardised train features; top-1 on train and test."""
    mean, scale = train_x.mean(0), train_x.std(0)
    scale = np.where(scale > 0, scale, 1.0)

    def standard(x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - mean) / scale

    num_classes = int(max(train_y.max(), test_y.max())) + 1
    with single_threaded_blas():
        fit = fit_logistic(standard(train_x), train_y, num_classes, c_reg)
    top1 = lambda x, y: float(np.mean(np.argmax(fit.log_proba(standard(x)), 1) == y))
    return ProbeResult(top1(train_x, train_y), top1(test_x, test_y), len(train_y), len(test_y), train_x.shape[1],
                       fit.fit.converged)
