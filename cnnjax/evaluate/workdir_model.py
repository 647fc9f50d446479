"""A training workdir's model and inference variables at its best (or a given) step, for tools that look
inside a trained network (features, filter images) rather than score it."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import flax.linen as nn
import jax
import ml_collections

from cnnjax import sharding
from cnnjax.data.sources import DatasetMeta
from cnnjax.data.splits import meta_for_config
from cnnjax.evaluate.restore import abstract_variables, restore_variables
from cnnjax.train import experiment, run_info
from cnnjax.train.checkpoint import CheckpointError, open_read_only


@dataclasses.dataclass(frozen=True)
class WorkdirModel:
    config: ml_collections.ConfigDict
    meta: DatasetMeta  # as the run saw it (class_subset applied)
    model: nn.Module
    variables: dict[str, Any]  # host arrays: {"params", "batch_stats"}
    step: int


def load_workdir_model(workdir: str | pathlib.Path, step: int | None = None) -> WorkdirModel:
    """The best step's (or `step`'s) variables of a finished or running workdir; one-line errors if there is no
    run.json or no checkpoint yet."""
    workdir = pathlib.Path(workdir)
    config = run_info.load_config(workdir)
    meta = meta_for_config(config)
    model = experiment.build_model(config, meta.num_classes, meta.image_shape)
    with open_read_only(workdir) as ckpt:
        if step is None:
            step = ckpt.best_step(skip_damaged=True)
            if step is None:
                raise CheckpointError(f"no checkpoint in {workdir} yet: train first, or wait for the first one")
        else:
            ckpt.require(step)
        variables, _ = restore_variables(ckpt, step, abstract_variables(model, meta.image_shape,
                                                                         sharding.make_mesh(1)))
    return WorkdirModel(config, meta, model, jax.device_get(variables), int(step))
